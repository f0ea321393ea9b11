"""Request bodies: bounded while they arrive, parsed strictly, a body cut short a client error.

Every handler reads its body through here, never with ``request.read()``,
``request.json()`` or ``request.post()`` (which buffer up to the app's 64 MiB
ceiling whatever the route needs):
- ``read_body`` stops at the route's limit whether the client sent a
  ``Content-Length`` (refused before a byte is read) or a chunked body (refused
  at the first chunk past the limit), so a client without a token cannot make
  the gateway hold more than one route's limit per request.
- A client that closes the connection before its body is complete gets 400
  ``body-incomplete`` (which it will not read): not a server error, no traceback.
- ``json_body`` refuses, as 400 ``invalid-json``, what the standard parser would
  accept but a careful reader must not: a member named twice (no "last one
  wins"), and nesting deeper than ``MAX_JSON_DEPTH`` (no request body we define
  nests more than four deep; a deeper one is an attack on the parser's stack).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict

from gateway.canonical import no_duplicate_members
from gateway.errors import InvalidRequest, PayloadTooLarge

MAX_JSON_BYTES = 64 * 1024  # subjects, approvals, objections, support access, explain (its order is at most 256 KiB)
MAX_JSON_DEPTH = 32
READ_CHUNK = 64 * 1024


class BodyIncomplete(InvalidRequest):
    code = "body-incomplete"


async def read_body(request: web.Request, limit: int, *, what: str = "request body") -> bytes:
    """The whole body, at most ``limit`` bytes (413 ``payload-too-large`` past it, however it is sent)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the {what} is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.read(READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the {what} is more than {limit} bytes, the limit")
            chunks.append(chunk)
    except (ConnectionResetError, asyncio.IncompleteReadError, HttpProcessingError):
        raise BodyIncomplete(f"the {what} ended before it was complete; send it again") from None
    return b"".join(chunks)


def parse_json(body: bytes, *, what: str = "body") -> Any:
    """Strict JSON: UTF-8, no member named twice, at most ``MAX_JSON_DEPTH`` deep; else 400 ``invalid-json`` saying why."""
    try:
        value = json.loads(body, object_pairs_hook=no_duplicate_members)
    except RecursionError:
        raise _too_deep(what) from None
    except UnicodeDecodeError:
        raise InvalidRequest(f"the {what} is not UTF-8 JSON", code="invalid-json") from None
    except ValueError as exc:
        reason = str(exc) if str(exc).startswith("duplicate member") else "it is not valid JSON"
        raise InvalidRequest(f"the {what} cannot be read: {reason}", code="invalid-json") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise _too_deep(what)
    return value


async def json_body(request: web.Request, *, limit: int = MAX_JSON_BYTES, what: str = "body") -> Any:
    return parse_json(await read_body(request, limit, what=what), what=what)


async def form_body(request: web.Request, limit: int) -> Mapping[str, str]:
    """An ``application/x-www-form-urlencoded`` body of at most ``limit`` bytes (the console's forms)."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("send the form as `application/x-www-form-urlencoded`", code="unsupported-media-type")
    body = await read_body(request, limit, what="form")
    try:
        return MultiDict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=64))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the form cannot be read", code="invalid-form") from None


async def multipart_form_body(request: web.Request, limit: int, *, max_fields: int = 16) -> Mapping[str, str | bytes]:
    """A ``multipart/form-data`` body of at most ``limit`` bytes in all: text fields as text, files as bytes.

    Counted as the parts arrive (413 ``payload-too-large`` past ``limit``, however the body
    is sent); a nested multipart, or more than ``max_fields`` parts, is 400 ``invalid-form``.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the form is {declared} bytes; the limit is {limit}")
    fields: MultiDict[str | bytes] = MultiDict()
    size = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or len(fields) >= max_fields:
                raise InvalidRequest("the form cannot be read", code="invalid-form")
            data = bytearray()
            while chunk := await part.read_chunk(READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the form is more than {limit} bytes, the limit")
                data += chunk
            if part.filename is not None:
                fields.add(part.name or "", bytes(data))
            else:
                fields.add(part.name or "", data.decode("utf-8"))
    except (ConnectionResetError, asyncio.IncompleteReadError, HttpProcessingError):
        raise BodyIncomplete("the form ended before it was complete; send it again") from None
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the form cannot be read", code="invalid-form") from None
    return fields


def _too_deep(what: str) -> InvalidRequest:
    return InvalidRequest(f"the {what} nests deeper than {MAX_JSON_DEPTH} levels", code="invalid-json")


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_JSON_DEPTH:  # deeper is refused whatever lies below
            stack.extend((child, level + 1) for child in children)
    return deepest
