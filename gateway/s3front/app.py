"""The S3 front's aiohttp app: path-style S3 requests, verified with SigV4, answered through the records service.

A bucket routes each object by subject: the key ``SUBJECT/KEY`` is record
``KEY`` of subject ``SUBJECT``, stored in that subject's home region and
decided and ledgered exactly as the REST API's record routes. The record's
category is the ``x-amz-meta-category`` header of the PutObject, else the
bucket's default. Errors are S3 XML documents.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from xml.sax.saxutils import escape

from aiohttp import web

from gateway.errors import (
    Conflict,
    Forbidden,
    GatewayError,
    InvalidRequest,
    LedgerError,
    LegalRefusal,
    NotFound,
    PayloadTooLarge,
    PreconditionError,
    StoreError,
    Unauthenticated,
)
from gateway.model import Caller, is_identifier
from gateway.s3front import multipart
from gateway.s3front.chunked import Body
from gateway.s3front.credentials import S3_KEY_FILE, BadAccessKey, identity_of, load_key, secret_for
from gateway.s3front.sigv4 import SigError, Signed, verify
from gateway.services.objects import Manifest, ObjectService
from gateway.services.records import RecordNotFound, who
from gateway.web.drain import DRAIN_KEY, Drain
from gateway.web.state import STATE_KEY, AppState

log = logging.getLogger("gateway.s3front")

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_KEYS = 1000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BUCKETS_KEY = web.AppKey("s3_buckets", dict)
MAIN_STATE_KEY = web.AppKey("s3_main_state", AppState)
S3_SECRET_KEY = web.AppKey("s3_secret_key", bytes)
S3_CALLER = web.RequestKey("s3_caller", Caller)
S3_SIGNED = web.RequestKey("s3_signed", Signed)


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers or {})


def error_response(request: web.Request, error: S3Error) -> web.Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>'
        f"<Resource>{escape(request.path)}</Resource></Error>"
    )
    return web.Response(status=error.status, body=None if request.method == "HEAD" else body.encode(), content_type="application/xml", headers=error.headers)


def _from_gateway(error: GatewayError) -> S3Error:
    """The S3 error an S3 client understands for a gateway error; a refusal keeps its reason in the message and a header."""
    if error.code in multipart.ERRORS:
        status, code = multipart.ERRORS[error.code]
        return S3Error(status, code, error.message)
    if isinstance(error, LegalRefusal):
        reasons = error.details.get("reasons") or [{"code": error.code}]
        return S3Error(403, "AccessDenied", error.message, {"X-Residency-Decision": str(reasons[0]["code"]), "X-Residency-Refusal": error.code})
    if error.code == "legal-hold":
        return S3Error(403, "AccessDenied", f"Object is under legal hold: {error.message}", {"X-Residency-Refusal": error.code})
    if isinstance(error, NotFound):
        return S3Error(404, "NoSuchKey", error.message)
    if isinstance(error, PayloadTooLarge):
        return S3Error(400, "EntityTooLarge", error.message)
    if isinstance(error, InvalidRequest):
        return S3Error(400, "InvalidArgument", error.message)
    if isinstance(error, PreconditionError):
        return S3Error(412, "PreconditionFailed", error.message)
    if isinstance(error, Conflict):
        return S3Error(409, "OperationAborted", error.message)
    if isinstance(error, (Forbidden, Unauthenticated)):
        return S3Error(403, "AccessDenied", error.message)
    if isinstance(error, (StoreError, LedgerError)):
        return S3Error(503, "ServiceUnavailable", error.message)
    return S3Error(500, "InternalError", "the gateway failed; see its log")


def _state(request: web.Request) -> AppState:
    return request.app[MAIN_STATE_KEY]


@web.middleware
async def s3_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except S3Error as error:
        return error_response(request, error)
    except SigError as error:  # a body that fails its checks (gateway.s3front.chunked)
        if error.code == "SignatureDoesNotMatch":
            await _state(request).rt.audit.record(
                "s3.signature-refused", {"by": who(request[S3_CALLER]), "method": request.method, "path": request.path, "code": error.code, "what": "chunk"}
            )
        return error_response(request, S3Error(error.status, error.code, error.message))
    except GatewayError as error:
        return error_response(request, _from_gateway(error))


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Verify the request's SigV4 signature and bind the service it names; a signature that fails is ledgered."""
    rt = _state(request).rt
    key = request.app[S3_SECRET_KEY]
    now = rt.settings.clock()
    found: dict[str, Caller] = {}

    def secret_of(access_key: str) -> str:
        try:
            identity = identity_of(key, access_key)
        except BadAccessKey:
            raise SigError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.") from None
        if identity.expires < now.timestamp():
            raise SigError("ExpiredToken", "The provided token has expired.", 400)
        if identity.caller.region not in rt.config.regions:
            raise SigError("InvalidAccessKeyId", f"the credentials name region `{identity.caller.region}`, which this gateway does not know")
        found["caller"] = identity.caller
        return secret_for(key, access_key)

    headers = {name.lower(): request.headers.getall(name) for name in request.headers}
    query = [(k, v) for k, v in request.query.items()]
    try:
        signed = verify(request.method, request.raw_path.partition("?")[0], query, headers, secret_of=secret_of, now=now)
    except SigError as error:
        if error.code == "SignatureDoesNotMatch":
            caller = found.get("caller")
            await rt.audit.record(
                "s3.signature-refused",
                {"by": None if caller is None else who(caller), "method": request.method, "path": request.path, "code": error.code},
            )
        raise S3Error(error.status, error.code, error.message) from None
    request[S3_CALLER] = found["caller"]
    request[S3_SIGNED] = signed
    return await handler(request)


