"""Request bodies, read a piece at a time with every check of ``gateway.s3front.chunked``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway.s3front.chunked import Body
from gateway.s3front.state import S3_SIGNED
from gateway.s3front.xml import S3Error


def request_body(request: web.Request, *, skip_checksums: bool = False) -> Body:
    """The request's body, to be read a piece at a time with every check of ``gateway.s3front.chunked``;
    ``skip_checksums``: ``x-amz-checksum-*`` headers describe something else (a whole multipart object)."""
    headers = {name.lower(): value for name, value in reversed(request.headers.items())}  # the first value of each
    if skip_checksums:
        headers = {name: value for name, value in headers.items() if not name.startswith("x-amz-checksum-")}
    return Body(request.content, headers, request[S3_SIGNED])


async def limited(pieces: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """``pieces``, refused with ``EntityTooLarge`` once they pass ``limit`` bytes."""
    size = 0
    async for piece in pieces:
        size += len(piece)
        if size > limit:
            raise S3Error(400, "EntityTooLarge", f"Your proposed upload exceeds the maximum allowed size of {limit} bytes")
        yield piece


async def whole_body(request: web.Request, limit: int, *, skip_checksums: bool = False) -> bytes:
    """A small request body (an XML document), whole and checked."""
    found = bytearray()
    async for piece in limited(request_body(request, skip_checksums=skip_checksums).pieces(), limit):
        found += piece
    return bytes(found)
