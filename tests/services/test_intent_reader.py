"""The reconciler's reader of a ledger file: slice by slice, so the ledger's writer is never held up for long."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time
from pathlib import Path

from gateway.audit import FileLedger
from gateway.services import reconcile
from gateway.services.reconcile import IntentReader
from tests.support import FrozenClock


async def ledger_with_intents(path: Path, count: int) -> None:
    async with await FileLedger.open(path, FrozenClock()) as ledger:
        for start in range(0, count, 512):
            await asyncio.gather(
                *(
                    ledger.append("record.write-intent", {"subject": "s", "key": f"k{n}", "region": "r", "sha256": "0" * 64, "object": f"o{n}"})
                    for n in range(start, min(count, start + 512))
                )
            )


async def test_the_writer_can_lock_the_ledger_while_the_reader_parses_a_long_one(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "ledger.jsonl"
    await ledger_with_intents(path, 5_000)
    monkeypatch.setattr(reconcile, "SCAN_SLICE", 16 * 1024, raising=False)  # many slices in a MiB
    reader = IntentReader(path)
    size = path.stat().st_size
    locked_at: list[int] = []  # where the reader was each time an exclusive lock (the writer's) was taken
    done = threading.Event()

    def writer() -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            while not done.is_set():
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass
                else:
                    locked_at.append(reader._offset)
                    fcntl.flock(fd, fcntl.LOCK_UN)
                time.sleep(0.0005)
        finally:
            os.close(fd)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        reader.scan()
    finally:
        done.set()
        thread.join()
    assert len(reader.open) == 5_000
    assert any(0 < at < size for at in locked_at)  # taken between slices, with the scan under way
