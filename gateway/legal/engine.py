"""The disclosure engine: one legal order, one subject, one storage region, one category.

Pure: no I/O, no clock reads, no logging. The time (``now``) and everything the
engine cannot know by itself (whether records exist, whether the order id was
replayed, a recorded objection, the preservation a renewal names) are passed in.

The rule families run in a fixed order, first match wins (R0, the signature, is
checked before the engine; ``refusal`` builds its decisions in the same shape):

- R1 form validity            (refuse, or route-mlat for a party not bound); ``exp`` is
                              checked against when the order was served, not decided
- R2 preservation             (preserve until the instrument's TTL)
- R1b legal process           (refuse: a request that cannot compel, outside an emergency,
                              from the storage country's own authority where no voluntary
                              rule answers that country's authorities)
- R3 the category ladder      (refuse), then no records -> ``no-data``
- R4 emergency requests       (disclose with basis emergency, or legal-review)
- R5 jurisdiction             a. agreement channels (a grant channel for data stored
                              outside the agreement's parties yields to that place's
                              blocking rules)  b. same jurisdiction
                              c. extraterritorial conflict  d. blocking rules
                              e. voluntary disclosure  f. no agreement
- R6 objections               (a recorded objection turns a hold into refuse)

R1's checks and R5's steps are tables (``_FORM``, ``_JURISDICTION``) of small
functions named for what they check, walked in order: a rule id in a decision
or a trace leads to its function in one hop.

Every country-specific fact (which instrument reaches what, who is bound, which
agreement covers which storage place, which law blocks what) is configuration
(``gateway.legal.policy``); the engine knows only predicates. Deny is the
default: an order the rules cannot place is routed to MLAT (``no-agreement``)
or refused, never disclosed.
"""

from __future__ import annotations

import calendar
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from gateway.legal.orders import Objection, Order, PriorPreservation
from gateway.legal.policy import Channel, Instrument, LegalPolicy, OffenceRule, PreservationRule
from gateway.model import Reason, Region, Subject, isoformat, quick_init

# The outcome vocabulary (PRODUCT.md). Deny-side outcomes are listed last.
DISCLOSE = "disclose"
HOLD = "hold"
PRESERVE = "preserve"
ROUTE_MLAT = "route-mlat"
LEGAL_REVIEW = "legal-review"
REFUSE = "refuse"
NO_DATA = "no-data"
OUTCOMES: tuple[str, ...] = (DISCLOSE, HOLD, PRESERVE, ROUTE_MLAT, LEGAL_REVIEW, REFUSE, NO_DATA)

COMPELLED = "compelled"
VOLUNTARY = "voluntary"
EMERGENCY = "emergency"
BASES: tuple[str, ...] = (COMPELLED, VOLUNTARY, EMERGENCY)

# Characters that make a subject identifier non-specific (a pattern, not an account).
_WILDCARDS = frozenset("*?%")


_ChannelEntry = tuple[Channel, datetime | None, str, str, tuple[str, ...], frozenset[str]]


@quick_init
@dataclass(frozen=True, slots=True)
class Obligations:
    """What a decision obliges the provider to do, and by when (all UTC)."""

    deadline: datetime | None = None  # legal-review: the case must be decided by
    release_at: datetime | None = None  # hold: disclose then, unless an objection is recorded
    until: datetime | None = None  # preserve: legal hold until
    notify: str | None = None  # jurisdiction to notify (the enforcing state)
    objection_window_until: datetime | None = None  # the notified state may object until
    motion_to_quash_by: datetime | None = None  # last day to move to quash or modify
    disclose_within: datetime | None = None  # disclose no later than
    nondisclosure_until: datetime | None = None  # customer notice barred until (from the order)
    extensions: int | None = None  # preserve: extensions granted so far, including this one

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is not None:
                out[name] = isoformat(value) if isinstance(value, datetime) else value
        return out


NO_OBLIGATIONS = Obligations()


@quick_init
@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one (order, subject, region, category), with its reasons.

    ``reasons[0]`` is the deciding reason; ``rule`` is the rule that decided
    (``R5.same-jurisdiction``, ``R5.agreement.uk-us``...). ``trace`` explains
    every rule considered, and is empty unless the caller asked for it.
    """

    outcome: str
    basis: str | None
    reasons: tuple[Reason, ...]
    obligations: Obligations
    rule: str
    trace: tuple[str, ...] = ()
    order_id: str = ""
    subject: str = ""
    region: str = ""
    category: str = ""

    @property
    def reason(self) -> str:
        return self.reasons[0].code if self.reasons else ""

    def to_json(self) -> dict[str, object]:
        return {
            "order": self.order_id,
            "subject": self.subject,
            "region": self.region,
            "category": self.category,
            "outcome": self.outcome,
            "basis": self.basis,
            "rule": self.rule,
            "reasons": [{"code": r.code, "rule": r.rule, "detail": r.detail} for r in self.reasons],
            "obligations": self.obligations.to_json(),
            "trace": list(self.trace),
        }


def refusal(
    code: str,
    rule: str,
    detail: str = "",
    *,
    order_id: str = "",
    subject: str = "",
    region: str = "",
    category: str = "",
    trace: bool = False,
) -> Decision:
    """A refusal in the engine's shape, for checks made outside it (R0: signature, authority)."""
    return Decision(
        outcome=REFUSE,
        basis=None,
        reasons=(Reason(code, rule, detail),),
        obligations=NO_OBLIGATIONS,
        rule=rule,
        trace=(f"{rule}: {REFUSE} ({code}): {detail}",) if trace else (),
        order_id=order_id,
        subject=subject,
        region=region,
        category=category,
    )


def last_day_of_months_beginning_with(day: date, months: int) -> date:
    """The last day of the period of ``months`` calendar months beginning with ``day`` (that day included).

    The period ends on the day before the corresponding date ``months`` later:
    beginning with 15 March, 3 months end on 14 June. Where the later month has
    no corresponding date (beginning with 30 November), the period ends on that
    month's last day (28 or 29 February), as the corresponding-date rule does.
    """
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    month_end = calendar.monthrange(year, month)[1]
    if day.day > month_end:
        return date(year, month, month_end)
    return date(year, month, day.day) - timedelta(days=1)


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months later; the day is clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = moment.day if moment.day <= 28 else min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


# The time given to the R1.improper-service check alone, which reads none.
_NO_TIME = datetime.min.replace(tzinfo=UTC)


def _when(moment: datetime | None) -> str:
    return isoformat(moment) if moment is not None else "never"


class _ConfigLike(Protocol):
    """What the engine needs of ``gateway.config.Config``."""

    @property
    def legal(self) -> LegalPolicy: ...

    @property
    def regions(self) -> Mapping[str, Region]: ...


