"""Log lines: JSON or text, the request id on every line of a request, and no personal data anywhere."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import _configure_logging
from gateway.logs import REQUEST_ID, JsonFormatter, TextFormatter, request_context, setup_logging
from tests.ops import scenario
from tests.support import Env


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Leave the root logger as it was found."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    access_level = logging.getLogger("aiohttp.access").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(access_level)


@pytest.fixture
def captured(root_logging: None) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    setup_logging("debug", "json", stream)
    yield stream


def _record(message: str = "hello %s", args: tuple[object, ...] = ("world",), **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("gateway.test", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_time_level_logger_message_and_the_request_id_in_context() -> None:
    with request_context("req-7"):
        line = json.loads(JsonFormatter().format(_record()))
    assert line["level"] == "info" and line["logger"] == "gateway.test" and line["message"] == "hello world"
    assert line["request_id"] == "req-7" and line["time"].endswith("Z")
    assert REQUEST_ID.get() is None


def test_extra_fields_outside_the_allow_list_are_dropped() -> None:
    line = json.loads(JsonFormatter().format(_record(event="residency-violation", region="eu-west-1", subject="aoife", key="inbox-1")))
    assert line["event"] == "residency-violation" and line["region"] == "eu-west-1"
    assert "subject" not in line and "key" not in line


def test_an_exception_line_has_the_type_and_stack_but_not_the_message() -> None:
    subject = "aoife"
    try:
        raise ValueError(f"record `subjects/{subject}/records/inbox-1` is broken")
    except ValueError:
        import sys

        record = logging.LogRecord("gateway.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert json.loads(line)["exc_type"] == "ValueError" and "aoife" not in line


def test_a_text_line_is_readable_with_the_request_id() -> None:
    with request_context("req-9"):
        line = TextFormatter().format(_record(event="http.request", status=200))
    assert re.search(r" INFO gateway\.test \[req req-9\]: hello world event=http.request status=200$", line), line


def test_serve_log_format_json_writes_json_lines_to_stdout(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    _configure_logging("info", "json")
    logging.getLogger("gateway.test").info("started")
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["message"] == "started"


def test_serve_log_format_text_is_the_default(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import build_parser

    assert build_parser().parse_args(["serve"]).log_format == "text"
    _configure_logging("info")
    logging.getLogger("gateway.test").info("started")
    assert capsys.readouterr().out.strip().endswith("INFO gateway.test: started")


async def test_every_line_logged_while_serving_a_request_carries_its_request_id(client: TestClient, captured: io.StringIO) -> None:
    await client.get("/healthz", headers={"X-Request-ID": "trace-me-1"})
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    access = [line for line in lines if line.get("event") == "http.request"]
    assert access and all(line["request_id"] == "trace-me-1" for line in access)
    assert access[-1]["route"] == "/healthz" and access[-1]["status"] == 200


async def test_a_read_is_logged_with_its_audit_entry_and_decision(client: TestClient, env: Env, captured: io.StringIO) -> None:
    await scenario.run(client, env)
    reads = [
        line
        for line in map(json.loads, captured.getvalue().splitlines())
        if line.get("event") == "http.request" and line.get("route") == "/v1/subjects/{subject}/records/{key}" and line["method"] == "GET"
    ]
    assert [(r["status"], r.get("decision"), r.get("code")) for r in reads] == [(200, "same-jurisdiction", None), (451, None, "residency-refused")]
    assert reads[0]["audit_seq"].isdigit()
    decided = [line for line in map(json.loads, captured.getvalue().splitlines()) if line.get("event") == "order.decided"]
    assert [d["order"] for d in decided] == ["ops-warrant-1", "ops-preserve-1"]
    assert all(d["request_id"] == scenario.REQUEST_ID for d in decided)


@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_no_subject_id_record_key_content_or_personal_attribute_reaches_a_log_line_or_a_metric_label(
    client: TestClient, env: Env, root_logging: None, fmt: str
) -> None:
    stream = io.StringIO()
    setup_logging("debug", fmt, stream)
    await scenario.run(client, env)
    exposition = await scenario.exposition(client)

    logged = stream.getvalue()
    assert logged.count("\n") >= 15  # the scenario was logged
    for value in scenario.PERSONAL_STRINGS:
        assert value not in logged
    for code in scenario.PERSONAL_CODES:
        assert not re.search(rf"\b{code}\b", logged), code

    label_values = {v for family in text_string_to_metric_families(exposition) for s in family.samples for v in s.labels.values()}
    assert "us.warrant" in label_values and "residency-refused" not in label_values  # labels were collected
    for value in label_values:
        assert not any(personal in value for personal in scenario.PERSONAL_STRINGS), value
        assert value not in scenario.PERSONAL_CODES, value


def test_a_text_exception_line_has_the_type_and_stack_but_not_the_message() -> None:
    subject = "aoife"
    try:
        raise ValueError(f"record `subjects/{subject}/records/inbox-1` is broken")
    except ValueError:
        import sys

        record = logging.LogRecord("gateway.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = TextFormatter().format(record)
    assert "ValueError" in line and "aoife" not in line


@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_a_malformed_request_line_naming_a_subject_reaches_no_log_line(client: TestClient, root_logging: None, fmt: str) -> None:
    import asyncio

    stream = io.StringIO()
    setup_logging("debug", fmt, stream)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET /v1/subjects/aoife/records/inbox-1 HTTP/1.1 extra\r\nHost: x\r\n\r\n")
    await writer.drain()
    await reader.read()  # the server answers 400 and closes
    writer.close()
    await writer.wait_closed()
    logged = stream.getvalue()
    assert "aoife" not in logged and "inbox-1" not in logged
    assert " ERROR " not in logged and '"level": "error"' not in logged  # a client's mistake, not the gateway's
