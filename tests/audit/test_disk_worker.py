"""The ledger's writer thread: calls run in order, off the loop, and end before the file is closed."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from gateway.audit.ledger import DiskWorker


async def test_calls_run_in_the_order_made_on_one_thread_that_is_not_the_loops() -> None:
    worker = DiskWorker("test-writer")
    seen: list[tuple[int, int]] = []
    await asyncio.gather(*(worker.run(lambda n=n: seen.append((n, threading.get_ident()))) for n in range(20)))
    worker.stop()
    assert [n for n, _ in seen] == list(range(20))
    assert len({t for _, t in seen}) == 1 and threading.get_ident() not in {t for _, t in seen}


async def test_an_exception_in_a_call_reaches_its_caller() -> None:
    worker = DiskWorker("test-writer")

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await worker.run(fail)
    worker.stop()


async def test_stop_hands_back_a_thread_that_ends_after_the_calls_already_queued() -> None:
    worker = DiskWorker("test-writer")
    done: list[str] = []
    pending = worker.run(lambda: (time.sleep(0.05), done.append("slow")))
    thread = worker.stop()
    assert thread is not None
    await asyncio.to_thread(thread.join, 5)
    await pending
    assert (done, thread.is_alive()) == (["slow"], False)
