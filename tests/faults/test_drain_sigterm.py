"""SIGTERM drains a real gateway process: uploads in flight finish, the rest is cancelled, and it exits inside the grace period.

Each test drives `gateway serve` over raw sockets, so it controls exactly when
each half of a request body is sent relative to the signal.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.faults.conftest import scale
from tests.faults.harness import GatewayProcess, MotoProcess, Workdir, config_text, running

# What a stopping process may take beyond its drain time: cancelling what is left, closing the
# runtime and the interpreter's exit, on a busy CI machine. A bound, not a measurement.
MARGIN = 15.0
SUBJECT = "aoife"  # homed in eu-west-1: crm there may write her records
BODY = bytes(range(256)) * 256  # 64 KiB, sent in two halves


def writer(work: Workdir) -> dict[str, str]:
    return work.service("crm", "eu-west-1", "crm")


def register(gw: GatewayProcess, work: Workdir) -> None:
    request = urllib.request.Request(
        f"{gw.url}/v1/subjects/{SUBJECT}",
        data=json.dumps({"home_region": "eu-west-1", "residence": "IE"}).encode(),
        method="PUT",
        headers={**writer(work), "Content-Type": "application/json"},
    )
    assert urllib.request.urlopen(request, timeout=10).status in (200, 201)


def start_upload(gw: GatewayProcess, work: Workdir, key: str) -> socket.socket:
    """A PUT of ``BODY`` whose headers and first half are sent; the caller sends the rest (or never does)."""
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
    head = [
        f"PUT /v1/subjects/{SUBJECT}/records/{key}?category=content HTTP/1.1",
        f"Host: 127.0.0.1:{gw.port}",
        f"Authorization: {writer(work)['Authorization']}",
        "Content-Type: application/octet-stream",
        f"Content-Length: {len(BODY)}",
    ]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + BODY[: len(BODY) // 2])
    return sock


def wait_until_refused(gw: GatewayProcess, within: float = 10.0) -> bool:
    """Whether a new connection to the gateway's port is refused within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", gw.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.02)
    return False


