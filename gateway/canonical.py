"""Canonical JSON (RFC 8785) for everything the gateway hashes or signs."""

from __future__ import annotations

import base64
import hashlib
import json
from json import encoder as _json_encoder
from typing import Any

import rfc8785

_INT_MAX = 2**53 - 1
# The standard library's encoder writes exactly RFC 8785's bytes for these values;
# see ``_same_as_json``.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"), check_circular=False)


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _make_encode() -> Any:
    """``_ENCODER.encode`` without rebuilding the C encoder on every call (as ``JSONEncoder.encode`` does)."""
    make = _json_encoder.c_make_encoder
    if make is None:  # no C accelerator: the pure-Python encoder, same output
        return _ENCODER.encode
    # markers=None: no cycle check (check_circular=False); then default, string encoder, indent,
    # separators, sort_keys, skipkeys, allow_nan, exactly as _ENCODER passes them
    iterencode = make(None, _refuse, _json_encoder.encode_basestring, None, ":", ",", True, False, False)
    join, encode_string = "".join, _json_encoder.encode_basestring

    def encode(value: Any) -> str:
        if type(value) is str:
            return encode_string(value)  # type: ignore[no-any-return]
        return join(iterencode(value, 0))

    return encode


_encode = _make_encode()


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; the same value always gives the same bytes.

    Values of the shapes the gateway hashes (objects with BMP keys, strings,
    integers within ±(2**53 - 1), booleans, null, lists) go through the
    standard library's C encoder, whose output for them is RFC 8785's byte for
    byte: sorted keys, no whitespace, the same escapes (``\\"``, ``\\\\``, the
    short forms ``\\b \\f \\n \\r \\t`` and lower-case ``\\u00xx`` for other
    control characters, nothing else escaped). Anything else (floats, larger
    integers, keys outside the Basic Multilingual Plane, whose UTF-16 order
    differs from code-point order, non-string keys) goes through ``rfc8785``.
    """
    if _same_as_json(value, 0):
        try:
            return _encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 refuses it with its own error
    return rfc8785.dumps(value)


def canonical_checked(value: Any) -> bytes:
    """``canonical(value)`` for a value already checked to hold only str, int within
    ±(2**53 - 1), bool, None, lists and dicts with str keys (the ledger's
    ``check_data``): the only remaining difference from RFC 8785, the order of
    keys outside the Basic Multilingual Plane, needs a non-ASCII output, so an
    ASCII output needs no walk of the value first.
    """
    text = _encode(value)
    if text.isascii():
        return text.encode("ascii")
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


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