class Engine:
    """A ``LegalPolicy`` compiled into lookup tables: built once, used for every decision.

    Build it from the policy (``Engine(config.legal, regions=config.regions)``)
    or from the whole config (``Engine(config)``); ``regions`` is needed only to
    pass region ids to ``decide`` instead of ``Region`` objects.
    """

    def __init__(self, policy: LegalPolicy | _ConfigLike, *, regions: Mapping[str, Region] | None = None) -> None:
        if not isinstance(policy, LegalPolicy):
            regions = policy.regions if regions is None else regions
            policy = policy.legal
        self.policy = policy
        self.regions: Mapping[str, Region] = dict(regions or {})
        self.rank: Mapping[str, int] = {c: i for i, c in enumerate(policy.categories)}
        top = len(policy.categories) - 1
        self.reach: Mapping[str, int] = {i.id: (self.rank[i.reaches] if i.reaches is not None else top) for i in policy.instruments.values()}
        self.emergency_reach: Mapping[str, int] = {i.id: self.rank[i.emergency.reaches] for i in policy.instruments.values() if i.emergency.reaches is not None}
        self.competence: Mapping[tuple[str, str], int] = {
            (i.id, kind): self.rank[cap] for i in policy.instruments.values() for kind, cap in i.competence.items()
        }
        self.enforcing_state: Mapping[str, str] = {instrument: e.jurisdiction for e in policy.establishments.values() for instrument in e.receives}
        # per instrument: the channels naming it, each with its agreement's start and name, the rule
        # it decides as, and the jurisdictions whose persons it may not target (in the order checked)
        channels: dict[str, list[_ChannelEntry]] = {}
        for agreement in policy.agreements.values():
            for channel in agreement.channels:
                not_person_of = tuple(sorted(channel.targeting.not_person_of)) if channel.targeting is not None else ()
                entry = (channel, agreement.in_force_from, agreement.name, f"R5.agreement.{channel.agreement}", not_person_of, agreement.parties)
                for instrument in channel.instruments:
                    channels.setdefault(instrument, []).append(entry)
        self.channels: Mapping[str, tuple[_ChannelEntry, ...]] = {k: tuple(v) for k, v in channels.items()}
        self.blocking = tuple(policy.blocking.values())
        self.voluntary = tuple((rule, self.rank[rule.up_to]) for rule in policy.voluntary)
        e = policy.emergency
        self.emergency_foreign_rank = self.rank[e.foreign_up_to] if e.foreign_up_to is not None else -1
        self._named_lists: dict[tuple[str, ...], bool] = {}  # see _names_accounts

    # -- public API --------------------------------------------------------------------

    def check_order(self, order: Order, *, now: datetime, replayed: bool = False, trace: bool = False) -> Decision | None:
        """R1 checks that need no subject or category; a refusal for the whole order, or None."""
        lines: list[str] | None = [] if trace else None
        meta = (order.id, "", "", "")
        instrument = self.policy.instruments.get(order.instrument)
        if instrument is None:
            decided: Decision | None = _unknown_instrument(order, lines, meta)
        else:
            decided = self._form(_Run(order, instrument, now, None, None, replayed, self.policy.review_days, lines, meta))
        return decided if decided is None or lines is None else replace(decided, trace=tuple(lines))

    def check_service(self, order: Order, *, trace: bool = False) -> Decision | None:
        """R1.improper-service alone: a refusal when the signing authority (``kid``) may not serve for the issuer (``iss``), or None.

        The issuer's order ids are its own: intake asks this before it claims an id, so an order
        signed by an authority that may not serve for the issuer never touches the issuer's ids.
        """
        instrument = self.policy.instruments.get(order.instrument)
        if instrument is None:
            return None  # the instrument check (R1.instrument) refuses it
        lines: list[str] | None = [] if trace else None
        run = _Run(order, instrument, _NO_TIME, None, None, False, self.policy.review_days, lines, (order.id, "", "", ""))
        decided = self._walk((_SERVICE,), run)
        return decided if decided is None or lines is None else replace(decided, trace=tuple(lines))

    def decide(
        self,
        order: Order,
        subject: Subject | None,
        region: Region | str | None,
        category: str,
        *,
        now: datetime,
        has_records: bool = True,
        replayed: bool = False,
        objection: Objection | None = None,
        prior_preservation: PriorPreservation | None = None,
        trace: bool = False,
        subject_id: str | None = None,
    ) -> Decision:
        """Decide one (order, subject, storage region, category).

        ``subject`` is None for an account the gateway does not know (give its
        id as ``subject_id``); such a subject has no records, so a valid order
        ends in ``no-data`` (a preservation order is still placed). ``region`` is
        the region the subject's data is stored in, as a ``Region`` or an id.
        """
        lines: list[str] | None = [] if trace else None
        who = subject.id if subject is not None else (subject_id or "")
        place: Region | None
        named = isinstance(region, str)
        if named:
            place = self.regions.get(region)
            region_id = region
        else:
            place = region
            region_id = region.id if region is not None else ""
        meta = (order.id, who, region_id, category)
        instrument = self.policy.instruments.get(order.instrument)
        if instrument is None:
            decided = _unknown_instrument(order, lines, meta)
        else:
            run = _Run(order, instrument, now, who, category, replayed, self.policy.review_days, lines, meta)
            # R1: form validity, then the storage place; R2 to R6 only for an order in due form
            found = self._form(run)
            if found is None and named and place is None:
                found = _refuse_unplaced(region_id, lines, meta)
            if found is None:
                found = self._substance(order, instrument, subject, place, category, now, has_records, objection, prior_preservation, run)
            decided = found
        return decided if lines is None else replace(decided, trace=tuple(lines))

    # -- R1 ----------------------------------------------------------------------------

    def _form(self, run: _Run) -> Decision | None:
        """R1: the instrument is defined (the caller looked it up), then every check of ``_FORM`` in order."""
        if run.lines is not None:
            run.lines.append(f"R1.instrument: ok: `{run.instrument.id}` ({run.instrument.name})")
        return self._walk(_FORM, run)

    def _names_accounts(self, subjects: tuple[str, ...]) -> bool:
        """Every subject names one account: not blank, no wildcard characters (and there is at least one).

        Remembered per list: an order is decided once per (subject, category), and its list may be thousands long.
        """
        named = self._named_lists.get(subjects)
        if named is None:
            named = bool(subjects) and all(name.strip() and _WILDCARDS.isdisjoint(name) for name in subjects)
            if len(self._named_lists) >= 1024:
                self._named_lists.clear()
            self._named_lists[subjects] = named
        return named

    def _walk(self, checks: tuple[_Check, ...], run: _Run) -> Decision | None:
        """Run ``checks`` in order: the first that finds a fault decides; each one passed is traced."""
        lines = run.lines
        for rule, check, passed in checks:
            fault = check(self, run)
            if fault is not None:
                outcome, code, detail = fault
                if lines is not None:
                    lines.append(f"{rule}: {outcome} ({code}): {detail}")
                return Decision(outcome, None, (Reason(code, rule, detail),), NO_OBLIGATIONS, rule, (), *run.meta)
            if lines is not None and passed is not None:
                why = passed(self, run)
                if why is not None:
                    lines.append(f"{rule}: ok: {why}")
        return None

    # -- R2 to R6 ----------------------------------------------------------------------

    def _substance(
        self,
        order: Order,
        instrument: Instrument,
        subject: Subject | None,
        region: Region | None,
        category: str,
        now: datetime,
        has_records: bool,
        objection: Objection | None,
        prior: PriorPreservation | None,
        run: _Run,
    ) -> Decision:
        policy = self.policy
        issuer_j = order.issuer.jurisdiction
        rank = self.rank[category]

        # R2: preservation instruments preserve, wherever the data is stored
        keep = instrument.preservation
        if keep is not None:
            return self._preserve(order, instrument, keep, prior, run)
        if run.lines is not None:
            run.note("R2.preservation: not a preservation instrument")

        # R1b: a request without compulsion, outside an emergency, from an authority of the storage
        # country whose own authorities no voluntary rule answers: legal process is required
        mode = instrument.emergency.mode
        emergency_request = mode == "required" or (mode == "request" and bool(order.emergency_reason))
        if region is not None and not instrument.compulsory and not emergency_request and issuer_j == region.jurisdiction:
            if not self._answers_own_authorities(region):
                return run.done(
                    REFUSE,
                    "legal-process-required",
                    "R1b.legal-process",
                    f"`{instrument.id}` cannot compel, and no voluntary rule lets the provider give authorities of `{region.jurisdiction}` "
                    "data stored there without legal process or an emergency",
                )
            if run.lines is not None:
                run.note(f"R1b.legal-process: ok: a voluntary rule answers authorities of `{region.jurisdiction}`")

        # R3: the ladder (an emergency request may reach further, if configured)
        reach = self.reach[instrument.id]
        if emergency_request:
            reach = self.emergency_reach.get(instrument.id, reach)
        if rank > reach:
            return run.done(
                REFUSE,
                "instrument-insufficient",
                "R3.ladder",
                f"`{instrument.id}` reaches `{policy.categories[reach]}` data, not `{category}`",
            )
        if run.lines is not None:
            run.note(f"R3.ladder: ok: `{instrument.id}` reaches `{policy.categories[reach]}` data")
        if subject is None or region is None:
            return run.done(NO_DATA, "no-records", "R3.no-data", "the gateway knows no such subject")
        if not has_records:
            return run.done(NO_DATA, "no-records", "R3.no-data", f"no `{category}` record of `{subject.id}` in `{region.id}`")

        # R4: emergency requests (instruments that cannot compel)
        if emergency_request:
            return self._emergency(order, region, category, rank, run)
        if run.lines is not None:
            run.note("R4.emergency: not an emergency request")

        # R5: jurisdiction, the steps of _JURISDICTION in order, first match wins
        for step in _JURISDICTION:
            decided = step(self, run, subject, region, category)
            if decided is not None:
                break
        else:
            raise AssertionError("R5.no-agreement decides every order the steps before it leave")
        return self._objection(decided, objection, run)

    def _preserve(self, order: Order, instrument: Instrument, keep: PreservationRule, prior: PriorPreservation | None, run: _Run) -> Decision:
        """R2: a new preservation, or the renewal of an earlier one."""
        fresh = Obligations(until=run.received + timedelta(days=keep.ttl_days), extensions=0, nondisclosure_until=run.nondisclosure)
        if order.renews is None:
            return run.done(PRESERVE, "preservation", "R2.preservation", f"`{instrument.id}` preserves for {keep.ttl_days} days", obligations=fresh)
        if prior is None or prior.instrument != instrument.id or prior.issuer_jurisdiction != order.issuer.jurisdiction:
            return run.done(
                REFUSE,
                "unknown-preservation",
                "R2.preservation",
                f"`{order.renews}` is not an earlier `{instrument.id}` preservation by `{order.issuer.jurisdiction}`",
            )
        if prior.until <= run.received:
            return run.done(
                PRESERVE,
                "preservation",
                "R2.preservation",
                f"`{prior.order_id}` lapsed at {_when(prior.until)}; preserved afresh for {keep.ttl_days} days",
                obligations=fresh,
            )
        if prior.extensions >= keep.max_extensions:
            return run.done(
                REFUSE,
                "extensions-exhausted",
                "R2.preservation",
                f"`{prior.order_id}` was extended {prior.extensions} time(s); `{instrument.id}` allows {keep.max_extensions}",
            )
        return run.done(
            PRESERVE,
            "preservation-extended",
            "R2.preservation",
            f"`{prior.order_id}` extended by {keep.extension_days} days",
            obligations=Obligations(
                until=prior.until + timedelta(days=keep.extension_days),
                extensions=prior.extensions + 1,
                nondisclosure_until=run.nondisclosure,
            ),
        )

    def _answers_own_authorities(self, region: Region) -> bool:
        """Whether any voluntary rule lets the provider answer requests of the storage country's own authorities."""
        return any(rule.to in ("domestic", "any") and (region.jurisdiction in rule.stored_in or region.id in rule.stored_in) for rule, _ in self.voluntary)

    def _emergency(self, order: Order, region: Region, category: str, rank: int, run: _Run) -> Decision:
        """R4: an emergency request, from the storage country's own authority or a foreign one.

        The domestic rule applies only where the storage place is in ``domestic_in``;
        the storage country's own authorities elsewhere are decided like foreign ones.
        """
        e = self.policy.emergency
        issuer_j = order.issuer.jurisdiction
        stored_j = region.jurisdiction
        own = issuer_j == stored_j
        if own and (stored_j in e.domestic_in or region.id in e.domestic_in):
            if e.domestic == DISCLOSE:
                return run.done(
                    DISCLOSE,
                    "emergency-request",
                    "R4.emergency",
                    f"emergency request from the storage country `{stored_j}`: {order.emergency_reason}",
                    basis=EMERGENCY,
                    obligations=run.plain(),
                )
            return run.done(
                LEGAL_REVIEW,
                "emergency-domestic",
                "R4.emergency",
                f"the policy sends emergency requests from `{stored_j}` for its own data to review",
                obligations=run.review(hours=e.review_hours),
            )
        if own and run.lines is not None:
            run.note(f"R4.emergency: `{stored_j}` is not among the storage places whose own authorities the domestic rule decides for")
        reviewed_place = stored_j in e.foreign_review_stored_in or region.id in e.foreign_review_stored_in
        if rank <= self.emergency_foreign_rank and not reviewed_place:
            return run.done(
                DISCLOSE,
                "emergency-request",
                "R4.emergency",
                f"emergency request from `{issuer_j}` for `{category}` data stored in `{stored_j}`: {order.emergency_reason}",
                basis=EMERGENCY,
                obligations=run.plain(),
            )
        why = f"data stored in `{stored_j}`" if reviewed_place else f"`{category}` data"
        whose = "the storage country's own authority" if own else "a foreign authority"
        return run.done(
            LEGAL_REVIEW,
            "emergency-foreign",
            "R4.emergency",
            f"emergency request from `{issuer_j}` ({whose}) for {why}: the policy sends it to review",
            obligations=run.review(hours=e.review_hours),
        )

    def _channels(self, run: _Run, subject: Subject, region: Region, category: str) -> Decision | None:
        """R5.a: agreement channels naming the instrument and covering the storage place.

        A grant channel decides; a restrict channel decides only when one of its
        conditions is violated, else it records a motion-to-quash window on ``run``.
        """
        order, instrument, now = run.order, run.instrument, run.now
        issuer_j = order.issuer.jurisdiction
        stored_j = region.jurisdiction
        considered = False
        for channel, in_force_from, agreement_name, rule, not_person_of, parties in self.channels.get(instrument.id, ()):
            if issuer_j not in channel.issuers or (stored_j not in channel.stored_in and region.id not in channel.stored_in):
                continue
            considered = True
            if in_force_from is not None and now < in_force_from:
                if run.lines is not None:
                    run.note(f"{rule}: skipped: not in force until {_when(in_force_from)}")
                continue
            if channel.effect == "grant" and stored_j not in parties:
                # the agreement binds its parties only: a third country's law that forbids the disclosure decides first
                if run.lines is not None:
                    run.note(f"{rule}: `{stored_j}` is not a party to {agreement_name}: its blocking rules are checked first")
                blocked = self._blocking(instrument, issuer_j, region, category, run)
                if blocked is not None:
                    return blocked
            violation, unknown = self._conditions(channel, not_person_of, order, subject, run, rule)
            if violation is not None:
                code, detail = violation
                outcome = channel.on_violation
                return run.done(outcome, code, rule, detail, obligations=run.review() if outcome == LEGAL_REVIEW else NO_OBLIGATIONS)
            if channel.effect == "restrict":
                if run.lines is not None:
                    run.note(f"{rule}: ok: {channel.id} restricts but does not decide" + (f" ({unknown})" if unknown else ""))
                if channel.motion_to_quash_days is not None and category not in channel.motion_to_quash_categories:
                    if run.lines is not None:
                        quashable = ", ".join(f"`{c}`" for c in sorted(channel.motion_to_quash_categories))
                        run.note(f"{rule}: no motion to quash: only orders for {quashable} data carry one")
                elif channel.motion_to_quash_days is not None:
                    if self._person_of(subject, issuer_j) is False and subject.residence != issuer_j:
                        quash_by = run.received + timedelta(days=channel.motion_to_quash_days)
                        run.quash_by = quash_by
                        run.quash_reasons = (
                            Reason(
                                "motion-to-quash-available",
                                rule,
                                f"the subject is not a person of `{issuer_j}` and does not live there, and `{stored_j}` is party to "
                                f"{agreement_name}: a motion to quash may be filed within {channel.motion_to_quash_days} days of service",
                            ),
                        )
                    else:
                        if run.lines is not None:
                            run.note(f"{rule}: no motion to quash: the subject is, or may be, a person of `{issuer_j}`, or lives there")
                continue
            if unknown is not None:
                return run.done(LEGAL_REVIEW, "targeting-unverified", rule, f"{channel.id}: {unknown}", obligations=run.review())
            return self._grant(channel, order, instrument, subject, category, run, rule)
        if not considered and run.lines is not None:
            run.note(f"R5.agreement: no channel covers `{instrument.id}` from `{issuer_j}` to data stored in `{stored_j}`")
        return None

    def _conditions(
        self, channel: Channel, not_person_of: tuple[str, ...], order: Order, subject: Subject, run: _Run, rule: str
    ) -> tuple[tuple[str, str] | None, str | None]:
        """A channel's conditions: a definite violation as (code, detail), else an unknown fact or None."""
        unknown: str | None = None
        targeting = channel.targeting
        if targeting is not None:
            for place in not_person_of:
                status = self._person_of(subject, place)
                if status is True:
                    return ("targeting-restriction", f"{channel.id} may not target a person of `{place}`"), None
                if status is None and unknown is None:
                    unknown = f"whether the subject is a person of `{place}` is unknown"
            if targeting.not_located_in:
                if subject.location is None:
                    unknown = unknown or "the subject's location is unknown"
                elif subject.location in targeting.not_located_in:
                    return ("targeting-restriction", f"{channel.id} may not target a person located in `{subject.location}`"), None
        minimum = channel.min_max_penalty_years
        if minimum is not None:
            offence = order.offence
            years = offence.max_penalty_years if offence is not None else None
            if years is None or years < minimum:
                return (
                    "not-serious-crime",
                    f"{channel.id} covers offences punishable by at least {minimum:g} years; the order's offence carries {_years(years)}",
                ), None
        if run.lines is not None:
            run.note(f"{rule}: conditions of {channel.id} hold" + (f", but {unknown}" if unknown else ""))
        return None, unknown

    def _grant(self, channel: Channel, order: Order, instrument: Instrument, subject: Subject, category: str, run: _Run, rule: str) -> Decision:
        """A grant channel whose conditions hold: disclose, or hold while the enforcing state is notified."""
        emergency = instrument.emergency.mode == "own-procedure" and bool(order.emergency_reason)
        n = channel.notification
        issuer_j = order.issuer.jurisdiction
        detail = f"agreement:{channel.agreement}: `{instrument.id}` from `{issuer_j}` ({channel.id})"
        if n is not None and category in n.categories:
            offence = order.offence
            exempt = (
                n.exempt_when_offence_and_residence_in_issuing_state
                and offence is not None
                and offence.committed_in == issuer_j
                and subject.residence == issuer_j
            )
            if not exempt:
                notify = self.enforcing_state[instrument.id]
                if emergency and n.emergency_disclose_hours is not None:
                    window = run.received + timedelta(hours=n.emergency_objection_hours) if n.emergency_objection_hours else None
                    return run.done(
                        DISCLOSE,
                        "agreement",
                        rule,
                        f"{detail}; emergency: disclose within {n.emergency_disclose_hours} hours",
                        basis=COMPELLED,
                        more=(Reason("enforcing-state-notification", rule, f"`{notify}` is notified and may object for {n.emergency_objection_hours} hours"),),
                        obligations=Obligations(
                            disclose_within=run.received + timedelta(hours=n.emergency_disclose_hours),
                            notify=notify,
                            objection_window_until=window,
                            nondisclosure_until=run.nondisclosure,
                        ),
                    )
                release = run.received + timedelta(days=n.hold_days)
                return run.done(
                    HOLD,
                    "enforcing-state-notification",
                    rule,
                    f"`{category}` data: `{notify}` (the enforcing state) is notified and may object for {n.hold_days} days; "
                    f"{_why_notified(offence.committed_in if offence is not None else None, subject.residence, issuer_j)}",
                    more=(Reason("agreement", rule, detail),),
                    obligations=Obligations(release_at=release, notify=notify, objection_window_until=release, nondisclosure_until=run.nondisclosure),
                )
            detail += "; no notification: the offence was committed in the issuing state and the subject resides there"
        within: datetime | None = None
        if emergency and n is not None and n.emergency_disclose_hours is not None:
            within = run.received + timedelta(hours=n.emergency_disclose_hours)
        elif channel.disclose_within_days is not None:
            within = run.received + timedelta(days=channel.disclose_within_days)
        return run.done(
            DISCLOSE,
            "agreement",
            rule,
            detail,
            basis=COMPELLED,
            obligations=Obligations(disclose_within=within, nondisclosure_until=run.nondisclosure),
        )

    def _blocking(self, instrument: Instrument, issuer_j: str, region: Region, category: str, run: _Run) -> Decision | None:
        """R5.d: the first blocking rule of the storage place that applies to this issuer and category."""
        stored_j = region.jurisdiction
        compelled = instrument.compels in ("anywhere", "agreement")
        for rule in self.blocking:
            name = f"R5.blocking.{rule.id}"
            if stored_j not in rule.stored_in and region.id not in rule.stored_in:
                if run.lines is not None:
                    run.note(f"{name}: does not apply to data stored in `{stored_j}`")
                continue
            if category not in rule.categories:
                if run.lines is not None:
                    run.note(f"{name}: does not apply to `{category}` data")
                continue
            if issuer_j in rule.unless_issuer_in:
                if run.lines is not None:
                    run.note(f"{name}: does not apply to issuers of `{issuer_j}`")
                continue
            if compelled and instrument.conflict_objection_days is not None:
                return run.done(
                    LEGAL_REVIEW,
                    "third-country-conflict",
                    name,
                    f"`{instrument.id}` compels a disclosure that {rule.name} forbids; the provider may object within "
                    f"{instrument.conflict_objection_days} days",
                    more=(Reason(rule.reason, name, rule.legal_basis),),
                    obligations=run.review(days=instrument.conflict_objection_days),
                )
            outcome = rule.when_compelled if compelled else rule.when_not_compelled
            how = "compels" if compelled else "cannot compel"
            return run.done(
                outcome,
                rule.reason,
                name,
                f"`{instrument.id}` from `{issuer_j}` {how} disclosure of `{category}` data stored in `{stored_j}`: {rule.name}",
                obligations=run.review(days=rule.review_days) if outcome == LEGAL_REVIEW else NO_OBLIGATIONS,
            )
        return None

    def _voluntary(self, domestic: bool, region: Region, rank: int, run: _Run) -> Decision | None:
        """R5.b/e: the first voluntary-disclosure rule covering this direction, storage place and category."""
        wanted = "domestic" if domestic else "foreign"
        for rule, up_to in self.voluntary:
            name = f"R5.voluntary.{rule.id}"
            if rule.to not in (wanted, "any"):
                if run.lines is not None:
                    run.note(f"{name}: not for {wanted} authorities")
            elif region.jurisdiction not in rule.stored_in and region.id not in rule.stored_in:
                if run.lines is not None:
                    run.note(f"{name}: not for data stored in `{region.jurisdiction}`")
            elif rank > up_to:
                if run.lines is not None:
                    run.note(f"{name}: only up to `{rule.up_to}` data")
            else:
                return run.done(
                    DISCLOSE,
                    "voluntary-disclosure",
                    name,
                    f"policy `{rule.id}` lets the provider give {wanted} authorities `{rule.up_to}` data and below stored in `{region.jurisdiction}`",
                    basis=VOLUNTARY,
                    obligations=run.plain(),
                )
        return None

    def _objection(self, decided: Decision, objection: Objection | None, run: _Run) -> Decision:
        """R6: an objection by the notified state, in time, stops a hold (or an emergency disclosure)."""
        obligations = decided.obligations
        window = obligations.objection_window_until or obligations.release_at
        if objection is None:
            if window is not None and run.lines is not None:
                run.note(f"R6.objection: none recorded; `{obligations.notify}` may object until {_when(window)}")
            return decided
        if window is None or decided.outcome not in (HOLD, DISCLOSE):
            if run.lines is not None:
                run.note(f"R6.objection: ignored: the decision ({decided.outcome}) awaits no objection")
            return decided
        if objection.by != obligations.notify:
            if run.lines is not None:
                run.note(f"R6.objection: ignored: `{objection.by}` is not the notified state `{obligations.notify}`")
            return decided
        if objection.at > window:
            if run.lines is not None:
                run.note(f"R6.objection: ignored: made {_when(objection.at)}, after the window closed at {_when(window)}")
            return decided
        return run.done(
            REFUSE,
            "enforcing-state-objection",
            "R6.objection",
            f"`{objection.by}` objected at {_when(objection.at)}" + (f": {objection.reason}" if objection.reason else ""),
            more=decided.reasons,
            obligations=Obligations(notify=obligations.notify, nondisclosure_until=run.nondisclosure),
        )

    def _person_of(self, subject: Subject, jurisdiction: str) -> bool | None:
        """Whether the subject is a national or permanent resident of ``jurisdiction``; None if unknown.

        For the jurisdiction named by ``person_status_jurisdiction`` the subject's
        ``us_person`` flag decides (a national is always a person); for others,
        nationality: a known other nationality counts as not a person.
        """
        if subject.nationality == jurisdiction:
            return True
        if jurisdiction == self.policy.person_status_jurisdiction:
            return subject.us_person
        return None if subject.nationality is None else False


