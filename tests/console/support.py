"""Helpers for the case and console tests: submitting review and hold orders, signing in to the console."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.legal.decision_cases import Case
from gateway.model import Caller
from gateway.web.console import CSRF_FIELD, SESSION_COOKIE
from tests.orders_support import case_named, item_for, seed_case, sign_case, submit
from tests.support import Env

# a US warrant for an Irish national's content stored in Dublin: legal review, deadline 2026-10-15
REVIEW = "scenario 5: US warrant for an Irish national's content stored in Dublin"
# an EPOC for traffic data of a German resident: held 10 days while Ireland is notified
HOLD = "epoc: traffic data, offence in France but the subject lives in Germany, is held 10 days while Ireland is notified"
JUSTIFICATION = "Reviewed the conflict with Irish law; disclosure is lawful here."
CSRF_INPUT = re.compile(rf'name="{CSRF_FIELD}" value="([0-9a-f]+)"')


async def submitted(client: TestClient, env: Env, name: str) -> tuple[Case, dict[str, Any], dict[str, Any]]:
    """Seed the case's subject and record, submit its signed order as intake: (case, document, the case's item)."""
    case = case_named(name)
    env.clock.now = case.at
    await seed_case(client, env, case)
    status, document = await submit(client, env, sign_case(env, case))
    assert status == 201, document
    return case, document, item_for(document, case.subject.id, case.category)


async def decide(client: TestClient, env: Env, case_id: str, lawyer: str, decision: str = "approve", justification: str = JUSTIFICATION):
    return await client.post(f"/v1/cases/{case_id}/approvals", json={"decision": decision, "justification": justification}, headers=env.person("legal", lawyer))


async def order_item(client: TestClient, env: Env, order_id: str, subject: str, category: str) -> dict[str, Any]:
    response = await client.get(f"/v1/orders/{order_id}", headers=env.person("legal", "reader"))
    assert response.status == 200, await response.text()
    return item_for(await response.json(), subject, category)


def csrf_from(html: str) -> str:
    found = CSRF_INPUT.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def sign_in(client: TestClient, token: str) -> Any:
    """Sign in to the console with ``token`` (the client's cookie jar keeps the session); the POST's response."""
    client.session.cookie_jar.clear()
    form = await client.get("/console/login")
    assert form.status == 200
    return await client.post("/console/login", data={"token": token, CSRF_FIELD: csrf_from(await form.text())}, allow_redirects=False)


async def console_as(client: TestClient, env: Env, lawyer: str) -> str:
    """Sign in as a legal person; the CSRF token of the session."""
    response = await sign_in(client, legal_token(env, lawyer))
    assert response.status == 303 and response.headers["Location"] == "/console/", await response.text()
    page = await client.get("/console/")
    assert page.status == 200
    assert any(c.key == SESSION_COOKIE for c in client.session.cookie_jar)
    return csrf_from(await page.text())


def legal_token(env: Env, lawyer: str) -> str:
    return env.token(Caller(lawyer, "legal"))
