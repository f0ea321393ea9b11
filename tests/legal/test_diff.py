"""``gateway policy diff``: what an edit of the shipped policy changes, over the whole decision space."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main

from . import SHIPPED

UK_US_THRESHOLD = 'instruments = ["gb.opo"]\nstored_in = ["US"]\neffect = "grant"\nmin_max_penalty_years = 3\n'


def _edited(folder: Path, name: str, old: str, new: str) -> Path:
    text = SHIPPED.read_text()
    assert text.count(old) == 1, old
    path = folder / name
    path.write_text(text.replace(old, new))
    return path


def _diff_json(old: Path, new: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["policy", "diff", str(old), str(new), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("policies")


@pytest.fixture(scope="module")
def stricter_uk_us(folder: Path) -> Path:
    return _edited(folder, "uk-us-5.toml", UK_US_THRESHOLD, UK_US_THRESHOLD.replace("= 3", "= 5"))


@pytest.fixture(scope="module")
def stricter_diff(stricter_uk_us: Path) -> tuple[int, dict[str, Any]]:
    """The diff of the shipped policy against the stricter one, decided once for the tests that read it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["policy", "diff", str(SHIPPED), str(stricter_uk_us), "--format", "json"])
    return code, json.loads(out.getvalue())


def test_identical_policies_exit_0_with_no_change_and_the_number_of_points(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "diff", str(SHIPPED), str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no change: ") and "decision points decided under both policies" in out
    assert int(out.split()[2]) > 100_000


def test_raising_the_uk_us_penalty_threshold_routes_only_uk_opos_for_us_data_to_mlat(stricter_diff: tuple[int, dict[str, Any]]) -> None:
    code, out = stricter_diff
    assert code == 1
    groups = {(g["instrument"], g["issuer"], g["region"], g["category"], g["old"].split(" ")[0], g["new"]) for g in out["groups"]}
    new = "route-mlat (not-serious-crime, R5.agreement.uk-us)"
    categories = ("subscriber", "identification", "traffic", "content")
    expected = {("gb.opo", "gb-court", "us-east-1", c, old, new) for c in categories for old in ("disclose/compelled", "legal-review")}
    assert groups == expected


def test_the_changed_points_are_those_with_offences_between_the_old_and_new_threshold(stricter_diff: tuple[int, dict[str, Any]]) -> None:
    _, out = stricter_diff
    classes = {c.rsplit(", ", 1)[1] for g in out["groups"] for c in g["classes"]}
    assert classes == {"offence of 3 years", "offence of 4 years"}


def test_a_longer_notification_hold_changes_only_the_release_of_held_epocs(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    longer = _edited(folder, "hold-14.toml", "hold_days = 10,", "hold_days = 14,")
    code, out = _diff_json(SHIPPED, longer, capsys)
    assert code == 1
    assert {g["instrument"] for g in out["groups"]} == {"eu.epoc"}
    assert {g["category"] for g in out["groups"]} == {"traffic", "content"}
    assert {(g["old"], g["new"]) for g in out["groups"]} == {
        (
            "hold (enforcing-state-notification, R5.agreement.eu-e-evidence) [release_at +10d, notify IE, objection_window_until +10d]",
            "hold (enforcing-state-notification, R5.agreement.eu-e-evidence) [release_at +14d, notify IE, objection_window_until +14d]",
        )
    }


def test_a_later_start_of_the_eu_production_order_makes_epocs_in_between_regime_not_in_force(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    anchor = 'compels = "agreement"\nin_force_from = 2026-08-18\n# Art 5(4)'
    later = _edited(folder, "epoc-later.toml", anchor, anchor.replace("2026-08-18", "2026-09-18"))
    code, out = _diff_json(SHIPPED, later, capsys)
    assert code == 1
    assert {g["instrument"] for g in out["groups"]} == {"eu.epoc"}
    assert {g["new"] for g in out["groups"]} == {"refuse (regime-not-in-force, R1.regime-not-in-force)"}
    assert {c for g in out["groups"] for c in g["classes"]} == {"served 2026-08-18", "served 2026-09-17"}


def test_an_invalid_policy_exits_3_with_the_findings_check_prints(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _edited(folder, "bad.toml", "hold_days = 10,", 'hold_days = "ten",')
    assert main(["policy", "diff", str(SHIPPED), str(bad)]) == 3
    err = capsys.readouterr().err
    assert main(["check", str(bad)]) == 3
    assert err == capsys.readouterr().err


def test_each_json_group_has_its_counts_classes_and_an_example_case(stricter_diff: tuple[int, dict[str, Any]]) -> None:
    _, out = stricter_diff
    assert set(out) == {"points", "changed", "groups"}
    assert out["changed"] == sum(g["count"] for g in out["groups"])
    for group in out["groups"]:
        assert set(group) == {"instrument", "issuer", "region", "category", "classes", "old", "new", "count", "case"}
        assert len(group["classes"]) == group["count"]


def test_the_example_cases_pass_policy_test_under_the_new_policy_as_is(
    stricter_diff: tuple[int, dict[str, Any]], stricter_uk_us: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = stricter_diff
    cases = folder / "examples.toml"
    cases.write_text("\n".join(g["case"] for g in out["groups"]))
    assert main(["policy", "test", "--config", str(stricter_uk_us), str(cases)]) == 0
    assert f"{len(out['groups'])} passed, 0 failed" in capsys.readouterr().out


def test_removing_spain_from_the_eu_takes_its_judges_out_of_the_eu_orders_and_puts_eu_data_behind_gdpr_art_48(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spain = 'ES = { name = "Spain", blocs = ["EU", "EEA"] }'
    outside = _edited(folder, "spain-outside.toml", spain, 'ES = { name = "Spain", blocs = [] }')
    code, out = _diff_json(SHIPPED, outside, capsys)
    assert code == 1
    changes = {(g["instrument"], g["issuer"], g["new"].split(" [")[0]) for g in out["groups"]}
    assert changes == {
        ("eu.epoc", "es-judge", "refuse (issuer-not-competent, R1.issuer-not-competent)"),
        ("eu.epoc-pr", "es-judge", "refuse (issuer-not-competent, R1.issuer-not-competent)"),
        ("es.court-order", "es-judge", "route-mlat (gdpr-art48, R5.blocking.gdpr-art48)"),
    }
    assert {g["region"] for g in out["groups"] if g["instrument"] == "es.court-order"} == {"eu-west-1", "eu-central-1"}
