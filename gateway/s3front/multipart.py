"""Multipart uploads over S3: the requests' XML in and out, over ``gateway.services.objects``.

CreateMultipartUpload (``POST ?uploads``), UploadPart (``PUT ?partNumber&uploadId``),
CompleteMultipartUpload (``POST ?uploadId``), AbortMultipartUpload (``DELETE ?uploadId``),
ListParts (``GET ?uploadId``) and ListMultipartUploads (``GET /BUCKET?uploads``; in a
subject-routed bucket, one subject's at a time: ``prefix=SUBJECT/``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import quote
from xml.sax.saxutils import escape

from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.model import is_identifier
from gateway.s3front.bodies import limited, request_body, whole_body
from gateway.s3front.buckets import bucket_of, bucket_service
from gateway.s3front.objects import MAX_PUT_BYTES, category_of, object_of, object_service, stored, user_metadata
from gateway.s3front.state import S3_CALLER
from gateway.s3front.xml import XMLNS, S3Error, xml_response
from gateway.services.buckets import s3_key_of

MAX_COMPLETE_BYTES = 2 * 1024 * 1024  # a part list of 10,000 parts with checksums fits
MAX_LISTED = 1000
LIST_PARTS_PARAMETERS = frozenset({"max-parts", "part-number-marker"})
LIST_UPLOADS_PARAMETERS = frozenset({"prefix", "max-uploads", "key-marker", "upload-id-marker", "encoding-type"})


def _text(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def _count(request: web.Request, name: str, default: int) -> int:
    """A whole-number query parameter (``max-parts``, ``part-number-marker``...), at most ``MAX_LISTED`` for a maximum."""
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise S3Error(400, "InvalidArgument", f"{name} must be a whole number") from None
    if value < 0:
        raise S3Error(400, "InvalidArgument", f"{name} must not be negative")
    return value


async def create(request: web.Request) -> web.StreamResponse:
    """Begin an upload, decided as a write; the object's user metadata and content type are kept for its completion."""
    target = await object_of(request)
    metadata = user_metadata(request)
    extra = stored(metadata, request.headers.get("Content-Type"))
    upload = await object_service(request).create_upload(request[S3_CALLER], target.subject, target.key, category_of(metadata, target), extra)
    fields = _text("Bucket", target.bucket.name) + _text("Key", target.s3_key) + _text("UploadId", upload)
    return xml_response(f'<InitiateMultipartUploadResult xmlns="{XMLNS}">{fields}</InitiateMultipartUploadResult>')


def part_number(request: web.Request) -> int:
    try:
        return int(request.query.get("partNumber", ""))
    except ValueError:
        raise InvalidRequest("partNumber must be a whole number from 1 to 10000", code="invalid-part-number") from None


async def upload_part(request: web.Request) -> web.StreamResponse:
    target = await object_of(request)
    body = request_body(request)
    part = await object_service(request).upload_part(
        request[S3_CALLER],
        target.subject,
        target.key,
        request.query["uploadId"],
        part_number(request),
        limited(body.pieces(), MAX_PUT_BYTES),
        lambda: body.checksums,
    )
    return web.Response(headers={"ETag": f'"{part.md5}"', **part.checksums})


