"""Object operations: GetObject and HeadObject (ranges, conditions), PutObject (conditions, user metadata), CopyObject,
DeleteObject and DeleteObjects.

Each is one or more calls of the records service (through
``gateway.services.objects`` for objects of any size), so each object is
decided, tagged and ledgered as a record. A request body is read a piece at a
time and checked as ``gateway.s3front.chunked`` says (signed SHA-256,
aws-chunked signatures, checksums) before the object becomes visible; an
object larger than one chunk is stored as chunks and a manifest, and read back
a verified chunk at a time. An object's user metadata (``x-amz-meta-*``,
names lower-cased as S3 does, values as sent) and its ``Content-Type`` are
stored beside the residency tag (as ``s3-meta``, JSON, and
``s3-content-type``), and only they come back to S3 clients: never the tag or
its seal. An object written without them (through the REST API, say) shows
its category as ``x-amz-meta-category``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import unquote
from xml.sax.saxutils import escape

from aiohttp import web

from gateway.errors import GatewayError
from gateway.s3front.bodies import limited, request_body, whole_body
from gateway.s3front.buckets import Target, bucket_of, bucket_service, target_of
from gateway.s3front.state import S3_CALLER, S3_KEY, state
from gateway.s3front.xml import XMLNS, S3Error, from_gateway, s3_time, xml_response
from gateway.services.objects import Manifest, ObjectService
from gateway.services.records import Precondition, ReadResult, RecordNotFound

log = logging.getLogger("gateway.s3front")

META_PREFIX = "x-amz-meta-"
META_LIMIT = 2048  # S3's limit: the UTF-8 bytes of every user metadata name and value
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
MAX_DELETE_KEYS = 1000
MAX_DELETE_BODY = 2 * 1024 * 1024
MAX_PUT_BYTES = 5 * 1024**3  # S3's largest single PutObject (and part); larger objects are uploaded in parts
RESPONSE_OVERRIDES = ("content-type", "content-language", "expires", "cache-control", "content-disposition", "content-encoding")


async def object_of(request: web.Request) -> Target:
    """The record the request's bucket and key name."""
    return await target_of(request, await bucket_of(request), request[S3_KEY])


def object_service(request: web.Request) -> ObjectService:
    return ObjectService(state(request).rt.records)


def etag(body: bytes) -> str:
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


def category_of(metadata: Mapping[str, str], target: Target) -> str:
    """The record category of an object written with ``metadata``: its ``category``, else the bucket's default."""
    category = metadata.get("category") or target.bucket.default_category
    if not category:
        raise S3Error(400, "InvalidArgument", "send the record's category as x-amz-meta-category (this bucket has no default)")
    return category


def user_metadata(request: web.Request) -> dict[str, str]:
    """The request's ``x-amz-meta-*`` headers: names lower-cased, values as sent; MetadataTooLarge past S3's 2 KiB."""
    found = {name.lower()[len(META_PREFIX) :]: value for name, value in request.headers.items() if name.lower().startswith(META_PREFIX)}
    if sum(len(name.encode()) + len(value.encode()) for name, value in found.items()) > META_LIMIT:
        raise S3Error(400, "MetadataTooLarge", f"Your metadata headers exceed the maximum allowed metadata size of {META_LIMIT} bytes")
    return found


def stored(metadata: Mapping[str, str], content_type: str | None) -> dict[str, str]:
    """User metadata and content type as the store keeps them: printable ASCII (JSON escapes the rest)."""
    stored = {"s3-meta": json.dumps(metadata, separators=(",", ":"), sort_keys=True)}
    if content_type:
        stored["s3-content-type"] = json.dumps(content_type)
    return stored


def _shown(result: ReadResult) -> tuple[dict[str, str], str]:
    """(user metadata, content type) of a read object, as S3 clients see them."""
    if "s3-meta" not in result.extra:
        return {"category": result.meta.category}, DEFAULT_CONTENT_TYPE
    content_type = result.extra.get("s3-content-type")
    return json.loads(result.extra["s3-meta"]), json.loads(content_type) if content_type else DEFAULT_CONTENT_TYPE


def _http_time(moment: datetime) -> str:
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


def _modified(result: ReadResult) -> datetime:
    return datetime.fromisoformat(result.meta.written_at.replace("Z", "+00:00")).replace(microsecond=0)


def _since(value: str | None) -> datetime | None:
    """An HTTP date; None when absent or unreadable (a condition S3 then ignores)."""
    if value is None:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _matches(header: str, tag: str) -> bool:
    return any(t.strip() in ("*", tag, tag.strip('"')) for t in header.split(","))