# --- R5: jurisdiction ---------------------------------------------------------------------
#
# The steps of R5 in order, walked by ``Engine._substance``: each decides, or returns None
# (and says why in the trace) to let the next one try. The last one always decides.

_Step = Callable[["Engine", "_Run", Subject, Region, str], "Decision | None"]


def _same_jurisdiction(e: Engine, run: _Run, subject: Subject, region: Region, category: str) -> Decision | None:
    """R5.b: the issuer asks for data stored in its own jurisdiction: compelled, or a domestic request the voluntary policy allows."""
    instrument, issuer_j, stored_j = run.instrument, run.order.issuer.jurisdiction, region.jurisdiction
    if issuer_j != stored_j:
        if run.lines is not None:
            run.note(f"R5.same-jurisdiction: no (`{issuer_j}` asks for data stored in `{stored_j}`)")
        return None
    if run.lines is not None:
        run.note("R5.extraterritorial, R5.blocking: not considered: same jurisdiction")
    if instrument.compulsory:
        return run.done(
            DISCLOSE,
            "same-jurisdiction",
            "R5.same-jurisdiction",
            f"`{instrument.id}` from `{issuer_j}` for data stored in `{stored_j}`",
            basis=COMPELLED,
            obligations=run.plain(),
        )
    return e._voluntary(True, region, e.rank[category], run) or run.done(
        REFUSE,
        "legal-process-required",
        "R5.same-jurisdiction",
        f"`{instrument.id}` cannot compel, and no voluntary rule covers `{category}` data stored in `{stored_j}` for its own authorities",
    )


