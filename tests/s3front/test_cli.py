"""`gateway s3 credentials` and the S3 options of `gateway serve`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.s3front.credentials import S3_KEY_FILE, identity_of, load_key, secret_for
from tests.support import SHIPPED_CONFIG, run_cli


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(SHIPPED_CONFIG, tmp_path / "regions.toml")
    return tmp_path


def printed(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in capsys.readouterr().out.split())


def test_keys_init_makes_the_s3_key_readable_by_its_owner_only(workdir: Path) -> None:
    run_cli(workdir, "keys", "init")
    assert (workdir / "data" / S3_KEY_FILE).stat().st_mode & 0o777 == 0o600


def test_s3_credentials_name_the_service_region_and_purpose_given(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(workdir, "keys", "init")
    capsys.readouterr()
    assert run_cli(workdir, "s3", "credentials", "--service", "billing", "--region", "us-east-1", "--purpose", "billing") == 0
    caller = identity_of(load_key(workdir / "data" / S3_KEY_FILE), printed(capsys)["AWS_ACCESS_KEY_ID"]).caller
    assert (caller.role, caller.service, caller.region, caller.purpose) == ("service", "billing", "us-east-1", "billing")


def test_the_printed_secret_is_derived_from_the_access_key_id(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(workdir, "keys", "init")
    capsys.readouterr()
    run_cli(workdir, "s3", "credentials", "--service", "billing", "--region", "us-east-1", "--purpose", "billing")
    found = printed(capsys)
    assert found["AWS_SECRET_ACCESS_KEY"] == secret_for(load_key(workdir / "data" / S3_KEY_FILE), found["AWS_ACCESS_KEY_ID"])


def test_s3_credentials_for_an_unknown_region_are_refused(workdir: Path) -> None:
    run_cli(workdir, "keys", "init")
    assert run_cli(workdir, "s3", "credentials", "--service", "billing", "--region", "mars-1", "--purpose", "billing") != 0


def test_serve_with_workers_and_an_s3_port_is_refused(workdir: Path) -> None:
    assert run_cli(workdir, "serve", "--workers", "2", "--s3-port", "9000") != 0
