"""CLI commands for legal orders: sign, explain, policy test, package verify."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.runtime import init_keys
from tests.support import ROOT, SHIPPED_CONFIG, run_cli

CASES = ROOT / "tests" / "cases"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(SHIPPED_CONFIG, tmp_path / "regions.toml")
    init_keys(load_config(tmp_path / "regions.toml"), tmp_path / "data", demo_authorities=True)
    return tmp_path


run = run_cli


def test_policy_test_passes_on_the_shipped_cases(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workdir, "policy", "test", str(CASES)) == 0
    assert " passed, 0 failed" in capsys.readouterr().out


def test_policy_test_fails_loudly_with_a_diff_when_a_case_expects_the_wrong_outcome(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited = workdir / "cases.toml"
    text = (CASES / "legal-md-scenarios.toml").read_text()
    edited.write_text(text.replace('outcome = "route-mlat"\nreason = "targeting-restriction"', 'outcome = "disclose"\nreason = "targeting-restriction"', 1))
    assert run(workdir, "policy", "test", str(edited)) == 1
    out = capsys.readouterr().out
    assert "FAIL scenario 9" in out
    assert "outcome: expected `disclose`, got `route-mlat`" in out
    assert "1 failed" in out


def test_policy_test_follows_a_rule_changed_in_the_config_with_no_code_change(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = workdir / "case.toml"
    case.write_text(
        """
[[case]]
name = "OPO for an offence with a two-year maximum"
stored = "us-east-1"
[case.order]
issuer = "gb-court"
served_by = "gb-sos"
instrument = "gb.opo"
categories = ["content"]
made_at = 2026-09-15
offence = { description = "fraud", max_penalty_years = 2, committed_in = "GB" }
[case.subject]
residence = "GB"
nationality = "PK"
us_person = false
location = "GB"
[case.expect]
outcome = "route-mlat"
reason = "not-serious-crime"
"""
    )
    assert run(workdir, "policy", "test", str(case)) == 0
    config = workdir / "regions.toml"
    config.write_text(config.read_text().replace("min_max_penalty_years = 3", "min_max_penalty_years = 1"))
    capsys.readouterr()
    assert run(workdir, "policy", "test", str(case)) == 1
    assert "got `disclose`" in capsys.readouterr().out


def test_policy_test_rejects_a_case_file_with_an_unknown_key(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = workdir / "bad.toml"
    bad.write_text(
        '[[case]]\nname = "x"\nstored = "us-east-1"\ncolour = "red"\n'
        '[case.order]\nissuer = "us-doj"\ninstrument = "us.subpoena"\ncategories = ["subscriber"]\n'
        '[case.subject]\nresidence = "US"\n[case.expect]\noutcome = "disclose"\n'
    )
    assert run(workdir, "policy", "test", str(bad)) == 3
    assert "colour" in capsys.readouterr().err


def _claims(workdir: Path, **extra: object) -> Path:
    claims = {
        "jti": "w-1",
        "iss": "us-court-sdny",
        "exp": "2030-01-01T00:00:00Z",
        "instrument": "us.warrant",
        "subjects": ["alice"],
        "categories": ["content"],
        **extra,
    }
    path = workdir / "claims.json"
    path.write_text(json.dumps(claims))
    return path


def test_order_sign_makes_an_order_that_explain_decides(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = workdir / "data/keys/authorities/us-court-sdny.key"
    assert run(workdir, "order", "sign", "--authority-key", str(key), "--claims", str(_claims(workdir))) == 0
    order = workdir / "order.jws"
    order.write_text(capsys.readouterr().out)
    code = run(workdir, "explain", str(order), "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert document["items"][0]["outcome"] == "no-data"  # nothing stored for alice in this fresh data dir
    assert document["trace"]
    assert code == 2


def test_order_sign_refuses_a_public_key(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    public = workdir / "data/keys/authorities/us-court-sdny.pub"
    assert run(workdir, "order", "sign", "--authority-key", str(public), "--claims", str(_claims(workdir))) == 1
    assert "public key" in capsys.readouterr().err


def test_explain_of_an_order_signed_by_the_wrong_key_refuses_with_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = workdir / "data/keys/authorities/us-doj.key"
    run(workdir, "order", "sign", "--authority-key", str(key), "--kid", "us-court-sdny", "--claims", str(_claims(workdir)))
    order = workdir / "order.jws"
    order.write_text(capsys.readouterr().out)
    assert run(workdir, "explain", str(order)) == 2
    assert "bad-signature" in capsys.readouterr().out


def test_explain_writes_nothing_to_the_ledger(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = workdir / "data/keys/authorities/us-court-sdny.key"
    run(workdir, "order", "sign", "--authority-key", str(key), "--claims", str(_claims(workdir)))
    order = workdir / "order.jws"
    order.write_text(capsys.readouterr().out)
    run(workdir, "explain", str(order))
    assert not list((workdir / "data/ledger").glob("*.jsonl"))


def test_package_verify_rejects_a_file_that_is_not_a_package(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = workdir / "junk.tar"
    with tarfile.open(junk, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        tar.addfile(info)
    assert run(workdir, "package", "verify", str(junk)) == 1
    assert "broken" in capsys.readouterr().out
