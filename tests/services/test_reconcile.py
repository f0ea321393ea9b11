"""Write intents without an outcome are settled against the store, and the ledger says how."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.audit import FileLedger
from gateway.canonical import sha256_hex
from gateway.errors import StoreError
from gateway.metrics import GatewayMetrics
from gateway.services.audit_log import AuditLog
from gateway.services.reconcile import Reconciler
from gateway.stores.memory import MemoryStore
from tests.support import FrozenClock

REGION = "eu-west-1"
KEY = "mail-1"
OBJECT = f"subjects/aoife/records/{KEY}"
WAIT = 30
BY = {"principal": "crm", "role": "service", "service": "crm", "region": REGION, "purpose": "crm"}


class DownStore(MemoryStore):
    """A region's store that can be taken down: every read fails as an unreachable store would."""

    down = False

    async def get(self, key: str) -> Any:
        if self.down:
            raise StoreError(f"store `{self.region}` is unreachable")
        return await super().get(key)


class World:
    def __init__(self, ledger: FileLedger, store: DownStore, clock: FrozenClock, metrics: GatewayMetrics) -> None:
        self.ledger, self.store, self.clock, self.metrics = ledger, store, clock, metrics
        self.reconciler = Reconciler(ledger_path=ledger.path, stores={REGION: store}, audit=AuditLog(ledger, metrics), clock=clock, wait=WAIT)

    async def write_intent(self, body: bytes, *, replaces: str | None = None) -> int:
        data = {
            "subject": "aoife",
            "key": KEY,
            "region": REGION,
            "category": "content",
            "sha256": sha256_hex(body),
            "size": len(body),
            "by": BY,
            "outcome": "allow",
            "reasons": [],
            "mechanism": None,
            "profile_sha256": "0" * 64,
            "object": OBJECT,
            "replaces": replaces,
        }
        return int((await self.ledger.append("record.write-intent", data))["seq"])

    async def delete_intent(self, replaces: str) -> int:
        data = {"subject": "aoife", "key": KEY, "region": REGION, "by": BY, "object": OBJECT, "replaces": replaces}
        return int((await self.ledger.append("record.delete-intent", data))["seq"])

    async def written(self, intent: int, body: bytes) -> None:
        await self.ledger.append("record.written", {"subject": "aoife", "key": KEY, "region": REGION, "sha256": sha256_hex(body), "intent": intent})

    async def store_body(self, body: bytes) -> None:
        await self.store.put(OBJECT, body, {})

    async def reconciled(self) -> list[dict[str, Any]]:
        return [e["data"] for e in await self.ledger.entries() if e["kind"] == "record.reconciled"]

    def later(self) -> None:
        self.clock.advance(seconds=WAIT + 1)


@pytest.fixture
async def world(tmp_path: Path):
    clock = FrozenClock()
    ledger = await FileLedger.open(tmp_path / "ledger.jsonl", clock)
    yield World(ledger, DownStore(REGION), clock, GatewayMetrics(CollectorRegistry()))
    await ledger.close()


async def test_a_write_intent_whose_bytes_are_stored_is_reconciled_as_written(world: World) -> None:
    seq = await world.write_intent(b"v1")
    await world.store_body(b"v1")
    world.later()
    await world.reconciler.run_once()
    assert await world.reconciled() == [{"intent": seq, "object": OBJECT, "region": REGION, "result": "written"}]


async def test_a_write_intent_whose_object_is_absent_is_reconciled_as_not_written(world: World) -> None:
    seq = await world.write_intent(b"v1")
    world.later()
    await world.reconciler.run_once()
    assert await world.reconciled() == [{"intent": seq, "object": OBJECT, "region": REGION, "result": "not-written"}]


async def test_a_write_intent_whose_object_holds_other_bytes_is_reconciled_as_not_written(world: World) -> None:
    await world.store_body(b"v0")
    seq = await world.write_intent(b"v1", replaces=sha256_hex(b"v0"))
    world.later()
    await world.reconciler.run_once()
    assert [(r["intent"], r["result"]) for r in await world.reconciled()] == [(seq, "not-written")]


async def test_a_delete_intent_whose_object_is_gone_is_reconciled_as_deleted(world: World) -> None:
    seq = await world.delete_intent(sha256_hex(b"v0"))
    world.later()
    await world.reconciler.run_once()
    assert [(r["intent"], r["result"]) for r in await world.reconciled()] == [(seq, "deleted")]


async def test_a_delete_intent_whose_object_is_still_stored_is_reconciled_as_not_deleted(world: World) -> None:
    await world.store_body(b"v0")
    seq = await world.delete_intent(sha256_hex(b"v0"))
    world.later()
    await world.reconciler.run_once()
    assert [(r["intent"], r["result"]) for r in await world.reconciled()] == [(seq, "not-deleted")]


async def test_an_open_intent_overtaken_by_a_later_written_outcome_is_superseded_without_reading_the_store(world: World) -> None:
    first = await world.write_intent(b"v1")
    second = await world.write_intent(b"v2")
    await world.written(second, b"v2")
    world.store.down = True  # the store is not asked
    world.later()
    await world.reconciler.run_once()
    assert [(r["intent"], r["result"]) for r in await world.reconciled()] == [(first, "superseded")]


async def test_an_open_intent_followed_by_an_open_intent_that_took_effect_is_superseded(world: World) -> None:
    first = await world.write_intent(b"v1")
    second = await world.write_intent(b"v2")
    await world.store_body(b"v2")
    world.later()
    await world.reconciler.run_once()
    assert [(r["intent"], r["result"]) for r in await world.reconciled()] == [(first, "superseded"), (second, "written")]


