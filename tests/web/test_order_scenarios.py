"""Every scenario of the legal model, decided through the HTTP API with real signatures."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.legal.decision_cases import Case, load_cases
from gateway.model import parse_time
from tests.orders_support import item_for, seed_case, sign_case, submit
from tests.support import Env

CASES = Path(__file__).resolve().parents[1] / "cases"
SCENARIOS = load_cases([CASES / "legal-md-scenarios.toml"])
# Cases that need state the HTTP path builds itself (an earlier order, an objection, a replay) are run elsewhere.
# Cases about a subject or category the order does not name cannot arise over HTTP: the service decides only what is named.
HTTP_CASES = [
    c
    for c in load_cases([CASES])
    if c.prior_preservation is None
    and c.objection is None
    and not c.replayed
    and c.category in c.order.categories
    and (not c.order.subjects or c.subject.id in c.order.subjects or any(ch in s for s in c.order.subjects for ch in "*?%"))
]


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, date) and not isinstance(want, datetime):
        return got is not None and parse_time(got).date() == want
    if isinstance(want, datetime):
        return got is not None and parse_time(got) == want
    return got == want


async def _decide_over_http(client: TestClient, env: Env, case: Case) -> dict[str, Any]:
    env.clock.now = case.order.received_at or case.at  # the service decides an order when it is served
    await seed_case(client, env, case)
    status, body = await submit(client, env, sign_case(env, case))
    if status == 422:  # refused before any subject was looked at (R0, or R1 found while verifying)
        return {"outcome": body["outcome"], "reason": body["code"]}
    assert status == 201, body
    if body["whole_order"] is not None:  # decided for the whole order, before any subject (R1)
        whole = body["whole_order"]
        return {"outcome": whole["outcome"], "reason": whole["reasons"][0]["code"], "rule": whole["rule"]}
    item = item_for(body, case.order.subjects[0], case.category)
    return {"outcome": item["outcome"], "reason": item["reasons"][0]["code"], "basis": item["basis"], "rule": item["rule"], **item["obligations"]}


def _check(case: Case, actual: dict[str, Any]) -> None:
    wanted = {k: v for k, v in case.expect.items() if k in ("outcome", "reason", "basis", "until", "release_at", "deadline", "motion_to_quash_by")}
    if "rule" not in actual:  # a 422 carries outcome and reason only
        wanted = {k: v for k, v in wanted.items() if k in ("outcome", "reason")}
    wrong = {k: (v, actual.get(k)) for k, v in wanted.items() if not _same(v, actual.get(k))}
    assert not wrong, f"{case.name}: expected vs actual {wrong}"


@pytest.mark.parametrize("case", SCENARIOS, ids=[c.name.split(":")[0] for c in SCENARIOS])
async def test_each_legal_model_scenario_is_decided_as_written_over_http(client: TestClient, env: Env, case: Case) -> None:
    _check(case, await _decide_over_http(client, env, case))


@pytest.mark.parametrize("case", [c for c in HTTP_CASES if c not in SCENARIOS], ids=lambda c: c.name)
async def test_each_other_decision_case_is_decided_the_same_over_http(client: TestClient, env: Env, case: Case) -> None:
    _check(case, await _decide_over_http(client, env, case))
