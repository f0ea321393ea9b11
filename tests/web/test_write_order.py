"""One writer per key, in ledger order: the last `record.written` of a key is what the store holds, and 201 means created once."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.services.records import WRITE_TRIES
from gateway.stores import PreconditionFailed
from gateway.web.app import create_app
from tests.orders_support import ledger_entries, prepare_authorities
from tests.support import Env

AOIFE = {"home_region": "eu-west-1", "residence": "IE", "nationality": "IE", "us_person": False, "location": "IE"}
DUBLIN_CRM = ("crm", "eu-west-1", "crm")
WRITERS = 16
ROUNDS = 4


async def _register(client: TestClient, env: Env) -> None:
    response = await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*DUBLIN_CRM))
    assert response.status == 201, await response.text()


async def _put(client: TestClient, env: Env, key: str, body: bytes) -> int:
    response = await client.put(f"/v1/subjects/aoife/records/{key}", params={"category": "content"}, data=body, headers=env.service(*DUBLIN_CRM))
    assert response.status in (200, 201), await response.text()
    return response.status


async def _stored_sha256(client: TestClient, env: Env, key: str) -> str:
    response = await client.get(f"/v1/subjects/aoife/records/{key}", headers=env.service(*DUBLIN_CRM))
    assert response.status == 200, await response.text()
    return hashlib.sha256(await response.read()).hexdigest()


def _written(env: Env, key: str) -> list[dict]:
    return [e["data"] for e in ledger_entries(env, "record.written") if e["data"]["key"] == key]


async def test_concurrent_writes_of_one_key_create_it_once_and_the_ledger_names_the_stored_version(client: TestClient, env: Env) -> None:
    await _register(client, env)
    for n in range(ROUNDS):
        key = f"race-{n}"
        statuses = await asyncio.gather(*(_put(client, env, key, f"body {n}.{i}".encode()) for i in range(WRITERS)))
        assert sorted(statuses) == [200] * (WRITERS - 1) + [201]
        assert _written(env, key)[-1]["sha256"] == await _stored_sha256(client, env, key)


async def test_each_write_of_a_key_names_the_version_it_replaced(client: TestClient, env: Env) -> None:
    await _register(client, env)
    await asyncio.gather(*(_put(client, env, "chain", f"body {i}".encode()) for i in range(WRITERS)))
    written = _written(env, "chain")
    assert [w["replaces"] for w in written] == [None] + [w["sha256"] for w in written[:-1]]


async def test_two_gateways_sharing_one_data_folder_create_a_key_once_and_agree_on_its_version(
    client: TestClient, env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    prepare_authorities(env)
    other = await aiohttp_client(create_app(replace(env.settings, chain_id="other"), registry=CollectorRegistry()))  # its own ledger chain
    await _register(client, env)
    for n in range(ROUNDS):
        key = f"shared-{n}"
        statuses = await asyncio.gather(*(_put(client if i % 2 else other, env, key, f"body {n}.{i}".encode()) for i in range(WRITERS)))
        assert sorted(statuses) == [200] * (WRITERS - 1) + [201]
        # two processes' outcome entries may reach the ledger in either order; their `replaces` say the store's order
        assert _follow_replaces(_written(env, key)) == await _stored_sha256(other, env, key)


def _follow_replaces(written: list[dict]) -> str:
    """The version a key holds by the ledger: from its creation, each write's successor is the one that replaced it."""
    successor = {w["replaces"]: w["sha256"] for w in written}
    assert len(successor) == len(written), "two writes replaced the same version"
    version, seen = None, 0
    while version in successor:
        version, seen = successor[version], seen + 1
    assert seen == len(written), "a write replaced a version no write made"
    assert version is not None
    return version


async def test_the_per_key_write_locks_are_dropped_once_no_write_holds_them(client: TestClient, env: Env, runtime) -> None:
    await _register(client, env)
    await asyncio.gather(*(_put(client, env, f"key-{i % 4}", f"body {i}".encode()) for i in range(WRITERS)))
    assert len(runtime.records.key_locks) == 0


async def test_a_write_that_keeps_losing_races_is_refused_with_write_conflict_and_each_loss_is_ledgered(
    client: TestClient, env: Env, runtime, monkeypatch
) -> None:
    await _register(client, env)

    async def always_overtaken(*args, **kwargs) -> str:
        raise PreconditionFailed("another writer got in first")

    monkeypatch.setattr(runtime.stores["eu-west-1"], "put", always_overtaken)
    response = await client.put(
        "/v1/subjects/aoife/records/mail-1", params={"category": "content"}, data=b"x", headers=env.service(*DUBLIN_CRM)
    )
    assert (response.status, (await response.json())["code"]) == (409, "write-conflict")
    intents = [e["seq"] for e in ledger_entries(env, "record.write-intent")]
    failed = [e["data"] for e in ledger_entries(env, "record.write-failed")]
    assert failed == [{"intent": seq, "code": "write-conflict"} for seq in intents] and len(intents) == WRITE_TRIES


async def test_a_subject_change_through_another_gateway_is_decided_on_the_current_facts_not_its_cached_ones(
    client: TestClient, env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    prepare_authorities(env)
    other = await aiohttp_client(create_app(replace(env.settings, chain_id="other"), registry=CollectorRegistry()))  # its own ledger chain
    await _register(client, env)
    assert (await other.get("/v1/subjects/aoife/records", headers=env.service(*DUBLIN_CRM))).status == 200  # the other caches the facts
    moved = await client.put("/v1/subjects/aoife", json={**AOIFE, "location": "FR"}, headers=env.service(*DUBLIN_CRM))
    assert moved.status == 200
    changed = await other.put("/v1/subjects/aoife", json={**AOIFE, "residence": "DE"}, headers=env.service(*DUBLIN_CRM))
    assert changed.status == 200
    [*_, last] = ledger_entries(env, "subject.changed")
    assert last["data"]["old_profile_sha256"] == ledger_entries(env, "subject.changed")[0]["data"]["new_profile_sha256"]
