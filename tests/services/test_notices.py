"""Customer notices: scheduled on disclosure, queued once when the law allows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gateway.audit import MemoryLedger
from gateway.model import isoformat
from gateway.services.notices import NoticeService
from gateway.stores.files import FileStore
from gateway.stores.memory import MemoryStore
from tests.support import FrozenClock


def service(clock: FrozenClock, control=None) -> tuple[NoticeService, MemoryLedger]:
    ledger = MemoryLedger(clock)
    return NoticeService(control=control or MemoryStore("control"), record=ledger.append, clock=clock), ledger


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
