"""``MemoryStore``: the in-memory twin of the regional stores, for unit tests.

Same validation and semantics as ``FileStore`` and ``S3Store`` (it passes the
same contract suite), no I/O. Every method completes without awaiting
anything, so check-then-act (legal hold, ``if_absent``, ``if_match``) is
atomic on the loop. An etag is a counter, new on every put.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.stores.base import (
    ObjectCorrupt,
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    PreconditionFailed,
    StoredObject,
    validate_conditions,
    validate_key,
    validate_metadata,
    validate_prefix,
)


@dataclass(frozen=True, slots=True)
class _Entry:
    body: bytes
    metadata: Mapping[str, str]
    etag: str


class MemoryStore:
    """Objects in a dict; legal holds in a set."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._objects: dict[str, _Entry] = {}
        self._holds: set[str] = set()
        self._puts = 0

    async def put(self, key: str, body: bytes, metadata: Mapping[str, str], *, if_absent: bool = False, if_match: str | None = None) -> str:
        validate_key(key)
        clean = validate_metadata(metadata)
        validate_conditions(if_absent, if_match)
        if key in self._holds:
            raise ObjectLocked(f"object `{key}` in `{self.region}` is under a legal hold")
        if if_absent and key in self._objects:
            raise PreconditionFailed(f"object `{key}` already exists in `{self.region}`")
        if if_match is not None:
            self._require(key, if_match)
        self._puts += 1
        etag = f'"m{self._puts}"'
        self._objects[key] = _Entry(bytes(body), clean, etag)
        return etag

    async def get(self, key: str) -> StoredObject:
        entry = self._entry(validate_key(key))
        return StoredObject(key, entry.body, dict(entry.metadata), key in self._holds, entry.etag)

    async def get_bodies(self, keys: Sequence[str]) -> list[bytes]:
        for key in keys:
            validate_key(key)
        return [self._entry(key).body for key in keys]

    async def head(self, key: str) -> ObjectInfo:
        return self._info(validate_key(key))

    async def heads(self, keys: Sequence[str]) -> list[ObjectInfo | ObjectCorrupt | None]:
        for key in keys:
            validate_key(key)
        return [self._info(key) if key in self._objects else None for key in keys]

    async def list(self, prefix: str) -> list[str]:
        validate_prefix(prefix)
        return sorted(k for k in self._objects if k.startswith(prefix))

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        self._entry(validate_key(key))
        if key in self._holds:
            raise ObjectLocked(f"object `{key}` in `{self.region}` is under a legal hold")
        if if_match is not None:
            self._require(key, if_match)
        del self._objects[key]

    async def set_legal_hold(self, key: str, on: bool) -> None:
        self._entry(validate_key(key))
        if on:
            self._holds.add(key)
        else:
            self._holds.discard(key)

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _require(self, key: str, etag: str) -> None:
        entry = self._objects.get(key)
        if entry is None or entry.etag != etag:
            raise PreconditionFailed(f"object `{key}` in `{self.region}` is not at version {etag}")

    def _info(self, key: str) -> ObjectInfo:
        entry = self._entry(key)
        return ObjectInfo(key, len(entry.body), dict(entry.metadata), key in self._holds, entry.etag)

    def _entry(self, key: str) -> _Entry:
        try:
            return self._objects[key]
        except KeyError:
            raise ObjectNotFound(f"object `{key}` does not exist in `{self.region}`") from None
