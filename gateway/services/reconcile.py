"""Reconciling write intents that never got an outcome.

Every record write or delete and every profile write appends an intent
(``record.write-intent``, ``record.delete-intent``, ``subject.write-intent``)
before it touches the store, and an outcome naming it (``"intent": seq``)
after. An intent without either outcome or ``record.write-failed`` is *open*:
the process died between the two (SIGKILL), or its outcome could not be
appended. The store alone knows what happened; the ``Reconciler`` asks it and
says so in the ledger with one ``record.reconciled`` entry per open intent:

- a write whose object holds the intent's SHA-256: ``written``; absent or other
  bytes: ``not-written``;
- a delete whose object is gone: ``deleted``; still there: ``not-deleted``;
- a later intent for the same object that names what it found there
  (``replaces``) says so without the store: a write whose bytes a later intent
  replaces was ``written``; a delete followed by an intent that found the
  object absent (``replaces: null``) ``deleted``;
- otherwise an intent a later entry for the same object overtook:
  ``superseded``. That is a later successful outcome (written, deleted,
  reconciled as such), found without reading the store, or a later intent that
  the stored object shows took effect (the object holds its bytes, or is gone
  after its delete).

A process reconciles the intents of the one chain it writes (the ledger file
it is given): an outcome names its intent by ``seq`` within that chain, and
the chain has one writer at a time, so a restarted worker or pod that
continues a chain settles what its predecessor left open. Only intents older
than ``wait`` (``[audit] reconcile_after_seconds``) count: a younger one may
belong to a write still under way. An intent whose region cannot be read
(store down, unknown region) stays open and is tried again on the next pass.

The ledger is read as a stream, never whole into memory: the first pass reads
the file once from the start (at start-up that is a second full read, after
the one ``FileLedger.open`` makes to verify the chain), later passes only the
lines appended since, checked to continue the chain the reader last saw (a
file cut back or replaced is read again from the start). Only the open intents
are kept between passes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.audit.ledger import shared_lock
from gateway.canonical import sha256_hex
from gateway.model import Clock
from gateway.services.audit_log import AuditLog
from gateway.stores import ObjectCorrupt, ObjectNotFound, RecordStore

log = logging.getLogger("gateway.reconcile")

RECONCILED = "record.reconciled"
WRITE_FAILED = "record.write-failed"
WRITE_INTENTS = frozenset({"record.write-intent", "subject.write-intent"})
DELETE_INTENTS = frozenset({"record.delete-intent"})
# outcomes after which the object holds what their intent said
SUCCESSES = frozenset({"record.written", "record.deleted", "subject.registered", "subject.changed", "subject.resigned"})
RESULTS = ("written", "not-written", "deleted", "not-deleted", "superseded")
UNKNOWN = object()  # an intent that does not say what it replaces


@dataclass(frozen=True, slots=True)
class Intent:
    seq: int
    at: datetime
    region: str
    object: str
    delete: bool
    sha256: str | None  # what a write will store; None for a delete
    replaces: str | object | None = UNKNOWN  # the SHA-256 it found there (None: absent); UNKNOWN if the intent does not say

    @property
    def target(self) -> tuple[str, str]:
        return self.region, self.object


@dataclass(frozen=True, slots=True)
class PassReport:
    """One reconcile pass: results appended, intents left open (too young, or their region could not be read)."""

    reconciled: Mapping[str, int]
    waiting: int  # younger than the wait: a writer may still finish them
    unreachable: int  # old enough, but their region could not be read: tried again next pass

    @property
    def total(self) -> int:
        return sum(self.reconciled.values())


SCAN_SLICE = 4 * 1024 * 1024  # bytes read per hold of the ledger's shared lock (a few ms); parsed after it is let go


@dataclass
class IntentReader:
    """The open intents of a ledger file, read incrementally: each ``scan`` reads only what was appended since the last."""

    path: Path
    open: dict[int, Intent] = field(default_factory=dict)
    superseded: set[int] = field(default_factory=set)  # open intents a later success for the same object overtook
    evidence: dict[int, str] = field(default_factory=dict)  # open intents a later intent's `replaces` shows took effect
    _offset: int = 0
    _seq: int = 0
    _hash: str | None = None
    _inode: tuple[int, int] | None = None

    def scan(self) -> None:
        """Read the complete lines appended since the last scan (all of them the first time).

        Each slice of at most ``SCAN_SLICE`` bytes is read under a shared lock, so no batch is half-written while
        it is read, and parsed after the lock is released: the ledger's writer, which takes the lock to append,
        waits for one read at a time, not for the parsing of a whole long ledger (every served read appends)."""
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            self._reset()
            return
        with handle:
            first, size = True, SCAN_SLICE
            while True:
                with shared_lock(handle):
                    if first:
                        st = os.fstat(handle.fileno())
                        if (st.st_dev, st.st_ino) != self._inode or st.st_size < self._offset or not self._continues(handle):
                            self._reset()
                            self._inode = (st.st_dev, st.st_ino)
                        first = False
                    handle.seek(self._offset)
                    data = handle.read(size)
                whole = self._take_lines(data)
                if whole is None:
                    return  # a line that is not an entry: a torn write, which the writer moves aside
                if len(data) < size:
                    return  # the end of the file (bytes after the last newline are a write still torn or under way)
                # a full slice: read on; a line longer than the slice is read again with twice the room
                size = SCAN_SLICE if whole else size * 2

    def _take_lines(self, data: bytes) -> bool | None:
        """Take the complete lines at the start of ``data``; whether there was one (None: one was not an entry)."""
        taken = False
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            line = data[start : end + 1]
            try:
                entry = json.loads(line)
            except ValueError:
                return None
            self._take(entry)
            self._offset += len(line)
            self._seq, self._hash = entry.get("seq", self._seq), entry.get("hash")
            taken, start = True, end + 1
        return taken

    def _continues(self, handle: Any) -> bool:
        """The line at the offset (if any) follows the last entry read: the file was not cut back and rewritten."""
        if self._hash is None:
            return True
        handle.seek(self._offset)
        line = handle.readline()
        if not line.endswith(b"\n"):
            return True  # nothing new (or a torn line, not read)
        try:
            entry = json.loads(line)
        except ValueError:
            return True
        return bool(entry.get("prev") == self._hash and entry.get("seq") == self._seq + 1)

    def _reset(self) -> None:
        self.open.clear()
        self.superseded.clear()
        self.evidence.clear()
        self._offset, self._seq, self._hash, self._inode = 0, 0, None, None

    def _take(self, entry: Mapping[str, Any]) -> None:
        kind, data, seq = entry.get("kind"), entry.get("data"), entry.get("seq")
        if not isinstance(data, dict) or not isinstance(seq, int):
            return
        if kind in WRITE_INTENTS or kind in DELETE_INTENTS:
            intent = _intent(seq, entry.get("time"), kind in DELETE_INTENTS, data)
            if intent is not None:
                self._found(intent)
                self.open[seq] = intent
            else:
                log.warning("a write intent in the ledger is malformed; it cannot be reconciled", extra={"audit_seq": seq})
            return
        closed = data.get("intent")
        if not isinstance(closed, int) or isinstance(closed, bool):
            return
        intent = self.open.pop(closed, None)
        self.superseded.discard(closed)
        self.evidence.pop(closed, None)
        success = kind in SUCCESSES or (kind == RECONCILED and data.get("result") in ("written", "deleted"))
        if intent is not None and success:
            for other in self.open.values():
                if other.target == intent.target and other.seq < intent.seq:
                    self.superseded.add(other.seq)

    def _found(self, later: Intent) -> None:
        """What ``later``'s ``replaces`` (what it found stored) shows of the open intents before it for its object."""
        if later.replaces is UNKNOWN:
            return
        for other in self.open.values():
            if other.target != later.target:
                continue
            if not other.delete and later.replaces == other.sha256:
                self.evidence[other.seq] = "written"
            elif other.delete and later.replaces is None:
                self.evidence[other.seq] = "deleted"

    def close(self, seq: int) -> None:
        """Forget an intent this process has just reconciled (the next scan reads its entry too)."""
        self.open.pop(seq, None)
        self.superseded.discard(seq)
        self.evidence.pop(seq, None)


