"""The OpenAPI document is built from the routes' own declarations, so it cannot drift from what is served."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from prometheus_client import CollectorRegistry

from gateway.web.app import create_app
from gateway.web.contract import declared, operation, reply
from tests.orders_support import prepare_authorities
from tests.support import Env

METHODS = ("get", "put", "post", "delete", "patch")
TOKENS = ([{"bearer": []}], [{"bearer": []}, {"federation": []}])  # this gateway's token, or also a peer's forwarding one


async def _spec(client: TestClient) -> dict:
    response = await client.get("/openapi.json")
    assert response.status == 200
    return await response.json()


def _served(app: web.Application) -> list[web.AbstractRoute]:
    return [r for r in app.router.routes() if r.method != "HEAD" and not r.resource.canonical.startswith("/console")]  # type: ignore[union-attr]


def _operations(spec: dict) -> list[tuple[str, str, dict]]:
    return [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items() if method in METHODS]


async def test_the_openapi_document_is_valid_openapi_3_1(client: TestClient) -> None:
    spec = await _spec(client)
    assert spec["openapi"] == "3.1.0"
    validate(spec)


async def test_every_route_but_the_consoles_pages_declares_its_contract(client: TestClient) -> None:
    undeclared = [f"{r.method} {r.resource.canonical}" for r in _served(client.app) if declared(r.handler) is None]  # type: ignore[union-attr]
    assert undeclared == []


async def test_the_document_lists_exactly_the_routes_the_app_serves(client: TestClient) -> None:
    spec = await _spec(client)
    served = {(r.resource.canonical, r.method.lower()) for r in _served(client.app)}  # type: ignore[union-attr]
    described = {(path, method) for path, method, _ in _operations(spec)}
    assert described == served


async def test_every_operation_has_a_unique_operation_id(client: TestClient) -> None:
    ids = [op.get("operationId") for _, _, op in _operations(await _spec(client))]
    assert None not in ids
    assert len(ids) == len(set(ids))


async def test_every_response_but_a_204_describes_its_body(client: TestClient) -> None:
    bare = [
        f"{method.upper()} {path} {status}"
        for path, method, op in _operations(await _spec(client))
        for status, response in op["responses"].items()
        if status != "204" and not all("schema" in media for media in response.get("content", {None: {}}).values())
    ]
    assert bare == []


async def test_every_put_and_post_describes_its_request_body(client: TestClient) -> None:
    spec = await _spec(client)
    missing = [f"{method.upper()} {path}" for path, method, op in _operations(spec) if method in ("put", "post") and "requestBody" not in op]
    assert missing == []


async def test_every_authenticated_operation_needs_a_bearer_token_and_answers_401_and_403(client: TestClient) -> None:
    wrong = [
        f"{method.upper()} {path}"
        for path, method, op in _operations(await _spec(client))
        if op.get("x-roles") and not path.startswith("/v1/federation/")
        if not (op["security"] in TOKENS and {"bearer": []} in op["security"] and {"401", "403"} <= set(op["responses"]))
    ]
    assert wrong == []


async def test_only_the_data_plane_also_takes_a_peers_federation_token(client: TestClient) -> None:
    spec = await _spec(client)
    federated = sorted(f"{method.upper()} {path}" for path, method, op in _operations(spec) if {"federation": []} in op["security"])
    assert federated == [
        "DELETE /v1/subjects/{subject}/records/{key}",
        "GET /v1/federation/subjects/{subject}",
        "GET /v1/subjects/{subject}/records",
        "GET /v1/subjects/{subject}/records/{key}",
        "POST /v1/federation/orders",
        "PUT /v1/subjects/{subject}",
        "PUT /v1/subjects/{subject}/records/{key}",
    ]


async def test_the_federation_routes_take_only_a_peers_federation_token(client: TestClient) -> None:
    spec = await _spec(client)
    routes = [(path, op) for path, _, op in _operations(spec) if path.startswith("/v1/federation/")]
    assert routes
    assert all(op["security"] == [{"federation": []}] and {"401", "403"} <= set(op["responses"]) for _, op in routes)


async def test_the_open_operations_are_marked_open(client: TestClient) -> None:
    spec = await _spec(client)
    open_ops = sorted(f"{method.upper()} {path}" for path, method, op in _operations(spec) if op["security"] == [])
    assert open_ops == ["GET /healthz", "GET /metrics", "GET /openapi.json", "GET /readyz"]


async def test_metrics_is_described_as_needing_an_ops_token_when_the_configuration_says_so(
    env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    prepare_authorities(env)
    settings = dataclasses.replace(env.settings, metrics_public=False)
    spec = await _spec(await aiohttp_client(create_app(settings, registry=CollectorRegistry())))
    metrics = spec["paths"]["/metrics"]["get"]
    assert (metrics["security"], metrics["x-roles"], "401" in metrics["responses"]) == ([{"bearer": []}], ["ops"], True)


async def test_the_declared_roles_are_the_roles_enforced(client: TestClient, env: Env) -> None:
    # a legal token on a service-only route is refused before the handler runs
    response = await client.get("/v1/subjects/alice/records", headers=env.person("legal", "lena"))
    assert (response.status, (await response.json())["code"]) == (403, "forbidden")


def test_a_declaration_with_an_unknown_role_is_refused_when_the_module_loads() -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        operation("x", summary="x", roles=("admin",), responses={200: reply("ok")})
