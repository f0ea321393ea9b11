"""Durable ledger appends per second: group commit versus one fsync per entry.

Run ``python -m bench.ledger`` (from the repository root). For 1, 32 and 256
concurrent writers it appends for a bounded time (``--seconds`` per cell, at
most ``--max-entries``) to a fresh ledger in a temporary folder on the same
file system as the current directory (not /tmp, which may be a RAM disk), and
prints a Markdown table. Every append counted has returned, so it is fsynced.

- group commit: ``FileLedger`` as the gateway runs it (signed checkpoints every
  1000 entries); concurrent appends share one write and one fsync per batch.
- one fsync per entry: the same entries, each written and fsynced on its own
  under a lock, as a naive durable log would. It checks and encodes each entry
  exactly as ``FileLedger`` does and hands each write to the same kind of
  writer thread (``DiskWorker``), so the two differ only in how many entries
  share a write and an fsync.

Both run on the event loop ``gateway serve`` runs on: uvloop when it is
installed, else asyncio's own (``--loop`` chooses, as ``serve --loop`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from bench.machine import cpu_model
from gateway.aio import event_loop
from gateway.audit import FileLedger
from gateway.audit.chain import GENESIS, check_data, check_kind, entry_and_line
from gateway.audit.ledger import DiskWorker
from gateway.model import isoformat, system_clock

WRITERS = (1, 32, 256)
DATA = {"caller": "billing", "subject": "subject-0001", "key": "profile", "outcome": "allow", "sha256": "0" * 64}


class FsyncEach:
    """The baseline: one write and one fsync per entry, appends serialised by a lock."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lock = asyncio.Lock()
        self._seq, self._hash = 0, GENESIS
        self._disk = DiskWorker("fsync-each-writer")

    async def append(self, kind: str, data: dict[str, object]) -> None:
        # the same checks and encoding as FileLedger.append, then one write and one fsync
        kind, moment, plain = check_kind(kind), isoformat(system_clock()), check_data(data)
        async with self._lock:
            entry, line = entry_and_line(self._hash, self._seq + 1, moment, kind, plain)
            await self._disk.run(self._write, line)
            self._seq, self._hash = entry["seq"], entry["hash"]

    def _write(self, line: bytes) -> None:
        os.write(self._fd, line)
        os.fsync(self._fd)

    async def close(self) -> None:
        self._disk.stop()
        os.close(self._fd)


async def measure(kind: str, writers: int, seconds: float, max_entries: int, folder: Path) -> float:
    path = folder / f"{kind}-{writers}.jsonl"
    ledger: FileLedger | FsyncEach
    if kind == "group":
        ledger = await FileLedger.open(path, system_clock, checkpoint_key=ed25519.Ed25519PrivateKey.generate(), checkpoint_seconds=0)
    else:
        ledger = FsyncEach(path)
    done = 0
    stop = time.perf_counter() + seconds

    async def writer() -> None:
        nonlocal done
        while time.perf_counter() < stop and done < max_entries:
            await ledger.append("service.read", DATA)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - start
    await ledger.close()
    return done / elapsed



async def run(seconds: float, max_entries: int, loop: str) -> str:
    rows = []
    with tempfile.TemporaryDirectory(prefix=".bench-ledger-", dir=Path.cwd()) as tmp:
        for writers in WRITERS:
            group = await measure("group", writers, seconds, max_entries, Path(tmp))
            each = await measure("each", writers, seconds, max_entries, Path(tmp))
            rows.append(f"| {writers} | {group:,.0f} | {each:,.0f} | {group / each:.1f}x |")
    header = [
        f"Durable ledger appends per second ({datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, {cpu_model()}, "
        f"Python {platform.python_version()}, {loop} event loop, {seconds:g} s per cell)",
        "",
        "| concurrent writers | group commit | one fsync per entry | ratio |",
        "|---:|---:|---:|---:|",
    ]
    return "\n".join(header + rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per cell (default 3)")
    parser.add_argument("--max-entries", type=int, default=200_000, help="stop a cell after this many appends")
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto", help="the event loop, as `gateway serve --loop` (default auto)")
    args = parser.parse_args()
    name, factory = event_loop(args.loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        print(runner.run(run(args.seconds, args.max_entries, name)))


if __name__ == "__main__":
    main()
