"""The legal console in a real headless Chromium: two lawyers approve a cross-border case and the data is released.

The app is served on a real loopback TCP port; the browser signs in with legal
tokens, uses the queue and the case page, and submits the forms as a person
would. Screenshots of the queue and of a case page are kept under
``test-artifacts/``.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.console.support import REVIEW, legal_token
from tests.orders_support import case_named, item_for, seed_case, sign_case, submit, verify_package_bytes
from tests.support import CHROMIUM, CHROMIUM_ARGS, ROOT, Env

ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")


async def _sign_in_and_approve(browser, base: str, token: str, justification: str, *, queue_shot: Path | None, case_shot: Path | None) -> str:
    """One lawyer, in a fresh browser context: sign in, open the first case in the queue, approve. Returns the flash text."""
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    try:
        page = await context.new_page()
        await page.goto(f"{base}/console/login")
        await page.get_by_label("Legal bearer token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{base}/console/")
        await page.get_by_role("heading", name="Case queue").wait_for()
        if queue_shot is not None:
            await page.screenshot(path=str(queue_shot), full_page=True)
        await page.locator("tbody tr").first.get_by_role("link").click()
        await page.get_by_role("heading", name="Your decision").wait_for()
        await page.get_by_label("Justification").fill(justification)
        await page.get_by_role("button", name="Approve").click()
        flash = page.get_by_role("status")
        await flash.wait_for()
        if case_shot is not None:
            await page.screenshot(path=str(case_shot), full_page=True)
        return await flash.inner_text()
    finally:
        await context.close()


async def test_two_lawyers_approve_a_case_in_the_browser_and_the_package_is_released(served: str, env: Env, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    case = case_named(REVIEW)
    env.clock.now = case.at
    async with aiohttp.ClientSession(base_url=served) as http:
        await seed_case(http, env, case)  # type: ignore[arg-type]
        status, document = await submit(http, env, sign_case(env, case))  # type: ignore[arg-type]
        assert status == 201 and item_for(document, case.subject.id, case.category)["outcome"] == "legal-review"

        ARTIFACTS.mkdir(exist_ok=True)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                first = await _sign_in_and_approve(
                    browser,
                    served,
                    legal_token(env, "alice"),
                    "Alice: the warrant is valid and the conflict is resolved.",
                    queue_shot=ARTIFACTS / "console-queue.png",
                    case_shot=None,
                )
                second = await _sign_in_and_approve(
                    browser,
                    served,
                    legal_token(env, "bob"),
                    "Bob: agree with Alice after reading the trace.",
                    queue_shot=None,
                    case_shot=ARTIFACTS / "console-case.png",
                )
            finally:
                await browser.close()
        assert first == second == "Your approval is recorded."

        order = await http.get(f"/v1/orders/{document['id']}", headers=env.person("intake", "portal"))
        assert item_for(await order.json(), case.subject.id, case.category)["state"] == "approved"
        package = await http.get(f"/v1/orders/{document['id']}/package", headers=env.person("intake", "portal"))
        assert package.status == 200
        report = verify_package_bytes(env, await package.read(), tmp_path)
        assert (report.ok, report.order, report.records) == (True, document["id"], 1)
    assert (ARTIFACTS / "console-queue.png").stat().st_size > 0 and (ARTIFACTS / "console-case.png").stat().st_size > 0
