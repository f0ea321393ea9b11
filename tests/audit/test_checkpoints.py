"""Signed checkpoints: written by the group-commit writer, checked by the verifier."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import CHECKPOINT, FileLedger, verify_file
from gateway.audit.chain import GENESIS, checkpoint_data, encode, entry_hash, make_entry, verify_lines
from gateway.canonical import b64url
from tests.audit.test_chain import T0, datas, kinds, times
from tests.support import FrozenClock

KEY = ed25519.Ed25519PrivateKey.generate()
OTHER = ed25519.Ed25519PrivateKey.generate()


def build(specs: list[tuple[str, str, dict[str, Any]]], after: set[int], key: ed25519.Ed25519PrivateKey = KEY) -> list[bytes]:
    """Lines for ``specs`` with a checkpoint signed by ``key`` after each spec index in ``after``."""
    lines: list[bytes] = []
    prev, seq = GENESIS, 0
    for index, (time, kind, data) in enumerate(specs):
        seq += 1
        entry = make_entry(prev, seq, time, kind, data)
        lines.append(encode(entry))
        prev = entry["hash"]
        if index in after:
            seq += 1
            checkpoint = make_entry(prev, seq, time, CHECKPOINT, checkpoint_data(key, seq - 1, prev))
            lines.append(encode(checkpoint))
            prev = checkpoint["hash"]
    return lines


def relinked(lines: list[bytes], index: int, data: dict[str, Any]) -> list[bytes]:
    """Replace line ``index``'s data and re-hash and re-link every line after it: a forger's best effort."""
    out = list(lines[:index])
    prev = json.loads(lines[index - 1])["hash"] if index else GENESIS
    for n, line in enumerate(lines[index:], start=index):
        entry = json.loads(line)
        if n == index:
            entry["data"] = data
        entry["prev"] = prev
        entry["hash"] = entry_hash(entry)
        out.append(encode(entry))
        prev = entry["hash"]
    return out


def checkpoint_indexes(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if json.loads(line)["kind"] == CHECKPOINT]


specs = st.lists(st.tuples(times, kinds.filter(lambda k: k != CHECKPOINT), datas), min_size=1, max_size=8)
chains = specs.flatmap(lambda s: st.tuples(st.just(s), st.sets(st.integers(0, len(s) - 1), min_size=1)))


# --- the verifier ----------------------------------------------------------------------


@given(chains)
def test_a_ledger_with_checkpoints_signed_by_the_provider_key_always_verifies(chain: tuple[list[Any], set[int]]) -> None:
    lines = build(*chain)
    report = verify_lines(lines, public_key=KEY.public_key())
    assert report.ok and report.signatures_checked
    assert report.checkpoints == len(chain[1])


@given(chains, st.data())
def test_a_checkpoint_signed_by_another_key_is_detected(chain: tuple[list[Any], set[int]], data: st.DataObject) -> None:
    specs_, after = chain
    forged = data.draw(st.sampled_from(sorted(after)))
    lines = build(specs_, after)
    index = checkpoint_indexes(lines)[sorted(after).index(forged)]
    entry = json.loads(lines[index])
    lines = relinked(lines, index, checkpoint_data(OTHER, entry["seq"] - 1, entry["prev"]))
    report = verify_lines(lines, public_key=KEY.public_key())
    assert not report.ok and report.broken_at == index + 1


@given(chains, st.data())
def test_a_checkpoint_with_a_wrong_signature_under_the_right_key_id_is_detected(chain: tuple[list[Any], set[int]], data: st.DataObject) -> None:
    lines = build(*chain)
    index = data.draw(st.sampled_from(checkpoint_indexes(lines)))
    entry = json.loads(lines[index])
    bad = dict(entry["data"], signature=b64url(KEY.sign(b"something else")))
    lines = relinked(lines, index, bad)
    report = verify_lines(lines, public_key=KEY.public_key())
    assert not report.ok and report.broken_at == index + 1
    assert "signature does not verify" in (report.problem or "")


@given(chains, st.data(), st.binary(min_size=1, max_size=8))
def test_a_correctly_signed_checkpoint_covering_a_wrong_hash_is_detected(
    chain: tuple[list[Any], set[int]], data: st.DataObject, noise: bytes
) -> None:
    lines = build(*chain)
    index = data.draw(st.sampled_from(checkpoint_indexes(lines)))
    entry = json.loads(lines[index])
    wrong = hashlib.sha256(noise).hexdigest()
    lines = relinked(lines, index, checkpoint_data(KEY, entry["seq"] - 1, wrong))
    report = verify_lines(lines, public_key=KEY.public_key())
    assert not report.ok and report.broken_at == index + 1
    assert "does not match" in (report.problem or "")


@given(chains, st.data())
def test_a_correctly_signed_checkpoint_covering_another_entry_is_detected(chain: tuple[list[Any], set[int]], data: st.DataObject) -> None:
    lines = build(*chain)
    index = data.draw(st.sampled_from(checkpoint_indexes(lines)))
    entry = json.loads(lines[index])
    lines = relinked(lines, index, checkpoint_data(KEY, entry["seq"] + 5, entry["prev"]))
    report = verify_lines(lines, public_key=KEY.public_key())
    assert not report.ok and report.broken_at == index + 1


def test_without_a_public_key_signatures_are_not_checked_and_the_report_says_so() -> None:
    lines = build([(T0, "k", {})], {0}, key=OTHER)
    report = verify_lines(lines)
    assert report.ok and not report.signatures_checked and report.checkpoints == 1


# --- the writer --------------------------------------------------------------------------


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.jsonl"


def kinds_in(path: Path) -> list[str]:
    return [json.loads(line)["kind"] for line in path.read_bytes().splitlines()]


async def test_the_writer_adds_a_checkpoint_after_every_n_entries(path: Path) -> None:
    ledger = await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_every=3, checkpoint_seconds=0)
    for n in range(7):
        await ledger.append("k", {"n": n})
    await ledger.close()
    assert kinds_in(path) == ["k", "k", "k", CHECKPOINT, "k", "k", "k", CHECKPOINT, "k"]
    assert verify_file(path, public_key=KEY.public_key()).ok


async def test_checkpoints_ride_in_the_same_group_commit_as_the_entries(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_every=10, checkpoint_seconds=0)
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    await asyncio.gather(*(ledger.append("k", {"n": n}) for n in range(200)))
    await ledger.close()
    assert kinds_in(path).count(CHECKPOINT) == 20
    assert len(calls) < 20


async def test_a_checkpoint_is_written_once_the_interval_has_passed_on_the_clock(path: Path) -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    ledger = await FileLedger.open(path, clock, checkpoint_key=KEY, checkpoint_every=1000, checkpoint_seconds=60)
    await ledger.append("k", {})
    clock.advance(seconds=61)
    await ledger.append("k", {})
    await ledger.close()
    assert kinds_in(path) == ["k", "k", CHECKPOINT]


async def test_the_timer_checkpoints_uncovered_entries_when_no_append_comes(path: Path) -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    ledger = await FileLedger.open(path, clock, checkpoint_key=KEY, checkpoint_every=1000, checkpoint_seconds=1)
    await ledger.append("k", {})
    clock.advance(seconds=2)
    for _ in range(50):
        await asyncio.sleep(0.1)
        if CHECKPOINT in kinds_in(path):
            break
    await ledger.close()
    assert kinds_in(path) == ["k", CHECKPOINT]


async def test_asking_for_a_checkpoint_covers_the_entries_so_far_and_returns_it(path: Path) -> None:
    ledger = await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_seconds=0)
    last = await ledger.append("k", {})
    checkpoint = await ledger.checkpoint()
    assert checkpoint is not None and checkpoint["data"]["seq"] == last["seq"] and checkpoint["data"]["hash"] == last["hash"]
    assert await ledger.checkpoint() is None  # nothing new to cover
    await ledger.close()


async def test_the_checkpoint_listener_hears_of_each_checkpoint_once_it_is_durable(path: Path) -> None:
    heard: list[dict[str, Any]] = []

    def listen(entry: dict[str, Any]) -> None:
        assert entry["hash"].encode() in path.read_bytes()
        heard.append(entry)

    ledger = await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_every=2, checkpoint_seconds=0, on_checkpoint=listen)
    for n in range(5):
        await ledger.append("k", {"n": n})
    await ledger.close()
    assert [e["data"]["seq"] for e in heard] == [2, 5]


async def test_a_reopened_ledger_counts_entries_since_its_last_checkpoint(path: Path) -> None:
    ledger = await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_every=3, checkpoint_seconds=0)
    await ledger.append("k", {})
    await ledger.append("k", {})
    await ledger.close()
    ledger = await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_every=3, checkpoint_seconds=0)
    await ledger.append("k", {})
    await ledger.close()
    assert kinds_in(path) == ["k", "k", "k", CHECKPOINT]


async def test_the_ledger_verifies_its_own_checkpoints_with_its_public_key(path: Path) -> None:
    ledger = await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_every=2, checkpoint_seconds=0)
    for n in range(4):
        await ledger.append("k", {"n": n})
    report = await ledger.verify()
    await ledger.close()
    assert report.ok and report.signatures_checked and report.checkpoints == 2


def test_a_checkpoint_interval_of_zero_entries_is_refused(path: Path) -> None:
    with pytest.raises(ValueError, match="checkpoint_every"):
        asyncio.run(FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_every=0))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 60), st.integers(1, 12))
def test_concurrent_appends_with_checkpoints_always_verify_with_the_key(tmp_path_factory: Any, count: int, every: int) -> None:
    path = tmp_path_factory.mktemp("ledger") / "ledger.jsonl"

    async def run() -> None:
        ledger = await FileLedger.open(path, FrozenClock(), checkpoint_key=KEY, checkpoint_every=every, checkpoint_seconds=0)
        await asyncio.gather(*(ledger.append("k", {"n": n}) for n in range(count)))
        await ledger.close()

    asyncio.run(run())
    report = verify_file(path, public_key=KEY.public_key())
    assert report.ok and report.checkpoints == count // every

