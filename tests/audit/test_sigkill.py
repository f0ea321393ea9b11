"""Killing a writer mid-flight loses no acknowledged entry and leaves a ledger that recovers and verifies."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.audit import FileLedger, read_entries, verify_file
from gateway.audit.chain import verify_lines
from gateway.keys import generate_ed25519_pair, load_ed25519_private, load_ed25519_public
from gateway.model import system_clock
from tests.support import ROOT

ROUNDS = 5


def acknowledged(path: Path) -> dict[int, str]:
    """``seq -> hash`` of every complete acknowledgement line."""
    acks: dict[int, str] = {}
    if path.exists():
        for line in path.read_bytes().split(b"\n")[:-1]:
            seq, hash_ = line.decode().split()
            acks[int(seq)] = hash_
    return acks


def run_and_kill(ledger: Path, acks: Path, key: Path, rng: random.Random) -> None:
    """Start an appending child, wait until it is acknowledging under load, SIGKILL it after a random short delay."""
    before = len(acknowledged(acks))
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.audit.sigkill_child", str(ledger), str(acks), str(key)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged(acks)) <= before:
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else "child exited"
            assert time.monotonic() < deadline, "the child acknowledged nothing"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.005, 0.15))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def test_a_writer_killed_repeatedly_under_load_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    ledger, acks, key = tmp_path / "ledger.jsonl", tmp_path / "acks", tmp_path / "provider.key"
    generate_ed25519_pair(key)
    public = load_ed25519_public(key.with_suffix(".pub"))
    rng = random.Random(5)
    for _ in range(ROUNDS):
        run_and_kill(ledger, acks, key, rng)
        acked = acknowledged(acks)
        # as the kill left it: valid up to its last complete entry, at most a torn tail after it
        with open(ledger, "rb") as handle:
            raw = verify_lines(handle, public_key=public)
        assert raw.ok or (raw.torn_tail and raw.broken_at == raw.entries + 1), raw.problem
        assert raw.last_seq >= max(acked)
        # reopening recovers any torn tail and any batch left without its signed head;
        # the whole ledger then verifies, signatures included, and ends on a signed head
        asyncio.run(_reopen(ledger, key))
        assert verify_file(ledger, public_key=public, require_signed_heads=True).ok
        on_disk = {e["seq"]: e["hash"] for e in read_entries(ledger)}
        missing = {seq for seq, hash_ in acked.items() if on_disk.get(seq) != hash_}
        assert not missing, f"acknowledged entries missing or changed: {sorted(missing)[:10]}"


async def _reopen(path: Path, key: Path) -> None:
    ledger = await FileLedger.open(path, system_clock, checkpoint_key=load_ed25519_private(key))
    await ledger.close()


