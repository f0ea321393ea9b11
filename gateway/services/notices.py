"""Customer notices: who was disclosed, queued for a mail system when the law allows.

When data about a subject is disclosed (at once, after two approvals, or when
an EU hold is released) a notice is scheduled for that subject. It becomes
due when the order's ``nondisclosure_until`` has passed, and for an emergency
disclosure only after the emergency (a configurable delay). ``sweep`` moves
due notices into the outbox (``outbox/<id>`` in the control store), which a
mail system consumes. Each notice reaches the outbox once, whatever the number
of replicas: the outbox entry is created only if absent, and a pending object
loses its queued notices by compare-and-swap (``gateway.services.shared``).

The notices one disclosure schedules are kept together, up to
``NOTICES_PER_BATCH`` to an object under ``notices/pending/<order>/``, so an
order naming thousands of subjects writes a few durable objects, not
thousands. A subject whose notice for the order is already pending is not
scheduled again (its first schedule decides when it may go out, as an
emergency's delay must hold). A sweep queues each due notice once, only when
every pending copy of it is due, and removes the objects it has emptied. A
pending object from before batches (one notice) is still read.

A notice holds ids, categories and times: the mail system looks up how to
reach the customer.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from gateway.model import Clock, isoformat, parse_time
from gateway.services.audit_log import AuditLog
from gateway.services.shared import REMOVE, Codec, Removal, update
from gateway.stores import ObjectNotFound, PreconditionFailed, RecordStore

PENDING, OUTBOX = "notices/pending/", "outbox/"


def notice_id(authority: str, order_id: str, subject: str) -> str:
    return "notice-" + hashlib.sha256(f"{authority}\0{order_id}\0{subject}".encode()).hexdigest()[:16]


NOTICES_PER_BATCH = 1000  # notices kept in one pending object


def _order_folder(authority: str, order_id: str) -> str:
    digest = hashlib.sha256("\0".join([authority, order_id]).encode()).hexdigest()[:16]
    return f"{PENDING}{digest}/"


def _batch_key(folder: str, ids: list[str]) -> str:
    digest = hashlib.sha256("\0".join(ids).encode()).hexdigest()[:16]
    return f"{folder}batch-{digest}"


def _notices_in(body: bytes) -> list[dict[str, Any]]:
    """The notices of a pending object: a batch, or one notice written before batches."""
    data = json.loads(body)
    return list(data["notices"]) if "notices" in data else [data]


PENDING_NOTICES: Codec[list[dict[str, Any]]] = Codec(_notices_in, lambda notices: json.dumps({"notices": notices}).encode())


def _without(notices: list[dict[str, Any]] | None, *, settled: set[str]) -> list[dict[str, Any]] | Removal | None:
    """A pending object's notices but those ``settled`` (queued now or before); ``REMOVE`` when none is left."""
    if notices is None:
        return None  # emptied and removed meanwhile by another replica
    left = [n for n in notices if n["id"] not in settled]
    if len(left) == len(notices):
        return None
    return left or REMOVE