def _extraterritorial(e: Engine, run: _Run, subject: Subject, region: Region, category: str) -> Decision | None:
    """R5.c: the issuer's law compels wherever the data is stored; the storage country's law may forbid it."""
    instrument = run.instrument
    if instrument.compels != "anywhere":
        if run.lines is not None:
            run.note(f"R5.extraterritorial: no (`{instrument.id}` compels `{instrument.compels}`)")
        return None
    x = e.policy.extraterritorial
    quash_by = run.quash_by
    return run.done(
        x.outcome,
        "extraterritorial-conflict",
        "R5.extraterritorial",
        f"`{instrument.id}` compels disclosure wherever the data is stored; it is stored in `{region.jurisdiction}`, whose law may forbid it",
        more=run.quash_reasons,
        obligations=Obligations(
            deadline=quash_by or run.received + timedelta(days=x.review_days or e.policy.review_days),
            motion_to_quash_by=quash_by,
            nondisclosure_until=run.nondisclosure,
        )
        if x.outcome == LEGAL_REVIEW
        else NO_OBLIGATIONS,
    )


def _blocking_rules(e: Engine, run: _Run, subject: Subject, region: Region, category: str) -> Decision | None:
    """R5.d: a blocking rule of the storage place."""
    return e._blocking(run.instrument, run.order.issuer.jurisdiction, region, category, run)


