"""Writes are audited before their effect: an intent is durable before the store is touched, the outcome follows."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aiohttp.test_utils import TestClient

from tests.ops.test_health import appends_failing
from tests.orders_support import ledger_entries
from tests.support import Env

AOIFE = {"home_region": "eu-west-1", "residence": "IE", "nationality": "IE", "us_person": False, "location": "IE"}
DUBLIN_CRM = ("crm", "eu-west-1", "crm")


async def _register(client: TestClient, env: Env) -> None:
    response = await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*DUBLIN_CRM))
    assert response.status == 201, await response.text()


async def _put(client: TestClient, env: Env, key: str, body: bytes) -> Any:
    return await client.put(f"/v1/subjects/aoife/records/{key}", params={"category": "content"}, data=body, headers=env.service(*DUBLIN_CRM))


async def _get(client: TestClient, env: Env, key: str) -> int:
    return (await client.get(f"/v1/subjects/aoife/records/{key}", headers=env.service(*DUBLIN_CRM))).status


@contextmanager
def outcomes_failing(runtime, *kinds: str) -> Iterator[None]:
    """The ledger refuses entries of ``kinds`` (an outcome) and takes every other (the intent)."""
    ledger = runtime.audit.ledger
    append = ledger.append

    async def refusing(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
        if kind in kinds:
            raise OSError(28, "No space left on device")
        return await append(kind, data)

    ledger.append = refusing
    try:
        yield
    finally:
        del ledger.append


async def test_a_write_the_ledger_cannot_take_is_refused_and_not_stored(client: TestClient, env: Env, runtime) -> None:
    await _register(client, env)
    with appends_failing(runtime.ledger):
        response = await _put(client, env, "mail-1", b"secret")
    assert (response.status, (await response.json())["code"]) == (503, "ledger-unavailable")
    assert await _get(client, env, "mail-1") == 404


async def test_a_delete_the_ledger_cannot_take_is_refused_and_the_record_stays(client: TestClient, env: Env, runtime) -> None:
    await _register(client, env)
    assert (await _put(client, env, "mail-1", b"secret")).status == 201
    with appends_failing(runtime.ledger):
        response = await client.delete("/v1/subjects/aoife/records/mail-1", headers=env.service(*DUBLIN_CRM))
    assert (response.status, (await response.json())["code"]) == (503, "ledger-unavailable")
    assert await _get(client, env, "mail-1") == 200


async def test_a_registration_the_ledger_cannot_take_stores_no_profile(client: TestClient, env: Env, runtime) -> None:
    with appends_failing(runtime.ledger):
        response = await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*DUBLIN_CRM))
    assert response.status == 503
    response = await client.get("/v1/subjects/aoife/records", headers=env.service(*DUBLIN_CRM))
    assert (await response.json())["code"] == "unknown-subject"


async def test_the_intent_of_a_write_is_in_the_ledger_before_its_outcome(client: TestClient, env: Env) -> None:
    await _register(client, env)
    await _put(client, env, "mail-1", b"secret")
    [intent] = ledger_entries(env, "record.write-intent")
    [written] = ledger_entries(env, "record.written")
    assert intent["seq"] < written["seq"] and written["data"]["intent"] == intent["seq"]
    assert intent["data"]["sha256"] == hashlib.sha256(b"secret").hexdigest()
    assert (intent["data"]["object"], intent["data"]["replaces"]) == ("subjects/aoife/records/mail-1", None)


async def test_a_write_whose_outcome_the_ledger_cannot_take_is_acknowledged_and_its_intent_is_ledgered(client: TestClient, env: Env, runtime) -> None:
    await _register(client, env)
    with outcomes_failing(runtime, "record.written"):
        response = await _put(client, env, "mail-1", b"secret")
    assert response.status == 201
    [intent] = ledger_entries(env, "record.write-intent")
    assert intent["data"]["sha256"] == hashlib.sha256(b"secret").hexdigest()
    assert await _get(client, env, "mail-1") == 200


async def test_a_write_the_store_refuses_is_ledgered_as_failed_naming_its_intent(client: TestClient, env: Env, runtime, monkeypatch) -> None:
    await _register(client, env)
    await _put(client, env, "mail-1", b"first")
    await runtime.stores["eu-west-1"].set_legal_hold("subjects/aoife/records/mail-1", True)
    response = await _put(client, env, "mail-1", b"second")
    assert response.status == 409
    [_, intent] = ledger_entries(env, "record.write-intent")
    [failed] = ledger_entries(env, "record.write-failed")
    assert failed["data"] == {"intent": intent["seq"], "code": "legal-hold"}


async def test_a_registration_ledgers_the_intent_to_write_the_profile_before_its_outcome(client: TestClient, env: Env, runtime) -> None:
    await _register(client, env)
    [intent] = ledger_entries(env, "subject.write-intent")
    [registered] = ledger_entries(env, "subject.registered")
    stored = await runtime.stores["eu-west-1"].get("subjects/aoife/profile")
    assert registered["data"]["intent"] == intent["seq"] < registered["seq"]
    assert (intent["data"]["act"], intent["data"]["replaces"]) == ("registered", None)
    assert intent["data"]["sha256"] == hashlib.sha256(stored.body).hexdigest() == registered["data"]["profile_sha256"]


async def test_a_delete_ledgers_its_intent_naming_the_version_it_removes(client: TestClient, env: Env) -> None:
    await _register(client, env)
    await _put(client, env, "mail-1", b"secret")
    response = await client.delete("/v1/subjects/aoife/records/mail-1", headers=env.service(*DUBLIN_CRM))
    assert response.status == 204
    [intent] = ledger_entries(env, "record.delete-intent")
    [deleted] = ledger_entries(env, "record.deleted")
    assert intent["data"]["replaces"] == hashlib.sha256(b"secret").hexdigest()
    assert deleted["data"]["intent"] == intent["seq"] < deleted["seq"]
