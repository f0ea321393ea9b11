"""The audit ledger on disk: durable, group-committed, one writer per file.

``FileLedger.append`` returns only once the entry is written and fsynced.
Concurrent appends are group-committed: one flusher task takes every pending
entry, numbers, links and encodes the batch on the event loop, and writes it
with one ``write`` and one ``fsync`` in a worker thread, so the event loop never
waits on the disk and the thread holds the GIL only briefly.

A ledger file is one chain (``gateway.audit.chain``), and one writer at a time
keeps it: ``FileLedger.open`` takes an exclusive ``flock`` on ``<path>.lock``
for as long as the ledger is open and refuses to open (``ledger-in-use``)
while another process, or another ``FileLedger`` in this one, holds it. Two
gateways that would share a file (two replicas on one volume, two workers
given the same chain id) therefore fail at start instead of interleaving
their entries; each writer has its own chain id and its own file. The lock is
released by the kernel when its holder dies, so a killed writer never leaves
a stale lock behind.

Each batch also holds an exclusive ``flock`` on the ledger file itself while
it re-reads the tail (only if the file changed since this process last wrote
it), numbers and links its entries, appends them (``O_APPEND``) and fsyncs:
``audit verify`` reads under a shared lock, and a change made to the file
behind the writer's back (a torn line appended, the file cut short) is found
before the next append.

With a ``checkpoint_key`` the writer also signs checkpoints: after every
``checkpoint_every`` entries, and at the first batch (or timer tick) once
``checkpoint_seconds`` have passed with entries not yet covered, it adds a
``ledger.checkpoint`` entry to the batch it is writing, so a checkpoint costs no
extra write or fsync. ``on_checkpoint`` is told of each one once it is durable.

With the same key every batch ends on a signed head: its last line carries a
head signature over that entry's ``seq`` and ``hash`` and the ``seq`` of the
signed head before it (``gateway.audit.chain``), one Ed25519 signature per
write, made in the writer thread under the lock (it releases the GIL). The
batch is one ``write``, so its head reaches the disk with it or the batch is
incomplete: whole lines after the last signed head were never acknowledged (an
append returns only after the fsync of its whole batch), and a writer with the
key moves them aside with any torn bytes and records that, as for a torn line.
A file with no signed head at all (written before signed heads, or without the
key) is taken as it is: the next batch's signed head covers it.

A failed batch is cut back off the file and its callers get ``LedgerError``;
the next batch re-reads the tail. A torn last line (a crash mid-write), and with
the key the lines of a batch without its signed head, are moved to
``<path>.torn-<seq>`` and recorded as a ``ledger.recovered`` entry; any other
break in the chain raises ``LedgerBroken`` and nothing more is appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Self

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.audit.chain import (
    CHECKPOINT,
    DEFAULT_CHAIN,
    GENESIS,
    HEAD,
    MAX_KIND,
    ChainReport,
    EntryError,
    check_chain_id,
    check_data,
    check_kind,
    checkpoint_data,
    decode,
    encode,
    entry_and_line,
    entry_chain,
    make_entry,
    parse_json,
    signed_head,
    verify_lines,
)
from gateway.errors import GatewayError, LedgerBroken, LedgerError
from gateway.model import Clock, clock_text, isoformat

log = logging.getLogger("gateway.audit")

FILE_MODE = 0o640
MAX_BATCH = 512  # entries per write; the rest go in the next batch
RECOVERED = "ledger.recovered"
PROBE_BYTES = (b"ledger write probe\n" * 216)[:4096]  # one 4 KiB block: a full file system refuses it
_TAIL_CHUNK = 64 * 1024
# A ledger file longer than this is verified at open from its last signed head on, the rest in the background
# (``FileLedger._check_prefix``): a whole chain costs about 70 µs an entry on a small VM, so 8 MiB (about
# 13,000 entries) is about a second of start-up, and a ledger of 100,000 entries took 8.4 s to be ready.
VERIFY_AT_OPEN_BYTES = 8 * 1024 * 1024
_HEAD_MARK = f'"{HEAD}":"'.encode()  # in canonical JSON these bytes are a key, never inside a string
_CHECKPOINT_MARK = f'"kind":"{CHECKPOINT}"'.encode()
_SEARCH_HEAD_BYTES = 64 * 1024 * 1024  # a signed head further back than this from the end: verify the whole file
_LONGEST_SEARCHED_LINE = 4 * 1024 * 1024  # a longer line on the way to it: verify the whole file (an order's entry is ~200 KiB)
_PREFIX_CHUNK = 1024 * 1024  # the background verification reads this much at a time


# --- reading -------------------------------------------------------------------


def _lines(handle: BinaryIO) -> Iterator[bytes]:
    handle.seek(0)
    yield from handle


@contextlib.contextmanager
def shared_lock(handle: BinaryIO) -> Iterator[None]:
    """A shared ``flock`` on the ledger file ``handle`` for the block, so no batch is half-written while it is read
    (none on a file system without flock: read without it)."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        if not handle.closed:  # closing it let go of the lock already (a generator of its lines closes it when dropped)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def verify_file(
    path: Path, *, public_key: ed25519.Ed25519PublicKey | None = None, require_signed_heads: bool = False, chain: str | None = None
) -> ChainReport:
    """Verify the ledger file at ``path`` (for ``gateway audit verify``).

    Takes a shared lock so a batch another process is writing right now is not
    mistaken for a torn write. With ``public_key`` checkpoint and head
    signatures are verified too; with ``require_signed_heads`` the file must end
    on a signed head; with ``chain`` every entry must belong to that chain
    (``verify_lines``). ``LedgerError`` if the file cannot be read.
    """
    try:
        with open(path, "rb") as handle, shared_lock(handle):
            return verify_lines(_lines(handle), public_key=public_key, require_signed_heads=require_signed_heads, chain=chain)
    except OSError as exc:
        raise LedgerError(f"cannot read the audit ledger `{path}`: {exc.strerror or exc}") from exc


