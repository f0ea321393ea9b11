"""Writes are decided like reads: a caller that may not read data may not change it, nor learn whether it exists."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.orders_support import ledger_entries
from tests.support import Env

AOIFE = {"home_region": "eu-west-1", "residence": "IE", "nationality": "IE", "us_person": False, "location": "IE"}
ALICE = {"home_region": "us-east-1", "residence": "US", "nationality": "US", "us_person": True, "location": "US"}
DUBLIN_CRM = ("crm", "eu-west-1", "crm")
VIRGINIA_CRM = ("crm", "us-east-1", "crm")
VIRGINIA_ANALYTICS = ("analytics", "us-east-1", "analytics")


async def _seed(client: TestClient, env: Env) -> None:
    response = await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*DUBLIN_CRM))
    assert response.status == 201, await response.text()
    response = await client.put(
        "/v1/subjects/aoife/records/profile", params={"category": "subscriber"}, data=b"original", headers=env.service(*DUBLIN_CRM)
    )
    assert response.status == 201, await response.text()


async def _read(client: TestClient, env: Env, key: str) -> tuple[int, bytes]:
    response = await client.get(f"/v1/subjects/aoife/records/{key}", headers=env.service(*DUBLIN_CRM))
    return response.status, await response.read()


async def test_a_service_that_may_not_read_a_record_cannot_overwrite_it(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await client.put(
        "/v1/subjects/aoife/records/profile", params={"category": "subscriber"}, data=b"planted", headers=env.service(*VIRGINIA_ANALYTICS)
    )
    assert response.status == 451
    assert (await response.json())["code"] == "residency-refused"
    assert await _read(client, env, "profile") == (200, b"original")


async def test_a_service_that_may_not_read_a_subject_cannot_plant_a_new_record(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await client.put(
        "/v1/subjects/aoife/records/planted", params={"category": "content"}, data=b"planted", headers=env.service(*VIRGINIA_ANALYTICS)
    )
    assert response.status == 451
    assert (await _read(client, env, "planted"))[0] == 404


async def test_a_refused_write_answers_the_same_whether_or_not_the_record_exists(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    answers = []
    for key in ("profile", "no-such-record"):
        response = await client.put(
            f"/v1/subjects/aoife/records/{key}", params={"category": "subscriber"}, data=b"x", headers=env.service(*VIRGINIA_ANALYTICS)
        )
        body = await response.json()
        answers.append((response.status, body["code"], body["reasons"], body["detail"]))
    assert answers[0] == answers[1]


async def test_a_refused_write_is_in_the_ledger_with_its_reason(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    await client.put("/v1/subjects/aoife/records/profile", params={"category": "subscriber"}, data=b"x", headers=env.service(*VIRGINIA_ANALYTICS))
    [entry] = ledger_entries(env, "record.write")
    assert entry["data"]["outcome"] == "refuse"
    assert entry["data"]["by"]["service"] == "analytics"
    assert entry["data"]["reasons"][0]["code"] == "service-not-covered"


async def test_a_service_that_may_read_a_subject_may_write_its_records(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    # the EU-US Data Privacy Framework covers billing
    response = await client.put(
        "/v1/subjects/aoife/records/invoice", params={"category": "subscriber"}, data=b"due", headers=env.service("billing", "us-east-1", "billing")
    )
    assert response.status == 201
    assert await _read(client, env, "invoice") == (200, b"due")


async def test_a_service_that_may_not_read_a_subject_cannot_change_its_facts(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    changed = {**AOIFE, "us_person": True, "location": "US"}
    response = await client.put("/v1/subjects/aoife", json=changed, headers=env.service(*VIRGINIA_ANALYTICS))
    assert response.status == 451
    assert (await response.json())["code"] == "residency-refused"
    [entry] = ledger_entries(env, "subject.changed")
    assert entry["data"]["outcome"] == "refuse"


async def test_a_refused_change_of_facts_leaves_the_stored_profile_as_it_was(client: TestClient, env: Env, runtime) -> None:
    await _seed(client, env)
    before = await runtime.stores["eu-west-1"].get("subjects/aoife/profile")
    await client.put("/v1/subjects/aoife", json={**AOIFE, "location": "US"}, headers=env.service(*VIRGINIA_ANALYTICS))
    after = await runtime.stores["eu-west-1"].get("subjects/aoife/profile")
    assert after.body == before.body


async def test_changing_a_subjects_facts_is_ledgered_with_the_old_and_new_profile_hashes(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    [registered] = ledger_entries(env, "subject.registered")
    response = await client.put("/v1/subjects/aoife", json={**AOIFE, "location": "FR"}, headers=env.service(*DUBLIN_CRM))
    assert response.status == 200
    [changed] = ledger_entries(env, "subject.changed")
    assert changed["data"]["outcome"] == "allow"
    assert changed["data"]["old_profile_sha256"] == registered["data"]["profile_sha256"]
    assert changed["data"]["new_profile_sha256"] != changed["data"]["old_profile_sha256"]


async def test_a_new_subject_can_still_be_registered_by_any_service(client: TestClient, env: Env) -> None:
    response = await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*VIRGINIA_ANALYTICS))
    assert response.status == 201


async def test_a_refused_re_registration_does_not_tell_whether_the_facts_differ(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    same = await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*VIRGINIA_ANALYTICS))
    other = await client.put("/v1/subjects/aoife", json={**AOIFE, "location": "US"}, headers=env.service(*VIRGINIA_ANALYTICS))
    assert same.status == other.status == 451
