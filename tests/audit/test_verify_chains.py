"""`gateway audit verify` over several chains: each reported on its own, one broken chain fails the whole, the bucket's chains too."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from gateway.audit import FileLedger
from gateway.audit.export import SegmentExporter
from gateway.config import load_config
from gateway.keys import load_ed25519_private, resolve
from gateway.runtime import init_keys
from tests.support import SHIPPED_CONFIG, FrozenClock, run_cli

NOW = datetime.now(UTC).replace(microsecond=0)  # S3 checks retention against the real time
EXPORT = 'export = { bucket = "audit-ledger", region_name = "us-east-1", retention_days = 1, mode = "GOVERNANCE" }\n'


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(SHIPPED_CONFIG, tmp_path / "regions.toml")
    init_keys(load_config(tmp_path / "regions.toml"), tmp_path / "data")
    return tmp_path


def write_chain(workdir: Path, chain: str, count: int) -> Path:
    """A chain as a gateway process writes it: signed heads, a checkpoint every 3 entries."""
    config = load_config(workdir / "regions.toml")
    key = load_ed25519_private(resolve(workdir / "data", config.identity.provider_key))
    path = workdir / "data/ledger" / f"{chain}.jsonl"

    async def fill() -> None:
        async with await FileLedger.open(path, FrozenClock(NOW), checkpoint_key=key, checkpoint_every=3, checkpoint_seconds=0, chain=chain) as ledger:
            for n in range(count):
                await ledger.append("service.read", {"subject": f"s{n}", "outcome": "allow"})

    asyncio.run(fill())
    return path


def verify(workdir: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = run_cli(workdir, "audit", "verify", "--format", "json", *args)
    answer = json.loads(capsys.readouterr().out)
    return code, {c["chain"]: c for c in answer["chains"]}


def test_every_chain_in_the_ledger_folder_is_verified_and_reported_with_its_entries(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_chain(workdir, "gw-w1", 4)
    write_chain(workdir, "gw-w2", 7)
    code, chains = verify(workdir, capsys)
    assert code == 0
    assert {name: (c["ok"], c["entries"], c["first_seq"], c["last_seq"]) for name, c in chains.items()} == {
        "gw-w1": (True, 5, 1, 5),  # 4 entries and the checkpoint after the third
        "gw-w2": (True, 9, 1, 9),
    }


def test_the_text_names_each_chain_and_counts_them(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_chain(workdir, "gw-w1", 2)
    write_chain(workdir, "gw-w2", 2)
    assert run_cli(workdir, "audit", "verify") == 0
    out = capsys.readouterr().out
    assert "ok: 2 entries of chain `gw-w1`" in out and "ok: 2 entries of chain `gw-w2`" in out
    assert out.rstrip().endswith("2 chains: 2 ok, 0 broken")


def test_one_broken_chain_is_reported_as_broken_the_others_as_ok_and_the_exit_is_3(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_chain(workdir, "gw-w1", 4)
    broken = write_chain(workdir, "gw-w2", 4)
    write_chain(workdir, "gw-w3", 4)
    lines = broken.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"allow"', b'"refuse"')
    broken.write_bytes(b"".join(lines))
    code, chains = verify(workdir, capsys)
    assert code == 3
    assert {name: c["ok"] for name, c in chains.items()} == {"gw-w1": True, "gw-w2": False, "gw-w3": True}
    assert chains["gw-w2"]["broken_at"] == 2 and "hash does not match" in chains["gw-w2"]["problem"]


def test_a_chain_file_renamed_as_another_chain_is_broken(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_chain(workdir, "gw-w1", 2)
    path.rename(path.with_name("gw-w2.jsonl"))
    code, chains = verify(workdir, capsys)
    assert code == 3 and chains["gw-w2"]["problem"] == "entry 1: belongs to chain `gw-w1`, not `gw-w2`"


def test_a_ledger_from_before_chain_ids_is_verified_beside_the_new_chains(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_chain(workdir, "ledger", 3)  # the default chain: ledger.jsonl, entries without a chain id
    write_chain(workdir, "gw-0", 3)
    code, chains = verify(workdir, capsys)
    assert code == 0 and sorted(chains) == ["gw-0", "ledger"]
    assert all("chain" not in json.loads(line) for line in (workdir / "data/ledger/ledger.jsonl").read_bytes().splitlines())


# --- with the bucket ------------------------------------------------------------------------


def with_export(workdir: Path) -> None:
    config = workdir / "regions.toml"
    config.write_text(config.read_text().replace("[audit]\n", f"[audit]\n{EXPORT}"))


def export(workdir: Path, chain: str) -> None:
    async def upload() -> None:
        spec = load_config(workdir / "regions.toml").audit.export
        assert spec is not None
        exporter = SegmentExporter(spec, workdir / "data/ledger" / f"{chain}.jsonl", FrozenClock(NOW), chain=chain)
        await exporter.prepare()
        await exporter.upload_pending()
        await exporter.close()

    asyncio.run(upload())


@pytest.mark.s3
def test_with_remote_a_chain_whose_disk_is_gone_is_verified_from_the_bucket_alone(workdir: Path, aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    with_export(workdir)
    write_chain(workdir, "gw-here", 4)
    gone = write_chain(workdir, "gw-gone", 6)
    export(workdir, "gw-here")
    export(workdir, "gw-gone")
    gone.unlink()  # the replica was removed with its emptyDir
    code, chains = verify(workdir, capsys, "--remote")
    assert code == 0
    assert (chains["gw-gone"]["source"], chains["gw-gone"]["entries"], chains["gw-gone"]["last_seq"]) == ("remote", 8, 8)  # 6 entries and 2 checkpoints
    assert chains["gw-here"]["source"] == "local" and chains["gw-here"]["remote"]["verified"] == 1


@pytest.mark.s3
def test_with_remote_a_chain_in_the_bucket_missing_its_first_segment_is_broken(workdir: Path, aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    with_export(workdir)
    path = write_chain(workdir, "gw-gone", 6)
    export(workdir, "gw-gone")
    path.unlink()
    s3 = boto3.client("s3", region_name="us-east-1")
    for version in s3.list_object_versions(Bucket="audit-ledger", Prefix="segments/gw-gone/1-")["Versions"]:
        s3.delete_object(Bucket="audit-ledger", Key=version["Key"], VersionId=version["VersionId"], BypassGovernanceRetention=True)
    code, chains = verify(workdir, capsys, "--remote")
    assert code == 3 and chains["gw-gone"]["broken_at"] == 1 and "segments/gw-gone/5-8.jsonl" in chains["gw-gone"]["problem"]
