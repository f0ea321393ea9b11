"""Legal orders as signed tokens: verify one into an ``Order``, sign one for tests and the CLI.

An order is a compact JWS (RFC 7515) signed with EdDSA (Ed25519) or ES256
(ECDSA P-256, SHA-256, raw ``r || s`` signature) by a registered authority's
key; the header's ``kid`` names the authority. ``verify_order`` is pure: the
registered authorities, their public keys, the configured instruments and
categories and the time are all passed in; it reads no file and no clock.

Why ``cryptography`` directly rather than PyJWT: the only algorithm an order
may use is the one that matches the type of the key registered for its
``kid``, so the algorithm is derived from our key and the header's ``alg`` is
merely checked against it. With direct calls there is no algorithm registry
a token could steer (``none``, HMAC with a public key as the secret), no
wall-clock claim checks to switch off, base64url is decoded strictly (one
encoding per byte string), duplicate JSON members and ``crit`` extensions are
refused, and the payload is parsed only after its signature verified. That is
about forty lines we own instead of a library surface we would have to pin
down option by option.

Refusals raise ``OrderRejected`` with a stable ``code`` and the ``rule`` that
refused it: ``R0`` (verify the requester) for a token that cannot be parsed or
authenticated, ``R1`` (form validity) for a signed token whose claims are
malformed, out of their validity window or name something not configured.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from gateway.canonical import b64url, b64url_decode, canonical, no_duplicate_members
from gateway.errors import GatewayError, KeyFileError
from gateway.keys import PrivateKey, PublicKey
from gateway.legal.orders import Authority, Offence, Order
from gateway.model import is_country, is_identifier, parse_time

# The allow-list: JWS algorithm -> the key type that must be registered for it.
EDDSA = "EdDSA"
ES256 = "ES256"
ALGORITHMS: tuple[str, ...] = (EDDSA, ES256)

# Clock skew tolerated on `nbf` and `iat` only. `exp` is the execute-by date
# (a warrant past it is void), so it gets no leeway at all.
LEEWAY = timedelta(seconds=30)

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_P256_BYTES = 32
_OFFENCE_FIELDS = frozenset({"description", "max_penalty_years", "committed_in", "listed"})
_EMERGENCY_FIELDS = frozenset({"reason"})


class OrderRejected(GatewayError):
    """An order refused before any decision: ``code`` is the reason, ``rule`` is ``R0`` or ``R1``."""

    code = "order-rejected"

    def __init__(self, message: str, *, code: str, rule: str, **details: Any) -> None:
        super().__init__(message, code=code, **details)
        self.rule = rule


def _reject(code: str, rule: str, message: str, **details: Any) -> NoReturn:
    raise OrderRejected(message, code=code, rule=rule, **details)


def _malformed(message: str, *, rule: str = "R1", **details: Any) -> NoReturn:
    _reject("malformed-order", rule, message, **details)


# --- the compact form ----------------------------------------------------------------


def _text(token: str | bytes) -> str | None:
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            return None
    return token.strip()


def _decode_part(part: str) -> bytes | None:
    """Strict base64url: URL alphabet, no padding, and the one canonical encoding of its bytes."""
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        return None
    data = b64url_decode(part)
    return data if b64url(data) == part else None


def _split(token: str | bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
    """(signing input, header, payload, signature) as bytes, or None if it is not compact JWS."""
    text = _text(token)
    if text is None:
        return None
    parts = text.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return None
    header, payload, signature = (_decode_part(part) for part in parts)
    if header is None or payload is None or signature is None:
        return None
    return f"{parts[0]}.{parts[1]}".encode("ascii"), header, payload, signature


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicate_members)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def order_fingerprint(token: str | bytes) -> str:
    """SHA-256 (hex) of everything the authority signed: the JWS signing input, header and payload.

    The header names the signing authority (``kid``), so the same claims
    signed by another authority are another order. The same jti under a
    different fingerprint is a replay (``replayed``); the same header and
    claims signed again (ES256 signatures are randomised) are the same order.
    Never raises: a token that is not compact JWS is fingerprinted as its raw
    bytes, so refusals can be recorded by fingerprint too.
    """
    split = _split(token)
    if split is not None:
        signing_input, _, _, _ = split
        return hashlib.sha256(b"signed:" + signing_input).hexdigest()
    raw = token if isinstance(token, bytes) else token.encode("utf-8", "surrogatepass")
    return hashlib.sha256(b"raw:" + raw).hexdigest()


def claims_fingerprint(token: str | bytes) -> str:
    """The fingerprint of earlier versions: the claims alone, as canonical JSON (RFC 8785).

    It leaves out the header, so it cannot tell who signed; it is only compared
    with replay claims stored before ``order_fingerprint`` covered the header.
    """
    split = _split(token)
    if split is not None:
        _, _, payload, _ = split
        try:
            claims = _json_object(payload)
        except ValueError:
            claims = None
        if claims is not None:
            try:
                return hashlib.sha256(b"claims:" + canonical(claims)).hexdigest()
            except (TypeError, ValueError):  # e.g. floats outside what RFC 8785 can represent
                return hashlib.sha256(b"payload:" + payload).hexdigest()
    raw = token if isinstance(token, bytes) else token.encode("utf-8", "surrogatepass")
    return hashlib.sha256(b"raw:" + raw).hexdigest()


# --- signatures ----------------------------------------------------------------------


def _algorithm_for(key: PublicKey | PrivateKey) -> str | None:
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return EDDSA
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return ES256
    return None


def _signature_verifies(key: PublicKey, signature: bytes, signing_input: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signing_input)
            return True
        if len(signature) != 2 * _P256_BYTES:
            return False
        r = int.from_bytes(signature[:_P256_BYTES], "big")
        s = int.from_bytes(signature[_P256_BYTES:], "big")
        key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def sign_order(claims: Mapping[str, Any], *, key: PrivateKey, kid: str) -> str:
    """A compact JWS of ``claims``: EdDSA for an Ed25519 key, ES256 for a P-256 key."""
    alg = _algorithm_for(key)
    if alg is None:
        raise KeyFileError("an order signing key must be Ed25519 or P-256", code="key-invalid")
    header = b64url(canonical({"alg": alg, "kid": kid, "typ": "JWT"}))
    payload = b64url(canonical(dict(claims)))
    signing_input = f"{header}.{payload}".encode("ascii")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(signing_input)
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")
    return f"{header}.{payload}.{b64url(signature)}"


# --- claims --------------------------------------------------------------------------


def _absent(claims: Mapping[str, Any], name: str) -> bool:
    """Optional claims may be left out or given as ``null``."""
    return claims.get(name) is None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numeric_date(value: int, name: str) -> datetime:
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        _malformed(f"claim `{name}` is out of range", claim=name)


def _int_date(claims: Mapping[str, Any], name: str) -> datetime:
    value = claims[name]
    if not _is_int(value):
        _malformed(f"claim `{name}` must be a NumericDate (integer seconds since the epoch)", claim=name)
    return _numeric_date(value, name)


def _time(claims: Mapping[str, Any], name: str) -> datetime | None:
    if _absent(claims, name):
        return None
    value = claims[name]
    if _is_int(value):
        return _numeric_date(value, name)
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            pass
    _malformed(f"claim `{name}` must be an RFC 3339 time or a NumericDate", claim=name)


def _string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        _malformed(f"claim `{name}` must be a non-empty string", claim=name)
    return value


def _optional_string(claims: Mapping[str, Any], name: str) -> str | None:
    return None if _absent(claims, name) else _string(claims, name)


def _string_list(claims: Mapping[str, Any], name: str, *, non_empty: bool) -> tuple[str, ...]:
    value = claims[name]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        _malformed(f"claim `{name}` must be a list of strings", claim=name)
    if non_empty and not value:
        _malformed(f"claim `{name}` must list at least one entry", claim=name)
    if len(set(value)) != len(value):
        _malformed(f"claim `{name}` lists an entry twice", claim=name)
    return tuple(value)


def _object(claims: Mapping[str, Any], name: str, allowed: frozenset[str]) -> dict[str, Any] | None:
    if _absent(claims, name):
        return None
    value = claims[name]
    if not isinstance(value, dict):
        _malformed(f"claim `{name}` must be an object", claim=name)
    unknown = sorted(set(value) - allowed)
    if unknown:
        _malformed(f"claim `{name}` has unknown member `{unknown[0]}`; allowed: {', '.join(sorted(allowed))}", claim=name)
    return value


def _offence(claims: Mapping[str, Any]) -> Offence | None:
    value = _object(claims, "offence", _OFFENCE_FIELDS)
    if value is None:
        return None
    description = value.get("description")
    if not isinstance(description, str) or not description:
        _malformed("claim `offence.description` must be a non-empty string", claim="offence.description")
    years = value.get("max_penalty_years")
    if years is not None and (isinstance(years, bool) or not isinstance(years, int | float) or not math.isfinite(years) or years < 0):
        _malformed("claim `offence.max_penalty_years` must be a number of years, zero or more", claim="offence.max_penalty_years")
    committed_in = value.get("committed_in")
    if committed_in is not None and not is_country(committed_in):
        _malformed("claim `offence.committed_in` must be a two-letter country code", claim="offence.committed_in")
    listed = value.get("listed")
    if listed is not None and not isinstance(listed, bool):
        _malformed("claim `offence.listed` must be true or false", claim="offence.listed")
    return Offence(description, None if years is None else float(years), committed_in, listed)


def _emergency_reason(claims: Mapping[str, Any]) -> str | None:
    value = _object(claims, "emergency", _EMERGENCY_FIELDS)
    if value is None:
        return None
    reason = value.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        _malformed("claim `emergency.reason` must be a non-empty string", claim="emergency.reason")
    return reason


# --- the procedure -------------------------------------------------------------------


def verify_order(
    token: str | bytes,
    *,
    authorities: Mapping[str, Authority],
    keys: Mapping[str, PublicKey],
    instruments: Collection[str],
    categories: Collection[str],
    now: datetime,
    received_at: datetime | None = None,
) -> Order:
    """Verify a signed order and return it; raise ``OrderRejected`` at the first failed step.

    (1) the token is compact JWS (three strict base64url parts) and its header a
        JSON object without ``crit`` → else ``malformed-order`` (R0);
    (2) the header's ``alg`` is on the allow-list (EdDSA, ES256): ``none`` and
        HMAC never are → else ``bad-signature`` (R0);
    (3) the header's ``kid`` names a registered authority with a registered key
        → else ``unverified-authority`` (R0);
    (4) ``alg`` is the algorithm of that key's type and the signature verifies
        under it → else ``bad-signature`` (R0);
    (5) the payload is a JSON object whose claims are present and well typed
        → else ``malformed-order`` (R1) naming the claim and what it must be;
    (6) ``iss`` names a registered authority → else ``unverified-authority``
        (R0). It may differ from ``kid``: whether that server may serve for that
        issuer is the engine's question (``improper-service``);
    (7) the validity window holds: ``exp`` had not passed when the order was
        served (``received_at``, else ``now``), no leeway (it is the execute-by
        date) → else ``expired`` (R1); ``nbf`` and ``iat`` are not later than
        ``now`` plus 30 s → else ``not-yet-valid`` (R1);
    (8) the instrument and every category are configured → else
        ``unknown-instrument`` / ``unknown-category`` (R1);
    (9) build the ``Order``: issuer = ``authorities[iss]``, served_by =
        ``authorities[kid]``, received_at = ``received_at`` or ``now``.

    Subjects are only type-checked: an empty list or a ``*`` is the engine's
    to refuse (``no-specific-identifiers``), with a reason in the decision.
    Unknown claims are ignored; unknown members of ``offence`` and
    ``emergency`` are refused, as a misspelt one would silently change the
    decision.
    """
    # (1) compact form and header
    split = _split(token)
    if split is None:
        _malformed("an order must be a compact JWS: three base64url parts separated by dots", rule="R0")
    signing_input, header_bytes, payload, signature = split
    header = _json_object(header_bytes)
    if header is None:
        _malformed("the order's JWS header must be a JSON object", rule="R0")
    if "crit" in header:
        _malformed("the order's JWS header lists `crit` extensions; none are supported", rule="R0")

    # (2) algorithm allow-list
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        shown = alg if isinstance(alg, str) else json.dumps(alg)
        _reject("bad-signature", "R0", f"algorithm `{shown}` is not allowed; orders are signed with {' or '.join(ALGORITHMS)}")

    # (3) the signing authority is registered and has a key
    kid = header.get("kid")
    if kid is None:
        _reject("unverified-authority", "R0", "the order's JWS header has no `kid` naming the authority that signed it")
    if not isinstance(kid, str) or kid not in authorities:
        shown = kid if isinstance(kid, str) else json.dumps(kid)
        _reject("unverified-authority", "R0", f"`{shown}` is not a registered authority", kid=shown)
    key = keys.get(kid)
    if key is None:
        _reject("unverified-authority", "R0", f"no public key is registered for authority `{kid}`", kid=kid)

    # (4) the signature verifies under that key, with the key's own algorithm
    expected = _algorithm_for(key)
    if expected != alg:
        _reject("bad-signature", "R0", f"authority `{kid}` signs with {expected or 'an unsupported key'}, not `{alg}`", kid=kid)
    if not _signature_verifies(key, signature, signing_input):
        _reject("bad-signature", "R0", f"the order's signature does not verify under the key of `{kid}`", kid=kid)

    # (5) claims present and well typed
    claims = _json_object(payload)
    if claims is None:
        _malformed("the order's payload must be a JSON object of claims")
    for name in ("jti", "iss", "iat", "exp", "instrument", "subjects", "categories"):
        if name not in claims:
            _malformed(f"the order has no `{name}` claim", claim=name)
    jti = claims["jti"]
    if not is_identifier(jti):
        _malformed("claim `jti` must be an order id: 1 to 128 letters, digits, `.`, `_` or `-`", claim="jti")
    iss = _string(claims, "iss")
    issued_at = _int_date(claims, "iat")
    expires_at = _int_date(claims, "exp")
    if expires_at < issued_at:
        _malformed("claim `exp` must not be before `iat`", claim="exp")
    not_before = None
    if not _absent(claims, "nbf"):
        not_before = _int_date(claims, "nbf")
    instrument = _string(claims, "instrument")
    subjects = _string_list(claims, "subjects", non_empty=False)
    requested = _string_list(claims, "categories", non_empty=True)
    made_at = _time(claims, "made_at")
    offence = _offence(claims)
    emergency_reason = _emergency_reason(claims)
    nondisclosure_until = _time(claims, "nondisclosure_until")
    case_ref = _optional_string(claims, "case_ref")
    renews = None
    if not _absent(claims, "renews"):
        renews = claims["renews"]
        if not is_identifier(renews):
            _malformed("claim `renews` must be an order id", claim="renews")

    # (6) the issuer is registered
    if iss not in authorities:
        _reject("unverified-authority", "R0", f"issuer `{iss}` is not a registered authority", iss=iss)

    # (7) validity window
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    served = received_at or moment
    if served >= expires_at:
        _reject("expired", "R1", f"the order expired at {expires_at.isoformat()}", exp=claims["exp"])
    if not_before is not None and not_before > moment + LEEWAY:
        _reject("not-yet-valid", "R1", f"the order is not valid before {not_before.isoformat()}", nbf=claims["nbf"])
    if issued_at > moment + LEEWAY:
        _reject("not-yet-valid", "R1", f"the order is issued in the future ({issued_at.isoformat()})", iat=claims["iat"])

    # (8) instrument and categories are configured
    if instrument not in instruments:
        _reject("unknown-instrument", "R1", f"instrument `{instrument}` is not configured", instrument=instrument)
    for category in requested:
        if category not in categories:
            _reject("unknown-category", "R1", f"category `{category}` is not configured; use one of {', '.join(categories)}", category=category)

    # (9) the order
    return Order(
        id=jti,
        issuer=authorities[iss],
        served_by=authorities[kid],
        instrument=instrument,
        subjects=subjects,
        categories=requested,
        issued_at=issued_at,
        expires_at=expires_at,
        not_before=not_before,
        made_at=made_at,
        offence=offence,
        emergency_reason=emergency_reason,
        nondisclosure_until=nondisclosure_until,
        case_ref=case_ref,
        renews=renews,
        received_at=received_at or moment,
    )