def wait_for_log(gw: GatewayProcess, event: str, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if f'"{event}"' in gw.log_text():
            return True
        time.sleep(0.02)
    return False


def read_record(gw: GatewayProcess, work: Workdir, key: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"{gw.url}/v1/subjects/{SUBJECT}/records/{key}", headers=writer(work))
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def written(work: Workdir, key: str) -> list[dict]:
    return [e for e in work.entries() if e["kind"] == "record.written" and e["data"]["key"] == key]


def test_a_body_sent_in_two_halves_around_sigterm_is_stored_ledgered_and_answered_201(tmp_path: Path) -> None:
    work = Workdir.make(tmp_path / "w")
    keys = [f"upload-{n}" for n in range(scale())]
    for n, key in enumerate(keys):
        with running(GatewayProcess(work, name=f"round-{n}").wait_ready()) as gw:
            if n == 0:
                register(gw, work)
            with start_upload(gw, work, key) as upload:
                signalled = time.monotonic()
                gw.signal(signal.SIGTERM)
                assert wait_until_refused(gw), "the port still accepts connections after SIGTERM"
                upload.sendall(BODY[len(BODY) // 2 :])
                answer = http.client.HTTPResponse(upload)
                answer.begin()
                status, text = answer.status, answer.read()
                answer.close()
            assert status == 201, text
            assert gw.wait(timeout=30) == 0
            print(f"round {n}: drain time with one upload in flight: {time.monotonic() - signalled:.3f}s from SIGTERM to exit")
    with running(GatewayProcess(work, name="after").wait_ready()) as again:
        for key in keys:
            assert read_record(again, work, key) == (200, BODY)
        again.stop()
    assert all(len(written(work, key)) == 1 for key in keys)


def test_a_client_that_never_finishes_its_body_does_not_hold_the_shutdown_and_nothing_of_it_is_stored(tmp_path: Path) -> None:
    work = Workdir.make(tmp_path / "w")
    drain = 2.0
    with running(GatewayProcess(work, args=("--drain-seconds", str(drain))).wait_ready()) as gw:
        register(gw, work)
        with start_upload(gw, work, "mail-2") as upload:
            gw.signal(signal.SIGTERM)
            assert gw.wait(timeout=drain + MARGIN) == 0
            assert upload.recv(1) == b""  # a closed connection, no answer
        assert '"cancelled": 1' in gw.log_text()
    with running(GatewayProcess(work, name="after").wait_ready()) as again:
        assert read_record(again, work, "mail-2")[0] == 404
        again.stop()
    assert written(work, "mail-2") == []


def test_an_idle_keep_alive_connection_is_closed_at_once_and_does_not_hold_the_shutdown(tmp_path: Path) -> None:
    work = Workdir.make(tmp_path / "w")
    with running(GatewayProcess(work, args=("--drain-seconds", "60")).wait_ready()) as gw:
        idle = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
        idle.request("GET", "/healthz")
        answer = idle.getresponse()
        assert answer.status == 200 and not answer.will_close
        answer.read()  # the connection stays open, idle
        gw.signal(signal.SIGTERM)
        assert gw.wait(timeout=MARGIN) == 0  # well inside the 60 s drain time
        assert idle.sock is not None and idle.sock.recv(1) == b""
        idle.close()


def test_a_second_sigterm_ends_the_drain_at_once_and_the_process_still_exits_0(tmp_path: Path) -> None:
    work = Workdir.make(tmp_path / "w")
    with running(GatewayProcess(work, args=("--drain-seconds", "60")).wait_ready()) as gw:
        register(gw, work)
        with start_upload(gw, work, "mail-4") as upload:
            gw.signal(signal.SIGTERM)
            assert wait_for_log(gw, "shutdown.draining")
            gw.signal(signal.SIGTERM)
            assert gw.wait(timeout=MARGIN) == 0  # well inside the 60 s drain time
            assert upload.recv(1) == b""
    assert written(work, "mail-4") == []


@pytest.mark.usefixtures("needs_moto_server")
def test_the_ledger_segment_open_at_sigterm_is_closed_and_in_the_export_bucket_when_the_process_exits(tmp_path: Path) -> None:
    import boto3

    audit = MotoProcess()
    try:
        export = f'export = {{ bucket = "audit-ledger", region_name = "us-east-1", endpoint_url = "{audit.url}", retention_days = 1, mode = "GOVERNANCE" }}\n'
        work = Workdir.make(tmp_path / "w", config_text().replace("[audit]\n", f"[audit]\n{export}"))
        with running(GatewayProcess(work).wait_ready()) as gw:
            register(gw, work)
            gw.signal(signal.SIGTERM)
            assert gw.wait(timeout=20 + MARGIN) == 0
        entries = work.entries()
        assert entries[-1]["kind"] == "ledger.checkpoint"
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=audit.url, aws_access_key_id="testing", aws_secret_access_key="testing")
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket="audit-ledger").get("Contents", [])]
        assert f"segments/{work.ledger.stem}/1-{entries[-1]['seq']}.jsonl" in keys
    finally:
        audit.kill()


@pytest.mark.usefixtures("needs_moto_server")
def test_a_frozen_export_bucket_does_not_hold_the_shutdown_beyond_its_bound(tmp_path: Path) -> None:
    audit = MotoProcess()
    try:
        export = f'export = {{ bucket = "audit-ledger", region_name = "us-east-1", endpoint_url = "{audit.url}", retention_days = 1, mode = "GOVERNANCE" }}\n'
        work = Workdir.make(tmp_path / "w", config_text().replace("[audit]\n", f"[audit]\n{export}"))
        with running(GatewayProcess(work).wait_ready()) as gw:
            register(gw, work)
            audit.freeze()
            gw.signal(signal.SIGTERM)
            assert gw.wait(timeout=MARGIN) == 0  # the last export gives up after 5 s; botocore alone would wait 3 x 10 s
        assert work.entries()[-1]["kind"] == "ledger.checkpoint"  # closed locally; the next start uploads it
    finally:
        audit.kill()
