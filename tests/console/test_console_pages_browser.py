"""The console's pages at 1280 px in a real headless Chromium: what changes, the rules, approvals, the transparency report.

Each test asserts the page's content and its layout at a 1280 px wide viewport:
no horizontal page scroll, and the page's wide table ends inside the viewport
with nothing scrolled out of sight in its own box. A full-page screenshot of
each is kept under ``test-artifacts/`` as evidence.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from tests.console.conftest import ANALYSIS_SECONDS
from tests.console.support import REVIEW, decide, legal_token
from tests.console.test_console_changes import epoc_later
from tests.orders_support import case_named, item_for, seed_case, sign_case, submit
from tests.support import CHROMIUM, CHROMIUM_ARGS, ROOT, Env

ARTIFACTS = ROOT / "test-artifacts"
WIDTH = 1280
# a justification as lawyers write them: long, with a long unbroken reference in it
LONG_JUSTIFICATION = (
    "Reviewed the conflict with Irish law under Article 48 GDPR and the CLOUD Act comity analysis; the warrant is limited to the "
    "named account and period. Reference: https://legal.example.com/matters/2026/ie-us/warrant-review-0001-annex-b-comity-analysis"
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@asynccontextmanager
async def signed_in(browser: Any, base: str, token: str) -> AsyncIterator[Any]:
    """A 1280 px wide page in a fresh context, signed in to the console with ``token``."""
    context = await browser.new_context(viewport={"width": WIDTH, "height": 900})
    try:
        page = await context.new_page()
        await page.goto(f"{base}/console/login")
        await page.get_by_label("Legal bearer token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{base}/console/")
        yield page
    finally:
        await context.close()


async def layout(page: Any, table: str) -> dict[str, float]:
    """The page's scroll width, and the right edge and overflow of ``table`` (a CSS selector) and of the box around it."""
    return await page.evaluate(
        """selector => {
            const table = document.querySelector(selector);
            const box = table.parentElement;
            return {
                page: document.scrollingElement.scrollWidth,
                right: table.getBoundingClientRect().right,
                hidden: box.scrollWidth - box.clientWidth,
            };
        }""",
        table,
    )


def assert_fits(facts: dict[str, float]) -> None:
    assert facts["page"] <= WIDTH, f"the page scrolls sideways: {facts}"
    assert facts["right"] <= WIDTH, f"the table ends outside the viewport: {facts}"
    assert facts["hidden"] <= 0, f"the table scrolls inside its box: {facts}"


async def review_case(http: aiohttp.ClientSession, env: Env) -> dict[str, Any]:
    """A US warrant for content stored in Dublin, in legal review: its item."""
    case = case_named(REVIEW)
    env.clock.now = case.at
    await seed_case(http, env, case)  # type: ignore[arg-type]
    status, document = await submit(http, env, sign_case(env, case))  # type: ignore[arg-type]
    assert status == 201
    return item_for(document, case.subject.id, case.category)


async def test_the_what_changes_page_shows_a_candidates_changes_and_invariants_at_1280_px(served: str, env: Env, browser: Any) -> None:
    async with signed_in(browser, served, legal_token(env, "alice")) as page:
        await page.get_by_role("link", name="What changes").click()
        await page.get_by_label("Paste the candidate").fill(epoc_later())
        wait = ANALYSIS_SECONDS * 1000  # the analysis takes seconds, many more on a loaded machine; the click waits for its answer
        async with page.expect_navigation(timeout=wait):
            await page.get_by_role("button", name="Show what changes").click(timeout=wait)
        await page.get_by_role("heading", name="Changes", exact=True).wait_for()
        summary = await page.locator("p.lead").first.inner_text()
        assert re.fullmatch(r"\d+ of \d+ decision points change, in \d+ groups\.", summary)
        assert "invariants hold" in await page.locator("#invariants-title + p").inner_text()
        example = page.locator("table.changes tbody tr.example").first
        await example.get_by_text("Decision case for this group").click()  # the group's example case opens, to copy
        assert "[[case]]" in await example.locator("pre.case").inner_text()
        assert_fits(await layout(page, "table.changes"))
        await page.screenshot(path=str(ARTIFACTS / "console-changes.png"), full_page=True)


async def test_the_rules_page_links_each_section_and_fits_1280_px(served: str, env: Env, browser: Any) -> None:
    async with signed_in(browser, served, legal_token(env, "alice")) as page:
        await page.get_by_role("link", name="Rules & explain").click()
        toc = page.get_by_role("navigation", name="On this page")
        await toc.get_by_role("link", name="Agreements").click()
        await page.wait_for_url(re.compile(r"#agreements-title$"))
        heading = await page.get_by_role("heading", name="Agreements", exact=True).bounding_box()
        assert heading is not None and 0 <= heading["y"] < 900  # scrolled to it
        warrant = page.locator('span.named[title="us.warrant"]').first
        assert await warrant.inner_text() == "U.S. search warrant"
        assert "`" not in await page.locator("main").inner_text()
        for table in ("#instruments-title ~ .table-wrap table", "#authorities-title ~ .table-wrap table", "#blocking-title ~ .table-wrap table"):
            assert_fits(await layout(page, table))
        await page.screenshot(path=str(ARTIFACTS / "console-rules.png"), full_page=True)


async def test_the_approvals_table_fits_1280_px_with_a_long_justification(served: str, env: Env, browser: Any) -> None:
    async with aiohttp.ClientSession(base_url=served) as http:
        item = await review_case(http, env)
        approved = await decide(http, env, item["case"], "alice", justification=LONG_JUSTIFICATION)  # type: ignore[arg-type]
        assert approved.status == 201
    async with signed_in(browser, served, legal_token(env, "bob")) as page:
        await page.goto(f"{served}/console/cases/{item['case']}")
        table = page.locator("#approvals-title ~ div table")
        await table.wait_for()
        assert "alice" in await table.inner_text() and "warrant-review-0001" in await table.inner_text()
        assert_fits(await layout(page, "#approvals-title ~ div table"))
        await page.screenshot(path=str(ARTIFACTS / "console-approvals.png"), full_page=True)


async def test_the_transparency_reports_wide_table_fits_1280_px(served: str, env: Env, browser: Any) -> None:
    async with aiohttp.ClientSession(base_url=served) as http:
        await review_case(http, env)
    context = await browser.new_context(viewport={"width": WIDTH, "height": 900}, extra_http_headers=env.person("legal", "alice"))
    try:
        page = await context.new_page()
        response = await page.goto(f"{served}/v1/reports/transparency?from=2026-07-01&to=2026-12-31&format=html")
        assert response is not None and response.status == 200
        table = page.locator("section[aria-labelledby='period-2026-H2'] table")
        assert re.search(r"^US\t1\t", await table.inner_text(), re.MULTILINE)  # the warrant, counted for its issuing country
        assert_fits(await layout(page, "section[aria-labelledby='period-2026-H2'] table"))
        await page.screenshot(path=str(ARTIFACTS / "transparency-report.png"), full_page=True)
    finally:
        await context.close()
