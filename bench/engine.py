"""Per-decision latency of the legal engine, and of a Cedar projection of it via cedarpy.

Run ``python -m bench.engine`` (from the repository root). The mix is every case
in ``tests/cases`` whose order reaches the engine (signature cases are decided
before it, by the order service), built into ``Order`` objects exactly as
``gateway.legal.decision_cases.run_case`` does (``decide_case``), repeated ``--repeat`` times in a fixed
shuffled order. Each decision is timed on its own with ``perf_counter_ns``;
``Engine.decide(..., trace=False)`` is the gateway's hot path.

The Cedar side (only if ``cedarpy`` is importable; it is not a project
dependency) is the disclose / no-disclose projection of the same decisions: one
``permit`` per distinct disclosing input (issuer, server, instrument, storage
region, category, subject facts, offence, and the time relations the engine
reads), with authorities and regions as entities and the rest in the request
context. It is a generated decision table, not a hand translation of the
rules, so it is the cheapest faithful Cedar form of this mix; a rule-by-rule
translation would carry more policies and cost more per call. Both sides are
checked to agree on every item of the mix. Policies and entities are parsed
once (``PolicySet``, ``Entities``), so per-call parsing is not counted.

Before timing, the heap is frozen (``gc.freeze()``), as ``gateway serve`` does
once it has started, so the long-lived configuration is not traversed by the
collections that the timed calls trigger.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

from bench.machine import cpu_model
from gateway.config import load_config
from gateway.legal.decision_cases import Case, decide_case, load_cases, order_of
from gateway.legal.engine import DISCLOSE, Engine
from gateway.legal.orders import Order, PriorPreservation
from gateway.model import Region

ROOT = Path(__file__).resolve().parent.parent



@dataclass(frozen=True)
class Item:
    """One engine call of the mix, with its Cedar request."""

    name: str
    call: Callable[[], Any]
    context: dict[str, Any]
    principal: str
    resource: str


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat() if moment is not None else ""


def build_mix(engine: Engine, regions: dict[str, Region], cases: list[Case]) -> list[Item]:
    policy = engine.policy
    items: list[Item] = []
    for case in cases:
        spec = case.order
        issuer = policy.authorities.get(spec.issuer)
        served_by = policy.authorities.get(spec.served_by)
        region = regions.get(case.stored)
        if spec.signature != "valid" or issuer is None or served_by is None or region is None:
            continue
        order, prior = order_of(case, issuer, served_by)

        def call(order: Order = order, case: Case = case, region: Region = region, prior: PriorPreservation | None = prior) -> Any:
            return decide_case(case, engine, order, region, prior, trace=False)

        s, off = case.subject, spec.offence
        context = {
            "instrument": spec.instrument,
            "categories": ",".join(spec.categories),
            "category": case.category,
            "subjects": ",".join(spec.subjects),
            "subject": s.id,
            "home_region": s.home_region,
            "residence": s.residence,
            "nationality": s.nationality or "",
            "us_person": "" if s.us_person is None else str(s.us_person),
            "location": s.location or "",
            "has_records": case.has_records,
            "replayed": case.replayed,
            "emergency": spec.emergency_reason is not None,
            "offence": "" if off is None else f"{off.description}|{off.max_penalty_years}|{off.committed_in}",
            "now": _iso(case.at),
            "issued_at": _iso(spec.issued_at or case.at),
            "expires_at": _iso(spec.expires_at),
            "not_before": _iso(spec.not_before),
            "made_at": _iso(spec.made_at),
            "received_at": _iso(spec.received_at),
            "nondisclosure_until": _iso(spec.nondisclosure_until),
            "renews": spec.renews or "",
            "prior": "" if prior is None else f"{prior.order_id}|{prior.instrument}|{prior.issuer_jurisdiction}|{_iso(prior.until)}|{prior.extensions}",
            "objection": "" if case.objection is None else f"{case.objection.by}|{_iso(case.objection.at)}",
        }
        context["served_by"] = spec.served_by
        items.append(Item(case.name, call, context, f'Authority::"{spec.issuer}"', f'Region::"{case.stored}"'))
    return items


def _cedar_value(value: Any) -> str:
    return "true" if value is True else "false" if value is False else json.dumps(value)


def cedar_projection(items: list[Item], outcomes: list[str], policy: Any, regions: dict[str, Region]) -> tuple[str, list[dict[str, Any]]]:
    """A ``permit`` per distinct disclosing input; entities for the authorities and regions."""
    seen: set[str] = set()
    policies: list[str] = []
    for item, outcome in zip(items, outcomes, strict=True):
        if outcome != DISCLOSE:
            continue
        conds = " && ".join(f"context.{k} == {_cedar_value(v)}" for k, v in sorted(item.context.items()))
        text = f'permit(principal == {item.principal}, action == Action::"disclose", resource == {item.resource}) when {{ {conds} }};'
        if text not in seen:
            seen.add(text)
            policies.append(text)
    entities: list[dict[str, Any]] = [
        {"uid": {"type": "Authority", "id": aid}, "attrs": {"jurisdiction": a.jurisdiction}, "parents": []} for aid, a in policy.authorities.items()
    ]
    entities += [{"uid": {"type": "Region", "id": rid}, "attrs": {}, "parents": []} for rid in regions]
    return "\n".join(policies), entities


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(repeat: int, rounds: int) -> str:
    os.chdir(ROOT)
    config = load_config(ROOT / "regions.toml")
    engine = Engine(config)
    regions = dict(config.regions)
    items = build_mix(engine, regions, load_cases([ROOT / "tests" / "cases"]))
    outcomes = [item.call().outcome for item in items]
    mix = items * repeat
    random.Random(7).shuffle(mix)

    try:
        import cedarpy
    except ImportError:
        cedarpy = None

    cedar_call: Callable[[Item], bool] | None = None
    agree_note = "cedarpy not installed: `pip install cedarpy` failed or was not run; no Cedar comparison"
    n_policies = 0
    if cedarpy is not None:
        text, entities = cedar_projection(items, outcomes, engine.policy, regions)
        n_policies = text.count("permit(")
        policy_set = cedarpy.PolicySet.from_str(text)
        entity_set = cedarpy.Entities.from_json_str(json.dumps(entities))
        allow = cedarpy.Decision.Allow

        def cedar_call(item: Item) -> bool:
            request = {"principal": item.principal, "action": 'Action::"disclose"', "resource": item.resource, "context": item.context}
            return cedarpy.is_authorized(request, policy_set, entity_set).decision == allow

        disagree = [item.name for item in mix if cedar_call(item) != (item.call().outcome == DISCLOSE)]
        agree_note = (
            f"Cedar projection ({n_policies} permit policies, {len(entities)} entities) agrees with the engine on all {len(mix)} decisions"
            if not disagree
            else f"DISAGREEMENT on {len(disagree)} of {len(mix)} decisions, e.g. {disagree[:3]}"
        )

    # As `gateway serve` does once started: what start-up loaded is frozen out of the collector's way.
    gc.collect()
    gc.freeze()
    engine_us: list[float] = []
    cedar_us: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(rounds):  # interleaved: engine pass, then Cedar pass, per round
        for item in mix:
            start = clock()
            item.call()
            engine_us.append((clock() - start) / 1000)
        if cedar_call is not None:
            for item in mix:
                start = clock()
                cedar_call(item)
                cedar_us.append((clock() - start) / 1000)

    disclose = sum(o == DISCLOSE for o in outcomes)
    lines = [
        f"Per-decision latency, {len(items)} cases x {repeat} x {rounds} rounds ({disclose} of {len(items)} cases disclose) "
        f"({datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()})",
        "",
        "| engine | decisions | median µs | p99 µs | mean µs |",
        "|---|---:|---:|---:|---:|",
        f"| gateway Engine.decide (trace=False) | {len(engine_us):,} | {statistics.median(engine_us):.1f} | "
        f"{percentile(engine_us, 0.99):.1f} | {statistics.fmean(engine_us):.1f} |",
    ]
    if cedar_us:
        lines.append(
            f"| cedarpy {_version('cedarpy')} disclose projection | {len(cedar_us):,} | {statistics.median(cedar_us):.1f} | "
            f"{percentile(cedar_us, 0.99):.1f} | {statistics.fmean(cedar_us):.1f} |"
        )
        lines += [
            "",
            f"Ratio cedarpy / engine: median {statistics.median(cedar_us) / statistics.median(engine_us):.1f}x, "
            f"p99 {percentile(cedar_us, 0.99) / percentile(engine_us, 0.99):.1f}x.",
        ]
    lines += ["", agree_note + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50, help="copies of the case mix per round (default 50)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved engine/Cedar rounds (default 5)")
    args = parser.parse_args()
    print(run(args.repeat, args.rounds))


if __name__ == "__main__":
    main()
