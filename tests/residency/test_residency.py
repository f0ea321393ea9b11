"""The residency decision for service reads, over the shipped configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.model import Bloc, Jurisdiction, TransferMechanism
from gateway.residency.decision import ResidencyPolicy

SHIPPED = Path(__file__).resolve().parents[2] / "regions.toml"


def shipped_policy() -> ResidencyPolicy:
    config = load_config(SHIPPED)
    return ResidencyPolicy.build(
        regions={r.id: r.jurisdiction for r in config.regions.values()},
        jurisdictions=config.jurisdictions,
        blocs=config.blocs,
        mechanisms=config.transfer_mechanisms,
    )


@pytest.fixture(scope="module")
def policy() -> ResidencyPolicy:
    return shipped_policy()


def decide(policy: ResidencyPolicy, caller: str, data: str, service: str = "analytics", purpose: str = "analytics"):
    return policy.decide(caller_region=caller, service=service, purpose=purpose, data_region=data)


def test_a_caller_in_the_same_jurisdiction_is_allowed(policy: ResidencyPolicy) -> None:
    decision = decide(policy, "us-east-1", "us-east-1")
    assert decision.allowed and decision.reasons[0].code == "same-jurisdiction"


def test_callers_in_one_free_flow_bloc_are_allowed(policy: ResidencyPolicy) -> None:
    decision = decide(policy, "eu-west-1", "eu-central-1")
    assert decision.allowed and decision.reasons[0].code == "free-flow-bloc"


def test_an_eu_record_read_by_a_us_caller_without_a_mechanism_is_refused(policy: ResidencyPolicy) -> None:
    decision = decide(policy, "us-east-1", "eu-west-1", service="analytics", purpose="analytics")
    assert not decision.allowed
    assert decision.reasons[0].code == "service-not-covered"
    assert decision.reasons[0].rule == "residency.default-deny"


def test_an_eu_record_read_by_a_us_caller_under_a_mechanism_covering_the_purpose_is_allowed(policy: ResidencyPolicy) -> None:
    decision = decide(policy, "us-east-1", "eu-west-1", service="billing", purpose="billing")
    assert decision.allowed
    assert decision.mechanism == "eu-us-dpf"
    assert decision.reasons[0].rule == "residency.transfer-mechanism"


def test_a_registered_service_with_a_purpose_outside_the_mechanism_is_refused(policy: ResidencyPolicy) -> None:
    decision = decide(policy, "us-east-1", "eu-central-1", service="billing", purpose="marketing")
    assert not decision.allowed and decision.reasons[0].code == "purpose-not-covered"


def test_a_route_with_no_mechanism_at_all_is_refused(policy: ResidencyPolicy) -> None:
    only_dpf = ResidencyPolicy(policy.region_jurisdiction, policy.places, policy.free_flow, tuple(m for m in policy.mechanisms if m.id == "eu-us-dpf"))
    decision = decide(only_dpf, "ap-southeast-2", "eu-west-2", service="billing", purpose="billing")
    assert not decision.allowed and decision.reasons[0].code == "no-transfer-mechanism"


def test_the_uk_is_not_in_the_eu_free_flow_bloc(policy: ResidencyPolicy) -> None:
    assert not decide(policy, "eu-west-2", "eu-west-1").allowed


def test_a_mechanism_only_works_in_its_direction(policy: ResidencyPolicy) -> None:
    decision = decide(policy, "eu-west-1", "eu-west-2", service="billing", purpose="billing")
    assert not decision.allowed


def test_the_trace_names_every_rule_considered_when_asked(policy: ResidencyPolicy) -> None:
    decision = policy.decide(caller_region="us-east-1", service="analytics", purpose="analytics", data_region="eu-west-1", trace=True)
    rules = [line.split(":")[0] for line in decision.trace]
    assert rules == ["residency.same-jurisdiction", "residency.free-flow-bloc", "residency.transfer-mechanism", "residency.default-deny"]


def test_the_trace_is_empty_unless_asked(policy: ResidencyPolicy) -> None:
    assert decide(policy, "us-east-1", "eu-west-1").trace == ()


def test_jurisdictions_and_mechanisms_come_only_from_configuration() -> None:
    policy = ResidencyPolicy.build(
        regions={"north": "AA", "south": "BB"},
        jurisdictions={"AA": Jurisdiction("AA", "A"), "BB": Jurisdiction("BB", "B", frozenset({"X"}))},
        blocs={"X": Bloc("X", "x", True)},
        mechanisms={
            "m": TransferMechanism("m", "scc", "", frozenset({"X"}), frozenset({"AA"}), frozenset({"svc"}), frozenset({"p"}))
        },
    )
    assert policy.decide(caller_region="north", service="svc", purpose="p", data_region="south").allowed
    assert not policy.decide(caller_region="south", service="svc", purpose="p", data_region="north").allowed


def test_a_remembered_decision_equals_the_decision_made_afresh(policy: ResidencyPolicy) -> None:
    first = decide(policy, "us-east-1", "eu-west-1")
    again = decide(policy, "us-east-1", "eu-west-1")
    fresh = decide(shipped_policy(), "us-east-1", "eu-west-1")
    assert first == again == fresh


def test_a_traced_decision_carries_its_trace_even_when_remembered(policy: ResidencyPolicy) -> None:
    decide(policy, "us-east-1", "eu-west-1")
    explained = policy.decide(caller_region="us-east-1", service="analytics", purpose="analytics", data_region="eu-west-1", trace=True)
    assert explained.trace
