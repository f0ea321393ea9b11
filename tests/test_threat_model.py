"""The threat model stays true: every test it names exists, and every threat names one.

`docs/threat-model.md` lists each threat as a table row `| T-NN | actor | threat |
control | test |`, the test cell holding pytest node ids relative to the
repository root. These tests read the document and the test files' syntax
trees; they import and run nothing else.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "threat-model.md"
NODE_ID = re.compile(r"tests/[A-Za-z0-9_/]+\.py::[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]`]*\])?")
ROW = re.compile(r"^\|\s*(T-\d+)\s*\|(.*)\|\s*$")


def _text() -> str:
    return DOCUMENT.read_text(encoding="utf-8")


def _rows() -> list[tuple[str, list[str]]]:
    """Each threat row: its id and its other cells (actor, threat, control, test)."""
    rows = []
    for line in _text().splitlines():
        match = ROW.match(line)
        if match:
            rows.append((match.group(1), [cell.strip() for cell in match.group(2).split(" | ")]))
    return rows


@cache
def _functions(path: Path) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def _is_parametrized(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any("parametrize" in ast.unparse(decorator) for decorator in function.decorator_list)


def _problem(node_id: str) -> str | None:
    """Why ``node_id`` names no test, or None when it does."""
    path, _, name = node_id.partition("::")
    function_name, bracket, _ = name.partition("[")
    file = ROOT / path
    if not file.is_file():
        return f"{node_id}: no file {path}"
    function = _functions(file).get(function_name)
    if function is None or not function_name.startswith("test_"):
        return f"{node_id}: {path} defines no test `{function_name}`"
    if bracket and not _is_parametrized(function):
        return f"{node_id}: `{function_name}` is not parametrized, so it has no `[...]` ids"
    return None


def test_the_threat_model_has_threat_rows() -> None:
    assert len(_rows()) >= 50, f"only {len(_rows())} threat rows found in {DOCUMENT}"


def test_every_test_the_threat_model_names_exists() -> None:
    named = sorted(set(NODE_ID.findall(_text())))
    assert named, "the threat model names no test"
    problems = [p for p in map(_problem, named) if p]
    assert problems == [], "\n".join(problems)


def test_every_threat_names_at_least_one_test() -> None:
    untested = [threat for threat, cells in _rows() if not NODE_ID.findall(cells[-1])]
    assert untested == []


def test_every_threat_names_its_actor_threat_and_control() -> None:
    incomplete = [threat for threat, cells in _rows() if len(cells) != 4 or not all(cells)]
    assert incomplete == []


def test_threat_ids_are_numbered_once_in_order() -> None:
    ids = [threat for threat, _ in _rows()]
    assert ids == [f"T-{n:02d}" for n in range(1, len(ids) + 1)]
