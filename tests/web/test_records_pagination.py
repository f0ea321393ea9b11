"""Paging through a subject's record list: `limit`, an opaque `cursor`, `next_cursor`."""

from __future__ import annotations

import base64
import json

import pytest
from aiohttp.test_utils import TestClient

from tests.support import Env
from tests.web.test_records_api import ALICE, WRITER, register, store

KEYS = [f"rec-{n:02d}" for n in range(7)]


@pytest.fixture
async def alice(client: TestClient, env: Env) -> str:
    await register(client, env, "alice", ALICE)
    for key in reversed(KEYS):  # written out of order: pages are ordered by key, not by when
        await store(client, env, "alice", key, key.encode())
    return "alice"


async def listing(client: TestClient, env: Env, **params: str) -> tuple[int, dict]:
    response = await client.get("/v1/subjects/alice/records", params=params, headers=env.service(*WRITER))
    return response.status, await response.json()


async def test_walking_every_page_lists_each_record_exactly_once_in_key_order(client: TestClient, env: Env, alice: str) -> None:
    seen, params = [], {"limit": "3"}
    while True:
        status, page = await listing(client, env, **params)
        assert status == 200, page
        assert len(page["records"]) <= 3
        seen += [r["key"] for r in page["records"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": "3", "cursor": page["next_cursor"]}
    assert seen == KEYS


async def test_a_list_that_fits_one_page_has_no_next_cursor(client: TestClient, env: Env, alice: str) -> None:
    status, page = await listing(client, env)
    assert status == 200
    assert ([r["key"] for r in page["records"]], page["next_cursor"]) == (KEYS, None)


async def test_a_page_exactly_as_long_as_the_rest_of_the_list_has_no_next_cursor(client: TestClient, env: Env, alice: str) -> None:
    status, page = await listing(client, env, limit=str(len(KEYS)))
    assert status == 200 and len(page["records"]) == len(KEYS) and page["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "2.5", ""])
async def test_a_limit_outside_one_to_a_thousand_is_refused_naming_the_range(client: TestClient, env: Env, alice: str, limit: str) -> None:
    status, problem = await listing(client, env, limit=limit)
    assert (status, problem["code"]) == (400, "invalid-request")
    assert "from 1 to 1000" in problem["detail"]


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "",
        base64.urlsafe_b64encode(b"[1,2]").decode(),
        base64.urlsafe_b64encode(json.dumps({"list": "records", "after": [7]}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"list": "cases", "after": [False, "2026-10-15", "case-0"]}).encode()).decode(),
        "W" * 5000,
    ],
)
async def test_a_cursor_the_gateway_did_not_make_for_this_list_is_refused(client: TestClient, env: Env, alice: str, cursor: str) -> None:
    status, problem = await listing(client, env, cursor=cursor)
    assert (status, problem["code"]) == (400, "invalid-cursor")


async def test_a_record_written_after_a_page_was_served_still_shows_on_a_later_page(client: TestClient, env: Env, alice: str) -> None:
    status, first = await listing(client, env, limit="2")
    assert status == 200
    await store(client, env, "alice", "rec-99", b"late")
    seen = [r["key"] for r in first["records"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        status, page = await listing(client, env, limit="2", cursor=cursor)
        seen += [r["key"] for r in page["records"]]
        cursor = page["next_cursor"]
    assert seen == [*KEYS, "rec-99"]


async def test_the_openapi_document_describes_limit_cursor_and_next_cursor_on_both_lists(client: TestClient) -> None:
    spec = await (await client.get("/openapi.json")).json()
    for path in ("/v1/subjects/{subject}/records", "/v1/cases"):
        operation = spec["paths"][path]["get"]
        assert {"limit", "cursor"} <= {p["name"] for p in operation["parameters"]}, path
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert "next_cursor" in schema["required"], path
