"""S3 credentials for a service: an access key id that carries the service identity, and a secret derived from it.

The access key id is ``GW1`` followed by the base64url of the identity
(service, region, purpose, expiry) and an HMAC-SHA256 of it under the S3 key
(``DATA_DIR/keys/s3.key``, made by ``gateway keys init``), so nobody can make
one without that key. The secret is an HMAC of the access key id under the
same key with another label: it is derived on each request and stored nowhere.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import KeyFileError
from gateway.model import Caller

S3_KEY_FILE = "keys/s3.key"  # under the data directory
PREFIX = "GW1"
KEY_BYTES = 32
MAC_BYTES = 16


@dataclass(frozen=True)
class S3Identity:
    caller: Caller
    expires: int  # Unix seconds


class BadAccessKey(Exception):
    """An access key id this gateway did not make, or one that was changed."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, label: str, data: bytes) -> bytes:
    return hmac.new(key, label.encode() + b"\0" + data, hashlib.sha256).digest()


def access_key_id(key: bytes, caller: Caller, expires: int) -> str:
    payload = json.dumps([caller.service, caller.region, caller.purpose, expires], separators=(",", ":")).encode()
    return PREFIX + _b64(payload + _mac(key, "access-key-id", payload)[:MAC_BYTES])


# The two MACs of a request's access key id are the same for every request a client signs with it: remembered
# for the most recent keys (bench.s3front: see bench/README.md). A key id that fails is never remembered.
@functools.lru_cache(maxsize=1024)
def secret_for(key: bytes, access_key: str) -> str:
    return _b64(_mac(key, "secret", access_key.encode()))


@functools.lru_cache(maxsize=1024)
def identity_of(key: bytes, access_key: str) -> S3Identity:
    """The identity an access key id names; ``BadAccessKey`` if its MAC does not verify."""
    if not access_key.startswith(PREFIX):
        raise BadAccessKey(access_key)
    try:
        raw = _unb64(access_key[len(PREFIX) :])
    except ValueError:
        raise BadAccessKey(access_key) from None
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if len(raw) <= MAC_BYTES or not hmac.compare_digest(mac, _mac(key, "access-key-id", payload)[:MAC_BYTES]):
        raise BadAccessKey(access_key)
    service, region, purpose, expires = json.loads(payload)
    return S3Identity(Caller(principal=service, role="service", service=service, region=region, purpose=purpose), int(expires))


def make_key(path: Path) -> bool:
    """Create the S3 key (mode 0600) unless it exists; True if one was made."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.urandom(KEY_BYTES))
    return True


def load_key(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"S3 key file `{path}` does not exist; run `gateway keys init`") from None
    if len(data) != KEY_BYTES:
        raise KeyFileError(f"`{path}` must hold {KEY_BYTES} bytes")
    return data
