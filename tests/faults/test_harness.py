"""The fault harness drives a real gateway process: it starts on a fresh folder, serves, and stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

from tests.faults.harness import GatewayProcess, Workdir, running


def test_a_gateway_process_started_on_a_fresh_folder_serves_a_write_and_a_read(tmp_path: Path) -> None:
    work = Workdir.make(tmp_path / "w")
    with running(GatewayProcess(work).wait_ready()) as gw:
        writer = work.service("crm", "eu-west-1", "crm")
        put = urllib.request.Request(
            f"{gw.url}/v1/subjects/aoife",
            data=json.dumps({"home_region": "eu-west-1", "residence": "IE"}).encode(),
            method="PUT",
            headers={**writer, "Content-Type": "application/json"},
        )
        assert urllib.request.urlopen(put, timeout=10).status == 201
        record = urllib.request.Request(f"{gw.url}/v1/subjects/aoife/records/mail-1?category=content", data=b"hello", method="PUT", headers=writer)
        assert urllib.request.urlopen(record, timeout=10).status == 201
        read = urllib.request.Request(f"{gw.url}/v1/subjects/aoife/records/mail-1", headers=writer)
        assert urllib.request.urlopen(read, timeout=10).read() == b"hello"
        gw.signal(signal.SIGTERM)
        assert gw.wait(timeout=90) == 0
    assert any(e["kind"] == "record.written" for e in work.entries())
