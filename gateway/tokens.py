"""Bearer tokens for services, intake, legal and ops (JWT, EdDSA).

Claims: ``iss``, ``aud``, ``sub`` (the principal), ``iat``, ``exp``, ``jti``,
``role``; service tokens add ``svc`` (service name), ``region`` (the caller's
region) and ``purpose`` (the declared processing purpose). Time checks use
the injected clock, not the wall clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

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


def verify_token(token: str, *, key: PublicKey, identity: Identity, now: datetime, regions: Collection[str]) -> Caller:
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
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise TokenInvalid("token `exp` and `iat` must be integers")
    stamp = now.timestamp()
    if stamp > exp + LEEWAY.total_seconds():
        raise TokenExpired("token has expired; request a new one")
    if iat > stamp + LEEWAY.total_seconds():
        raise TokenInvalid("token is issued in the future")
    nbf = claims.get("nbf")
    if isinstance(nbf, int) and nbf > stamp + LEEWAY.total_seconds():
        raise TokenInvalid("token is not valid yet")
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
    return caller