async def test_an_open_intent_whose_bytes_are_stored_is_written_even_when_a_later_intent_did_not_take_effect(world: World) -> None:
    first = await world.write_intent(b"v1")
    await world.store_body(b"v1")
    second = await world.write_intent(b"v2", replaces=sha256_hex(b"v1"))
    world.later()
    await world.reconciler.run_once()
    assert [(r["intent"], r["result"]) for r in await world.reconciled()] == [(first, "written"), (second, "not-written")]


async def test_an_intent_in_a_region_that_is_down_stays_open_and_is_reconciled_on_the_next_pass(world: World) -> None:
    seq = await world.write_intent(b"v1")
    await world.store_body(b"v1")
    world.store.down = True
    world.later()
    first = await world.reconciler.run_once()
    assert (first.unreachable, await world.reconciled()) == (1, [])
    world.store.down = False
    await world.reconciler.run_once()
    assert [(r["intent"], r["result"]) for r in await world.reconciled()] == [(seq, "written")]


async def test_an_intent_left_open_by_a_region_that_is_down_is_shown_by_the_open_intents_gauge(world: World) -> None:
    await world.write_intent(b"v1")
    world.store.down = True
    world.later()
    await world.reconciler.run_once()
    assert world.metrics.registry.get_sample_value("gateway_write_intents_open") == 1.0


async def test_an_intent_younger_than_the_wait_is_left_alone(world: World) -> None:
    await world.write_intent(b"v1")
    world.clock.advance(seconds=WAIT - 1)
    report = await world.reconciler.run_once()
    assert (report.waiting, await world.reconciled()) == (1, [])


async def test_an_intent_with_an_outcome_is_never_reconciled(world: World) -> None:
    seq = await world.write_intent(b"v1")
    await world.store_body(b"v1")
    await world.written(seq, b"v1")
    world.later()
    await world.reconciler.run_once()
    assert await world.reconciled() == []


async def test_an_intent_whose_write_failed_is_never_reconciled(world: World) -> None:
    seq = await world.write_intent(b"v1")
    await world.ledger.append("record.write-failed", {"intent": seq, "code": "store-unavailable"})
    world.later()
    await world.reconciler.run_once()
    assert await world.reconciled() == []


async def test_a_second_pass_adds_nothing(world: World) -> None:
    await world.write_intent(b"v1")
    world.later()
    await world.reconciler.run_once()
    before = len(await world.ledger.entries())
    again = await world.reconciler.run_once()
    assert (again.total, len(await world.ledger.entries())) == (0, before)


async def test_a_new_reconciler_on_the_same_ledger_does_not_reconcile_an_intent_again(world: World) -> None:
    await world.write_intent(b"v1")
    world.later()
    await world.reconciler.run_once()
    fresh = Reconciler(ledger_path=world.ledger.path, stores={REGION: world.store}, audit=AuditLog(world.ledger), clock=world.clock, wait=WAIT)
    assert (await fresh.run_once()).total == 0


async def test_intents_appended_after_a_pass_are_found_by_the_next(world: World) -> None:
    await world.reconciler.run_once()
    seq = await world.write_intent(b"v1")
    world.later()
    await world.reconciler.run_once()
    assert [(r["intent"], r["result"]) for r in await world.reconciled()] == [(seq, "not-written")]


async def test_a_profile_write_intent_is_reconciled_against_the_stored_profile(world: World) -> None:
    profile = b'{"home_region":"eu-west-1","residence":"IE","subject":"aoife"}'
    data = {"subject": "aoife", "region": REGION, "by": BY, "object": "subjects/aoife/profile", "sha256": sha256_hex(profile)}
    data |= {"replaces": None, "act": "registered"}
    seq = int((await world.ledger.append("subject.write-intent", data))["seq"])
    await world.store.put("subjects/aoife/profile", profile, {})
    world.later()
    await world.reconciler.run_once()
    assert await world.reconciled() == [{"intent": seq, "object": "subjects/aoife/profile", "region": REGION, "result": "written"}]


async def test_an_intent_another_replica_settles_while_the_store_is_read_is_not_settled_twice(world: World) -> None:
    seq = await world.write_intent(b"v1")
    other = {"intent": seq, "object": OBJECT, "region": REGION, "result": "not-written"}

    class RacedStore(DownStore):
        async def get(self, key: str) -> Any:
            await world.ledger.append("record.reconciled", other)  # the other replica's pass lands first
            return await super().get(key)

    raced = RacedStore(REGION)
    reconciler = Reconciler(ledger_path=world.ledger.path, stores={REGION: raced}, audit=AuditLog(world.ledger), clock=world.clock, wait=WAIT)
    world.later()
    await reconciler.run_once()
    assert await world.reconciled() == [other]


async def test_an_open_write_whose_bytes_a_later_intent_replaces_is_written_without_reading_the_store(world: World) -> None:
    first = await world.write_intent(b"v1")
    second = await world.write_intent(b"v2", replaces=sha256_hex(b"v1"))
    await world.written(second, b"v2")
    world.store.down = True  # the later intent found v1 stored: the ledger alone says so
    world.later()
    await world.reconciler.run_once()
    assert [(r["intent"], r["result"]) for r in await world.reconciled()] == [(first, "written")]


async def test_an_open_delete_followed_by_a_write_that_found_nothing_is_deleted_without_reading_the_store(world: World) -> None:
    first = await world.delete_intent(sha256_hex(b"v0"))
    second = await world.write_intent(b"v1", replaces=None)
    await world.written(second, b"v1")
    world.store.down = True
    world.later()
    await world.reconciler.run_once()
    assert [(r["intent"], r["result"]) for r in await world.reconciled()] == [(first, "deleted")]
