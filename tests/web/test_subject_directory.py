"""The subject directory through the gateway: marked complete on a new deployment, and indexed by `gateway subjects index`."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient

from gateway.services.records import DIRECTORY_KEY, home_claim_key
from tests.support import Env, run_cli

AOIFE = {"home_region": "eu-west-1", "residence": "IE", "nationality": "IE", "us_person": False, "location": "IE"}
DUBLIN_CRM = ("crm", "eu-west-1", "crm")


async def test_a_new_deployment_starts_with_a_complete_directory(client: TestClient, runtime) -> None:
    await runtime.records.control.head(DIRECTORY_KEY)


async def test_gateway_subjects_index_gives_a_subject_without_a_claim_its_claim(client: TestClient, env: Env, runtime) -> None:
    assert (await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*DUBLIN_CRM))).status == 201
    await runtime.records.control.delete(home_claim_key("aoife"))  # as a subject stored before the directory
    await runtime.records.control.delete(DIRECTORY_KEY)
    assert await asyncio.to_thread(run_cli, env.settings.config_path.parent, "subjects", "index") == 0
    claim = await runtime.records.control.get(home_claim_key("aoife"))
    assert b'"home_region":"eu-west-1"' in claim.body


async def test_gateway_subjects_index_completes_the_directory(client: TestClient, env: Env, runtime) -> None:
    await runtime.records.control.delete(DIRECTORY_KEY)
    assert await asyncio.to_thread(run_cli, env.settings.config_path.parent, "subjects", "index") == 0
    await runtime.records.control.head(DIRECTORY_KEY)  # ObjectNotFound if it were not marked complete


async def test_gateway_subjects_index_writes_its_own_chain_beside_the_serving_one(
    client: TestClient, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_CHAIN_ID", "gateway-0")  # what the serving replica on this host writes
    assert await asyncio.to_thread(run_cli, env.settings.config_path.parent, "subjects", "index") == 0
    assert (env.data_dir / "ledger" / "gateway-0-admin.jsonl").exists()
    assert not (env.data_dir / "ledger" / "gateway-0.jsonl").exists()
