"""Customer notices: who was disclosed, queued for a mail system when the law allows.

When data about a subject is disclosed (at once, after two approvals, or when
an EU hold is released) a notice is scheduled for that subject. It becomes
due when the order's ``nondisclosure_until`` has passed, and for an emergency
disclosure only after the emergency (a configurable delay). ``sweep`` moves
due notices into the outbox (``outbox/<id>.json`` in the control store), which
a mail system consumes. Each notice is written once, whatever the number of
replicas: the outbox entry is created only if absent.

A notice holds ids, categories and times: the mail system looks up how to
reach the customer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from gateway.model import Clock, isoformat, parse_time
from gateway.stores import ObjectNotFound, PreconditionFailed, RecordStore

Recorder = Callable[[str, Mapping[str, Any]], Awaitable[dict[str, Any]]]
PENDING, OUTBOX = "notices/pending/", "outbox/"


def notice_id(authority: str, order_id: str, subject: str) -> str:
    return "notice-" + hashlib.sha256(f"{authority}\0{order_id}\0{subject}".encode()).hexdigest()[:16]


SCHEDULE_CONCURRENCY = 32  # notices written at once for one order


class NoticeService:
    def __init__(self, *, control: RecordStore, record: Recorder, clock: Clock, emergency_delay: timedelta = timedelta(hours=48)) -> None:
        self.control = control
        self.record = record
        self.clock = clock
        self.emergency_delay = emergency_delay

    async def schedule(
        self,
        *,
        authority: str,
        order_id: str,
        subjects: Iterable[tuple[str, list[str]]],
        nondisclosure_until: str | None,
        emergency: bool,
    ) -> list[str]:
        """A pending notice per (subject, categories disclosed); returns the ids newly scheduled."""
        now = self.clock()
        due: datetime = now + self.emergency_delay if emergency else now
        if nondisclosure_until:
            due = max(due, parse_time(nondisclosure_until))
        limiter = asyncio.Semaphore(SCHEDULE_CONCURRENCY)

        async def one(subject: str, categories: list[str]) -> str | None:
            nid = notice_id(authority, order_id, subject)
            notice = {
                "id": nid,
                "subject": subject,
                "order": order_id,
                "authority": authority,
                "categories": sorted(set(categories)),
                "disclosed_at": isoformat(now),
                "not_before": isoformat(due),
                "reason": "emergency" if emergency else ("non-disclosure ended" if nondisclosure_until else "disclosure"),
            }
            async with limiter:
                try:
                    await self.control.put(PENDING + nid, json.dumps(notice).encode(), {}, if_absent=True)
                except PreconditionFailed:
                    return None
                await self.record("notice.scheduled", {"notice": nid, "order": order_id, "subject": subject, "not_before": notice["not_before"]})
            return nid

        # An order may name thousands of subjects: their writes overlap, and their ledger entries share fsyncs.
        done = await asyncio.gather(*(one(subject, categories) for subject, categories in subjects))
        return [nid for nid in done if nid is not None]

    async def sweep(self) -> int:
        """Move every due notice into the outbox, once; returns how many were queued."""
        now = isoformat(self.clock())
        queued = 0
        for key in await self.control.list(PENDING):
            try:
                notice = json.loads((await self.control.get(key)).body)
            except ObjectNotFound:
                continue
            if notice["not_before"] > now:
                continue
            try:
                await self.control.put(OUTBOX + notice["id"], json.dumps({**notice, "queued_at": now}).encode(), {}, if_absent=True)
            except PreconditionFailed:
                pass  # another replica queued it
            else:
                await self.record("notice.queued", {"notice": notice["id"], "order": notice["order"], "subject": notice["subject"]})
                queued += 1
            with contextlib.suppress(ObjectNotFound):
                await self.control.delete(key)
        return queued

    async def outbox(self) -> list[dict[str, Any]]:
        return [json.loads((await self.control.get(k)).body) for k in await self.control.list(OUTBOX)]

    async def pending(self) -> list[dict[str, Any]]:
        out = []
        for key in await self.control.list(PENDING):
            try:
                out.append(json.loads((await self.control.get(key)).body))
            except ObjectNotFound:
                continue
        return out
