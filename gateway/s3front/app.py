"""The S3 front's aiohttp app: S3 requests, verified with SigV4, answered through the records service.

A subject-routed bucket routes each object by subject: the key
``SUBJECT/KEY`` is record ``KEY`` of subject ``SUBJECT``, stored in that
subject's home region and decided and ledgered exactly as the REST API's
record routes. The record's category is the ``x-amz-meta-category`` header of
the PutObject, else the bucket's default. Errors are S3 XML documents.
Requests are path style (``/BUCKET/KEY``), or virtual-host style
(``BUCKET.<virtual_host>/KEY``) where ``[s3] virtual_host`` is configured.

Every request goes through one dispatcher: it names the request's bucket and
key, then the operation from the method, whether a key is named, and the
subresource in the query string (``?delete``, ``?location``...). A query
parameter the operation does not read is a subresource this front does not
implement: 501 ``NotImplemented`` naming it, never a plain object operation.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gateway.config import S3Bucket
from gateway.errors import GatewayError
from gateway.model import Caller
from gateway.s3front import buckets, listing, multipart, objects
from gateway.s3front.credentials import S3_KEY_FILE, BadAccessKey, identity_of, load_key, secret_for
from gateway.s3front.sigv4 import SigError, verify
from gateway.s3front.state import (
    BUCKET_SERVICE_KEY,
    BUCKETS_KEY,
    MAIN_STATE_KEY,
    S3_BUCKET,
    S3_CALLER,
    S3_KEY,
    S3_SECRET_KEY,
    S3_SIGNED,
    VIRTUAL_HOST_KEY,
    state,
)
from gateway.s3front.xml import S3Error, error_response, from_gateway
from gateway.services.buckets import BucketService
from gateway.services.records import who
from gateway.web.drain import DRAIN_KEY, Drain
from gateway.web.state import STATE_KEY

log = logging.getLogger("gateway.s3front")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def s3_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except S3Error as error:
        return error_response(request, error)
    except SigError as error:  # a body that fails its checks (gateway.s3front.chunked)
        if error.code == "SignatureDoesNotMatch":
            await state(request).rt.audit.record(
                "s3.signature-refused", {"by": who(request[S3_CALLER]), "method": request.method, "path": request.path, "code": error.code, "what": "chunk"}
            )
        return error_response(request, S3Error(error.status, error.code, error.message))
    except GatewayError as error:
        return error_response(request, from_gateway(error))


# refusals of a request whose access key id names an identity: ledgered as `s3.signature-refused` (a key id that
# names none is refused and not ledgered: there is no one to name)
LEDGERED_REFUSALS = frozenset({"SignatureDoesNotMatch", "ExpiredToken"})


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Verify the request's SigV4 signature and bind the service it names; a signature that fails is ledgered."""
    rt = state(request).rt
    key = request.app[S3_SECRET_KEY]
    now = rt.settings.clock()
    found: dict[str, Caller] = {}

    def secret_of(access_key: str) -> str:
        try:
            identity = identity_of(key, access_key)
        except BadAccessKey:
            raise SigError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.") from None
        found["caller"] = identity.caller
        if identity.expires < now.timestamp():
            raise SigError("ExpiredToken", "The provided token has expired.", 400)
        if identity.caller.region not in rt.config.regions:
            raise SigError("InvalidAccessKeyId", f"the credentials name region `{identity.caller.region}`, which this gateway does not know")
        return secret_for(key, access_key)

    headers = {name.lower(): request.headers.getall(name) for name in request.headers}
    query = [(k, v) for k, v in request.query.items()]
    try:
        signed = verify(request.method, request.raw_path.partition("?")[0], query, headers, secret_of=secret_of, now=now)
    except SigError as error:
        if error.code in LEDGERED_REFUSALS:
            caller = found.get("caller")
            await rt.audit.record(
                "s3.signature-refused",
                {"by": None if caller is None else who(caller), "method": request.method, "path": request.path, "code": error.code},
            )
        raise S3Error(error.status, error.code, error.message) from None
    request[S3_CALLER] = found["caller"]
    request[S3_SIGNED] = signed
    return await handler(request)


@dataclass(frozen=True)
class Operation:
    handler: Handler
    reads: frozenset[str] = frozenset()  # the query parameters it understands, besides its subresource


LIST_PARAMETERS = frozenset({"list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after", "fetch-owner", "encoding-type", "marker"})
GET_PARAMETERS = frozenset(f"response-{name}" for name in objects.RESPONSE_OVERRIDES)

