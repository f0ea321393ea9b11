"""Legal review through the API: four eyes, denials, approval expiry, objections, and holds released once.

Every test runs a full app on local file stores with a frozen clock; orders are
signed with the demo authorities' keys and submitted by intake (`portal`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from aiohttp.test_utils import TestClient

from gateway.model import parse_time
from gateway.runtime import Runtime
from gateway.web.state import STATE_KEY
from tests.console.support import HOLD, REVIEW, decide, order_item, submitted
from tests.orders_support import download_package, ledger_entries, verify_package_bytes
from tests.support import Env


async def test_two_distinct_lawyers_approving_release_the_data_in_a_verifiable_package(client: TestClient, env: Env, tmp_path: Path) -> None:
    case, document, item = await submitted(client, env, REVIEW)
    assert (await decide(client, env, item["case"], "alice")).status == 201
    response = await decide(client, env, item["case"], "bob")
    assert response.status == 201 and (await response.json())["state"] == "approved"
    assert (await order_item(client, env, document["id"], case.subject.id, case.category))["state"] == "approved"
    status, data, complete = await download_package(client, env, document["id"])
    assert status == 200 and complete
    report = verify_package_bytes(env, data, tmp_path)
    assert (report.ok, report.order, report.records, report.problems) == (True, document["id"], 1, [])


async def test_one_lawyer_approving_twice_does_not_release_data(client: TestClient, env: Env) -> None:
    case, document, item = await submitted(client, env, REVIEW)
    assert (await decide(client, env, item["case"], "alice")).status == 201
    again = await decide(client, env, item["case"], "alice")
    assert (again.status, (await again.json())["code"]) == (409, "duplicate-approval")
    assert (await order_item(client, env, document["id"], case.subject.id, case.category))["state"] == "open"
    assert (await download_package(client, env, document["id"]))[0] == 404


async def test_the_orders_submitter_cannot_approve_it(client: TestClient, env: Env) -> None:
    _, document, item = await submitted(client, env, REVIEW)
    assert document["submitted_by"] == "portal"
    response = await decide(client, env, item["case"], "portal")
    assert (response.status, (await response.json())["code"]) == (403, "forbidden")


async def test_one_denial_refuses_the_order_item(client: TestClient, env: Env) -> None:
    case, document, item = await submitted(client, env, REVIEW)
    assert (await decide(client, env, item["case"], "alice")).status == 201
    denied = await decide(client, env, item["case"], "bob", decision="deny", justification="Irish law forbids this transfer.")
    assert denied.status == 201 and (await denied.json())["state"] == "denied"
    now = await order_item(client, env, document["id"], case.subject.id, case.category)
    assert now["state"] == "denied" and now["review"]["reason"] == "Irish law forbids this transfer."
    assert (await download_package(client, env, document["id"]))[0] == 404


async def test_an_approval_past_its_expiry_does_not_count_towards_release(client: TestClient, env: Env) -> None:
    case, document, item = await submitted(client, env, REVIEW)
    assert (await decide(client, env, item["case"], "alice")).status == 201
    env.clock.advance(hours=73)  # beyond the 72-hour approval TTL, before the case's deadline
    second = await decide(client, env, item["case"], "bob")
    assert second.status == 201 and (await second.json())["state"] == "open"
    assert (await order_item(client, env, document["id"], case.subject.id, case.category))["state"] == "open"
    assert (await download_package(client, env, document["id"]))[0] == 404


async def test_an_objection_turns_a_hold_into_a_refusal_even_after_its_release_time(client: TestClient, env: Env, runtime) -> None:
    case, document, item = await submitted(client, env, HOLD)
    assert item["outcome"] == "hold"
    response = await client.post(
        f"/v1/cases/{item['case']}/objections",
        json={"ground": "the conduct is not an offence in Ireland", "authority": "ie-central-authority", "date": "2026-10-03"},
        headers=env.person("legal", "alice"),
    )
    assert response.status == 201 and (await response.json())["state"] == "objected"
    env.clock.now = parse_time(item["obligations"]["release_at"]) + (parse_time("2026-01-02") - parse_time("2026-01-01"))
    await runtime.orders.sweep()
    await runtime.cases.sweep()
    now = await order_item(client, env, document["id"], case.subject.id, case.category)
    assert now["state"] == "objected" and now["effective"]["outcome"] == "refuse"
    assert (await runtime.cases.get(item["case"]))["state"] == "objected"
    assert (await download_package(client, env, document["id"]))[0] == 404
    assert ledger_entries(env, "case.released") == []


async def test_a_hold_is_released_exactly_once_by_two_replicas_sharing_one_data_dir(client: TestClient, env: Env, runtime) -> None:
    _, _, item = await submitted(client, env, HOLD)
    second = await Runtime.open(replace(env.settings, chain_id="replica-2"))  # a replica writes its own ledger chain
    try:
        env.clock.now = parse_time(item["obligations"]["release_at"])
        counts = await asyncio.gather(runtime.cases.sweep(), second.cases.sweep())
        again = await asyncio.gather(runtime.cases.sweep(), second.cases.sweep())
    finally:
        await second.close()
    assert sum(c["released"] for c in counts) == 1 and sum(c["released"] for c in again) == 0
    assert [e["data"]["case"] for e in ledger_entries(env, "case.released")] == [item["case"]]
    assert (await runtime.cases.get(item["case"]))["state"] == "released"


async def test_a_restart_between_the_due_time_and_the_release_loses_nothing(
    client: TestClient, env: Env, make_client: Callable[[], Awaitable[TestClient]], tmp_path: Path
) -> None:
    case, document, item = await submitted(client, env, HOLD)
    await client.close()  # the gateway stops before the window ends...
    env.clock.now = parse_time(item["obligations"]["release_at"]) + (parse_time("2026-01-01T06:00:00Z") - parse_time("2026-01-01"))
    restarted = await make_client()  # ...and comes back after it
    rt = restarted.app[STATE_KEY].rt
    assert (await rt.cases.sweep())["released"] == 1
    await rt.orders.sweep()
    assert (await rt.cases.get(item["case"]))["state"] == "released"
    assert len(ledger_entries(env, "case.released")) == 1
    assert (await order_item(restarted, env, document["id"], case.subject.id, case.category))["state"] == "released"
    status, data, complete = await download_package(restarted, env, document["id"])
    assert status == 200 and complete
    report = verify_package_bytes(env, data, tmp_path)
    assert (report.ok, report.order, report.records) == (True, document["id"], 1)


async def test_a_cases_deadline_appears_in_the_case_api(client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    response = await client.get("/v1/cases", headers=env.person("legal", "alice"))
    assert response.status == 200
    listed = {c["id"]: c for c in (await response.json())["cases"]}
    assert listed[item["case"]]["deadline"] == item["obligations"]["deadline"]
    assert parse_time(listed[item["case"]]["deadline"]) == parse_time("2026-10-15")