def read_entries(path: Path, *, chain: str | None = None) -> list[dict[str, Any]]:
    """Every entry of a ledger that verifies (as chain ``chain``, if given); ``LedgerBroken`` if it does not."""
    try:
        with open(path, "rb") as handle, shared_lock(handle):
            report = verify_lines(_lines(handle), chain=chain)
            if not report.ok:
                raise LedgerBroken(f"the audit ledger `{path}` is broken: {report.problem}", line=report.broken_at)
            return [decode(line) for line in _lines(handle)]
    except OSError as exc:
        raise LedgerError(f"cannot read the audit ledger `{path}`: {exc.strerror or exc}") from exc


# --- the file ledger -------------------------------------------------------------


def lock_path_for(path: Path) -> Path:
    """The lock file beside a ledger file: ``<name>.lock``."""
    return path.with_name(f"{path.name}.lock")


class WriterLock:
    """The one-writer lock of a ledger file: an exclusive ``flock`` on ``<ledger>.lock``, held until ``release``.

    The file holds the holder's pid, for the message a second writer gets. It is
    never removed (removing a lock file races with the next process taking it);
    the kernel drops the lock when its holder exits, however it exits.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def take(cls, ledger: Path) -> WriterLock:
        """Lock ``ledger`` for this writer; ``LedgerError`` (``ledger-in-use``) if another holds it."""
        path = lock_path_for(ledger)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        except OSError as exc:
            raise LedgerError(f"cannot open the lock of the audit ledger `{ledger}`: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise LedgerError(
                f"the audit ledger `{ledger}` is being written by another process (pid {holder}); "
                "each writer needs its own chain: give this one another chain id (`--chain-id` or `GATEWAY_CHAIN_ID`)",
                code="ledger-in-use",
            ) from None
        except OSError as exc:
            os.close(fd)
            raise LedgerError(f"cannot lock the audit ledger `{ledger}`: {exc.strerror or exc}") from exc
        with contextlib.suppress(OSError):  # the pid is for the message only
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class DiskWorker:
    """One thread that runs blocking file work in order, off the event loop.

    ``await worker.run(fn, *args)`` is ``await asyncio.to_thread(fn, *args)``
    with a shorter way there and back: one queue and one wake-up of the event
    loop per call, against the several hand-offs of an executor. Calls run one
    at a time, in the order made. The thread starts on the first call and ends
    after ``stop``.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``fn(*args)``; the future gets its result or exception."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._jobs.put((loop, future, fn, args))
        return future

    def stop(self) -> threading.Thread | None:
        """End the thread once the calls already queued have run; returns it, to join."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
        return thread

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, fn, args = job
            try:
                outcome, failed = fn(*args), False
            except BaseException as exc:  # handed to the caller, as to_thread does
                outcome, failed = exc, True
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, future, outcome, failed)
            del job, future, fn, args, outcome


def _settle(future: asyncio.Future[Any], outcome: Any, failed: bool) -> None:
    if future.done():  # the caller was cancelled
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


@dataclass(slots=True)
class _Pending:
    kind: str
    time: str
    data: dict[str, Any]
    future: asyncio.Future[Any] = field(repr=False)
    checkpoint: bool = False  # a request for a checkpoint, not an entry


CheckpointListener = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class _Stamp:
    """What the file looked like right after this process last wrote or read it."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> _Stamp:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class _Encoded:
    """A batch numbered and linked after ``base`` (seq, hash, uncovered, last signed head), ready to write."""

    base: tuple[int, str, int, int]
    end: tuple[int, str, int, int]
    entries: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    lines: list[bytes]