def _check_conditions(request: web.Request, tag: str, modified: datetime) -> None:
    """RFC 9110's order: If-Match, else If-Unmodified-Since (412); If-None-Match, else If-Modified-Since (304)."""
    headers = request.headers
    if "If-Match" in headers:
        if not _matches(headers["If-Match"], tag):
            raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
    elif (since := _since(headers.get("If-Unmodified-Since"))) is not None and modified > since:
        raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
    if "If-None-Match" in headers:
        if _matches(headers["If-None-Match"], tag):
            raise web.HTTPNotModified(headers={"ETag": tag, "Last-Modified": _http_time(modified)})
    elif (since := _since(headers.get("If-Modified-Since"))) is not None and modified <= since:
        raise web.HTTPNotModified(headers={"ETag": tag, "Last-Modified": _http_time(modified)})


RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range of a single-range ``Range`` header; None for the whole object (no header, or one
    S3 ignores: several ranges, or a malformed one); InvalidRange (416) for a range that starts past the end."""
    found = RANGE.fullmatch(header.strip()) if header else None
    if found is None or found[1] == found[2] == "":
        return None
    if found[1] == "":
        length = int(found[2])
        if length == 0:
            raise _invalid_range(size)
        return max(0, size - length), size - 1
    start = int(found[1])
    end = int(found[2]) if found[2] else size - 1
    if end < start:
        return None
    if start >= size:
        raise _invalid_range(size)
    return start, min(end, size - 1)


def _invalid_range(size: int) -> S3Error:
    return S3Error(416, "InvalidRange", "The requested range is not satisfiable", {"Content-Range": f"bytes */{size}"})


async def get_object(request: web.Request) -> web.StreamResponse:
    """GetObject and HeadObject: the read is decided and ledgered before any condition or range is looked at."""
    target = await object_of(request)
    result, manifest = await object_service(request).read(request[S3_CALLER], target.subject, target.key)
    tag = etag(result.body) if manifest is None else manifest.etag
    size = len(result.body) if manifest is None else manifest.size
    modified = _modified(result)
    _check_conditions(request, tag, modified)
    metadata, content_type = _shown(result)
    headers = {
        "ETag": tag,
        "Last-Modified": _http_time(modified),
        "Accept-Ranges": "bytes",
        **{META_PREFIX + name: value for name, value in metadata.items()},
        "X-Residency-Region": result.meta.region,
        "X-Residency-Decision": result.decision.reasons[0].code,
        "X-Audit-Seq": str(result.ledger_seq),
        "Content-Type": content_type,
    }
    for name in RESPONSE_OVERRIDES:
        if f"response-{name}" in request.query:
            headers[name.title()] = request.query[f"response-{name}"]
    span = _range(request.headers.get("Range"), size)
    start, end, status = (0, size, 200) if span is None else (span[0], span[1] + 1, 206)
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    if manifest is not None:
        return await _stream(request, target, manifest, headers, status, start, end)
    body = result.body[start:end]
    if request.method == "HEAD":
        return web.Response(status=status, headers={**headers, "Content-Length": str(len(body))})
    return web.Response(status=status, body=body, headers=headers)


async def _stream(
    request: web.Request, target: Target, manifest: Manifest, headers: dict[str, str], status: int, start: int, end: int
) -> web.StreamResponse:
    """Bytes ``start`` to ``end`` (exclusive) of a chunked object, sent a verified chunk at a time. A chunk that fails
    its checks before the first byte is an error response, after it ends the connection: no unverified byte is sent."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = end - start
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    pieces = object_service(request).chunks(request[S3_CALLER], target.subject, target.key, manifest, start, end)
    first = await anext(pieces, b"")  # a first chunk that fails is still an S3 error response
    await response.prepare(request)
    try:
        await response.write(first)
        async for piece in pieces:
            await response.write(piece)
    except GatewayError:
        log.warning("a chunked object failed its checks while it was sent; the transfer was cut", extra={"event": "object-stream-cut"})
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


async def _write_condition(request: web.Request, target: Target) -> Precondition:
    """The records service's condition for a PutObject's If-Match / If-None-Match.

    ``If-None-Match: *``: only if there is no object. ``If-Match: ETAG``: the
    current object is read (decided and ledgered as a read), its ETag compared,
    and the write made only over that very version (its SHA-256), so a write
    in between fails it as well."""
    headers = request.headers
    if "If-None-Match" in headers:
        if headers["If-None-Match"].strip() != "*":
            raise S3Error(501, "NotImplemented", "If-None-Match on PutObject takes only `*`")
        return Precondition(if_none_match=True)
    if "If-Match" not in headers:
        return Precondition()
    current, manifest = await object_service(request).read(request[S3_CALLER], target.subject, target.key)
    if not _matches(headers["If-Match"], etag(current.body) if manifest is None else manifest.etag):
        raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
    return Precondition(if_match=frozenset({current.meta.sha256}))


