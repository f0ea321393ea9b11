"""Legal holds: the control store's book of who holds each record until when, and the store's own hold flag.

A record may be held by several orders (``holds/<region>/<subject>/<key>``
lists each holder and its release time); the store's legal hold (an S3 Object
Lock legal hold, the file store's flag) is set while any holder remains, and
``sweep`` lifts it once the last one's time has come. Every placement and
release is in the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping

from gateway.model import Clock, isoformat, parse_time
from gateway.services.audit_log import AuditLog
from gateway.services.records import record_key
from gateway.stores import ObjectNotFound, RecordStore


def _hold_key(region: str, subject: str, key: str) -> str:
    return f"holds/{region}/{subject}/{key}"


class Holds:
    def __init__(self, *, control: RecordStore, stores: Mapping[str, RecordStore], audit: AuditLog, clock: Clock) -> None:
        self.control = control
        self.stores = stores
        self.audit = audit
        self.clock = clock
        self._lock = asyncio.Lock()

    async def place(self, region: str, subject: str, key: str, holder: str, until: str) -> None:
        """Hold a record for `holder` until `until` (the later time, if it holds it already)."""
        async with self._lock:
            index_key = _hold_key(region, subject, key)
            try:
                book = json.loads((await self.control.get(index_key)).body)
            except ObjectNotFound:
                book = {"region": region, "subject": subject, "key": key, "holds": {}}
            book["holds"][holder] = max(until, book["holds"].get(holder, until))
            await self.control.put(index_key, json.dumps(book, sort_keys=True).encode(), {})
            await self.stores[region].set_legal_hold(record_key(subject, key), True)
        await self.audit.record("hold.placed", {"region": region, "subject": subject, "key": key, "holder": holder, "until": until})

    async def sweep(self) -> int:
        """Lift every hold whose time has come; returns how many records were released."""
        now = isoformat(self.clock())
        released = 0
        remaining: list[str] = []  # each still-held record's earliest release, for the holds metrics
        async with self._lock:
            for index_key in await self.control.list("holds/"):
                try:
                    book = json.loads((await self.control.get(index_key)).body)
                except ObjectNotFound:
                    continue
                live = {holder: until for holder, until in book["holds"].items() if until > now}
                if live:
                    remaining.append(min(live.values()))
                if live == book["holds"]:
                    continue
                if live:
                    book["holds"] = live
                    await self.control.put(index_key, json.dumps(book, sort_keys=True).encode(), {})
                    continue
                with contextlib.suppress(ObjectNotFound):  # erased since: nothing left to release
                    await self.stores[book["region"]].set_legal_hold(record_key(book["subject"], book["key"]), False)
                await self.control.delete(index_key)
                await self.audit.record("hold.released", {"region": book["region"], "subject": book["subject"], "key": book["key"]})
                released += 1
        self.audit.observer.holds_swept(active=len(remaining), next_release_at=parse_time(min(remaining)).timestamp() if remaining else None)
        return released
