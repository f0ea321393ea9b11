"""The decision space of one or more legal policies: every point the rules distinguish, in a fixed order.

Pure. ``gateway policy diff`` decides every point under two policies and
compares; ``gateway policy prove`` decides every point under one and checks its
invariants. Both walk the same enumeration, ``space(*sides)``.

The space is derived from the policies given, so an instrument, authority,
region, date or threshold present in any of them is sampled. It is the union of
slices around a baseline (the latest time sampled, the order served by the right
authority, no emergency, no expiry, an offence at the highest threshold, a
subject who is not a US person and lives and stays in a third country):

- issuer and instrument: every instrument of any policy with every registered
  authority that may issue it under any (its jurisdiction and kind are the
  instrument's), crossed with every slice below; and, with the baseline alone,
  one authority of another jurisdiction, which no policy lets issue it (the
  "other" issuer country), one of a state the instrument does not bind
  (``except``) where no competent one is registered, and an instrument no
  policy defines, from every authority;
- region and category: every region and every category of any policy;
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
  ``min_max_penalty_years`` threshold of any policy (instruments and channels),
  one year below it and exactly at it; committed in the issuer's country. With
  the baseline subject: where an instrument lets a listed offence qualify
  (``listed_qualifies``), a listed offence one year below the lowest threshold
  and one with no stated penalty; and a subject living in the issuer's country
  with the offence committed in a third country (the notification exemption
  needs both in the issuing state);
- emergency: with and without an emergency reason, for instruments whose
  emergency mode is not ``none`` in any policy;
- timing (with the baseline subject): the decision and the order dated the day
  before and on each ``in_force_from`` of any policy (instruments and
  agreements), and the baseline time, a day after the latest; at the baseline
  time, for each service period (``within_months_of_made``) of any policy, an
  order made on the last day it can be served on time and the day before; and
  the order's own validity: served at its execute-by date (``exp``, expired),
  with ``exp`` a day later (valid), and not valid until the next day (``nbf``).
  Hold, review and objection periods are compared as obligations (durations
  from service), so a change to them shows without sampling;
- service (with the baseline subject): properly served; served by an authority
  of another jurisdiction; and, where an instrument must be served by a
  designated authority, served by the issuer itself;
- objections (with the baseline subject, with and without an emergency where
  sampled): for instruments a notification channel names, an objection by the
  enforcing state in time, one made a day after the longest hold of any policy,
  and one by another state;
- renewals (with the baseline subject): for preservation instruments, a renewal
  of a live preservation never extended, of one extended as often as each policy
  allows, of a lapsed one, and of an order the gateway does not know.

``case_toml`` writes a point and its decision as a decision case that ``gateway
policy test`` runs as is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from gateway.legal.engine import Decision, Engine, add_months
from gateway.legal.orders import Authority, Objection, Offence, Order, PriorPreservation
from gateway.legal.policy import Instrument, LegalPolicy
from gateway.model import Region, Subject, isoformat

_LATE_FLOOR = datetime(2026, 10, 1, tzinfo=UTC)  # the baseline time is at least the decision cases' default
UNDEFINED_INSTRUMENT = "undefined.instrument"  # an instrument id no policy defines (checked against each policy)
_PRIOR = "order-0"  # the id of the earlier preservation a renewal names


@dataclass(frozen=True, slots=True)
class Side:
    """One policy: its legal tables and its regions."""

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
    subject_class: str  # the point's classes in words (subject, offence, timing, service...)
    offence: Offence | None
    emergency: bool
    at: datetime  # the decision time; the order is served then too
    made_at: datetime
    expires_at: datetime | None = None
    not_before: datetime | None = None
    renews: str | None = None
    prior: PriorPreservation | None = None
    objection: Objection | None = None

    @property
    def expired(self) -> bool:
        """The order was served at or after its execute-by date."""
        return self.expires_at is not None and self.at >= self.expires_at


def decide(engine: Engine, p: Point, *, trace: bool = False) -> Decision:
    """The engine's decision for one point."""
    order = Order(
        id="order-1",
        issuer=p.issuer,
        served_by=p.served_by,
        instrument=p.instrument,
        subjects=(p.subject.id,),
        categories=(p.category,),
        issued_at=p.made_at,
        expires_at=p.expires_at,
        not_before=p.not_before,
        made_at=p.made_at,
        offence=p.offence,
        emergency_reason="danger to life" if p.emergency else None,
        renews=p.renews,
        received_at=p.at,
    )
    return engine.decide(order, p.subject, p.region, p.category, now=p.at, objection=p.objection, prior_preservation=p.prior, trace=trace)


