"""Engine behaviours the case files do not show: traces, purity, rules as data, deny by default."""

from __future__ import annotations

import ast
import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.legal.decision_cases import load_cases, run_case
from gateway.legal.engine import Decision, Engine, add_months, compile_policy, decide, last_day_of_months_beginning_with, refusal
from gateway.legal.orders import Objection, Offence, Order
from gateway.legal.policy import LegalPolicy
from gateway.model import Region, Subject

from . import CASES_DIR, ROOT, parse, shipped_engine, shipped_policy, shipped_raw, shipped_regions

NOW = datetime(2026, 10, 1, tzinfo=UTC)


def order(issuer: str, instrument: str, category: str, *, served_by: str | None = None, **claims: object) -> Order:
    authorities = shipped_policy().authorities
    fields: dict[str, object] = {
        "id": "order-1",
        "issuer": authorities[issuer],
        "served_by": authorities[served_by or issuer],
        "instrument": instrument,
        "subjects": ("acct-1",),
        "categories": (category,),
        "issued_at": NOW,
    }
    fields.update(claims)
    return Order(**fields)  # type: ignore[arg-type]


def subject(residence: str, **attributes: object) -> Subject:
    return Subject(id="acct-1", home_region="", residence=residence, **attributes)  # type: ignore[arg-type]


def region(region_id: str) -> Region:
    return shipped_regions()[region_id]


OPO = {"served_by": "gb-sos", "made_at": NOW - timedelta(days=10), "offence": Offence("harassment", 2.0, "GB")}
NON_US_IN_GB = subject("GB", nationality="GB", us_person=False, location="GB")


# --- traces -------------------------------------------------------------------------


def test_the_trace_is_empty_unless_requested() -> None:
    decision = shipped_engine().decide(order("us-court-sdny", "us.warrant", "content"), subject("US"), region("us-east-1"), "content", now=NOW)
    assert decision.trace == ()


def test_the_trace_explains_every_rule_family_considered_up_to_the_deciding_rule() -> None:
    decision = shipped_engine().decide(
        order("br-police", "br.police-request", "subscriber"), subject("IE"), region("eu-west-1"), "subscriber", now=NOW, trace=True
    )
    rules = [line.split(":", 1)[0] for line in decision.trace]
    for family in ("R1.instrument", "R1.expired", "R1.issuer-not-competent", "R1.replayed", "R2.preservation", "R3.ladder", "R4.emergency"):
        assert family in rules
    assert "R5.agreement" in rules and "R5.same-jurisdiction" in rules and "R5.extraterritorial" in rules
    assert decision.trace[-1].startswith("R5.blocking.gdpr-art48: decides route-mlat (gdpr-art48)")


def test_a_trace_does_not_change_the_decision() -> None:
    engine = shipped_engine()
    args = (order("fr-judge", "eu.epoc", "traffic", offence=Offence("fraud", 5.0, "FR")), subject("DE"), region("eu-west-1"), "traffic")
    with_trace = engine.decide(*args, now=NOW, trace=True)
    without = engine.decide(*args, now=NOW)
    assert dataclasses.replace(with_trace, trace=()) == without


# --- rules are data -------------------------------------------------------------------


def test_lowering_the_serious_crime_threshold_in_the_config_changes_the_decision() -> None:
    args = (order("gb-court", "gb.opo", "content", **OPO), NON_US_IN_GB, region("us-east-1"), "content")
    assert Engine(shipped_policy()).decide(*args, now=NOW).reason == "not-serious-crime"

    raw = shipped_raw()
    raw["agreements"]["uk-us"]["channels"][0]["min_max_penalty_years"] = 1
    lowered, findings = parse(raw)
    assert findings == []
    decision = Engine(lowered).decide(*args, now=NOW)
    assert (decision.outcome, decision.reason) == ("disclose", "agreement")


def test_a_copy_of_the_policy_with_a_replaced_channel_decides_differently() -> None:
    policy = shipped_policy()
    agreement = policy.agreements["uk-us"]
    channel = dataclasses.replace(agreement.channels[0], min_max_penalty_years=1.0)
    copy = dataclasses.replace(policy, agreements={**policy.agreements, "uk-us": dataclasses.replace(agreement, channels=(channel, *agreement.channels[1:]))})
    args = (order("gb-court", "gb.opo", "content", **OPO), NON_US_IN_GB, region("us-east-1"), "content")
    assert decide(*args, policy=copy, now=NOW).outcome == "disclose"
    assert decide(*args, policy=policy, now=NOW).outcome == "route-mlat"


