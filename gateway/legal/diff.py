"""What a change to the legal policy alters: every decision point, decided under both policies.

Pure: the two policies (and their regions) come in, the changes go out. ``gateway
policy diff OLD NEW`` reads the files and prints the result.

The decision space (``gateway.legal.space``) is derived from both policies, so an
instrument, authority, region, date or threshold present in either is sampled;
its module docstring says what each dimension samples.

Two decisions are the same when outcome, basis, deciding reason, rule and the
obligations' offsets from service are. A change is reported once per point and
grouped by (instrument, issuer, region, category, old, new); a group lists
the classes (subject, offence, timing, service) of its points and keeps the first
as an example decision case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.legal.engine import Decision, Engine
from gateway.legal.space import Point, Side, decide, space
from gateway.legal.space import case_toml as point_case

__all__ = ["Group", "Point", "PolicyDiff", "Side", "case_toml", "diff", "space", "text", "to_json"]


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
        before, after = (decide(e, point) for e in engines)
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
    return point_case(p, d, f"{g.instrument} from {g.issuer}, {g.region}, {g.category}: {g.classes[0]}")
