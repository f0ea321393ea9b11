"""The transparency report reads every chain as one ledger: each replica's and worker's, local or exported, each entry once."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.audit import FileLedger
from gateway.audit.chains import ChainReader
from gateway.audit.export import SegmentBucket, SegmentExporter
from gateway.config import AuditExport
from gateway.errors import LedgerBroken
from tests.support import SHIPPED_CONFIG, Env, FrozenClock, run_cli

NOW = datetime.now(UTC).replace(microsecond=0)  # S3 checks retention against the real time
PERIOD = (f"{NOW.year}-01-01", f"{NOW.year}-12-31")
KEY = ed25519.Ed25519PrivateKey.generate()
SPEC = AuditExport(bucket="audit-ledger", region_name="us-east-1", retention_days=1, mode="GOVERNANCE")
ITEMS = [{"subject": "s", "outcome": "disclose", "category": "content", "data_jurisdiction": "US", "notify": None}]


def decided(country: str) -> dict[str, Any]:
    return {"issuer_jurisdiction": country, "preservation": False, "emergency": False, "items": ITEMS}


async def write_orders(folder: Path, chain: str, countries: list[str], *, at: datetime = NOW) -> Path:
    """One `order.decided` per country in ``chain``, a signed checkpoint after every two entries."""
    path = folder / f"{chain}.jsonl"
    async with await FileLedger.open(path, FrozenClock(at), checkpoint_key=KEY, checkpoint_every=2, checkpoint_seconds=0, chain=chain) as ledger:
        for country in countries:
            await ledger.append("order.decided", decided(country))
    return path


async def export(path: Path, chain: str) -> None:
    exporter = SegmentExporter(SPEC, path, FrozenClock(NOW), chain=chain)
    await exporter.prepare()
    await exporter.upload_pending()
    await exporter.close()


def requests_by_country(entries: list[Any]) -> dict[str, int]:
    from gateway.reports.transparency import build_report, parse_range

    report = build_report(entries, *parse_range(*PERIOD))
    return {str(row.country): row.requests for row in report.rows}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(SHIPPED_CONFIG, tmp_path / "regions.toml")
    return tmp_path


def test_the_cli_report_counts_the_orders_of_every_local_chain(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = workdir / "data/ledger"
    asyncio.run(write_orders(folder, "gw-w1", ["US", "FR"]))
    asyncio.run(write_orders(folder, "gw-w2", ["US"]))
    assert run_cli(workdir, "report", "transparency", "--from", PERIOD[0], "--to", PERIOD[1]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {row["country"]: row["requests"] for row in rows} == {"FR": 1, "US": 2}


def test_the_cli_report_of_a_ledger_folder_without_chains_exits_3(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(workdir, "report", "transparency", "--from", PERIOD[0], "--to", PERIOD[1]) == 3
    assert "no ledger chain" in capsys.readouterr().err


@pytest.mark.s3
async def test_entries_both_on_the_disk_and_in_the_bucket_are_counted_once_and_exported_chains_count_too(tmp_path: Path, aws: None) -> None:
    folder = tmp_path / "ledger"
    here = await write_orders(folder, "gw-here", ["US", "US", "FR"])  # segment 1-3 closes after two orders; the third is local only
    await export(here, "gw-here")
    gone = await write_orders(folder, "gw-gone", ["BR", "BR"])  # a replica removed with its disk: only its segment is left
    await export(gone, "gw-gone")
    gone.unlink()
    reader = ChainReader(folder, SegmentBucket(SPEC, FrozenClock(NOW)))
    try:
        assert requests_by_country(await reader.entries()) == {"BR": 2, "FR": 1, "US": 2}
    finally:
        await reader.close()


@pytest.mark.s3
async def test_a_chain_whose_local_entries_differ_from_its_exported_copy_is_not_reported_on(tmp_path: Path, aws: None) -> None:
    folder = tmp_path / "ledger"
    path = await write_orders(folder, "gw-0", ["US", "US"])
    await export(path, "gw-0")
    path.unlink()
    await write_orders(folder, "gw-0", ["FR", "FR"])  # another history under the same chain id
    reader = ChainReader(folder, SegmentBucket(SPEC, FrozenClock(NOW)))
    try:
        with pytest.raises(LedgerBroken, match="entry 1 of chain `gw-0` differs from the copy kept off the box"):
            await reader.entries()
    finally:
        await reader.close()


async def test_the_report_route_counts_the_orders_of_the_other_chains_in_the_ledger_folder(client: TestClient, env: Env) -> None:
    # a worker beside this process wrote its own chain into the same ledger folder
    await write_orders(env.settings.ledger_dir, "gw-w2", ["FR", "FR"], at=env.clock())
    year = env.clock().year
    response = await client.get("/v1/reports/transparency", params={"from": f"{year}-01-01", "to": f"{year}-12-31"}, headers=env.person("legal", "c"))
    assert response.status == 200, await response.text()
    assert {row["country"]: row["requests"] for row in (await response.json())["rows"]} == {"FR": 2}