def _bucket(request: web.Request) -> str:
    bucket = request.match_info["bucket"]
    if bucket not in request.app[BUCKETS_KEY]:
        raise S3Error(404, "NoSuchBucket", f"The specified bucket `{bucket}` does not exist")
    return bucket


def _object(request: web.Request) -> tuple[str, str]:
    """(subject, record key) of ``SUBJECT/KEY``; InvalidArgument if the key cannot be a record's."""
    _bucket(request)
    subject, _, key = request.match_info["key"].partition("/")
    if not is_identifier(subject) or not is_identifier(key):
        raise S3Error(
            400, "InvalidArgument", "an object key must be SUBJECT/KEY: a registered subject id, then a record key of letters, digits, `.`, `_` or `-`"
        )
    return subject, key


def _headers(request: web.Request) -> dict[str, str]:
    """The request's headers by lower-case name (the first value of each)."""
    return {name.lower(): value for name, value in reversed(request.headers.items())}


def _etag(body: bytes) -> str:
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


def _xml(body: str) -> web.Response:
    return web.Response(body=f'<?xml version="1.0" encoding="UTF-8"?>\n{body}'.encode(), content_type="application/xml")


routes = web.RouteTableDef()


@routes.get("/", allow_head=False)
async def list_buckets(request: web.Request) -> web.StreamResponse:
    caller = request[S3_CALLER]
    items = "".join(f"<Bucket><Name>{escape(b)}</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket>" for b in sorted(request.app[BUCKETS_KEY]))
    owner = f"<Owner><ID>{escape(caller.principal)}</ID></Owner>"
    return _xml(f'<ListAllMyBucketsResult xmlns="{XMLNS}">{owner}<Buckets>{items}</Buckets></ListAllMyBucketsResult>')


@routes.route("HEAD", "/{bucket}")
async def head_bucket(request: web.Request) -> web.StreamResponse:
    _bucket(request)
    return web.Response()


