"""Subject facts are signed like record tags, checked before use, and named by the decisions that rest on them."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.web.app import create_app
from tests.orders_support import case_named, item_for, ledger_entries, seed_case, sign_case
from tests.support import Env, run_cli

OPO_DISCLOSED = "scenario 8: UK OPO via the Secretary of State for a Pakistani national in the UK"
OPO_RESTRICTED = "scenario 9: the same UK OPO for a US citizen in London is a targeting restriction"
VIRGINIA_CRM = ("crm", "us-east-1", "crm")

Restart = Callable[[], Awaitable[TestClient]]


@pytest.fixture
def restart(env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> Restart:
    """A second gateway process on the same data: nothing it knows comes from the first one's memory (it writes its own ledger chain)."""
    started = itertools.count(1)

    async def start() -> TestClient:
        settings = replace(env.settings, chain_id=f"restarted-{next(started)}")
        return await aiohttp_client(create_app(settings, registry=CollectorRegistry()))

    return start


async def _explain(client: TestClient, env: Env, token: str) -> dict[str, Any]:
    response = await client.post("/v1/explain", json={"order": token}, headers=env.person("legal", "counsel"))
    assert response.status == 200, await response.text()
    return await response.json()


async def _seeded(client: TestClient, env: Env, name: str) -> tuple[str, str]:
    """Seed a decision case; returns (subject id, signed order)."""
    case = case_named(name)
    await seed_case(client, env, case)
    return case.order.subjects[0], sign_case(env, case)


async def _rewrite_profile(runtime, subject: str, region: str, change: Callable[[dict[str, Any]], None], *, keep_metadata: bool = True) -> None:
    """What an operator with access to the store can do: rewrite the profile object's body, keeping (or dropping) its metadata."""
    store = runtime.stores[region]
    stored = await store.get(f"subjects/{subject}/profile")
    data = json.loads(stored.body)
    change(data)
    await store.put(f"subjects/{subject}/profile", json.dumps(data).encode(), stored.metadata if keep_metadata else {})


def _opo_item(document: dict[str, Any], subject: str) -> dict[str, Any]:
    return item_for(document, subject, "content")


async def test_a_foreign_service_cannot_turn_a_targeting_restriction_into_a_disclosure(client: TestClient, env: Env) -> None:
    subject, token = await _seeded(client, env, OPO_RESTRICTED)
    response = await client.put(
        f"/v1/subjects/{subject}",
        json={"home_region": "us-east-1", "residence": "GB", "nationality": "PK", "us_person": False, "location": "GB"},
        headers=env.service("support", "eu-west-1", "support"),
    )
    assert response.status == 451
    assert _opo_item(await _explain(client, env, token), subject)["outcome"] == "route-mlat"


async def test_a_profile_edited_in_the_store_is_not_trusted_after_a_restart(client: TestClient, env: Env, runtime, restart: Restart) -> None:
    subject, token = await _seeded(client, env, OPO_RESTRICTED)
    await _rewrite_profile(runtime, subject, "us-east-1", lambda d: d.update(us_person=False, nationality="PK"))
    item = _opo_item(await _explain(await restart(), env, token), subject)
    assert (item["outcome"], item["reasons"][0]["code"]) == ("legal-review", "subject-facts-unverified")


async def test_an_order_for_a_subject_whose_facts_fail_verification_is_never_disclosed(client: TestClient, env: Env, runtime, restart: Restart) -> None:
    subject, token = await _seeded(client, env, OPO_DISCLOSED)
    await _rewrite_profile(runtime, subject, "us-east-1", lambda d: d.update(residence="GB"))
    item = _opo_item(await _explain(await restart(), env, token), subject)
    assert item["outcome"] == "legal-review"
    assert item["reasons"][0]["code"] == "subject-facts-unverified"


async def test_a_read_of_a_subject_whose_profile_fails_verification_is_a_residency_violation(
    client: TestClient, env: Env, runtime, restart: Restart
) -> None:
    subject, _ = await _seeded(client, env, OPO_DISCLOSED)
    await _rewrite_profile(runtime, subject, "us-east-1", lambda d: d.update(location="US"))
    fresh = await restart()
    response = await fresh.get(f"/v1/subjects/{subject}/records/rec-content", headers=env.service(*VIRGINIA_CRM))
    assert response.status == 451
    body = await response.json()
    assert body["code"] == "residency-violation"
    assert body["reasons"][0]["rule"] == "residency.profile"


async def test_a_profile_that_fails_verification_is_ledgered_and_counted(client: TestClient, env: Env, runtime, restart: Restart) -> None:
    subject, _ = await _seeded(client, env, OPO_DISCLOSED)
    await _rewrite_profile(runtime, subject, "us-east-1", lambda d: d.update(location="US"))
    fresh = await restart()
    await fresh.get(f"/v1/subjects/{subject}/records/rec-content", headers=env.service(*VIRGINIA_CRM))
    [violation] = ledger_entries(env, "residency.violation")
    assert (violation["data"]["subject"], violation["data"]["reason"]) == (subject, "tag-content-mismatch")
    metrics = await (await fresh.get("/metrics")).text()
    assert 'gateway_residency_violations_total{reason="tag-content-mismatch",region="us-east-1"} 1.0' in metrics


