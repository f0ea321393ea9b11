"""What a change to the legal policy alters: every decision point, decided under both policies.

Pure: the two policies (and their regions) come in, the changes go out. ``gateway
policy diff OLD NEW`` reads the files and prints the result.

The decision space is derived from both policies, so an instrument, authority,
region, date or threshold present in either is sampled. It is the union of three
slices around a baseline (the latest time sampled, the order served by the right
authority, no emergency, an offence at the highest threshold, a subject who is not
a US person and lives and stays in a third country):

- issuer and instrument: every instrument of either policy with every registered
  authority of either policy that may issue it under either (its jurisdiction and
  kind are the instrument's). A pair that neither policy lets issue is refused by
  R1 under both whatever else the point holds, and is left out: the "other
  jurisdiction" issuer is not sampled;
- region and category: every region and every category of either policy;
- subject (decided at the baseline time): ``us_person`` yes, no, unknown (with no,
  the subject's nationality is a third country, so they are a person of no
  jurisdiction a channel names; with unknown, nationality is unknown too) ×
  location in the issuer's country, the storage country, the US
  (``person_status_jurisdiction``), a third country, unknown × residence in the
  issuer's country, the storage country, a third country. These are the classes
  the engine's predicates distinguish: equality with the issuer's country
  (notification exemption, motion to quash), membership of a channel's
  ``not_located_in`` (the listed places are the issuer's, the storage country or
  the US in every shipped channel; another listed place is not sampled);
- offence (with the subject slice): none; one with no stated penalty; for each
  ``min_max_penalty_years`` threshold of either policy (instruments and channels),
  one year below it and exactly at it; committed in the issuer's country. The
  engine only compares a penalty with a threshold, so this is exhaustive for
  penalties; ``listed`` offences and offences committed elsewhere are not sampled;
- emergency: with and without an emergency reason, for instruments whose
  emergency mode is not ``none`` in either policy;
- timing (with the baseline subject): the decision and the order dated the day
  before and on each ``in_force_from`` of either policy (instruments and
  agreements), and the baseline time, a day after the latest; at the baseline
  time, for each service period (``within_months_of_made``) of either policy, an
  order made on the last day it can be served on time and the day before. Hold,
  review and objection periods are compared as obligations (durations from
  service), so a change to them shows without sampling;
- service (with the baseline subject): properly served, and served by an
  authority of another jurisdiction.

Two decisions are the same when outcome, basis, deciding reason, rule and the
obligations' offsets from service are. A change is reported once per point and
grouped by (instrument, issuer, region, category, old, new); a group lists
the classes (subject, offence, timing, service) of its points and keeps the first
as an example decision case.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from gateway.legal.engine import Decision, Engine, add_months
from gateway.legal.orders import Authority, Offence, Order
from gateway.legal.policy import Instrument, LegalPolicy
from gateway.model import Region, Subject, isoformat

_LATE_FLOOR = datetime(2026, 10, 1, tzinfo=UTC)  # the baseline time is at least the decision cases' default


@dataclass(frozen=True, slots=True)
class Side:
    """One policy to compare: its legal tables and its regions."""

    policy: LegalPolicy
    regions: Mapping[str, Region]


@dataclass(frozen=True, slots=True)
class Point:
    """One decision: who orders what, for whom, where, when."""

    instrument: str
    issuer: Authority
    served_by: Authority
    region: str
    category: str
    subject: Subject
    subject_class: str
    offence: Offence | None
    emergency: bool
    at: datetime
    made_at: datetime


@dataclass(slots=True)
class Group:
    instrument: str
    issuer: str
    region: str
    category: str
    old: str
    new: str
    count: int = 0
    classes: list[str] = field(default_factory=list)  # the subject, offence, timing and service classes of its points
    example: Point | None = None
    example_new: Decision | None = None


@dataclass(slots=True)
class PolicyDiff:
    points: int = 0
    groups: list[Group] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(g.count for g in self.groups)


def diff(old: Side, new: Side) -> PolicyDiff:
    """Decide every point of the space under both policies; the changes, grouped."""
    engines = (Engine(old.policy, regions=old.regions), Engine(new.policy, regions=new.regions))
    result = PolicyDiff()
    groups: dict[tuple[str, ...], Group] = {}
    for point in space(old, new):
        result.points += 1
        before, after = (_decide(e, point) for e in engines)
        a, b = _summary(before, point), _summary(after, point)
        if a == b:
            continue
        key = (point.instrument, point.issuer.id, point.region, point.category, a, b)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(*key, example=point, example_new=after)
        group.count += 1
        group.classes.append(point.subject_class)
    result.groups = list(groups.values())
    return result


def _decide(engine: Engine, p: Point) -> Decision:
    order = Order(
        id="order-1",
        issuer=p.issuer,
        served_by=p.served_by,
        instrument=p.instrument,
        subjects=(p.subject.id,),
        categories=(p.category,),
        issued_at=p.made_at,
        made_at=p.made_at,
        offence=p.offence,
        emergency_reason="danger to life" if p.emergency else None,
        received_at=p.at,
    )
    return engine.decide(order, p.subject, p.region, p.category, now=p.at)


def _summary(d: Decision, p: Point) -> str:
    text = f"{d.outcome}{'/' + d.basis if d.basis else ''} ({d.reason}, {d.rule})"
    shown = []
    for key, value in d.obligations.to_json().items():
        if isinstance(value, str) and key != "notify":
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            value = _span(moment - p.at)
        shown.append(f"{key} {value}")
    return text + (f" [{', '.join(shown)}]" if shown else "")


def _span(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"+{hours // 24}d" if hours % 24 == 0 else f"+{hours}h"


# --- the space -----------------------------------------------------------------------


def space(old: Side, new: Side) -> Iterator[Point]:
    """Every point of the decision space of the two policies, in a fixed order (see the module docstring)."""
    policies = (old.policy, new.policy)
    authorities = {**new.policy.authorities, **old.policy.authorities}
    instruments = sorted({i for p in policies for i in p.instruments})
    regions = {**new.regions, **old.regions}
    region_ids = sorted(regions)
    categories = list(dict.fromkeys((*old.policy.categories, *new.policy.categories)))
    us = old.policy.person_status_jurisdiction or new.policy.person_status_jurisdiction or ""
    places = sorted({a.jurisdiction for a in authorities.values()} | {r.jurisdiction for r in regions.values()} | {us} - {""})

    dates = sorted(
        {i.in_force_from for p in policies for i in p.instruments.values() if i.in_force_from is not None}
        | {a.in_force_from for p in policies for a in p.agreements.values() if a.in_force_from is not None}
    )
    late = max([_LATE_FLOOR, *(d + timedelta(days=1) for d in dates)])
    timings = sorted({t for d in dates for t in (d - timedelta(days=1), d)})
    months = sorted({i.service.within_months_of_made for p in policies for i in p.instruments.values() if i.service and i.service.within_months_of_made})
    made = [late]
    for m in months:
        last_in_time = add_months(late, -m) + timedelta(days=1)
        made += [last_in_time, last_in_time - timedelta(days=1)]
    thresholds = sorted(
        {i.offence.min_max_penalty_years for p in policies for i in p.instruments.values() if i.offence and i.offence.min_max_penalty_years is not None}
        | {c.min_max_penalty_years for p in policies for a in p.agreements.values() for c in a.channels if c.min_max_penalty_years is not None}
    )
    years = sorted({y for t in thresholds for y in (max(t - 1, 0), t)})
    top = years[-1] if years else 10.0

    for instrument in instruments:
        defined = [p.instruments[instrument] for p in policies if instrument in p.instruments]
        emergencies = (False, True) if any(i.emergency.mode != "none" for i in defined) else (False,)
        for issuer_id in sorted(authorities):
            issuer = authorities[issuer_id]
            j = issuer.jurisdiction
            served_by = _server(instrument, issuer, defined, authorities)
            improper = next((a for _, a in sorted(authorities.items()) if a.jurisdiction != j), None)
            baseline_offence = Offence("offence", top, j)
            if not any(j in i.issuers and issuer.kind in i.kinds for i in defined):
                continue
            for region_id in region_ids:
                stored = regions[region_id].jurisdiction
                third = next((c for c in places if c not in (j, stored, us)), "ZZ")
                baseline = Subject("subject-1", region_id, third, third, False, third)

                for category in categories:
                    base = Point(instrument, issuer, served_by, region_id, category, baseline, "baseline", baseline_offence, False, late, late)
                    for at in timings:
                        yield replace(base, subject_class=f"served {at.date().isoformat()}", at=at, made_at=at)
                    for made_at in made[1:]:
                        yield replace(base, subject_class=f"made {made_at.date().isoformat()}", made_at=made_at)
                    if improper is not None:
                        yield replace(base, subject_class=f"served by {improper.id}", served_by=improper)
                    for subject, cls in _subjects(region_id, j, stored, us, third):
                        for offence, off_cls in _offences(j, years):
                            for emergency in emergencies:
                                label = f"{cls}, {off_cls}" + (", emergency" if emergency else "")
                                yield replace(base, subject=subject, subject_class=label, offence=offence, emergency=emergency)


def _server(instrument: str, issuer: Authority, defined: list[Instrument], authorities: Mapping[str, Authority]) -> Authority:
    """The authority that serves the order properly: a designated authority of the issuer's state where the instrument wants one."""
    for i in defined:
        if i.service is not None and i.service.served_by_kind is not None:
            for _, a in sorted(authorities.items()):
                if a.jurisdiction == issuer.jurisdiction and a.kind == i.service.served_by_kind and (not a.designated_for or instrument in a.designated_for):
                    return a
    return issuer