@routes.get("/{bucket}", allow_head=False)
async def list_objects(request: web.Request) -> web.StreamResponse:
    """ListObjectsV2 of one subject: the prefix must start with ``SUBJECT/``."""
    bucket = _bucket(request)
    if "uploads" in request.query:
        prefix = request.query.get("prefix", "")
        subject, slash, _ = prefix.partition("/")
        if not slash or not is_identifier(subject):
            raise S3Error(400, "InvalidArgument", "list one subject's uploads at a time: the prefix must start with SUBJECT/")
        return await multipart.list_uploads(_objects(request), request[S3_CALLER], bucket, subject, prefix)
    if request.query.get("list-type") != "2":
        raise S3Error(501, "NotImplemented", "only ListObjectsV2 (list-type=2) is supported")
    prefix = request.query.get("prefix", "")
    subject, slash, key_prefix = prefix.partition("/")
    if not slash or not is_identifier(subject):
        raise S3Error(400, "InvalidArgument", "list one subject at a time: the prefix must start with SUBJECT/")
    try:
        max_keys = min(int(request.query.get("max-keys", MAX_KEYS)), MAX_KEYS)
    except ValueError:
        raise S3Error(400, "InvalidArgument", "max-keys must be a whole number") from None
    # the continuation token is the last record key of the page before; start-after is an object key, SUBJECT/KEY
    after = request.query.get("continuation-token") or request.query.get("start-after", "").partition("/")[2] or None
    records = _state(request).rt.records
    contents: list[str] = []
    next_after: str | None = None
    while len(contents) < max_keys:
        listing = await records.list_records(request[S3_CALLER], subject, after=after, limit=max_keys - len(contents))
        for meta in listing.records:
            if meta.key.startswith(key_prefix):
                contents.append(
                    f"<Contents><Key>{escape(subject + '/' + meta.key)}</Key><LastModified>{escape(meta.written_at)}</LastModified>"
                    f"<Size>{meta.size if meta.object_size is None else meta.object_size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
                )
        after = next_after = listing.next_after
        if next_after is None:
            break
    truncated = next_after is not None
    token = f"<NextContinuationToken>{escape(next_after)}</NextContinuationToken>" if next_after is not None else ""
    return _xml(
        f'<ListBucketResult xmlns="{XMLNS}"><Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(contents)}</KeyCount>'
        f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{token}{''.join(contents)}</ListBucketResult>"
    )


async def _read(request: web.Request) -> web.StreamResponse:
    subject, key = _object(request)
    if "uploadId" in request.query and request.method == "GET":
        return await multipart.list_parts(_objects(request), request[S3_CALLER], request.match_info["bucket"], subject, key, request.query["uploadId"])
    result, manifest = await _objects(request).read(request[S3_CALLER], subject, key)
    headers = {
        "ETag": _etag(result.body) if manifest is None else manifest.etag,
        "x-amz-meta-category": result.meta.category,
        "X-Residency-Region": result.meta.region,
        "X-Residency-Decision": result.decision.reasons[0].code,
        "X-Audit-Seq": str(result.ledger_seq),
    }
    if manifest is not None:
        return await _stream(request, subject, key, manifest, headers)
    if request.method == "HEAD":
        return web.Response(headers={**headers, "Content-Length": str(len(result.body))}, content_type="application/octet-stream")
    return web.Response(body=result.body, headers=headers, content_type="application/octet-stream")


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single ``bytes=`` range; None for no range or one S3 ignores; InvalidRange past the end."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, dash, last = header[len("bytes=") :].strip().partition("-")
    try:
        if not first:
            start, end = max(size - int(last), 0), size
        else:
            start, end = int(first), (size if not last else min(int(last) + 1, size))
    except ValueError:
        return None
    if not dash or start >= size or start >= end:
        raise S3Error(416, "InvalidRange", "The requested range is not satisfiable", {"Content-Range": f"bytes */{size}"})
    return start, end


async def _stream(request: web.Request, subject: str, key: str, manifest: Manifest, headers: dict[str, str]) -> web.StreamResponse:
    """A chunked object, sent a verified chunk at a time (``Range`` honoured); a chunk that fails its checks before the
    first byte is an error response, after it ends the connection: no unverified byte is ever sent."""
    span = _range(request.headers.get("Range"), manifest.size)
    start, end = span or (0, manifest.size)
    headers = {**headers, "Accept-Ranges": "bytes"}
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{manifest.size}"
    response = web.StreamResponse(status=206 if span else 200, headers=headers)
    response.content_type = "application/octet-stream"
    response.content_length = end - start
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    pieces = _objects(request).chunks(request[S3_CALLER], subject, key, manifest, start, end)
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


routes.get("/{bucket}/{key:.+}", allow_head=False)(_read)
routes.route("HEAD", "/{bucket}/{key:.+}")(_read)


