"""S3's XML: error documents, the errors an S3 client understands for the gateway's own, and response bodies."""

from __future__ import annotations

from collections.abc import Mapping
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
from gateway.services.buckets import BucketExists, BucketNotEmpty, BucketNotFound, UnknownLocation

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"

# gateway error code -> (HTTP status, S3 error code): multipart uploads' errors (gateway.services.objects)
MULTIPART_ERRORS = {
    "no-such-upload": (404, "NoSuchUpload"),
    "invalid-part": (400, "InvalidPart"),
    "invalid-part-order": (400, "InvalidPartOrder"),
    "entity-too-small": (400, "EntityTooSmall"),
    "malformed-xml": (400, "MalformedXML"),
    "invalid-part-number": (400, "InvalidArgument"),
}


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


def from_gateway(error: GatewayError) -> S3Error:
    """The S3 error an S3 client understands for a gateway error; a refusal keeps its reason in the message and a header."""
    if error.code in MULTIPART_ERRORS:
        status, code = MULTIPART_ERRORS[error.code]
        return S3Error(status, code, error.message)
    if isinstance(error, LegalRefusal):
        reasons = error.details.get("reasons") or [{"code": error.code}]
        return S3Error(403, "AccessDenied", error.message, {"X-Residency-Decision": str(reasons[0]["code"]), "X-Residency-Refusal": error.code})
    if error.code == "legal-hold":  # S3's own words for an object under a legal hold (Object Lock)
        return S3Error(403, "AccessDenied", "Object is WORM protected and cannot be overwritten", {"X-Residency-Refusal": error.code})
    if error.code == "invalid-metadata":
        return S3Error(400, "MetadataTooLarge", f"the metadata cannot be stored: {error.message}")
    if isinstance(error, BucketNotFound):
        return S3Error(404, "NoSuchBucket", error.message)
    if isinstance(error, BucketExists):
        return S3Error(409, "BucketAlreadyOwnedByYou", error.message)
    if isinstance(error, BucketNotEmpty):
        return S3Error(409, "BucketNotEmpty", error.message)
    if isinstance(error, UnknownLocation):
        return S3Error(400, "InvalidLocationConstraint", error.message)
    if error.code == "invalid-bucket-name":
        return S3Error(400, "InvalidBucketName", error.message)
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


def xml_response(body: str, *, status: int = 200) -> web.Response:
    return web.Response(status=status, body=f'<?xml version="1.0" encoding="UTF-8"?>\n{body}'.encode(), content_type="application/xml")


def s3_time(moment: str) -> str:
    """An ISO time as S3 writes it in XML: whole seconds, then ``.000Z``."""
    return moment[:19] + ".000Z"