class FileLedger:
    """An append-only, hash-chained JSON-lines ledger file.

    Build with ``await FileLedger.open(path, clock)``; ``append`` entries;
    ``close`` when done (it waits for appends already made).
    """

    def __init__(
        self,
        path: Path,
        clock: Clock,
        fd: int,
        *,
        checkpoint_key: ed25519.Ed25519PrivateKey | None = None,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 300,
        on_checkpoint: CheckpointListener | None = None,
        chain: str = DEFAULT_CHAIN,
        writer_lock: WriterLock | None = None,
        verify_at_open_bytes: int = VERIFY_AT_OPEN_BYTES,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if checkpoint_seconds < 0:
            raise ValueError("checkpoint_seconds must not be negative")
        self.path = path
        self.chain = check_chain_id(chain)
        self._writer_lock = writer_lock
        self._clock = clock
        self._now_text = clock_text(clock)
        self._fd = fd
        self._seq = 0
        self._hash = GENESIS
        self._checkpoint_key = checkpoint_key
        self._checkpoint_every = checkpoint_every
        self._checkpoint_seconds = checkpoint_seconds
        self._on_checkpoint = on_checkpoint
        # told of every group commit: entries in it, seconds to write and fsync it, and whether it succeeded (metrics)
        self.on_batch: Callable[..., None] | None = None
        self._uncovered = 0  # entries after the last checkpoint
        self._head = 0  # seq of the last signed head in the file (0: none)
        self._last_checkpoint_at: datetime = clock()
        self._ticker: asyncio.Task[None] | None = None
        self._stamp: _Stamp | None = None  # None: re-read the tail before writing
        # The file's complete entries never legitimately end before this offset:
        # writers only append, and recovery cuts only bytes after the last entry.
        self._floor = 0
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._disk = DiskWorker(f"ledger-writer-{path.name}")
        self._closed = False
        self._verify_at_open_bytes = verify_at_open_bytes
        # what verification at open left to the background: the entries before byte ``end``, which must end
        # on entry ``seq`` with hash ``hash`` (the signed head the tail was verified from names them)
        self._prefix: tuple[int, int, str] | None = None
        self._prefix_check: asyncio.Task[None] | None = None
        self._stop_check = threading.Event()
        self._broken: LedgerBroken | None = None  # found by that check: no more appends

    # -- lifecycle ---------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path,
        clock: Clock,
        *,
        checkpoint_key: ed25519.Ed25519PrivateKey | None = None,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 300,
        on_checkpoint: CheckpointListener | None = None,
        chain: str = DEFAULT_CHAIN,
        verify_at_open_bytes: int = VERIFY_AT_OPEN_BYTES,
    ) -> FileLedger:
        """Open (or create) the ledger of chain ``chain`` at ``path``, verifying the whole chain.

        A file longer than ``verify_at_open_bytes`` is verified from its last signed head
        on before ``open`` returns, which is all an append rests on; the entries before it
        are verified in the background, and if they do not hold (or do not end where that
        head says) the ledger takes no more entries: ``append`` and ``probe`` raise
        ``LedgerBroken``, as a break found at open does. ``wait_verified`` waits for it.

        The writer lock is taken first: ``LedgerError`` with code
        ``ledger-in-use`` if another writer has the file open. A torn last
        line is moved aside and recorded; any other break, or an entry of
        another chain, raises ``LedgerBroken``. ``LedgerError`` if the file
        cannot be opened. With
        ``checkpoint_key`` (the provider's Ed25519 key) every batch ends on a
        signed head, the lines of a batch left without one are moved aside
        like a torn line, and signed checkpoints are written every
        ``checkpoint_every`` entries or ``checkpoint_seconds`` (0: by count
        only); ``gateway audit verify`` checks the signatures with its public half.
        """
        now = isoformat(clock())
        check_chain_id(chain)
        lock = await asyncio.to_thread(WriterLock.take, path)
        try:
            fd = await asyncio.to_thread(_open_file, path)
        except BaseException:
            lock.release()
            raise
        try:
            ledger = cls(
                path,
                clock,
                fd,
                checkpoint_key=checkpoint_key,
                checkpoint_every=checkpoint_every,
                checkpoint_seconds=checkpoint_seconds,
                on_checkpoint=on_checkpoint,
                chain=chain,
                writer_lock=lock,
                verify_at_open_bytes=verify_at_open_bytes,
            )
            await asyncio.to_thread(ledger._verify_and_recover, now)
        except BaseException:
            os.close(fd)
            lock.release()
            raise
        if ledger._prefix is not None:
            ledger._prefix_check = asyncio.create_task(ledger._check_prefix(), name="ledger-verify-prefix")
        if checkpoint_key is not None and checkpoint_seconds > 0:
            ledger._ticker = asyncio.create_task(ledger._tick(), name="ledger-checkpoint-timer")
        return ledger

    async def close(self) -> None:
        """Refuse new appends, wait for those already made, close the file."""
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._prefix_check is not None:
            self._stop_check.set()
            await asyncio.wait([self._prefix_check])  # it ends on the stop and raises nothing (see _check_prefix)
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        writer = self._disk.stop()
        if writer is not None:
            # a cancelled flusher may have left a write running: never close the file under it
            await asyncio.to_thread(writer.join)
        os.close(self._fd)
        if self._writer_lock is not None:
            self._writer_lock.release()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- appending ---------------------------------------------------------------

    async def append(self, kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Append one entry; return it once it is durable on disk.

        ``ValueError`` (nothing written) if ``data`` holds anything but plain
        JSON values without floats; ``LedgerError`` if it could not be written;
        ``LedgerBroken`` if the file's tail is not a valid entry.
        """
        if self._closed:
            raise LedgerError(f"the audit ledger `{self.path}` is closed")
        if self._broken is not None:
            raise self._broken
        # everything that could fail the batch for this entry alone is checked here
        # (the time is this process's own isoformat output, RFC 3339 by construction)
        if type(kind) is not str or not 0 < len(kind) <= MAX_KIND:
            check_kind(kind)
        future = asyncio.get_running_loop().create_future()
        self._queue(_Pending(kind, self._now_text(), check_data(data), future))
        return await future  # type: ignore[no-any-return]

    async def checkpoint(self) -> dict[str, Any] | None:
        """Write a checkpoint now if entries follow the last one; return it (``None``: nothing to cover).

        ``LedgerError`` if the ledger has no checkpoint key or is closed.
        """
        if self._closed:
            raise LedgerError(f"the audit ledger `{self.path}` is closed")
        if self._checkpoint_key is None:
            raise LedgerError(f"the audit ledger `{self.path}` has no checkpoint key")
        if self._broken is not None:
            raise self._broken
        future = asyncio.get_running_loop().create_future()
        self._queue(_Pending(CHECKPOINT, "", {}, future, checkpoint=True))
        return await future  # type: ignore[no-any-return]

    async def probe(self) -> None:
        """Show that an append could be made now, without adding an entry; ``LedgerError`` if not.

        Run by the writer thread, after the batches queued before it, as an append is: (1) the
        path still names the open file; (2) the file's descriptor takes a write (of nothing) and
        an fsync; (3) a new side file beside the ledger, ``<path>.probe-<pid>``, takes a block
        of ``PROBE_BYTES`` and an fsync, and is removed. (2) sees a descriptor that can no longer
        write, (3) a file system that is full, read-only or failing, which the descriptor's
        empty write cannot; neither adds to the chain, so a probe every few seconds leaves the
        ledger as it is.
        """
        if self._closed:
            raise LedgerError(f"the audit ledger `{self.path}` is closed")
        await self._disk.run(self._probe)

    def _probe(self) -> None:
        if self._broken is not None:
            raise self._broken
        # (1)
        self._check_same_file()
        try:
            # (2)
            os.write(self._fd, b"")
            os.fsync(self._fd)
            # (3)
            side = self.path.with_name(f"{self.path.name}.probe-{os.getpid()}")
            fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
            try:
                _write_all(fd, PROBE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(side)
        except OSError as exc:
            raise LedgerError(f"the audit ledger `{self.path}` cannot take appends: {exc.strerror or exc}") from exc

    def _queue(self, pending: _Pending) -> None:
        self._pending.append(pending)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="ledger-flush")

    async def _tick(self) -> None:
        """Checkpoint entries left uncovered for ``checkpoint_seconds`` when no batch comes to do it (within a second of it)."""
        interval = min(1.0, max(0.5, self._checkpoint_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            if self._uncovered and self._checkpoint_due() and self._broken is None:
                try:
                    await self.checkpoint()
                except Exception:
                    log.warning("timed checkpoint of the audit ledger %s failed; retrying", self.path, exc_info=True)

    def _checkpoint_due(self) -> bool:
        if self._checkpoint_key is None or self._checkpoint_seconds <= 0:
            return False
        return (self._clock() - self._last_checkpoint_at).total_seconds() >= self._checkpoint_seconds

    async def _flush(self) -> None:
        """Write pending entries batch by batch until none are left."""
        while self._pending:
            if len(self._pending) <= MAX_BATCH:
                taken, self._pending = self._pending, []
            else:
                taken = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
            batch = [p for p in taken if not p.checkpoint and not p.future.done()]
            requests = [p for p in taken if p.checkpoint and not p.future.done()] if len(batch) < len(taken) else []
            if not batch and not requests:
                continue
            clock_now = self._clock()
            now = isoformat(clock_now)
            force = bool(requests) or self._checkpoint_due()
            started = time.perf_counter()
            try:
                items = [(p.kind, p.time, p.data) for p in batch]
                # Numbered, linked and encoded here, so the worker thread only locks, signs the head,
                # writes and fsyncs (without the GIL); it encodes again only if another process moved the tail.
                encoded = self._encode(items, now, force) if self._stamp is not None else None
                entries, checkpoints = await self._disk.run(self._write_batch, items, now, force, encoded)
            except BaseException as exc:
                if self.on_batch is not None:
                    self.on_batch(size=len(batch), fsync_seconds=time.perf_counter() - started, ok=False)
                error = exc if isinstance(exc, GatewayError) else LedgerError(f"the audit ledger `{self.path}` could not be written")
                if error is not exc:
                    error.__cause__ = exc
                for p in [*batch, *requests]:
                    if not p.future.done():
                        p.future.set_exception(error)
                if not isinstance(exc, Exception):
                    raise
                continue
            if self.on_batch is not None:
                self.on_batch(size=len(batch), fsync_seconds=time.perf_counter() - started, ok=True)
            for p, entry in zip(batch, entries, strict=True):
                future = p.future
                if not future.done():
                    future.set_result(entry)
            for p in requests:
                if not p.future.done():
                    p.future.set_result(checkpoints[-1] if checkpoints else None)
            if checkpoints:
                self._last_checkpoint_at = clock_now
                self._tell(checkpoints)

    def _tell(self, checkpoints: list[dict[str, Any]]) -> None:
        if self._on_checkpoint is None:
            return
        for entry in checkpoints:
            try:
                self._on_checkpoint(entry)
            except Exception:
                log.warning("a checkpoint listener of the audit ledger %s failed", self.path, exc_info=True)

    async def verify(self) -> ChainReport:
        """Verify this ledger's file as it is now (with a key: signatures too, and it must end on a signed head)."""
        public = self._checkpoint_key.public_key() if self._checkpoint_key else None
        return await asyncio.to_thread(lambda: verify_file(self.path, public_key=public, require_signed_heads=public is not None, chain=self.chain))

    async def entries(self) -> list[dict[str, Any]]:
        """Every entry in the file (``LedgerBroken`` if it does not verify)."""
        return await asyncio.to_thread(lambda: read_entries(self.path, chain=self.chain))

    # -- in the worker thread, under the lock ---------------------------------------

    def _verify_and_recover(self, now: str) -> None:
        with _Locked(self._fd, self.path):
            st = self._check_same_file()
            self._read_all(now, window=self._window(st.st_size))
            self._floor = os.fstat(self._fd).st_size

    def _read_all(self, now: str, window: tuple[int, int, str] | None = None) -> None:
        """Under the lock: verify the whole chain (or, given a ``window``, its lines from there on), take its tail,
        and recover a torn or unsigned end.

        Whole lines after the last signed head are a batch whose head never
        reached the disk: with the key they are moved aside with any torn bytes.
        A file without any signed head is kept whole (the next head covers it).
        ``window``: ``(offset, seq, hash)``, the lines from byte ``offset`` follow entry ``seq`` of that
        hash, which ``_check_prefix`` verifies later (``_window``).
        """
        start, after = (0, None) if window is None else (window[0], window[1:])
        # signatures are `gateway audit verify`'s to check: a rotated key must not stop the writer
        with os.fdopen(os.dup(self._fd), "rb") as handle:
            handle.seek(start)
            report = verify_lines(handle, chain=self.chain, after=after)
        if not report.ok and not report.torn_tail:
            raise LedgerBroken(
                f"the audit ledger `{self.path}` is broken: {report.problem}; it takes no more entries until it is repaired",
                line=report.broken_at,
            )
        if window is not None:
            self._prefix = window
        keep, self._seq, self._hash = report.entries, report.last_seq, report.last_hash
        if self._checkpoint_key is not None and report.heads and report.last_head < report.entries:
            keep, self._seq, self._hash = report.last_head, report.last_head, report.last_head_hash
        self._head = report.last_head
        # a checkpoint among the lines moved aside no longer counts: count from the start then, to be safe
        self._uncovered = keep - report.last_checkpoint if report.last_checkpoint <= keep else keep
        if report.ok and keep == report.entries:
            self._stamp = _Stamp.of(os.fstat(self._fd))
            return
        self._recover(self._size_of_lines(keep, start, 0 if after is None else after[0]), now, unsigned=report.entries - keep)

    def _write_batch(
        self, items: list[tuple[str, str, dict[str, Any]]], now: str, checkpoint: bool = False, encoded: _Encoded | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Under the file lock: re-read the tail if the file changed, then write ``items``.

        ``encoded`` is the batch already numbered and linked on the event loop
        against this process's view of the tail; it is used only if the file is
        still exactly as this process left it, else the batch is encoded again.
        """
        with _Locked(self._fd, self.path):
            if self._broken is not None:
                raise self._broken
            st = self._check_same_file()
            if self._stamp is None or _Stamp.of(st) != self._stamp:
                self._read_tail(st.st_size, now)
                encoded = None  # another writer moved the tail: number and link again
                st = None
            if encoded is None or encoded.base != (self._seq, self._hash, self._uncovered, self._head):
                encoded = self._encode(items, now, checkpoint)
            return self._write_encoded(encoded, None if st is None else st.st_size)

    def _write_locked(self, items: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Number, link, write and fsync ``items`` (and any checkpoint due by count)."""
        entries, _ = self._write_encoded(self._encode(items, isoformat(self._clock()), False))
        return entries

    def _encode(self, items: list[tuple[str, str, dict[str, Any]]], now: str, checkpoint: bool) -> _Encoded:
        """Number and link ``items`` after this process's view of the tail; no I/O.

        With a checkpoint key, a checkpoint follows every entry that makes
        ``checkpoint_every`` uncovered entries, and one closes the batch when
        ``checkpoint`` asks for it and any entry is left uncovered. The
        batch's last line becomes its signed head when it is written.
        """
        base = (self._seq, self._hash, self._uncovered, self._head)
        seq, prev, uncovered, head = base
        key = self._checkpoint_key
        entries: list[dict[str, Any]] = []
        checkpoints: list[dict[str, Any]] = []
        lines: list[bytes] = []

        def add_checkpoint() -> None:
            nonlocal seq, prev, uncovered
            assert key is not None
            seq += 1
            entry, line = entry_and_line(prev, seq, now, CHECKPOINT, checkpoint_data(key, seq - 1, prev), self.chain)
            checkpoints.append(entry)
            lines.append(line)
            prev, uncovered = entry["hash"], 0

        # kind, time and data were checked by append(); a batch cannot fail on one entry
        for kind, moment, data in items:
            seq += 1
            entry, line = entry_and_line(prev, seq, moment, kind, data, self.chain)
            entries.append(entry)
            lines.append(line)
            prev = entry["hash"]
            uncovered += 1
            if key is not None and uncovered >= self._checkpoint_every:
                add_checkpoint()
        if key is not None and checkpoint and uncovered:
            add_checkpoint()
        if key is not None and lines:
            head = seq  # the batch's last line: `_write_encoded` signs it
        return _Encoded(base, (seq, prev, uncovered, head), entries, checkpoints, lines)

    def _write_encoded(self, encoded: _Encoded, size: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Write and fsync an encoded batch; cut it off again on failure.

        ``size`` is the file's size if the caller has just read it under the lock.
        With a key the batch's last line is signed as its head first, here in
        the writer thread under the lock: the signature releases the GIL, so
        the event loop runs on meanwhile.
        """
        if not encoded.lines:
            return encoded.entries, encoded.checkpoints
        if self._checkpoint_key is not None:
            last = encoded.checkpoints if encoded.checkpoints and encoded.checkpoints[-1]["seq"] == encoded.end[0] else encoded.entries
            if HEAD not in last[-1]:
                last[-1], encoded.lines[-1] = signed_head(self._checkpoint_key, encoded.base[3], last[-1], encoded.lines[-1])
        blob = b"".join(encoded.lines)
        start = os.fstat(self._fd).st_size if size is None else size
        self._stamp = None  # until the batch is known to be on disk
        try:
            _write_all(self._fd, blob)
            os.fsync(self._fd)
        except OSError as exc:
            self._roll_back(start)
            raise LedgerError(
                f"the audit ledger `{self.path}` could not be written: {exc.strerror or exc}",
                entries=len(encoded.lines),
            ) from exc
        self._seq, self._hash, self._uncovered, self._head = encoded.end
        self._stamp = _Stamp.of(os.fstat(self._fd))
        self._floor = self._stamp.size
        return encoded.entries, encoded.checkpoints

    def _roll_back(self, size: int) -> None:
        """Cut a failed batch off the file so its entries never count."""
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError:
            # Whatever is left is read back as the tail (or recovered as a torn
            # write) by the next batch, which re-reads it because the stamp is gone.
            log.warning("could not cut a failed batch off the audit ledger %s", self.path, exc_info=True)

    def _read_tail(self, size: int, now: str) -> None:
        """Take ``seq`` and ``hash`` from the last complete line; recover a torn one."""
        data_end, last_line_start, torn = _tail(self._fd, size)
        seq, hash_, kind, signed = 0, GENESIS, None, False
        if last_line_start is not None:
            line = os.pread(self._fd, data_end - last_line_start, last_line_start)
            try:
                entry = decode(line)
            except EntryError as exc:
                raise LedgerBroken(
                    f"the audit ledger `{self.path}` is broken: its last entry is not valid ({exc}); "
                    "it takes no more entries until it is repaired"
                ) from None
            if entry_chain(entry) != self.chain:
                raise LedgerBroken(
                    f"the audit ledger `{self.path}` is broken: its last entry belongs to chain `{entry_chain(entry)}`, not `{self.chain}`; "
                    "it takes no more entries until it is repaired"
                )
            seq, hash_, kind, signed = entry["seq"], entry["hash"], entry["kind"], HEAD in entry
        if data_end < self._floor or seq < self._seq:
            raise LedgerBroken(
                f"the audit ledger `{self.path}` was cut short: it ends at entry {seq}, "
                f"but entry {self._seq} was already in it; it takes no more entries until it is repaired"
            )
        if torn or (self._checkpoint_key is not None and seq and not signed):
            # a torn write, or another writer's batch without its signed head: read the whole chain (rare)
            self._read_all(now)
            return
        # another writer's entries count as uncovered unless it ended on a checkpoint
        self._uncovered = 0 if kind == CHECKPOINT else self._uncovered + seq - self._seq
        self._seq, self._hash = seq, hash_
        if signed:
            self._head = seq
        self._stamp = _Stamp.of(os.fstat(self._fd))

    def _recover(self, good_size: int, now: str, unsigned: int = 0) -> None:
        """Move the bytes after ``good_size`` aside (torn, or ``unsigned`` whole lines without their signed head) and record that."""
        size = os.fstat(self._fd).st_size
        torn = os.pread(self._fd, size - good_size, good_size)
        # (1) keep the torn bytes next to the ledger, durably
        aside = _save_aside(self.path, self._seq + 1, torn)
        # (2) cut them off the ledger, durably
        try:
            os.ftruncate(self._fd, good_size)
            os.fsync(self._fd)
        except OSError as exc:
            raise LedgerError(f"could not cut a torn write off the audit ledger `{self.path}`: {exc.strerror or exc}") from exc
        log.warning("moved a torn write of %d bytes (%d whole entries) from the audit ledger %s to %s", len(torn), unsigned, self.path, aside.name)
        # (3) say so in the chain
        data: dict[str, Any] = {"torn_bytes": len(torn), "torn_sha256": hashlib.sha256(torn).hexdigest(), "moved_to": aside.name}
        if unsigned:
            data["unsigned_entries"] = unsigned  # whole lines of a batch whose signed head never reached the disk
        self._write_locked([(RECOVERED, now, data)])

    def _size_of_lines(self, count: int, start: int = 0, first: int = 0) -> int:
        """The bytes of the first ``count`` entries, reading from byte ``start``, where entry ``first + 1`` begins."""
        size = start
        with os.fdopen(os.dup(self._fd), "rb") as handle:
            handle.seek(start)
            for _, line in zip(range(count - first), handle, strict=False):
                size += len(line)
        return size

    def _window(self, size: int) -> tuple[int, int, str] | None:
        """Where verification at open starts in a file longer than ``verify_at_open_bytes``: the line of its last
        checkpoint at or before its last signed head (of that head if no checkpoint is near), and the seq and hash
        of the entry before that line as the line names them (``(offset, seq, hash)``). From a checkpoint, the
        entries it leaves uncovered are counted as a whole verification counts them. None: verify the whole file
        (a short one, or no signed head in its last ``_SEARCH_HEAD_BYTES``)."""
        if size <= self._verify_at_open_bytes:
            return None
        end, _, _ = _tail(self._fd, size)  # complete lines end here; what follows is torn
        start: tuple[int, dict[str, Any]] | None = None
        for offset, line in _lines_backwards(self._fd, end, _SEARCH_HEAD_BYTES):
            if start is None and _HEAD_MARK in line:
                entry = _decoded(line)
                if entry is not None and HEAD in entry:
                    start = (offset, entry)
            if start is not None and _CHECKPOINT_MARK in line:
                entry = _decoded(line)
                if entry is not None and entry["kind"] == CHECKPOINT:
                    start = (offset, entry)
                    break
        if start is None or start[1]["seq"] < 2:
            return None
        offset, entry = start
        return offset, entry["seq"] - 1, entry["prev"]

    async def _check_prefix(self) -> None:
        """Verify the entries that open left to the background (``_prefix``); if they do not hold, or cannot be
        read or checked at all, take no more (fail closed). It starts from the first entry at every open."""
        assert self._prefix is not None
        end, seq, hash_ = self._prefix
        log.info("verifying the first %d entries of the audit ledger %s in the background", seq, self.path)
        try:
            report = await asyncio.to_thread(self._verify_prefix, end)
        except _Stopped:
            log.warning("the background verification of the audit ledger %s stopped before it ended (closed)", self.path)
            return
        except OSError as exc:
            self._stop_taking(f"its entries up to {seq} could not be read ({exc.strerror or exc})", None)
            return
        except Exception as exc:  # whatever a line can make the check raise (a nesting too deep to parse...)
            self._stop_taking(f"its entries up to {seq} could not be checked ({type(exc).__name__})", None)
            return
        if report.ok and (report.last_seq, report.last_hash) == (seq, hash_):
            self._prefix = None
            log.info("the first %d entries of the audit ledger %s verify", seq, self.path)
            return
        if report.torn_tail:  # the prefix ends on a whole line: an unreadable one there is no torn write
            self._stop_taking(f"entry {report.broken_at} is not a valid entry", report.broken_at)
        elif not report.ok:
            self._stop_taking(str(report.problem), report.broken_at)
        else:
            self._stop_taking(f"entry {seq + 1} does not follow entry {report.last_seq}", seq + 1)

    def _stop_taking(self, problem: str, line: int | None) -> None:
        self._broken = LedgerBroken(f"the audit ledger `{self.path}` is broken: {problem}; it takes no more entries until it is repaired", line=line)
        log.error("%s", self._broken.message)

    def _verify_prefix(self, end: int) -> ChainReport:
        return verify_lines(self._lines_before(end), chain=self.chain)

    def _lines_before(self, end: int) -> Iterator[bytes]:
        """The file's lines before byte ``end``, read with ``pread``: appends go on meanwhile, and a reader
        sharing the writer's file offset (a ``dup``) would read from wherever they leave it. ``_Stopped`` once
        ``close`` asks. A line is joined from its pieces once, so one without a newline for megabytes is not
        copied again at every read."""
        position, pieces = 0, []  # pieces: the line read so far, before its newline
        while position < end:
            if self._stop_check.is_set():
                raise _Stopped
            chunk = os.pread(self._fd, min(_PREFIX_CHUNK, end - position), position)
            if not chunk:
                break
            position += len(chunk)
            *lines, rest = chunk.split(b"\n")
            if lines:
                lines[0] = b"".join([*pieces, lines[0]])
                pieces = []
                for line in lines:
                    yield line + b"\n"
            pieces.append(rest)
        if any(pieces):
            yield b"".join(pieces)

    async def wait_verified(self) -> None:
        """Return once the whole chain is verified (at once for a file verified whole at open); ``LedgerBroken``
        if it is not, ``LedgerError`` if the ledger was closed before its verification ended."""
        if self._prefix_check is not None:
            await asyncio.shield(self._prefix_check)
        if self._broken is not None:
            raise self._broken
        if self._prefix is not None:
            raise LedgerError(f"the audit ledger `{self.path}` was closed before its first entries were verified")

    def _check_same_file(self) -> os.stat_result:
        """The open file's ``fstat``, or ``LedgerError`` if the path no longer names it."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            raise LedgerError(f"the audit ledger `{self.path}` was removed while open") from None
        mine = os.fstat(self._fd)
        if (on_disk.st_dev, on_disk.st_ino) != (mine.st_dev, mine.st_ino):
            raise LedgerError(f"the audit ledger `{self.path}` was replaced by another file while open")
        return mine


class _Stopped(Exception):
    """``close`` stopped the background verification."""


class _Locked:
    """An exclusive ``flock`` held for a ``with`` block; errors become ``LedgerError``."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self._path = path

    def __enter__(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise LedgerError(f"cannot lock the audit ledger `{self._path}`: {exc.strerror or exc}") from exc

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)


# --- file helpers ------------------------------------------------------------------


def _open_file(path: Path) -> int:
    """Open the ledger for appending, creating it (and its directory) if needed."""
    flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            return os.open(path, flags)
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask
            os.fsync(fd)
            _fsync_dir(path.parent)
        except BaseException:
            os.close(fd)
            raise
        return fd
    except OSError as exc:
        raise LedgerError(f"cannot open the audit ledger `{path}`: {exc.strerror or exc}") from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, blob: bytes) -> None:
    view = memoryview(blob)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[written:]


def _tail(fd: int, size: int) -> tuple[int, int | None, bool]:
    """Find the last complete line of the file.

    Returns ``(end, start, torn)``: the complete lines end at byte ``end``; the
    last of them starts at ``start`` (``None`` if there is none); ``torn`` if
    bytes follow ``end`` (a last line without its newline) or the last line
    ending in a newline is not JSON, as ``verify_lines`` counts torn writes.
    """
    newlines: list[int] = []
    position = size
    while position > 0 and len(newlines) < 3:
        start = max(0, position - _TAIL_CHUNK)
        chunk = os.pread(fd, position - start, start)
        index = len(chunk)
        while len(newlines) < 3:
            index = chunk.rfind(b"\n", 0, index)
            if index < 0:
                break
            newlines.append(start + index)
        position = start
    # newlines holds up to three offsets of "\n", last first
    if not newlines:
        return 0, None, size > 0
    end = newlines[0] + 1
    torn = end < size
    if not torn:
        last_start = newlines[1] + 1 if len(newlines) > 1 else 0
        last = os.pread(fd, end - last_start, last_start)
        if not _is_json(last[:-1]):
            torn, end = True, last_start
            newlines = newlines[1:]
            if not newlines:
                return 0, None, True
    start_of_last = newlines[1] + 1 if len(newlines) > 1 else 0
    return end, start_of_last, torn


def _lines_backwards(fd: int, end: int, most: int) -> Iterator[tuple[int, bytes]]:
    """The complete lines that end at byte ``end`` or before it, last first, with their offsets and without their
    newlines, over at most the last ``most`` bytes before ``end`` (a line that starts further back is not given)."""
    position, buffer = end, b""  # buffer: the bytes from ``position`` to the end of the lines not given yet
    while position > 0 and end - position < most:
        if len(buffer) > _LONGEST_SEARCHED_LINE:
            return  # copying it again per chunk would cost more than verifying the whole file
        begin = max(0, position - _TAIL_CHUNK)
        buffer = os.pread(fd, position - begin, begin) + buffer
        position = begin
        while (cut := buffer.rfind(b"\n", 0, len(buffer) - 1)) >= 0:
            yield position + cut + 1, buffer[cut + 1 : -1]
            buffer = buffer[: cut + 1]
    if position == 0 and buffer:
        yield 0, buffer[:-1]


def _decoded(line: bytes) -> dict[str, Any] | None:
    """One line (without its newline) as a checked entry, or None."""
    try:
        return decode(line + b"\n")
    except EntryError:
        return None


def _is_json(body: bytes) -> bool:
    try:
        parse_json(body)
    except ValueError:
        return False
    return True


def _save_aside(path: Path, seq: int, data: bytes) -> Path:
    """Write ``data`` to a new ``<path>.torn-<seq>`` (``.1``, ``.2``... if taken) and fsync it."""
    for n in range(1000):
        aside = path.with_name(f"{path.name}.torn-{seq}" + (f".{n}" if n else ""))
        try:
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        except FileExistsError:
            continue
        except OSError as exc:
            raise LedgerError(f"cannot save a torn write next to the audit ledger `{path}`: {exc.strerror or exc}") from exc
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError as exc:
            raise LedgerError(f"cannot save a torn write next to the audit ledger `{path}`: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
        _fsync_dir(path.parent)
        return aside
    raise LedgerError(f"too many torn writes saved next to the audit ledger `{path}`")


# --- the in-memory twin ------------------------------------------------------------


class MemoryLedger:
    """The same chain in memory, for unit tests: same ``append``/``entries``/``verify``."""

    def __init__(self, clock: Clock, chain: str = DEFAULT_CHAIN) -> None:
        self._clock = clock
        self.chain = check_chain_id(chain)
        self._lines: list[bytes] = []
        self._seq = 0
        self._hash = GENESIS
        self._closed = False
        self.fail: Exception | None = None  # set to make the next appends raise this

    async def append(self, kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
        if self._closed:
            raise LedgerError("the audit ledger is closed")
        check_kind(kind)
        plain = check_data(data)
        if self.fail is not None:
            raise self.fail
        entry = make_entry(self._hash, self._seq + 1, isoformat(self._clock()), kind, plain, self.chain)
        self._lines.append(encode(entry))
        self._seq, self._hash = entry["seq"], entry["hash"]
        return entry

    async def probe(self) -> None:
        if self._closed:
            raise LedgerError("the audit ledger is closed")
        if self.fail is not None:
            raise self.fail

    async def entries(self) -> list[dict[str, Any]]:
        return [decode(line) for line in self._lines]

    async def verify(self) -> ChainReport:
        return verify_lines(self._lines, chain=self.chain)

    def lines(self) -> list[bytes]:
        """The ledger's bytes, line by line, as a file would hold them."""
        return list(self._lines)

    async def close(self) -> None:
        self._closed = True
