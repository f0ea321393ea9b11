"""`gateway audit reconcile`: one pass over write intents without an outcome, and its counts."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from gateway.audit import FileLedger, read_entries
from gateway.canonical import sha256_hex
from gateway.model import system_clock
from tests.support import SHIPPED_CONFIG, run_cli


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    text = SHIPPED_CONFIG.read_text().replace("reconcile_after_seconds = 30", "reconcile_after_seconds = 0")
    assert "reconcile_after_seconds = 0" in text
    (tmp_path / "regions.toml").write_text(text)
    return tmp_path


def _open_intent(workdir: Path) -> int:
    """A write intent whose process died before it touched the store."""

    async def append() -> int:
        ledger = await FileLedger.open(workdir / "data/ledger/ledger.jsonl", system_clock)
        data = {"subject": "aoife", "key": "mail-1", "region": "eu-west-1", "sha256": sha256_hex(b"v1"), "size": 2}
        entry = await ledger.append("record.write-intent", data | {"object": "subjects/aoife/records/mail-1", "replaces": None})
        await ledger.close()
        return int(entry["seq"])

    return asyncio.run(append())


def test_audit_reconcile_settles_an_open_intent_and_prints_the_counts(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(workdir, "keys", "init") == 0
    seq = _open_intent(workdir)
    capsys.readouterr()
    assert run_cli(workdir, "audit", "reconcile", "--chain-id", "ledger", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"reconciled": {"not-written": 1}, "unreachable": 0, "waiting": 0}
    reconciled = [e["data"] for e in read_entries(workdir / "data/ledger/ledger.jsonl") if e["kind"] == "record.reconciled"]
    assert reconciled == [{"intent": seq, "object": "subjects/aoife/records/mail-1", "region": "eu-west-1", "result": "not-written"}]


def test_audit_reconcile_of_a_ledger_without_open_intents_adds_nothing(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(workdir, "keys", "init") == 0
    assert run_cli(workdir, "audit", "reconcile", "--chain-id", "ledger") == 0
    assert "reconciled 0 intents" in capsys.readouterr().out
    assert [e["kind"] for e in read_entries(workdir / "data/ledger/ledger.jsonl") if e["kind"] == "record.reconciled"] == []


def test_the_shipped_config_waits_thirty_seconds_before_reconciling(tmp_path: Path) -> None:
    from gateway.config import load_config

    shutil.copy(SHIPPED_CONFIG, tmp_path / "regions.toml")
    assert load_config(tmp_path / "regions.toml").audit.reconcile_after_seconds == 30


def test_a_negative_reconcile_wait_is_refused_with_its_key_path() -> None:
    import tomllib

    from gateway.config import parse_config
    from gateway.errors import ConfigError

    raw = tomllib.loads(SHIPPED_CONFIG.read_text())
    raw["audit"]["reconcile_after_seconds"] = -1
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert [f.path for f in error.value.findings] == ["audit.reconcile_after_seconds"]
