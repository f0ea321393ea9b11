"""Two real gateway processes on one data folder race writes of one key: 201 once, and the ledger says which version the key holds."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.faults.conftest import scale
from tests.faults.harness import GatewayProcess, Workdir, running

WRITERS = 16
ROUNDS = 3


def _request(url: str, headers: dict[str, str], *, data: bytes | None = None, method: str = "GET") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers), timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _chain_end(written: list[dict]) -> str | None:
    """Follow `replaces` from the creation: the version the ledger says the key holds (None if the chain is broken)."""
    successor = {w["replaces"]: w["sha256"] for w in written}
    version, seen = None, 0
    while version in successor:
        version, seen = successor[version], seen + 1
    return version if seen == len(written) == len(successor) else None


def test_two_gateway_processes_racing_writes_of_one_key_create_it_once_and_the_ledger_names_the_stored_version(tmp_path: Path) -> None:
    work = Workdir.make(tmp_path / "w")
    # one after the other: the first makes the development keys the second reads; each writes its own ledger chain
    left_process = GatewayProcess(work, name="left", args=("--chain-id", "left")).wait_ready()
    with running(left_process) as left, running(GatewayProcess(work, name="right", args=("--chain-id", "right")).wait_ready()) as right:
        writer = work.service("crm", "eu-west-1", "crm")
        status, _ = _request(
            f"{left.url}/v1/subjects/aoife",
            {**writer, "Content-Type": "application/json"},
            data=json.dumps({"home_region": "eu-west-1", "residence": "IE"}).encode(),
            method="PUT",
        )
        assert status == 201
        with ThreadPoolExecutor(WRITERS) as pool:
            for n in range(ROUNDS * scale()):
                key = f"race-{n}"
                puts = [
                    pool.submit(
                        _request,
                        f"{(left, right)[i % 2].url}/v1/subjects/aoife/records/{key}?category=content",
                        writer,
                        data=f"body {n}.{i}".encode(),
                        method="PUT",
                    )
                    for i in range(WRITERS)
                ]
                answers = [put.result() for put in puts]
                assert sorted(status for status, _ in answers) == [200] * (WRITERS - 1) + [201], answers
                status, stored = _request(f"{right.url}/v1/subjects/aoife/records/{key}", writer)
                assert status == 200
                written = [e["data"] for e in work.entries() if e["kind"] == "record.written" and e["data"]["key"] == key]
                assert len(written) == WRITERS
                assert _chain_end(written) == hashlib.sha256(stored).hexdigest()