def test_removing_the_voluntary_policy_routes_foreign_non_content_requests_to_mlat() -> None:
    raw = shipped_raw()
    raw["disclosure"]["voluntary"] = []
    strict, findings = parse(raw)
    assert findings == []
    args = (order("br-court", "br.court-order", "subscriber"), subject("BR"), region("us-east-1"), "subscriber")
    assert shipped_engine().decide(*args, now=NOW).outcome == "disclose"
    decision = Engine(strict).decide(*args, now=NOW)
    assert (decision.outcome, decision.reason) == ("route-mlat", "no-agreement")


# --- deny by default ------------------------------------------------------------------


def test_a_policy_without_agreements_blocking_or_voluntary_rules_never_discloses_abroad() -> None:
    bare = dataclasses.replace(shipped_policy(), agreements={}, blocking={}, voluntary=())
    decision = decide(order("gb-court", "gb.opo", "content", **OPO), NON_US_IN_GB, region("us-east-1"), "content", policy=bare, now=NOW)
    assert (decision.outcome, decision.reason, decision.rule) == ("route-mlat", "no-agreement", "R5.no-agreement")


def test_an_unknown_instrument_is_refused() -> None:
    decision = shipped_engine().decide(order("us-fbi", "us.letter", "subscriber"), subject("US"), region("us-east-1"), "subscriber", now=NOW)
    assert (decision.outcome, decision.reason) == ("refuse", "unknown-instrument")


def test_an_unknown_region_id_is_refused() -> None:
    engine = Engine(shipped_policy(), regions=shipped_regions())
    decision = engine.decide(order("us-fbi", "us.subpoena", "subscriber"), subject("US"), "mars-north-1", "subscriber", now=NOW)
    assert (decision.outcome, decision.reason) == ("refuse", "unknown-region")


def test_an_unknown_subject_ends_in_no_data_after_the_form_checks() -> None:
    engine = Engine(shipped_policy(), regions=shipped_regions())
    decision = engine.decide(order("us-fbi", "us.subpoena", "subscriber"), None, None, "subscriber", now=NOW, subject_id="acct-1")
    assert (decision.outcome, decision.reason, decision.subject) == ("no-data", "no-records", "acct-1")
    refused = engine.decide(order("us-fbi", "us.subpoena", "content"), None, None, "content", now=NOW, subject_id="acct-1")
    assert refused.reason == "instrument-insufficient"


def test_a_region_id_is_resolved_through_the_regions_the_engine_was_built_with() -> None:
    engine = Engine(shipped_policy(), regions=shipped_regions())
    decision = engine.decide(order("ie-court", "ie.court-order", "content"), subject("IE"), "eu-west-1", "content", now=NOW)
    assert (decision.outcome, decision.region) == ("disclose", "eu-west-1")


# --- blocking rules: a property ------------------------------------------------------

REGIONS = sorted(shipped_regions())
CATEGORIES = list(shipped_policy().categories)
PLACES = [None, "US", "GB", "IE", "DE", "FR", "BR", "AU", "PK", "DK"]


def _combinations() -> list[tuple[str, str, str]]:
    """(issuer, served_by, instrument) triples that pass the issuer and service checks, read from the policy."""
    policy = shipped_policy()
    out: list[tuple[str, str, str]] = []
    for instrument in policy.instruments.values():
        for issuer in policy.authorities.values():
            if issuer.jurisdiction not in instrument.issuers or issuer.kind not in instrument.kinds:
                continue
            servers = [issuer.id]
            if instrument.service is not None and instrument.service.served_by_kind is not None:
                servers = [a.id for a in policy.authorities.values() if instrument.id in a.designated_for]
            out.extend((issuer.id, server, instrument.id) for server in servers)
    return sorted(out)


VALID = _combinations()
ANY = [(a, a, i) for a in sorted(shipped_policy().authorities) for i in ("us.warrant", "gb.opo", "eu.epoc", "br.court-order", "us.emergency")]


