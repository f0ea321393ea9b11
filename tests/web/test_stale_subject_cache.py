"""A subject the gateway remembers but whose profile is gone from its home store (a store that came back empty) is unknown."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.support import Env

DUBLIN_CRM = ("crm", "eu-west-1", "crm")
AOIFE = {"home_region": "eu-west-1", "residence": "IE"}


async def _registered_then_lost(client: TestClient, env: Env, runtime) -> None:
    assert (await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*DUBLIN_CRM))).status == 201
    response = await client.put("/v1/subjects/aoife/records/mail-1", params={"category": "content"}, data=b"hello", headers=env.service(*DUBLIN_CRM))
    assert response.status == 201
    for key in await runtime.stores["eu-west-1"].list("subjects/aoife/"):  # the store lost its contents
        await runtime.stores["eu-west-1"].delete(key)


async def test_a_write_for_a_remembered_subject_whose_profile_is_gone_is_unknown_subject(client: TestClient, env: Env, runtime) -> None:
    await _registered_then_lost(client, env, runtime)
    response = await client.put("/v1/subjects/aoife/records/mail-2", params={"category": "content"}, data=b"lost", headers=env.service(*DUBLIN_CRM))
    assert response.status == 404
    assert (await response.json())["code"] == "unknown-subject"
    assert await runtime.stores["eu-west-1"].list("subjects/aoife/") == []


async def test_a_read_of_a_missing_record_whose_subject_profile_is_gone_is_unknown_subject(client: TestClient, env: Env, runtime) -> None:
    await _registered_then_lost(client, env, runtime)
    response = await client.get("/v1/subjects/aoife/records/mail-1", headers=env.service(*DUBLIN_CRM))
    assert response.status == 404
    assert (await response.json())["code"] == "unknown-subject"


async def test_a_remembered_subject_registered_again_takes_writes(client: TestClient, env: Env, runtime) -> None:
    await _registered_then_lost(client, env, runtime)
    await client.put("/v1/subjects/aoife/records/mail-2", params={"category": "content"}, data=b"lost", headers=env.service(*DUBLIN_CRM))
    assert (await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*DUBLIN_CRM))).status == 201
    response = await client.put("/v1/subjects/aoife/records/mail-2", params={"category": "content"}, data=b"again", headers=env.service(*DUBLIN_CRM))
    assert response.status == 201
