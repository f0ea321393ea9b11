"""The legal console's pages and forms: sessions, CSRF, roles, service errors, and no customer content."""

from __future__ import annotations

import hashlib

import pytest
from aiohttp.test_utils import TestClient

from gateway.model import Caller
from gateway.web.console import CSRF_FIELD, SESSION_COOKIE
from tests.console.support import HOLD, JUSTIFICATION, REVIEW, console_as, csrf_from, legal_token, order_item, sign_in, submitted
from tests.orders_support import case_named, ledger_entries, seed_case, sign_case, submit
from tests.support import Env

CANARY = b"CANARY-CONTENT-do-not-render-5b1e0c7a"


async def test_a_pages_request_without_a_session_goes_to_the_sign_in_page(client: TestClient) -> None:
    response = await client.get("/console/", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/console/login")


async def test_signing_in_sets_an_httponly_strict_session_cookie_that_expires_with_the_token(client: TestClient, env: Env) -> None:
    response = await sign_in(client, legal_token(env, "alice"))
    assert response.status == 303
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
    assert cookie["path"] == "/console" and 0 < int(cookie["max-age"]) <= 3600


@pytest.mark.parametrize(
    "caller",
    [Caller("crm", "service", service="crm", region="us-east-1", purpose="crm"), Caller("portal", "intake"), Caller("grafana", "ops")],
    ids=lambda c: c.role,
)
async def test_a_token_without_the_legal_role_cannot_sign_in(client: TestClient, env: Env, caller: Caller) -> None:
    response = await sign_in(client, env.token(caller))
    assert response.status == 403 and "forbidden" in await response.text()
    assert SESSION_COOKIE not in response.cookies


async def test_an_invalid_token_cannot_sign_in(client: TestClient, env: Env) -> None:
    response = await sign_in(client, legal_token(env, "alice")[:-4] + "AAAA")
    assert response.status == 401 and SESSION_COOKIE not in response.cookies


async def test_the_sign_in_form_without_its_csrf_token_is_forbidden(client: TestClient, env: Env) -> None:
    await client.get("/console/login")
    response = await client.post("/console/login", data={"token": legal_token(env, "alice")}, allow_redirects=False)
    assert response.status == 403 and "csrf-invalid" in await response.text()


async def test_a_session_whose_token_expired_is_sent_back_to_sign_in(client: TestClient, env: Env) -> None:
    await console_as(client, env, "alice")
    env.clock.advance(hours=2)  # tokens last an hour
    response = await client.get("/console/", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/console/login")


async def test_signing_out_ends_the_session(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    response = await client.post("/console/logout", data={CSRF_FIELD: csrf}, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/console/login")
    assert (await client.get("/console/", allow_redirects=False)).status == 303


@pytest.mark.parametrize("csrf", [None, "0" * 64], ids=["missing", "wrong"])
async def test_a_decision_posted_without_the_right_csrf_token_is_forbidden_and_changes_nothing(client: TestClient, env: Env, csrf: str | None) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    await console_as(client, env, "alice")
    form = {"decision": "approve", "justification": JUSTIFICATION, **({CSRF_FIELD: csrf} if csrf else {})}
    response = await client.post(f"/console/cases/{item['case']}/decide", data=form, allow_redirects=False)
    assert response.status == 403 and "csrf-invalid" in await response.text()
    assert ledger_entries(env, "case.approval") == []


async def test_a_csrf_token_from_another_session_is_forbidden(client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    alices = await console_as(client, env, "alice")
    await console_as(client, env, "bob")
    form = {"decision": "approve", "justification": JUSTIFICATION, CSRF_FIELD: alices}
    response = await client.post(f"/console/cases/{item['case']}/decide", data=form, allow_redirects=False)
    assert response.status == 403
    assert ledger_entries(env, "case.approval") == []


async def test_two_lawyers_approving_in_the_console_write_the_ledger_and_release_the_item(client: TestClient, env: Env) -> None:
    case, document, item = await submitted(client, env, REVIEW)
    for lawyer in ("alice", "bob"):
        csrf = await console_as(client, env, lawyer)
        form = {"decision": "approve", "justification": JUSTIFICATION, "categories": case.category, CSRF_FIELD: csrf}
        response = await client.post(f"/console/cases/{item['case']}/decide", data=form, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, f"/console/cases/{item['case']}")
        page = await client.get(response.headers["Location"])
        assert "Your approval is recorded." in await page.text()
    assert [e["data"]["by"] for e in ledger_entries(env, "case.approval")] == ["alice", "bob"]
    assert (await order_item(client, env, document["id"], case.subject.id, case.category))["state"] == "approved"


async def test_a_duplicate_approval_in_the_console_is_shown_with_its_code(client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    csrf = await console_as(client, env, "alice")
    form = {"decision": "approve", "justification": JUSTIFICATION, CSRF_FIELD: csrf}
    assert (await client.post(f"/console/cases/{item['case']}/decide", data=form, allow_redirects=False)).status == 303
    again = await client.post(f"/console/cases/{item['case']}/decide", data=form, allow_redirects=False)
    html = await again.text()
    assert again.status == 409 and "duplicate-approval" in html and JUSTIFICATION in html


async def test_the_submitter_deciding_in_the_console_is_shown_as_forbidden(client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    csrf = await console_as(client, env, "portal")
    form = {"decision": "approve", "justification": JUSTIFICATION, CSRF_FIELD: csrf}
    response = await client.post(f"/console/cases/{item['case']}/decide", data=form, allow_redirects=False)
    assert response.status == 403 and "<code>forbidden</code>" in await response.text()
    assert ledger_entries(env, "case.approval") == []


async def test_an_objection_recorded_in_the_console_stops_the_hold(client: TestClient, env: Env) -> None:
    case, document, item = await submitted(client, env, HOLD)
    csrf = await console_as(client, env, "alice")
    form = {"ground": "not an offence in Ireland", "authority": "ie-central-authority", "date": "2026-10-02", CSRF_FIELD: csrf}
    response = await client.post(f"/console/cases/{item['case']}/object", data=form, allow_redirects=False)
    assert response.status == 303
    assert "The objection is recorded." in await (await client.get(response.headers["Location"])).text()
    assert [e["data"]["by"] for e in ledger_entries(env, "case.objection")] == ["alice"]
    assert (await order_item(client, env, document["id"], case.subject.id, case.category))["state"] == "objected"


async def test_a_cases_deadline_and_time_left_appear_in_the_console_queue(client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    listed = await client.get("/v1/cases", headers=env.person("legal", "alice"))
    deadline = (await listed.json())["cases"][0]["deadline"]
    await console_as(client, env, "alice")
    html = await (await client.get("/console/")).text()
    assert f'<time datetime="{deadline}">{deadline}</time>' in html
    assert "14d 0h left" in html and f"/console/cases/{item['case']}" in html


async def test_the_queue_filters_by_region(client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    await console_as(client, env, "alice")
    assert item["case"] in await (await client.get("/console/", params={"region": "eu-west-1"})).text()
    assert item["case"] not in await (await client.get("/console/", params={"region": "us-east-1"})).text()


async def test_an_unknown_filter_is_shown_as_an_error_on_the_queue(client: TestClient, env: Env) -> None:
    await console_as(client, env, "alice")
    response = await client.get("/console/", params={"state": "pending"})
    assert response.status == 400 and "invalid-filter" in await response.text()


async def test_explaining_an_order_in_the_console_shows_its_decision_and_changes_nothing(client: TestClient, env: Env) -> None:
    case = case_named(REVIEW)
    env.clock.now = case.at
    await seed_case(client, env, case)
    csrf = await console_as(client, env, "alice")
    before = ledger_entries(env)
    response = await client.post("/console/explain", data={"order": sign_case(env, case), "at": "", CSRF_FIELD: csrf})
    html = await response.text()
    assert response.status == 200 and "extraterritorial-conflict" in html and "R5.extraterritorial" in html
    assert ledger_entries(env) == before


async def test_the_rules_page_shows_the_active_instruments_agreements_and_blocking_rules(client: TestClient, env: Env) -> None:
    await console_as(client, env, "alice")
    html = await (await client.get("/console/rules")).text()
    for name in ("us.warrant", "eu.epoc", "uk-us", "gdpr-art48"):
        assert name in html


async def test_console_pages_never_contain_record_content(client: TestClient, env: Env) -> None:
    review, _, review_item = await submitted(client, env, REVIEW)
    hold = case_named(HOLD)
    await seed_case(client, env, hold)
    for case in (review, hold):  # a second record with a distinctive body, before the orders are decided
        writer = env.service("crm", case.stored, "crm")  # from the subject's home region: writes are decided like reads
        put = await client.put(f"/v1/subjects/{case.subject.id}/records/canary", params={"category": case.category}, data=CANARY, headers=writer)
        assert put.status in (200, 201)
    hold_status, hold_document = await submit(client, env, sign_case(env, hold))
    assert hold_status == 201
    csrf = await console_as(client, env, "alice")
    hold_case = next(i["case"] for i in hold_document["items"] if "case" in i)
    pages = [
        await client.get("/console/"),
        await client.get(f"/console/cases/{review_item['case']}"),
        await client.get(f"/console/cases/{hold_case}"),
        await client.get("/console/rules"),
        await client.post("/console/explain", data={"order": sign_case(env, hold), CSRF_FIELD: csrf}),
        await client.post(f"/console/cases/{hold_case}/object", data={"ground": "g", "authority": "", "date": "x", CSRF_FIELD: csrf}),
    ]
    html = [await p.text() for p in pages]
    assert all(CANARY.decode() not in h for h in html)
    assert hashlib.sha256(CANARY).hexdigest() in html[2]  # the record is there, as metadata and a hash
    assert csrf_from(html[0]) == csrf


async def test_a_lawyer_assigns_a_case_from_its_page_and_it_is_in_the_ledger(client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    csrf = await console_as(client, env, "lena")
    response = await client.post(f"/console/cases/{item['case']}/assign", data={"assignee": "omar", CSRF_FIELD: csrf}, allow_redirects=False)
    assert response.status == 303
    body = await (await client.get(f"/v1/cases/{item['case']}", headers=env.person("legal", "lena"))).json()
    assert body["assignee"] == "omar"
    assert '"case.assigned"' in env.settings.ledger_path.read_text()
