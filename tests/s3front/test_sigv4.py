"""SigV4 verification against requests signed by botocore's own signers, at chosen verification times."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.auth import HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from gateway.model import Caller
from gateway.s3front.credentials import BadAccessKey, access_key_id, identity_of, secret_for
from gateway.s3front.sigv4 import SigError, Signed, verify

KEY = bytes(range(32))
CALLER = Caller("billing", "service", service="billing", region="us-east-1", purpose="billing")
ACCESS = access_key_id(KEY, CALLER, expires=4_000_000_000)
SECRET = secret_for(KEY, ACCESS)
URL = "http://127.0.0.1:9000/records/alice/profile"


def _secret_of(access_key: str) -> str:
    identity_of(KEY, access_key)
    return secret_for(KEY, access_key)


def signed(method: str = "GET", body: bytes = b"", *, secret: str = SECRET, unsigned: bool = False) -> AWSRequest:
    request = AWSRequest(method=method, url=URL, data=body)
    request.context["client_config"] = Config(s3={"payload_signing_enabled": not unsigned})
    S3SigV4Auth(Credentials(ACCESS, secret), "s3", "us-east-1").add_auth(request)
    return request


def presigned(expires: int) -> AWSRequest:
    request = AWSRequest(method="GET", url=URL)
    S3SigV4QueryAuth(Credentials(ACCESS, SECRET), "s3", "us-east-1", expires=expires).add_auth(request)
    return request


def presigned_v2(expires: int) -> AWSRequest:
    """The form boto3's ``generate_presigned_url`` makes by default for S3."""
    request = AWSRequest(method="GET", url=URL)
    HmacV1QueryAuth(Credentials(ACCESS, SECRET), expires=expires).add_auth(request)
    return request


def check(request: AWSRequest, *, later: timedelta = timedelta(0)) -> Signed:
    """Verify ``request`` as the front would, ``later`` after it was signed (or, for the older form, after it expires)."""
    parts = urlsplit(request.url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    headers = {name.lower(): [value] for name, value in request.headers.items()}
    headers["host"] = [parts.netloc]
    params = dict(query)
    if "Expires" in params:
        at = datetime.fromtimestamp(int(params["Expires"]), UTC)
    else:
        at = datetime.strptime(params.get("X-Amz-Date") or request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return verify(request.method, parts.path, query, headers, secret_of=_secret_of, now=at + later)


def test_a_request_signed_by_botocore_verifies_and_names_its_access_key() -> None:
    assert check(signed()).access_key == ACCESS


def test_a_signed_payload_hash_is_returned_for_the_body_to_be_checked_against() -> None:
    body = b"record bytes"
    assert check(signed("PUT", body)).payload_sha256 == hashlib.sha256(body).hexdigest()


def test_an_unsigned_payload_verifies_as_unsigned() -> None:
    assert check(signed("PUT", b"x", unsigned=True)).payload_sha256 == "UNSIGNED-PAYLOAD"


def test_a_request_signed_with_another_secret_is_signature_does_not_match() -> None:
    with pytest.raises(SigError) as refused:
        check(signed(secret="another secret"))
    assert refused.value.code == "SignatureDoesNotMatch"


def test_a_request_whose_path_was_changed_after_signing_is_signature_does_not_match() -> None:
    request = signed()
    request.url = URL.replace("profile", "inbox")
    with pytest.raises(SigError) as refused:
        check(request)
    assert refused.value.code == "SignatureDoesNotMatch"


def test_a_request_more_than_fifteen_minutes_old_is_request_time_too_skewed() -> None:
    with pytest.raises(SigError) as refused:
        check(signed(), later=timedelta(minutes=16))
    assert refused.value.code == "RequestTimeTooSkewed"


def test_a_request_signed_more_than_fifteen_minutes_ahead_is_request_time_too_skewed() -> None:
    with pytest.raises(SigError) as refused:
        check(signed(), later=-timedelta(minutes=16))
    assert refused.value.code == "RequestTimeTooSkewed"


def test_a_presigned_url_verifies_within_its_expiry() -> None:
    assert check(presigned(600), later=timedelta(seconds=599)).payload_sha256 == "UNSIGNED-PAYLOAD"


def test_a_presigned_url_past_its_expiry_is_access_denied() -> None:
    with pytest.raises(SigError) as refused:
        check(presigned(600), later=timedelta(seconds=601))
    assert (refused.value.code, refused.value.message) == ("AccessDenied", "Request has expired")


def test_an_older_form_presigned_url_verifies_until_it_expires() -> None:
    assert check(presigned_v2(600), later=timedelta(0)).access_key == ACCESS


def test_an_older_form_presigned_url_past_its_expiry_is_access_denied() -> None:
    with pytest.raises(SigError) as refused:
        check(presigned_v2(600), later=timedelta(seconds=1))
    assert (refused.value.code, refused.value.message) == ("AccessDenied", "Request has expired")


def test_an_older_form_presigned_url_for_another_path_is_signature_does_not_match() -> None:
    request = presigned_v2(600)
    request.url = request.url.replace("profile", "inbox")
    with pytest.raises(SigError) as refused:
        check(request, later=-timedelta(seconds=1))
    assert refused.value.code == "SignatureDoesNotMatch"


def test_an_access_key_id_names_the_service_identity_it_was_made_for() -> None:
    assert identity_of(KEY, ACCESS).caller == CALLER


def test_an_access_key_id_changed_by_one_character_is_refused() -> None:
    forged = ACCESS[:-1] + ("A" if ACCESS[-1] != "A" else "B")
    with pytest.raises(BadAccessKey):
        identity_of(KEY, forged)


def test_an_access_key_id_made_under_another_key_is_refused() -> None:
    with pytest.raises(BadAccessKey):
        identity_of(bytes(32), ACCESS)
