"""Closed ledger segments kept off the box in an Object Lock bucket (moto)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.audit import CHECKPOINT, FileLedger
from gateway.audit.export import (
    ExportError,
    SegmentBucket,
    SegmentExporter,
    SegmentUploader,
    closed_segments,
    parse_segment_key,
    segment_key,
    verify_segments,
)
from gateway.cli import main
from gateway.config import AuditExport
from tests.support import SHIPPED_CONFIG, FrozenClock

pytestmark = pytest.mark.s3

KEY = ed25519.Ed25519PrivateKey.generate()
SPEC = AuditExport(bucket="audit-ledger", region_name="us-east-1", retention_days=30, mode="COMPLIANCE")
NOW = datetime.now(UTC).replace(microsecond=0)  # S3 checks retention against the real time


async def write_ledger(path: Path, count: int, every: int = 3, kind: str = "k", chain: str = "ledger") -> None:
    ledger = await FileLedger.open(path, FrozenClock(NOW), checkpoint_key=KEY, checkpoint_every=every, checkpoint_seconds=0, chain=chain)
    for n in range(count):
        await ledger.append(kind, {"n": n})
    await ledger.close()


async def exported(path: Path, spec: AuditExport = SPEC, chain: str = "ledger") -> tuple[SegmentExporter, list[str]]:
    exporter = SegmentExporter(spec, path, FrozenClock(NOW), chain=chain)
    await exporter.prepare()
    return exporter, await exporter.upload_pending()


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def only_version(key: str) -> str:
    versions = s3().list_object_versions(Bucket=SPEC.bucket, Prefix=key)["Versions"]
    return str(min(versions, key=lambda v: v["LastModified"])["VersionId"])


def test_closed_segments_end_at_checkpoints_and_leave_the_open_tail_out() -> None:
    lines = [json.dumps({"kind": k}).encode() + b"\n" for k in ["a", "b", CHECKPOINT, "c", CHECKPOINT, "d"]]
    assert [(s.first, s.last) for s, _ in closed_segments(lines)] == [(1, 3), (4, 5)]


def test_a_closed_segment_is_uploaded_only_once_a_signed_head_covers_it() -> None:
    lines = [json.dumps(e).encode() + b"\n" for e in [{"kind": "a"}, {"kind": CHECKPOINT, "head_signature": "s"}, {"kind": "b"}, {"kind": CHECKPOINT}]]
    assert [(s.first, s.last) for s, _ in closed_segments(lines, signed_only=True)] == [(1, 2)]
    lines.append(json.dumps({"kind": "c", "head_signature": "s"}).encode() + b"\n")
    assert [(s.first, s.last) for s, _ in closed_segments(lines, signed_only=True)] == [(1, 2), (3, 4)]


async def test_each_closed_segment_is_uploaded_under_its_seq_range_with_its_exact_lines(tmp_path: Path, aws: None) -> None:
    path = tmp_path / "ledger.jsonl"
    await write_ledger(path, 7)  # k k k C k k k C k
    exporter, keys = await exported(path)
    lines = path.read_bytes().splitlines(keepends=True)
    assert keys == ["segments/1-4.jsonl", "segments/5-8.jsonl"]
    assert await exporter.fetch("segments/5-8.jsonl") == b"".join(lines[4:8])
    await exporter.close()


async def test_an_uploaded_segment_carries_compliance_retention_for_the_configured_days(tmp_path: Path, aws: None) -> None:
    path = tmp_path / "ledger.jsonl"
    await write_ledger(path, 3)
    exporter, _ = await exported(path)
    head = s3().head_object(Bucket=SPEC.bucket, Key="segments/1-4.jsonl")  # moto answers get_object_retention with 500
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] >= NOW + timedelta(days=30) - timedelta(seconds=1)
    await exporter.close()


async def test_an_uploaded_segment_cannot_be_deleted_even_with_a_governance_bypass(tmp_path: Path, aws: None) -> None:
    path = tmp_path / "ledger.jsonl"
    await write_ledger(path, 3)
    exporter, _ = await exported(path)
    version = only_version("segments/1-4.jsonl")
    for extra in ({}, {"BypassGovernanceRetention": True}):
        with pytest.raises(ClientError) as refused:
            s3().delete_object(Bucket=SPEC.bucket, Key="segments/1-4.jsonl", VersionId=version, **extra)
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert s3().get_object(Bucket=SPEC.bucket, Key="segments/1-4.jsonl", VersionId=version)["Body"].read() == path.read_bytes()
    await exporter.close()


async def test_an_uploaded_segment_cannot_be_overwritten_in_place(tmp_path: Path, aws: None) -> None:
    path = tmp_path / "ledger.jsonl"
    await write_ledger(path, 3)
    exporter, _ = await exported(path)
    original = path.read_bytes()
    version = only_version("segments/1-4.jsonl")
    s3().put_object(Bucket=SPEC.bucket, Key="segments/1-4.jsonl", Body=b"forged\n")  # stacks a new version on top
    kept = s3().get_object(Bucket=SPEC.bucket, Key="segments/1-4.jsonl", VersionId=version)
    assert kept["Body"].read() == original and kept["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError):
        s3().delete_object(Bucket=SPEC.bucket, Key="segments/1-4.jsonl", VersionId=version)
    await exporter.close()


async def test_the_exporter_never_overwrites_a_segment_that_is_already_there_with_other_bytes(tmp_path: Path, aws: None) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    await write_ledger(first, 3)
    exporter, _ = await exported(first)
    await exporter.close()
    await write_ledger(second, 4, kind="j")  # another history with the same first segment range
    other = SegmentExporter(SPEC, second, FrozenClock(NOW))
    other._started = True  # pretend it does not know what the bucket holds
    with pytest.raises(ExportError) as refused:
        await other.upload_pending()
    assert refused.value.code == "segment-mismatch"
    await other.close()


# --- chains ---------------------------------------------------------------------------------


def test_a_named_chains_segments_are_kept_in_its_own_folder() -> None:
    assert segment_key(5, 9, "gw-0") == "segments/gw-0/5-9.jsonl"
    assert parse_segment_key("segments/gw-0/5-9.jsonl") == ("gw-0", 5, 9)


def test_a_segment_in_the_layout_before_chain_ids_belongs_to_the_default_chain() -> None:
    assert segment_key(1, 4) == "segments/1-4.jsonl"
    assert parse_segment_key("segments/1-4.jsonl") == ("ledger", 1, 4)


async def test_each_chain_is_uploaded_to_its_own_folder_and_listed_apart(tmp_path: Path, aws: None) -> None:
    for chain in ("gw-0", "gw-1"):
        await write_ledger(tmp_path / f"{chain}.jsonl", 3, chain=chain)
        exporter, keys = await exported(tmp_path / f"{chain}.jsonl", chain=chain)
        assert keys == [f"segments/{chain}/1-4.jsonl"]
        await exporter.close()
    await write_ledger(tmp_path / "ledger.jsonl", 3)  # a ledger from before chain ids, in the old layout
    exporter, _ = await exported(tmp_path / "ledger.jsonl")
    assert await exporter.remote_chains() == {"gw-0": [(1, 4)], "gw-1": [(1, 4)], "ledger": [(1, 4)]}
    assert await exporter.remote_segments() == [(1, 4)]  # its own chain's only
    await exporter.close()


async def test_the_segments_of_a_chain_whose_disk_is_gone_verify_alone_from_the_bucket(tmp_path: Path, aws: None) -> None:
    path = tmp_path / "gw-0.jsonl"
    await write_ledger(path, 7, chain="gw-0")
    exporter, _ = await exported(path, chain="gw-0")
    path.unlink()
    bucket = SegmentBucket(SPEC, FrozenClock(NOW))
    spans = (await bucket.remote_chains())["gw-0"]
    report = verify_segments("gw-0", await bucket.fetch_chain("gw-0", spans), KEY.public_key())
    assert report.ok and report.entries == 8 and report.chain == "gw-0"
    await bucket.close()
    await exporter.close()


def _segments(count: int, chain: str) -> dict[tuple[int, int], bytes]:
    from gateway.audit.chain import GENESIS, checkpoint_data, encode, make_entry

    lines, prev = [], GENESIS
    for seq in range(1, count + 1):
        data = checkpoint_data(KEY, seq - 1, prev) if seq % 3 == 0 else {"n": seq}
        entry = make_entry(prev, seq, "2025-01-01T00:00:00Z", CHECKPOINT if seq % 3 == 0 else "k", data, chain)
        lines.append(encode(entry))
        prev = entry["hash"]
    return {(first, first + 2): b"".join(lines[first - 1 : first + 2]) for first in range(1, count, 3)}


def test_a_chain_missing_a_segment_in_the_bucket_does_not_verify() -> None:
    segments = _segments(9, "gw-0")
    del segments[(4, 6)]
    report = verify_segments("gw-0", segments, KEY.public_key())
    assert not report.ok and report.broken_at == 4 and "segments/gw-0/7-9.jsonl" in str(report.problem)


def test_a_segment_filed_under_another_chains_folder_does_not_verify() -> None:
    report = verify_segments("gw-1", _segments(6, "gw-0"), KEY.public_key())
    assert not report.ok and "belongs to chain `gw-0`, not `gw-1`" in str(report.problem)


def test_a_chain_in_the_bucket_signed_by_another_key_does_not_verify() -> None:
    report = verify_segments("gw-0", _segments(6, "gw-0"), ed25519.Ed25519PrivateKey.generate().public_key())
    assert not report.ok and report.broken_at == 3 and "another key" in str(report.problem)


async def test_a_new_exporter_uploads_only_the_segments_the_bucket_does_not_hold_yet(tmp_path: Path, aws: None) -> None:
    path = tmp_path / "ledger.jsonl"
    await write_ledger(path, 3)
    exporter, keys = await exported(path)
    await exporter.close()
    ledger = await FileLedger.open(path, FrozenClock(NOW), checkpoint_key=KEY, checkpoint_every=3, checkpoint_seconds=0)
    for n in range(3):
        await ledger.append("k", {"n": n})
    await ledger.close()
    exporter, more = await exported(path)
    assert (keys, more) == (["segments/1-4.jsonl"], ["segments/5-8.jsonl"])
    await exporter.close()


class FlakyExporter:
    """Fails its first upload, then succeeds."""

    def __init__(self) -> None:
        self.calls = 0

    async def prepare(self) -> None:
        pass

    async def upload_pending(self) -> list[str]:
        self.calls += 1
        if self.calls == 1:
            raise ExportError("the bucket is unreachable")
        return [f"segments/{self.calls}.jsonl"]

    async def close(self) -> None:
        pass


async def test_a_failed_upload_is_retried_later() -> None:
    flaky = FlakyExporter()
    uploader = SegmentUploader(flaky, retry_seconds=0.05)  # type: ignore[arg-type]
    uploader.start()
    for _ in range(100):
        await asyncio.sleep(0.02)
        if uploader.uploaded:
            break
    await uploader.close()
    assert uploader.failures == 1 and uploader.uploaded == ["segments/2.jsonl"]


def _config_with_export(tmp_path: Path) -> Path:
    text = SHIPPED_CONFIG.read_text().replace(
        "checkpoint_every = 1000\n",
        'checkpoint_every = 3\nexport = { bucket = "audit-ledger", region_name = "us-east-1", retention_days = 30 }\n',
    )
    config = tmp_path / "regions.toml"
    config.write_text(text)
    return config


async def test_the_runtime_uploads_closed_segments_in_the_background(tmp_path: Path, aws: None) -> None:
    from gateway.runtime import Runtime, Settings

    settings = Settings(config_path=_config_with_export(tmp_path), data_dir=tmp_path / "data", clock=FrozenClock(NOW))
    rt = await Runtime.open(settings)
    for n in range(5):
        await rt.ledger.append("k", {"n": n})
    for _ in range(100):
        if rt.uploader is not None and len(rt.uploader.uploaded) >= 2:
            break
        await asyncio.sleep(0.05)
    await rt.close()
    keys = [o["Key"] for o in s3().list_objects_v2(Bucket="audit-ledger")["Contents"]]
    assert keys == ["segments/1-4.jsonl", "segments/5-8.jsonl"]


async def test_with_new_entries_the_open_segment_is_closed_and_uploaded_once_the_export_interval_has_passed(tmp_path: Path, aws: None) -> None:
    from gateway.runtime import Runtime, Settings

    config = _config_with_export(tmp_path)
    config.write_text(config.read_text().replace("checkpoint_every = 3\n", "checkpoint_every = 1000\nexport_interval_seconds = 60\n"))
    clock = FrozenClock(NOW)
    rt = await Runtime.open(Settings(config_path=config, data_dir=tmp_path / "data", clock=clock))
    await rt.ledger.append("k", {"n": 0})
    assert rt.uploader is not None and rt.uploader.uploaded == []  # not yet: the interval has not passed
    clock.advance(seconds=61)
    for _ in range(200):  # the writer looks every second; a bound, not a measurement
        if rt.uploader.uploaded:
            break
        await asyncio.sleep(0.05)
    await rt.close()
    assert rt.uploader.uploaded == ["segments/1-3.jsonl"]  # config.loaded, k, and the checkpoint that closed them


async def test_closing_the_runtime_with_time_to_export_closes_the_open_segment_and_uploads_it(tmp_path: Path, aws: None) -> None:
    from gateway.runtime import Runtime, Settings

    settings = Settings(config_path=_config_with_export(tmp_path), data_dir=tmp_path / "data", clock=FrozenClock(NOW))
    rt = await Runtime.open(settings)
    await rt.ledger.append("k", {"n": 0})  # with config.loaded, two entries: no checkpoint due yet
    await rt.close(export_seconds=5)
    entries = [json.loads(line) for line in settings.ledger_path.read_bytes().splitlines()]
    assert [e["kind"] for e in entries] == ["config.loaded", "k", CHECKPOINT]
    keys = [o["Key"] for o in s3().list_objects_v2(Bucket="audit-ledger")["Contents"]]
    assert keys == ["segments/1-3.jsonl"]


async def test_a_last_export_that_hangs_does_not_hold_the_runtime_open(tmp_path: Path, aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.runtime import Runtime, Settings

    settings = Settings(config_path=_config_with_export(tmp_path), data_dir=tmp_path / "data", clock=FrozenClock(NOW))
    rt = await Runtime.open(settings)
    assert rt.uploader is not None

    async def hang() -> list[str]:
        await asyncio.Event().wait()
        return []

    monkeypatch.setattr(rt.uploader, "flush", hang)
    await asyncio.wait_for(rt.close(export_seconds=0.1), timeout=10)
    assert [e["kind"] for e in map(json.loads, settings.ledger_path.read_bytes().splitlines())][-1] == CHECKPOINT  # kept locally, uploaded next start


def _cli(tmp_path: Path, *args: str) -> int:
    return main(["audit", "verify", "--config", str(tmp_path / "regions.toml"), "--data-dir", str(tmp_path / "data"), *args])


async def _runtime_ledger(tmp_path: Path, count: int) -> Path:
    from gateway.runtime import Runtime, Settings

    settings = Settings(config_path=_config_with_export(tmp_path), data_dir=tmp_path / "data", clock=FrozenClock(NOW))
    rt = await Runtime.open(settings)
    for n in range(count):
        await rt.ledger.append("k", {"n": n})
    exporter = SegmentExporter(rt.config.audit.export, settings.ledger_path, FrozenClock(NOW))  # type: ignore[arg-type]
    await exporter.prepare()
    await exporter.upload_pending()
    await exporter.close()
    await rt.close()
    return settings.ledger_path


def test_verify_remote_confirms_the_uploaded_segments_match_the_local_lines(tmp_path: Path, aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_runtime_ledger(tmp_path, 5))
    assert _cli(tmp_path, "--remote", "--format", "json") == 0
    [report] = json.loads(capsys.readouterr().out)["chains"]
    assert report["remote"]["verified"] == 2 and report["signatures_checked"]


def test_verify_remote_catches_a_local_ledger_cut_back_to_an_earlier_checkpoint(tmp_path: Path, aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = asyncio.run(_runtime_ledger(tmp_path, 5))
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:4]))  # still a valid, signed chain on its own
    assert _cli(tmp_path) == 0
    capsys.readouterr()
    assert _cli(tmp_path, "--remote", "--format", "json") == 3
    [report] = json.loads(capsys.readouterr().out)["chains"]
    assert report["broken_at"] == 5 and "missing from the local ledger" in report["problem"]