def _intent(seq: int, time: Any, delete: bool, data: Mapping[str, Any]) -> Intent | None:
    region, obj, digest = data.get("region"), data.get("object"), data.get("sha256")
    if not isinstance(region, str) or not isinstance(obj, str) or not isinstance(time, str):
        return None
    if not delete and not isinstance(digest, str):
        return None
    try:
        at = datetime.fromisoformat(time)
    except ValueError:
        return None
    replaces = data.get("replaces", UNKNOWN)
    if replaces is not UNKNOWN and replaces is not None and not isinstance(replaces, str):
        replaces = UNKNOWN
    return Intent(seq, at, region, obj, delete, None if delete else digest, replaces)


_ABSENT = object()


class Reconciler:
    """Finds open intents in the ledger file and records what the store says became of them."""

    def __init__(self, *, ledger_path: Path, stores: Mapping[str, RecordStore], audit: AuditLog, clock: Clock, wait: float) -> None:
        self.reader = IntentReader(ledger_path)
        self.stores = stores
        self.audit = audit
        self.clock = clock
        self.wait = timedelta(seconds=wait)

    async def run_once(self) -> PassReport:
        """One pass: reconcile every open intent older than the wait whose region answers.

        (1) read what was appended since the last pass; (2) settle, without the
        store, intents a later intent's ``replaces`` shows took effect, then those a
        later success overtook; (3) read each remaining object once
        (a region that fails a read is not asked again this pass) and decide;
        (4) read the ledger again and record only the intents still open, so an
        intent another replica has just settled is not settled twice.
        """
        # (1)
        await asyncio.to_thread(self.reader.scan)
        cutoff = self.clock() - self.wait
        due = sorted((i for i in self.reader.open.values() if i.at <= cutoff), key=lambda i: i.seq)
        waiting = len(self.reader.open) - len(due)
        decided: list[tuple[Intent, str]] = []
        unreachable = 0
        # (2)
        for intent in due:
            if intent.seq in self.reader.evidence:
                decided.append((intent, self.reader.evidence[intent.seq]))
            elif intent.seq in self.reader.superseded:
                decided.append((intent, "superseded"))
        # (3)
        by_target: dict[tuple[str, str], list[Intent]] = {}
        for intent in due:
            if intent.seq not in self.reader.evidence and intent.seq not in self.reader.superseded:
                by_target.setdefault(intent.target, []).append(intent)
        down: set[str] = set()
        for target, intents in by_target.items():
            state = None if target[0] in down else await self._stored(*target)
            if state is None:
                down.add(target[0])
                unreachable += len(intents)
                continue
            later_all = sorted((i for i in self.reader.open.values() if i.target == target), key=lambda i: i.seq)
            decided += [(i, _result(i, [j for j in later_all if j.seq > i.seq], state)) for i in intents]
        # (4)
        results: Counter[str] = Counter()
        if decided:
            await asyncio.to_thread(self.reader.scan)
        for intent, result in sorted(decided, key=lambda d: d[0].seq):
            if intent.seq in self.reader.open:
                await self._record(intent, result)
                results[result] += 1
        report = PassReport(dict(results), waiting, unreachable)
        self.audit.observer.intents_reconciled(results=report.reconciled, open=unreachable)
        outcomes = [f"{result}:{count}" for result, count in sorted(results.items())]
        log.info(
            "reconcile pass: %d intents reconciled, %d left open (region unreadable), %d younger than the wait",
            report.total,
            unreachable,
            waiting,
            extra={"event": "reconcile-pass", "outcomes": outcomes, "intents_open": unreachable, "intents_waiting": waiting},
        )
        return report

    async def _stored(self, region: str, key: str) -> object | str | None:
        """The stored object's SHA-256, ``_ABSENT``, or None if the store could not say (leave the intent open)."""
        store = self.stores.get(region)
        if store is None:
            return None
        try:
            obj = await store.get(key)
        except ObjectNotFound:
            return _ABSENT
        except ObjectCorrupt:
            return ""  # present, and not any intent's bytes
        except Exception:  # store down or failing: try again next pass
            log.warning("reconcile could not read a region's store; its intents stay open", extra={"region": region}, exc_info=True)
            return None
        return sha256_hex(obj.body)

    async def _record(self, intent: Intent, result: str) -> None:
        await self.audit.record(RECONCILED, {"intent": intent.seq, "object": intent.object, "region": intent.region, "result": result})
        self.reader.close(intent.seq)


def _took_effect(intent: Intent, state: object | str) -> bool:
    return state is _ABSENT if intent.delete else state == intent.sha256


def _result(intent: Intent, later: list[Intent], state: object | str) -> str:
    """What became of ``intent``, from the stored ``state`` and the open intents after it for the same object."""
    if any(_took_effect(i, state) for i in later):
        return "superseded"
    if intent.delete:
        return "deleted" if state is _ABSENT else "not-deleted"
    return "written" if state == intent.sha256 else "not-written"
