"""Every decision case in tests/cases/*.toml, decided by the shipped policy."""

from __future__ import annotations

import re

import pytest

from gateway.legal.decision_cases import Case, load_cases, run_case

from . import CASES_DIR, shipped_engine, shipped_regions

CASES: list[Case] = load_cases([CASES_DIR])


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_shipped_policy_decides_each_case_as_expected(case: Case) -> None:
    result = run_case(case, shipped_engine(), shipped_regions())
    assert result.passed, result.diff_text


def test_all_twenty_legal_md_scenarios_are_present_in_order() -> None:
    scenarios = [c for c in CASES if c.source.startswith(str(CASES_DIR / "legal-md-scenarios.toml"))]
    numbers = [int(m.group(1)) for c in scenarios if (m := re.match(r"scenario (\d+): ", c.name))]
    assert numbers == list(range(1, 21))


def test_there_are_at_least_twenty_five_edge_cases_beyond_the_scenarios() -> None:
    others = [c for c in CASES if not c.name.startswith("scenario ")]
    assert len(others) >= 25
