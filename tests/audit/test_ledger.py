"""The file ledger: durable, group-committed, one writer per file, self-recovering."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import multiprocessing
import os
import stat
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import RECOVERED, FileLedger, MemoryLedger, read_entries, verify_file
from gateway.errors import LedgerBroken, LedgerError
from gateway.model import system_clock


def clock() -> datetime:
    return datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger" / "ledger.jsonl"


@pytest.fixture
async def ledger(path: Path) -> AsyncIterator[FileLedger]:
    opened = await FileLedger.open(path, clock)
    yield opened
    await opened.close()


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def counting_fsync(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count ``os.fsync`` calls while still syncing for real."""
    calls: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def failing_fsync(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Make ``os.fsync`` fail until the returned function clears the fault."""
    real = os.fsync

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    return lambda: monkeypatch.setattr(os, "fsync", real)


async def write_ledger(path: Path, count: int) -> None:
    async with await FileLedger.open(path, clock) as writer:
        for n in range(count):
            await writer.append("record.read", {"n": n})


# --- appending -----------------------------------------------------------------------


async def test_appended_entries_verify_and_are_numbered_from_one(ledger: FileLedger, path: Path) -> None:
    for n in range(3):
        await ledger.append("record.read", {"n": n})
    report = await ledger.verify()
    assert report.ok and report.entries == 3
    assert [e["seq"] for e in lines_of(path)] == [1, 2, 3]


async def test_append_returns_the_entry_it_wrote(ledger: FileLedger, path: Path) -> None:
    entry = await ledger.append("record.read", {"subject": "s-1"})
    assert lines_of(path) == [entry]
    assert entry["kind"] == "record.read" and entry["time"] == "2025-01-01T12:00:00Z"


async def test_reopening_a_ledger_continues_its_chain(path: Path) -> None:
    await write_ledger(path, 2)
    async with await FileLedger.open(path, clock) as reopened:
        entry = await reopened.append("record.read", {"n": 2})
    assert entry["seq"] == 3 and entry["prev"] == lines_of(path)[1]["hash"]
    assert verify_file(path).ok


async def test_a_new_ledger_is_created_with_its_directory_and_mode_0640(ledger: FileLedger, path: Path) -> None:
    assert path.parent.is_dir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


async def test_entries_reads_every_entry_back(ledger: FileLedger) -> None:
    written = [await ledger.append("record.read", {"n": n}) for n in range(3)]
    assert await ledger.entries() == written


async def test_concurrent_appends_are_group_committed_in_fewer_fsyncs_than_entries(
    ledger: FileLedger, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = counting_fsync(monkeypatch)
    entries = await asyncio.gather(*(ledger.append("record.read", {"n": n}) for n in range(200)))
    assert sorted(e["seq"] for e in entries) == list(range(1, 201))
    assert 0 < len(fsyncs) < 200
    assert verify_file(path).entries == 200


async def test_appends_after_close_are_refused(path: Path) -> None:
    closing = await FileLedger.open(path, clock)
    await closing.close()
    with pytest.raises(LedgerError):
        await closing.append("record.read", {})


async def test_close_waits_for_appends_already_made(path: Path) -> None:
    closing = await FileLedger.open(path, clock)
    pending = [asyncio.ensure_future(closing.append("record.read", {"n": n})) for n in range(5)]
    await asyncio.sleep(0)
    await closing.close()
    assert [e["seq"] for e in await asyncio.gather(*pending)] == [1, 2, 3, 4, 5]


# --- bad data ------------------------------------------------------------------------


async def test_data_with_a_float_raises_value_error_and_writes_nothing(ledger: FileLedger, path: Path) -> None:
    await ledger.append("record.read", {"n": 1})
    before = path.read_bytes()
    with pytest.raises(ValueError, match="float"):
        await ledger.append("record.read", {"score": 0.5})
    assert path.read_bytes() == before


async def test_one_bad_entry_does_not_fail_the_others_in_its_batch(ledger: FileLedger) -> None:
    results = await asyncio.gather(
        ledger.append("record.read", {"n": 1}),
        ledger.append("record.read", {"n": object()}),
        ledger.append("record.read", {"n": 3}),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    assert [r["seq"] for r in results if isinstance(r, dict)] == [1, 2]


# --- failures ------------------------------------------------------------------------


async def test_an_fsync_failure_makes_append_raise_ledger_error(ledger: FileLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    failing_fsync(monkeypatch)
    with pytest.raises(LedgerError) as raised:
        await ledger.append("record.read", {"n": 1})
    assert raised.value.code == "ledger-unavailable"


async def test_a_failed_batch_leaves_no_entry_behind(ledger: FileLedger, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await ledger.append("record.read", {"n": 1})
    before = path.read_bytes()
    failing_fsync(monkeypatch)
    with pytest.raises(LedgerError):
        await ledger.append("record.read", {"n": 2})
    assert path.read_bytes() == before


async def test_after_an_fsync_failure_clears_the_next_append_continues_a_valid_chain(
    ledger: FileLedger, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await ledger.append("record.read", {"n": 1})
    clear = failing_fsync(monkeypatch)
    with pytest.raises(LedgerError):
        await ledger.append("record.read", {"n": 2})
    clear()
    after = await ledger.append("record.read", {"n": 3})
    assert (after["seq"], after["prev"]) == (2, first["hash"])
    assert (await ledger.verify()).ok


async def test_every_append_in_a_failed_batch_gets_the_error(ledger: FileLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    failing_fsync(monkeypatch)
    results = await asyncio.gather(*(ledger.append("record.read", {"n": n}) for n in range(10)), return_exceptions=True)
    assert all(isinstance(r, LedgerError) for r in results)


# --- opening damaged ledgers -----------------------------------------------------------


async def test_a_torn_tail_on_open_is_moved_aside_and_recorded(path: Path) -> None:
    await write_ledger(path, 3)
    torn = b'{"data":{"n":3},"hash":"ab'
    with path.open("ab") as handle:
        handle.write(torn)
    async with await FileLedger.open(path, clock):
        pass
    entries = lines_of(path)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert entries[3]["kind"] == RECOVERED
    assert entries[3]["data"] == {
        "torn_bytes": len(torn),
        "torn_sha256": hashlib.sha256(torn).hexdigest(),
        "moved_to": "ledger.jsonl.torn-4",
    }
    assert (path.parent / "ledger.jsonl.torn-4").read_bytes() == torn
    assert verify_file(path).ok


async def test_a_complete_last_entry_without_its_newline_is_treated_as_torn(path: Path) -> None:
    await write_ledger(path, 2)
    path.write_bytes(path.read_bytes()[:-1])
    async with await FileLedger.open(path, clock):
        pass
    entries = lines_of(path)
    assert [e["kind"] for e in entries] == ["record.read", RECOVERED]
    assert verify_file(path).ok


async def test_a_torn_tail_left_by_another_writer_is_recovered_before_the_next_append(ledger: FileLedger, path: Path) -> None:
    await ledger.append("record.read", {"n": 1})
    with path.open("ab") as handle:
        handle.write(b'{"data":')
    entry = await ledger.append("record.read", {"n": 2})
    assert [e["kind"] for e in lines_of(path)] == ["record.read", RECOVERED, "record.read"]
    assert entry["seq"] == 3
    assert verify_file(path).ok


async def test_a_second_torn_write_at_the_same_place_is_kept_in_its_own_file(path: Path) -> None:
    await write_ledger(path, 1)
    (path.parent / "ledger.jsonl.torn-2").write_bytes(b"earlier")
    with path.open("ab") as handle:
        handle.write(b"{")
    async with await FileLedger.open(path, clock):
        pass
    assert (path.parent / "ledger.jsonl.torn-2").read_bytes() == b"earlier"
    assert (path.parent / "ledger.jsonl.torn-2.1").read_bytes() == b"{"


async def test_a_broken_chain_on_open_raises_ledger_broken_and_appends_nothing(path: Path) -> None:
    await write_ledger(path, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"n":1', b'"n":7')
    path.write_bytes(b"".join(lines))
    before = path.read_bytes()
    with pytest.raises(LedgerBroken) as raised:
        await FileLedger.open(path, clock)
    assert raised.value.code == "ledger-broken"
    assert "entry 2: hash does not match its content" in raised.value.message
    assert path.read_bytes() == before


async def test_a_ledger_broken_under_an_open_writer_takes_no_more_entries(ledger: FileLedger, path: Path) -> None:
    await ledger.append("record.read", {"n": 1})
    with path.open("ab") as handle:
        handle.write(b'{"not":"an entry"}\n')
    with pytest.raises(LedgerBroken):
        await ledger.append("record.read", {"n": 2})


async def test_a_ledger_cut_short_under_an_open_writer_takes_no_more_entries(ledger: FileLedger, path: Path) -> None:
    for n in range(3):
        await ledger.append("record.read", {"n": n})
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]))
    with pytest.raises(LedgerBroken, match="cut short"):
        await ledger.append("record.read", {"n": 3})


# --- one writer per file --------------------------------------------------------------


async def test_a_second_ledger_opened_on_a_file_another_has_open_is_refused_as_in_use(ledger: FileLedger, path: Path) -> None:
    await ledger.append("record.read", {"n": 0})
    with pytest.raises(LedgerError) as refused:
        await FileLedger.open(path, clock)
    assert refused.value.code == "ledger-in-use" and f"pid {os.getpid()}" in refused.value.message
    await ledger.append("record.read", {"n": 1})
    assert [e["seq"] for e in lines_of(path)] == [1, 2]


def _hold_the_ledger_open(path: str, ready: Any, go: Any) -> None:
    async def run() -> None:
        async with await FileLedger.open(Path(path), system_clock) as ledger:
            await ledger.append("child.append", {"n": 0})
            ready.set()
            await asyncio.to_thread(go.wait, 120)

    asyncio.run(run())


async def test_a_second_process_opening_a_ledger_file_another_process_writes_is_refused(path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    ready, go = context.Event(), context.Event()
    child = context.Process(target=_hold_the_ledger_open, args=(str(path), ready, go))
    child.start()
    try:
        assert await asyncio.to_thread(ready.wait, 120)
        with pytest.raises(LedgerError) as refused:
            await FileLedger.open(path, clock)
        assert refused.value.code == "ledger-in-use" and f"pid {child.pid}" in refused.value.message
    finally:
        go.set()
        await asyncio.to_thread(child.join, 120)
    assert child.exitcode == 0
    assert [e["kind"] for e in lines_of(path)] == ["child.append"]


async def test_a_ledger_closed_by_its_writer_can_be_opened_by_the_next(path: Path) -> None:
    await write_ledger(path, 2)
    async with await FileLedger.open(path, clock) as again:
        entry = await again.append("record.read", {"n": 2})
    assert entry["seq"] == 3


async def test_a_ledger_whose_writer_was_killed_can_be_opened_by_the_next(path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    ready, go = context.Event(), context.Event()
    child = context.Process(target=_hold_the_ledger_open, args=(str(path), ready, go))
    child.start()
    assert await asyncio.to_thread(ready.wait, 120)
    child.kill()
    await asyncio.to_thread(child.join, 120)
    async with await FileLedger.open(path, clock) as again:
        entry = await again.append("record.read", {"n": 1})
    assert entry["seq"] == 2


# --- chains --------------------------------------------------------------------------


async def test_a_named_chains_writer_puts_its_chain_id_in_every_entry_checkpoints_included(path: Path) -> None:
    from gateway.keys import generate_ed25519_pair, load_ed25519_private

    generate_ed25519_pair(path.parent / "provider.key")
    key = load_ed25519_private(path.parent / "provider.key")
    async with await FileLedger.open(path, clock, checkpoint_key=key, checkpoint_every=2, checkpoint_seconds=0, chain="gw-0") as ledger:
        for n in range(3):
            await ledger.append("record.read", {"n": n})
    entries = lines_of(path)
    assert "ledger.checkpoint" in [e["kind"] for e in entries]
    assert {e["chain"] for e in entries} == {"gw-0"}
    assert verify_file(path, public_key=key.public_key(), require_signed_heads=True, chain="gw-0").ok


async def test_a_ledger_file_of_another_chain_is_refused_on_open(path: Path) -> None:
    async with await FileLedger.open(path, clock, chain="gw-0") as ledger:
        await ledger.append("record.read", {"n": 0})
    with pytest.raises(LedgerBroken, match="chain `gw-0`, not `gw-1`"):
        await FileLedger.open(path, clock, chain="gw-1")


async def test_a_ledger_written_before_chain_ids_is_continued_by_the_default_chain(path: Path) -> None:
    await write_ledger(path, 2)
    async with await FileLedger.open(path, clock) as ledger:
        entry = await ledger.append("record.read", {"n": 2})
    assert entry["seq"] == 3 and all("chain" not in e for e in lines_of(path))
    assert verify_file(path).ok


# --- reading -------------------------------------------------------------------------


def test_verify_file_of_a_missing_file_raises_ledger_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerError):
        verify_file(tmp_path / "missing.jsonl")


async def test_read_entries_of_a_broken_file_raises_ledger_broken(path: Path) -> None:
    await write_ledger(path, 2)
    path.write_bytes(path.read_bytes().replace(b'"n":0', b'"n":5'))
    with pytest.raises(LedgerBroken):
        read_entries(path)


# --- the in-memory twin ----------------------------------------------------------------


async def test_the_memory_ledger_chains_and_verifies_like_the_file() -> None:
    memory = MemoryLedger(clock)
    entries = [await memory.append("record.read", {"n": n}) for n in range(3)]
    assert await memory.entries() == entries
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert (await memory.verify()).ok


async def test_the_memory_ledger_refuses_floats_like_the_file() -> None:
    memory = MemoryLedger(clock)
    with pytest.raises(ValueError):
        await memory.append("record.read", {"x": 1.5})
    assert await memory.entries() == []


async def test_the_memory_ledger_can_be_made_to_fail() -> None:
    memory = MemoryLedger(clock)
    memory.fail = LedgerError("disk full")
    with pytest.raises(LedgerError):
        await memory.append("record.read", {})
    assert await memory.entries() == []
