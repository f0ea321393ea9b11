"""Federation tokens: a peer gateway's token for one forwarded request, made and checked with real Ed25519 keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.federation import FederationVerifier, is_federation_token, issue_federation_token
from gateway.model import Caller, Identity
from gateway.tokens import TokenExpired, TokenInvalid, issue_token

NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
AMERICAS = ed25519.Ed25519PrivateKey.generate()
APAC = ed25519.Ed25519PrivateKey.generate()
SERVICE = Caller("billing", "service", service="billing", region="us-east-1", purpose="billing")
PATH = "/v1/subjects/aoife/records/profile"
REGIONS = {"us-east-1", "eu-west-1"}


def europe() -> FederationVerifier:
    """Europe's verifier: its peers are americas and apac."""
    return FederationVerifier("europe", {"americas": AMERICAS.public_key(), "apac": APAC.public_key()}, REGIONS)


def token(
    *,
    key: ed25519.Ed25519PrivateKey = AMERICAS,
    issuer: str = "americas",
    audience: str = "europe",
    caller: Caller = SERVICE,
    method: str = "GET",
    path: str = PATH,
    now: datetime = NOW,
    ttl: timedelta = timedelta(seconds=60),
) -> str:
    return issue_federation_token(caller, key=key, issuer=issuer, audience=audience, method=method, path=path, request_id="r-1", now=now, ttl=ttl)


def test_a_peers_token_carries_the_original_caller_marked_as_coming_through_that_peer() -> None:
    assert europe().verify(token(), method="GET", path=PATH, now=NOW) == Caller(
        "billing", "service", service="billing", region="us-east-1", purpose="billing", via="americas"
    )


def test_a_forged_federation_token_signed_by_another_key_is_refused() -> None:
    with pytest.raises(TokenInvalid, match="does not verify"):
        europe().verify(token(key=ed25519.Ed25519PrivateKey.generate()), method="GET", path=PATH, now=NOW)


def test_a_federation_token_signed_by_one_peer_in_another_peers_name_is_refused() -> None:
    with pytest.raises(TokenInvalid, match="does not verify"):
        europe().verify(token(key=APAC, issuer="americas"), method="GET", path=PATH, now=NOW)


def test_an_expired_federation_token_is_refused() -> None:
    with pytest.raises(TokenExpired):
        europe().verify(token(), method="GET", path=PATH, now=NOW + timedelta(seconds=90))


def test_a_federation_token_for_another_gateway_is_refused() -> None:
    with pytest.raises(TokenInvalid, match="not for this gateway"):
        europe().verify(token(audience="apac"), method="GET", path=PATH, now=NOW)


def test_a_federation_token_from_a_gateway_that_is_not_a_peer_is_refused() -> None:
    stranger = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(TokenInvalid, match="not a configured peer"):
        europe().verify(token(key=stranger, issuer="elsewhere"), method="GET", path=PATH, now=NOW)


def test_a_federation_token_used_a_second_time_is_refused() -> None:
    verifier, used = europe(), token()
    verifier.verify(used, method="GET", path=PATH, now=NOW)
    with pytest.raises(TokenInvalid, match="already used"):
        verifier.verify(used, method="GET", path=PATH, now=NOW)


def test_a_federation_token_for_one_request_is_refused_for_another() -> None:
    with pytest.raises(TokenInvalid, match="another request"):
        europe().verify(token(), method="DELETE", path=PATH, now=NOW)


def test_a_federation_token_living_longer_than_five_minutes_is_refused_whoever_signed_it() -> None:
    with pytest.raises(TokenInvalid, match="at most 300 seconds"):
        europe().verify(token(ttl=timedelta(hours=1)), method="GET", path=PATH, now=NOW)


def test_a_federation_token_carrying_a_caller_in_an_unknown_region_is_refused() -> None:
    caller = Caller("billing", "service", service="billing", region="mars-1", purpose="billing")
    with pytest.raises(TokenInvalid, match="caller is invalid"):
        europe().verify(token(caller=caller), method="GET", path=PATH, now=NOW)


def test_an_unsigned_federation_token_is_refused() -> None:
    claims = {"iss": "americas", "aud": "europe", "iat": 1, "exp": 2**40, "jti": "x", "htm": "GET", "htu": PATH, "caller": {"sub": "x", "role": "legal"}}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"typ": "federation+jwt", "kid": "americas"})
    with pytest.raises(TokenInvalid):
        europe().verify(unsigned, method="GET", path=PATH, now=NOW)


def test_a_bearer_token_is_not_taken_for_a_federation_token_and_the_reverse() -> None:
    identity = Identity("keys/tokens.pub", "keys/tokens.key", "keys/provider.key", "exampleco-gateway", "disclosure-gateway", 3600)
    bearer = issue_token(SERVICE, key=AMERICAS, identity=identity, now=NOW)
    assert (is_federation_token(bearer), is_federation_token(token())) == (False, True)