def blocked_without_agreement(policy: LegalPolicy, o: Order, stored: Region, category: str, now: datetime) -> bool:
    """A blocking rule applies to the issuer, storage place and category, and no grant channel covers the order.

    Only an agreement the storage country is party to lifts its blocking rules.
    """
    issuer = o.issuer.jurisdiction
    blocked = any(
        (stored.jurisdiction in r.stored_in or stored.id in r.stored_in) and category in r.categories and issuer not in r.unless_issuer_in
        for r in policy.blocking.values()
    )
    granted = any(
        c.effect == "grant"
        and o.instrument in c.instruments
        and issuer in c.issuers
        and (stored.jurisdiction in c.stored_in or stored.id in c.stored_in)
        and stored.jurisdiction in a.parties  # an agreement lifts only its parties' blocking rules
        and (a.in_force_from is None or now >= a.in_force_from)
        for a in policy.agreements.values()
        for c in a.channels
    )
    return blocked and not granted


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    combination=st.sampled_from(VALID) | st.sampled_from(ANY),
    stored=st.sampled_from(REGIONS),
    category=st.sampled_from(CATEGORIES),
    residence=st.sampled_from(PLACES[1:]),
    nationality=st.sampled_from(PLACES),
    location=st.sampled_from(PLACES),
    us_person=st.sampled_from([None, True, False]),
    emergency=st.booleans(),
    penalty=st.sampled_from([None, 1.0, 3.0, 14.0]),
    committed_in=st.sampled_from(PLACES),
    days=st.integers(min_value=-1200, max_value=400),
)
def test_no_disclosure_ever_crosses_a_blocking_rule_without_an_agreement(
    combination: tuple[str, str, str],
    stored: str,
    category: str,
    residence: str,
    nationality: str | None,
    location: str | None,
    us_person: bool | None,
    emergency: bool,
    penalty: float | None,
    committed_in: str | None,
    days: int,
) -> None:
    policy = shipped_policy()
    now = NOW + timedelta(days=days)
    issuer, served_by, instrument = combination
    o = Order(
        id="o",
        issuer=policy.authorities[issuer],
        served_by=policy.authorities[served_by],
        instrument=instrument,
        made_at=now - timedelta(days=10),
        subjects=("acct-1",),
        categories=(category,),
        issued_at=now,
        offence=Offence("x", penalty, committed_in) if penalty is not None else None,
        emergency_reason="threat to life" if emergency else None,
    )
    person = Subject("acct-1", stored, residence, nationality, us_person, location)
    place = shipped_regions()[stored]
    decision = shipped_engine().decide(o, person, place, category, now=now)
    if blocked_without_agreement(policy, o, place, category, now):
        assert decision.outcome not in ("disclose", "hold"), decision
    assert decision.outcome in ("disclose", "hold", "preserve", "route-mlat", "legal-review", "refuse", "no-data")
    assert decision.reasons and decision.rule == decision.reasons[0].rule
    if decision.outcome == "legal-review":
        assert decision.obligations.deadline is not None
    if decision.outcome == "disclose":
        assert decision.basis in ("compelled", "voluntary", "emergency")


# --- obligations and windows ------------------------------------------------------------


def test_windows_run_from_when_the_order_was_received_not_from_the_decision_time() -> None:
    received = NOW - timedelta(days=3)
    o = order("fr-judge", "eu.epoc", "traffic", offence=Offence("fraud", 5.0, "FR"), received_at=received)
    decision = shipped_engine().decide(o, subject("DE"), region("eu-west-1"), "traffic", now=NOW)
    assert decision.outcome == "hold"
    assert decision.obligations.release_at == received + timedelta(days=10)


def test_an_objection_turns_a_hold_into_a_refusal_that_keeps_the_hold_reasons() -> None:
    o = order("fr-judge", "eu.epoc", "traffic", offence=Offence("fraud", 5.0, "FR"))
    decision = shipped_engine().decide(o, subject("DE"), region("eu-west-1"), "traffic", now=NOW, objection=Objection("IE", NOW, "dual criminality"))
    assert [r.code for r in decision.reasons] == ["enforcing-state-objection", "enforcing-state-notification", "agreement"]


def test_a_nondisclosure_date_is_carried_into_the_obligations() -> None:
    gag = NOW + timedelta(days=180)
    decision = shipped_engine().decide(
        order("us-court-sdny", "us.warrant", "content", nondisclosure_until=gag), subject("US"), region("us-east-1"), "content", now=NOW
    )
    assert decision.obligations.nondisclosure_until == gag
    assert decision.to_json()["obligations"] == {"nondisclosure_until": "2027-03-30T00:00:00Z"}


def test_calendar_months_clamp_to_the_end_of_a_shorter_month() -> None:
    assert add_months(datetime(2026, 11, 30, tzinfo=UTC), 3) == datetime(2027, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 9, 15, tzinfo=UTC), 3) == datetime(2026, 12, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("made", "last"),
    [
        (date(2027, 3, 15), date(2027, 6, 14)),
        (date(2027, 3, 1), date(2027, 5, 31)),
        (date(2026, 11, 28), date(2027, 2, 27)),
        (date(2026, 11, 29), date(2027, 2, 28)),
        (date(2026, 11, 30), date(2027, 2, 28)),
        (date(2026, 12, 1), date(2027, 2, 28)),
        (date(2027, 11, 30), date(2028, 2, 29)),
        (date(2027, 3, 31), date(2027, 6, 30)),
        (date(2026, 10, 15), date(2027, 1, 14)),
    ],
)
def test_a_period_of_three_months_beginning_with_a_day_ends_the_day_before_the_corresponding_date(made: date, last: date) -> None:
    assert last_day_of_months_beginning_with(made, 3) == last


