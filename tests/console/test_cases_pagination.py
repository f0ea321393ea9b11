"""Paging through the legal review queue: `limit`, an opaque `cursor`, `next_cursor`, the queue's order kept."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.console.support import HOLD, REVIEW, decide, submitted
from tests.orders_support import case_named, seed_case, sign_case, submit
from tests.support import Env

SUBJECTS = tuple(f"ie-{n}" for n in range(5))


async def review_cases(client: TestClient, env: Env, subjects: tuple[str, ...] = SUBJECTS, order_id: str = "sdny-many") -> list[str]:
    """One US warrant naming every subject, stored in Dublin: a legal-review case per subject; their ids."""
    base = case_named(REVIEW)
    case = replace(base, order=replace(base.order, id=order_id, subjects=subjects))
    env.clock.now = case.at
    await seed_case(client, env, case)
    status, document = await submit(client, env, sign_case(env, case))
    assert status == 201, document
    return [item["case"] for item in document["items"] if item.get("case")]


async def queue(client: TestClient, env: Env, **params: str) -> tuple[int, dict[str, Any]]:
    response = await client.get("/v1/cases", params=params, headers=env.person("legal", "reader"))
    return response.status, await response.json()


async def walk(client: TestClient, env: Env, limit: int, **filters: str) -> list[str]:
    seen: list[str] = []
    params = {"limit": str(limit), **filters}
    while True:
        status, page = await queue(client, env, **params)
        assert status == 200, page
        assert len(page["cases"]) <= limit
        seen += [c["id"] for c in page["cases"]]
        if page["next_cursor"] is None:
            return seen
        params = {"limit": str(limit), "cursor": page["next_cursor"], **filters}


async def test_walking_every_page_gives_each_case_once_in_the_order_of_the_whole_queue(client: TestClient, env: Env) -> None:
    await review_cases(client, env)
    _, _, hold = await submitted(client, env, HOLD)  # another deadline, another kind
    status, whole = await queue(client, env)
    assert status == 200 and whole["next_cursor"] is None and len(whole["cases"]) == len(SUBJECTS) + 1
    assert hold["case"] in [c["id"] for c in whole["cases"]]
    assert await walk(client, env, 2) == [c["id"] for c in whole["cases"]]


async def test_a_closed_case_comes_after_the_open_ones_on_the_last_page(client: TestClient, env: Env) -> None:
    ids = await review_cases(client, env)
    denied = await decide(client, env, ids[0], "alice", decision="deny", justification="Irish law forbids this transfer.")
    assert denied.status == 201
    walked = await walk(client, env, 2)
    assert sorted(walked) == sorted(ids) and walked[-1] == ids[0]


async def test_filters_apply_to_every_page(client: TestClient, env: Env) -> None:
    ids = await review_cases(client, env)
    await submitted(client, env, HOLD)
    assert sorted(await walk(client, env, 2, state="open")) == sorted(ids)


async def test_a_case_opened_between_two_pages_is_not_lost_when_it_sorts_after_the_boundary(client: TestClient, env: Env) -> None:
    ids = await review_cases(client, env, SUBJECTS[:2], "sdny-first")
    status, first = await queue(client, env, limit="1")
    assert status == 200 and first["next_cursor"] is not None
    later = await review_cases(client, env, ("ie-9",), "sdny-later")  # same deadline: sorts by id
    seen = [c["id"] for c in first["cases"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        _, page = await queue(client, env, limit="1", cursor=cursor)
        seen += [c["id"] for c in page["cases"]]
        cursor = page["next_cursor"]
    boundary = first["cases"][0]["id"]
    assert sorted(seen) == sorted(set(seen)) and set(ids) <= set(seen)
    assert (later[0] in seen) == (later[0] > boundary)


@pytest.mark.parametrize("limit", ["0", "1001", "many"])
async def test_a_limit_outside_one_to_a_thousand_is_refused_naming_the_range(client: TestClient, env: Env, limit: str) -> None:
    status, problem = await queue(client, env, limit=limit)
    assert (status, problem["code"]) == (400, "invalid-request")
    assert "from 1 to 1000" in problem["detail"]


async def test_a_cursor_from_a_record_list_is_refused_on_the_case_queue(client: TestClient, env: Env) -> None:
    from gateway.web.pages import encode_cursor

    status, problem = await queue(client, env, cursor=encode_cursor("records", ["rec-1"]))
    assert (status, problem["code"]) == (400, "invalid-cursor")


async def test_a_cursor_that_is_not_base64_json_is_refused(client: TestClient, env: Env) -> None:
    status, problem = await queue(client, env, cursor="%%%not-a-cursor")
    assert (status, problem["code"]) == (400, "invalid-cursor")