async def put_object(request: web.Request) -> web.StreamResponse:
    """PutObject, or CopyObject when ``x-amz-copy-source`` is sent."""
    if "x-amz-copy-source" in request.headers:
        return await copy_object(request)
    target = await object_of(request)
    metadata = user_metadata(request)
    category = category_of(metadata, target)
    body = request_body(request)
    precondition = await _write_condition(request, target)
    extra = stored(metadata, request.headers.get("Content-Type"))
    pieces = limited(body.pieces(), MAX_PUT_BYTES)
    written = await object_service(request).put_object(
        request[S3_CALLER], target.subject, target.key, category, pieces, precondition=precondition, extra=extra
    )
    return web.Response(headers={"ETag": written.etag, **body.checksums})


COPY_CONDITIONS = (
    "x-amz-copy-source-if-match",
    "x-amz-copy-source-if-none-match",
    "x-amz-copy-source-if-modified-since",
    "x-amz-copy-source-if-unmodified-since",
)


async def copy_object(request: web.Request) -> web.StreamResponse:
    """CopyObject: the source read and the destination write each decided for the caller, and a copy between two regions
    decided as a transfer between them (see ``BucketService.copy``); metadata copied (``COPY``) or the request's (``REPLACE``)."""
    source_bucket, _, source_key = unquote(request.headers["x-amz-copy-source"]).lstrip("/").partition("/")
    source_key, _, version = source_key.partition("?")
    if version:
        raise S3Error(501, "NotImplemented", "copying a version of an object is not supported: buckets here are not versioned")
    for name in COPY_CONDITIONS:
        if name in request.headers:
            raise S3Error(501, "NotImplemented", f"`{name}` is not supported on CopyObject")
    directive = request.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error(400, "InvalidArgument", "Unknown metadata directive.")
    source = await target_of(request, await bucket_of(request, source_bucket), source_key)
    target = await object_of(request)
    if (source.subject, source.key) == (target.subject, target.key) and directive == "COPY":
        raise S3Error(
            400,
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, "
            "storage class, website redirect location or encryption attributes.",
        )

    def shown(read: ReadResult) -> tuple[str, dict[str, str]]:
        if directive == "REPLACE":
            metadata = user_metadata(request)
            category = metadata.get("category") or target.bucket.default_category or read.meta.category
            return category, stored(metadata, request.headers.get("Content-Type"))
        metadata, content_type = _shown(read)
        return read.meta.category, stored(metadata, content_type)

    read, copied = await bucket_service(request).copy(
        request[S3_CALLER], (source.subject, source.key), (target.subject, target.key), shown, precondition=await _write_condition(request, target)
    )
    modified = s3_time(read.meta.written_at)
    return xml_response(f'<CopyObjectResult xmlns="{XMLNS}"><LastModified>{modified}</LastModified><ETag>{escape(copied)}</ETag></CopyObjectResult>')


async def delete_object(request: web.Request) -> web.StreamResponse:
    target = await object_of(request)
    with contextlib.suppress(RecordNotFound):  # S3 answers 204 for a key that is not there; decided and ledgered first
        await object_service(request).delete(request[S3_CALLER], target.subject, target.key)
    return web.Response(status=204)


def _delete_keys(body: bytes) -> tuple[list[str], bool]:
    """The keys of a DeleteObjects request, and whether it is quiet."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.") from None

    def named(element: ET.Element, name: str) -> list[ET.Element]:
        return [child for child in element if child.tag in (name, f"{{{XMLNS}}}{name}")]

    keys = [(named(obj, "Key") or [ET.Element("Key")])[0].text or "" for obj in named(root, "Object")]
    quiet = any((q.text or "").strip().lower() == "true" for q in named(root, "Quiet"))
    if not keys or len(keys) > MAX_DELETE_KEYS or any(not key for key in keys):
        raise S3Error(400, "MalformedXML", f"a DeleteObjects request names 1 to {MAX_DELETE_KEYS} keys, each not empty")
    return keys, quiet


async def delete_objects(request: web.Request) -> web.StreamResponse:
    """DeleteObjects: each key is a DeleteObject of its own (decided and ledgered); one key's error is that key's, in the answer."""
    bucket = await bucket_of(request)
    keys, quiet = _delete_keys(await whole_body(request, MAX_DELETE_BODY))
    objects = object_service(request)
    answers: list[str] = []
    for key in keys:
        try:
            target = await target_of(request, bucket, key)
            with contextlib.suppress(RecordNotFound):
                await objects.delete(request[S3_CALLER], target.subject, target.key)
        except (S3Error, GatewayError) as failed:
            error = failed if isinstance(failed, S3Error) else from_gateway(failed)
            answers.append(f"<Error><Key>{escape(key)}</Key><Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message></Error>")
            continue
        if not quiet:
            answers.append(f"<Deleted><Key>{escape(key)}</Key></Deleted>")
    return xml_response(f'<DeleteResult xmlns="{XMLNS}">{"".join(answers)}</DeleteResult>')
