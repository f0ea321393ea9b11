"""Bucket operations: ListBuckets, HeadBucket, CreateBucket, DeleteBucket, GetBucketLocation; and where a key's object lives."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

from aiohttp import web

from gateway.model import is_identifier
from gateway.s3front.bodies import whole_body
from gateway.s3front.state import BUCKET_SERVICE_KEY, S3_BUCKET, S3_CALLER
from gateway.s3front.xml import XMLNS, S3Error, s3_time, xml_response
from gateway.services.buckets import MAX_HOME_KEY_BYTES, Bucket, BucketService, record_key_of

MAX_CONFIGURATION_BYTES = 16 * 1024
CONFIGURED_SINCE = "2026-01-01T00:00:00.000Z"  # the CreationDate ListBuckets gives a bucket configured in regions.toml


def bucket_service(request: web.Request) -> BucketService:
    return request.app[BUCKET_SERVICE_KEY]


async def bucket_of(request: web.Request, name: str | None = None) -> Bucket:
    """The request's bucket (or bucket ``name``); NoSuchBucket unless it exists."""
    return await bucket_service(request).get(request[S3_BUCKET] if name is None else name)


@dataclass(frozen=True)
class Target:
    """Where an S3 object lives: the record ``key`` of ``subject``."""

    bucket: Bucket
    s3_key: str
    subject: str
    key: str


async def target_of(request: web.Request, bucket: Bucket, s3_key: str) -> Target:
    """The record an object key of ``bucket`` names: in a home-region bucket, any key (of at most
    ``MAX_HOME_KEY_BYTES``), a record of the bucket's holder; in a subject-routed one, ``SUBJECT/KEY``."""
    if bucket.home_region is not None:
        if len(s3_key.encode()) > MAX_HOME_KEY_BYTES:
            raise S3Error(400, "KeyTooLongError", f"Your key is too long: a bucket with a home region holds keys of at most {MAX_HOME_KEY_BYTES} bytes")
        return Target(bucket, s3_key, await bucket_service(request).holder(request[S3_CALLER], bucket), record_key_of(s3_key))
    subject, _, key = s3_key.partition("/")
    if not is_identifier(subject) or not is_identifier(key):
        raise S3Error(
            400, "InvalidArgument", "an object key must be SUBJECT/KEY: a registered subject id, then a record key of letters, digits, `.`, `_` or `-`"
        )
    return Target(bucket, s3_key, subject, key)


async def list_buckets(request: web.Request) -> web.StreamResponse:
    caller = request[S3_CALLER]
    items = "".join(
        f"<Bucket><Name>{escape(b.name)}</Name><CreationDate>{escape(s3_time(b.created_at) if b.created_at else CONFIGURED_SINCE)}</CreationDate></Bucket>"
        for b in await bucket_service(request).listed(caller)
    )
    owner = f"<Owner><ID>{escape(caller.principal)}</ID></Owner>"
    return xml_response(f'<ListAllMyBucketsResult xmlns="{XMLNS}">{owner}<Buckets>{items}</Buckets></ListAllMyBucketsResult>')


async def head_bucket(request: web.Request) -> web.StreamResponse:
    bucket = await bucket_service(request).looked_up(request[S3_CALLER], request[S3_BUCKET], "head")
    return web.Response(headers={"x-amz-bucket-region": bucket.home_region} if bucket.home_region else {})


async def create_bucket(request: web.Request) -> web.StreamResponse:
    """CreateBucket: home region from the body's ``LocationConstraint``, else the caller's region."""
    body = await whole_body(request, MAX_CONFIGURATION_BYTES)
    region = None
    if body.strip():
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.") from None
        found = root.find(f"{{{XMLNS}}}LocationConstraint")
        if found is None:
            found = root.find("LocationConstraint")
        region = (found.text or "").strip() or None if found is not None else None
    bucket = await bucket_service(request).create(request[S3_CALLER], request[S3_BUCKET], region)
    return web.Response(headers={"Location": f"/{bucket.name}"})


async def delete_bucket(request: web.Request) -> web.StreamResponse:
    await bucket_service(request).delete(request[S3_CALLER], request[S3_BUCKET])
    return web.Response(status=204)


async def get_bucket_location(request: web.Request) -> web.StreamResponse:
    """The bucket's home region; empty for a subject-routed bucket, whose objects live in their subjects' regions."""
    bucket = await bucket_service(request).looked_up(request[S3_CALLER], request[S3_BUCKET], "location")
    return xml_response(f'<LocationConstraint xmlns="{XMLNS}">{escape(bucket.home_region or "")}</LocationConstraint>')
