"""``gateway policy test --coverage``: the rules and configuration entries decision cases exercise, and those none does."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.legal.engine import Engine, rule_ids
from gateway.legal.space import Side, decide, space

from . import CASES_DIR, SHIPPED, shipped_policy, shipped_regions

SUBPOENA = """
[[case]]
name = "a US prosecutor's subpoena for subscriber data stored in the US"
stored = "us-east-1"
[case.order]
issuer = "us-doj"
instrument = "us.subpoena"
categories = ["subscriber"]
[case.subject]
residence = "US"
[case.expect]
outcome = "disclose"
"""

EXPIRED_WARRANT = """
[[case]]
name = "a US warrant served after its execute-by date"
stored = "us-east-1"
[case.order]
issuer = "us-court-sdny"
instrument = "us.warrant"
categories = ["content"]
exp = 2026-08-15
[case.subject]
residence = "US"
[case.expect]
outcome = "refuse"
reason = "expired"
"""

FOREIGN_EMERGENCY = """
[[case]]
name = "a Brazilian police emergency request for subscriber data stored in the US"
stored = "us-east-1"
[case.order]
issuer = "br-police"
instrument = "br.police-request"
categories = ["subscriber"]
emergency = "kidnapping in progress"
[case.subject]
residence = "BR"
[case.expect]
outcome = "disclose"
basis = "emergency"
"""


def _coverage(tmp_path: Path, *cases: str) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "cases.toml"
    path.write_text("\n".join(cases))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["policy", "test", "--config", str(SHIPPED), "--coverage", "--format", "json", str(path)])
    return code, json.loads(out.getvalue())["coverage"]["sections"]


def test_one_case_exercises_its_deciding_rule_instrument_authority_region_and_category(tmp_path: Path) -> None:
    code, sections = _coverage(tmp_path, SUBPOENA)
    assert code == 0
    exercised = {name: s["exercised"] for name, s in sections.items()}
    assert exercised == {
        "rules": ["R5.same-jurisdiction"],
        "instruments": ["us.subpoena"],
        "authorities": ["us-doj"],
        "channels": [],
        "regions": ["us-east-1"],
        "categories": ["subscriber"],
        "emergency": [],
        "invariants": [],
    }


def test_what_one_case_leaves_unexercised_is_listed_section_by_section(tmp_path: Path) -> None:
    _, sections = _coverage(tmp_path, SUBPOENA)
    assert "R5.agreement.uk-us" in sections["rules"]["not_exercised"]
    assert "uk-us.channels[0]" in sections["channels"]["not_exercised"]
    assert sections["categories"]["not_exercised"] == ["identification", "traffic", "content"]
    assert "us.subpoena" not in sections["instruments"]["not_exercised"]


def test_an_expired_order_exercises_the_invariant_whose_scope_it_lies_in(tmp_path: Path) -> None:
    _, sections = _coverage(tmp_path, EXPIRED_WARRANT)
    assert sections["invariants"]["exercised"] == ["no-disclosure-under-an-expired-order"]
    assert sections["rules"]["exercised"] == ["R1.expired"]


def test_a_foreign_emergency_request_exercises_the_foreign_emergency_branch(tmp_path: Path) -> None:
    _, sections = _coverage(tmp_path, FOREIGN_EMERGENCY)
    assert sections["emergency"] == {"exercised": ["foreign"], "not_exercised": ["domestic"]}


def test_instruments_no_registered_authority_may_issue_are_not_counted(tmp_path: Path) -> None:
    _, sections = _coverage(tmp_path, SUBPOENA)
    instruments = sections["instruments"]["exercised"] + sections["instruments"]["not_exercised"]
    assert "br.court-order" in instruments and "ar.court-order" not in instruments


def test_a_failing_case_still_exits_1_with_coverage(tmp_path: Path) -> None:
    code, sections = _coverage(tmp_path, SUBPOENA.replace('outcome = "disclose"', 'outcome = "refuse"'))
    assert code == 1
    assert sections["rules"]["exercised"] == ["R5.same-jurisdiction"]


def test_the_shipped_cases_exercise_every_agreement_channel_region_authority_and_invariant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "test", "--config", str(SHIPPED), "--coverage", str(CASES_DIR)]) == 0
    out = capsys.readouterr().out
    for section in ("authorities", "channels", "regions", "emergency", "invariants"):
        (line,) = [line for line in out.splitlines() if line.strip().startswith(section)]
        covered, _, total = line.split()[1:4]
        assert covered == total, line


def test_every_rule_that_decides_a_point_of_the_shipped_space_is_a_rule_coverage_counts() -> None:
    policy, regions = shipped_policy(), shipped_regions()
    engine = Engine(policy, regions=regions)
    decided = {decide(engine, p).rule for p in space(Side(policy, regions))}
    assert decided <= set(rule_ids(policy))
    assert set(rule_ids(policy)) - decided <= {
        "R0.authority",
        "R0.signature",
        "R1.category",
        "R1.region",
        "R1.replayed",
        "R3.no-data",
        "R1.no-specific-identifiers",
    }
