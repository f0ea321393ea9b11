"""While one region's store cannot be asked, the subject's home claim says whether it may live there: the other regions go on."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.errors import StoreError
from tests.support import Env

DUBLIN_CRM = ("crm", "eu-west-1", "crm")
FRANKFURT_CRM = ("crm", "eu-central-1", "crm")


def _take_down(runtime, monkeypatch, region: str) -> None:
    async def down(*args, **kwargs) -> None:
        raise StoreError(f"the store of `{region}` is down", region=region)

    for operation in ("get", "head", "put", "list", "delete"):
        monkeypatch.setattr(runtime.stores[region], operation, down)


async def test_a_new_subject_is_registered_in_a_region_that_is_up_while_another_region_is_down(
    client: TestClient, env: Env, runtime, monkeypatch
) -> None:
    _take_down(runtime, monkeypatch, "eu-central-1")
    response = await client.put("/v1/subjects/aoife", json={"home_region": "eu-west-1", "residence": "IE"}, headers=env.service(*DUBLIN_CRM))
    assert response.status == 201, await response.text()


async def test_a_subject_claimed_by_a_region_that_is_down_is_unavailable_not_unknown(client: TestClient, env: Env, runtime, monkeypatch) -> None:
    response = await client.put("/v1/subjects/hanna", json={"home_region": "eu-central-1", "residence": "DE"}, headers=env.service(*FRANKFURT_CRM))
    assert response.status == 201
    runtime.records._profiles.clear()  # as after a restart
    _take_down(runtime, monkeypatch, "eu-central-1")
    response = await client.get("/v1/subjects/hanna/records/mail-1", headers=env.service(*FRANKFURT_CRM))
    problem = await response.json()
    assert (response.status, problem["code"], problem["region"]) == (503, "store-unavailable", "eu-central-1")
