"""The ``RecordStore`` port.

A store holds the objects of one region: opaque bytes plus a small map of
string metadata (the residency tag travels there). It knows nothing about
subjects, categories or law. Adapters: ``FileStore`` (the embedded default),
``S3Store`` (boto3; one bucket per region) and ``MemoryStore`` (unit tests).
All three pass the same contract suite (``tests/stores/test_contract.py``).

Rules every adapter keeps:
- ``put`` is atomic: a reader sees the old object or the new one, never a mix,
  and a crash leaves no partial object visible.
- Keys are ``/``-separated identifiers (``gateway.model.IDENTIFIER`` per
  segment); anything else is ``InvalidRequest`` before any I/O.
- Metadata keys are lower-case ``[a-z0-9-]``, values printable ASCII, at most
  2 KiB in all (what S3 user metadata allows).
- An object under legal hold can be neither overwritten nor deleted
  (``ObjectLocked``) until the hold is lifted.
- Library errors never escape: they become ``StoreError`` (unreachable,
  denied, unexpected; ``StoreGone`` when the bucket itself is missing) or one
  of the errors below.
- An object the store holds but cannot read back as an object (the file
  store's header is unreadable) is ``ObjectCorrupt``: a fact about that one
  object, not a failure of the store.

Versions and compare-and-swap. Every object carries an ``etag``: an opaque
version token that ``put`` returns and ``head`` and ``get`` report. It changes
whenever a put changes the object's body (S3: the ETag as S3 returns it, an MD5
of the body for a single-part put, so putting the very same bytes again may
keep it; the file store and the memory store: a new token on every put). A
caller compares etags only for equality and never parses them.
``put(..., if_match=etag)`` and ``delete(key, if_match=etag)`` act only if the
object exists now with that etag, checked and done as one step, atomic against
every other writer of the store (other processes and replicas included): else
``PreconditionFailed``, and nothing changes. ``if_absent`` is the create-only
counterpart. A put with ``if_match`` on a missing object is
``PreconditionFailed``; a delete with ``if_match`` on a missing object is
``ObjectNotFound``, like any delete of a missing key. So a read-modify-write
(head, then ``put(if_match=...)`` or ``put(if_absent=True)``, retried on
``PreconditionFailed``) never loses a concurrent writer's update: records use
it, and so can any shared state (cases, approvals) kept in a store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gateway.errors import Conflict, InvalidRequest, NotFound, StoreError
from gateway.model import IDENTIFIER_PATTERN

METADATA_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\Z")
METADATA_LIMIT = 2048


class ObjectNotFound(NotFound):
    code = "object-not-found"


class ObjectLocked(Conflict):
    code = "legal-hold"


class PreconditionFailed(Conflict):
    code = "precondition-failed"


class StoreGone(StoreError):
    """The store itself is missing (an S3 bucket that no longer exists): it must be prepared again.

    Still ``store-unavailable`` to callers; ``HealingStore`` takes it as the cue
    to re-create the bucket in the background.
    """


class ObjectCorrupt(StoreError):
    """The object exists but its stored form is unreadable (its metadata cannot be parsed)."""

    code = "object-corrupt"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    legal_hold: bool = False
    etag: str = ""  # the object's version token (see the module docstring)


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    body: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)
    legal_hold: bool = False
    etag: str = ""  # the object's version token (see the module docstring)


@runtime_checkable
class RecordStore(Protocol):
    region: str

    async def put(self, key: str, body: bytes, metadata: Mapping[str, str], *, if_absent: bool = False, if_match: str | None = None) -> str:
        """Store atomically and return the new object's etag.

        ``if_absent``: ``PreconditionFailed`` if the key exists. ``if_match``:
        ``PreconditionFailed`` unless the key exists now with that etag.
        """
        ...

    async def get(self, key: str) -> StoredObject:
        """The object, or ``ObjectNotFound``."""
        ...

    async def head(self, key: str) -> ObjectInfo:
        """Size, metadata and hold state without the body, or ``ObjectNotFound``."""
        ...

    async def get_bodies(self, keys: Sequence[str]) -> list[bytes]:
        """The bodies of ``keys``, in their order, without metadata or hold state.

        A bulk read for a package's read-ahead, which checks every body against
        its SHA-256 itself: one call may take hundreds of keys. Every key is
        validated before any I/O; a missing key is ``ObjectNotFound`` and a
        corrupt one ``ObjectCorrupt``, and the whole call fails.
        """
        ...

    async def heads(self, keys: Sequence[str]) -> list[ObjectInfo | ObjectCorrupt | None]:
        """What ``head`` says of each of ``keys``, in their order, as answers rather than errors.

        A bulk header read for an order's look-up of a subject's records: one
        call instead of a ``head`` per record. Each answer is the key's
        ``ObjectInfo`` (metadata, size, hold state, etag), ``None`` if the key
        is missing (as ``head``'s ``ObjectNotFound``), or the ``ObjectCorrupt``
        error, not raised, if its header cannot be read, so one damaged object
        does not hide the others. Every key is validated before any I/O; a
        failure of the store itself (``StoreError``) fails the whole call.
        """
        ...

    async def list(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (a ``/``-terminated folder or empty), sorted."""
        ...

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove; ``ObjectLocked`` under a legal hold; deleting a missing key is ``ObjectNotFound``.

        ``if_match``: ``PreconditionFailed`` (nothing removed) unless the object's etag is that now.
        """
        ...

    async def set_legal_hold(self, key: str, on: bool) -> None:
        """Place or lift a legal hold; ``ObjectNotFound`` if the key is missing."""
        ...

    async def check(self) -> None:
        """Raise ``StoreError`` if the store cannot serve requests now."""
        ...

    async def close(self) -> None: ...


# ``/``-separated identifiers in one match (``..`` cannot span a ``/``: no segment starts with a dot)
_KEY = re.compile(rf"{IDENTIFIER_PATTERN}(?:/{IDENTIFIER_PATTERN})*")


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidRequest("object key must be a non-empty string", code="invalid-key")
    if not _KEY.fullmatch(key) or ".." in key:
        raise InvalidRequest(f"object key `{key}` must be `/`-separated identifiers", code="invalid-key")
    return key


def validate_conditions(if_absent: bool, if_match: str | None) -> None:
    """A put is create-only or replace-only, not both."""
    if if_absent and if_match is not None:
        raise InvalidRequest("a put takes `if_absent` or `if_match`, not both", code="invalid-precondition")
    if if_match is not None and (not isinstance(if_match, str) or not if_match):
        raise InvalidRequest("`if_match` must be a non-empty etag", code="invalid-precondition")


def validate_prefix(prefix: str) -> str:
    if prefix == "":
        return prefix
    if not prefix.endswith("/"):
        raise InvalidRequest(f"list prefix `{prefix}` must end with `/`", code="invalid-key")
    validate_key(prefix[:-1])
    return prefix


def validate_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    total = 0
    out: dict[str, str] = {}
    for name, value in metadata.items():
        if not METADATA_KEY.match(name):
            raise InvalidRequest(f"metadata key `{name}` must match `[a-z0-9-]`", code="invalid-metadata")
        if not isinstance(value, str) or not value.isascii() or not value.isprintable():
            raise InvalidRequest(f"metadata `{name}` must be printable ASCII", code="invalid-metadata")
        if value != value.strip():
            # S3 trims header values, so such a value would not read back the same
            raise InvalidRequest(f"metadata `{name}` must not start or end with spaces", code="invalid-metadata")
        total += len(name) + len(value)
        out[name] = value
    if total > METADATA_LIMIT:
        raise InvalidRequest(f"metadata is {total} bytes, more than {METADATA_LIMIT}", code="invalid-metadata")
    return out
