"""A store through which another writer gets in between a read and the conditional write that follows it.

``Interleaved`` wraps one of the project's stores. Before each of its first
``times`` writes (a put or a delete, conditional or not; with ``only``, of a key
starting with it) it runs ``meanwhile``: another gateway's whole update, made
on the inner store, as a replica would make it on the shared one between this
writer's read and its write. Reads go straight to the inner store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.stores import RecordStore


class Interleaved:
    def __init__(self, inner: RecordStore, meanwhile: Callable[[], Awaitable[Any]], *, times: int = 1, only: str = "") -> None:
        self.inner = inner
        self.only = only
        self.region = inner.region
        self.meanwhile = meanwhile
        self.left = times
        self.writes = 0

    async def _race(self, key: str) -> None:
        self.writes += 1
        if self.left > 0 and key.startswith(self.only):
            self.left -= 1
            await self.meanwhile()

    async def put(self, key: str, body: bytes, metadata: Mapping[str, str], *, if_absent: bool = False, if_match: str | None = None) -> str:
        await self._race(key)
        return await self.inner.put(key, body, metadata, if_absent=if_absent, if_match=if_match)

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        await self._race(key)
        await self.inner.delete(key, if_match=if_match)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