def _subjects(region: str, issuer: str, stored: str, us: str, third: str) -> Iterator[tuple[Subject, str]]:
    named = {third: "a third country", us: f"{us} (person status)", stored: "the storage country", issuer: "the issuer's country"}
    for us_person in (True, False, None):
        nationality = third if us_person is False else None
        for location in (issuer, stored, us, third, None):
            for residence in (issuer, stored, third):
                cls = (
                    f"US person {'unknown' if us_person is None else 'yes' if us_person else 'no'}, "
                    f"{'located in ' + named[location] if location else 'location unknown'}, resides in {named[residence]}"
                )
                yield Subject("subject-1", region, residence, nationality, us_person, location), cls


def _offences(issuer: str, years: list[float]) -> Iterator[tuple[Offence | None, str]]:
    yield None, "no offence"
    yield Offence("offence", None, issuer), "offence without a penalty"
    for y in years:
        yield Offence("offence", y, issuer), f"offence of {y:g} years"


# --- rendering -----------------------------------------------------------------------


def text(result: PolicyDiff) -> str:
    if not result.groups:
        return f"no change: {result.points} decision points decided under both policies"
    lines = [f"{result.changed} of {result.points} decision points change, in {len(result.groups)} groups:"]
    for g in sorted(result.groups, key=_order):
        lines.append(f"{g.count:6d}  {g.instrument}  {g.issuer}  {g.region}  {g.category}")
        lines.append(f"        {g.old}")
        lines.append(f"     -> {g.new}")
        lines.append(f"        e.g. {g.classes[0]}")
    return "\n".join(lines)


