"""Decision cases as data: ``tests/cases/*.toml``, readable and writable by a lawyer.

Each file holds one or more ``[[case]]`` tables::

    [[case]]
    name = "scenario 8: UK OPO via the Secretary of State, terrorism, non-US person"
    description = "free text"           # optional
    at = 2026-10-01                      # the decision time (default 2026-10-01, midnight UTC)
    stored = "us-east-1"                 # the region the data is stored in
    category = "content"                 # optional when the order asks for one category
    has_records = true                   # default true
    replayed = false                     # the order id was used before with another body

    [case.order]
    issuer = "gb-court"                  # authority ids from regions.toml
    served_by = "gb-sos"                 # default: the issuer
    instrument = "gb.opo"
    categories = ["content"]             # default: [category]
    subjects = ["acct-1"]                # default: [the subject's id]
    made_at = 2026-09-15                 # also: id, iat, exp, nbf, nondisclosure_until
    received_at = 2026-09-20             # when the order was served (default: `at`); `exp` is checked against it
    offence = { description = "terrorism", max_penalty_years = 14, committed_in = "GB" }
                                         # also `listed = true`: an offence listed in Art 5(4)(b)-(c) of
                                         # Regulation (EU) 2023/1543 committed by means of an information system
    emergency = "a reason"               # an emergency request
    renews = "earlier-order-id"
    signature = "valid"                  # or "invalid", "missing", "unregistered" (R0)

    [case.subject]
    id = "acct-1"                        # default "subject-1"
    residence = "GB"                     # required; also home_region, nationality, us_person, location

    [case.prior_preservation]            # the preservation a renewal names
    until = 2026-10-20                   # also: order_id, instrument, issuer_jurisdiction, extensions

    [case.objection]                     # recorded by the notified state
    by = "IE"                            # also: at (default: the case time), reason

    [case.expect]
    outcome = "disclose"                 # required
    reason = "agreement"                 # the deciding reason code
    # optional: basis, rule, reasons (all codes, in order), and obligations:
    # until, release_at, deadline, notify, objection_window_until,
    # motion_to_quash_by, disclose_within, nondisclosure_until, extensions.
    # A date matches any time that day (UTC); `false` means "must not be set".

Unknown keys are errors, reported with the file and key path. ``gateway policy
test`` and the pytest runner both use ``load_cases`` and ``run_case``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from gateway.errors import Finding, GatewayError
from gateway.findings import TableReader, to_datetime
from gateway.legal.engine import BASES, OUTCOMES, Decision, Engine, refusal
from gateway.legal.orders import Authority, Objection, Offence, Order, PriorPreservation
from gateway.model import Region, Subject, isoformat

DEFAULT_AT = datetime(2026, 10, 1, tzinfo=UTC)
SIGNATURES: tuple[str, ...] = ("valid", "invalid", "missing", "unregistered")
OBLIGATION_KEYS: tuple[str, ...] = (
    "until",
    "release_at",
    "deadline",
    "notify",
    "objection_window_until",
    "motion_to_quash_by",
    "disclose_within",
    "nondisclosure_until",
    "extensions",
)
_CASE_KEYS = ("name", "description", "at", "stored", "category", "has_records", "replayed", "order", "subject", "prior_preservation", "objection", "expect")
_ORDER_KEYS = (
    "id",
    "issuer",
    "served_by",
    "instrument",
    "categories",
    "subjects",
    "iat",
    "exp",
    "nbf",
    "made_at",
    "received_at",
    "nondisclosure_until",
    "offence",
    "emergency",
    "renews",
    "case_ref",
    "signature",
)
_SUBJECT_KEYS = ("id", "home_region", "residence", "nationality", "us_person", "location")
_OFFENCE_KEYS = ("description", "max_penalty_years", "committed_in", "listed")
_PRIOR_KEYS = ("order_id", "instrument", "issuer_jurisdiction", "until", "extensions")
_OBJECTION_KEYS = ("by", "at", "reason")
_EXPECT_KEYS = ("outcome", "reason", "basis", "rule", "reasons", *OBLIGATION_KEYS)


class CaseFileError(GatewayError):
    """A case file is unreadable or has unknown or malformed keys; ``findings`` lists each."""

    code = "case-file-invalid"

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__(f"{len(findings)} problem{'s' if len(findings) != 1 else ''} in the case files")

    def diagnostics(self) -> str:
        return "\n".join(str(f) for f in self.findings)


@dataclass(frozen=True)
class OrderSpec:
    """An order as a case writes it: authorities by id, resolved against the policy when run."""

    id: str
    issuer: str
    served_by: str
    instrument: str
    categories: tuple[str, ...]
    subjects: tuple[str, ...]
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    not_before: datetime | None = None
    made_at: datetime | None = None
    received_at: datetime | None = None
    nondisclosure_until: datetime | None = None
    offence: Offence | None = None
    emergency_reason: str | None = None
    renews: str | None = None
    case_ref: str | None = None
    signature: str = "valid"


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    source: str  # file path and index, for messages
    at: datetime
    stored: str
    category: str
    has_records: bool
    replayed: bool
    order: OrderSpec
    subject: Subject
    expect: Mapping[str, Any]
    prior_preservation: PriorPreservation | None = None
    objection: Objection | None = None


@dataclass(frozen=True)
class CaseResult:
    case: Case
    passed: bool
    expected: Mapping[str, Any]
    actual: Mapping[str, Any]
    diff_text: str
    decision: Decision | None = field(default=None, compare=False)


# --- loading ---------------------------------------------------------------------------


def load_cases(paths: Iterable[str | Path]) -> list[Case]:
    """Every case in the given files and directories (``*.toml``, sorted); ``CaseFileError`` on any problem."""
    findings: list[Finding] = []
    cases: list[Case] = []
    for path in _files(paths, findings):
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            findings.append(Finding(str(path), f"cannot read: {exc}"))
            continue
        except tomllib.TOMLDecodeError as exc:
            findings.append(Finding(str(path), f"not valid TOML: {exc}"))
            continue
        for key in raw:
            if key != "case":
                findings.append(Finding(f"{path}: {key}", "unknown key; a case file holds `[[case]]` tables"))
        items = raw.get("case", [])
        if not isinstance(items, list) or not items:
            findings.append(Finding(f"{path}: case", "must hold at least one `[[case]]` table"))
            continue
        for index, item in enumerate(items):
            case = _case(item, f"{path}: case[{index}]", findings)
            if case is not None:
                cases.append(case)
    names: dict[str, str] = {}
    for case in cases:
        if case.name in names:
            findings.append(Finding(case.source, f"case name `{case.name}` is also used by {names[case.name]}"))
        names[case.name] = case.source
    if findings:
        raise CaseFileError(findings)
    return cases


def _files(paths: Iterable[str | Path], findings: list[Finding]) -> list[Path]:
    out: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                findings.append(Finding(str(path), "holds no `*.toml` case files"))
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            findings.append(Finding(str(path), "no such file or directory"))
    return out


def _case(item: Any, path: str, findings: list[Finding]) -> Case | None:
    t = TableReader(item, path, findings, allowed=_CASE_KEYS)
    if not t.ok:
        return None
    before = len(findings)
    name = t.text("name", required=True, default="") or ""
    at = t.moment("at") or DEFAULT_AT
    stored = t.text("stored", required=True, default="") or ""

    s = t.sub("subject", required=True, allowed=_SUBJECT_KEYS)
    subject = Subject(id="subject-1", home_region=stored, residence="")
    if s is not None and s.ok:
        subject = Subject(
            id=s.text("id", default="subject-1") or "subject-1",
            home_region=s.text("home_region", default=stored) or stored,
            residence=s.text("residence", required=True, default="") or "",
            nationality=s.optional_text("nationality"),
            us_person=s.optional_flag("us_person"),
            location=s.optional_text("location"),
        )

    o = t.sub("order", required=True, allowed=_ORDER_KEYS)
    category = t.optional_text("category")
    order: OrderSpec | None = None
    if o is not None and o.ok:
        categories = tuple(o.str_list("categories", required=False)) or ((category,) if category else ())
        if category is None:
            if len(categories) == 1:
                category = categories[0]
            else:
                t.bad("category", "is required when the order asks for more than one category (or none)")
        offence: Offence | None = None
        off = o.sub("offence", allowed=_OFFENCE_KEYS)
        if off is not None and off.ok:
            offence = Offence(
                description=off.text("description", default="unspecified offence") or "unspecified offence",
                max_penalty_years=off.number("max_penalty_years"),
                committed_in=off.optional_text("committed_in"),
                listed=off.optional_flag("listed"),
            )
        emergency = o.table.get("emergency")
        if emergency is not None and not isinstance(emergency, str):
            o.bad("emergency", "must be a string: the emergency reason")
            emergency = None
        signature = o.text("signature", default="valid") or "valid"
        if signature not in SIGNATURES:
            o.bad("signature", f"unknown value `{signature}`; use {', '.join(f'`{s}`' for s in SIGNATURES)}")
        issuer = o.text("issuer", required=True, default="") or ""
        order = OrderSpec(
            id=o.text("id", default="order-1") or "order-1",
            issuer=issuer,
            served_by=o.text("served_by", default=issuer) or issuer,
            instrument=o.text("instrument", required=True, default="") or "",
            categories=categories,
            subjects=tuple(o.str_list("subjects", required=False)) if "subjects" in o.table else (subject.id,),
            issued_at=o.moment("iat"),
            expires_at=o.moment("exp"),
            not_before=o.moment("nbf"),
            made_at=o.moment("made_at"),
            received_at=o.moment("received_at"),
            nondisclosure_until=o.moment("nondisclosure_until"),
            offence=offence,
            emergency_reason=emergency,
            renews=o.optional_text("renews"),
            case_ref=o.optional_text("case_ref"),
            signature=signature,
        )

    prior: PriorPreservation | None = None
    p = t.sub("prior_preservation", allowed=_PRIOR_KEYS)
    if p is not None and p.ok:
        until = p.moment("until")
        if until is None and "until" not in p.table:
            p.bad("until", "is required")
        extensions = p.table.get("extensions", 0)
        if isinstance(extensions, bool) or not isinstance(extensions, int) or extensions < 0:
            p.bad("extensions", "must be zero or a positive whole number")
            extensions = 0
        prior = PriorPreservation(
            order_id=p.text("order_id", default=order.renews if order else "") or "",
            instrument=p.text("instrument", default=order.instrument if order else "") or "",
            issuer_jurisdiction=p.text("issuer_jurisdiction", default="") or "",  # filled from the issuer when run
            until=until or at,
            extensions=extensions,
        )

    objection: Objection | None = None
    ob = t.sub("objection", allowed=_OBJECTION_KEYS)
    if ob is not None and ob.ok:
        objection = Objection(by=ob.text("by", required=True, default="") or "", at=ob.moment("at") or at, reason=ob.text("reason", default="") or "")

    expect: dict[str, Any] = {}
    e = t.sub("expect", required=True, allowed=_EXPECT_KEYS)
    if e is not None and e.ok:
        outcome = e.text("outcome", required=True) or None
        if outcome is not None and outcome not in OUTCOMES:
            e.bad("outcome", f"unknown outcome `{outcome}`; use {', '.join(f'`{x}`' for x in OUTCOMES)}")
        basis = e.optional_text("basis")
        if basis is not None and basis not in BASES:
            e.bad("basis", f"unknown basis `{basis}`; use {', '.join(f'`{x}`' for x in BASES)}")
        for key in ("outcome", "reason", "basis", "rule"):
            if key in e.table:
                expect[key] = e.optional_text(key)
        if "reasons" in e.table:
            expect["reasons"] = tuple(e.str_list("reasons", required=False))
        for key in OBLIGATION_KEYS:
            if key not in e.table:
                continue
            value = e.table[key]
            if value is False:
                expect[key] = None
            elif key == "notify":
                expect[key] = e.optional_text(key)
            elif key == "extensions":
                if isinstance(value, bool) or not isinstance(value, int):
                    e.bad(key, "must be a whole number")
                expect[key] = value
            elif isinstance(value, datetime):
                expect[key] = to_datetime(value)
            elif isinstance(value, date):
                expect[key] = value
            else:
                e.bad(key, "must be a date, a date-time or `false`")

    if len(findings) != before or order is None:
        return None
    return Case(
        name=name,
        description=t.text("description", default="") or "",
        source=path,
        at=at,
        stored=stored,
        category=category or "",
        has_records=t.flag("has_records", default=True),
        replayed=t.flag("replayed", default=False),
        order=order,
        subject=subject,
        expect=expect,
        prior_preservation=prior,
        objection=objection,
    )


# --- running ---------------------------------------------------------------------------


def run_case(case: Case, engine: Engine, regions: Mapping[str, Region]) -> CaseResult:
    """Decide a case with the compiled policy and compare the decision with its expectation."""
    problems: list[str] = []
    policy = engine.policy
    region = regions.get(case.stored)
    if region is None:
        problems.append(f"unknown region `{case.stored}` in `stored`")
    spec = case.order
    issuer = policy.authorities.get(spec.issuer)
    served_by = policy.authorities.get(spec.served_by)
    decision: Decision | None = None

    # R0, simulated: the order service checks the signature before the engine runs.
    if spec.signature == "unregistered":
        decision = refusal("unverified-authority", "R0.authority", f"no registered key for `{spec.served_by}`", order_id=spec.id, trace=True)
    elif spec.signature in ("invalid", "missing"):
        what = "is not signed" if spec.signature == "missing" else "has a signature that does not verify"
        decision = refusal("bad-signature", "R0.signature", f"the order {what} with the key of `{spec.served_by}`", order_id=spec.id, trace=True)
    else:
        if issuer is None:
            problems.append(f"unknown authority `{spec.issuer}` in `order.issuer`")
        if served_by is None:
            problems.append(f"unknown authority `{spec.served_by}` in `order.served_by`")
    if problems:
        return CaseResult(case, False, dict(case.expect), {}, "\n".join([f"{case.name} ({case.source})", *problems]))

    if decision is None:
        assert issuer is not None and served_by is not None and region is not None
        order, prior = order_of(case, issuer, served_by)
        decision = decide_case(case, engine, order, region, prior, trace=True)
    return compare(case, decision)


def decide_case(case: Case, engine: Engine, order: Order, region: Region, prior: PriorPreservation | None, *, trace: bool) -> Decision:
    """The engine's decision for a case, given the order and prior preservation ``order_of`` built."""
    return engine.decide(
        order,
        case.subject,
        region,
        case.category,
        now=case.at,
        has_records=case.has_records,
        replayed=case.replayed,
        objection=case.objection,
        prior_preservation=prior,
        trace=trace,
    )


