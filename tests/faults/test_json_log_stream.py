"""With `--log-format json` every line the served process writes is one JSON object, from start to exit."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

from tests.faults.harness import GatewayProcess, Workdir, running


def test_every_line_a_json_logging_gateway_writes_from_start_to_exit_is_json(tmp_path: Path) -> None:
    work = Workdir.make(tmp_path / "w")
    with running(GatewayProcess(work).wait_ready()) as gw:
        urllib.request.urlopen(f"{gw.url}/healthz", timeout=10).close()
        gw.signal(signal.SIGTERM)
        assert gw.wait(timeout=60) == 0
        lines = gw.log_text().splitlines()
    assert lines
    for line in lines:
        assert isinstance(json.loads(line), dict), line
