"""The pure core stays pure and names no jurisdiction."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = [
    "gateway/model.py",
    "gateway/countries.py",
    "gateway/errors.py",
    "gateway/findings.py",
    "gateway/canonical.py",
    "gateway/tags.py",
    "gateway/residency",
    "gateway/legal",
    "gateway/audit/chain.py",
]
FORBIDDEN = ("aiohttp", "boto3", "botocore", "prometheus_client")


def core_files() -> list[Path]:
    files: list[Path] = []
    for entry in CORE:
        path = ROOT / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return [f for f in files if f.exists()]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pure_core_imports_no_io_framework(path: Path) -> None:
    assert not imported_modules(path) & set(FORBIDDEN)


def configured_names() -> set[str]:
    raw = tomllib.loads((ROOT / "regions.toml").read_text())
    return set(raw["jurisdictions"]) | set(raw.get("blocs", {})) | set(raw.get("instruments", {}))


@pytest.mark.parametrize("path", [p for p in core_files() if "residency" in p.parts or "legal" in p.parts], ids=lambda p: str(p.relative_to(ROOT)))
def test_policy_code_names_no_jurisdiction_bloc_or_instrument(path: Path) -> None:
    names = configured_names()
    literals = {
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    found = sorted(names & literals)
    assert not found, f"{path.name} names {found}; put it in regions.toml"


def test_the_data_plane_policy_module_has_no_country_code_anywhere() -> None:
    source = (ROOT / "gateway/residency/decision.py").read_text()
    assert not re.search(r"[\"'](US|IE|DE|GB|AU|EU|EEA)[\"']", source)


def test_a_gateway_with_only_file_stores_starts_without_boto3_or_jinja2() -> None:
    # each costs a tenth of a second or more to import: start-up pays for boto3 only when a region is on S3,
    # and for Jinja2 only when a console page or report is rendered
    script = (
        "import sys; from pathlib import Path; import gateway.web.app, gateway.runtime; "
        "from gateway.config import load_config; from gateway.stores.factory import open_store; "
        "config = load_config(Path('regions.toml')); [open_store(r, Path('data')) for r in config.regions.values()]; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'jinja2')))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "[]"
