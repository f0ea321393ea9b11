"""Logging: JSON lines for machines, a readable line for laptops, the request id on both.

The request id lives in a context variable that the HTTP middleware sets for
each request, so every line logged while serving it carries the id, whichever
module logs it.

What a line may hold is an allow-list: the message, the logger, the level, the
request id and the ``extra`` fields named in ``SAFE_FIELDS`` (ids of
decisions, orders and ledger entries; regions, outcomes, reason codes, route
templates). Anything else passed as ``extra`` (a subject id, a record key) is
dropped, so a careless call cannot put personal data in the logs. Exception
lines carry the type and the stack, not the exception's message, which may
quote a record key.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from aiohttp.http_exceptions import HttpProcessingError

FORMATS = ("text", "json")

_PARSER_ERRORS = (HttpProcessingError,)  # aiohttp refused the request before any handler saw it

REQUEST_ID: ContextVar[str | None] = ContextVar("gateway_request_id", default=None)

# ``extra`` fields a log line may carry. None of them is personal data or record content.
SAFE_FIELDS = frozenset(
    {
        "event",
        "code",
        "status",
        "method",
        "route",
        "duration_ms",
        "region",
        "operation",
        "reason",
        "outcome",
        "outcomes",
        "decision",
        "audit_seq",
        "order",
        "authority",
        "instrument",
        "case",
        "in_flight",
        "idle_closed",
        "drain_seconds",
        "finished",
        "cancelled",
        "intents_open",
        "intents_waiting",
        "peer",
    }
)


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Bind ``request_id`` to every log line written inside the block."""
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


def _request_id(record: logging.LogRecord) -> str | None:
    value = getattr(record, "request_id", None)
    return value if isinstance(value, str) else REQUEST_ID.get()


def _safe_extras(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in SAFE_FIELDS:
        if name in record.__dict__:
            value = record.__dict__[name]
            fields[name] = value if isinstance(value, str | int | float | bool | list | type(None)) else str(value)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and safe extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = _request_id(record)
        if request_id:
            line["request_id"] = request_id
        line.update(_safe_extras(record))
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"], line["stack"] = _type_and_stack(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _type_and_stack(exc_info: Any) -> tuple[str, str]:
    """An exception's type name and stack, without its message (which may quote a record key or a raw request)."""
    return exc_info[0].__name__, "".join(traceback.format_tb(exc_info[2]))


class TextFormatter(logging.Formatter):
    """``2026-11-28 10:00:00,123 INFO gateway.web [req 1f2e...]: message`` with safe extras as key=value."""

    def formatException(self, ei: Any) -> str:
        kind, stack = _type_and_stack(ei)
        return f"Traceback (most recent call last):\n{stack}{kind} (message withheld: it may quote personal data)"

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(req)s: %(message)s%(fields)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = _request_id(record)
        record.req = f" [req {request_id}]" if request_id else ""
        extras = _safe_extras(record)
        record.fields = "".join(f" {k}={v}" for k, v in sorted(extras.items()))
        return super().format(record)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so ``setup_logging`` can replace it without touching other handlers."""


def client_mistakes_are_not_errors(record: logging.LogRecord) -> bool:
    """A request aiohttp's parser refused (a malformed request line or header) is the client's mistake: an INFO
    line naming the exception's type, not an ERROR with a traceback whose message quotes the raw request line."""
    if record.name == "aiohttp.server" and record.exc_info and record.exc_info[0] is not None and issubclass(record.exc_info[0], _PARSER_ERRORS):
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "refused a malformed request (%s)", (record.exc_info[0].__name__,)
        record.exc_info, record.exc_text = None, None
        record.event = "http.malformed-request"
    return True


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Send every log line to ``stream`` (stdout) in ``fmt``; returns the handler. Idempotent."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not `{fmt}`")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level `{level}`")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
    handler = _Handler(stream if stream is not None else sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(client_mistakes_are_not_errors)
    root.addHandler(handler)
    root.setLevel(numeric)
    # aiohttp's access log prints raw paths, which name subjects and record keys;
    # the gateway's middleware logs each request by route template instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
