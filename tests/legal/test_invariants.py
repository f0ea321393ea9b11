"""Invariants as data: ``[invariants.<id>]`` parsed with the policy, proved over every point of the decision space."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.legal.engine import BASES, OUTCOMES, Engine
from gateway.legal.invariants import counterexample_toml, permitted, prove
from gateway.legal.orders import Order
from gateway.legal.policy import DECISION_BASES, DECISION_OUTCOMES, LegalPolicy
from gateway.legal.space import Side
from gateway.model import Subject

from . import parse, shipped_policy, shipped_raw, shipped_regions

AT = datetime(2026, 10, 1, tzinfo=UTC)


def _side(policy: LegalPolicy) -> Side:
    return Side(policy, shipped_regions())


def _edited(edit: Any) -> LegalPolicy:
    raw = shipped_raw()
    edit(raw)
    policy, findings = parse(raw)
    assert not findings, findings
    return policy


def _proof_of(policy: LegalPolicy, invariant_id: str) -> Any:
    (result,) = prove(_side(policy), [policy.invariants[invariant_id]]).results
    return result


def _findings(invariant: dict[str, Any]) -> list[str]:
    raw = shipped_raw()
    raw["invariants"] = {"probe": {"description": "a probe", "forbid": ["disclose"], **invariant}}
    _, findings = parse(raw)
    return [str(f) for f in findings]


# --- the shipped invariants ---------------------------------------------------------


def test_every_invariant_of_the_shipped_policy_holds_over_its_decision_space() -> None:
    result = prove(_side(shipped_policy()))
    assert result.holds and result.points > 200_000
    assert len(result.results) == len(shipped_policy().invariants) >= 6
    assert all(r.checked > 0 for r in result.results)


def test_removing_the_us_content_bar_and_raising_voluntary_disclosure_to_content_breaks_the_us_content_invariant() -> None:
    def edit(raw: dict[str, Any]) -> None:
        del raw["blocking"]["us-foreign-content-bar"]
        raw["disclosure"]["voluntary"][0]["up_to"] = "content"

    result = _proof_of(_edited(edit), "us-content-only-through-an-agreement")
    assert not result.holds
    assert {(cx.point.region, cx.point.category, cx.decision.outcome) for cx in result.counterexamples} == {("us-east-1", "content", "disclose")}


def test_a_voluntary_rule_for_foreign_authorities_over_eea_data_breaks_the_gdpr_art48_invariant() -> None:
    def edit(raw: dict[str, Any]) -> None:
        del raw["blocking"]["gdpr-art48"]
        raw["disclosure"]["voluntary"].append({"id": "eea-subscriber-abroad", "to": "foreign", "stored_in": ["IE"], "up_to": "subscriber"})

    result = _proof_of(_edited(edit), "gdpr-art48-no-disclosure-outside-eea")
    assert not result.holds
    assert {cx.decision.rule for cx in result.counterexamples} == {"R5.voluntary.eea-subscriber-abroad"}
    assert {cx.point.issuer.jurisdiction for cx in result.counterexamples}.isdisjoint({"IE", "DE", "FR", "ES", "DK"})


def test_letting_foreign_emergency_requests_reach_content_breaks_the_foreign_emergency_invariant() -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["disclosure"]["emergency"]["foreign_up_to"] = "content"

    result = _proof_of(_edited(edit), "foreign-emergency-requests-get-no-content")
    assert not result.holds
    assert {(cx.point.category, cx.point.emergency, cx.decision.rule) for cx in result.counterexamples} == {("content", True, "R4.emergency")}


def test_dropping_the_review_of_emergency_requests_for_eea_data_breaks_the_eea_emergency_invariant() -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["disclosure"]["emergency"]["foreign_review_stored_in"] = []

    result = _proof_of(_edited(edit), "emergency-requests-get-nothing-stored-in-the-eea-without-review")
    assert not result.holds
    assert {cx.point.region for cx in result.counterexamples} <= {"eu-west-1", "eu-central-1"}


@pytest.mark.parametrize(
    ("invariant_id", "instrument", "authority", "expires"),
    [
        ("no-disclosure-under-an-expired-order", "us.warrant", "us-court-sdny", AT),
        ("preservation-never-discloses", "us.preservation", "us-fbi", None),
        ("an-undefined-instrument-never-discloses", "undefined.instrument", "us-court-sdny", None),
    ],
)
def test_a_disclosure_in_an_invariants_scope_is_not_permitted(invariant_id: str, instrument: str, authority: str, expires: datetime | None) -> None:
    policy = shipped_policy()
    issuer = policy.authorities[authority]
    order = Order("order-1", issuer, issuer, instrument, ("subject-1",), ("content",), issued_at=AT, expires_at=expires, received_at=AT)
    decided = Engine(policy, regions=shipped_regions()).decide(order, Subject("subject-1", "us-east-1", "US"), "us-east-1", "content", now=AT)
    invariant = policy.invariants[invariant_id]
    assert permitted(invariant, decided)
    assert not permitted(invariant, replace(decided, outcome="disclose", rule="R5.same-jurisdiction"))


def test_an_unless_rule_family_permits_a_disclosure_decided_by_a_rule_in_it() -> None:
    invariant = shipped_policy().invariants["us-content-only-through-an-agreement"]
    issuer = shipped_policy().authorities["gb-court"]
    order = Order("order-1", issuer, issuer, "gb.production-order", ("subject-1",), ("content",), issued_at=AT, received_at=AT)
    decided = Engine(shipped_policy(), regions=shipped_regions()).decide(order, Subject("subject-1", "eu-west-2", "GB"), "eu-west-2", "content", now=AT)
    assert decided.outcome == "disclose"
    assert permitted(invariant, replace(decided, rule="R5.agreement.uk-us"))
    assert not permitted(invariant, replace(decided, rule="R5.agreementx"))


def test_a_counterexample_is_written_as_a_decision_case_expecting_the_forbidden_decision() -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["disclosure"]["emergency"]["foreign_up_to"] = "content"

    cx = _proof_of(_edited(edit), "foreign-emergency-requests-get-no-content").counterexamples[0]
    (case,) = tomllib.loads(counterexample_toml(cx))["case"]
    assert case["expect"] == {"outcome": "disclose", "reason": "emergency-request", "rule": "R4.emergency", "basis": "emergency"}
    assert case["order"]["emergency"] and case["category"] == "content"
    assert "foreign-emergency-requests-get-no-content" in case["description"]


def test_the_policy_names_the_engines_outcomes_and_bases() -> None:
    assert (DECISION_OUTCOMES, DECISION_BASES) == (OUTCOMES, BASES)


# --- validation ------------------------------------------------------------------------


def test_an_unknown_forbidden_outcome_is_a_finding_with_its_key_path() -> None:
    assert _findings({"forbid": ["disclosed"]}) == [
        "invariants.probe.forbid[0]: unknown outcome `disclosed`; use `disclose`, `hold`, `preserve`, `route-mlat`, `legal-review`, `refuse`, `no-data`"
    ]


def test_an_unknown_place_in_a_selector_is_a_finding() -> None:
    assert _findings({"issuers": {"outside": ["EUR"]}}) == ["invariants.probe.issuers.outside[0]: unknown jurisdiction or bloc `EUR`"]


def test_a_selector_with_both_in_and_outside_is_a_finding() -> None:
    assert _findings({"stored": {"in": ["US"], "outside": ["EU"]}}) == ["invariants.probe.stored: give `in` or `outside`, not both"]


def test_an_unknown_instrument_is_a_finding() -> None:
    assert _findings({"instruments": {"in": ["us.warant"]}}) == ["invariants.probe.instruments.in[0]: unknown instrument `us.warant`"]


def test_an_unless_rule_that_is_not_a_rule_id_is_a_finding() -> None:
    assert _findings({"unless": {"rule": ["agreement"]}}) == [
        "invariants.probe.unless.rule[0]: `agreement` is not a rule id (such as `R5.agreement` or `R5.blocking.<id>`)"
    ]


def test_an_unknown_key_in_an_invariant_is_a_finding() -> None:
    assert _findings({"forbids": ["disclose"]}) == ["invariants.probe.forbids: unknown key"]


def test_an_invariant_without_forbid_is_a_finding() -> None:
    raw = shipped_raw()
    raw["invariants"] = {"probe": {"description": "a probe"}}
    _, findings = parse(raw)
    assert [str(f) for f in findings] == ["invariants.probe.forbid: is required"]
