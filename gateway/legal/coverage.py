"""What a set of decision cases exercises of a policy, and what none of them does (``gateway policy test --coverage``).

Pure. In the manner of ``opa test --coverage``, but over the policy's rules and
configuration entries rather than lines: each section lists the entries the
cases exercise and those none does.

- ``rules``: every rule that can decide (``engine.rule_ids``); a case exercises
  the rule that decided it.
- ``instruments``: those a registered authority may issue (a case names its
  authorities by id, so no case can order under any other); a case exercises
  the instrument its order names.
- ``authorities``: the order's issuer and the authority that served it.
- ``channels``: an agreement's channel is exercised by a case whose order falls
  under it (the instrument is listed, the issuer's jurisdiction is among its
  ``issuers``, the data is stored in its ``stored_in``), whether it decides or
  restricts.
- ``regions`` and ``categories``: where the case's data is stored, and its category.
- ``emergency``: the two branches of R4 (``disclosure.emergency``): ``domestic``
  (the storage country's own authority, where ``domestic_in`` lists it) and
  ``foreign`` (every other emergency request), by the cases R4 decided.
- ``invariants``: a case exercises an invariant when it lies in the invariant's
  scope (``gateway.legal.invariants.in_scope``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.legal.decision_cases import CaseResult
from gateway.legal.engine import rule_ids
from gateway.legal.invariants import in_scope
from gateway.legal.policy import LegalPolicy
from gateway.model import Region

SECTIONS: tuple[str, ...] = ("rules", "instruments", "authorities", "channels", "regions", "categories", "emergency", "invariants")


@dataclass(slots=True)
class Section:
    name: str
    entries: tuple[str, ...]  # everything there is to exercise, in the policy's order
    exercised: set[str] = field(default_factory=set)

    @property
    def missing(self) -> list[str]:
        return [e for e in self.entries if e not in self.exercised]

    @property
    def covered(self) -> list[str]:
        return [e for e in self.entries if e in self.exercised]


@dataclass(slots=True)
class Coverage:
    cases: int
    sections: list[Section]


def coverage(results: Iterable[CaseResult], policy: LegalPolicy, regions: Mapping[str, Region]) -> Coverage:
    """What the decided cases exercise of the policy, section by section (see the module docstring)."""
    channels = [c for a in policy.agreements.values() for c in a.channels]
    issuable = tuple(i for i in policy.instruments.values() if any(a.jurisdiction in i.issuers and a.kind in i.kinds for a in policy.authorities.values()))
    sections = {
        "rules": Section("rules", rule_ids(policy)),
        "instruments": Section("instruments", tuple(i.id for i in issuable)),
        "authorities": Section("authorities", tuple(policy.authorities)),
        "channels": Section("channels", tuple(c.id for c in channels)),
        "regions": Section("regions", tuple(regions)),
        "categories": Section("categories", policy.categories),
        "emergency": Section("emergency", ("domestic", "foreign")),
        "invariants": Section("invariants", tuple(policy.invariants)),
    }
    count = 0
    for result in results:
        count += 1
        case, decision = result.case, result.decision
        spec = case.order
        sections["instruments"].exercised.add(spec.instrument)
        sections["authorities"].exercised.update((spec.issuer, spec.served_by))
        sections["regions"].exercised.add(case.stored)
        sections["categories"].exercised.add(case.category)
        if decision is not None:
            sections["rules"].exercised.add(decision.rule)
        issuer = policy.authorities.get(spec.issuer)
        region = regions.get(case.stored)
        if issuer is None or region is None:
            continue
        stored = region.jurisdiction
        for channel in channels:
            if (
                spec.instrument in channel.instruments
                and issuer.jurisdiction in channel.issuers
                and (stored in channel.stored_in or region.id in channel.stored_in)
            ):
                sections["channels"].exercised.add(channel.id)
        if decision is not None and decision.rule == "R4.emergency":
            domestic = issuer.jurisdiction == stored and (stored in policy.emergency.domestic_in or region.id in policy.emergency.domestic_in)
            sections["emergency"].exercised.add("domestic" if domestic else "foreign")
        received = spec.received_at or case.at
        facts = {
            "issuer": issuer.jurisdiction,
            "stored": stored,
            "region": region.id,
            "category": case.category,
            "instrument": spec.instrument,
            "expired": spec.expires_at is not None and received >= spec.expires_at,
            "emergency": bool(spec.emergency_reason),
        }
        for invariant in policy.invariants.values():
            if in_scope(invariant, policy, **facts):
                sections["invariants"].exercised.add(invariant.id)
    return Coverage(count, [sections[name] for name in SECTIONS])


def text(result: Coverage) -> str:
    lines = [f"coverage by {result.cases} cases:"]
    for s in result.sections:
        share = f"{100 * len(s.covered) // len(s.entries)}%" if s.entries else "-"
        lines.append(f"  {s.name:<12} {len(s.covered):4d} of {len(s.entries):<4d} {share:>4}")
        if s.missing:
            lines.append(f"    not exercised: {', '.join(s.missing)}")
    return "\n".join(lines)


def to_json(result: Coverage) -> dict[str, object]:
    return {
        "cases": result.cases,
        "sections": {s.name: {"exercised": s.covered, "not_exercised": s.missing} for s in result.sections},
    }
