"""Signed heads: every group commit ends on a line signed with the provider key, and a crash never leaves an unsigned end."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.audit import RECOVERED, FileLedger, verify_file
from gateway.audit.chain import HEAD, encode, entry_hash, make_entry, verify_lines
from tests.support import FrozenClock

KEY = ed25519.Ed25519PrivateKey.generate()
T = "2026-10-01T09:00:00Z"


def entries_in(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def heads_in(path: Path) -> list[int]:
    return [e["seq"] for e in entries_in(path) if HEAD in e]


async def signed_ledger(path: Path, count: int) -> None:
    async with await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_seconds=0) as ledger:
        for n in range(count):
            await ledger.append("k", {"n": n})


def unsigned_batch(path: Path, count: int) -> bytes:
    """The whole lines of a batch that follows the file's last entry, as written before its head could be signed."""
    last = entries_in(path)[-1]
    lines, prev = [], last["hash"]
    for n in range(count):
        entry = make_entry(prev, last["seq"] + 1 + n, T, "k", {"lost": n})
        lines.append(encode(entry))
        prev = entry["hash"]
    return b"".join(lines)


def test_a_head_signature_is_not_part_of_the_entry_hash_so_signing_changes_no_hash(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    asyncio.run(signed_ledger(path, 1))
    entry = entries_in(path)[0]
    assert HEAD in entry and entry_hash(entry) == entry["hash"]
    assert entry_hash({k: v for k, v in entry.items() if k != HEAD}) == entry["hash"]


async def test_concurrent_appends_share_one_signed_head_per_group_commit(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    async with await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_seconds=0) as ledger:
        written = await asyncio.gather(*(ledger.append("k", {"n": n}) for n in range(100)))
    heads = heads_in(path)
    assert heads[-1] == 100 and len(heads) < 100
    assert [e for e in written if HEAD in e] == [e for e in entries_in(path) if HEAD in e]  # append returns the line as written
    report = verify_file(path, public_key=KEY.public_key(), require_signed_heads=True)
    assert report.ok and report.heads == len(heads) and report.last_head == 100


async def test_a_ledger_without_a_key_writes_no_signed_heads_and_does_not_pass_as_signed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    async with await FileLedger.open(path, FrozenClock()) as ledger:
        await ledger.append("k", {})
    assert heads_in(path) == []
    assert verify_file(path).ok
    report = verify_file(path, public_key=KEY.public_key(), require_signed_heads=True)
    assert not report.ok and "no entry is covered by a signed head" in (report.problem or "")


async def test_whole_lines_of_a_batch_left_without_its_signed_head_are_moved_aside_on_open_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 3)
    lost = unsigned_batch(path, 2) + b'{"data":{"lost":2},"ha'  # and the torn start of its third line
    with path.open("ab") as handle:
        handle.write(lost)
    async with await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_seconds=0):
        pass
    entries = entries_in(path)
    assert [e["kind"] for e in entries] == ["k", "k", "k", RECOVERED]
    assert entries[3]["data"] == {
        "torn_bytes": len(lost),
        "torn_sha256": hashlib.sha256(lost).hexdigest(),
        "moved_to": "ledger.jsonl.torn-4",
        "unsigned_entries": 2,
    }
    assert (tmp_path / "ledger.jsonl.torn-4").read_bytes() == lost
    assert verify_file(path, public_key=KEY.public_key(), require_signed_heads=True).ok


async def test_another_writers_batch_left_without_its_signed_head_is_moved_aside_before_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    async with await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_seconds=0) as ledger:
        await ledger.append("k", {"n": 0})
        with path.open("ab") as handle:
            handle.write(unsigned_batch(path, 3))
        entry = await ledger.append("k", {"n": 1})
    assert [e["kind"] for e in entries_in(path)] == ["k", RECOVERED, "k"]
    assert entries_in(path)[1]["data"]["unsigned_entries"] == 3
    assert entry["seq"] == 3 and HEAD in entry
    assert verify_file(path, public_key=KEY.public_key(), require_signed_heads=True).ok


async def test_a_ledger_written_before_signed_heads_is_kept_whole_and_covered_by_the_next_signed_head(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    async with await FileLedger.open(path, FrozenClock()) as old:
        for n in range(4):
            await old.append("k", {"n": n})
    async with await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_seconds=0) as ledger:
        await ledger.append("k", {"n": 4})
    assert heads_in(path) == [5]
    report = verify_file(path, public_key=KEY.public_key(), require_signed_heads=True)
    assert report.ok and report.first_head == 5 and report.entries == 5


def test_a_head_signature_copied_onto_another_line_does_not_verify(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    asyncio.run(signed_ledger(path, 3))
    entries = entries_in(path)
    entries[1][HEAD] = entries[2][HEAD]
    report = verify_lines([encode(e) for e in entries], public_key=KEY.public_key())
    assert not report.ok and report.broken_at == 2 and "head signature does not verify" in (report.problem or "")