def _voluntary_abroad(e: Engine, run: _Run, subject: Subject, region: Region, category: str) -> Decision | None:
    """R5.e: a voluntary-disclosure rule for foreign authorities."""
    return e._voluntary(False, region, e.rank[category], run)


def _no_agreement(e: Engine, run: _Run, subject: Subject, region: Region, category: str) -> Decision:
    """R5.f: the default: no agreement, rule or policy lets the issuer obtain the data; mutual legal assistance."""
    return run.done(
        ROUTE_MLAT,
        "no-agreement",
        "R5.no-agreement",
        f"no agreement, rule or policy lets `{run.order.issuer.jurisdiction}` obtain `{category}` data stored in `{region.jurisdiction}`",
    )


# --- R1: form validity --------------------------------------------------------------------
#
# One small check per rule, walked in order by ``Engine._walk``; the first fault decides.
# A check returns a fault (outcome, reason code, detail) or None. Its ``passed`` partner
# says, for the trace only, why it passed (None: nothing to say). The instrument itself
# (R1.instrument) is looked up before the walk: every check reads it.

_Fault = tuple[str, str, str]


def _refuse(code: str, detail: str) -> _Fault:
    return (REFUSE, code, detail)


def _in_time(e: Engine, run: _Run) -> _Fault | None:
    """``exp`` (the execute-by date) against when the order was served, ``nbf`` against now.

    An order served in time stays valid while the provider complies, however late it is decided.
    """
    order = run.order
    if order.expires_at is not None and run.received >= order.expires_at:
        return _refuse("expired", f"the order was served at {_when(run.received)}, not before its execute-by date {_when(order.expires_at)}")
    if order.not_before is not None and run.now < order.not_before:
        return _refuse("not-yet-valid", f"the order is not valid before {_when(order.not_before)}")
    return None


