"""The transparency report over HTTP, from a ledger built by deciding known orders through the real app."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.legal.decision_cases import Case, load_cases
from tests.orders_support import claims_of, seed_case, sign_case, submit
from tests.support import CHROMIUM, CHROMIUM_ARGS, ROOT, Env

CASES = load_cases([ROOT / "tests/cases"])
KNOWN_ORDERS = [
    ("scenario 1:", 201),  # US warrant, US content: content disclosed
    ("scenario 2:", 201),  # US subpoena for content: refused
    ("scenario 5:", 201),  # US warrant for content stored in Ireland: legal review, extraterritorial
    ("scenario 6:", 201),  # US preservation: counted apart, out of every total
    ("scenario 12:", 201),  # FR prosecutor's EPOC for subscriber data in Germany: non-content disclosed
    ("epoc: traffic data, offence in France but the subject lives", 201),  # EU notification
    ("voluntary: no record stored for the subject is no-data", 201),  # BR court: no data
    ("scenario 20:", 422),  # unsigned: refused before any decision, unattributed
]
ARTIFACT = ROOT / "test-artifacts" / "transparency-report.png"


def case_named(name: str) -> Case:
    matches = [c for c in CASES if c.name.startswith(name)]
    assert len(matches) == 1, f"{name}: {len(matches)} cases"
    return matches[0]


async def decide_known_orders(client: TestClient, env: Env) -> None:
    for n, (name, status) in enumerate(KNOWN_ORDERS):
        case = case_named(name)
        subject = f"subject-{n}"  # every case names `subject-1`; give each its own
        case = replace(case, order=replace(case.order, subjects=(subject,)), subject=replace(case.subject, id=subject))
        env.clock.now = case.at
        await seed_case(client, env, case)
        claims = {**claims_of(case), "jti": f"report-order-{n}"}
        got, body = await submit(client, env, sign_case(env, case, claims))
        assert got == status, (name, body)


async def report(client: TestClient, env: Env, fmt: str = "json", role: str = "legal") -> Any:
    response = await client.get(
        "/v1/reports/transparency", params={"from": "2026-07-01", "to": "2026-12-31", "format": fmt}, headers=env.person(role, "counsel-1")
    )
    assert response.status == 200, await response.text()
    return await response.json() if fmt == "json" else await response.text()


def row(document: dict[str, Any], country: str) -> dict[str, Any]:
    return next(r for r in document["rows"] if r["country"] == country)


@pytest.fixture
async def decided(client: TestClient, env: Env) -> dict[str, Any]:
    await decide_known_orders(client, env)
    return dict(await report(client, env))


async def test_each_country_row_counts_its_requests_and_accounts(decided: dict[str, Any]) -> None:
    counts = {r["country"]: (r["period"], r["requests"], r["accounts"]) for r in decided["rows"]}
    assert counts == {"BR": ("2026-H2", 1, 1), "FR": ("2026-H2", 2, 2), "US": ("2026-H2", 3, 3), "unattributed": ("2026-H2", 1, None)}


async def test_a_preservation_request_is_counted_apart_and_kept_out_of_every_total(decided: dict[str, Any]) -> None:
    us = row(decided, "US")
    assert us["preservation"] == 1 and us["requests"] == 3
    assert decided["total"]["requests"] == 7 and decided["total"]["preservation"] == 1
    assert sum(decided["total"][o] for o in ("content", "non_content", "no_data", "rejected", "other")) == 7


async def test_the_outcome_shares_of_each_country_follow_its_decisions(decided: dict[str, Any]) -> None:
    assert row(decided, "US")["shares"] == {"content": 33.3, "non_content": 0.0, "no_data": 0.0, "rejected": 33.3, "other": 33.3}
    assert row(decided, "FR")["shares"] == {"content": 0.0, "non_content": 50.0, "no_data": 0.0, "rejected": 0.0, "other": 50.0}


async def test_an_order_for_a_subject_with_no_data_is_counted_as_no_data(decided: dict[str, Any]) -> None:
    assert row(decided, "BR")["no_data"] == 1 and row(decided, "BR")["shares"]["no_data"] == 100.0


async def test_orders_for_data_stored_in_another_country_are_counted_extraterritorial(decided: dict[str, Any]) -> None:
    assert (row(decided, "US")["extraterritorial"], row(decided, "FR")["extraterritorial"], row(decided, "BR")["extraterritorial"]) == (1, 2, 1)


async def test_an_epoc_hold_counts_one_eu_notification(decided: dict[str, Any]) -> None:
    assert row(decided, "FR")["eu_notifications"] == 1 and decided["total"]["eu_notifications"] == 1


async def test_an_order_sent_to_legal_review_is_counted(decided: dict[str, Any]) -> None:
    assert row(decided, "US")["legal_review"] == 1 and row(decided, "US")["mlat"] == 0


async def test_an_order_refused_before_any_decision_is_a_rejected_unattributed_request(decided: dict[str, Any]) -> None:
    unattributed = row(decided, "unattributed")
    assert (unattributed["requests"], unattributed["rejected"], unattributed["accounts"]) == (1, 1, None)


async def test_a_period_outside_the_orders_reports_nothing(client: TestClient, env: Env, decided: dict[str, Any]) -> None:
    response = await client.get("/v1/reports/transparency", params={"from": "2026-01-01", "to": "2026-06-30"}, headers=env.person("legal", "c"))
    assert (await response.json())["rows"] == []


async def test_the_csv_report_has_one_line_per_country_then_the_totals(client: TestClient, env: Env, decided: dict[str, Any]) -> None:
    lines = list(csv.DictReader(io.StringIO(await report(client, env, "csv"))))
    assert [(r["period"], r["country"]) for r in lines] == [
        ("2026-H2", "BR"),
        ("2026-H2", "FR"),
        ("2026-H2", "US"),
        ("2026-H2", "unattributed"),
        ("2026-H2", "total"),
        ("all", "total"),
    ]
    assert lines[2]["content_share"] == "33.3" and lines[3]["accounts"] == ""


async def test_only_the_legal_role_may_read_the_report(client: TestClient, env: Env) -> None:
    response = await client.get("/v1/reports/transparency", params={"from": "2026-01-01", "to": "2026-12-31"}, headers=env.person("intake", "portal"))
    assert response.status == 403


async def test_a_report_without_a_valid_period_is_a_bad_request(client: TestClient, env: Env) -> None:
    response = await client.get("/v1/reports/transparency", params={"from": "2026-13-01", "to": "2026-12-31"}, headers=env.person("legal", "c"))
    assert response.status == 400 and (await response.json())["code"] == "invalid-period"


async def test_the_html_report_is_one_page_that_fetches_nothing_and_renders_in_chromium(client: TestClient, env: Env, decided: dict[str, Any]) -> None:
    html = await report(client, env, "html")
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "<caption>" in html and '<th scope="col">' in html and 'role="img"' in html and "<title" in html
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: install Debian's chromium to render the screenshot")
    from playwright.async_api import async_playwright

    requested: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requested.append(r.url))
            await page.set_content(html, wait_until="load")
            headings = await page.locator("h1").all_inner_texts()
            rows = await page.locator("table tbody tr").count()
            ARTIFACT.parent.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACT), full_page=True)
        finally:
            await browser.close()
    assert headings == ["Law enforcement requests"] and rows == 5
    assert [u for u in requested if not u.startswith(("about:", "data:"))] == []
    assert ARTIFACT.stat().st_size > 10_000


async def _settle_cases(client: TestClient, env: Env) -> None:
    """Two lawyers approve the review (the US warrant for Irish content); legal objects to the EU notification hold."""
    cases = await (await client.get("/v1/cases", headers=env.person("legal", "lena"))).json()
    for case in cases if isinstance(cases, list) else cases["cases"]:
        if case["kind"] == "legal-review":
            for who in ("lena", "marc"):
                body = {"decision": "approve", "justification": "lawful, narrow and necessary"}
                assert (await client.post(f"/v1/cases/{case['id']}/approvals", json=body, headers=env.person("legal", who))).status == 201
        elif case["kind"] == "hold":
            body = {"ground": "fundamental rights", "authority": "IE DPC", "date": "2026-10-02"}
            assert (await client.post(f"/v1/cases/{case['id']}/objections", json=body, headers=env.person("legal", "lena"))).status == 201


async def test_a_review_approved_by_two_lawyers_counts_as_content_disclosed(client: TestClient, env: Env, decided: dict[str, Any]) -> None:
    await _settle_cases(client, env)
    us = row(await report(client, env), "US")
    assert (us["content"], us["other"], us["legal_review"], us["review_approved"]) == (2, 0, 1, 1)


async def test_a_notification_hold_objected_to_counts_as_rejected(client: TestClient, env: Env, decided: dict[str, Any]) -> None:
    await _settle_cases(client, env)
    assert row(await report(client, env), "FR")["shares"] == {"content": 0.0, "non_content": 50.0, "no_data": 0.0, "rejected": 50.0, "other": 0.0}
