"""Two replicas placing and sweeping legal holds on one record at the same moment: no holder is lost, a release happens once.

Each replica is a ``Holds`` with its own ledger over one control store and one
regional store. Replica A's control-store writes go through ``Interleaved``,
so replica B's whole placement or sweep lands between A's read of the hold
book and A's write.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gateway.audit import MemoryLedger
from gateway.model import isoformat
from gateway.services.audit_log import AuditLog
from gateway.services.holds import Holds
from gateway.services.records import record_key
from gateway.stores import MemoryStore, ObjectNotFound
from tests.services.interleaved import Interleaved
from tests.support import FrozenClock

REGION, SUBJECT, KEY = "eu-west-1", "aoife", "mail-1"
BOOK = f"holds/{REGION}/{SUBJECT}/{KEY}"


@dataclass
class Replica:
    holds: Holds
    ledger: MemoryLedger

    async def kinds(self) -> list[str]:
        return [e["kind"] for e in await self.ledger.entries()]


class Shared:
    """The stores two replicas share, and a record in the region."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.control = MemoryStore("control")
        self.region = MemoryStore(REGION)

    def replica(self, meanwhile: Callable[[], Awaitable[Any]] | None = None) -> Replica:
        ledger = MemoryLedger(self.clock)
        control = self.control if meanwhile is None else Interleaved(self.control, meanwhile)
        return Replica(Holds(control=control, stores={REGION: self.region}, audit=AuditLog(ledger), clock=self.clock), ledger)

    async def held(self) -> bool:
        return (await self.region.head(record_key(SUBJECT, KEY))).legal_hold

    async def book(self) -> dict[str, str] | None:
        try:
            return json.loads((await self.control.get(BOOK)).body)["holds"]
        except ObjectNotFound:
            return None


async def shared_with_record() -> Shared:
    shared = Shared(FrozenClock())
    await shared.region.put(record_key(SUBJECT, KEY), b"a record", {})
    return shared


def days(shared: Shared, n: int) -> str:
    return isoformat(shared.clock() + timedelta(days=n))


async def test_two_replicas_holding_one_record_at_once_keep_both_holders() -> None:
    shared = await shared_with_record()
    b = shared.replica()
    a = shared.replica(lambda: b.holds.place(REGION, SUBJECT, KEY, "fr-judge/p-2", days(shared, 60)))
    await a.holds.place(REGION, SUBJECT, KEY, "us-doj/p-1", days(shared, 90))
    assert await shared.book() == {"fr-judge/p-2": days(shared, 60), "us-doj/p-1": days(shared, 90)}
    assert await shared.held()
    assert (await a.kinds(), await b.kinds()) == (["hold.placed"], ["hold.placed"])


async def test_two_replicas_sweeping_a_due_hold_at_once_release_it_once() -> None:
    shared = await shared_with_record()
    await shared.replica().holds.place(REGION, SUBJECT, KEY, "us-doj/p-1", days(shared, 90))
    shared.clock.advance(days=90)
    b = shared.replica()
    a = shared.replica(b.holds.sweep)
    assert await a.holds.sweep() == 0
    assert (await shared.book(), await shared.held()) == (None, False)
    assert (await a.kinds(), await b.kinds()) == ([], ["hold.released"])


async def test_a_hold_placed_on_another_replica_while_a_sweep_releases_the_record_keeps_it_held() -> None:
    shared = await shared_with_record()
    await shared.replica().holds.place(REGION, SUBJECT, KEY, "us-doj/p-1", days(shared, 90))
    shared.clock.advance(days=90)
    b = shared.replica()
    a = shared.replica(lambda: b.holds.place(REGION, SUBJECT, KEY, "fr-judge/p-2", days(shared, 30)))
    assert await a.holds.sweep() == 0
    assert await shared.book() == {"fr-judge/p-2": days(shared, 30)}
    assert await shared.held()
    assert (await a.kinds(), await b.kinds()) == ([], ["hold.placed"])
