"""The legal policy (placeholder while the schema is written; replaced shortly)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import Finding
from gateway.model import Bloc, Jurisdiction, Region

TABLES = ("authorities", "instruments", "agreements", "blocking", "disclosure")


@dataclass(frozen=True)
class LegalPolicy:
    pass


def parse_legal(
    raw: Mapping[str, Any],
    *,
    categories: tuple[str, ...],
    jurisdictions: Mapping[str, Jurisdiction],
    blocs: Mapping[str, Bloc],
    regions: Mapping[str, Region],
    findings: list[Finding],
) -> LegalPolicy:
    return LegalPolicy()
