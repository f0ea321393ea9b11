"""AWS Signature Version 4 as S3 clients sign: the Authorization header form and presigned URLs.

Pure: given the request's method, raw path, query, headers and a way to find
the secret of an access key id, ``verify`` checks the signature, the scope,
the clock skew and the presigned expiry, and returns the access key id.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING_PREFIX = "STREAMING-"
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGNED = 7 * 24 * 3600  # S3's own limit for X-Amz-Expires
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class SigError(Exception):
    """A request S3 would refuse; ``code`` is the S3 error code, ``status`` its HTTP status."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Signed:
    access_key: str
    payload_sha256: str  # the hex SHA-256 the body must have, UNSIGNED-PAYLOAD, or a STREAMING-... form
    # what a chunked body's chunk signatures chain from (see gateway.s3front.chunked); empty for a presigned URL
    signature: str = ""
    signing_key: bytes = b""
    amz_date: str = ""
    scope: str = ""


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


@functools.lru_cache(maxsize=1024)  # a client's key for a day, region and service: four HMACs per request otherwise
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    return _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service), "aws4_request")


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(query: list[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in query))


def canonical_request(
    method: str, raw_path: str, query: list[tuple[str, str]], headers: Mapping[str, list[str]], signed_headers: list[str], payload: str
) -> str:
    lines = [f"{name}:{','.join(' '.join(v.split()) for v in headers.get(name, []))}\n" for name in signed_headers]
    return "\n".join([method, raw_path or "/", canonical_query(query), "".join(lines), ";".join(signed_headers), payload])


def string_to_sign(amz_date: str, scope: str, request: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])


def _parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SigError("AccessDenied", f"`{text}` is not an ISO 8601 basic time such as 20260101T000000Z", 400) from None


def _authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        raise SigError("InvalidRequest", f"only {ALGORITHM} is supported", 400)
    fields = {}
    for part in rest.split(","):
        name, _, val = part.strip().partition("=")
        fields[name] = val
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        raise SigError("AuthorizationHeaderMalformed", "the Authorization header needs Credential, SignedHeaders and Signature", 400)
    return fields


def verify(
    method: str,
    raw_path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, list[str]],
    *,
    secret_of: Callable[[str], str],
    now: datetime,
) -> Signed:
    """Check a request's SigV4 signature; ``headers`` maps lower-case names to their values. Raise ``SigError``."""
    params = dict(query)
    if "AWSAccessKeyId" in params and "Signature" in params:
        return _verify_v2_query(method, raw_path, params, headers, secret_of=secret_of, now=now)
    presigned = "X-Amz-Signature" in params
    if presigned:
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            raise SigError("InvalidRequest", f"only {ALGORITHM} is supported", 400)
        credential, signed_list, signature = params.get("X-Amz-Credential", ""), params.get("X-Amz-SignedHeaders", ""), params["X-Amz-Signature"]
        amz_date = params.get("X-Amz-Date", "")
        payload = UNSIGNED
        query = [(k, v) for k, v in query if k != "X-Amz-Signature"]
    else:
        auth = (headers.get("authorization") or [""])[0]
        if not auth:
            raise SigError("AccessDenied", "the request is not signed; sign it with AWS Signature Version 4")
        fields = _authorization(auth)
        credential, signed_list, signature = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
        amz_date = (headers.get("x-amz-date") or headers.get("date") or [""])[0]
        payload = (headers.get("x-amz-content-sha256") or [""])[0]
        if not payload:
            raise SigError("InvalidRequest", "the header x-amz-content-sha256 is required", 400)
    parts = credential.split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
        raise SigError("AuthorizationHeaderMalformed", "the credential must be ACCESS_KEY/DATE/REGION/s3/aws4_request", 400)
    access_key, date, region, service, _ = parts
    signed_headers = signed_list.split(";")
    if "host" not in signed_headers:
        raise SigError("AccessDenied", "the host header must be signed")
    when = _parse_time(amz_date)
    if date != amz_date[:8]:
        raise SigError("SignatureDoesNotMatch", "the credential date is not the date the request was signed")
    if presigned:
        try:
            expires = int(params.get("X-Amz-Expires", ""))
        except ValueError:
            raise SigError("AuthorizationQueryParametersError", "X-Amz-Expires must be a number of seconds", 400) from None
        if not 0 < expires <= MAX_PRESIGNED:
            raise SigError("AuthorizationQueryParametersError", f"X-Amz-Expires must be 1 to {MAX_PRESIGNED} seconds", 400)
        if now > when + timedelta(seconds=expires):
            raise SigError("AccessDenied", "Request has expired")
        if when > now + MAX_SKEW:
            raise SigError("RequestTimeTooSkewed", "The difference between the request time and the current time is too large.")
    elif abs(now - when) > MAX_SKEW:
        raise SigError("RequestTimeTooSkewed", "The difference between the request time and the current time is too large.")
    secret = secret_of(access_key)  # raises for an unknown key
    request = canonical_request(method, raw_path, query, headers, signed_headers, payload)
    key = signing_key(secret, date, region, service)
    scope = "/".join(parts[1:])
    expected = hmac.new(key, string_to_sign(amz_date, scope, request).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise SigError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        )
    return Signed(access_key, payload, signature, key, amz_date, scope)


def _verify_v2_query(
    method: str, raw_path: str, params: Mapping[str, str], headers: Mapping[str, list[str]], *, secret_of: Callable[[str], str], now: datetime
) -> Signed:
    """A presigned URL in the older query form (``AWSAccessKeyId``, ``Expires``, ``Signature``): what boto3's
    ``generate_presigned_url`` makes unless told ``signature_version="s3v4"``. No sub-resources are accepted."""
    if set(params) - {"AWSAccessKeyId", "Signature", "Expires"}:
        raise SigError("InvalidRequest", "a presigned URL of this form may carry no other query parameters", 400)
    try:
        expires = int(params.get("Expires", ""))
    except ValueError:
        raise SigError("AccessDenied", "Expires must be a Unix time") from None
    if now.timestamp() > expires:
        raise SigError("AccessDenied", "Request has expired")
    amz = sorted((name, ",".join(values)) for name, values in headers.items() if name.startswith("x-amz-"))
    text = "\n".join(
        [method, (headers.get("content-md5") or [""])[0], (headers.get("content-type") or [""])[0], str(expires)]
        + [f"{name}:{value}" for name, value in amz]
        + [raw_path]
    )
    secret = secret_of(params["AWSAccessKeyId"])
    expected = base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(expected, params["Signature"]):
        raise SigError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        )
    return Signed(params["AWSAccessKeyId"], UNSIGNED)
