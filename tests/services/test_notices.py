"""Customer notices: scheduled on disclosure, queued once when the law allows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.audit import MemoryLedger
from gateway.model import isoformat
from gateway.services.audit_log import AuditLog
from gateway.services.notices import NoticeService
from gateway.stores.files import FileStore
from gateway.stores.memory import MemoryStore
from tests.services.interleaved import Interleaved
from tests.support import FrozenClock


def service(clock: FrozenClock, control=None) -> tuple[NoticeService, MemoryLedger]:
    ledger = MemoryLedger(clock)
    return NoticeService(control=control or MemoryStore("control"), audit=AuditLog(ledger), clock=clock), ledger


async def schedule(notices: NoticeService, *, nondisclosure_until: str | None = None, emergency: bool = False) -> list[str]:
    return await notices.schedule(
        authority="us-court-sdny", order_id="w-1", subjects=[("alice", ["content"])], nondisclosure_until=nondisclosure_until, emergency=emergency
    )


async def test_a_disclosure_without_a_gag_is_queued_at_the_next_sweep() -> None:
    notices, _ = service(FrozenClock())
    await schedule(notices)
    assert await notices.sweep() == 1
    assert [n["subject"] for n in await notices.outbox()] == ["alice"]


async def test_a_notice_is_queued_only_once() -> None:
    notices, _ = service(FrozenClock())
    await schedule(notices)
    await notices.sweep()
    await schedule(notices)
    assert await notices.sweep() == 0
    assert len(await notices.outbox()) == 1


async def test_a_nondisclosure_order_holds_the_notice_until_it_ends() -> None:
    clock = FrozenClock()
    notices, _ = service(clock)
    await schedule(notices, nondisclosure_until=isoformat(clock() + timedelta(days=90)))
    assert await notices.sweep() == 0
    clock.advance(days=91)
    assert await notices.sweep() == 1


async def test_an_emergency_disclosure_is_noticed_after_the_emergency() -> None:
    clock = FrozenClock()
    notices, _ = service(clock)
    await schedule(notices, emergency=True)
    assert await notices.sweep() == 0
    clock.advance(hours=49)
    assert await notices.sweep() == 1


async def test_each_notice_step_is_in_the_ledger() -> None:
    notices, ledger = service(FrozenClock())
    await schedule(notices)
    await notices.sweep()
    assert [e["kind"] for e in await ledger.entries()] == ["notice.scheduled", "notice.queued"]


async def test_two_replicas_sharing_a_store_queue_a_notice_once(tmp_path: Path) -> None:
    clock = FrozenClock()
    first, _ = service(clock, FileStore("control", tmp_path))
    second, _ = service(clock, FileStore("control", tmp_path))
    await schedule(first)
    assert await first.sweep() + await second.sweep() == 1


async def test_the_notices_of_one_disclosure_are_kept_in_one_pending_object() -> None:
    control = MemoryStore("control")
    notices, _ = service(FrozenClock(), control)
    subjects = [(name, ["content"]) for name in ("alice", "bob", "carol")]
    await notices.schedule(authority="us-court-sdny", order_id="w-1", subjects=subjects, nondisclosure_until=None, emergency=False)
    assert (len(await control.list("notices/pending/")), len(await notices.pending())) == (1, 3)


async def test_notices_beyond_a_batchs_size_go_into_further_objects(monkeypatch) -> None:
    import gateway.services.notices as module

    monkeypatch.setattr(module, "NOTICES_PER_BATCH", 2)
    control = MemoryStore("control")
    notices, _ = service(FrozenClock(), control)
    subjects = [(f"s{i}", ["content"]) for i in range(5)]
    await notices.schedule(authority="us-court-sdny", order_id="w-1", subjects=subjects, nondisclosure_until=None, emergency=False)
    assert len(await control.list("notices/pending/")) == 3
    assert await notices.sweep() == 5


async def test_a_pending_notice_written_before_batches_is_still_queued() -> None:
    import json

    from gateway.services.notices import notice_id

    control = MemoryStore("control")
    notices, _ = service(FrozenClock(), control)
    nid = notice_id("us-court-sdny", "w-1", "alice")
    old = {"id": nid, "subject": "alice", "order": "w-1", "authority": "us-court-sdny", "categories": ["content"]}
    old |= {"disclosed_at": "2026-01-01T00:00:00Z", "not_before": "2026-01-01T00:00:00Z", "reason": "disclosure"}
    await control.put(f"notices/pending/{nid}", json.dumps(old).encode(), {})
    assert await notices.sweep() == 1
    assert await control.list("notices/pending/") == []


async def test_scheduling_the_same_notices_again_while_pending_records_nothing_more() -> None:
    notices, ledger = service(FrozenClock())
    await schedule(notices)
    assert await schedule(notices) == []
    assert [e["kind"] for e in await ledger.entries()] == ["notice.scheduled"]


async def test_a_later_disclosure_to_the_same_subject_does_not_bring_an_emergency_notice_forward() -> None:
    clock = FrozenClock()
    notices, _ = service(clock)
    await schedule(notices, emergency=True)
    await notices.schedule(authority="us-court-sdny", order_id="w-1", subjects=[("alice", ["subscriber"])], nondisclosure_until=None, emergency=False)
    assert await notices.sweep() == 0
    clock.advance(hours=49)
    assert await notices.sweep() == 1


async def test_a_notice_pending_twice_is_queued_only_when_every_copy_is_due() -> None:
    import json

    from gateway.services.notices import notice_id

    clock = FrozenClock()
    control = MemoryStore("control")
    notices, _ = service(clock, control)
    nid = notice_id("us-court-sdny", "w-1", "alice")
    later = {"id": nid, "subject": "alice", "order": "w-1", "authority": "us-court-sdny", "categories": ["content"]}
    later |= {"disclosed_at": isoformat(clock()), "not_before": isoformat(clock() + timedelta(days=2)), "reason": "emergency"}
    await control.put(f"notices/pending/{nid}", json.dumps(later).encode(), {})  # a copy from before batches
    await schedule(notices)
    assert await notices.sweep() == 0
    clock.advance(days=3)
    assert (await notices.sweep(), await control.list("notices/pending/")) == (1, [])


async def test_notices_written_before_a_failed_batch_are_still_in_the_ledger(monkeypatch) -> None:
    import gateway.services.notices as module

    monkeypatch.setattr(module, "NOTICES_PER_BATCH", 1)
    control = MemoryStore("control")
    notices, ledger = service(FrozenClock(), control)
    real_put = control.put

    async def failing_put(key: str, body: bytes, metadata, *, if_absent: bool = False) -> None:
        if b'"bob"' in body:
            raise OSError("disk full")
        await real_put(key, body, metadata, if_absent=if_absent)

    monkeypatch.setattr(control, "put", failing_put)
    subjects = [("alice", ["content"]), ("bob", ["content"])]
    with pytest.raises(OSError):
        await notices.schedule(authority="us-court-sdny", order_id="w-1", subjects=subjects, nondisclosure_until=None, emergency=False)
    assert [e["data"]["subject"] for e in await ledger.entries()] == ["alice"]


async def test_a_sweep_that_lost_its_race_to_a_later_sweep_on_another_replica_brings_back_no_queued_notice() -> None:
    early, late = FrozenClock(), FrozenClock()
    late.advance(hours=49)
    control = MemoryStore("control")
    # two replicas schedule bob at the same moment, one for an emergency: his notice is pending twice, due at two times
    emergency, _ = service(early, control)
    both = [("alice", ["content"]), ("bob", ["content"])]
    racing = Interleaved(
        control,
        lambda: emergency.schedule(authority="us-court-sdny", order_id="w-1", subjects=[("bob", ["content"])], nondisclosure_until=None, emergency=True),
    )
    await service(early, racing)[0].schedule(authority="us-court-sdny", order_id="w-1", subjects=both, nondisclosure_until=None, emergency=False)
    # replica A sweeps early (alice is due, bob is not); replica B sweeps late (both are) between A's read and A's writes
    b, b_ledger = service(late, control)
    a, a_ledger = service(early, Interleaved(control, b.sweep))
    assert await a.sweep() == 0
    assert (await b.pending(), sorted(n["subject"] for n in await b.outbox())) == ([], ["alice", "bob"])
    assert ([e["kind"] for e in await a_ledger.entries()], [e["kind"] for e in await b_ledger.entries()]) == ([], ["notice.queued"] * 2)