def test_an_unknown_nationality_makes_person_status_unknown_for_a_targeting_restriction() -> None:
    raw = shipped_raw()
    raw["agreements"]["uk-us"]["channels"][0]["targeting"]["not_person_of"] = ["US", "PK"]
    policy, findings = parse(raw)
    assert findings == []
    o = order("gb-court", "gb.opo", "content", served_by="gb-sos", made_at=NOW, offence=Offence("murder", 99.0, "GB"))
    unknown = Engine(policy).decide(o, subject("GB", us_person=False, location="GB"), region("us-east-1"), "content", now=NOW)
    assert (unknown.outcome, unknown.reason) == ("legal-review", "targeting-unverified")
    pakistani = Engine(policy).decide(o, subject("GB", nationality="PK", us_person=False, location="GB"), region("us-east-1"), "content", now=NOW)
    assert pakistani.reason == "targeting-restriction"


# --- API shape ----------------------------------------------------------------------


def test_refusal_builds_an_r0_decision_in_the_engine_shape() -> None:
    decision = refusal("bad-signature", "R0.signature", "the signature does not verify", order_id="o-1")
    assert isinstance(decision, Decision)
    assert (decision.outcome, decision.reason, decision.rule, decision.basis, decision.trace) == ("refuse", "bad-signature", "R0.signature", None, ())
    assert decision.to_json()["reasons"] == [{"code": "bad-signature", "rule": "R0.signature", "detail": "the signature does not verify"}]


def test_check_order_refuses_a_wildcard_order_without_any_subject() -> None:
    o = order("us-court-sdny", "us.warrant", "content", subjects=("*",))
    refused = shipped_engine().check_order(o, now=NOW)
    assert refused is not None and refused.reason == "no-specific-identifiers"
    assert shipped_engine().check_order(order("us-court-sdny", "us.warrant", "content"), now=NOW) is None


def test_check_service_refuses_an_order_signed_by_an_authority_that_may_not_serve_for_its_issuer() -> None:
    refused = shipped_engine().check_service(order("us-court-sdny", "us.warrant", "content", served_by="gb-police"))
    assert refused is not None and (refused.outcome, refused.reason, refused.rule) == ("refuse", "improper-service", "R1.improper-service")


def test_check_service_accepts_the_issuer_itself_and_its_designated_server() -> None:
    engine = shipped_engine()
    assert engine.check_service(order("us-court-sdny", "us.warrant", "content")) is None
    assert engine.check_service(order("gb-court", "gb.opo", "content", **OPO)) is None


def test_the_engine_can_be_built_from_a_config_like_object() -> None:
    @dataclasses.dataclass
    class ConfigLike:
        legal: LegalPolicy
        regions: dict[str, Region]

    engine = Engine(ConfigLike(shipped_policy(), dict(shipped_regions())))
    assert engine.policy is shipped_policy() and "us-east-1" in engine.regions


def test_decide_memoises_the_compiled_engine_per_policy() -> None:
    assert compile_policy(shipped_policy()) is compile_policy(shipped_policy())


def test_the_engine_reads_no_clock_does_no_io_and_logs_nothing() -> None:
    source = (ROOT / "gateway" / "legal" / "engine.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "calendar", "functools", "weakref", "collections", "dataclasses", "datetime", "typing", "gateway"}
    calls = {node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
    assert not calls & {"now", "utcnow", "today", "time", "open", "read_text", "info", "debug", "warning"}
    assert "print(" not in source


def test_every_reason_code_the_engine_gives_is_documented_in_regions_toml() -> None:
    engine, regions = shipped_engine(), shipped_regions()
    decisions = [run_case(case, engine, regions).decision for case in load_cases([CASES_DIR])]
    us_warrant = order("us-court-sdny", "us.warrant", "content")
    decisions.append(engine.decide(us_warrant, subject("US"), region("us-east-1"), "gossip", now=NOW))
    decisions.append(Engine(shipped_policy(), regions=shipped_regions()).decide(us_warrant, subject("US"), "mars-north-1", "content", now=NOW))
    raw = shipped_raw()
    raw["disclosure"]["emergency"]["domestic"] = "legal-review"
    reviewing, findings = parse(raw)
    assert findings == []
    emergency = order("us-fbi", "us.emergency", "content", emergency_reason="a life is at risk")
    decisions.append(Engine(reviewing).decide(emergency, subject("US"), region("us-east-1"), "content", now=NOW))
    codes = {reason.code for decision in decisions if decision is not None for reason in decision.reasons}
    assert {"unknown-category", "unknown-region", "emergency-domestic"} <= codes
    assert len(codes) > 30
    documented = (ROOT / "regions.toml").read_text(encoding="utf-8")
    assert not {code for code in codes if code not in documented}
