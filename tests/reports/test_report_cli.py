"""`gateway report transparency`: the same report from the ledger file, to stdout or a file."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from gateway.audit import FileLedger
from gateway.cli import main
from tests.support import SHIPPED_CONFIG, FrozenClock


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(SHIPPED_CONFIG, tmp_path / "regions.toml")

    async def fill() -> None:
        ledger = await FileLedger.open(tmp_path / "data/ledger/ledger.jsonl", FrozenClock())
        items = [{"subject": "s", "outcome": "disclose", "category": "content", "data_jurisdiction": "US", "notify": None}]
        await ledger.append("order.decided", {"issuer_jurisdiction": "US", "preservation": False, "emergency": False, "items": items})
        await ledger.append("order.rejected", {"fingerprint": "f", "reason": "bad-signature"})
        await ledger.close()

    asyncio.run(fill())
    return tmp_path


def report(workdir: Path, *args: str) -> int:
    return main(["report", "transparency", "--config", str(workdir / "regions.toml"), "--data-dir", str(workdir / "data"), *args])


def test_the_report_is_printed_as_json_by_default(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report(workdir, "--from", "2026-01-01", "--to", "2026-12-31") == 0
    document = json.loads(capsys.readouterr().out)
    assert [(r["country"], r["requests"]) for r in document["rows"]] == [("US", 1), ("unattributed", 1)]


def test_the_html_report_is_written_to_the_output_file(workdir: Path) -> None:
    out = workdir / "report.html"
    assert report(workdir, "--from", "2026-01-01", "--to", "2026-12-31", "--format", "html", "--output", str(out)) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_a_date_that_is_not_a_date_exits_1_naming_the_option(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report(workdir, "--from", "yesterday", "--to", "2026-12-31") == 1
    assert "`--from`" in capsys.readouterr().err


def test_an_unreadable_order_entry_is_skipped_with_a_warning_and_the_report_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(SHIPPED_CONFIG, tmp_path / "regions.toml")

    async def fill() -> None:
        ledger = await FileLedger.open(tmp_path / "data/ledger/ledger.jsonl", FrozenClock())
        await ledger.append("order.decided", {"issuer_jurisdiction": "US", "items": "all of them"})
        await ledger.close()

    asyncio.run(fill())
    assert report(tmp_path, "--from", "2026-01-01", "--to", "2026-12-31") == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["skipped"]["entries"] == 1
    assert "warning: 1 ledger entry could not be read" in err and "`items` is missing or not a list" in err


def test_a_ledger_that_does_not_verify_exits_3_saying_so(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "data/ledger/ledger.jsonl"
    path.write_text(path.read_text().replace('"US"', '"FR"', 1))
    assert report(workdir, "--from", "2026-01-01", "--to", "2026-12-31") == 3
    assert capsys.readouterr().err.startswith("ledger-broken: ")
