"""The decision space ``policy diff`` and ``policy prove`` walk: what it samples beyond subjects, offences and dates."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.legal.decision_cases import load_cases, run_case
from gateway.legal.engine import Engine
from gateway.legal.space import UNDEFINED_INSTRUMENT, Side, case_toml, decide, space

from . import SHIPPED, shipped_policy, shipped_regions

BASELINE = "US person no, located in a third country, resides in a third country, offence of 3 years"


@pytest.fixture(scope="module")
def reasons() -> Counter[tuple[str, str, str]]:
    """(instrument, class, deciding reason) of every point of the shipped policy's space, counted."""
    engine = Engine(shipped_policy(), regions=shipped_regions())
    side = Side(shipped_policy(), shipped_regions())
    return Counter((p.instrument, p.subject_class, decide(engine, p).reason) for p in space(side))


def _reasons_of(reasons: Counter[tuple[str, str, str]], instrument: str, cls: str) -> set[str]:
    return {r for (i, c, r) in reasons if i == instrument and c == cls}


def test_an_order_served_at_its_execute_by_date_is_sampled_and_refused_as_expired(reasons: Counter[tuple[str, str, str]]) -> None:
    assert _reasons_of(reasons, "us.warrant", "served at its execute-by date (expired)") == {"expired"}


def test_an_order_not_valid_until_the_next_day_is_sampled_and_refused_as_not_yet_valid(reasons: Counter[tuple[str, str, str]]) -> None:
    assert _reasons_of(reasons, "us.warrant", "not valid until the day after service") == {"not-yet-valid"}


def test_an_order_whose_execute_by_date_is_after_service_is_decided_as_if_it_had_none(reasons: Counter[tuple[str, str, str]]) -> None:
    assert _reasons_of(reasons, "us.warrant", "execute-by date a day after service") == _reasons_of(reasons, "us.warrant", BASELINE)


def test_a_listed_offence_below_the_threshold_is_sampled_where_the_instrument_lets_it_qualify(reasons: Counter[tuple[str, str, str]]) -> None:
    listed = _reasons_of(reasons, "eu.epoc", "listed offence of 2 years")
    assert "not-serious-crime" not in listed and "enforcing-state-notification" in listed
    assert not _reasons_of(reasons, "gb.opo", "listed offence of 2 years")


def test_an_objection_by_the_enforcing_state_in_time_refuses_a_held_epoc(reasons: Counter[tuple[str, str, str]]) -> None:
    assert "enforcing-state-objection" in _reasons_of(reasons, "eu.epoc", "objection by IE in time")
    assert "enforcing-state-objection" not in _reasons_of(reasons, "eu.epoc", "objection by IE 11 days after service")


def test_renewals_of_a_preservation_are_sampled_live_exhausted_lapsed_and_unknown(reasons: Counter[tuple[str, str, str]]) -> None:
    assert _reasons_of(reasons, "us.preservation", "renews a live preservation") == {"preservation-extended"}
    assert _reasons_of(reasons, "us.preservation", "renews a preservation extended 1 time(s)") == {"extensions-exhausted"}
    assert _reasons_of(reasons, "us.preservation", "renews a lapsed preservation") == {"preservation"}
    assert _reasons_of(reasons, "us.preservation", "renews an order the gateway does not know") == {"unknown-preservation"}


def test_every_instrument_is_sampled_from_a_country_that_may_not_issue_it(reasons: Counter[tuple[str, str, str]]) -> None:
    others = {(i, r) for (i, c, r) in reasons if "of a country no policy lets issue it" in c}
    assert {i for i, _ in others} == set(shipped_policy().instruments)
    assert {r for _, r in others} <= {"issuer-not-competent", "not-bound"}


def test_an_instrument_no_policy_defines_is_sampled_from_every_authority_and_refused(reasons: Counter[tuple[str, str, str]]) -> None:
    assert {r for (i, _, r) in reasons if i == UNDEFINED_INSTRUMENT} == {"unknown-instrument"}
    per_authority = len(shipped_regions()) * len(shipped_policy().categories)
    assert sum(n for (i, _, _), n in reasons.items() if i == UNDEFINED_INSTRUMENT) == len(shipped_policy().authorities) * per_authority


def test_an_order_that_needs_a_designated_authority_is_sampled_served_by_its_issuer(reasons: Counter[tuple[str, str, str]]) -> None:
    assert _reasons_of(reasons, "gb.opo", "served by the issuer gb-court itself") == {"improper-service"}


def test_allowing_a_second_extension_shows_exhausted_renewals_becoming_extensions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = SHIPPED.read_text()
    old = "preservation = { ttl_days = 90, extension_days = 90, max_extensions = 1 }"
    assert text.count(old) == 1
    edited = tmp_path / "two-extensions.toml"
    edited.write_text(text.replace(old, old.replace("max_extensions = 1", "max_extensions = 2")))
    assert main(["policy", "diff", str(SHIPPED), str(edited)]) == 1
    out = capsys.readouterr().out
    assert "refuse (extensions-exhausted, R2.preservation)\n     -> preserve (preservation-extended, R2.preservation)" in out
    assert "e.g. renews a preservation extended 1 time(s)" in out


def test_an_authority_of_a_state_the_instrument_does_not_bind_is_sampled_and_routed_to_mlat(reasons: Counter[tuple[str, str, str]]) -> None:
    assert _reasons_of(reasons, "eu.epoc", "issued by dk-police, of a state the instrument does not bind") == {"not-bound"}


def test_a_point_of_every_kind_written_as_a_decision_case_reproduces_its_decision(tmp_path: Path) -> None:
    policy, regions = shipped_policy(), shipped_regions()
    engine = Engine(policy, regions=regions)
    kinds = ("expired", "not valid until", "listed offence", "objection by", "renews", "does not bind", "no policy", "itself", "served 20", "made 20")
    picked: dict[str, str] = {}
    for p in space(Side(policy, regions)):
        kind = next((k for k in kinds if k in p.subject_class and k not in picked), None)
        if kind is not None:
            picked[kind] = case_toml(p, decide(engine, p), f"{kind}: {p.instrument} from {p.issuer.id}, {p.subject_class}")
    assert set(picked) == set(kinds)
    path = tmp_path / "kinds.toml"
    path.write_text("\n".join(picked.values()))
    results = [run_case(case, engine, regions) for case in load_cases([path])]
    assert [r.case.name for r in results if not r.passed] == []
    assert len(results) == len(kinds)
