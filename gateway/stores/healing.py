"""``HealingStore``: a store that is prepared again, by itself, while it is down.

The runtime wraps every region's store and the control store in one. A store
is *prepared* (``prepare_store``: its S3 bucket made, or only checked with
``create_bucket = false``; its folders made) at start-up, and is *down* while
that has not worked:

- at start-up, a store whose preparation fails is down, and the gateway starts
  with it down unless ``[startup] require_all_regions`` asks otherwise;
- while running, a call that finds the store itself gone (``StoreGone``: an S3
  bucket that no longer exists, as after an endpoint restarted empty) marks it
  down.

A down store refuses every call at once with ``store-unavailable`` naming its
region (no call waits for a dead endpoint), and is prepared again in the
background: when a call or a health check finds it down, but never more than
once per ``retry_seconds`` (the health cache time), so a store that is down is
not hammered. Once a preparation works the store serves again, without a
restart. Each transition (up to down, down to up) is logged once, with the
store's name and the problem, never a record key or subject id.

Only a missing store marks it down: a call that times out or finds the endpoint
unreachable fails by itself (bounded by the S3 deadline) and the next call tries
again, so a short outage needs no preparation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from gateway.errors import GatewayError, StoreError
from gateway.stores.base import ObjectCorrupt, ObjectInfo, RecordStore, StoredObject, StoreGone
from gateway.stores.factory import prepare_store

log = logging.getLogger("gateway.stores")

T = TypeVar("T")

NOT_PREPARED = "not prepared yet"


class HealingStore:
    """``inner``, refused while down and prepared again in the background (see the module docstring)."""

    def __init__(self, inner: RecordStore, *, retry_seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.region = inner.region
        self.retry_seconds = retry_seconds
        self._now = monotonic
        self.problem: str | None = NOT_PREPARED  # None: up
        self._attempted_at: float | None = None  # when the last preparation started (health clock)
        self._preparing: asyncio.Task[str | None] | None = None
        self._closed = False

    @property
    def up(self) -> bool:
        return self.problem is None

    # --- preparation -----------------------------------------------------------

    async def prepare(self) -> str | None:
        """Prepare the store now (joining one already running); the problem, or None once it is up."""
        if self._preparing is None:
            self._preparing = asyncio.ensure_future(self._prepare())
        return await asyncio.shield(self._preparing)

    def _due(self) -> bool:
        return self._attempted_at is None or self._now() - self._attempted_at >= self.retry_seconds

    def heal(self) -> None:
        """Start a preparation in the background if the store is down and none ran within ``retry_seconds``."""
        if self.problem is not None and self._preparing is None and not self._closed and self._due():
            self._preparing = asyncio.ensure_future(self._prepare())

    async def _prepare(self) -> str | None:
        self._attempted_at = self._now()
        try:
            await prepare_store(self.inner)
        except GatewayError as exc:
            self._down(exc.message)  # a preparation names no record
        except Exception as exc:  # a preparation reports; the next one may work
            self._down(type(exc).__name__)
        else:
            if self.problem is not None and self.problem != NOT_PREPARED:
                log.warning("store is up again", extra={"event": "store-up", "region": self.region})
            self.problem = None
        finally:
            self._preparing = None
        return self.problem

    def _down(self, problem: str) -> None:
        if self.problem is None or self.problem == NOT_PREPARED:
            log.warning(
                "store is down: %s; it is prepared again in the background", problem, extra={"event": "store-down", "region": self.region}
            )
        self.problem = problem

    def _gone(self) -> None:
        """A call found the store itself missing: down now, and prepared again as soon as allowed."""
        if self.problem is None:
            self._down(f"the store of `{self.region}` is gone (its bucket no longer exists)")
        self.heal()

    # --- the port, refused while down -----------------------------------------

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        if self.problem is not None:
            self.heal()
            raise StoreError(
                f"the store of `{self.region}` is down ({self.problem}); it is being prepared again, retry later",
                region=self.region,
            )
        try:
            return await call()
        except StoreGone:
            self._gone()
            raise

    async def put(self, key: str, body: bytes, metadata: Mapping[str, str], *, if_absent: bool = False, if_match: str | None = None) -> str:
        return await self._call(lambda: self.inner.put(key, body, metadata, if_absent=if_absent, if_match=if_match))

    async def get(self, key: str) -> StoredObject:
        return await self._call(lambda: self.inner.get(key))

    async def head(self, key: str) -> ObjectInfo:
        return await self._call(lambda: self.inner.head(key))

    async def get_bodies(self, keys: Sequence[str]) -> list[bytes]:
        return await self._call(lambda: self.inner.get_bodies(keys))

    async def heads(self, keys: Sequence[str]) -> list[ObjectInfo | ObjectCorrupt | None]:
        return await self._call(lambda: self.inner.heads(keys))

    async def list(self, prefix: str) -> list[str]:
        return await self._call(lambda: self.inner.list(prefix))

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        await self._call(lambda: self.inner.delete(key, if_match=if_match))

    async def set_legal_hold(self, key: str, on: bool) -> None:
        await self._call(lambda: self.inner.set_legal_hold(key, on))

    async def check(self) -> None:
        """The health check: a down store is prepared again here (when due) and reports the outcome."""
        if self.problem is None:
            try:
                await self.inner.check()
                return
            except StoreGone:
                self._gone()
            if self._preparing is not None:
                await asyncio.shield(self._preparing)
        elif self._due():
            await self.prepare()
        elif self._preparing is not None:
            await asyncio.shield(self._preparing)
        if self.problem is not None:
            raise StoreError(self.problem, region=self.region)

    async def close(self) -> None:
        self._closed = True
        if self._preparing is not None:
            self._preparing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._preparing
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # the adapter's own attributes (``bucket``, ``root``...) for operators' tools and tests
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
