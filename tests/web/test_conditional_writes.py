"""Conditional requests on the data plane: `If-Match` / `If-None-Match: *` on PUT and DELETE, 412 on a mismatch."""

from __future__ import annotations

import hashlib

from aiohttp.test_utils import TestClient

from tests.support import Env

AOIFE = {"home_region": "eu-west-1", "residence": "IE", "nationality": "IE", "us_person": False, "location": "IE"}
DUBLIN_CRM = ("crm", "eu-west-1", "crm")
VIRGINIA_ANALYTICS = ("analytics", "us-east-1", "analytics")
PATH = "/v1/subjects/aoife/records/mail-1"


def _etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()}"'


async def _seed(client: TestClient, env: Env) -> None:
    response = await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*DUBLIN_CRM))
    assert response.status == 201, await response.text()
    response = await _put(client, env, b"first")
    assert response.status == 201, await response.text()


async def _put(client: TestClient, env: Env, body: bytes, who: tuple[str, str, str] = DUBLIN_CRM, **headers: str):
    return await client.put(PATH, params={"category": "content"}, data=body, headers={**env.service(*who), **headers})


async def _body(client: TestClient, env: Env) -> bytes | None:
    response = await client.get(PATH, headers=env.service(*DUBLIN_CRM))
    return await response.read() if response.status == 200 else None


async def test_a_put_answers_the_etag_of_what_it_stored(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await _put(client, env, b"second")
    assert response.headers["ETag"] == _etag(b"second")


async def test_a_put_matching_the_current_etag_replaces_the_record(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await _put(client, env, b"second", **{"If-Match": _etag(b"first")})
    assert response.status == 200
    assert await _body(client, env) == b"second"


async def test_a_put_with_a_stale_etag_is_refused_with_412_and_changes_nothing(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await _put(client, env, b"second", **{"If-Match": _etag(b"something else")})
    assert (response.status, (await response.json())["code"]) == (412, "precondition-failed")
    assert response.headers["ETag"] == _etag(b"first")
    assert await _body(client, env) == b"first"


async def test_if_match_accepts_a_list_of_etags(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await _put(client, env, b"second", **{"If-Match": f"{_etag(b'other')}, {_etag(b'first')}"})
    assert response.status == 200


async def test_if_match_star_on_a_missing_record_is_refused(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await client.put(
        "/v1/subjects/aoife/records/new-1", params={"category": "content"}, data=b"x", headers={**env.service(*DUBLIN_CRM), "If-Match": "*"}
    )
    assert (response.status, (await response.json())["code"]) == (412, "precondition-failed")


async def test_if_none_match_star_creates_a_new_record(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await client.put(
        "/v1/subjects/aoife/records/new-1", params={"category": "content"}, data=b"x", headers={**env.service(*DUBLIN_CRM), "If-None-Match": "*"}
    )
    assert response.status == 201


async def test_if_none_match_star_never_overwrites_an_existing_record(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await _put(client, env, b"second", **{"If-None-Match": "*"})
    assert (response.status, (await response.json())["code"]) == (412, "precondition-failed")
    assert await _body(client, env) == b"first"


async def test_a_delete_with_a_stale_etag_is_refused_and_the_record_stays(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await client.delete(PATH, headers={**env.service(*DUBLIN_CRM), "If-Match": _etag(b"other")})
    assert response.status == 412
    assert await _body(client, env) == b"first"


async def test_a_delete_matching_the_current_etag_removes_the_record(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await client.delete(PATH, headers={**env.service(*DUBLIN_CRM), "If-Match": _etag(b"first")})
    assert response.status == 204
    assert await _body(client, env) is None


async def test_a_malformed_precondition_is_refused_with_400(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await _put(client, env, b"second", **{"If-Match": "not-quoted"})
    assert (response.status, (await response.json())["code"]) == (400, "invalid-precondition")
    assert await _body(client, env) == b"first"


async def test_a_refused_caller_gets_451_whatever_its_preconditions(client: TestClient, env: Env) -> None:
    await _seed(client, env)
    response = await _put(client, env, b"planted", VIRGINIA_ANALYTICS, **{"If-Match": _etag(b"other")})
    assert (response.status, (await response.json())["code"]) == (451, "residency-refused")
    assert "ETag" not in response.headers