async def test_an_unsigned_profile_is_not_trusted(client: TestClient, env: Env, runtime, restart: Restart) -> None:
    subject, token = await _seeded(client, env, OPO_DISCLOSED)
    await _rewrite_profile(runtime, subject, "us-east-1", lambda d: None, keep_metadata=False)
    item = _opo_item(await _explain(await restart(), env, token), subject)
    assert (item["outcome"], item["reasons"][0]["code"]) == ("legal-review", "subject-facts-unverified")


async def test_gateway_subjects_resign_makes_an_unsigned_profile_trusted_again(client: TestClient, env: Env, runtime, restart: Restart) -> None:
    subject, token = await _seeded(client, env, OPO_DISCLOSED)
    await _rewrite_profile(runtime, subject, "us-east-1", lambda d: None, keep_metadata=False)
    assert await asyncio.to_thread(run_cli, env.settings.config_path.parent, "subjects", "resign", subject) == 0
    item = _opo_item(await _explain(await restart(), env, token), subject)
    assert item["outcome"] == "disclose"
    [resigned] = ledger_entries(env, "subject.resigned")
    assert resigned["data"]["subject"] == subject


async def test_gateway_subjects_resign_leaves_a_signed_profile_alone(client: TestClient, env: Env) -> None:
    subject, _ = await _seeded(client, env, OPO_DISCLOSED)
    assert await asyncio.to_thread(run_cli, env.settings.config_path.parent, "subjects", "resign", subject) == 0
    assert ledger_entries(env, "subject.resigned") == []


async def test_each_order_item_names_the_profile_it_was_decided_on(client: TestClient, env: Env) -> None:
    subject, token = await _seeded(client, env, OPO_DISCLOSED)
    [registered] = ledger_entries(env, "subject.registered")
    item = _opo_item(await _explain(client, env, token), subject)
    assert item["profile_sha256"] == registered["data"]["profile_sha256"]


async def test_each_read_names_the_profile_it_was_decided_on(client: TestClient, env: Env) -> None:
    subject, _ = await _seeded(client, env, OPO_DISCLOSED)
    [registered] = ledger_entries(env, "subject.registered")
    await client.get(f"/v1/subjects/{subject}/records/rec-content", headers=env.service(*VIRGINIA_CRM))
    [read] = ledger_entries(env, "service.read")
    assert read["data"]["profile_sha256"] == registered["data"]["profile_sha256"]


async def test_two_regions_registering_one_new_subject_at_once_have_exactly_one_winner(client: TestClient, env: Env) -> None:
    profiles = {
        "eu-west-1": {"home_region": "eu-west-1", "residence": "IE"},
        "us-east-1": {"home_region": "us-east-1", "residence": "US"},
    }
    outcomes = []
    for n in range(20):
        subject = f"racer-{n}"
        responses = await asyncio.gather(
            *(client.put(f"/v1/subjects/{subject}", json=profile, headers=env.service("crm", region, "crm")) for region, profile in profiles.items())
        )
        outcomes.append(sorted([(r.status, (await r.json()).get("code")) for r in responses], key=lambda o: o[0]))
    assert all(o == [(201, None), (409, "subject-region-conflict")] for o in outcomes), outcomes


async def test_a_subject_registered_once_under_a_race_is_not_ambiguous_afterwards(client: TestClient, env: Env) -> None:
    await asyncio.gather(
        client.put("/v1/subjects/racer", json={"home_region": "eu-west-1", "residence": "IE"}, headers=env.service("crm", "eu-west-1", "crm")),
        client.put("/v1/subjects/racer", json={"home_region": "us-east-1", "residence": "US"}, headers=env.service("crm", "us-east-1", "crm")),
    )
    for region in ("eu-west-1", "us-east-1"):
        response = await client.get("/v1/subjects/racer/records", headers=env.service("security-operations", region, "incident-response"))
        assert response.status == 200, await response.text()


async def test_a_registration_that_finds_the_id_claimed_by_another_region_is_a_conflict(client: TestClient, env: Env, runtime) -> None:
    # the state a racing registration leaves between its claim and its profile write: claimed for Dublin, no profile yet
    claim = b'{"claimed_at":"2026-10-01T09:00:00Z","home_region":"eu-west-1","subject":"racer"}'
    await runtime.control.put("subjects/racer/home", claim, {}, if_absent=True)
    response = await client.put("/v1/subjects/racer", json={"home_region": "us-east-1", "residence": "US"}, headers=env.service(*VIRGINIA_CRM))
    assert (response.status, (await response.json())["code"]) == (409, "subject-region-conflict")
