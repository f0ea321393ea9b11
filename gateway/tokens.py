"""Bearer tokens for services, intake, legal and ops (JWT, EdDSA).

Claims: ``iss``, ``aud``, ``sub`` (the principal), ``iat``, ``exp``, ``jti``,
``role``; service tokens add ``svc`` (service name), ``region`` (the caller's
region) and ``purpose`` (the declared processing purpose). Time checks use
the injected clock, not the wall clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt

from gateway.errors import InvalidRequest, Unauthenticated
from gateway.keys import PrivateKey, PublicKey
from gateway.model import ROLES, Caller, Identity, is_identifier

LEEWAY = timedelta(seconds=30)


class TokenExpired(Unauthenticated):
    code = "token-expired"


class TokenInvalid(Unauthenticated):
    code = "token-invalid"


def issue_token(
    caller: Caller, *, key: PrivateKey, identity: Identity, now: datetime, ttl: timedelta | None = None
) -> str:
    check_caller(caller, regions=None)
    ttl = ttl or timedelta(seconds=identity.token_ttl_seconds)
    claims: dict[str, object] = {
        "iss": identity.issuer,
        "aud": identity.audience,
        "sub": caller.principal,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
        "role": caller.role,
    }
    if caller.role == "service":
        claims |= {"svc": caller.service, "region": caller.region, "purpose": caller.purpose}
    return jwt.encode(claims, key, algorithm="EdDSA" if not hasattr(key, "curve") else "ES256")


def check_caller(caller: Caller, regions: Collection[str] | None) -> None:
    """The claims a caller must carry for its role; raise InvalidRequest naming what is missing."""
    if caller.role not in ROLES:
        raise InvalidRequest(f"unknown role `{caller.role}`; use one of {', '.join(ROLES)}", code="invalid-role")
    if not is_identifier(caller.principal):
        raise InvalidRequest(f"principal `{caller.principal}` must be an identifier", code="invalid-principal")
    if caller.role == "service":
        for name, value in (("service", caller.service), ("region", caller.region), ("purpose", caller.purpose)):
            if not is_identifier(value):
                raise InvalidRequest(f"a service token needs a `{name}` identifier", code="invalid-claims")
        if regions is not None and caller.region not in regions:
            raise InvalidRequest(f"unknown region `{caller.region}`", code="unknown-region")


CACHE_ENTRIES = 4096  # verified tokens remembered (about 1 KiB each)


@dataclass(frozen=True)
class _Verified:
    caller: Caller
    iat: int
    exp: int
    nbf: int | None


@dataclass(frozen=True)
class TokenVerifier:
    """Verifies bearer tokens for one key and identity; remembers the ones that verified.

    The signature, issuer, audience and claims of a token depend only on its
    exact text and the key, so a token that passed them once is remembered by
    its text and not decoded or verified again. Its time claims are checked
    against the clock on every call, so a remembered token still expires. Only
    tokens that verified are remembered; the memory is bounded (oldest first
    out) and belongs to this verifier, so a new key starts empty.
    """

    key: PublicKey
    identity: Identity
    regions: Collection[str]
    cache_entries: int = CACHE_ENTRIES
    _verified: dict[str, _Verified] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __contains__(self, token: object) -> bool:
        """Whether ``token`` verified here before and is remembered (its times are not checked)."""
        return token in self._verified

    def verify(self, token: str, *, now: datetime) -> Caller:
        known = self._verified.get(token)
        if known is None:
            known = _decode(token, key=self.key, identity=self.identity, regions=self.regions)
            if self.cache_entries > 0:
                if len(self._verified) >= self.cache_entries:
                    del self._verified[next(iter(self._verified))]
                self._verified[token] = known
        _check_times(known, now)
        return known.caller


def verify_token(token: str, *, key: PublicKey, identity: Identity, now: datetime, regions: Collection[str]) -> Caller:
    """Verify one token from scratch (no memory): signature, issuer, audience, claims and times."""
    verified = _decode(token, key=key, identity=identity, regions=regions)
    _check_times(verified, now)
    return verified.caller


def _check_times(verified: _Verified, now: datetime) -> None:
    stamp = now.timestamp()
    leeway = LEEWAY.total_seconds()
    if stamp > verified.exp + leeway:
        raise TokenExpired("token has expired; request a new one")
    if verified.iat > stamp + leeway:
        raise TokenInvalid("token is issued in the future")
    if verified.nbf is not None and verified.nbf > stamp + leeway:
        raise TokenInvalid("token is not valid yet")


def _decode(token: str, *, key: PublicKey, identity: Identity, regions: Collection[str]) -> _Verified:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["EdDSA", "ES256"],
            audience=identity.audience,
            issuer=identity.issuer,
            options={
                "require": ["iss", "aud", "sub", "iat", "exp", "role"],
                "verify_exp": False,  # checked below against the injected clock
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise TokenInvalid("token signature does not verify") from None
    except jwt.InvalidAudienceError:
        raise TokenInvalid(f"token is not for audience `{identity.audience}`") from None
    except jwt.InvalidIssuerError:
        raise TokenInvalid(f"token is not issued by `{identity.issuer}`") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenInvalid(f"token lacks the `{exc.claim}` claim") from None
    except jwt.InvalidAlgorithmError:
        raise TokenInvalid("token algorithm is not allowed; use EdDSA or ES256") from None
    except jwt.PyJWTError:
        raise TokenInvalid("token is malformed") from None
    exp, iat, nbf = _seconds(claims, "exp"), _seconds(claims, "iat"), _seconds(claims, "nbf")
    assert exp is not None and iat is not None  # required above
    longest = identity.max_token_lifetime_seconds
    if exp - iat > longest:
        raise TokenInvalid(f"token lifetime (`exp` - `iat`) is {exp - iat} seconds, longer than the maximum of {longest}; issue a shorter-lived token")
    caller = Caller(
        principal=str(claims["sub"]),
        role=str(claims["role"]),
        service=claims.get("svc"),
        region=claims.get("region"),
        purpose=claims.get("purpose"),
    )
    try:
        check_caller(caller, regions)
    except InvalidRequest as exc:
        raise TokenInvalid(f"token claims are invalid: {exc.message}") from None
    return _Verified(caller, iat, exp, nbf)


def _seconds(claims: dict[str, Any], name: str) -> int | None:
    """A time claim: absent, or whole seconds since the epoch (a string, a fraction or a boolean is refused, never ignored)."""
    value = claims.get(name)
    if value is None and name not in claims:
        return None
    if type(value) is not int:
        raise TokenInvalid(f"token `{name}` must be an integer number of seconds since the epoch")
    return value
