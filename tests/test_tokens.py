"""Service and user tokens: issued and verified with real Ed25519 keys."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.canonical import b64url, canonical
from gateway.errors import InvalidRequest
from gateway.model import Caller, Identity
from gateway.tokens import TokenExpired, TokenInvalid, TokenVerifier, issue_token, verify_token

NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
KEY = ed25519.Ed25519PrivateKey.generate()
IDENTITY = Identity("keys/tokens.pub", "keys/tokens.key", "keys/provider.key", "exampleco-gateway", "disclosure-gateway", 3600)
SERVICE = Caller("billing", "service", service="billing", region="us-east-1", purpose="billing")
REGIONS = {"us-east-1", "eu-west-1"}


def verify(token: str, now: datetime = NOW, key: ed25519.Ed25519PublicKey | None = None) -> Caller:
    return verify_token(token, key=key or KEY.public_key(), identity=IDENTITY, now=now, regions=REGIONS)


def test_a_service_token_carries_its_service_region_and_purpose() -> None:
    assert verify(issue_token(SERVICE, key=KEY, identity=IDENTITY, now=NOW)) == SERVICE


def test_a_legal_token_carries_its_role_and_principal() -> None:
    caller = Caller("lawyer-1", "legal")
    assert verify(issue_token(caller, key=KEY, identity=IDENTITY, now=NOW)) == caller


def test_an_expired_token_is_refused() -> None:
    token = issue_token(SERVICE, key=KEY, identity=IDENTITY, now=NOW)
    with pytest.raises(TokenExpired):
        verify(token, now=NOW + timedelta(hours=2))


def test_a_token_signed_by_another_key_is_refused() -> None:
    token = issue_token(SERVICE, key=ed25519.Ed25519PrivateKey.generate(), identity=IDENTITY, now=NOW)
    with pytest.raises(TokenInvalid):
        verify(token)


def test_an_unsigned_token_is_refused() -> None:
    token = jwt.encode({"iss": IDENTITY.issuer, "aud": IDENTITY.audience, "sub": "x", "role": "legal", "iat": 1, "exp": 2**40}, None, algorithm="none")
    with pytest.raises(TokenInvalid):
        verify(token)


def test_an_hmac_token_made_with_the_public_key_as_secret_is_refused() -> None:
    public_pem = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = {"iss": IDENTITY.issuer, "aud": IDENTITY.audience, "sub": "x", "role": "legal", "iat": 1, "exp": 2**40}
    signing_input = f"{b64url(canonical({'alg': 'HS256', 'typ': 'JWT'}))}.{b64url(canonical(claims))}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(TokenInvalid):
        verify(f"{signing_input}.{b64url(mac)}")


def test_a_token_for_another_audience_is_refused() -> None:
    other = Identity("a", "b", "c", IDENTITY.issuer, "someone-else", 3600)
    token = issue_token(SERVICE, key=KEY, identity=other, now=NOW)
    with pytest.raises(TokenInvalid):
        verify(token)


def test_a_service_token_naming_an_unknown_region_is_refused() -> None:
    caller = Caller("svc", "service", service="svc", region="mars-1", purpose="p")
    token = issue_token(caller, key=KEY, identity=IDENTITY, now=NOW)
    with pytest.raises(TokenInvalid):
        verify(token)


def test_a_service_token_cannot_be_issued_without_a_purpose() -> None:
    with pytest.raises(InvalidRequest):
        issue_token(Caller("svc", "service", service="svc", region="us-east-1"), key=KEY, identity=IDENTITY, now=NOW)


def test_a_token_issued_in_the_future_is_refused() -> None:
    token = issue_token(SERVICE, key=KEY, identity=IDENTITY, now=NOW + timedelta(hours=1))
    with pytest.raises(TokenInvalid):
        verify(token)



@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token the real PyJWT decoder is asked to decode and verify."""
    seen: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        seen.append(token)
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("gateway.tokens.jwt.decode", counting)
    return seen


def verifier(cache_entries: int = 8) -> TokenVerifier:
    return TokenVerifier(KEY.public_key(), IDENTITY, REGIONS, cache_entries=cache_entries)


def test_a_token_that_verified_once_is_not_verified_again(decodes: list[str]) -> None:
    tokens = verifier()
    token = issue_token(SERVICE, key=KEY, identity=IDENTITY, now=NOW)
    assert [tokens.verify(token, now=NOW) for _ in range(3)] == [SERVICE] * 3
    assert len(decodes) == 1


def test_a_remembered_token_still_expires() -> None:
    tokens = verifier()
    token = issue_token(SERVICE, key=KEY, identity=IDENTITY, now=NOW, ttl=timedelta(minutes=5))
    tokens.verify(token, now=NOW)
    with pytest.raises(TokenExpired):
        tokens.verify(token, now=NOW + timedelta(minutes=10))


def test_a_forged_token_is_checked_again_on_every_call(decodes: list[str]) -> None:
    tokens = verifier()
    token = issue_token(SERVICE, key=ed25519.Ed25519PrivateKey.generate(), identity=IDENTITY, now=NOW)
    for _ in range(2):
        with pytest.raises(TokenInvalid):
            tokens.verify(token, now=NOW)
    assert len(decodes) == 2


def test_the_token_verifier_remembers_at_most_its_configured_number_of_tokens(decodes: list[str]) -> None:
    tokens = verifier(cache_entries=2)
    issued = [issue_token(Caller(f"user-{i}", "legal"), key=KEY, identity=IDENTITY, now=NOW) for i in range(3)]
    for token in [*issued, issued[0]]:
        tokens.verify(token, now=NOW)
    assert len(decodes) == 4  # the oldest was forgotten and verified again


def test_the_token_verifier_knows_a_token_only_once_it_has_verified() -> None:
    tokens = verifier()
    token = issue_token(SERVICE, key=KEY, identity=IDENTITY, now=NOW)
    forged = issue_token(SERVICE, key=ed25519.Ed25519PrivateKey.generate(), identity=IDENTITY, now=NOW)
    assert token not in tokens
    tokens.verify(token, now=NOW)
    with pytest.raises(TokenInvalid):
        tokens.verify(forged, now=NOW)
    assert token in tokens
    assert forged not in tokens
