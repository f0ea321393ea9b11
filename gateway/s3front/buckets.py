"""Bucket operations: ListBuckets, HeadBucket."""

from __future__ import annotations

from xml.sax.saxutils import escape

from aiohttp import web

from gateway.s3front.state import BUCKETS_KEY, S3_BUCKET, S3_CALLER
from gateway.s3front.xml import XMLNS, S3Error, xml_response


def bucket_of(request: web.Request) -> str:
    """The request's bucket; NoSuchBucket unless it exists."""
    bucket = request[S3_BUCKET]
    if bucket not in request.app[BUCKETS_KEY]:
        raise S3Error(404, "NoSuchBucket", f"The specified bucket `{bucket}` does not exist")
    return bucket


async def list_buckets(request: web.Request) -> web.StreamResponse:
    caller = request[S3_CALLER]
    items = "".join(f"<Bucket><Name>{escape(b)}</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket>" for b in sorted(request.app[BUCKETS_KEY]))
    owner = f"<Owner><ID>{escape(caller.principal)}</ID></Owner>"
    return xml_response(f'<ListAllMyBucketsResult xmlns="{XMLNS}">{owner}<Buckets>{items}</Buckets></ListAllMyBucketsResult>')


async def head_bucket(request: web.Request) -> web.StreamResponse:
    bucket_of(request)
    return web.Response()
