"""Federation tokens: how one gateway vouches to a peer for a request it forwards.

A gateway that forwards a request to the peer owning the data signs a
short-lived JWT (EdDSA) with its federation key, one per request:

- header: ``typ`` = ``federation+jwt``, ``kid`` = the forwarder's federation id;
- ``iss`` = the forwarder's id, ``aud`` = the peer's id, ``iat``, ``exp``
  (``[federation] token_seconds`` later, 60 by default), ``jti`` (random);
- ``htm`` and ``htu``: the method and the raw path (with its query) of the
  one request it is for;
- ``rid``: the request id, so both gateways' logs name the same request;
- ``caller``: the original caller as the forwarder verified it (``sub``,
  ``role``, and for a service ``svc``, ``region``, ``purpose``).

The peer treats that caller as its caller, marked as coming ``via`` the
forwarder. Its audience is a gateway's id, never ``identity.audience`` (the
configuration refuses that), and it is signed by a federation key, never the
token key: a federation token is not a bearer token anywhere, nor a bearer
token a federation token.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.errors import InvalidRequest
from gateway.model import Caller
from gateway.tokens import TokenExpired, TokenInvalid, check_caller

TOKEN_TYPE = "federation+jwt"
LEEWAY = 10  # seconds of clock difference tolerated between gateways
LONGEST = 300  # seconds: a federation token living longer is refused, whoever signed it
REPLAY_ENTRIES = 100_000  # token ids remembered until they expire


def is_federation_token(token: str) -> bool:
    """Whether ``token`` says it is a federation token (its header's ``typ``); says nothing of whether it verifies."""
    try:
        return jwt.get_unverified_header(token).get("typ") == TOKEN_TYPE
    except jwt.PyJWTError:
        return False


def issue_federation_token(
    caller: Caller,
    *,
    key: ed25519.Ed25519PrivateKey,
    issuer: str,
    audience: str,
    method: str,
    path: str,
    request_id: str,
    now: datetime,
    ttl: timedelta,
) -> str:
    """A token for one request ``method path`` that this gateway (``issuer``) forwards to peer ``audience`` for ``caller``."""
    original: dict[str, Any] = {"sub": caller.principal, "role": caller.role}
    if caller.role == "service":
        original |= {"svc": caller.service, "region": caller.region, "purpose": caller.purpose}
    claims = {
        "iss": issuer,
        "aud": audience,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
        "htm": method,
        "htu": path,
        "rid": request_id,
        "caller": original,
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"typ": TOKEN_TYPE, "kid": issuer})


@dataclass
class FederationVerifier:
    """Verifies federation tokens from this gateway's peers (``own_id`` is their audience)."""

    own_id: str
    peer_keys: Mapping[str, ed25519.Ed25519PublicKey]
    regions: Collection[str]
    monotonic: Any = time.monotonic
    _seen: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def verify(self, token: str, *, method: str, path: str, now: datetime) -> Caller:
        """The original caller of a forwarded request, marked ``via`` the peer that forwarded it; 401 otherwise.

        (1) the header: a federation token, EdDSA, ``kid`` a configured peer;
        (2) the signature, by that peer's key, with ``iss`` = ``kid`` and ``aud`` = this gateway;
        (3) its times: issued, not expired, living at most ``LONGEST`` seconds;
        (4) it is for this very request: ``htm`` and ``htu``;
        (5) the caller it carries is well formed;
        (6) it was not used before (replay), remembered until it expires.
        """
        # (1)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid("federation token is malformed") from None
        peer = header.get("kid")
        if header.get("typ") != TOKEN_TYPE or header.get("alg") != "EdDSA":
            raise TokenInvalid("not a federation token (EdDSA, `typ` federation+jwt)")
        if not isinstance(peer, str) or peer not in self.peer_keys:
            raise TokenInvalid(f"federation token from `{peer}`, which is not a configured peer")
        # (2)
        try:
            claims = jwt.decode(
                token,
                self.peer_keys[peer],
                algorithms=["EdDSA"],
                audience=self.own_id,
                issuer=peer,
                options={"require": ["iss", "aud", "iat", "exp", "jti", "htm", "htu", "caller"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            raise TokenInvalid(f"federation token signature does not verify with peer `{peer}`'s key") from None
        except jwt.InvalidAudienceError:
            raise TokenInvalid(f"federation token is not for this gateway (`{self.own_id}`)") from None
        except jwt.InvalidIssuerError:
            raise TokenInvalid("federation token's `iss` is not its `kid`") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenInvalid(f"federation token lacks the `{exc.claim}` claim") from None
        except jwt.PyJWTError:
            raise TokenInvalid("federation token is malformed") from None
        # (3)
        iat, exp = claims["iat"], claims["exp"]
        if type(iat) is not int or type(exp) is not int or exp - iat > LONGEST:
            raise TokenInvalid(f"federation token times must be whole seconds, living at most {LONGEST} seconds")
        stamp = now.timestamp()
        if stamp > exp + LEEWAY:
            raise TokenExpired("federation token has expired")
        if iat > stamp + LEEWAY:
            raise TokenInvalid("federation token is issued in the future")
        # (4)
        if claims["htm"] != method or claims["htu"] != path:
            raise TokenInvalid("federation token is for another request")
        # (5)
        original = claims["caller"]
        if not isinstance(original, dict):
            raise TokenInvalid("federation token's `caller` must be an object")
        caller = Caller(
            principal=str(original.get("sub")),
            role=str(original.get("role")),
            service=original.get("svc"),
            region=original.get("region"),
            purpose=original.get("purpose"),
            via=peer,
        )
        try:
            check_caller(caller, self.regions)
        except InvalidRequest as exc:
            raise TokenInvalid(f"federation token's caller is invalid: {exc.message}") from None
        # (6)
        self._remember(f"{peer}/{claims['jti']}", exp + LEEWAY - stamp)
        return caller

    def _remember(self, jti: str, seconds: float) -> None:
        """Refuse a token id seen before; remember this one for ``seconds`` (as long as it could be accepted)."""
        clock = self.monotonic()
        if self._seen.get(jti, 0.0) > clock:
            raise TokenInvalid("federation token was already used; every forwarded request has its own")
        if len(self._seen) >= REPLAY_ENTRIES:
            self._seen = {k: until for k, until in self._seen.items() if until > clock}
            if len(self._seen) >= REPLAY_ENTRIES:
                raise TokenInvalid("too many federation tokens in flight; retry shortly")
        self._seen[jti] = clock + seconds
