"""The S3 front's aiohttp app: path-style S3 requests, verified with SigV4, answered through the records service.

A bucket routes each object by subject: the key ``SUBJECT/KEY`` is record
``KEY`` of subject ``SUBJECT``, stored in that subject's home region and
decided and ledgered exactly as the REST API's record routes. The record's
category is the ``x-amz-meta-category`` header of the PutObject, else the
bucket's default. Errors are S3 XML documents.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
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
from gateway.s3front.credentials import S3_KEY_FILE, BadAccessKey, identity_of, load_key, secret_for
from gateway.s3front.sigv4 import UNSIGNED, SigError, verify
from gateway.services.records import RecordNotFound, who
from gateway.web.bodies import read_body
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
    if signed.payload_sha256.startswith("STREAMING-"):
        raise S3Error(501, "NotImplemented", f"chunked uploads ({signed.payload_sha256}) are not supported yet; send the body in one piece")
    request[S3_CALLER] = found["caller"]
    request["s3_payload"] = signed.payload_sha256
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


def _etag(body: bytes) -> str:
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


def _http_date(written_at: str) -> str:
    """An RFC 3339 time as the HTTP date S3 clients read ``Last-Modified`` in (the AWS CLI needs it to download)."""
    return format_datetime(datetime.fromisoformat(written_at).astimezone(UTC), usegmt=True)


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
                    f"<Size>{meta.size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
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


async def _read(request: web.Request) -> web.Response:
    subject, key = _object(request)
    result = await _state(request).rt.records.get_record(request[S3_CALLER], subject, key)
    headers = {
        "ETag": _etag(result.body),
        "Last-Modified": _http_date(result.meta.written_at),
        "x-amz-meta-category": result.meta.category,
        "X-Residency-Region": result.meta.region,
        "X-Residency-Decision": result.decision.reasons[0].code,
        "X-Audit-Seq": str(result.ledger_seq),
    }
    if request.method == "HEAD":
        return web.Response(headers={**headers, "Content-Length": str(len(result.body))}, content_type="application/octet-stream")
    return web.Response(body=result.body, headers=headers, content_type="application/octet-stream")


routes.get("/{bucket}/{key:.+}", allow_head=False)(_read)
routes.route("HEAD", "/{bucket}/{key:.+}")(_read)


@routes.put("/{bucket}/{key:.+}")
async def put_object(request: web.Request) -> web.StreamResponse:
    subject, key = _object(request)
    rt = _state(request).rt
    meta = {name.lower()[len("x-amz-meta-") :]: value for name, value in request.headers.items() if name.lower().startswith("x-amz-meta-")}
    if set(meta) - {"category"}:
        raise S3Error(501, "NotImplemented", "user metadata other than x-amz-meta-category is not stored yet")
    if "x-amz-copy-source" in request.headers:
        raise S3Error(501, "NotImplemented", "CopyObject is not supported yet")
    if "partNumber" in request.query or "uploadId" in request.query:
        raise S3Error(501, "NotImplemented", "multipart uploads are not supported yet")
    category = meta.get("category") or request.app[BUCKETS_KEY][request.match_info["bucket"]]
    if not category:
        raise S3Error(400, "InvalidArgument", "send the record's category as x-amz-meta-category (this bucket has no default)")
    body = await read_body(request, rt.config.limits.max_record_bytes, what="object")
    payload = request["s3_payload"]
    if payload != UNSIGNED and payload != hashlib.sha256(body).hexdigest():
        raise S3Error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
    md5 = request.headers.get("Content-MD5")
    if md5 is not None and md5 != base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode():
        raise S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
    await rt.records.put_record(request[S3_CALLER], subject, key, category, body)
    return web.Response(headers={"ETag": _etag(body)})


@routes.delete("/{bucket}/{key:.+}")
async def delete_object(request: web.Request) -> web.StreamResponse:
    subject, key = _object(request)
    with contextlib.suppress(RecordNotFound):  # S3 answers 204 for a key that is not there; decided and ledgered first
        await _state(request).rt.records.delete_record(request[S3_CALLER], subject, key)
    return web.Response(status=204)


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
