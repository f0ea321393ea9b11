"""`gateway serve --workers N` as real processes: the workers share the port, each writes its own chain, the parent supervises."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.faults.harness import START_TIMEOUT, GatewayProcess, Workdir, running
from tests.support import ROOT

READS = 40  # new connections each: with two workers, the chance that all land on one is 2 ** -39
SUBJECT = "aoife"


def request(gw: GatewayProcess, path: str, headers: dict[str, str], *, data: bytes | None = None, method: str = "GET") -> int:
    req = urllib.request.Request(f"{gw.url}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def store_a_record(gw: GatewayProcess, work: Workdir) -> dict[str, str]:
    writer = work.service("crm", "eu-west-1", "crm")
    profile = json.dumps({"home_region": "eu-west-1", "residence": "IE"}).encode()
    assert request(gw, f"/v1/subjects/{SUBJECT}", {**writer, "Content-Type": "application/json"}, data=profile, method="PUT") == 201
    assert request(gw, f"/v1/subjects/{SUBJECT}/records/mail-1?category=content", writer, data=b"hello", method="PUT") == 201
    return writer


def wait_for(condition: Any, what: str, within: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {within}s"
        time.sleep(0.05)


def listening(gw: GatewayProcess) -> int:
    return gw.log_text().count('"event": "serve.listening"')


def worker_pids(gw: GatewayProcess) -> list[int]:
    """The parent's worker processes, from the lines it logs as it starts each."""
    pids = []
    for line in gw.log_text().splitlines():
        if '"event": "workers.started"' in line:
            pids.append(int(json.loads(line)["message"].split("(pid ")[1].split(",")[0]))
    return pids


def audit_verify(work: Workdir, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway", "audit", "verify", "--config", str(work.config), "--data-dir", str(work.data_dir), "--format", "json"]
    environment = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=environment)


def reads_in(work: Workdir, chain: str) -> int:
    return sum(1 for e in work.entries(chain) if e["kind"] == "service.read")


def test_two_workers_share_the_port_each_writes_its_own_chain_both_verify_and_sigterm_ends_both(tmp_path: Path) -> None:
    work = Workdir.make(tmp_path / "w")
    with running(GatewayProcess(work, args=("--workers", "2", "--chain-id", "gw")).wait_ready()) as gw:
        wait_for(lambda: listening(gw) == 2, "both workers listening")
        reader = store_a_record(gw, work)
        for _ in range(READS):
            assert request(gw, f"/v1/subjects/{SUBJECT}/records/mail-1", reader) == 200
        assert sorted(work.chains()) == ["gw-w1", "gw-w2"]
        assert reads_in(work, "gw-w1") > 0 and reads_in(work, "gw-w2") > 0
        assert reads_in(work, "gw-w1") + reads_in(work, "gw-w2") == READS
        # any worker answers /metrics with the requests both served
        metrics = urllib.request.urlopen(f"{gw.url}/metrics", timeout=10).read().decode()
        served = 'gateway_http_requests_total{method="GET",route="/v1/subjects/{subject}/records/{key}",status="200"}'
        assert f"{served} {float(READS)}" in metrics
        gw.signal(signal.SIGTERM)
        assert gw.wait(timeout=90) == 0
    assert gw.log_text().count('"event": "shutdown.closed"') == 2  # each worker drained and closed its runtime
    verified = audit_verify(work)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert [(c["chain"], c["ok"]) for c in json.loads(verified.stdout)["chains"]] == [("gw-w1", True), ("gw-w2", True)]


def test_a_worker_that_dies_is_restarted_on_its_own_chain_and_serves_again(tmp_path: Path) -> None:
    work = Workdir.make(tmp_path / "w")
    with running(GatewayProcess(work, args=("--workers", "2", "--chain-id", "gw")).wait_ready()) as gw:
        wait_for(lambda: listening(gw) == 2, "both workers listening")
        first, _ = worker_pids(gw)
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: listening(gw) == 3, "the killed worker started again")
        assert len(worker_pids(gw)) == 3
        assert sorted(work.chains()) == ["gw-w1", "gw-w2"]  # the new process continues the dead one's chain
        assert [e["kind"] for e in work.entries("gw-w1")].count("config.loaded") == 2
        assert request(gw, "/healthz", {}) == 200
        gw.signal(signal.SIGTERM)
        assert gw.wait(timeout=90) == 0
    assert audit_verify(work).returncode == 0
