"""`serve --workers`: what the parent decides before it starts any worker (the processes themselves: tests/faults/test_workers.py)."""

from __future__ import annotations

import pytest

from gateway.audit.chain import is_chain_id
from gateway.cli import main
from gateway.web.workers import worker_chain


def test_each_worker_writes_the_chain_of_the_base_id_and_its_number() -> None:
    assert [worker_chain("gateway-0", n) for n in (1, 2)] == ["gateway-0-w1", "gateway-0-w2"]


def test_a_long_base_id_is_shortened_so_every_workers_chain_id_stays_valid() -> None:
    chain = worker_chain("a" * 100, 12)
    assert chain.endswith("-w12") and len(chain) == 100 and is_chain_id(chain)


@pytest.mark.parametrize("workers", ["0", "-1", "two", "65"])
def test_a_number_of_workers_outside_one_to_sixty_four_is_a_usage_error(workers: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--workers", workers])
    assert stopped.value.code == 64 and "number of workers" in capsys.readouterr().err