def space(*sides: Side) -> Iterator[Point]:
    """Every point of the decision space of the policies, in a fixed order (see the module docstring)."""
    policies = tuple(s.policy for s in sides)
    authorities: dict[str, Authority] = {}
    regions: dict[str, Region] = {}
    for side in reversed(sides):  # the first side's entries win
        authorities.update(side.policy.authorities)
        regions.update(side.regions)
    instruments = sorted({i for p in policies for i in p.instruments})
    region_ids = sorted(regions)
    categories = list(dict.fromkeys(c for p in policies for c in p.categories))
    us = next((p.person_status_jurisdiction for p in policies if p.person_status_jurisdiction), "")
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
    notified = {i for p in policies for a in p.agreements.values() for c in a.channels if c.notification is not None for i in c.instruments}
    longest_hold = max((c.notification.hold_days for p in policies for a in p.agreements.values() for c in a.channels if c.notification), default=0)
    enforcing = {i: e.jurisdiction for p in reversed(policies) for e in p.establishments.values() for i in e.receives}

    for instrument in instruments:
        defined = [p.instruments[instrument] for p in policies if instrument in p.instruments]
        emergencies = (False, True) if any(i.emergency.mode != "none" for i in defined) else (False,)
        listed = any(i.offence is not None and i.offence.listed_qualifies for i in defined)
        keeps = [i.preservation for i in defined if i.preservation is not None]
        designated = any(i.service is not None and i.service.served_by_kind is not None for i in defined)
        for issuer_id in sorted(authorities):
            issuer = authorities[issuer_id]
            j = issuer.jurisdiction
            if not any(j in i.issuers and issuer.kind in i.kinds for i in defined):
                continue
            served_by = _server(instrument, issuer, defined, authorities)
            improper = next((a for _, a in sorted(authorities.items()) if a.jurisdiction != j), None)
            baseline_offence = Offence("offence", top, j)
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
                    yield replace(base, subject_class="served at its execute-by date (expired)", expires_at=late)
                    yield replace(base, subject_class="execute-by date a day after service", expires_at=late + timedelta(days=1))
                    yield replace(base, subject_class="not valid until the day after service", not_before=late + timedelta(days=1))
                    if improper is not None:
                        yield replace(base, subject_class=f"served by {improper.id}", served_by=improper)
                    if designated and served_by.id != issuer.id:
                        yield replace(base, subject_class=f"served by the issuer {issuer.id} itself", served_by=issuer)
                    if listed:
                        low = max(thresholds[0] - 1, 0) if thresholds else None
                        label = f"listed offence of {low:g} years" if low is not None else "listed offence"
                        yield replace(base, subject_class=label, offence=Offence("offence", low, j, True))
                        yield replace(base, subject_class="listed offence without a penalty", offence=Offence("offence", None, j, True))
                    yield replace(
                        base,
                        subject=replace(baseline, residence=j),
                        subject_class="resides in the issuer's country, offence committed in a third country",
                        offence=Offence("offence", top, third),
                    )
                    if instrument in notified:
                        yield from _objections(base, enforcing.get(instrument), third, late, longest_hold, emergencies)
                    if keeps:
                        yield from _renewals(base, instrument, j, late, sorted({k.max_extensions for k in keeps}))
                    for subject, cls in _subjects(region_id, j, stored, us, third):
                        for offence, off_cls in _offences(j, years):
                            for emergency in emergencies:
                                label = f"{cls}, {off_cls}" + (", emergency" if emergency else "")
                                yield replace(base, subject=subject, subject_class=label, offence=offence, emergency=emergency)

        unbound = next((a for _, a in sorted(authorities.items()) if any(a.jurisdiction in i.not_bound for i in defined)), None)
        if unbound is not None and not any(unbound.kind in i.kinds for i in defined):  # a competent one is sampled above
            label = f"issued by {unbound.id}, of a state the instrument does not bind"
            yield from _baselines(instrument, unbound, region_ids, regions, categories, places, us, late, top, label)
        other = _other_issuer(defined, authorities)
        if other is not None:
            label = f"issued by {other.id}, of a country no policy lets issue it"
            yield from _baselines(instrument, other, region_ids, regions, categories, places, us, late, top, label)

    if not any(UNDEFINED_INSTRUMENT in p.instruments for p in policies):
        for issuer_id in sorted(authorities):
            label = "an instrument no policy defines"
            yield from _baselines(UNDEFINED_INSTRUMENT, authorities[issuer_id], region_ids, regions, categories, places, us, late, top, label)


def _baselines(
    instrument: str,
    issuer: Authority,
    region_ids: list[str],
    regions: Mapping[str, Region],
    categories: list[str],
    places: list[str],
    us: str,
    late: datetime,
    top: float,
    label: str,
) -> Iterator[Point]:
    """The baseline point of every region and category, for one instrument and issuer."""
    j = issuer.jurisdiction
    for region_id in region_ids:
        stored = regions[region_id].jurisdiction
        third = next((c for c in places if c not in (j, stored, us)), "ZZ")
        subject = Subject("subject-1", region_id, third, third, False, third)
        for category in categories:
            yield Point(instrument, issuer, issuer, region_id, category, subject, label, Offence("offence", top, j), False, late, late)


