"""Which ledger chain a command writes: `--chain-id`, else `GATEWAY_CHAIN_ID`, else the host name; never one another process writes."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

import pytest

from gateway.audit import FileLedger
from gateway.audit.chain import chain_id_from
from gateway.model import system_clock
from tests.support import SHIPPED_CONFIG, run_cli


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("GATEWAY_CHAIN_ID", raising=False)
    shutil.copy(SHIPPED_CONFIG, tmp_path / "regions.toml")
    assert run_cli(tmp_path, "keys", "init") == 0
    return tmp_path


def chains(workdir: Path) -> list[str]:
    return sorted(path.stem for path in (workdir / "data/ledger").glob("*.jsonl"))


def test_a_writing_command_writes_the_chain_its_chain_id_names(workdir: Path) -> None:
    assert run_cli(workdir, "audit", "reconcile", "--chain-id", "gateway-0") == 0
    assert chains(workdir) == ["gateway-0"]


def test_without_a_chain_id_a_writing_command_writes_the_chain_named_in_the_environment(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CHAIN_ID", "gateway-7d9f")
    assert run_cli(workdir, "audit", "reconcile") == 0
    assert chains(workdir) == ["gateway-7d9f"]


def test_without_either_a_writing_command_writes_the_chain_named_after_the_host(workdir: Path) -> None:
    assert run_cli(workdir, "audit", "reconcile") == 0
    assert chains(workdir) == [chain_id_from(socket.gethostname())]


def test_a_host_name_a_chain_id_cannot_hold_is_made_into_one() -> None:
    assert chain_id_from("Alice's MacBook Pro.local") == "Alice-s-MacBook-Pro.local"
    assert chain_id_from("") == "ledger"


def test_a_chain_id_that_cannot_name_a_file_is_a_usage_error(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        run_cli(workdir, "audit", "reconcile", "--chain-id", "../other")
    assert stopped.value.code == 64 and "chain id" in capsys.readouterr().err
    assert chains(workdir) == []


def test_a_command_writing_a_chain_another_writer_has_open_is_refused_with_ledger_in_use(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def refused() -> int:
        async with await FileLedger.open(workdir / "data/ledger/gateway-0.jsonl", system_clock, chain="gateway-0"):
            return await asyncio.to_thread(run_cli, workdir, "audit", "reconcile", "--chain-id", "gateway-0")

    assert asyncio.run(refused()) == 1
    assert "ledger-in-use" in capsys.readouterr().err