def parse_part_list(body: bytes) -> list[tuple[int, str]]:
    """(part number, ETag) of each ``Part`` of a CompleteMultipartUpload document, as listed."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise InvalidRequest("The XML you provided was not well-formed or did not validate against our published schema.", code="malformed-xml") from None
    listed = []
    for part in root:
        if part.tag.rpartition("}")[2] != "Part":
            continue
        fields = {child.tag.rpartition("}")[2]: (child.text or "") for child in part}
        try:
            listed.append((int(fields["PartNumber"]), fields["ETag"].strip()))
        except (KeyError, ValueError):
            raise InvalidRequest("each Part needs a PartNumber and an ETag", code="malformed-xml") from None
    return listed


async def complete(request: web.Request) -> web.StreamResponse:
    target = await object_of(request)
    # x-amz-checksum-* here is the whole object's checksum, not the part list's: it is not checked
    document = await whole_body(request, MAX_COMPLETE_BYTES, skip_checksums=True)
    written = await object_service(request).complete(request[S3_CALLER], target.subject, target.key, request.query["uploadId"], parse_part_list(document))
    name = target.bucket.name
    fields = _text("Location", f"/{name}/{target.s3_key}") + _text("Bucket", name) + _text("Key", target.s3_key) + _text("ETag", written.etag)
    return xml_response(f'<CompleteMultipartUploadResult xmlns="{XMLNS}">{fields}</CompleteMultipartUploadResult>')


async def abort(request: web.Request) -> web.StreamResponse:
    target = await object_of(request)
    await object_service(request).abort(request[S3_CALLER], target.subject, target.key, request.query["uploadId"])
    return web.Response(status=204)


async def list_parts(request: web.Request) -> web.StreamResponse:
    """ListParts: the parts after ``part-number-marker``, at most ``max-parts`` of them (1,000)."""
    target = await object_of(request)
    upload, parts = await object_service(request).list_parts(request[S3_CALLER], target.subject, target.key, request.query["uploadId"])
    marker, most = _count(request, "part-number-marker", 0), min(_count(request, "max-parts", MAX_LISTED), MAX_LISTED)
    after = [p for p in parts if p.number > marker]
    page, truncated = after[:most], len(after) > most
    items = "".join(
        "<Part>" + _text("PartNumber", p.number) + _text("LastModified", p.at) + _text("ETag", f'"{p.md5}"') + _text("Size", p.size) + "</Part>" for p in page
    )
    head = _text("Bucket", target.bucket.name) + _text("Key", target.s3_key) + _text("UploadId", upload.id)
    head += _text("PartNumberMarker", marker) + _text("MaxParts", most) + _text("IsTruncated", "true" if truncated else "false")
    if truncated:
        head += _text("NextPartNumberMarker", page[-1].number)
    return xml_response(f'<ListPartsResult xmlns="{XMLNS}">{head}{_text("StorageClass", "STANDARD")}{items}</ListPartsResult>')


async def list_uploads(request: web.Request) -> web.StreamResponse:
    """ListMultipartUploads: the uploads in progress whose key starts with ``prefix``, by key then start, after
    ``key-marker`` (and ``upload-id-marker``), at most ``max-uploads`` (1,000). Listing is decided as a read."""
    bucket = await bucket_of(request)
    query = request.query
    prefix = query.get("prefix", "")
    caller = request[S3_CALLER]
    if bucket.home_region is not None:
        subject = await bucket_service(request).holder(caller, bucket)

        def s3_key(key: str) -> str | None:
            return s3_key_of(key)
    else:
        subject, slash, _ = prefix.partition("/")
        if not slash or not is_identifier(subject):
            raise S3Error(400, "InvalidArgument", "list one subject's uploads at a time: the prefix must start with SUBJECT/")

        def s3_key(key: str) -> str | None:
            return f"{subject}/{key}"

    found = [(key, u) for u in await object_service(request).list_uploads(caller, subject) if (key := s3_key(u.key)) is not None and key.startswith(prefix)]
    found.sort(key=lambda item: (item[0], item[1].initiated, item[1].id))
    key_marker, id_marker = query.get("key-marker", ""), query.get("upload-id-marker", "")
    if key_marker:
        at = [i for i, (key, u) in enumerate(found) if key == key_marker and u.id == id_marker]
        found = found[at[0] + 1 :] if at else [item for item in found if item[0] > key_marker]
    most = min(_count(request, "max-uploads", MAX_LISTED), MAX_LISTED)
    page, truncated = found[:most], len(found) > most
    encoded = query.get("encoding-type") == "url"

    def key_text(key: str) -> str:
        return _text("Key", quote(key, safe="/") if encoded else key)

    items = "".join(
        "<Upload>" + key_text(key) + _text("UploadId", u.id) + _text("Initiated", u.initiated) + _text("StorageClass", "STANDARD") + "</Upload>"
        for key, u in page
    )
    head = _text("Bucket", bucket.name) + _text("Prefix", prefix) + _text("KeyMarker", key_marker) + _text("UploadIdMarker", id_marker)
    head += _text("MaxUploads", most) + _text("IsTruncated", "true" if truncated else "false")
    if truncated:
        head += _text("NextKeyMarker", page[-1][0]) + _text("NextUploadIdMarker", page[-1][1].id)
    if encoded:
        head += _text("EncodingType", "url")
    return xml_response(f'<ListMultipartUploadsResult xmlns="{XMLNS}">{head}{items}</ListMultipartUploadsResult>')
