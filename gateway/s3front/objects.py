"""Object operations: GetObject, HeadObject, PutObject, DeleteObject."""

from __future__ import annotations

import base64
import contextlib
import hashlib

from aiohttp import web

from gateway.s3front.buckets import Target, bucket_of, target_of
from gateway.s3front.sigv4 import UNSIGNED
from gateway.s3front.state import S3_CALLER, S3_KEY, state
from gateway.s3front.xml import S3Error
from gateway.services.records import RecordNotFound
from gateway.web.bodies import read_body


async def object_of(request: web.Request) -> Target:
    """The record the request's bucket and key name."""
    return await target_of(request, await bucket_of(request), request[S3_KEY])


def etag(body: bytes) -> str:
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


async def get_object(request: web.Request) -> web.StreamResponse:
    """GetObject and HeadObject."""
    target = await object_of(request)
    result = await state(request).rt.records.get_record(request[S3_CALLER], target.subject, target.key)
    headers = {
        "ETag": etag(result.body),
        "x-amz-meta-category": result.meta.category,
        "X-Residency-Region": result.meta.region,
        "X-Residency-Decision": result.decision.reasons[0].code,
        "X-Audit-Seq": str(result.ledger_seq),
    }
    if request.method == "HEAD":
        return web.Response(headers={**headers, "Content-Length": str(len(result.body))}, content_type="application/octet-stream")
    return web.Response(body=result.body, headers=headers, content_type="application/octet-stream")


async def put_object(request: web.Request) -> web.StreamResponse:
    target = await object_of(request)
    rt = state(request).rt
    meta = {name.lower()[len("x-amz-meta-") :]: value for name, value in request.headers.items() if name.lower().startswith("x-amz-meta-")}
    if set(meta) - {"category"}:
        raise S3Error(501, "NotImplemented", "user metadata other than x-amz-meta-category is not stored yet")
    if "x-amz-copy-source" in request.headers:
        raise S3Error(501, "NotImplemented", "CopyObject is not supported yet")
    category = meta.get("category") or target.bucket.default_category
    if not category:
        raise S3Error(400, "InvalidArgument", "send the record's category as x-amz-meta-category (this bucket has no default)")
    body = await read_body(request, rt.config.limits.max_record_bytes, what="object")
    payload = request["s3_payload"]
    if payload != UNSIGNED and payload != hashlib.sha256(body).hexdigest():
        raise S3Error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
    md5 = request.headers.get("Content-MD5")
    if md5 is not None and md5 != base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode():
        raise S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
    await rt.records.put_record(request[S3_CALLER], target.subject, target.key, category, body)
    return web.Response(headers={"ETag": etag(body)})


async def delete_object(request: web.Request) -> web.StreamResponse:
    target = await object_of(request)
    with contextlib.suppress(RecordNotFound):  # S3 answers 204 for a key that is not there; decided and ledgered first
        await state(request).rt.records.delete_record(request[S3_CALLER], target.subject, target.key)
    return web.Response(status=204)
