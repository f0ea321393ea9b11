"""Human support access to customer content: the Customer Lockbox pattern."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.web.app import create_app
from tests.orders_support import ledger_entries
from tests.support import SHIPPED_CONFIG, Env, make_env

ALICE = {"home_region": "us-east-1", "residence": "US", "us_person": True}
WRITER = ("crm", "us-east-1", "crm")
CONTENT = b"lockbox-secret-body"


async def _setup(client: TestClient, env: Env) -> str:
    """A support engineer asks to see alice's mail (`mail-1`): one lockbox case opens; its id."""
    assert (await client.put("/v1/subjects/alice", json=ALICE, headers=env.service(*WRITER))).status == 201
    response = await client.put("/v1/subjects/alice/records/mail-1", params={"category": "content"}, data=CONTENT, headers=env.service(*WRITER))
    assert response.status == 201
    response = await client.post(
        "/v1/support-access",
        json={"subject": "alice", "keys": ["mail-1"], "justification": "ticket 4411: mail stuck in the outbox"},
        headers=env.person("support", "sam"),
    )
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def _read(client: TestClient, env: Env, case: str, who: str = "sam"):
    return await client.get(f"/v1/support-access/{case}/records/mail-1", headers=env.person("support", who))


async def _customer(client: TestClient, env: Env, case: str, decision: str = "approve") -> int:
    response = await client.post(f"/v1/cases/{case}/customer-approval", json={"decision": decision}, headers=env.service("customer-portal", "us-east-1"))
    return response.status


async def _lawyer(client: TestClient, env: Env, case: str, who: str = "lena") -> int:
    body = {"decision": "approve", "justification": "the customer asked for this fix"}
    return (await client.post(f"/v1/cases/{case}/approvals", json=body, headers=env.person("legal", who))).status


async def test_a_support_request_opens_a_case_that_expires_twelve_hours_later(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    body = await (await client.get(f"/v1/cases/{case}", headers=env.person("legal", "lena"))).json()
    assert body["kind"] == "lockbox" and body["state"] == "open"
    assert body["deadline"].startswith("2026-10-01T21:00")


async def test_support_sees_nothing_before_the_customer_and_a_lawyer_approve(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    assert (await _read(client, env, case)).status == 403
    await _lawyer(client, env, case)
    assert (await _read(client, env, case)).status == 403


async def test_with_the_customers_and_a_lawyers_approval_the_requester_reads_the_record(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    assert await _customer(client, env, case) == 201
    assert await _lawyer(client, env, case) == 201
    response = await _read(client, env, case)
    assert response.status == 200 and await response.read() == CONTENT


async def test_another_support_engineer_may_not_use_the_case(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    await _customer(client, env, case)
    await _lawyer(client, env, case)
    assert (await _read(client, env, case, who="mallory")).status == 403


async def test_access_ends_twelve_hours_after_the_request(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    await _customer(client, env, case)
    await _lawyer(client, env, case)
    env.clock.advance(hours=12, seconds=1)
    assert (await _read(client, env, case)).status == 403


async def test_a_customer_who_declines_closes_the_case(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    assert await _customer(client, env, case, "deny") == 201
    assert await _lawyer(client, env, case) == 409
    assert (await _read(client, env, case)).status == 403


async def test_only_the_customer_portal_relays_the_customers_answer(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    response = await client.post(f"/v1/cases/{case}/customer-approval", json={"decision": "approve"}, headers=env.person("support", "sam"))
    assert response.status == 403


async def test_a_service_that_is_not_a_consent_relay_may_not_give_the_customers_consent(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    response = await client.post(f"/v1/cases/{case}/customer-approval", json={"decision": "approve"}, headers=env.service("analytics", "eu-west-1"))
    body = await response.json()
    assert (response.status, body["code"]) == (403, "consent-relay-not-allowed")
    assert "`analytics`" in body["detail"] and "`customer-portal`" in body["detail"]


async def test_a_consent_refused_to_another_service_leaves_the_case_unchanged(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    before = await (await client.get(f"/v1/cases/{case}", headers=env.person("legal", "lena"))).json()
    await client.post(f"/v1/cases/{case}/customer-approval", json={"decision": "approve"}, headers=env.service("analytics", "eu-west-1"))
    await _lawyer(client, env, case)
    after = await (await client.get(f"/v1/cases/{case}", headers=env.person("legal", "lena"))).json()
    assert (after["state"], after["customer"]) == ("open", None)
    assert [h["action"] for h in after["history"]] == [h["action"] for h in before["history"]] + ["approve"]
    assert ledger_entries(env, "case.customer") == []
    assert (await _read(client, env, case)).status == 403


async def test_the_configured_consent_relay_gives_the_customers_consent(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    response = await client.post(f"/v1/cases/{case}/customer-approval", json={"decision": "approve"}, headers=env.service("customer-portal", "eu-west-1"))
    assert response.status == 201, await response.text()
    assert (await response.json())["customer"]["decision"] == "approve"


async def test_the_ledger_names_the_service_region_and_principal_that_relayed_the_consent(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    await _customer(client, env, case)
    [entry] = ledger_entries(env, "case.customer")
    assert entry["data"]["relay"] == {"service": "customer-portal", "region": "us-east-1", "principal": "customer-portal"}
    assert (entry["data"]["case"], entry["data"]["decision"]) == (case, "approve")


async def test_the_case_names_the_service_that_relayed_the_consent(client: TestClient, env: Env) -> None:
    case = await _setup(client, env)
    await _customer(client, env, case)
    body = await (await client.get(f"/v1/cases/{case}", headers=env.person("legal", "lena"))).json()
    assert body["customer"]["relay"] == {"service": "customer-portal", "region": "us-east-1", "principal": "customer-portal"}


async def test_every_support_read_is_in_the_ledger(client: TestClient, env: Env) -> None:
    import json

    case = await _setup(client, env)
    await _customer(client, env, case)
    await _lawyer(client, env, case)
    await _read(client, env, case)
    kinds = [json.loads(line)["kind"] for line in env.settings.ledger_path.read_text().splitlines()]
    assert "support.read" in kinds and "case.customer" in kinds
    assert CONTENT not in env.settings.ledger_path.read_bytes()


async def test_the_console_shows_a_support_request_in_the_queue_and_on_its_page(client: TestClient, env: Env) -> None:
    from tests.console.support import console_as

    case = await _setup(client, env)
    await console_as(client, env, "lena")
    queue = await client.get("/console/")
    page = await client.get(f"/console/cases/{case}")
    assert queue.status == 200 and case in await queue.text()
    assert page.status == 200 and "support-access" in await page.text()
    assert CONTENT.decode() not in await page.text()


# --- a gateway with no consent relay configured ----------------------------------------


def _without_support_access() -> str:
    text = SHIPPED_CONFIG.read_text()
    start = text.index("[support_access]")
    return text[:start] + text[text.index("\n\n", start) :]


async def test_without_a_consent_relay_support_access_cannot_be_requested(tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    env = make_env(tmp_path, _without_support_access())
    client = await aiohttp_client(create_app(env.settings, registry=CollectorRegistry()))
    assert (await client.put("/v1/subjects/alice", json=ALICE, headers=env.service(*WRITER))).status == 201
    response = await client.post(
        "/v1/support-access",
        json={"subject": "alice", "keys": ["mail-1"], "justification": "ticket 4411: mail stuck in the outbox"},
        headers=env.person("support", "sam"),
    )
    body = await response.json()
    assert (response.status, body["code"]) == (403, "support-access-off")
    assert "support_access.consent_relays" in body["detail"]