# (method, what the request names: "service", "bucket" or "object", its subresource or "") -> operation
OPERATIONS: dict[tuple[str, str, str], Operation] = {
    ("GET", "service", ""): Operation(buckets.list_buckets),
    ("HEAD", "bucket", ""): Operation(buckets.head_bucket),
    ("PUT", "bucket", ""): Operation(buckets.create_bucket),
    ("DELETE", "bucket", ""): Operation(buckets.delete_bucket),
    ("GET", "bucket", "location"): Operation(buckets.get_bucket_location),
    ("GET", "bucket", ""): Operation(listing.list_objects, LIST_PARAMETERS),
    ("GET", "object", ""): Operation(objects.get_object, GET_PARAMETERS),
    ("HEAD", "object", ""): Operation(objects.get_object, GET_PARAMETERS),
    ("PUT", "object", ""): Operation(objects.put_object),
    ("DELETE", "object", ""): Operation(objects.delete_object),
    ("POST", "bucket", "delete"): Operation(objects.delete_objects),
    ("GET", "bucket", "uploads"): Operation(multipart.list_uploads, multipart.LIST_UPLOADS_PARAMETERS),
    ("POST", "object", "uploads"): Operation(multipart.create),
    ("PUT", "object", "uploadId"): Operation(multipart.upload_part, frozenset({"partNumber"})),
    ("POST", "object", "uploadId"): Operation(multipart.complete),
    ("DELETE", "object", "uploadId"): Operation(multipart.abort),
    ("GET", "object", "uploadId"): Operation(multipart.list_parts, multipart.LIST_PARTS_PARAMETERS),
}
# botocore names the operation in `x-id`; presigned URLs carry `X-Amz-*`, or in the older form these three
SIGNATURE_PARAMETERS = frozenset({"x-id", "AWSAccessKeyId", "Signature", "Expires"})


LEVELS = {"service": "of the service", "bucket": "of a bucket", "object": "of an object"}


def _names(request: web.Request) -> tuple[str, str]:
    """(bucket, key) the request names: virtual-host style (``BUCKET.<virtual_host>``, the key is the path), else path style."""
    domain = request.app[VIRTUAL_HOST_KEY]
    host = request.host.rpartition(":")[0] if request.host.rpartition(":")[2].isdigit() else request.host
    if domain and host.lower().endswith("." + domain):
        return host[: -len(domain) - 1].lower(), request.path[1:]
    bucket, _, key = request.path.lstrip("/").partition("/")
    return bucket, key


async def dispatch(request: web.Request) -> web.StreamResponse:
    bucket, key = _names(request)
    request[S3_BUCKET], request[S3_KEY] = bucket, key
    level = "object" if key else "bucket" if bucket else "service"
    parameters = [name for name in request.query if name not in SIGNATURE_PARAMETERS and not name.lower().startswith("x-amz-")]
    subresources = [name for name in parameters if (request.method, level, name) in OPERATIONS]
    subresource = subresources[0] if subresources else ""
    operation = OPERATIONS.get((request.method, level, subresource))
    unknown = [name for name in parameters if name != subresource and (operation is None or name not in operation.reads)]
    if unknown:
        raise S3Error(501, "NotImplemented", f"the `{unknown[0]}` subresource is not implemented here", {"X-S3-Unsupported": unknown[0]})
    if operation is None:
        raise S3Error(501, "NotImplemented", f"{request.method} {LEVELS[level]} is not implemented here")
    return await operation.handler(request)


def create_s3_app(main: web.Application, buckets: Mapping[str, S3Bucket], data_dir: Path, *, virtual_host: str | None = None) -> web.Application:
    """The S3 front over ``main``'s runtime (opened by ``main``), serving the configured ``buckets``; with ``virtual_host``,
    a request to host ``BUCKET.<virtual_host>`` names its bucket in the host (virtual-host style)."""
    drain = Drain()
    app = web.Application(middlewares=[drain.track, s3_errors, authenticate], client_max_size=64 * 1024 * 1024)
    app[DRAIN_KEY] = drain
    app[BUCKETS_KEY] = dict(buckets)
    app[VIRTUAL_HOST_KEY] = virtual_host or ""
    app[MAIN_STATE_KEY] = main[STATE_KEY]
    app[S3_SECRET_KEY] = load_key(data_dir / S3_KEY_FILE)
    app.router.add_route("*", "/{path:.*}", dispatch)
    app.on_startup.append(_open_buckets)
    return app


async def _open_buckets(app: web.Application) -> None:
    """The bucket service, over the runtime the main app opened at its start (before this app's)."""
    rt = app[MAIN_STATE_KEY].rt
    records = rt.records
    app[BUCKET_SERVICE_KEY] = BucketService(
        config=rt.config, records=records, control=records.control, audit=rt.audit, clock=rt.settings.clock, configured=app[BUCKETS_KEY]
    )
