"""ListObjectsV2 of a bucket."""

from __future__ import annotations

from xml.sax.saxutils import escape

from aiohttp import web

from gateway.model import is_identifier
from gateway.s3front.buckets import bucket_of
from gateway.s3front.state import S3_CALLER, state
from gateway.s3front.xml import XMLNS, S3Error, xml_response

MAX_KEYS = 1000


async def list_objects(request: web.Request) -> web.StreamResponse:
    """ListObjectsV2 of one subject: the prefix must start with ``SUBJECT/``."""
    bucket = bucket_of(request)
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
    records = state(request).rt.records
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
    return xml_response(
        f'<ListBucketResult xmlns="{XMLNS}"><Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(contents)}</KeyCount>'
        f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{token}{''.join(contents)}</ListBucketResult>"
    )