def _other_issuer(defined: list[Instrument], authorities: Mapping[str, Authority]) -> Authority | None:
    """An authority of a jurisdiction that no policy lets issue the instrument (one of a competent kind, where there is one)."""
    outside = [a for _, a in sorted(authorities.items()) if not any(a.jurisdiction in i.issuers for i in defined)]
    return next((a for a in outside if any(a.kind in i.kinds for i in defined)), outside[0] if outside else None)


def _objections(base: Point, enforcing: str | None, third: str, late: datetime, longest_hold: int, emergencies: tuple[bool, ...]) -> Iterator[Point]:
    """An objection in time by the enforcing state, one made after the longest hold, and one by another state."""
    if enforcing is None:
        return
    for emergency in emergencies:
        flag = ", emergency" if emergency else ""
        yield replace(base, subject_class=f"objection by {enforcing} in time{flag}", emergency=emergency, objection=Objection(enforcing, late))
        after = late + timedelta(days=longest_hold + 1)
        label = f"objection by {enforcing} {longest_hold + 1} days after service{flag}"
        yield replace(base, subject_class=label, emergency=emergency, objection=Objection(enforcing, after))
        yield replace(base, subject_class=f"objection by {third}, not the enforcing state{flag}", emergency=emergency, objection=Objection(third, late))


def _renewals(base: Point, instrument: str, issuer: str, late: datetime, max_extensions: list[int]) -> Iterator[Point]:
    """A renewal of: a live preservation, one extended as often as each policy allows, a lapsed one, an unknown order."""
    live = late + timedelta(days=30)
    yield replace(base, subject_class="renews a live preservation", renews=_PRIOR, prior=PriorPreservation(_PRIOR, instrument, issuer, live, 0))
    for n in max_extensions:
        if n > 0:
            prior = PriorPreservation(_PRIOR, instrument, issuer, live, n)
            yield replace(base, subject_class=f"renews a preservation extended {n} time(s)", renews=_PRIOR, prior=prior)
    lapsed = late - timedelta(days=1)
    yield replace(base, subject_class="renews a lapsed preservation", renews=_PRIOR, prior=PriorPreservation(_PRIOR, instrument, issuer, lapsed, 0))
    yield replace(base, subject_class="renews an order the gateway does not know", renews=_PRIOR)


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


# --- a point as a decision case -------------------------------------------------------


def case_toml(p: Point, d: Decision, name: str, description: str = "") -> str:
    """The point as a decision case that expects decision ``d`` (``gateway policy test`` runs it as is)."""
    lines = ["[[case]]", f"name = {_q(name)}"]
    if description:
        lines.append(f"description = {_q(description)}")
    lines += [
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
    if p.expires_at is not None:
        lines.append(f"exp = {_t(p.expires_at)}")
    if p.not_before is not None:
        lines.append(f"nbf = {_t(p.not_before)}")
    if p.offence is not None:
        fields = [f"description = {_q(p.offence.description)}"]
        if p.offence.max_penalty_years is not None:
            fields.append(f"max_penalty_years = {p.offence.max_penalty_years:g}")
        if p.offence.committed_in is not None:
            fields.append(f"committed_in = {_q(p.offence.committed_in)}")
        if p.offence.listed is not None:
            fields.append(f"listed = {'true' if p.offence.listed else 'false'}")
        lines.append(f"offence = {{ {', '.join(fields)} }}")
    if p.emergency:
        lines.append('emergency = "danger to life"')
    if p.renews is not None:
        lines.append(f"renews = {_q(p.renews)}")
    s = p.subject
    lines += ["[case.subject]", f"id = {_q(s.id)}", f"residence = {_q(s.residence)}"]
    if s.nationality is not None:
        lines.append(f"nationality = {_q(s.nationality)}")
    if s.us_person is not None:
        lines.append(f"us_person = {'true' if s.us_person else 'false'}")
    if s.location is not None:
        lines.append(f"location = {_q(s.location)}")
    if p.prior is not None:
        lines += [
            "[case.prior_preservation]",
            f"order_id = {_q(p.prior.order_id)}",
            f"instrument = {_q(p.prior.instrument)}",
            f"issuer_jurisdiction = {_q(p.prior.issuer_jurisdiction)}",
            f"until = {_t(p.prior.until)}",
            f"extensions = {p.prior.extensions}",
        ]
    if p.objection is not None:
        lines += ["[case.objection]", f"by = {_q(p.objection.by)}", f"at = {_t(p.objection.at)}"]
    lines += ["[case.expect]", f"outcome = {_q(d.outcome)}", f"reason = {_q(d.reason)}", f"rule = {_q(d.rule)}"]
    if d.basis is not None:
        lines.append(f"basis = {_q(d.basis)}")
    return "\n".join(lines) + "\n"


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _t(moment: datetime) -> str:
    return isoformat(moment)
