"""No input a client can send makes the gateway fail (500) or hold much memory: each is a 4xx saying what to fix."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import jwt
import pytest
from aiohttp.test_utils import TestClient

from gateway.config import load_config
from gateway.keys import load_private_key, resolve
from gateway.model import Caller
from gateway.tokens import issue_token
from gateway.web.console import SESSION_COOKIE
from tests.support import Env

DUBLIN_CRM = ("crm", "eu-west-1", "crm")
NESTED = b"[" * 30_000 + b"]" * 30_000  # inside the JSON size limit, far past the parser's recursion limit


def _signed(env: Env, **claims: object) -> str:
    """A token signed with the gateway's key whose claims are the valid ones with ``claims`` replacing them."""
    config = load_config(env.settings.config_path)
    key = load_private_key(resolve(env.data_dir, config.identity.token_private_key))
    valid = issue_token(Caller("crm", "service", service="crm", region="eu-west-1", purpose="crm"), key=key, identity=config.identity, now=env.clock())
    body = jwt.decode(valid, options={"verify_signature": False}) | claims
    return jwt.encode(body, key, algorithm="EdDSA")


async def _problem(response) -> str:
    assert response.headers["Content-Type"].startswith("application/problem+json"), await response.text()
    return (await response.json())["code"]


async def test_a_deeply_nested_subject_body_is_invalid_json_not_a_server_error(client: TestClient, env: Env) -> None:
    response = await client.put(
        "/v1/subjects/aoife", data=NESTED, headers={**env.service(*DUBLIN_CRM), "Content-Type": "application/json"}
    )
    assert (response.status, await _problem(response)) == (400, "invalid-json")


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("/v1/cases/c-1/approvals", "legal"),
        ("/v1/cases/c-1/objections", "legal"),
        ("/v1/support-access", "support"),
        ("/v1/explain", "legal"),
    ],
)
async def test_a_deeply_nested_json_body_is_invalid_json_on_every_json_route(client: TestClient, env: Env, path: str, role: str) -> None:
    response = await client.post(path, data=NESTED, headers={**env.person(role, "someone"), "Content-Type": "application/json"})
    assert (response.status, await _problem(response)) == (400, "invalid-json")


async def test_json_nested_deeper_than_the_limit_is_refused_even_when_python_could_parse_it(client: TestClient, env: Env) -> None:
    body = b'{"home_region": "eu-west-1", "residence": "IE", "location": ' + b"[" * 40 + b"]" * 40 + b"}"
    response = await client.put("/v1/subjects/aoife", data=body, headers={**env.service(*DUBLIN_CRM), "Content-Type": "application/json"})
    assert (response.status, await _problem(response)) == (400, "invalid-json")


async def test_a_json_member_named_twice_is_refused_rather_than_the_last_one_winning(client: TestClient, env: Env) -> None:
    body = b'{"home_region": "us-east-1", "residence": "IE", "home_region": "eu-west-1"}'
    response = await client.put("/v1/subjects/aoife", data=body, headers={**env.service(*DUBLIN_CRM), "Content-Type": "application/json"})
    assert (response.status, await _problem(response)) == (400, "invalid-json")
    assert "home_region" in (await response.json())["detail"]


async def test_a_json_body_larger_than_the_json_limit_is_too_large(client: TestClient, env: Env) -> None:
    body = b'{"justification": "' + b"x" * 200_000 + b'"}'
    response = await client.post("/v1/cases/c-1/approvals", data=body, headers={**env.person("legal", "l"), "Content-Type": "application/json"})
    assert (response.status, await _problem(response)) == (413, "payload-too-large")


async def test_a_chunked_json_body_over_the_limit_is_too_large_without_a_content_length(client: TestClient, env: Env) -> None:
    async def chunks():
        yield b'{"justification": "'
        for _ in range(64):
            yield b"x" * 65536
        yield b'"}'

    response = await client.post("/v1/cases/c-1/approvals", data=chunks(), headers={**env.person("legal", "l"), "Content-Type": "application/json"})
    assert (response.status, await _problem(response)) == (413, "payload-too-large")


async def test_a_chunked_console_sign_in_body_over_the_form_limit_is_too_large(client: TestClient) -> None:
    async def chunks():
        for _ in range(64):
            yield b"token=" + b"x" * 65536

    response = await client.post("/console/login", data=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 413


async def test_a_client_that_aborts_its_sign_in_body_is_not_a_server_error(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    _, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /console/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ntoken=abc")
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.2)  # let the server see the end of the connection
    metrics = await (await client.get("/metrics")).text()
    assert 'status="500"' not in metrics
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_residence_that_is_not_an_assigned_country_is_refused(client: TestClient, env: Env) -> None:
    response = await client.put("/v1/subjects/aoife", json={"home_region": "eu-west-1", "residence": "ZZ"}, headers=env.service(*DUBLIN_CRM))
    assert (response.status, await _problem(response)) == (400, "invalid-subject")


async def test_a_token_whose_not_before_is_not_a_number_is_refused(client: TestClient, env: Env) -> None:
    token = _signed(env, nbf="tomorrow")
    response = await client.get("/v1/subjects/aoife/records", headers={"Authorization": f"Bearer {token}"})
    assert (response.status, await _problem(response)) == (401, "token-invalid")


async def test_a_token_that_lives_longer_than_the_maximum_lifetime_is_refused(client: TestClient, env: Env) -> None:
    token = _signed(env, exp=10**20)
    response = await client.get("/v1/subjects/aoife/records", headers={"Authorization": f"Bearer {token}"})
    assert (response.status, await _problem(response)) == (401, "token-invalid")
    assert "lifetime" in (await response.json())["detail"]


async def test_a_token_whose_times_are_booleans_is_refused(client: TestClient, env: Env) -> None:
    token = _signed(env, iat=True)
    response = await client.get("/v1/subjects/aoife/records", headers={"Authorization": f"Bearer {token}"})
    assert (response.status, await _problem(response)) == (401, "token-invalid")


async def test_a_console_session_with_a_far_future_expiry_is_sent_to_sign_in_not_a_server_error(client: TestClient, env: Env) -> None:
    config = load_config(env.settings.config_path)
    key = load_private_key(resolve(env.data_dir, config.identity.token_private_key))
    token = issue_token(Caller("lawyer", "legal"), key=key, identity=config.identity, now=env.clock(), ttl=timedelta(days=10**5))
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})
    response = await client.get("/console/", allow_redirects=False)
    assert response.status in (303, 401), await response.text()


async def test_a_method_a_route_does_not_allow_is_answered_with_the_allowed_methods(client: TestClient) -> None:
    response = await client.post("/v1/subjects/aoife/records")
    assert (response.status, await _problem(response)) == (405, "method-not-allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET"}
