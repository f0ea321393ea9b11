"""The transparency report beside support access: a lockbox case is not a legal order, and never breaks the report."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.reports.test_report_api import decide_known_orders, report
from tests.support import Env, run_cli
from tests.web.test_support_access import _setup as open_lockbox_case


async def request_support_access(client: TestClient, env: Env) -> str:
    """A support engineer asks to see a customer's mail, as the support tooling would: one lockbox case opens."""
    return await open_lockbox_case(client, env)


async def test_the_report_answers_while_a_support_access_case_is_in_the_ledger(client: TestClient, env: Env) -> None:
    await request_support_access(client, env)
    response = await client.get("/v1/reports/transparency", params={"from": "2026-07-01", "to": "2026-12-31"}, headers=env.person("legal", "c"))
    assert response.status == 200, await response.text()


async def test_the_cli_report_exits_0_while_a_support_access_case_is_in_the_ledger(client: TestClient, env: Env, tmp_path: Any) -> None:
    await request_support_access(client, env)
    assert run_cli(tmp_path, "report", "transparency", "--from", "2026-07-01", "--to", "2026-12-31") == 0


async def test_a_support_access_case_is_not_counted_as_a_legal_order(client: TestClient, env: Env) -> None:
    await decide_known_orders(client, env)
    before = await report(client, env)
    await request_support_access(client, env)
    after = await report(client, env)
    assert after["rows"] == before["rows"] and after["total"] == before["total"]
