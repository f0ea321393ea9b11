"""`gateway serve --loop`: the same gateway on uvloop or on asyncio's own loop, the one it runs on named in its log."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

import pytest

from tests.faults.harness import GatewayProcess, Workdir, running


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_gateway_serves_and_drains_on_the_event_loop_it_is_given(tmp_path: Path, loop: str) -> None:
    work = Workdir.make(tmp_path / "w")
    with running(GatewayProcess(work, args=("--loop", loop)).wait_ready()) as gw:
        with urllib.request.urlopen(f"{gw.url}/readyz", timeout=10) as response:
            assert response.status == 200
        gw.signal(signal.SIGTERM)
        assert gw.wait(timeout=60) == 0
        named = [line for line in map(json.loads, gw.log_text().splitlines()) if line.get("event") == "serve.loop"]
    assert [line["message"] for line in named] == [f"event loop: {loop}"]


def test_a_gateway_runs_on_uvloop_when_no_loop_is_named(tmp_path: Path) -> None:
    work = Workdir.make(tmp_path / "w")
    with running(GatewayProcess(work).wait_ready()) as gw:
        gw.signal(signal.SIGTERM)
        assert gw.wait(timeout=60) == 0
        named = [line["message"] for line in map(json.loads, gw.log_text().splitlines()) if line.get("event") == "serve.loop"]
    assert named == ["event loop: uvloop"]