def _in_time_passed(e: Engine, run: _Run) -> str:
    expires_at = run.order.expires_at
    return f"served at {_when(run.received)}, before its execute-by date {_when(expires_at)}" if expires_at is not None else "no expiry date"


def _regime_in_force(e: Engine, run: _Run) -> _Fault | None:
    """The instrument's regime applies to the order's date and to now."""
    start = run.instrument.in_force_from
    if start is not None:
        dated = run.order.made_at or run.order.issued_at or run.now
        if dated < start or run.now < start:
            return _refuse("regime-not-in-force", f"`{run.instrument.id}` applies from {_when(start)}; the order is dated {_when(dated)}")
    return None


def _regime_in_force_passed(e: Engine, run: _Run) -> str:
    instrument = run.instrument
    if instrument.in_force_from is None:
        return f"`{instrument.id}` has no start date"
    return f"`{instrument.id}` applies since {_when(instrument.in_force_from)}"


def _bound(e: Engine, run: _Run) -> _Fault | None:
    """The issuer's state takes part in the instrument; a state that does not goes through mutual legal assistance."""
    jurisdiction = run.order.issuer.jurisdiction
    if jurisdiction in run.instrument.not_bound:
        return (ROUTE_MLAT, "not-bound", f"`{jurisdiction}` is not bound by `{run.instrument.id}`; use mutual legal assistance")
    return None


def _bound_passed(e: Engine, run: _Run) -> str:
    return f"`{run.order.issuer.jurisdiction}` takes part in `{run.instrument.id}`"


def _issuer_may_issue(e: Engine, run: _Run) -> _Fault | None:
    """The instrument is issued by authorities of the issuer's state, and of the issuer's kind."""
    issuer, instrument = run.order.issuer, run.instrument
    if issuer.jurisdiction not in instrument.issuers:
        return _refuse("issuer-not-competent", f"`{instrument.id}` is not issued by authorities of `{issuer.jurisdiction}`")
    if issuer.kind not in instrument.kinds:
        return _refuse(
            "issuer-not-competent",
            f"`{issuer.id}` ({issuer.kind}) may not issue `{instrument.id}`; competent: {', '.join(sorted(instrument.kinds))}",
        )
    return None


def _category_ordered(e: Engine, run: _Run) -> _Fault | None:
    """The category decided is on the ladder and asked for by the order."""
    category = run.category
    if category is None:
        return None
    if category not in e.rank:
        return _refuse("unknown-category", f"category `{category}` is not on the ladder")
    if category not in run.order.categories:
        return _refuse("category-not-ordered", f"the order does not ask for `{category}` data")
    return None


def _issuer_reaches_category(e: Engine, run: _Run) -> _Fault | None:
    """The issuer's kind may order this category under the instrument (its competence cap)."""
    category = run.category
    if category is None:
        return None
    issuer = run.order.issuer
    cap = e.competence.get((run.instrument.id, issuer.kind))
    if cap is not None and e.rank[category] > cap:
        return _refuse(
            "issuer-not-competent",
            f"under `{run.instrument.id}` a {issuer.kind} may order `{e.policy.categories[cap]}` data at most, not `{category}`",
        )
    return None


def _issuer_passed(e: Engine, run: _Run) -> str:
    issuer = run.order.issuer
    for_category = f" for `{run.category}` data" if run.category else ""
    return f"`{issuer.id}` ({issuer.kind}, `{issuer.jurisdiction}`) may issue `{run.instrument.id}`{for_category}"