class NoticeService:
    def __init__(self, *, control: RecordStore, audit: AuditLog, clock: Clock, emergency_delay: timedelta = timedelta(hours=48)) -> None:
        self.control = control
        self.audit = audit
        self.clock = clock
        self.emergency_delay = emergency_delay

    async def _read(self, keys: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """The notices of each pending object that still exists."""
        found: dict[str, list[dict[str, Any]]] = {}
        for key in keys:
            try:
                found[key] = _notices_in((await self.control.get(key)).body)
            except ObjectNotFound:
                continue
        return found

    async def schedule(
        self,
        *,
        authority: str,
        order_id: str,
        subjects: Iterable[tuple[str, list[str]]],
        nondisclosure_until: str | None,
        emergency: bool,
    ) -> list[str]:
        """A pending notice per (subject, categories disclosed); returns the ids newly scheduled.

        A subject whose notice for this order is already pending is left as it is
        (its first schedule decides when it may be sent).
        """
        now = self.clock()
        due: datetime = now + self.emergency_delay if emergency else now
        if nondisclosure_until:
            due = max(due, parse_time(nondisclosure_until))
        reason = "emergency" if emergency else ("non-disclosure ended" if nondisclosure_until else "disclosure")
        folder = _order_folder(authority, order_id)
        pending = {n["id"] for notices in (await self._read(await self.control.list(folder))).values() for n in notices}
        notices: dict[str, dict[str, Any]] = {}
        for subject, categories in subjects:
            nid = notice_id(authority, order_id, subject)
            if nid in pending:
                continue
            notices[nid] = {
                "id": nid,
                "subject": subject,
                "order": order_id,
                "authority": authority,
                "categories": sorted(set(categories)),
                "disclosed_at": isoformat(now),
                "not_before": isoformat(due),
                "reason": reason,
            }
        listed = list(notices.values())
        batches = [listed[i : i + NOTICES_PER_BATCH] for i in range(0, len(listed), NOTICES_PER_BATCH)]

        async def write(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
            try:
                await self.control.put(_batch_key(folder, [n["id"] for n in batch]), json.dumps({"notices": batch}).encode(), {}, if_absent=True)
            except PreconditionFailed:
                return []  # the same notices are already pending
            return batch

        results = await asyncio.gather(*(write(b) for b in batches), return_exceptions=True)
        written = [n for batch in results if isinstance(batch, list) for n in batch]
        # one ledger entry per notice written, even if another batch failed; concurrent appends share fsyncs
        await asyncio.gather(
            *(
                self.audit.record("notice.scheduled", {"notice": n["id"], "order": order_id, "subject": n["subject"], "not_before": n["not_before"]})
                for n in written
            )
        )
        for failure in results:
            if isinstance(failure, BaseException):
                raise failure
        return [n["id"] for n in written]

    async def for_case(self, case: Mapping[str, Any]) -> None:
        """Schedule the notices of a case that let data go (two approvals, a hold's window closing).

        A support-access case schedules none: the customer approved that access themselves.
        """
        if case["kind"] == "lockbox":
            return
        categories = case["approved"]["categories"] if case.get("approved") else case["categories"]
        await self.schedule(
            authority=case["authority"],
            order_id=case["order"],
            subjects=[(case["subject"], list(categories))],
            nondisclosure_until=case.get("nondisclosure_until"),
            emergency=False,
        )

    async def sweep(self) -> int:
        """Move every due notice into the outbox, once; returns how many were queued.

        A notice pending more than once (two replicas scheduling it at the same
        moment, or a pending object from before batches) is sent only when every
        copy is due.
        """
        now = isoformat(self.clock())
        objects = await self._read(await self.control.list(PENDING))
        latest: dict[str, str] = {}
        for notices in objects.values():
            for n in notices:
                latest[n["id"]] = max(latest.get(n["id"], ""), n["not_before"])
        settled: set[str] = set()
        queued = 0
        for notices in objects.values():
            for notice in notices:
                nid = notice["id"]
                if nid in settled or latest[nid] > now:
                    continue
                try:
                    await self.control.put(OUTBOX + nid, json.dumps({**notice, "queued_at": now}).encode(), {}, if_absent=True)
                except PreconditionFailed:
                    pass  # another replica queued it
                else:
                    await self.audit.record("notice.queued", {"notice": nid, "order": notice["order"], "subject": notice["subject"]})
                    queued += 1
                settled.add(nid)
        for key, notices in objects.items():
            if any(n["id"] in settled for n in notices):
                await update(self.control, key, functools.partial(_without, settled=settled), codec=PENDING_NOTICES)
        return queued

    async def outbox(self) -> list[dict[str, Any]]:
        return [json.loads((await self.control.get(k)).body) for k in await self.control.list(OUTBOX)]

    async def pending(self) -> list[dict[str, Any]]:
        return [n for notices in (await self._read(await self.control.list(PENDING))).values() for n in notices]
