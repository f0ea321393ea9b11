"""Invariants of the legal policy, proved by deciding every point of the decision space.

Pure. An invariant (``[invariants.<id>]`` in ``regions.toml``, parsed with the
policy into ``LegalPolicy.invariants``: see ``gateway.legal.policy.Invariant``)
forbids outcomes over a scope of decisions, unless the decision meets a
condition. The decision space is finite (``gateway.legal.space``), so deciding
every point in an invariant's scope proves it for that space, or finds the
points that break it: its counterexamples, each writable as a decision case
(``counterexample_toml``) that ``gateway policy test`` runs as is.

    result = prove(Side(config.legal, config.regions))    # every invariant of the policy
    result.holds, result.points
    for r in result.results:
        r.invariant.id, r.invariant.description, r.holds, r.violations
        for cx in r.counterexamples:                       # at most MAX_COUNTEREXAMPLES, distinct
            counterexample_toml(cx)

The selectors are predicates over the point (the issuer's and the storage
place's jurisdictions, the category, the instrument, the order's expiry and
emergency reason); the places they name are expanded from the configuration's
jurisdictions and blocs when the policy is parsed. Nothing here names one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.legal.engine import Decision, Engine
from gateway.legal.policy import Invariant, LegalPolicy
from gateway.legal.space import Point, Side, case_toml, decide, space

__all__ = ["Counterexample", "Invariant", "InvariantResult", "ProofResult", "counterexample_toml", "in_scope", "permitted", "prove", "text", "to_json"]

MAX_COUNTEREXAMPLES = 5  # per invariant: the first distinct ones (instrument, issuer, region, category, decision)


@dataclass(frozen=True, slots=True)
class Counterexample:
    """A point in an invariant's scope whose decision the invariant forbids."""

    invariant: Invariant
    point: Point
    decision: Decision


@dataclass(slots=True)
class InvariantResult:
    invariant: Invariant
    checked: int = 0  # points in its scope
    violations: int = 0  # points in its scope whose decision it forbids
    counterexamples: list[Counterexample] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return self.violations == 0


@dataclass(slots=True)
class ProofResult:
    points: int = 0
    results: list[InvariantResult] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return all(r.holds for r in self.results)


def in_scope(
    invariant: Invariant,
    policy: LegalPolicy,
    *,
    issuer: str,
    stored: str,
    region: str,
    category: str,
    instrument: str,
    expired: bool,
    emergency: bool,
) -> bool:
    """Whether a decision with these facts is in the invariant's scope (every selector set holds).

    ``issuer`` and ``stored`` are the issuer's and the storage place's jurisdictions; ``region`` the storage region's id.
    """
    if invariant.issuers is not None and issuer not in invariant.issuers:
        return False
    if invariant.issuers_outside is not None and issuer in invariant.issuers_outside:
        return False
    if invariant.foreign is not None and invariant.foreign != (issuer != stored):
        return False
    if invariant.stored is not None and stored not in invariant.stored and region not in invariant.stored:
        return False
    if invariant.stored_outside is not None and (stored in invariant.stored_outside or region in invariant.stored_outside):
        return False
    if invariant.categories is not None and category not in invariant.categories:
        return False
    if invariant.instruments is not None and instrument not in invariant.instruments:
        return False
    if invariant.expired is not None and invariant.expired != expired:
        return False
    if invariant.emergency is not None and invariant.emergency != emergency:
        return False
    known = policy.instruments.get(instrument)
    if invariant.defined is not None and invariant.defined != (known is not None):
        return False
    return invariant.preservation is None or (known is not None and invariant.preservation == (known.preservation is not None))


def permitted(invariant: Invariant, decision: Decision) -> bool:
    """Whether the invariant lets this decision stand: its outcome is not forbidden, or an ``unless`` condition holds."""
    if decision.outcome not in invariant.forbid:
        return True
    if any(decision.rule == r or decision.rule.startswith(r + ".") for r in invariant.unless_rule):
        return True
    if invariant.unless_reason and any(reason.code in invariant.unless_reason for reason in decision.reasons):
        return True
    return decision.basis is not None and decision.basis in invariant.unless_basis