def _emergency_reason_given(e: Engine, run: _Run) -> _Fault | None:
    """An emergency-only instrument carries an emergency reason."""
    if run.instrument.emergency.mode == "required" and not run.order.emergency_reason:
        return _refuse("missing-claim", f"`{run.instrument.id}` needs an `emergency` reason")
    return None


def _offence_rule(e: Engine, run: _Run) -> OffenceRule | None:
    """The instrument's offence rule, where it applies to the category decided."""
    rule = run.instrument.offence
    if rule is None or run.category is None or e.rank[run.category] < e.rank[rule.required_from]:
        return None
    return rule


def _offence_named(e: Engine, run: _Run) -> _Fault | None:
    """The offence, for the categories where the instrument requires one, and serious enough."""
    rule = _offence_rule(e, run)
    if rule is None:
        return None
    instrument, category, offence = run.instrument, run.category, run.order.offence
    if offence is None:
        return _refuse("missing-claim", f"`{instrument.id}` for `{category}` data must name the `offence`")
    listed = rule.listed_qualifies and offence.listed is True
    if rule.min_max_penalty_years is not None and not listed:
        if offence.max_penalty_years is None:
            either = " or be marked `listed`" if rule.listed_qualifies else ""
            return _refuse("missing-claim", f"the offence must give `max_penalty_years`{either}")
        if offence.max_penalty_years < rule.min_max_penalty_years:
            return _refuse(
                "not-serious-crime",
                f"`{instrument.id}` for `{category}` data needs an offence punishable by at least "
                f"{rule.min_max_penalty_years:g} years"
                + (" or a listed offence" if rule.listed_qualifies else "")
                + f"; `{offence.description}` carries {offence.max_penalty_years:g}",
            )
    return None


def _offence_passed(e: Engine, run: _Run) -> str | None:
    rule = _offence_rule(e, run)
    if rule is None:
        needs_none = run.instrument.offence is not None and run.category is not None
        return f"`{run.instrument.id}` needs no offence for `{run.category}` data" if needs_none else None
    offence = run.order.offence
    assert offence is not None  # _offence_named refuses an order without one
    how = ", a listed offence: no minimum penalty" if rule.listed_qualifies and offence.listed is True else ""
    return f"offence `{offence.description}` ({_years(offence.max_penalty_years)}{how})"


def _accounts_named(e: Engine, run: _Run) -> _Fault | None:
    """Specific identifiers: named accounts, no wildcards; and the subject decided is one of them."""
    subjects = run.order.subjects
    if not e._names_accounts(subjects):
        return _refuse("no-specific-identifiers", "the order must name specific accounts, not a pattern")
    if run.subject_id is not None and run.subject_id not in subjects:
        return _refuse("subject-not-named", f"the order does not name `{run.subject_id}`")
    return None


def _accounts_named_passed(e: Engine, run: _Run) -> str:
    return f"{len(run.order.subjects)} account(s) named"


def _proper_service(e: Engine, run: _Run) -> _Fault | None:
    """The authority that served (signed) the order may serve this instrument for the issuer."""
    issuer, served_by, instrument = run.order.issuer, run.order.served_by, run.instrument
    service = instrument.service
    if served_by.jurisdiction != issuer.jurisdiction:
        return _refuse(
            "improper-service",
            f"served by `{served_by.id}` of `{served_by.jurisdiction}`, not an authority of the issuing state of `{issuer.id}`",
        )
    if service is not None and service.served_by_kind is not None:
        if served_by.kind != service.served_by_kind or (served_by.designated_for and instrument.id not in served_by.designated_for):
            return _refuse(
                "improper-service",
                f"`{instrument.id}` must be served by the {service.served_by_kind} designated for it, not by `{served_by.id}` ({served_by.kind})",
            )
    elif served_by.id != issuer.id and instrument.id not in served_by.designated_for:
        return _refuse("improper-service", f"`{served_by.id}` is not designated to serve `{instrument.id}` for `{issuer.id}`")
    return None


def _proper_service_passed(e: Engine, run: _Run) -> str:
    served_by = run.order.served_by
    return f"served by `{served_by.id}` ({served_by.kind})"


def _last_day_of_service(run: _Run) -> date | None:
    """The last day the order may be served, where its instrument sets a period from when it was made."""
    service = run.instrument.service
    if service is None or service.within_months_of_made is None or run.order.made_at is None:
        return None
    # whole days: the period of n months beginning with the day the order was made
    return last_day_of_months_beginning_with(run.order.made_at.date(), service.within_months_of_made)


def _served_in_time(e: Engine, run: _Run) -> _Fault | None:
    """Served within the instrument's period from when the order was made."""
    service = run.instrument.service
    if service is None or service.within_months_of_made is None:
        return None
    made_at = run.order.made_at
    if made_at is None:
        return _refuse("missing-claim", f"`{run.instrument.id}` must state when it was made (`made_at`)")
    last_day = _last_day_of_service(run)
    assert last_day is not None
    if run.received.date() > last_day:
        return _refuse(
            "served-too-late",
            f"made {made_at.date().isoformat()}, served {run.received.date().isoformat()}: the period of "
            f"{service.within_months_of_made} month(s) beginning with the day it was made ended on {last_day.isoformat()}",
        )
    return None


def _served_in_time_passed(e: Engine, run: _Run) -> str | None:
    last_day = _last_day_of_service(run)
    return None if last_day is None else f"served in time (the last day of service is {last_day.isoformat()})"


def _foreign_establishment(e: Engine, run: _Run) -> _Fault | None:
    """An instrument for cross-border use is addressed to an establishment in another state than the issuer's."""
    instrument = run.instrument
    if instrument.foreign_establishment_required:
        establishment = e.enforcing_state.get(instrument.id)
        if establishment is None or establishment == run.order.issuer.jurisdiction:
            return _refuse(
                "domestic-instrument-required",
                f"`{instrument.id}` is addressed to the provider's establishment in `{establishment}`, the issuer's own state; use a domestic order",
            )
    return None


def _foreign_establishment_passed(e: Engine, run: _Run) -> str | None:
    if not run.instrument.foreign_establishment_required:
        return None
    return f"addressed to the provider's establishment in `{e.enforcing_state.get(run.instrument.id)}`, another state"


def _new_order_id(e: Engine, run: _Run) -> _Fault | None:
    """The order id was not used before by this authority with a different body."""
    if run.replayed:
        return _refuse("replayed", f"order id `{run.order.id}` was already used by `{run.order.issuer.id}` with a different body")
    return None


def _new_order_id_passed(e: Engine, run: _Run) -> str:
    return f"order id `{run.order.id}` is new or identical"


_Check = tuple[str, Callable[["Engine", "_Run"], "_Fault | None"], Callable[["Engine", "_Run"], "str | None"] | None]

_SERVICE: _Check = ("R1.improper-service", _proper_service, _proper_service_passed)

