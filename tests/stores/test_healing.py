"""``HealingStore``: a store that is down is refused at once and prepared again, at most once per retry interval."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.errors import StoreError
from gateway.stores import MemoryStore, StoreGone
from gateway.stores.healing import HealingStore
from tests.support import Ticks

REGION = "eu-central-1"
RETRY = 5.0


class BucketStore(MemoryStore):
    """The in-memory twin with a bucket that can be missing, and an endpoint that can be unreachable."""

    def __init__(self) -> None:
        super().__init__(REGION)
        self.bucket_exists = False
        self.reachable = True
        self.preparations = 0

    async def ensure_bucket(self) -> None:  # what ``prepare_store`` calls on an S3 store
        self.preparations += 1
        if not self.reachable:
            raise StoreError(f"S3 store of `{REGION}` failed to create bucket: could not connect", region=REGION)
        self.bucket_exists = True

    def lose_bucket(self) -> None:
        self.bucket_exists = False
        self._objects.clear()

    async def get(self, key: str):  # type: ignore[no-untyped-def]
        if not self.bucket_exists:
            raise StoreGone(f"S3 store of `{REGION}` failed to get `{key}`: bucket does not exist", region=REGION)
        return await super().get(key)

    async def put(self, key: str, body: bytes, metadata, *, if_absent: bool = False, if_match: str | None = None) -> str:  # type: ignore[no-untyped-def]
        if not self.bucket_exists:
            raise StoreGone(f"S3 store of `{REGION}` failed to put `{key}`: bucket does not exist", region=REGION)
        return await super().put(key, body, metadata, if_absent=if_absent, if_match=if_match)


async def _settled() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_store_whose_preparation_failed_refuses_calls_at_once_naming_its_region() -> None:
    inner = BucketStore()
    inner.reachable = False
    store = HealingStore(inner, retry_seconds=RETRY, monotonic=Ticks())
    assert await store.prepare() is not None
    with pytest.raises(StoreError) as refused:
        await store.get("subjects/hanna/profile")
    assert refused.value.code == "store-unavailable" and refused.value.details["region"] == REGION
    assert "is down" in refused.value.message


async def test_a_down_store_is_prepared_again_at_most_once_per_retry_interval() -> None:
    ticks = Ticks()
    inner = BucketStore()
    inner.reachable = False
    store = HealingStore(inner, retry_seconds=RETRY, monotonic=ticks)
    await store.prepare()
    for _ in range(20):
        with pytest.raises(StoreError):
            await store.get("subjects/hanna/profile")
        with pytest.raises(StoreError):
            await store.check()
        await _settled()
    assert inner.preparations == 1
    ticks.advance(RETRY)
    with pytest.raises(StoreError):
        await store.get("subjects/hanna/profile")
    await _settled()
    assert inner.preparations == 2


async def test_a_down_store_serves_again_once_a_preparation_works() -> None:
    ticks = Ticks()
    inner = BucketStore()
    inner.reachable = False
    store = HealingStore(inner, retry_seconds=RETRY, monotonic=ticks)
    await store.prepare()
    inner.reachable = True
    ticks.advance(RETRY)
    await store.check()  # the health check prepares it again, and reports it up
    await store.put("subjects/hanna/profile", b"{}", {})
    assert (await store.get("subjects/hanna/profile")).body == b"{}"


async def test_a_store_that_finds_its_bucket_gone_makes_it_again_without_waiting_for_a_health_check() -> None:
    ticks = Ticks()
    inner = BucketStore()
    store = HealingStore(inner, retry_seconds=RETRY, monotonic=ticks)
    assert await store.prepare() is None
    ticks.advance(RETRY)
    inner.lose_bucket()
    with pytest.raises(StoreGone):
        await store.put("subjects/hanna/records/mail-1", b"x", {})
    await _settled()
    assert inner.bucket_exists and inner.preparations == 2
    await store.put("subjects/hanna/records/mail-1", b"x", {})


async def test_each_transition_is_logged_once_and_names_no_record(caplog: pytest.LogCaptureFixture) -> None:
    ticks = Ticks()
    inner = BucketStore()
    store = HealingStore(inner, retry_seconds=RETRY, monotonic=ticks)
    await store.prepare()
    ticks.advance(RETRY)
    inner.lose_bucket()
    inner.reachable = False
    with caplog.at_level(logging.WARNING, logger="gateway.stores"):
        for _ in range(3):
            with pytest.raises(StoreError):
                await store.get("subjects/hanna/profile")
            await _settled()
        inner.reachable = True
        ticks.advance(RETRY)
        await store.check()
    events = [r.__dict__.get("event") for r in caplog.records]
    assert events == ["store-down", "store-up"]
    assert not any("hanna" in r.getMessage() for r in caplog.records)
