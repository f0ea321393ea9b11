"""A long ledger at open: its tail is verified before the first append, the rest in the background, and a break
anywhere still stops the writer."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.audit import RECOVERED, FileLedger, verify_file
from gateway.audit.chain import HEAD, encode, make_entry
from gateway.errors import LedgerBroken, LedgerError
from tests.support import FrozenClock

KEY = ed25519.Ed25519PrivateKey.generate()
T = "2026-10-01T09:00:00Z"
LONG = 200  # bytes: every ledger in these tests is longer, so open verifies it from its last signed head on


def entries_in(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


async def open_long(path: Path) -> FileLedger:
    return await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_seconds=0, verify_at_open_bytes=LONG)


async def signed_ledger(path: Path, batches: int, per_batch: int = 5, checkpoint_every: int = 1000) -> None:
    """``batches`` group commits of ``per_batch`` entries, each ending on a signed head."""
    async with await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_seconds=0, checkpoint_every=checkpoint_every) as ledger:
        for b in range(batches):
            await asyncio.gather(*(ledger.append("k", {"n": b * per_batch + n}) for n in range(per_batch)))


async def opened_and_verified(path: Path) -> None:
    """Open the long ledger at ``path``, wait for its background verification to pass, close it."""
    ledger = await open_long(path)
    try:
        await ledger.wait_verified()
    finally:
        await ledger.close()


async def found_broken_in_the_background(path: Path, match: str) -> None:
    """Open the long ledger at ``path``: it opens, its background verification finds ``match``, and then it takes no more entries."""
    ledger = await open_long(path)
    try:
        with pytest.raises(LedgerBroken, match=match):
            await ledger.wait_verified()
        with pytest.raises(LedgerBroken):
            await ledger.append("k", {"n": "after"})
    finally:
        await ledger.close()


def alter_entry(path: Path, seq: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[seq - 1])
    lines[seq - 1] = lines[seq - 1].replace(f'"n":{entry["data"]["n"]}'.encode(), b'"n":99999')
    path.write_bytes(b"".join(lines))


async def test_a_long_ledger_opens_and_its_next_entries_continue_one_verifiable_chain(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 6)
    ledger = await open_long(path)
    try:
        entry = await ledger.append("k", {"n": "next"})
        await ledger.wait_verified()
    finally:
        await ledger.close()
    assert entry["seq"] == 31
    report = verify_file(path, public_key=KEY.public_key(), require_signed_heads=True)
    assert report.ok and report.last_seq == 31


async def test_a_long_ledger_altered_before_its_last_signed_head_takes_no_more_entries_once_verified(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 6)
    alter_entry(path, 2)
    await found_broken_in_the_background(path, "entry 2: hash does not match its content")


async def test_a_long_ledger_found_broken_in_the_background_fails_its_write_probe(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 6)
    alter_entry(path, 3)
    ledger = await open_long(path)
    try:
        with pytest.raises(LedgerBroken):
            await ledger.wait_verified()
        with pytest.raises(LedgerBroken) as raised:
            await ledger.probe()  # what /readyz asks the ledger
    finally:
        await ledger.close()
    assert raised.value.code == "ledger-broken"


async def test_a_long_ledger_whose_last_signed_head_was_altered_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 6)
    alter_entry(path, 30)  # the last line, a signed head: verified from the head before it, before open returns
    before = path.read_bytes()
    with pytest.raises(LedgerBroken, match="entry 30"):
        await open_long(path)
    assert path.read_bytes() == before


async def test_the_unsigned_end_of_a_long_ledger_is_moved_aside_on_open_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 6)
    last = entries_in(path)[-1]
    lost, prev = [], last["hash"]
    for n in range(2):  # the whole lines of a batch written before its head could be signed
        entry = make_entry(prev, last["seq"] + 1 + n, T, "k", {"lost": n})
        lost.append(encode(entry))
        prev = entry["hash"]
    with path.open("ab") as handle:
        handle.write(b"".join(lost))
    await opened_and_verified(path)
    entries = entries_in(path)
    assert [e["seq"] for e in entries] == list(range(1, 32))
    assert entries[30]["kind"] == RECOVERED and entries[30]["data"]["unsigned_entries"] == 2
    assert (tmp_path / "ledger.jsonl.torn-31").read_bytes() == b"".join(lost)
    assert verify_file(path, public_key=KEY.public_key(), require_signed_heads=True).ok


async def test_a_torn_last_line_of_a_long_ledger_is_moved_aside_on_open_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 6)
    torn = b'{"data":{"n":30},"ha'
    with path.open("ab") as handle:
        handle.write(torn)
    await opened_and_verified(path)
    entries = entries_in(path)
    assert entries[30]["kind"] == RECOVERED
    assert entries[30]["data"]["torn_sha256"] == hashlib.sha256(torn).hexdigest()
    assert verify_file(path, public_key=KEY.public_key(), require_signed_heads=True).ok


async def test_a_long_ledger_is_verified_from_the_line_of_its_last_signed_head(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 6)
    heads = [e["seq"] for e in entries_in(path) if HEAD in e]
    alter_entry(path, heads[-2])  # the head before the last: verified only in the background
    ledger = await open_long(path)
    try:
        with pytest.raises(LedgerBroken, match=f"entry {heads[-2]}"):
            await ledger.wait_verified()
    finally:
        await ledger.close()


async def test_appends_made_while_the_background_verification_reads_do_not_make_it_find_a_break(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 500, per_batch=40)  # 20,000 entries: the background read takes many reads
    ledger = await open_long(path)
    try:
        verified = asyncio.ensure_future(ledger.wait_verified())
        appended = 0
        while not verified.done():  # one write after another, for as long as the verification reads
            await ledger.append("k", {"n": f"meanwhile {appended}"})
            appended += 1
        await verified
        await ledger.append("k", {"n": "after"})
        assert appended > 0  # the appends went on while it read
    finally:
        await ledger.close()
    assert verify_file(path, public_key=KEY.public_key(), require_signed_heads=True).ok


async def test_a_long_ledger_reopened_writes_its_next_checkpoint_where_a_whole_verification_would(tmp_path: Path) -> None:
    kinds = {}
    for name, verify_at_open_bytes in (("whole", 1 << 30), ("tail", LONG)):
        path = tmp_path / name / "ledger.jsonl"
        await signed_ledger(path, 9, checkpoint_every=20)  # checkpoints after entries 20 and 40: 7 left uncovered
        async with await FileLedger.open(
            path, FrozenClock(), checkpoint_key=KEY, checkpoint_seconds=0, checkpoint_every=20, verify_at_open_bytes=verify_at_open_bytes
        ) as ledger:
            for n in range(30):
                await ledger.append("k", {"n": f"after {n}"})
        kinds[name] = [e["kind"] for e in entries_in(path)]
    assert kinds["tail"] == kinds["whole"]


async def test_a_long_ledger_ending_in_entries_longer_than_a_read_is_still_verified_from_its_tail(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 6)
    async with await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_seconds=0) as writer:
        await asyncio.gather(*(writer.append("k", {"n": f"large {n}", "pad": "x" * 200_000}) for n in range(3)))
    alter_entry(path, 2)
    ledger = await open_long(path)  # opens: the break is before the tail, among short lines
    try:
        with pytest.raises(LedgerBroken, match="entry 2"):
            await ledger.wait_verified()
    finally:
        await ledger.close()


async def test_a_long_ledger_with_an_early_line_too_deep_to_parse_takes_no_more_entries(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 6)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = b"[" * 200_000 + b"]" * 200_000 + b"\n"  # JSON, but nested past what the parser can follow
    path.write_bytes(b"".join(lines))
    await found_broken_in_the_background(path, "could not be checked")


async def test_a_long_ledger_closed_before_its_background_verification_ends_is_not_reported_verified(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    await signed_ledger(path, 500, per_batch=40)
    ledger = await open_long(path)
    await ledger.close()
    with pytest.raises(LedgerError, match="closed before its first entries were verified"):
        await ledger.wait_verified()