# (rule, check, why it passed), in the order checked after R1.instrument.
_FORM: tuple[_Check, ...] = (
    ("R1.expired", _in_time, _in_time_passed),
    ("R1.regime-not-in-force", _regime_in_force, _regime_in_force_passed),
    ("R1.not-bound", _bound, _bound_passed),
    ("R1.issuer-not-competent", _issuer_may_issue, None),  # traced once the category cap is checked too
    ("R1.category", _category_ordered, None),
    ("R1.issuer-not-competent", _issuer_reaches_category, _issuer_passed),
    ("R1.emergency", _emergency_reason_given, None),
    ("R1.offence", _offence_named, _offence_passed),
    ("R1.no-specific-identifiers", _accounts_named, _accounts_named_passed),
    _SERVICE,
    ("R1.served-too-late", _served_in_time, _served_in_time_passed),
    ("R1.domestic-instrument-required", _foreign_establishment, _foreign_establishment_passed),
    ("R1.replayed", _new_order_id, _new_order_id_passed),
)


_JURISDICTION: tuple[_Step, ...] = (
    Engine._channels,  # a. agreement channels
    _same_jurisdiction,  # b.
    _extraterritorial,  # c.
    _blocking_rules,  # d.
    _voluntary_abroad,  # e.
    _no_agreement,  # f. (always decides)
)


def _unknown_instrument(order: Order, lines: list[str] | None, meta: tuple[str, str, str, str]) -> Decision:
    """R1.instrument: an order under an instrument the policy does not define is refused before any other check."""
    detail = f"instrument `{order.instrument}` is not defined in the policy"
    if lines is not None:
        lines.append(f"R1.instrument: {REFUSE} (unknown-instrument): {detail}")
    return Decision(REFUSE, None, (Reason("unknown-instrument", "R1.instrument", detail),), NO_OBLIGATIONS, "R1.instrument", (), *meta)


class _Run:
    """Per-decision working state: the order and what it is decided for, the service time, the trace, the pending motion to quash."""

    __slots__ = (
        "category",
        "instrument",
        "lines",
        "meta",
        "nondisclosure",
        "now",
        "order",
        "quash_by",
        "quash_reasons",
        "received",
        "replayed",
        "review_days",
        "subject_id",
    )

    def __init__(
        self,
        order: Order,
        instrument: Instrument,
        now: datetime,
        subject_id: str | None,
        category: str | None,
        replayed: bool,
        review_days: int,
        lines: list[str] | None,
        meta: tuple[str, str, str, str],
    ) -> None:
        self.order = order
        self.instrument = instrument
        self.now = now
        self.subject_id = subject_id  # None: R1 for the whole order (no subject, no category)
        self.category = category
        self.replayed = replayed
        self.meta = meta
        self.received = order.received_at or now  # when the order was served
        self.nondisclosure = order.nondisclosure_until
        self.review_days = review_days
        self.lines = lines
        self.quash_by: datetime | None = None
        self.quash_reasons: tuple[Reason, ...] = ()

    def note(self, text: str) -> None:
        if self.lines is not None:
            self.lines.append(text)

    def plain(self) -> Obligations:
        return NO_OBLIGATIONS if self.nondisclosure is None else Obligations(nondisclosure_until=self.nondisclosure)

    def review(self, *, days: int | None = None, hours: int | None = None) -> Obligations:
        span = timedelta(hours=hours) if hours is not None else timedelta(days=days or self.review_days)
        return Obligations(deadline=self.received + span, nondisclosure_until=self.nondisclosure)

    def done(
        self,
        outcome: str,
        code: str,
        rule: str,
        detail: str,
        *,
        basis: str | None = None,
        more: tuple[Reason, ...] = (),
        obligations: Obligations = NO_OBLIGATIONS,
    ) -> Decision:
        if self.lines is not None:
            self.lines.append(f"{rule}: decides {outcome}{' (' + basis + ')' if basis else ''} ({code}): {detail}")
        return Decision(outcome, basis, (Reason(code, rule, detail), *more), obligations, rule, (), *self.meta)


def _refuse_unplaced(region: str, lines: list[str] | None, meta: tuple[str, str, str, str]) -> Decision:
    detail = f"region `{region}` is not configured; the engine cannot place the data"
    if lines is not None:
        lines.append(f"R1.region: {REFUSE} (unknown-region): {detail}")
    return Decision(REFUSE, None, (Reason("unknown-region", "R1.region", detail),), NO_OBLIGATIONS, "R1.region", (), *meta)


def _why_notified(committed_in: str | None, residence: str, issuer_j: str) -> str:
    where = f"was committed in `{committed_in}`" if committed_in else "has no stated place"
    return f"the offence {where} and the subject resides in `{residence}`, not both in the issuing state `{issuer_j}`"


def _years(years: float | None) -> str:
    return "no stated maximum penalty" if years is None else f"{years:g} years"


_ENGINES: weakref.WeakKeyDictionary[LegalPolicy, Engine] = weakref.WeakKeyDictionary()


def compile_policy(policy: LegalPolicy) -> Engine:
    """The compiled engine for a policy (memoised per policy object)."""
    engine = _ENGINES.get(policy)
    if engine is None:
        engine = _ENGINES[policy] = Engine(policy)
    return engine


def decide(
    order: Order,
    subject: Subject | None,
    region: Region | str | None,
    category: str,
    *,
    policy: LegalPolicy | Engine,
    now: datetime,
    has_records: bool = True,
    replayed: bool = False,
    objection: Objection | None = None,
    prior_preservation: PriorPreservation | None = None,
    trace: bool = False,
) -> Decision:
    """Decide one (order, subject, storage region, category). See the module docstring."""
    engine = policy if isinstance(policy, Engine) else compile_policy(policy)
    return engine.decide(
        order,
        subject,
        region,
        category,
        now=now,
        has_records=has_records,
        replayed=replayed,
        objection=objection,
        prior_preservation=prior_preservation,
        trace=trace,
    )


def rule_ids(policy: LegalPolicy) -> tuple[str, ...]:
    """Every rule a decision under ``policy`` can name as the one that decided, in the order the rules run.

    R0 (the signature and the authority key) is checked before the engine, by ``refusal``'s callers.
    """
    return (
        "R0.authority",
        "R0.signature",
        "R1.instrument",
        *dict.fromkeys(rule for rule, _, _ in _FORM),
        "R1.region",
        "R2.preservation",
        "R1b.legal-process",
        "R3.ladder",
        "R3.no-data",
        "R4.emergency",
        *(f"R5.agreement.{a}" for a in policy.agreements),
        "R5.same-jurisdiction",
        "R5.extraterritorial",
        *(f"R5.blocking.{b}" for b in policy.blocking),
        *(f"R5.voluntary.{v.id}" for v in policy.voluntary),
        "R5.no-agreement",
        "R6.objection",
    )