def prove(side: Side, invariants: Iterable[Invariant] | None = None) -> ProofResult:
    """Decide every point of the policy's decision space that some invariant's scope holds; check each such invariant.

    ``invariants`` defaults to the policy's own (``side.policy.invariants``).
    """
    chosen = list(side.policy.invariants.values() if invariants is None else invariants)
    engine = Engine(side.policy, regions=side.regions)
    result = ProofResult(results=[InvariantResult(i) for i in chosen])
    seen: dict[str, set[tuple[str, ...]]] = {i.id: set() for i in chosen}  # per invariant: its counterexamples' keys
    scopes: dict[tuple[object, ...], list[InvariantResult]] = {}  # the invariants whose scope holds a point with these facts
    for point in space(side):
        result.points += 1
        region = side.regions.get(point.region)
        stored = region.jurisdiction if region is not None else ""
        facts = (point.issuer.jurisdiction, stored, point.region, point.category, point.instrument, point.expired, point.emergency)
        applying = scopes.get(facts)
        if applying is None:
            issuer, stored, region_id, category, instrument, expired, emergency = facts
            applying = scopes[facts] = [
                r
                for r in result.results
                if in_scope(
                    r.invariant,
                    side.policy,
                    issuer=issuer,
                    stored=stored,
                    region=region_id,
                    category=category,
                    instrument=instrument,
                    expired=expired,
                    emergency=emergency,
                )
            ]
        if not applying:
            continue
        decision = decide(engine, point)
        for r in applying:
            r.checked += 1
            if permitted(r.invariant, decision):
                continue
            r.violations += 1
            key = (point.instrument, point.issuer.id, point.region, point.category, decision.outcome, decision.rule)
            if len(r.counterexamples) < MAX_COUNTEREXAMPLES and key not in seen[r.invariant.id]:
                seen[r.invariant.id].add(key)
                r.counterexamples.append(Counterexample(r.invariant, point, decision))
    return result


def counterexample_toml(cx: Counterexample) -> str:
    """The counterexample as a decision case that expects the forbidden decision: ``gateway policy test`` reproduces it.

    Under the policy that broke the invariant the case passes; once the policy is fixed it fails, showing
    the decision now made, and becomes a regression case when its expectation is set to that.
    """
    p, d, inv = cx.point, cx.decision, cx.invariant
    name = f"invariant {inv.id}: {p.instrument} from {p.issuer.id}, {p.region}, {p.category}: {p.subject_class}"
    why = f"reproduces a violation of invariant `{inv.id}` ({inv.description}): the policy decides `{d.outcome}` by {d.rule}, which the invariant forbids"
    return case_toml(p, d, name, why)


# --- rendering -----------------------------------------------------------------------


def text(result: ProofResult) -> str:
    """The proof in words; every line that is not a decision case is a TOML comment, so the output is a case file."""
    held = [r for r in result.results if r.holds]
    broken = [r for r in result.results if not r.holds]
    if not broken:
        lines = [f"# all {len(held)} invariants hold over {result.points} decision points"]
        lines += [f"#   {r.invariant.id}: {r.checked} points in scope" for r in held]
        return "\n".join(lines)
    lines = [f"# {len(broken)} of {len(result.results)} invariants do not hold over {result.points} decision points"]
    for r in broken:
        lines += [
            "",
            f"# invariant `{r.invariant.id}`: {r.violations} of {r.checked} points in its scope break it",
            f"#   {r.invariant.description}",
            f"#   counterexamples (the first {len(r.counterexamples)}, as decision cases that reproduce the decision):",
        ]
        for cx in r.counterexamples:
            lines += ["", counterexample_toml(cx).rstrip("\n")]
    if held:
        lines += ["", "# these hold: " + ", ".join(r.invariant.id for r in held)]
    return "\n".join(lines)


def to_json(result: ProofResult) -> dict[str, object]:
    return {
        "ok": result.holds,
        "points": result.points,
        "invariants": [
            {
                "id": r.invariant.id,
                "description": r.invariant.description,
                "holds": r.holds,
                "checked": r.checked,
                "violations": r.violations,
                "counterexamples": [counterexample_toml(cx) for cx in r.counterexamples],
            }
            for r in result.results
        ],
    }