def order_of(case: Case, issuer: Authority, served_by: Authority) -> tuple[Order, PriorPreservation | None]:
    """The verified order a case describes, and the preservation its renewal names (issuer's jurisdiction filled in)."""
    spec = case.order
    order = Order(
        id=spec.id,
        issuer=issuer,
        served_by=served_by,
        instrument=spec.instrument,
        subjects=spec.subjects,
        categories=spec.categories,
        issued_at=spec.issued_at or case.at,
        expires_at=spec.expires_at,
        not_before=spec.not_before,
        made_at=spec.made_at,
        offence=spec.offence,
        emergency_reason=spec.emergency_reason,
        nondisclosure_until=spec.nondisclosure_until,
        case_ref=spec.case_ref,
        renews=spec.renews,
        received_at=spec.received_at,
    )
    prior = case.prior_preservation
    if prior is not None and not prior.issuer_jurisdiction:
        prior = PriorPreservation(prior.order_id, prior.instrument, issuer.jurisdiction, prior.until, prior.extensions)
    return order, prior


def compare(case: Case, decision: Decision) -> CaseResult:
    """The case's expectation against a decision: what differs, in words."""
    actual = actual_of(decision)
    expected = dict(case.expect)
    diffs: list[str] = []
    for key, want in expected.items():
        got = actual.get(key)
        if isinstance(want, date) and not isinstance(want, datetime):
            same = isinstance(got, datetime) and got.date() == want
        else:
            same = got == want
        if not same:
            diffs.append(f"  {key}: expected {_show(want)}, got {_show(got)}")
    passed = not diffs
    lines = [f"{case.name} ({case.source})"]
    if diffs:
        lines.append("differs from the expectation:")
        lines.extend(diffs)
    lines.append(f"decision: {decision.outcome}{' (' + decision.basis + ')' if decision.basis else ''} by {decision.rule}")
    for reason in decision.reasons:
        lines.append(f"  reason {reason.code} [{reason.rule}]: {reason.detail}")
    for key, value in decision.obligations.to_json().items():
        lines.append(f"  {key}: {value}")
    if decision.trace:
        lines.append("trace:")
        lines.extend(f"  {line}" for line in decision.trace)
    return CaseResult(case, passed, expected, actual, "\n".join(lines), decision)


def actual_of(decision: Decision) -> dict[str, Any]:
    o = decision.obligations
    return {
        "outcome": decision.outcome,
        "reason": decision.reason,
        "basis": decision.basis,
        "rule": decision.rule,
        "reasons": tuple(r.code for r in decision.reasons),
        "until": o.until,
        "release_at": o.release_at,
        "deadline": o.deadline,
        "notify": o.notify,
        "objection_window_until": o.objection_window_until,
        "motion_to_quash_by": o.motion_to_quash_by,
        "disclose_within": o.disclose_within,
        "nondisclosure_until": o.nondisclosure_until,
        "extensions": o.extensions,
    }


def _show(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, datetime):
        return f"`{isoformat(value)}`"
    if isinstance(value, tuple):
        return "[" + ", ".join(f"`{v}`" for v in value) + "]"
    return f"`{value}`"
