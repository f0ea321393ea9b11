"""A request the HTTP parser refuses is answered like every other error: a problem document, on a closed connection."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.faults.harness import GatewayProcess, Workdir, running


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with running(GatewayProcess(Workdir.make(tmp_path_factory.mktemp("malformed"))).wait_ready()) as process:
        yield process


def _exchange(process: GatewayProcess, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", process.port), timeout=10) as conn:
        conn.sendall(raw)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


def test_a_request_line_over_the_parsers_limit_is_answered_with_a_problem_document(gateway: GatewayProcess) -> None:
    status, headers, body = _exchange(gateway, b"GET /v1/cases?cursor=" + b"A" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status.split(" ")[1], headers["content-type"].split(";")[0], json.loads(body)["code"]) == ("400", "application/problem+json", "malformed-request")


def test_the_answer_to_a_malformed_request_quotes_nothing_of_it(gateway: GatewayProcess) -> None:
    _, _, body = _exchange(gateway, b"GET /v1/subjects/secret-subject-id/records HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert b"secret-subject-id" not in body


def test_the_connection_of_a_malformed_request_is_closed(gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        received = b""
        while chunk := conn.recv(65536):  # ends at the gateway's close, or times out if it kept the connection open
            received += chunk
    assert received.split(b" ")[1] == b"400"
