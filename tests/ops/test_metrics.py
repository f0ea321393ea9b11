"""Order, hold and case metrics, and who may read /metrics."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import build_parser
from gateway.web.app import create_app
from tests.ops import scenario
from tests.ops.conftest import sample
from tests.orders_support import prepare_authorities
from tests.support import Env


async def test_an_order_counts_each_item_by_outcome_instrument_issuing_jurisdiction_and_data_region(client: TestClient, env: Env) -> None:
    await scenario.run(client, env)
    labels = {"outcome": "disclose", "instrument": "us.warrant", "issuing_jurisdiction": "US", "data_region": "us-east-1"}
    assert sample(client, "gateway_order_decisions_total", labels) == 1
    labels = {"outcome": "preserve", "instrument": "us.preservation", "issuing_jurisdiction": "US", "data_region": "eu-west-1"}
    assert sample(client, "gateway_order_decisions_total", labels) == 1


async def test_a_forged_order_is_counted_as_rejected_by_its_reason(client: TestClient, env: Env) -> None:
    await scenario.run(client, env)
    assert sample(client, "gateway_orders_rejected_total", {"reason": "bad-signature"}) == 1


async def test_receipt_to_decision_and_to_package_are_histograms_with_the_30_minute_objective_as_a_bucket(client: TestClient, env: Env) -> None:
    await scenario.run(client, env)
    assert sample(client, "gateway_order_receipt_to_decision_seconds_count") == 2
    assert sample(client, "gateway_order_receipt_to_decision_seconds_bucket", {"le": "1800.0"}) == 2
    assert sample(client, "gateway_order_receipt_to_package_seconds_count") == 1
    assert sample(client, "gateway_order_receipt_to_package_seconds_bucket", {"le": "3600.0"}) == 1


async def test_a_package_produced_an_hour_after_receipt_misses_the_objective(client: TestClient, env: Env) -> None:
    result = await scenario.run(client, env)
    env.clock.advance(minutes=45)
    response = await client.get(f"/v1/orders/{result['warrant']['id']}/package", headers=env.person("intake", "portal"))
    await response.read()
    assert sample(client, "gateway_order_receipt_to_package_seconds_count") == 2
    assert sample(client, "gateway_order_receipt_to_package_seconds_bucket", {"le": "1800.0"}) == 1


async def test_the_sweep_reports_held_records_and_the_earliest_release(client: TestClient, env: Env) -> None:
    result = await scenario.run(client, env)
    until = result["preservation"]["items"][0]["obligations"]["until"]
    from gateway.model import parse_time

    assert sample(client, "gateway_holds_active") == 1
    assert sample(client, "gateway_holds_next_release_timestamp_seconds") == parse_time(until).timestamp()


async def test_with_nothing_held_the_next_release_is_not_a_number(client: TestClient, runtime) -> None:
    await runtime.orders.sweep()
    assert sample(client, "gateway_holds_active") == 0
    assert math.isnan(sample(client, "gateway_holds_next_release_timestamp_seconds") or 0.0)


async def test_a_scrape_sets_every_regions_store_up(client: TestClient, runtime) -> None:
    text = await scenario.exposition(client)
    up = {s.labels["region"]: s.value for f in text_string_to_metric_families(text) if f.name == "gateway_store_up" for s in f.samples}
    assert up == {**{r: 1.0 for r in runtime.config.regions}, "control": 1.0}


async def test_each_group_commit_of_the_ledger_is_exported_with_its_size_and_fsync_time(client: TestClient, runtime) -> None:
    before = sample(client, "gateway_ledger_fsync_duration_seconds_count") or 0
    await runtime.ledger.append("test.probe", {"n": 1})
    assert sample(client, "gateway_ledger_fsync_duration_seconds_count") == before + 1
    assert (sample(client, "gateway_ledger_batch_entries_sum") or 0) >= 1


async def test_a_failed_group_commit_is_counted_as_an_fsync_failure(client: TestClient, runtime, monkeypatch) -> None:
    import os

    import pytest

    from gateway.errors import LedgerError

    def broken(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(LedgerError):
        await runtime.ledger.append("test.probe", {"n": 1})
    monkeypatch.undo()
    assert sample(client, "gateway_ledger_fsync_failures_total") == 1


async def test_case_gauges_count_cases_by_kind_and_state(client: TestClient, env: Env, runtime) -> None:
    await scenario.run(client, env)
    # a US warrant for data stored in Dublin goes to legal review
    claims = scenario._claims(env, "ops-warrant-eu", "us-court-sdny", "us.warrant", scenario.SUBJECT_EU)
    status, _ = await scenario._order(client, env, scenario._sign(env, "us-court-sdny", claims))
    assert status == 201
    await scenario.exposition(client)
    listed = await runtime.cases.list()
    assert listed, "the scenario should open at least one case"
    for case in listed:
        assert (sample(client, "gateway_cases", {"kind": case["kind"], "state": case["state"]}) or 0) >= 1


# --- /metrics access -----------------------------------------------------------------------


def test_serve_metrics_auth_flag_is_parsed() -> None:
    args = build_parser().parse_args(["serve", "--metrics-auth", "--log-format", "json"])
    assert args.metrics_auth is True and args.log_format == "json"
    assert build_parser().parse_args(["serve"]).metrics_auth is False


async def test_with_metrics_auth_metrics_need_an_ops_token(env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    prepare_authorities(env)
    settings = dataclasses.replace(env.settings, metrics_public=False)  # what `gateway serve --metrics-auth` sets
    client = await aiohttp_client(create_app(settings, registry=CollectorRegistry()))
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=env.service("billing", "us-east-1"))).status == 403
    response = await client.get("/metrics", headers=env.person("ops", "oncall"))
    assert response.status == 200 and "gateway_http_requests_total" in await response.text()


async def test_without_metrics_auth_metrics_are_open(client: TestClient) -> None:
    assert (await client.get("/metrics")).status == 200
