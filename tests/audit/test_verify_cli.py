"""`gateway audit verify`: chain, sequence and signed checkpoints; exit 3 at the first broken entry."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.audit import CHECKPOINT, GENESIS, FileLedger
from gateway.audit.chain import checkpoint_data, encode, entry_hash
from gateway.cli import main
from gateway.config import load_config
from gateway.keys import load_ed25519_private, resolve
from gateway.runtime import init_keys
from tests.audit.test_checkpoints import relinked
from tests.support import SHIPPED_CONFIG, FrozenClock


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(SHIPPED_CONFIG, tmp_path / "regions.toml")
    init_keys(load_config(tmp_path / "regions.toml"), tmp_path / "data")
    return tmp_path


def ledger_of(workdir: Path, count: int = 8, *, last_batch: int = 0, every: int = 3) -> Path:
    """A ledger signed with the provider key, a checkpoint every ``every`` entries.

    ``count`` entries appended one after another (one group commit each), then
    ``last_batch`` more appended together (one group commit, one signed head).
    """
    config = load_config(workdir / "regions.toml")
    key = load_ed25519_private(resolve(workdir / "data", config.identity.provider_key))
    path = workdir / "data/ledger/ledger.jsonl"

    async def fill() -> None:
        ledger = await FileLedger.open(path, FrozenClock(), checkpoint_key=key, checkpoint_every=every, checkpoint_seconds=0)
        for n in range(count):
            await ledger.append("service.read", {"subject": f"s{n}", "outcome": "allow"})
        await asyncio.gather(*(ledger.append("service.read", {"subject": f"t{n}", "outcome": "allow"}) for n in range(last_batch)))
        await ledger.close()

    asyncio.run(fill())
    return path


def verify(workdir: Path, *args: str) -> int:
    return main(["audit", "verify", "--config", str(workdir / "regions.toml"), "--data-dir", str(workdir / "data"), *args])


def test_a_ledger_with_signed_checkpoints_verifies_and_says_how_many(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger_of(workdir)
    assert verify(workdir) == 0
    assert "2 signed checkpoints verify" in capsys.readouterr().out


def test_a_checkpoint_signed_by_another_key_exits_3_and_prints_that_entry(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ledger_of(workdir)
    lines = path.read_bytes().splitlines(keepends=True)
    covered = json.loads(lines[2])
    lines = relinked(lines, 3, checkpoint_data(ed25519.Ed25519PrivateKey.generate(), covered["seq"], covered["hash"]))
    path.write_bytes(b"".join(lines))
    assert verify(workdir, "--format", "json") == 3
    [report] = json.loads(capsys.readouterr().out)["chains"]
    assert report["broken_at"] == 4 and "another key" in report["problem"]
    assert json.loads(report["broken_entry"])["seq"] == 4


def test_swapping_two_entries_exits_3_naming_the_first_one_moved(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ledger_of(workdir)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[4], lines[5] = lines[5], lines[4]
    path.write_bytes(b"".join(lines))
    assert verify(workdir) == 3
    out = capsys.readouterr().out
    assert out.startswith("broken: entry 5:") and '"seq":6' in out


def test_signed_checkpoints_without_a_public_key_to_check_them_exit_3(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger_of(workdir)
    (workdir / "data/keys/provider.pub").unlink()
    assert verify(workdir) == 3
    assert "no provider public key" in capsys.readouterr().out


# --- an attacker with disk access but without the provider key -----------------------------

HEAD = "head_signature"  # the field of a signed head, as written on the line


def entries_in(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def rebuilt(entries: list[dict[str, Any]], *, signatures: str = "drop") -> bytes:
    """The forger's best effort: renumber, relink and rehash every entry with the project's own functions.

    ``signatures``: ``drop`` every head signature (none can be made without the
    key), ``keep`` each where it was, or ``move-last`` the original last one
    onto the new last line.
    """
    last_signature = next((e[HEAD] for e in reversed(entries) if HEAD in e), None)
    out, prev = [], GENESIS
    for seq, original in enumerate(entries, start=1):
        entry = {k: v for k, v in original.items() if k != HEAD}
        entry["seq"], entry["prev"] = seq, prev
        entry["hash"] = entry_hash(entry)
        if signatures == "keep" and HEAD in original:
            entry[HEAD] = original[HEAD]
        if signatures == "move-last" and seq == len(entries) and last_signature is not None:
            entry[HEAD] = last_signature
        out.append(encode(entry))
        prev = entry["hash"]
    return b"".join(out)


def test_a_chain_rebuilt_without_its_checkpoints_exits_3(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ledger_of(workdir)
    path.write_bytes(rebuilt([e for e in entries_in(path) if e["kind"] != CHECKPOINT]))
    assert verify(workdir) == 3
    assert "no entry is covered by a signed head" in capsys.readouterr().out


def test_a_tail_rewritten_after_the_last_checkpoint_exits_3(workdir: Path) -> None:
    path = ledger_of(workdir, 7)
    entries = entries_in(path)
    assert entries[-2]["kind"] == CHECKPOINT
    entries[-1]["data"]["outcome"] = "refuse"
    path.write_bytes(rebuilt(entries, signatures="keep"))
    assert verify(workdir) == 3


def test_a_fresh_ledger_rebuilt_before_its_first_checkpoint_exits_3(workdir: Path) -> None:
    path = ledger_of(workdir, 2, every=1000)
    entries = entries_in(path)
    assert CHECKPOINT not in [e["kind"] for e in entries]
    entries[0]["data"]["subject"] = "someone-else"
    path.write_bytes(rebuilt(entries, signatures="move-last"))
    assert verify(workdir) == 3


def test_deleting_the_newest_entry_and_moving_its_signed_head_back_exits_3(workdir: Path) -> None:
    path = ledger_of(workdir, 4, last_batch=3, every=1000)
    path.write_bytes(rebuilt(entries_in(path)[:-1], signatures="move-last"))
    assert verify(workdir) == 3


def test_swapping_two_entries_and_renumbering_and_rehashing_exits_3(workdir: Path) -> None:
    path = ledger_of(workdir, 4, last_batch=3, every=1000)
    entries = entries_in(path)
    entries[-2], entries[-3] = entries[-3], entries[-2]
    path.write_bytes(rebuilt(entries, signatures="keep"))
    assert verify(workdir) == 3


def test_an_intact_ledger_says_what_it_proved_and_what_needs_the_off_box_copy(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger_of(workdir, 4, last_batch=3)
    assert verify(workdir) == 0
    out = capsys.readouterr().out
    assert "entries 1..9 chained, every one covered by a signed head (5 verify, the first at entry 1, the last at entry 9)" in out
    assert "not proved: a cut back to an earlier signed head" in out


def test_a_ledger_without_any_signed_head_exits_3_and_says_why(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "data/ledger/ledger.jsonl"

    async def fill() -> None:  # as a gateway of an earlier version wrote it: no key, no signed heads
        async with await FileLedger.open(path, FrozenClock()) as ledger:
            for n in range(3):
                await ledger.append("service.read", {"subject": f"s{n}"})

    asyncio.run(fill())
    assert verify(workdir) == 3
    out = capsys.readouterr().out
    assert out.startswith("broken: no entry is covered by a signed head") and "entries 1..3 chain but are not proven" in out


def test_a_signed_head_dropped_from_the_middle_exits_3(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ledger_of(workdir, 4)
    lines = path.read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[1])
    del entry[HEAD]
    lines[1] = encode(entry)  # its hash does not cover the signature: only the next head, which names it, shows the loss
    path.write_bytes(b"".join(lines))
    assert verify(workdir) == 3
    assert "entry 4: head signature does not verify with the provider key" in capsys.readouterr().out


edits = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, 99), st.text(max_size=5)),
    st.tuples(st.just("delete"), st.integers(0, 99), st.none()),
    st.tuples(st.just("swap"), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("insert"), st.integers(0, 99), st.text(max_size=5)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits, st.sampled_from(["drop", "keep", "move-last"]))
def test_any_edit_deletion_insertion_or_reordering_then_a_full_rehash_exits_3(workdir: Path, edit: tuple[str, int, Any], signatures: str) -> None:
    path = workdir / "data/ledger/ledger.jsonl"
    original = workdir / "original.jsonl"
    if not original.exists():  # one signed ledger for every example: sequential batches, checkpoints, a last batch of 3
        shutil.copy(ledger_of(workdir, 5, last_batch=3), original)
    entries = [json.loads(line) for line in original.read_bytes().splitlines()]
    what, at, arg = edit
    i = at % len(entries)
    if what == "edit":
        entries[i]["data"]["forged"] = arg
    elif what == "delete":
        del entries[i]
    elif what == "swap":
        j = arg % len(entries)
        if i == j:
            j = (i + 1) % len(entries)
        entries[i], entries[j] = entries[j], entries[i]
    else:
        entries.insert(i, {**entries[i], "data": {"inserted": arg}})
    path.write_bytes(rebuilt(entries, signatures=signatures))
    assert verify(workdir) == 3
