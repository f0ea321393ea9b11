"""The legal policy: ``regions.toml``'s legal tables parsed into frozen objects.

``parse_legal`` reads ``authorities``, ``instruments``, ``instrument_templates``,
``agreements``, ``blocking`` and ``disclosure``, records every problem as a
``Finding`` with its key path (``instruments."eu.epoc".reaches: unknown
category `contnet` ``) instead of stopping at the first, and returns a
best-effort ``LegalPolicy``. The caller raises ``ConfigError`` when findings
is not empty; the engine trusts a policy parsed without findings.

Every list of places is expanded here, once: bloc ids become their member
jurisdictions, so the engine only ever tests set membership of jurisdiction
codes (and region ids, where a ``stored_in`` list names a region). Nothing in
this module names a country, bloc or instrument: those are the data.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.errors import Finding
from gateway.findings import TableReader, options, quote
from gateway.legal.orders import Authority
from gateway.model import Bloc, Jurisdiction, Region, is_identifier

# The top-level tables of regions.toml this module reads (config.py treats them as known).
TABLES: tuple[str, ...] = ("authorities", "instruments", "instrument_templates", "agreements", "blocking", "disclosure", "invariants")

# Vocabularies of the schema. They describe kinds of thing, never a country.
AUTHORITY_KINDS: tuple[str, ...] = (
    "court",
    "judge",
    "investigating-judge",
    "prosecutor",
    "police",
    "agency",
    "designated-authority",
    "tribunal",
)
COMPELS: tuple[str, ...] = ("anywhere", "agreement", "own-jurisdiction", "nothing")
EMERGENCY_MODES: tuple[str, ...] = ("none", "request", "required", "own-procedure")
CHANNEL_EFFECTS: tuple[str, ...] = ("grant", "restrict")
ADVERSE_OUTCOMES: tuple[str, ...] = ("route-mlat", "legal-review", "refuse")
NOTIFY_TARGETS: tuple[str, ...] = ("enforcing-state",)
VOLUNTARY_TO: tuple[str, ...] = ("domestic", "foreign", "any")
EMERGENCY_DOMESTIC: tuple[str, ...] = ("disclose", "legal-review")
EXTRATERRITORIAL_OUTCOMES: tuple[str, ...] = ("legal-review", "route-mlat")
# The engine's outcome and basis vocabularies (``gateway.legal.engine.OUTCOMES``, ``BASES``), which invariants name.
DECISION_OUTCOMES: tuple[str, ...] = ("disclose", "hold", "preserve", "route-mlat", "legal-review", "refuse", "no-data")
DECISION_BASES: tuple[str, ...] = ("compelled", "voluntary", "emergency")

_CODE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*\Z")  # kebab-case reason codes
_RULE = re.compile(r"^R[0-9][0-9a-z]*(\.[A-Za-z0-9_-]+)*\Z")  # a rule id or family: R5, R5.agreement, R5.agreement.uk-us


# --- the policy objects ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreservationRule:
    ttl_days: int
    extension_days: int
    max_extensions: int


@dataclass(frozen=True, slots=True)
class ServiceRule:
    served_by_kind: str | None = None
    within_months_of_made: int | None = None


@dataclass(frozen=True, slots=True)
class OffenceRule:
    required_from: str  # category: orders for it or above must name an offence
    min_max_penalty_years: float | None = None
    listed_qualifies: bool = False  # an offence the order marks as listed (claim `offence.listed`) meets the threshold


@dataclass(frozen=True, slots=True)
class EmergencyRule:
    mode: str = "none"
    reaches: str | None = None  # replaces the instrument's reach for emergency requests


@dataclass(frozen=True, slots=True)
class Instrument:
    id: str
    name: str
    legal_basis: str
    issuer_places: tuple[str, ...]  # as written (jurisdictions and blocs)
    issuers: frozenset[str]  # expanded jurisdiction codes, `except` included
    not_bound: frozenset[str]  # expanded `except`
    kinds: frozenset[str]
    competence: Mapping[str, str]  # kind -> highest category that kind may order
    reaches: str | None  # None for preservation instruments
    preservation: PreservationRule | None
    compels: str
    emergency: EmergencyRule = EmergencyRule()
    in_force_from: datetime | None = None
    offence: OffenceRule | None = None
    service: ServiceRule | None = None
    foreign_establishment_required: bool = False
    conflict_objection_days: int | None = None
    template: str | None = None  # the template it was expanded from

    @property
    def compulsory(self) -> bool:
        return self.compels != "nothing"


@dataclass(frozen=True, slots=True)
class Targeting:
    not_person_of: frozenset[str] = frozenset()  # jurisdiction codes
    not_located_in: frozenset[str] = frozenset()  # jurisdiction codes


@dataclass(frozen=True, slots=True)
class Notification:
    categories: frozenset[str]
    notify: str  # "enforcing-state"
    hold_days: int
    exempt_when_offence_and_residence_in_issuing_state: bool = False
    emergency_disclose_hours: int | None = None
    emergency_objection_hours: int | None = None


@dataclass(frozen=True, slots=True)
class Channel:
    """One direction of an agreement: issuers → data stored in ``stored_in``."""

    agreement: str
    index: int
    issuers: frozenset[str]
    instruments: frozenset[str]
    stored_in: frozenset[str]  # jurisdiction codes and region ids
    effect: str  # grant | restrict
    min_max_penalty_years: float | None = None
    targeting: Targeting | None = None
    on_violation: str = "route-mlat"
    disclose_within_days: int | None = None
    motion_to_quash_days: int | None = None
    motion_to_quash_categories: frozenset[str] = frozenset()  # the categories whose orders carry the motion-to-quash window
    notification: Notification | None = None

    @property
    def id(self) -> str:
        return f"{self.agreement}.channels[{self.index}]"


@dataclass(frozen=True, slots=True)
class Agreement:
    id: str
    name: str
    kind: str
    legal_basis: str
    parties: frozenset[str]  # expanded jurisdiction codes
    in_force_from: datetime | None
    channels: tuple[Channel, ...]

    def binds(self, jurisdiction: str) -> bool:
        """Whether the agreement's law runs where the data is stored (its parties); a third country's does not yield to it."""
        return jurisdiction in self.parties


@dataclass(frozen=True, slots=True)
class BlockingRule:
    id: str
    name: str
    legal_basis: str
    stored_in: frozenset[str]  # jurisdiction codes and region ids
    unless_issuer_in: frozenset[str]  # jurisdiction codes
    categories: frozenset[str]
    reason: str
    when_compelled: str
    when_not_compelled: str
    review_days: int | None = None


@dataclass(frozen=True, slots=True)
class Establishment:
    id: str
    name: str
    jurisdiction: str
    receives: frozenset[str]  # instrument ids


@dataclass(frozen=True, slots=True)
class EmergencyPolicy:
    domestic: str = "legal-review"
    domestic_in: frozenset[str] = frozenset()  # storage places whose own authorities `domestic` decides for
    foreign_up_to: str | None = None  # highest category disclosed to foreign authorities; None: none
    foreign_review_stored_in: frozenset[str] = frozenset()
    review_hours: int = 2


@dataclass(frozen=True, slots=True)
class ExtraterritorialPolicy:
    outcome: str = "legal-review"
    review_days: int | None = None


@dataclass(frozen=True, slots=True)
class VoluntaryRule:
    id: str
    to: str  # domestic | foreign | any
    stored_in: frozenset[str]  # jurisdiction codes and region ids
    up_to: str  # highest category


@dataclass(frozen=True, slots=True)
class Invariant:
    """A property every decision of the policy must have: ``[invariants.<id>]``.

    Over the decisions in its scope (every selector that is set holds; an unset
    one admits everything), no outcome in ``forbid`` may be decided, unless the
    decision meets one of the ``unless`` conditions. ``gateway policy prove``
    checks it at every point of the decision space (``gateway.legal.invariants``).
    """

    id: str
    description: str
    forbid: frozenset[str]  # outcomes
    issuers: frozenset[str] | None = None  # the issuer's jurisdiction is one of these (None: any)
    issuers_outside: frozenset[str] | None = None  # ... is none of these
    foreign: bool | None = None  # the issuer's jurisdiction is not (True) / is (False) the storage jurisdiction
    stored: frozenset[str] | None = None  # the data is stored in one of these jurisdictions or regions
    stored_outside: frozenset[str] | None = None  # ... in none of these
    categories: frozenset[str] | None = None
    instruments: frozenset[str] | None = None  # instrument ids
    preservation: bool | None = None  # only preservation instruments (True) or only others (False)
    defined: bool | None = None  # only instruments the policy defines (True) or does not (False)
    expired: bool | None = None  # only orders served at or after their execute-by date (True), or only others
    emergency: bool | None = None  # only orders with (True) or without (False) an emergency reason
    unless_rule: tuple[str, ...] = ()  # the deciding rule is one of these, or within one of these families
    unless_reason: frozenset[str] = frozenset()  # one of the decision's reasons is one of these codes
    unless_basis: frozenset[str] = frozenset()  # the decision's basis is one of these

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.id, "description": self.description}
        for name in self.__slots__:
            value = getattr(self, name)
            if name not in out and value is not None and value != () and value != frozenset():
                out[name] = sorted(value) if isinstance(value, frozenset) else list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True, eq=False)
class LegalPolicy:
    """The legal tables, validated and expanded. Identity-hashed (one per config)."""

    categories: tuple[str, ...] = ()
    authorities: Mapping[str, Authority] = field(default_factory=dict)
    instruments: Mapping[str, Instrument] = field(default_factory=dict)
    agreements: Mapping[str, Agreement] = field(default_factory=dict)
    blocking: Mapping[str, BlockingRule] = field(default_factory=dict)
    establishments: Mapping[str, Establishment] = field(default_factory=dict)
    emergency: EmergencyPolicy = EmergencyPolicy()
    extraterritorial: ExtraterritorialPolicy = ExtraterritorialPolicy()
    voluntary: tuple[VoluntaryRule, ...] = ()
    person_status_jurisdiction: str | None = None
    review_days: int = 10
    invariants: Mapping[str, Invariant] = field(default_factory=dict)

    def rank(self, category: str) -> int:
        return self.categories.index(category)


# --- parsing ------------------------------------------------------------------------


class _Context:
    """What every parser needs: the foundation config and the findings list."""

    def __init__(
        self,
        categories: tuple[str, ...],
        jurisdictions: Mapping[str, Jurisdiction],
        blocs: Mapping[str, Bloc],
        regions: Mapping[str, Region],
        findings: list[Finding],
    ) -> None:
        self.categories = categories
        self.jurisdictions = jurisdictions
        self.blocs = blocs
        self.regions = regions
        self.findings = findings
        self.members: dict[str, frozenset[str]] = {bloc: frozenset(code for code, j in jurisdictions.items() if bloc in j.blocs) for bloc in blocs}

    def problem(self, path: str, message: str) -> None:
        self.findings.append(Finding(path, message))

    def _known(self, t: TableReader, key: str, known: Collection[str], what: str, *, required: bool) -> str | None:
        """The text at ``key`` if it is one of ``known``; a finding otherwise."""
        if not t.has(key):
            t.seen.add(key)
            if required:
                t.problem(t.at(key), "is required")
            return None
        value = t.text(key)
        if value not in known:
            if isinstance(t.table.get(key), str):
                t.problem(t.at(key), f"unknown {what} `{value}`")
            return None
        return value

    def category(self, t: TableReader, key: str, *, required: bool = False) -> str | None:
        return self._known(t, key, self.categories, "category", required=required)

    def jurisdictions_in(self, t: TableReader, key: str, *, required: bool = False, regions: bool = False) -> frozenset[str]:
        """Expand a list of jurisdictions and blocs (and, if allowed, regions) to codes (and region ids)."""
        out: set[str] = set()
        for path, value in t.strings(key, required=required):
            if value in self.jurisdictions:
                out.add(value)
            elif value in self.blocs:
                out |= self.members[value]
            elif regions and value in self.regions:
                out.add(value)
            else:
                what = "jurisdiction, bloc or region" if regions else "jurisdiction or bloc"
                self.problem(path, f"unknown {what} `{value}`")
        return frozenset(out)

    def jurisdiction(self, t: TableReader, key: str, *, required: bool = False) -> str | None:
        return self._known(t, key, self.jurisdictions, "jurisdiction", required=required)


def parse_legal(
    raw: Mapping[str, Any],
    *,
    categories: tuple[str, ...],
    jurisdictions: Mapping[str, Jurisdiction],
    blocs: Mapping[str, Bloc],
    regions: Mapping[str, Region],
    findings: list[Finding],
) -> LegalPolicy:
    """Parse the legal tables of a whole regions.toml document; append every problem to ``findings``."""
    cx = _Context(tuple(categories), jurisdictions, blocs, regions, findings)

    instruments: dict[str, Instrument] = {}
    for instrument_id, t in _tables(raw, "instruments", cx):
        if not is_identifier(instrument_id):
            cx.problem(t.path, f"instrument id `{instrument_id}` is not a valid identifier")
        issuers, not_bound, places = _issuers(t, cx)
        instruments[instrument_id] = _instrument(t, instrument_id, places, issuers, not_bound, None, cx)
    for template_id, t in _tables(raw, "instrument_templates", cx):
        for instrument in _template(t, template_id, cx):
            if instrument.id in instruments:
                cx.problem(t.path, f"instrument `{instrument.id}` is defined in `instruments` too; leave its jurisdiction out with `not_for`")
                continue
            instruments[instrument.id] = instrument
    if not instruments and not any(f.path.startswith(("instruments", "instrument_templates")) for f in findings):
        cx.problem("instruments", "must define at least one instrument")

    authorities = {authority_id: _authority(t, authority_id, instruments, cx) for authority_id, t in _tables(raw, "authorities", cx)}
    if not authorities and not any(f.path.startswith("authorities") for f in findings):
        cx.problem("authorities", "must register at least one authority")

    disclosure = TableReader(raw.get("disclosure", {}), "disclosure", findings)
    establishments = _establishments(disclosure, instruments, cx)
    received: dict[str, str] = {}
    for establishment in establishments.values():
        for instrument_id in sorted(establishment.receives):
            if instrument_id in received:
                cx.problem(
                    f"disclosure.establishments.{quote(establishment.id)}.receives",
                    f"instrument `{instrument_id}` is already received by establishment `{received[instrument_id]}`",
                )
            received[instrument_id] = establishment.id
    for instrument in instruments.values():
        if instrument.foreign_establishment_required and instrument.id not in received:
            path = f"instrument_templates.{quote(instrument.template)}" if instrument.template else f"instruments.{quote(instrument.id)}"
            cx.problem(
                f"{path}.foreign_establishment_required",
                f"no establishment in `disclosure.establishments` receives `{instrument.id}`",
            )

    agreements = {agreement_id: _agreement(t, agreement_id, instruments, received, cx) for agreement_id, t in _tables(raw, "agreements", cx)}
    _check_overlaps(agreements, cx)
    blocking = {rule_id: _blocking(t, rule_id, cx) for rule_id, t in _tables(raw, "blocking", cx)}

    person_status = cx.jurisdiction(disclosure, "person_status_jurisdiction")
    review_days = disclosure.positive_int("review_days") or 10
    emergency = _emergency(disclosure.sub("emergency"), cx)
    extraterritorial = _extraterritorial(disclosure.sub("extraterritorial"))
    voluntary = _voluntary(disclosure, cx)
    disclosure.finish()
    invariants = {invariant_id: _invariant(t, invariant_id, instruments, cx) for invariant_id, t in _tables(raw, "invariants", cx)}

    return LegalPolicy(
        categories=tuple(categories),
        authorities=authorities,
        instruments=instruments,
        agreements=agreements,
        blocking=blocking,
        establishments=establishments,
        emergency=emergency,
        extraterritorial=extraterritorial,
        voluntary=voluntary,
        person_status_jurisdiction=person_status,
        review_days=review_days,
        invariants=invariants,
    )


def _tables(raw: Mapping[str, Any], key: str, cx: _Context) -> Iterator[tuple[str, TableReader]]:
    if key not in raw:
        return
    parent = TableReader(raw[key], quote(key), cx.findings)
    if not parent.ok:
        return
    for name, t in parent.entries():
        if t.ok:
            yield name, t


def _issuers(t: TableReader, cx: _Context) -> tuple[frozenset[str], frozenset[str], tuple[str, ...]]:
    places = tuple(v for _, v in t.strings("issuer_jurisdictions", required=True))
    issuers = cx.jurisdictions_in(t, "issuer_jurisdictions")
    not_bound = cx.jurisdictions_in(t, "except")
    for path, value in t.strings("except"):
        if value in cx.jurisdictions and value not in issuers:
            cx.problem(path, f"`{value}` is not among `issuer_jurisdictions`")
    return issuers, not_bound, places


def _instrument(
    t: TableReader,
    instrument_id: str,
    issuer_places: tuple[str, ...],
    issuers: frozenset[str],
    not_bound: frozenset[str],
    template: str | None,
    cx: _Context,
) -> Instrument:
    name = t.text("name", required=True, default=instrument_id)
    legal_basis = t.text("legal_basis")

    kinds: set[str] = set()
    for path, kind in t.strings("kinds", required=True):
        if kind not in AUTHORITY_KINDS:
            cx.problem(path, f"unknown authority kind `{kind}`; use {options(AUTHORITY_KINDS)}")
        else:
            kinds.add(kind)

    competence: dict[str, str] = {}
    caps = t.sub("competence")
    if caps is not None and caps.ok:
        for kind, value in caps.table.items():
            caps.seen.add(kind)
            path = caps.at(kind)
            if kind not in kinds:
                cx.problem(path, f"kind `{kind}` is not in `kinds`")
            elif not isinstance(value, str) or value not in cx.categories:
                cx.problem(path, f"unknown category `{value}`")
            else:
                competence[kind] = value

    reaches = cx.category(t, "reaches")
    preservation: PreservationRule | None = None
    p = t.sub("preservation")
    if p is not None and p.ok:
        ttl = p.positive_int("ttl_days", required=True)
        extension = p.positive_int("extension_days", allow_zero=True) or 0
        max_extensions = p.positive_int("max_extensions", allow_zero=True) or 0
        if max_extensions and not extension:
            cx.problem(p.at("extension_days"), "must be a positive number of days when `max_extensions` allows extensions")
        preservation = PreservationRule(ttl_days=ttl or 1, extension_days=extension, max_extensions=max_extensions)
        p.finish()
    if t.has("reaches") and t.has("preservation"):
        cx.problem(t.path, "give either `reaches` or `preservation`, not both")
    elif not t.has("reaches") and not t.has("preservation"):
        cx.problem(t.at("reaches"), "is required (or `preservation` for a preservation instrument)")

    compels = t.choice("compels", COMPELS, required=True, default="nothing") or "nothing"

    emergency = EmergencyRule()
    e = t.sub("emergency")
    if e is not None and e.ok:
        mode = e.choice("mode", EMERGENCY_MODES, required=True, default="none") or "none"
        emergency_reaches = cx.category(e, "reaches")
        if emergency_reaches is not None and mode not in ("request", "required"):
            cx.problem(e.at("reaches"), f"only applies to modes `request` and `required`, not `{mode}`")
        if mode in ("request", "required") and compels != "nothing":
            cx.problem(e.at("mode"), f'mode `{mode}` is for requests that cannot compel (`compels = "nothing"`)')
        emergency = EmergencyRule(mode=mode, reaches=emergency_reaches)
        e.finish()

    offence: OffenceRule | None = None
    o = t.sub("offence")
    if o is not None and o.ok:
        required_from = cx.category(o, "required_from", required=True)
        lowest = cx.categories[0] if cx.categories else ""
        offence = OffenceRule(
            required_from=required_from or lowest,
            min_max_penalty_years=o.positive_number("min_max_penalty_years"),
            listed_qualifies=o.flag("listed_qualifies"),
        )
        if offence.listed_qualifies and offence.min_max_penalty_years is None:
            cx.problem(o.at("listed_qualifies"), "only applies with `min_max_penalty_years`: a listed offence meets that threshold")
        o.finish()

    service: ServiceRule | None = None
    s = t.sub("service")
    if s is not None and s.ok:
        before = len(cx.findings)
        served_by_kind = s.choice("served_by_kind", AUTHORITY_KINDS)
        within = s.positive_int("within_months_of_made")
        if served_by_kind is None and within is None and len(cx.findings) == before:
            cx.problem(s.path, "must set `served_by_kind` or `within_months_of_made`")
        service = ServiceRule(served_by_kind=served_by_kind, within_months_of_made=within)
        s.finish()

    instrument = Instrument(
        id=instrument_id,
        name=name,
        legal_basis=legal_basis,
        issuer_places=issuer_places,
        issuers=issuers,
        not_bound=not_bound,
        kinds=frozenset(kinds),
        competence=competence,
        reaches=reaches if preservation is None else None,
        preservation=preservation,
        compels=compels,
        emergency=emergency,
        in_force_from=t.moment("in_force_from"),
        offence=offence,
        service=service,
        foreign_establishment_required=t.flag("foreign_establishment_required"),
        conflict_objection_days=t.positive_int("conflict_objection_days"),
        template=template,
    )
    t.finish()
    return instrument


def _template(t: TableReader, template_id: str, cx: _Context) -> list[Instrument]:
    if not is_identifier(template_id) or "." in template_id:
        cx.problem(t.path, f"template id `{template_id}` must be an identifier without dots")
    t.seen.add("for")
    targets: set[str] = set()
    if t.table.get("for") == "all":
        targets = set(cx.jurisdictions)
    else:
        targets = set(cx.jurisdictions_in(t, "for", required=True))
    targets -= cx.jurisdictions_in(t, "not_for")
    for key in ("issuer_jurisdictions", "except"):
        if t.has(key):
            t.seen.add(key)
            cx.problem(t.at(key), "is not used in a template: each copy is issued by its own jurisdiction (`for`)")
    # Parse the shared keys once, then copy per jurisdiction (findings reported once).
    prototype = _instrument(t, f"*.{template_id}", (), frozenset(), frozenset(), template_id, cx)
    out: list[Instrument] = []
    for code in sorted(targets):
        out.append(
            Instrument(
                id=f"{code.lower()}.{template_id}",
                name=f"{cx.jurisdictions[code].name} {prototype.name}",
                legal_basis=prototype.legal_basis,
                issuer_places=(code,),
                issuers=frozenset({code}),
                not_bound=frozenset(),
                kinds=prototype.kinds,
                competence=prototype.competence,
                reaches=prototype.reaches,
                preservation=prototype.preservation,
                compels=prototype.compels,
                emergency=prototype.emergency,
                in_force_from=prototype.in_force_from,
                offence=prototype.offence,
                service=prototype.service,
                foreign_establishment_required=prototype.foreign_establishment_required,
                conflict_objection_days=prototype.conflict_objection_days,
                template=template_id,
            )
        )
    return out


def _authority(t: TableReader, authority_id: str, instruments: Mapping[str, Instrument], cx: _Context) -> Authority:
    if not is_identifier(authority_id):
        cx.problem(t.path, f"authority id `{authority_id}` is not a valid identifier")
    designated: set[str] = set()
    for path, instrument_id in t.strings("designated_for"):
        if instrument_id not in instruments:
            cx.problem(path, f"unknown instrument `{instrument_id}`")
        designated.add(instrument_id)
    authority = Authority(
        id=authority_id,
        name=t.text("name", required=True, default=authority_id),
        jurisdiction=cx.jurisdiction(t, "jurisdiction", required=True) or "",
        kind=t.choice("kind", AUTHORITY_KINDS, required=True, default="") or "",
        public_key=t.text("public_key", required=True),
        designated_for=frozenset(designated),
    )
    t.finish()
    return authority


def _establishments(disclosure: TableReader, instruments: Mapping[str, Instrument], cx: _Context) -> dict[str, Establishment]:
    out: dict[str, Establishment] = {}
    parent = disclosure.sub("establishments")
    if parent is None or not parent.ok:
        return out
    for establishment_id, t in parent.entries():
        if not t.ok:
            continue
        receives: set[str] = set()
        for path, instrument_id in t.strings("receives", required=True):
            if instrument_id not in instruments:
                cx.problem(path, f"unknown instrument `{instrument_id}`")
            receives.add(instrument_id)
        out[establishment_id] = Establishment(
            id=establishment_id,
            name=t.text("name", required=True, default=establishment_id),
            jurisdiction=cx.jurisdiction(t, "jurisdiction", required=True) or "",
            receives=frozenset(receives),
        )
        t.finish()
    return out


def _agreement(
    t: TableReader,
    agreement_id: str,
    instruments: Mapping[str, Instrument],
    received: Mapping[str, str],
    cx: _Context,
) -> Agreement:
    if not is_identifier(agreement_id):
        cx.problem(t.path, f"agreement id `{agreement_id}` is not a valid identifier")
    parties = cx.jurisdictions_in(t, "parties", required=True)
    name = t.text("name", required=True, default=agreement_id)
    kind = t.text("kind", required=True)
    legal_basis = t.text("legal_basis")
    in_force_from = t.moment("in_force_from")
    channels: list[Channel] = []
    t.seen.add("channels")
    raw_channels = t.table.get("channels")
    if not isinstance(raw_channels, list) or not raw_channels:
        cx.problem(t.at("channels"), "must list at least one channel (`[[agreements.<id>.channels]]`)")
        raw_channels = []
    for index, item in enumerate(raw_channels):
        c = TableReader(item, f"{t.at('channels')}[{index}]", cx.findings)
        if c.ok:
            channels.append(_channel(c, agreement_id, index, parties, instruments, received, cx))
    agreement = Agreement(
        id=agreement_id,
        name=name,
        kind=kind,
        legal_basis=legal_basis,
        parties=parties,
        in_force_from=in_force_from,
        channels=tuple(channels),
    )
    t.finish()
    return agreement


def _channel(
    c: TableReader,
    agreement_id: str,
    index: int,
    parties: frozenset[str],
    instruments: Mapping[str, Instrument],
    received: Mapping[str, str],
    cx: _Context,
) -> Channel:
    issuers = cx.jurisdictions_in(c, "issuers", required=True)
    anywhere = c.table.get("stored_in") == "all"
    if anywhere:
        # data stored anywhere: the order binds the provider wherever it keeps the data
        c.seen.add("stored_in")
        stored_in = frozenset(cx.jurisdictions)
    else:
        stored_in = cx.jurisdictions_in(c, "stored_in", required=True, regions=True)
    for key, places in (("issuers", issuers), ("stored_in", frozenset() if anywhere else stored_in)):
        outside = sorted(p for p in places if p in cx.jurisdictions and p not in parties)
        if outside and parties:
            cx.problem(c.at(key), f"{', '.join(f'`{p}`' for p in outside)} not among the agreement's `parties`")
    named: set[str] = set()
    for path, instrument_id in c.strings("instruments", required=True):
        instrument = instruments.get(instrument_id)
        if instrument is None:
            cx.problem(path, f"unknown instrument `{instrument_id}`")
            continue
        named.add(instrument_id)
        if issuers and not (instrument.issuers & issuers):
            cx.problem(path, f"instrument `{instrument_id}` is not issued by any of the channel's `issuers`")
    effect = c.choice("effect", CHANNEL_EFFECTS, required=True, default="restrict") or "restrict"

    targeting: Targeting | None = None
    tg = c.sub("targeting")
    if tg is not None and tg.ok:
        targeting = Targeting(
            not_person_of=cx.jurisdictions_in(tg, "not_person_of"),
            not_located_in=cx.jurisdictions_in(tg, "not_located_in"),
        )
        tg.finish()

    notification: Notification | None = None
    n = c.sub("notification")
    if n is not None and n.ok:
        notified: set[str] = set()
        for path, category in n.strings("categories", required=True):
            if category not in cx.categories:
                cx.problem(path, f"unknown category `{category}`")
            notified.add(category)
        notify = n.choice("notify", NOTIFY_TARGETS, required=True, default="enforcing-state") or "enforcing-state"
        notification = Notification(
            categories=frozenset(notified),
            notify=notify,
            hold_days=n.positive_int("hold_days", required=True) or 1,
            exempt_when_offence_and_residence_in_issuing_state=n.flag("exempt_when_offence_and_residence_in_issuing_state"),
            emergency_disclose_hours=n.positive_int("emergency_disclose_hours"),
            emergency_objection_hours=n.positive_int("emergency_objection_hours"),
        )
        n.finish()
        if effect != "grant":
            cx.problem(c.at("notification"), "only a `grant` channel can hold data for a notification")
        for instrument_id in sorted(named):
            if instrument_id not in received:
                cx.problem(
                    n.at("notify"),
                    f"the enforcing state of `{instrument_id}` is unknown: no establishment in `disclosure.establishments` receives it",
                )

    channel = Channel(
        agreement=agreement_id,
        index=index,
        issuers=issuers,
        instruments=frozenset(named),
        stored_in=stored_in,
        effect=effect,
        min_max_penalty_years=c.positive_number("min_max_penalty_years"),
        targeting=targeting,
        on_violation=c.choice("on_violation", ADVERSE_OUTCOMES, default="route-mlat") or "route-mlat",
        disclose_within_days=c.positive_int("disclose_within_days"),
        motion_to_quash_days=c.positive_int("motion_to_quash_days"),
        motion_to_quash_categories=_categories(c, "motion_to_quash_categories", cx),
        notification=notification,
    )
    if channel.motion_to_quash_days is not None and effect != "restrict":
        cx.problem(c.at("motion_to_quash_days"), "only a `restrict` channel carries a motion-to-quash window")
    if channel.motion_to_quash_days is not None and not c.has("motion_to_quash_categories"):
        cx.problem(c.at("motion_to_quash_categories"), "is required with `motion_to_quash_days`: the categories whose orders may be quashed")
    elif c.has("motion_to_quash_categories") and channel.motion_to_quash_days is None:
        cx.problem(c.at("motion_to_quash_categories"), "only applies with `motion_to_quash_days`")
    if effect == "restrict" and targeting is None and channel.min_max_penalty_years is None and channel.motion_to_quash_days is None:
        cx.problem(c.path, "a `restrict` channel must set `targeting`, `min_max_penalty_years` or `motion_to_quash_days`")
    c.finish()
    return channel


def _categories(t: TableReader, key: str, cx: _Context) -> frozenset[str]:
    """A list of categories from the ladder; unknown ones are findings."""
    out: set[str] = set()
    for path, category in t.strings(key):
        if category not in cx.categories:
            cx.problem(path, f"unknown category `{category}`")
        out.add(category)
    return frozenset(out)


def _check_overlaps(agreements: Mapping[str, Agreement], cx: _Context) -> None:
    """Two grant channels must never cover the same instrument, issuer and storage place."""
    seen: dict[tuple[str, str, str], str] = {}
    for agreement in agreements.values():
        for channel in agreement.channels:
            if channel.effect != "grant":
                continue
            for instrument in channel.instruments:
                for issuer in channel.issuers:
                    for place in channel.stored_in:
                        key = (instrument, issuer, place)
                        if key in seen and seen[key] != channel.id:
                            cx.problem(
                                f"agreements.{quote(agreement.id)}.channels[{channel.index}]",
                                f"overlaps `{seen[key]}` for `{instrument}` from `{issuer}` to data stored in `{place}`",
                            )
                            return
                        seen[key] = channel.id


def _blocking(t: TableReader, rule_id: str, cx: _Context) -> BlockingRule:
    if not is_identifier(rule_id):
        cx.problem(t.path, f"blocking rule id `{rule_id}` is not a valid identifier")
    categories: set[str] = set()
    if t.has("categories"):
        for path, category in t.strings("categories", required=True):
            if category not in cx.categories:
                cx.problem(path, f"unknown category `{category}`")
            categories.add(category)
    else:
        categories = set(cx.categories)
    reason = t.text("reason", required=True)
    if reason and not _CODE.match(reason):
        cx.problem(t.at("reason"), f"`{reason}` is not a kebab-case reason code")
    rule = BlockingRule(
        id=rule_id,
        name=t.text("name", required=True, default=rule_id),
        legal_basis=t.text("legal_basis"),
        stored_in=cx.jurisdictions_in(t, "stored_in", required=True, regions=True),
        unless_issuer_in=cx.jurisdictions_in(t, "unless_issuer_in"),
        categories=frozenset(categories),
        reason=reason or rule_id,
        when_compelled=t.choice("when_compelled", ADVERSE_OUTCOMES, default="legal-review") or "legal-review",
        when_not_compelled=t.choice("when_not_compelled", ADVERSE_OUTCOMES, default="route-mlat") or "route-mlat",
        review_days=t.positive_int("review_days"),
    )
    t.finish()
    return rule


def _emergency(t: TableReader | None, cx: _Context) -> EmergencyPolicy:
    if t is None or not t.ok:
        return EmergencyPolicy()
    if t.has("domestic") and not t.has("domestic_in"):
        cx.problem(t.at("domestic_in"), "is required with `domestic`: the storage places whose own authorities it decides for")
    policy = EmergencyPolicy(
        domestic=t.choice("domestic", EMERGENCY_DOMESTIC, default="legal-review") or "legal-review",
        domestic_in=cx.jurisdictions_in(t, "domestic_in", regions=True),
        foreign_up_to=cx.category(t, "foreign_up_to"),
        foreign_review_stored_in=cx.jurisdictions_in(t, "foreign_review_stored_in", regions=True),
        review_hours=t.positive_int("review_hours") or 2,
    )
    t.finish()
    return policy


def _extraterritorial(t: TableReader | None) -> ExtraterritorialPolicy:
    if t is None or not t.ok:
        return ExtraterritorialPolicy()
    policy = ExtraterritorialPolicy(
        outcome=t.choice("outcome", EXTRATERRITORIAL_OUTCOMES, default="legal-review") or "legal-review",
        review_days=t.positive_int("review_days"),
    )
    t.finish()
    return policy


def _voluntary(disclosure: TableReader, cx: _Context) -> tuple[VoluntaryRule, ...]:
    disclosure.seen.add("voluntary")
    items = disclosure.table.get("voluntary", [])
    if not isinstance(items, list):
        cx.problem(disclosure.at("voluntary"), "must be a list of tables (`[[disclosure.voluntary]]`)")
        return ()
    rules: list[VoluntaryRule] = []
    ids: set[str] = set()
    for index, item in enumerate(items):
        t = TableReader(item, f"disclosure.voluntary[{index}]", cx.findings)
        if not t.ok:
            continue
        rule_id = t.text("id", required=True, default=f"voluntary-{index}")
        if rule_id in ids:
            cx.problem(t.at("id"), f"rule id `{rule_id}` is used twice")
        ids.add(rule_id)
        rules.append(
            VoluntaryRule(
                id=rule_id,
                to=t.choice("to", VOLUNTARY_TO, required=True, default="foreign") or "foreign",
                stored_in=cx.jurisdictions_in(t, "stored_in", required=True, regions=True),
                up_to=cx.category(t, "up_to", required=True) or (cx.categories[0] if cx.categories else ""),
            )
        )
        t.finish()
    return tuple(rules)


_PLACE_KEYS = ("in", "outside")


def _invariant(t: TableReader, invariant_id: str, instruments: Mapping[str, Instrument], cx: _Context) -> Invariant:
    """``[invariants.<id>]``: forbid, the scope's selectors, and the ``unless`` conditions."""
    if not is_identifier(invariant_id):
        cx.problem(t.path, f"invariant id `{invariant_id}` is not a valid identifier")
    forbid: set[str] = set()
    for path, outcome in t.strings("forbid", required=True):
        if outcome not in DECISION_OUTCOMES:
            cx.problem(path, f"unknown outcome `{outcome}`; use {options(DECISION_OUTCOMES)}")
        forbid.add(outcome)

    issuers = issuers_outside = stored = stored_outside = None
    foreign: bool | None = None
    i = t.sub("issuers", allowed=(*_PLACE_KEYS, "foreign"))
    if i is not None and i.ok:
        issuers, issuers_outside = _places(i, cx, regions=False)
        foreign = i.optional_flag("foreign")
        if issuers is None and issuers_outside is None and foreign is None:
            cx.problem(i.path, "must set `in`, `outside` or `foreign`")
    s = t.sub("stored", allowed=_PLACE_KEYS)
    if s is not None and s.ok:
        stored, stored_outside = _places(s, cx, regions=True)
        if stored is None and stored_outside is None:
            cx.problem(s.path, "must set `in` or `outside`")

    categories = _categories(t, "categories", cx) if t.has("categories") else None
    named: frozenset[str] | None = None
    preservation = defined = None
    n = t.sub("instruments", allowed=("in", "preservation", "defined"))
    if n is not None and n.ok:
        if n.has("in"):
            listed = n.strings("in", required=True)
            named = frozenset(v for _, v in listed)
            for path, value in listed:
                if value not in instruments:
                    cx.problem(path, f"unknown instrument `{value}`")
        preservation = n.optional_flag("preservation")
        defined = n.optional_flag("defined")
        if named is None and preservation is None and defined is None:
            cx.problem(n.path, "must set `in`, `preservation` or `defined`")
        if defined is False and (named is not None or preservation is not None):
            cx.problem(n.at("defined"), "`defined = false` selects instruments the policy does not define: `in` and `preservation` cannot apply")
    expired = emergency = None
    o = t.sub("order", allowed=("expired", "emergency"))
    if o is not None and o.ok:
        expired, emergency = o.optional_flag("expired"), o.optional_flag("emergency")

    rules: list[str] = []
    reasons: set[str] = set()
    bases: set[str] = set()
    u = t.sub("unless", allowed=("rule", "reason", "basis"))
    if u is not None and u.ok:
        for path, rule in u.strings("rule"):
            if not _RULE.match(rule):
                cx.problem(path, f"`{rule}` is not a rule id (such as `R5.agreement` or `R5.blocking.<id>`)")
            rules.append(rule)
        for path, code in u.strings("reason"):
            if not _CODE.match(code):
                cx.problem(path, f"`{code}` is not a kebab-case reason code")
            reasons.add(code)
        for path, basis in u.strings("basis"):
            if basis not in DECISION_BASES:
                cx.problem(path, f"unknown basis `{basis}`; use {options(DECISION_BASES)}")
            bases.add(basis)
        if not (rules or reasons or bases) and not any(f.path.startswith(u.path) for f in cx.findings):
            cx.problem(u.path, "must set `rule`, `reason` or `basis`")

    invariant = Invariant(
        id=invariant_id,
        description=t.text("description", required=True, default=invariant_id),
        forbid=frozenset(forbid),
        issuers=issuers,
        issuers_outside=issuers_outside,
        foreign=foreign,
        stored=stored,
        stored_outside=stored_outside,
        categories=categories,
        instruments=named,
        preservation=preservation,
        defined=defined,
        expired=expired,
        emergency=emergency,
        unless_rule=tuple(rules),
        unless_reason=frozenset(reasons),
        unless_basis=frozenset(bases),
    )
    t.finish()
    return invariant


def _places(t: TableReader, cx: _Context, *, regions: bool) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """A selector's `in` and `outside` lists, expanded (blocs to their members); None where not set."""
    inside = cx.jurisdictions_in(t, "in", required=True, regions=regions) if t.has("in") else None
    outside = cx.jurisdictions_in(t, "outside", required=True, regions=regions) if t.has("outside") else None
    if inside is not None and outside is not None:
        cx.problem(t.path, "give `in` or `outside`, not both")
    return inside, outside
