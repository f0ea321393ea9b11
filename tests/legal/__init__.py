"""Tests of the legal policy, the disclosure engine and the decision cases.

The helpers below build the foundation config (categories, blocs,
jurisdictions, regions) straight from a parsed regions.toml, so these tests do
not depend on ``gateway.config``.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from gateway.errors import Finding
from gateway.legal.engine import Engine
from gateway.legal.policy import LegalPolicy, parse_legal
from gateway.model import Bloc, FileStoreSpec, Jurisdiction, Region

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "regions.toml"
CASES_DIR = ROOT / "tests" / "cases"


@dataclass(frozen=True)
class Foundation:
    categories: tuple[str, ...]
    blocs: Mapping[str, Bloc]
    jurisdictions: Mapping[str, Jurisdiction]
    regions: Mapping[str, Region]


def shipped_raw() -> dict[str, Any]:
    """A fresh deep copy of the shipped regions.toml, safe to modify."""
    return copy.deepcopy(_raw())


@cache
def _raw() -> dict[str, Any]:
    return tomllib.loads(SHIPPED.read_text(encoding="utf-8"))


def foundation(raw: Mapping[str, Any]) -> Foundation:
    blocs = {k: Bloc(k, v.get("name", k), bool(v.get("free_flow", False))) for k, v in raw.get("blocs", {}).items()}
    jurisdictions = {k: Jurisdiction(k, v.get("name", k), frozenset(v.get("blocs", []))) for k, v in raw["jurisdictions"].items()}
    regions = {k: Region(k, v["location"], v["jurisdiction"], FileStoreSpec(f"stores/{k}"), f"keys/tags/{k}.key") for k, v in raw["regions"].items()}
    return Foundation(tuple(raw["categories"]), blocs, jurisdictions, regions)


def parse(raw: Mapping[str, Any]) -> tuple[LegalPolicy, list[Finding]]:
    base = foundation(raw)
    findings: list[Finding] = []
    policy = parse_legal(
        raw,
        categories=base.categories,
        jurisdictions=base.jurisdictions,
        blocs=base.blocs,
        regions=base.regions,
        findings=findings,
    )
    return policy, findings


@cache
def shipped_policy() -> LegalPolicy:
    policy, findings = parse(_raw())
    assert not findings, "\n".join(map(str, findings))
    return policy


@cache
def shipped_engine() -> Engine:
    return Engine(shipped_policy())


def shipped_regions() -> Mapping[str, Region]:
    return foundation(_raw()).regions
