"""``gateway policy prove``: the shipped policy's invariants hold; a policy that breaks one gets counterexamples as cases."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from gateway.cli import main

from . import SHIPPED

US_BAR = SHIPPED.read_text().split("[blocking.us-foreign-content-bar]")[1].split("[blocking.")[0]
VOLUNTARY = 'id = "us-non-content-to-foreign-authorities"\nto = "foreign"\nstored_in = ["US"]\nup_to = "traffic"'


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped policy without the US foreign-content bar, with voluntary disclosure to foreign authorities raised to content."""
    text = SHIPPED.read_text()
    assert text.count(VOLUNTARY) == 1
    text = text.replace("[blocking.us-foreign-content-bar]" + US_BAR, "").replace(VOLUNTARY, VOLUNTARY.replace('"traffic"', '"content"'))
    path = tmp_path_factory.mktemp("prove") / "broken.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def broken_proof(broken: Path) -> tuple[int, str, str]:
    return _run("policy", "prove", str(broken))


def test_the_shipped_policy_proves_every_invariant_and_prints_the_points_and_invariants_counted() -> None:
    code, out, _ = _run("policy", "prove", str(SHIPPED))
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith("# all 7 invariants hold over ") and first.endswith(" decision points")
    assert int(first.split()[6]) > 200_000


def test_a_policy_without_the_us_content_bar_and_with_voluntary_content_exits_1_naming_us_stored_content(broken_proof: tuple[int, str, str]) -> None:
    code, out, _ = broken_proof
    assert code == 1
    assert "# invariant `us-content-only-through-an-agreement`: " in out
    assert 'stored = "us-east-1"\ncategory = "content"' in out
    assert "gdpr-art48-no-disclosure-outside-eea" in out.splitlines()[-1]  # the ones that hold are named last


def test_the_printed_counterexamples_reproduce_the_violating_decisions_under_the_broken_policy(
    broken_proof: tuple[int, str, str], broken: Path, tmp_path: Path
) -> None:
    cases = tmp_path / "counterexamples.toml"
    cases.write_text(broken_proof[1])
    code, out, _ = _run("policy", "test", "--config", str(broken), str(cases))
    assert code == 0
    assert out.strip() == "5 passed, 0 failed"


def test_the_printed_counterexamples_fail_under_the_shipped_policy_which_decides_otherwise(broken_proof: tuple[int, str, str], tmp_path: Path) -> None:
    cases = tmp_path / "counterexamples.toml"
    cases.write_text(broken_proof[1])
    code, out, _ = _run("policy", "test", "--config", str(SHIPPED), str(cases))
    assert code == 1
    assert out.count("expected `disclose`, got `route-mlat`") + out.count("expected `disclose`, got `legal-review`") == 5


def test_json_gives_each_invariant_its_result_counts_and_counterexamples(broken: Path) -> None:
    code, out, _ = _run("policy", "prove", str(broken), "--format", "json")
    assert code == 1
    proof = json.loads(out)
    assert proof["ok"] is False and proof["points"] > 200_000
    rows = {row["id"]: row for row in proof["invariants"]}
    assert [i for i, row in rows.items() if not row["holds"]] == ["us-content-only-through-an-agreement"]
    broken_row = rows["us-content-only-through-an-agreement"]
    assert broken_row["violations"] > 0 and len(broken_row["counterexamples"]) == 5
    assert all(c.startswith("[[case]]\n") for c in broken_row["counterexamples"])


def test_an_invalid_policy_exits_3_with_the_findings_check_prints(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SHIPPED.read_text().replace('forbid = ["disclose"]\nissuers = { foreign = true }', 'forbid = ["disclosed"]\nissuers = { foreign = true }'))
    code, _, err = _run("policy", "prove", str(bad))
    assert code == 3
    assert "invariants.foreign-emergency-requests-get-no-content.forbid[0]: unknown outcome `disclosed`" in err
    assert _run("check", str(bad))[2] == err


def test_a_policy_without_invariants_exits_1_as_there_is_nothing_to_prove(tmp_path: Path) -> None:
    bare = tmp_path / "bare.toml"
    bare.write_text(SHIPPED.read_text().split("# ---- invariants ----")[0])
    code, out, err = _run("policy", "prove", str(bare))
    assert code == 1 and out == ""
    assert err.endswith("no `[invariants.<id>]` tables: nothing to prove\n")


def test_without_a_path_prove_reads_the_config_file(tmp_path: Path) -> None:
    bare = tmp_path / "bare.toml"
    bare.write_text(SHIPPED.read_text().split("# ---- invariants ----")[0])
    code, _, err = _run("policy", "prove", "--config", str(bare))
    assert code == 1
    assert err.startswith(f"{bare}: no `[invariants.<id>]` tables")
