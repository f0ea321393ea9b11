"""Canonical JSON (RFC 8785) for everything the gateway hashes or signs, and the ids and encodings that go with it."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

import orjson
import rfc8785

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519

_INT_MAX = 2**53 - 1
_SORTED = orjson.OPT_SORT_KEYS


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; the same value always gives the same bytes.

    Values of the shapes the gateway hashes (objects with BMP keys, strings,
    integers within ±(2**53 - 1), booleans, null, lists) go through
    ``orjson`` with sorted keys, whose output for them is RFC 8785's byte for
    byte: sorted keys (by code point, which is UTF-16 order within the BMP),
    no whitespace, the same escapes (``\\"``, ``\\\\``, the short forms
    ``\\b \\f \\n \\r \\t`` and lower-case ``\\u00xx`` for other control
    characters, nothing else escaped) and raw UTF-8 (tests check it against
    ``rfc8785`` on generated values). Anything else (floats, larger integers,
    keys outside the Basic Multilingual Plane, non-string keys, lone
    surrogates) goes through ``rfc8785``, which writes it or refuses it.
    """
    if _same_as_json(value, 0):
        try:
            return orjson.dumps(value, option=_SORTED)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: rfc8785 refuses it with its own error
    return rfc8785.dumps(value)


def canonical_checked(value: Any) -> bytes:
    """``canonical(value)`` for a value already checked to hold only str, int within
    ±(2**53 - 1), bool, None, lists and dicts with str keys (the ledger's
    ``check_data``): the only remaining difference from RFC 8785, the order of
    keys outside the Basic Multilingual Plane, needs a non-ASCII output, so an
    ASCII output needs no walk of the value first.
    """
    try:
        data = orjson.dumps(value, option=_SORTED)
    except orjson.JSONEncodeError:
        return canonical(value)  # nested beyond orjson's limit, say: the reference decides
    if data.isascii():
        return data
    return canonical(value)


def _same_as_json(value: Any, depth: int) -> bool:
    """True if the standard encoder's output for ``value`` is its RFC 8785 form."""
    if depth > 100:
        return False
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return -_INT_MAX <= value <= _INT_MAX
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (not key.isascii() and max(key) > "\uffff"):
                return False
            if not _same_as_json(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_same_as_json(item, depth + 1) for item in value)
    return False  # floats, subclasses and anything else: the reference encoder decides


def no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for signed JSON: a member named twice is an error, never "the last one wins"."""
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate member `{name}`")
        result[name] = value
    return result


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    """A public key's id: SHA-256 (hex) of its raw 32 bytes (how a checkpoint and a package manifest name the provider key)."""
    return sha256_hex(public_key.public_bytes_raw())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
