"""Legal holds: the control store's book of who holds each record until when, and the store's own hold flag.

A record may be held by several orders (``holds/<region>/<subject>/<key>``
lists each holder and its release time); the store's legal hold (an S3 Object
Lock legal hold, the file store's flag) is set while any holder remains, and
``sweep`` lifts it once the last one's time has come. Every placement and
release is in the ledger.

Every replica places and sweeps holds in the same books: each change of a book
is a compare-and-swap (``gateway.services.shared.update``), so a holder added
on one replica is never lost to another's write, and a book's last holder is
released (and ledgered) by one replica only (see ``Holds.sweep``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Mapping
from typing import Any

from gateway.model import Clock, isoformat, parse_time
from gateway.services.audit_log import AuditLog
from gateway.services.records import record_key
from gateway.services.shared import REMOVE, Codec, Removal, update
from gateway.stores import ObjectNotFound, RecordStore

BOOK: Codec[dict[str, Any]] = Codec(json.loads, lambda book: json.dumps(book, sort_keys=True).encode())


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

        def add(book: dict[str, Any] | None) -> dict[str, Any]:
            book = book or {"region": region, "subject": subject, "key": key, "holds": {}}
            book["holds"][holder] = max(until, book["holds"].get(holder, until))
            return book

        async with self._lock:
            await update(self.control, _hold_key(region, subject, key), add, codec=BOOK)
            await self.stores[region].set_legal_hold(record_key(subject, key), True)
        await self.audit.record("hold.placed", {"region": region, "subject": subject, "key": key, "holder": holder, "until": until})

    async def sweep(self) -> int:
        """Lift every hold whose time has come; returns how many records were released.

        A book whose every holder's time has come: (1) the record's hold is lifted; (2) the book is
        removed over the version read, unless a holder was added meanwhile (another replica placed
        one), and then (3) the record is held again. A sweep that dies after (1) leaves the book, so
        the next sweep releases it; two replicas sweeping at once both lift, and one removes the book
        and ledgers the release.
        """
        now = isoformat(self.clock())
        released = 0
        remaining: list[str] = []  # each still-held record's earliest release, for the holds metrics
        async with self._lock:
            for index_key in await self.control.list("holds/"):
                try:
                    book = BOOK.load((await self.control.get(index_key)).body)
                except ObjectNotFound:
                    continue
                live = _live(book, now)
                if live == book["holds"]:
                    remaining.append(min(live.values()))
                    continue
                store, record = self.stores[book["region"]], record_key(book["subject"], book["key"])
                lifted = not live
                if lifted:  # (1)
                    with contextlib.suppress(ObjectNotFound):  # erased since: nothing left to release
                        await store.set_legal_hold(record, False)
                swept = await update(self.control, index_key, functools.partial(_expire, now=now, remove=lifted), codec=BOOK)  # (2)
                if swept.value is not None:
                    remaining.append(min(swept.value["holds"].values()))
                    if lifted:  # (3)
                        with contextlib.suppress(ObjectNotFound):
                            await store.set_legal_hold(record, True)
                elif swept.written:
                    await self.audit.record("hold.released", {"region": book["region"], "subject": book["subject"], "key": book["key"]})
                    released += 1
        self.audit.observer.holds_swept(active=len(remaining), next_release_at=parse_time(min(remaining)).timestamp() if remaining else None)
        return released


def _live(book: dict[str, Any], now: str) -> dict[str, str]:
    """The book's holders whose time has not come."""
    return {holder: until for holder, until in book["holds"].items() if until > now}


def _expire(book: dict[str, Any] | None, *, now: str, remove: bool) -> dict[str, Any] | Removal | None:
    """The book without its holders whose time has come; ``REMOVE`` when none is left and ``remove`` (the record's hold was lifted)."""
    if book is None:
        return None  # released meanwhile by another replica
    live = _live(book, now)
    if live == book["holds"]:
        return None
    if live:
        return {**book, "holds": live}
    return REMOVE if remove else None