def to_json(result: PolicyDiff) -> dict[str, object]:
    return {
        "points": result.points,
        "changed": result.changed,
        "groups": [
            {
                "instrument": g.instrument,
                "issuer": g.issuer,
                "region": g.region,
                "category": g.category,
                "classes": g.classes,
                "old": g.old,
                "new": g.new,
                "count": g.count,
                "case": case_toml(g),
            }
            for g in sorted(result.groups, key=_order)
        ],
    }


def _order(g: Group) -> tuple[str, ...]:
    return (g.instrument, g.issuer, g.region, g.category, g.old, g.new)


def case_toml(g: Group) -> str:
    """The group's example point as a decision case that expects the new policy's decision."""
    p, d = g.example, g.example_new
    assert p is not None and d is not None
    lines = [
        "[[case]]",
        f"name = {_q(f'{g.instrument} from {g.issuer}, {g.region}, {g.category}: {g.classes[0]}')}",
        f"at = {_t(p.at)}",
        f"stored = {_q(p.region)}",
        f"category = {_q(p.category)}",
        "[case.order]",
        f"issuer = {_q(p.issuer.id)}",
        f"served_by = {_q(p.served_by.id)}",
        f"instrument = {_q(p.instrument)}",
        f"categories = [{_q(p.category)}]",
        f"iat = {_t(p.made_at)}",
        f"made_at = {_t(p.made_at)}",
        f"received_at = {_t(p.at)}",
    ]
    if p.offence is not None:
        fields = [f"description = {_q(p.offence.description)}"]
        if p.offence.max_penalty_years is not None:
            fields.append(f"max_penalty_years = {p.offence.max_penalty_years:g}")
        if p.offence.committed_in is not None:
            fields.append(f"committed_in = {_q(p.offence.committed_in)}")
        lines.append(f"offence = {{ {', '.join(fields)} }}")
    if p.emergency:
        lines.append('emergency = "danger to life"')
    s = p.subject
    lines += ["[case.subject]", f"id = {_q(s.id)}", f"residence = {_q(s.residence)}"]
    if s.nationality is not None:
        lines.append(f"nationality = {_q(s.nationality)}")
    if s.us_person is not None:
        lines.append(f"us_person = {'true' if s.us_person else 'false'}")
    if s.location is not None:
        lines.append(f"location = {_q(s.location)}")
    lines += ["[case.expect]", f"outcome = {_q(d.outcome)}", f"reason = {_q(d.reason)}", f"rule = {_q(d.rule)}"]
    return "\n".join(lines) + "\n"


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _t(moment: datetime) -> str:
    return isoformat(moment)
