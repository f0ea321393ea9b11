"""Multipart uploads over S3: the requests' XML in and out, over ``gateway.services.objects``.

CreateMultipartUpload (``POST ?uploads``), UploadPart (``PUT ?partNumber&uploadId``),
CompleteMultipartUpload (``POST ?uploadId``), AbortMultipartUpload (``DELETE ?uploadId``),
ListParts (``GET ?uploadId``) and ListMultipartUploads (``GET /BUCKET?uploads&prefix=SUBJECT/``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Mapping
from xml.sax.saxutils import escape

from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.model import Caller
from gateway.services.objects import ObjectService

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_COMPLETE_BYTES = 2 * 1024 * 1024  # a part list of 10,000 parts with checksums fits

# gateway error code -> (HTTP status, S3 error code), for the errors of multipart uploads
ERRORS = {
    "no-such-upload": (404, "NoSuchUpload"),
    "invalid-part": (400, "InvalidPart"),
    "invalid-part-order": (400, "InvalidPartOrder"),
    "entity-too-small": (400, "EntityTooSmall"),
    "malformed-xml": (400, "MalformedXML"),
    "invalid-part-number": (400, "InvalidArgument"),
}


def _xml(body: str) -> web.Response:
    return web.Response(body=f'<?xml version="1.0" encoding="UTF-8"?>\n{body}'.encode(), content_type="application/xml")


def _text(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


async def create(objects: ObjectService, caller: Caller, bucket: str, subject: str, key: str, category: str) -> web.Response:
    upload = await objects.create_upload(caller, subject, key, category)
    fields = _text("Bucket", bucket) + _text("Key", f"{subject}/{key}") + _text("UploadId", upload)
    return _xml(f'<InitiateMultipartUploadResult xmlns="{XMLNS}">{fields}</InitiateMultipartUploadResult>')


def part_number(query: Mapping[str, str]) -> int:
    try:
        return int(query.get("partNumber", ""))
    except ValueError:
        raise InvalidRequest("partNumber must be a whole number from 1 to 10000", code="invalid-part-number") from None


async def upload_part(
    objects: ObjectService,
    caller: Caller,
    subject: str,
    key: str,
    query: Mapping[str, str],
    pieces: AsyncIterator[bytes],
    checksums: Callable[[], Mapping[str, str]],
) -> web.Response:
    part = await objects.upload_part(caller, subject, key, query["uploadId"], part_number(query), pieces, checksums)
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


async def complete(objects: ObjectService, caller: Caller, bucket: str, subject: str, key: str, upload: str, body: bytes) -> web.Response:
    written = await objects.complete(caller, subject, key, upload, parse_part_list(body))
    fields = _text("Location", f"/{bucket}/{subject}/{key}") + _text("Bucket", bucket) + _text("Key", f"{subject}/{key}") + _text("ETag", written.etag)
    return _xml(f'<CompleteMultipartUploadResult xmlns="{XMLNS}">{fields}</CompleteMultipartUploadResult>')


async def abort(objects: ObjectService, caller: Caller, subject: str, key: str, upload: str) -> web.Response:
    await objects.abort(caller, subject, key, upload)
    return web.Response(status=204)


async def list_parts(objects: ObjectService, caller: Caller, bucket: str, subject: str, key: str, upload: str) -> web.Response:
    state, parts = await objects.list_parts(caller, subject, key, upload)
    items = "".join(
        "<Part>" + _text("PartNumber", p.number) + _text("LastModified", p.at) + _text("ETag", f'"{p.md5}"') + _text("Size", p.size) + "</Part>" for p in parts
    )
    head = _text("Bucket", bucket) + _text("Key", f"{subject}/{key}") + _text("UploadId", state.id) + _text("MaxParts", 10000)
    tail = _text("IsTruncated", "false") + _text("StorageClass", "STANDARD")
    return _xml(f'<ListPartsResult xmlns="{XMLNS}">{head}{tail}{items}</ListPartsResult>')


async def list_uploads(objects: ObjectService, caller: Caller, bucket: str, subject: str, prefix: str) -> web.Response:
    """The subject's uploads in progress whose key starts with ``prefix`` (``SUBJECT/...``)."""
    uploads = [u for u in await objects.list_uploads(caller, subject) if f"{subject}/{u.key}".startswith(prefix)]
    items = "".join(
        "<Upload>"
        + _text("Key", f"{subject}/{u.key}")
        + _text("UploadId", u.id)
        + _text("Initiated", u.initiated)
        + _text("StorageClass", "STANDARD")
        + "</Upload>"
        for u in uploads
    )
    head = _text("Bucket", bucket) + _text("Prefix", prefix) + _text("MaxUploads", 1000) + _text("IsTruncated", "false")
    return _xml(f'<ListMultipartUploadsResult xmlns="{XMLNS}">{head}{items}</ListMultipartUploadsResult>')
