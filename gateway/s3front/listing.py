"""ListObjectsV2 and ListObjects (v1): prefix, delimiter (common prefixes), max-keys, continuation, URL encoding.

A home-region bucket lists its holder's records, whose keys sort as the S3
keys they encode (see ``gateway.services.buckets.record_key_of``); a
subject-routed bucket lists one subject at a time (the prefix must begin with
``SUBJECT/``). Each page of records read is a ``list_records`` call: decided
and ledgered (``service.list``) as the REST API's listing.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote
from xml.sax.saxutils import escape

from aiohttp import web

from gateway.model import RecordMeta, is_identifier
from gateway.s3front.buckets import bucket_of, bucket_service
from gateway.s3front.state import S3_CALLER, state
from gateway.s3front.xml import XMLNS, S3Error, s3_time, xml_response
from gateway.services.buckets import Bucket, record_key_of, s3_key_of

MAX_KEYS = 1000
ALPHABET_END = "W"  # sorts after every character of a home-region bucket's record keys (base32hex: 0-9, A-V)


def _before(record_key: str) -> str:
    """A string just below ``record_key``: listing after it starts at ``record_key`` (no record key lies between)."""
    head, last = record_key[:-1], record_key[-1]
    if last == "0":
        return head
    return head + chr(ord(last) - (8 if last == "A" else 1)) + ALPHABET_END


async def _entries(request: web.Request, bucket: Bucket, prefix: str, after: str) -> AsyncIterator[tuple[str, RecordMeta]]:
    """The bucket's objects from the first key after ``after`` (and not below ``prefix``), in key order, a page of records at a time."""
    caller = request[S3_CALLER]
    records = state(request).rt.records
    if bucket.home_region is not None:
        subject = await bucket_service(request).holder(caller, bucket)
        start: str | None = record_key_of(after) if after >= prefix and after else _before(record_key_of(prefix)) if prefix else None

        def s3_key(key: str) -> str | None:
            return s3_key_of(key)
    else:
        subject, slash, _ = prefix.partition("/")
        if not slash or not is_identifier(subject):
            raise S3Error(400, "InvalidArgument", "list one subject at a time: the prefix must start with SUBJECT/")
        own, _, start_key = after.partition("/")
        start = start_key or None if own == subject else None

        def s3_key(key: str) -> str | None:
            return f"{subject}/{key}"

    while True:
        listing = await records.list_records(caller, subject, after=start, limit=MAX_KEYS)
        for meta in listing.records:
            key = s3_key(meta.key)
            if key is not None:
                yield key, meta
        if listing.next_after is None:
            return
        start = listing.next_after


@dataclass
class Page:
    contents: list[tuple[str, RecordMeta]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    last: str = ""  # the last key or common prefix of the page: where the next one starts


async def _page(entries: AsyncIterator[tuple[str, RecordMeta]], *, prefix: str, delimiter: str, after: str, max_keys: int) -> Page:
    page = Page()
    skip = after if delimiter and after.endswith(delimiter) and after.startswith(prefix) else None  # a common prefix ended the last page
    async for key, meta in entries:
        if key <= after or (skip is not None and key.startswith(skip)):
            continue
        if not key.startswith(prefix):
            if key > prefix:
                break
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        common = key[: cut + len(delimiter)] if cut >= 0 else None
        if common is not None and page.prefixes and page.prefixes[-1] == common:
            continue
        if len(page.contents) + len(page.prefixes) >= max_keys:
            page.truncated = True
            break
        if common is not None:
            page.prefixes.append(common)
            page.last = common
        else:
            page.contents.append((key, meta))
            page.last = key
    return page


def _token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def _after_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError):
        raise S3Error(400, "InvalidArgument", "The continuation token provided is incorrect") from None


async def list_objects(request: web.Request) -> web.StreamResponse:
    """ListObjectsV2 (``list-type=2``), else ListObjects (v1)."""
    bucket = await bucket_of(request)
    query = request.query
    v2 = query.get("list-type") == "2"
    if "list-type" in query and not v2:
        raise S3Error(400, "InvalidArgument", "list-type must be 2 (ListObjectsV2), or absent (ListObjects)")
    encoding = query.get("encoding-type")
    if encoding not in (None, "url"):
        raise S3Error(400, "InvalidArgument", "Invalid Encoding Method specified in Request")
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    try:
        max_keys = int(query.get("max-keys", MAX_KEYS))
    except ValueError:
        raise S3Error(400, "InvalidArgument", "max-keys must be a whole number") from None
    if max_keys < 0:
        raise S3Error(400, "InvalidArgument", "max-keys must not be negative")
    max_keys = min(max_keys, MAX_KEYS)
    if v2:
        token = query.get("continuation-token")
        after = _after_token(token) if token is not None else query.get("start-after", "")
    else:
        after = query.get("marker", "")
    page = await _page(_entries(request, bucket, prefix, after), prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys)

    def text(value: str) -> str:
        return escape(quote(value, safe="/") if encoding else value)

    owner = "<Owner><ID>gateway</ID><DisplayName>gateway</DisplayName></Owner>" if not v2 or query.get("fetch-owner") == "true" else ""
    def entry(key: str, meta: RecordMeta) -> str:
        etag = "" if meta.etag is None else f"<ETag>{escape(meta.etag)}</ETag>"  # as its S3 writer stored it; none for an HTTP API write
        size = meta.size if meta.object_size is None else meta.object_size
        return (
            f"<Contents><Key>{text(key)}</Key><LastModified>{s3_time(meta.written_at)}</LastModified>{etag}"
            f"<Size>{size}</Size>{owner}<StorageClass>STANDARD</StorageClass></Contents>"
        )

    contents = "".join(entry(key, meta) for key, meta in page.contents)
    prefixes = "".join(f"<CommonPrefixes><Prefix>{text(p)}</Prefix></CommonPrefixes>" for p in page.prefixes)
    parts = [f"<Name>{escape(bucket.name)}</Name><Prefix>{text(prefix)}</Prefix>"]
    if delimiter:
        parts.append(f"<Delimiter>{text(delimiter)}</Delimiter>")
    parts.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if encoding:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append(f"<IsTruncated>{'true' if page.truncated else 'false'}</IsTruncated>")
    if v2:
        parts.append(f"<KeyCount>{len(page.contents) + len(page.prefixes)}</KeyCount>")
        if "continuation-token" in query:
            parts.append(f"<ContinuationToken>{escape(query['continuation-token'])}</ContinuationToken>")
        if "start-after" in query:
            parts.append(f"<StartAfter>{text(query['start-after'])}</StartAfter>")
        if page.truncated:
            parts.append(f"<NextContinuationToken>{escape(_token(page.last))}</NextContinuationToken>")
    else:
        parts.append(f"<Marker>{text(after)}</Marker>")
        if page.truncated:
            parts.append(f"<NextMarker>{text(page.last)}</NextMarker>")
    return xml_response(f'<ListBucketResult xmlns="{XMLNS}">{"".join(parts)}{contents}{prefixes}</ListBucketResult>')
