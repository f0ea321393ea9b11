"""`gateway audit verify`: chain, sequence and signed checkpoints; exit 3 at the first broken entry."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.audit import FileLedger
from gateway.audit.chain import checkpoint_data
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


def ledger_of(workdir: Path, count: int = 8) -> Path:
    """A ledger signed with the provider key, a checkpoint every 3 entries."""
    config = load_config(workdir / "regions.toml")
    key = load_ed25519_private(resolve(workdir / "data", config.identity.provider_key))
    path = workdir / "data/ledger/ledger.jsonl"

    async def fill() -> None:
        ledger = await FileLedger.open(path, FrozenClock(), checkpoint_key=key, checkpoint_every=3, checkpoint_seconds=0)
        for n in range(count):
            await ledger.append("service.read", {"subject": f"s{n}", "outcome": "allow"})
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
    report = json.loads(capsys.readouterr().out)
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