@routes.put("/{bucket}/{key:.+}")
async def put_object(request: web.Request) -> web.StreamResponse:
    subject, key = _object(request)
    meta = {name.lower()[len("x-amz-meta-") :]: value for name, value in request.headers.items() if name.lower().startswith("x-amz-meta-")}
    if set(meta) - {"category"}:
        raise S3Error(501, "NotImplemented", "user metadata other than x-amz-meta-category is not stored yet")
    if "x-amz-copy-source" in request.headers:
        raise S3Error(501, "NotImplemented", "CopyObject is not supported yet")
    body = Body(request.content, _headers(request), request[S3_SIGNED])
    if "partNumber" in request.query or "uploadId" in request.query:
        if "uploadId" not in request.query:
            raise S3Error(400, "InvalidArgument", "an UploadPart names its uploadId")
        return await multipart.upload_part(_objects(request), request[S3_CALLER], subject, key, request.query, body.pieces(), lambda: body.checksums)
    category = _category(request, meta)
    written = await _objects(request).put_object(request[S3_CALLER], subject, key, category, body.pieces())
    return web.Response(headers={"ETag": written.etag, **body.checksums})


def _category(request: web.Request, meta: Mapping[str, str]) -> str:
    category = meta.get("category") or request.app[BUCKETS_KEY][request.match_info["bucket"]]
    if not category:
        raise S3Error(400, "InvalidArgument", "send the record's category as x-amz-meta-category (this bucket has no default)")
    return str(category)


@routes.post("/{bucket}/{key:.+}")
async def post_object(request: web.Request) -> web.StreamResponse:
    """CreateMultipartUpload (``?uploads``) and CompleteMultipartUpload (``?uploadId``)."""
    subject, key = _object(request)
    bucket = request.match_info["bucket"]
    if "uploads" in request.query:
        meta = {name.lower()[len("x-amz-meta-") :]: value for name, value in request.headers.items() if name.lower().startswith("x-amz-meta-")}
        if set(meta) - {"category"}:
            raise S3Error(501, "NotImplemented", "user metadata other than x-amz-meta-category is not stored yet")
        return await multipart.create(_objects(request), request[S3_CALLER], bucket, subject, key, _category(request, meta))
    if "uploadId" in request.query:
        # x-amz-checksum-* here is the whole object's checksum, not the part list's: it is not checked
        headers = {name: value for name, value in _headers(request).items() if not name.startswith("x-amz-checksum-")}
        body = Body(request.content, headers, request[S3_SIGNED])
        document = bytearray()
        async for piece in body.pieces():
            document += piece
            if len(document) > multipart.MAX_COMPLETE_BYTES:
                raise S3Error(400, "MalformedXML", "the part list is too large")
        return await multipart.complete(_objects(request), request[S3_CALLER], bucket, subject, key, request.query["uploadId"], bytes(document))
    raise S3Error(501, "NotImplemented", "this POST is not supported")


@routes.delete("/{bucket}/{key:.+}")
async def delete_object(request: web.Request) -> web.StreamResponse:
    subject, key = _object(request)
    if "uploadId" in request.query:
        return await multipart.abort(_objects(request), request[S3_CALLER], subject, key, request.query["uploadId"])
    with contextlib.suppress(RecordNotFound):  # S3 answers 204 for a key that is not there; decided and ledgered first
        await _objects(request).delete(request[S3_CALLER], subject, key)
    return web.Response(status=204)


def _objects(request: web.Request) -> ObjectService:
    return ObjectService(_state(request).rt.records)


def create_s3_app(main: web.Application, buckets: Mapping[str, str], data_dir: Path) -> web.Application:
    """The S3 front over ``main``'s runtime (opened by ``main``); ``buckets`` maps each bucket to its default category ("" for none)."""
    drain = Drain()
    app = web.Application(middlewares=[drain.track, s3_errors, authenticate], client_max_size=64 * 1024 * 1024)
    app[DRAIN_KEY] = drain
    app[BUCKETS_KEY] = dict(buckets)
    app[MAIN_STATE_KEY] = main[STATE_KEY]
    app[S3_SECRET_KEY] = load_key(data_dir / S3_KEY_FILE)
    app.add_routes(routes)
    return app
