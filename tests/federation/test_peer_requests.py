"""Requests between gateways, in one process: the Europe gateway, whose peers (Americas, Asia-Pacific) are not running.

Tokens of the peers are made with real keys through the project's own code
(``issue_federation_token``); their public keys are where Europe's
configuration says. A peer that is not running answers nothing, so a request
Europe forwards to it fails: a 403 here shows that nothing was forwarded.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ed25519
from prometheus_client import CollectorRegistry

from gateway.config import load_config
from gateway.federation import issue_federation_token
from gateway.keys import load_private_key, write_public_key
from gateway.legal.verify import sign_order
from gateway.model import Caller
from gateway.web.app import create_app
from gateway.web.state import STATE_KEY
from tests.faults.harness import free_port
from tests.federation.support import federated_config
from tests.orders_support import prepare_authorities
from tests.support import Env, make_env

AMERICAS = ed25519.Ed25519PrivateKey.generate()
BILLING = Caller("billing", "service", service="billing", region="us-east-1", purpose="billing")
INTAKE = Caller("portal", "intake")
AOIFE = {"home_region": "eu-west-1", "residence": "IE"}


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = make_env(tmp_path, federated_config("europe", {"americas": free_port(), "apac": free_port()}))
    for peer, key in (("americas", AMERICAS), ("apac", ed25519.Ed25519PrivateKey.generate())):
        write_public_key(env.data_dir / "keys" / "peers" / f"{peer}.pub", key.public_key())
    return env


@pytest.fixture
async def client(env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    prepare_authorities(env)
    return await aiohttp_client(create_app(env.settings, registry=CollectorRegistry()))


def from_americas(env: Env, method: str, path: str, caller: Caller = BILLING, *, audience: str = "europe") -> dict[str, str]:
    token = issue_federation_token(
        caller, key=AMERICAS, issuer="americas", audience=audience, method=method, path=path, request_id="r-1", now=env.clock(), ttl=timedelta(seconds=60)
    )
    return {"Authorization": f"Bearer {token}"}


async def register_aoife(client: TestClient, env: Env) -> None:
    """Aoife, registered in Dublin with one record (by the service directly: over HTTP, a new id waits for every peer's answer)."""
    records = client.app[STATE_KEY].rt.records
    support = Caller("support", "service", service="support", region="eu-west-1", purpose="support")
    await records.register_subject(support, records.parse_subject("aoife", AOIFE))
    await records.put_record(support, "aoife", "profile", "subscriber", b"hello")


def entries(env: Env, kind: str) -> list[dict]:
    lines = (env.data_dir / "ledger" / "ledger.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["kind"] == kind]


async def test_a_read_a_peer_forwards_is_decided_for_its_original_caller_and_ledgered_as_coming_through_that_peer(client: TestClient, env: Env) -> None:
    await register_aoife(client, env)
    path = "/v1/subjects/aoife/records/profile"
    response = await client.get(path, headers=from_americas(env, "GET", path))
    assert (response.status, await response.read()) == (200, b"hello")
    assert entries(env, "service.read")[-1]["data"]["by"] == {
        "principal": "billing",
        "role": "service",
        "service": "billing",
        "region": "us-east-1",
        "purpose": "billing",
        "via": "americas",
    }


async def test_a_federation_token_is_not_a_bearer_token_on_the_other_routes(client: TestClient, env: Env) -> None:
    response = await client.get("/v1/cases", headers=from_americas(env, "GET", "/v1/cases", Caller("lena", "legal")))
    assert (response.status, (await response.json())["code"]) == (401, "token-invalid")


async def test_a_federation_token_for_another_gateway_is_refused_with_401(client: TestClient, env: Env) -> None:
    await register_aoife(client, env)
    path = "/v1/subjects/aoife/records"
    response = await client.get(path, headers=from_americas(env, "GET", path, audience="apac"))
    assert (response.status, (await response.json())["code"]) == (401, "token-invalid")


async def test_a_bearer_token_on_a_federation_route_is_forbidden(client: TestClient, env: Env) -> None:
    await register_aoife(client, env)
    response = await client.get("/v1/federation/subjects/aoife", headers=env.service("billing", "eu-west-1"))
    assert (response.status, (await response.json())["code"]) == (403, "forbidden")


async def test_a_peer_learns_the_home_region_of_a_subject_this_gateway_owns(client: TestClient, env: Env) -> None:
    await register_aoife(client, env)
    path = "/v1/federation/subjects/aoife"
    response = await client.get(path, headers=from_americas(env, "GET", path))
    assert (response.status, await response.json()) == (200, {"subject": "aoife", "home_region": "eu-west-1"})


async def test_a_peer_asking_about_another_gateways_subject_is_told_it_is_unknown_here(client: TestClient, env: Env) -> None:
    await client.app[STATE_KEY].rt.records.claim_peer_home("alice", "us-east-1")
    path = "/v1/federation/subjects/alice"
    response = await client.get(path, headers=from_americas(env, "GET", path))
    assert (response.status, (await response.json())["code"]) == (404, "unknown-subject")


async def test_a_forwarded_request_for_a_subject_in_a_region_this_gateway_does_not_own_is_refused_and_not_forwarded_again(
    client: TestClient, env: Env
) -> None:
    await client.app[STATE_KEY].rt.records.claim_peer_home("mia", "ap-southeast-2")
    path = "/v1/subjects/mia/records/profile"
    response = await client.get(path, headers=from_americas(env, "GET", path))
    assert (response.status, (await response.json())["code"]) == (403, "not-region-owner")


async def test_a_forwarded_registration_in_a_region_this_gateway_does_not_own_is_refused(client: TestClient, env: Env) -> None:
    path = "/v1/subjects/bob"
    response = await client.put(path, json={"home_region": "us-east-1", "residence": "US"}, headers=from_americas(env, "PUT", path))
    assert (response.status, (await response.json())["code"]) == (403, "not-region-owner")


async def test_a_request_for_a_peers_subject_whose_gateway_does_not_answer_is_503_and_never_served_here(client: TestClient, env: Env) -> None:
    await client.app[STATE_KEY].rt.records.claim_peer_home("alice", "us-east-1")
    response = await client.get("/v1/subjects/alice/records/profile", headers=env.service("billing", "eu-west-1"))
    body = await response.json()
    assert (response.status, body["code"], body["peer"]) == (503, "peer-unavailable", "americas")


async def test_an_id_unknown_here_while_a_peer_does_not_answer_is_503_not_404(client: TestClient, env: Env) -> None:
    response = await client.get("/v1/subjects/nobody/records/profile", headers=env.service("billing", "eu-west-1"))
    assert (response.status, (await response.json())["code"]) == (503, "peer-unavailable")


async def test_a_new_id_is_not_registered_while_a_peer_that_may_hold_it_does_not_answer(client: TestClient, env: Env) -> None:
    response = await client.put("/v1/subjects/sean", json=AOIFE, headers=env.service("support", "eu-west-1"))
    assert (response.status, (await response.json())["code"]) == (503, "peer-unavailable")


async def test_a_request_forwarded_to_a_peer_that_does_not_answer_is_ledgered_nowhere_as_served(client: TestClient, env: Env) -> None:
    await client.app[STATE_KEY].rt.records.claim_peer_home("alice", "us-east-1")
    await client.get("/v1/subjects/alice/records/profile", headers=env.service("billing", "eu-west-1"))
    assert (entries(env, "service.read"), entries(env, "federation.forwarded")) == ([], [])


async def test_a_gateway_without_peers_refuses_every_federation_token(tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    plain = make_env(tmp_path)
    prepare_authorities(plain)
    client = await aiohttp_client(create_app(plain.settings, registry=CollectorRegistry()))
    path = "/v1/subjects/aoife/records"
    response = await client.get(path, headers=from_americas(plain, "GET", path))
    assert (response.status, (await response.json())["code"]) == (401, "token-invalid")


def warrant(env: Env, *subjects: str) -> str:
    """A US court's warrant for the subscriber data of ``subjects``, signed with the authority's key."""
    claims = {
        "jti": "warrant-1",
        "iss": "us-court-sdny",
        "iat": int(env.clock().timestamp()),
        "exp": int((env.clock() + timedelta(days=30)).timestamp()),
        "instrument": "us.warrant",
        "subjects": list(subjects),
        "categories": ["subscriber"],
    }
    config = load_config(env.settings.config_path)
    key = load_private_key((env.data_dir / config.legal.authorities["us-court-sdny"].public_key).with_suffix(".key"))
    return sign_order(claims, key=key, kid="us-court-sdny")


async def test_an_order_a_peer_forwards_is_decided_here_for_this_gateways_own_subjects_only(client: TestClient, env: Env) -> None:
    await register_aoife(client, env)
    await client.app[STATE_KEY].rt.records.claim_peer_home("alice", "us-east-1")
    path = "/v1/federation/orders"
    response = await client.post(path, json={"order": warrant(env, "alice", "aoife")}, headers=from_americas(env, "POST", path, INTAKE))
    document = await response.json()
    assert (response.status, [(i["subject"], i["region"]) for i in document["items"]], document["forwarded_by"]) == (201, [("aoife", "eu-west-1")], "americas")


async def test_explain_leaves_a_peers_subject_to_that_peer_and_asks_no_gateway(client: TestClient, env: Env) -> None:
    await register_aoife(client, env)
    await client.app[STATE_KEY].rt.records.claim_peer_home("alice", "us-east-1")
    response = await client.post("/v1/explain", json={"order": warrant(env, "alice", "aoife")}, headers=env.person("legal", "lena"))
    explained = await response.json()
    assert (response.status, [i["subject"] for i in explained["items"]]) == (200, ["aoife"])
    assert "## alice / us-east-1: decided by peer gateway `americas`; explain it there" in explained["trace"]


async def test_a_peer_that_does_not_answer_is_counted_in_the_metrics(client: TestClient, env: Env) -> None:
    await client.app[STATE_KEY].rt.records.claim_peer_home("alice", "us-east-1")
    await client.get("/v1/subjects/alice/records/profile", headers=env.service("billing", "eu-west-1"))
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_peer_requests_total{outcome="unavailable",peer="americas"} 1.0' in metrics
