"""The `[audit]` table of regions.toml."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from gateway.config import AuditExport, AuditSettings, parse_config
from gateway.errors import ConfigError
from tests.support import SHIPPED_CONFIG


def with_audit(audit: dict[str, Any] | None) -> dict[str, Any]:
    raw = tomllib.loads(SHIPPED_CONFIG.read_text())
    raw.pop("audit", None)
    if audit is not None:
        raw["audit"] = audit
    return raw


def test_without_an_audit_table_checkpoints_use_the_defaults_and_nothing_is_exported() -> None:
    assert parse_config(with_audit(None)).audit == AuditSettings(1000, 300, None)


def test_the_export_table_is_parsed_with_compliance_as_the_default_mode() -> None:
    audit = {"checkpoint_every": 10, "export": {"bucket": "audit-ledger", "region_name": "us-east-1", "retention_days": 365}}
    assert parse_config(with_audit(audit)).audit.export == AuditExport("audit-ledger", "us-east-1", None, 365, "COMPLIANCE")


def test_every_problem_in_the_audit_table_is_reported_with_its_key_path() -> None:
    audit = {"checkpoint_every": 0, "colour": "red", "export": {"bucket": "Bad_Bucket", "region_name": "us-east-1", "retention_days": 0, "mode": "LAX"}}
    with pytest.raises(ConfigError) as error:
        parse_config(with_audit(audit))
    paths = sorted(f.path for f in error.value.findings)
    assert paths == ["audit.checkpoint_every", "audit.colour", "audit.export.bucket", "audit.export.mode", "audit.export.retention_days"]


EXPORT = {"bucket": "audit-ledger", "region_name": "us-east-1", "retention_days": 365}


def test_with_an_export_the_open_segment_is_closed_every_export_interval_by_default_thirty_seconds() -> None:
    audit = parse_config(with_audit({"checkpoint_seconds": 300, "export": EXPORT})).audit
    assert (audit.export_interval_seconds, audit.segment_seconds) == (30, 30)


def test_the_export_interval_bounds_segments_even_when_checkpoints_go_by_count_only() -> None:
    audit = parse_config(with_audit({"checkpoint_seconds": 0, "export_interval_seconds": 10, "export": EXPORT})).audit
    assert audit.segment_seconds == 10


def test_a_checkpoint_interval_shorter_than_the_export_interval_still_applies() -> None:
    audit = parse_config(with_audit({"checkpoint_seconds": 5, "export_interval_seconds": 10, "export": EXPORT})).audit
    assert audit.segment_seconds == 5


def test_without_an_export_segments_close_at_the_checkpoint_interval_alone() -> None:
    audit = parse_config(with_audit({"checkpoint_seconds": 300, "export_interval_seconds": 10})).audit
    assert audit.segment_seconds == 300


def test_an_export_interval_outside_one_second_to_a_day_is_reported_with_its_key_path() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(with_audit({"export_interval_seconds": 0, "export": EXPORT}))
    assert [f.path for f in error.value.findings] == ["audit.export_interval_seconds"]
