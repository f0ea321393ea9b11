"""Pagination of list routes: ``limit`` and an opaque ``cursor``, answered with ``next_cursor``.

A cursor is base64url of a small JSON object naming the list it belongs to and
the sort position of the last item handed out; the next page starts after that
position. It is opaque to clients: anything that does not decode to a position
of the same list is refused (400 `invalid-cursor`), never guessed at.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

from gateway.errors import InvalidRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR_CHARS = 2048


def page_limit(query: Mapping[str, str]) -> int:
    """``limit`` from the query: 1..MAX_LIMIT, DEFAULT_LIMIT when absent."""
    text = query.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidRequest(f"`limit` must be a whole number from 1 to {MAX_LIMIT}, not `{text[:20]}`", code="invalid-request")
    return int(text)


def encode_cursor(kind: str, position: list[Any]) -> str:
    raw = json.dumps({"list": kind, "after": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(query: Mapping[str, str], kind: str, valid: Callable[[list[Any]], bool]) -> list[Any] | None:
    """The position in ``cursor``, or ``None`` for the first page; 400 `invalid-cursor` if it is not one of ours for ``kind``."""
    text = query.get("cursor")
    if text is None:
        return None
    bad = InvalidRequest(
        "`cursor` is not a cursor of this list: pass the `next_cursor` of the previous page as it was, or omit it for the first page",
        code="invalid-cursor",
    )
    if not text or len(text) > MAX_CURSOR_CHARS or not text.isascii():
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise bad from None
    if not isinstance(data, dict) or set(data) != {"list", "after"} or data["list"] != kind:
        raise bad
    position = data["after"]
    if not isinstance(position, list) or not valid(position):
        raise bad
    return position
