"""No country, bloc, instrument, agreement or region id is written into gateway/legal/*.py.

The rules are data: regions.toml names who a predicate applies to. This test
reads every string literal of the package (docstrings excepted: they may cite
examples) and fails on any configured identifier.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from . import ROOT, shipped_policy, shipped_raw

SOURCES = sorted((ROOT / "gateway" / "legal").glob("*.py"))


def forbidden_exact() -> set[str]:
    """Country codes and bloc ids: short, so matched as whole literals only."""
    raw = shipped_raw()
    return set(raw["jurisdictions"]) | set(raw.get("blocs", {}))


def forbidden_anywhere() -> set[str]:
    """Ids long and specific enough to be caught inside any literal."""
    raw = shipped_raw()
    policy = shipped_policy()
    return (
        set(policy.instruments)
        | set(policy.agreements)
        | set(policy.blocking)
        | set(policy.authorities)
        | set(policy.establishments)
        | set(raw["regions"])
        | {rule.id for rule in policy.voluntary}
    )


def string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.add(id(first.value))
    return [
        (node.lineno, node.value) for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_the_legal_package_names_no_configured_jurisdiction_bloc_or_instrument(path: Path) -> None:
    found = offending(path)
    assert not found, f"configuration ids written as literals in {path.name}: " + ", ".join(repr(v) for v in found)


def offending(path: Path) -> list[str]:
    exact = forbidden_exact()
    anywhere = forbidden_anywhere()
    return [value for _, value in string_literals(path) if value.strip() in exact or any(name in value for name in anywhere)]


def test_the_scan_catches_codes_and_instrument_ids_but_not_docstrings(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Mentions US and eu.epoc in a docstring, which is allowed."""\n'
        'HOME = "US"\n'
        "def f(x: str) -> bool:\n"
        '    """So is "EU" here."""\n'
        '    return x == "eu.epoc" or x.startswith(f"{x}:gdpr-art48")\n',
        encoding="utf-8",
    )
    assert offending(sample) == ["US", "eu.epoc", ":gdpr-art48"]
