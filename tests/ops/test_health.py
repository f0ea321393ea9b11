"""/healthz, /readyz and the store-check cache, on local folders."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.audit.ledger import FileLedger
from gateway.errors import LedgerError, StoreError
from gateway.web import ops
from gateway.web.app import create_app
from gateway.web.state import STATE_KEY
from tests.ops.conftest import sample
from tests.orders_support import prepare_authorities
from tests.support import Env, Ticks


async def test_healthz_answers_while_the_process_lives(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json()) == {"status": "ok"}


async def test_readyz_is_ready_with_config_ledger_and_every_store_up(client: TestClient, runtime) -> None:
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 200 and body["status"] == "ready"
    assert body["config"] == runtime.config.digest and body["ledger"] == {"status": "up"}
    assert {r: v["status"] for r, v in body["regions"].items()} == {r: "up" for r in runtime.config.regions}
    assert body["control"]["status"] == "up" and body["down"] == []


async def test_a_store_that_fails_its_check_is_listed_down_and_makes_the_gateway_degraded(client: TestClient, runtime, monkeypatch) -> None:
    async def broken() -> None:
        raise StoreError("file store of `eu-central-1` is gone", region="eu-central-1")

    monkeypatch.setattr(runtime.stores["eu-central-1"], "check", broken)
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 200 and body["status"] == "degraded" and body["down"] == ["eu-central-1"]
    assert body["regions"]["eu-central-1"]["problem"] == "file store of `eu-central-1` is gone"
    assert sample(client, "gateway_store_up", {"region": "eu-central-1"}) == 0
    assert sample(client, "gateway_store_up", {"region": "eu-west-1"}) == 1


async def test_a_store_that_does_not_answer_in_time_is_down_not_a_hang(client: TestClient, runtime, monkeypatch) -> None:
    async def silent() -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(ops, "READY_TIMEOUT", 0.2)
    monkeypatch.setattr(runtime.stores["us-east-1"], "check", silent)
    body = await (await client.get("/readyz")).json()
    region = body["regions"]["us-east-1"]
    assert (region["status"], region["problem"]) == ("down", "no answer within 0.2s")


async def test_every_region_down_makes_the_gateway_unavailable(client: TestClient, runtime, monkeypatch) -> None:
    async def broken() -> None:
        raise StoreError("down")

    for store in runtime.stores.values():
        monkeypatch.setattr(store, "check", broken)
    response = await client.get("/readyz")
    assert response.status == 503 and (await response.json())["status"] == "unavailable"


async def test_a_ledger_folder_that_is_gone_makes_the_gateway_unavailable(client: TestClient, runtime) -> None:
    shutil.rmtree(runtime.settings.ledger_path.parent)
    response = await client.get("/readyz")
    ledger = (await response.json())["ledger"]
    assert response.status == 503 and (ledger["status"], ledger["code"]) == ("down", "ledger-unavailable")
    assert "was removed while open" in ledger["problem"]


@contextlib.contextmanager
def appends_failing(ledger: FileLedger) -> Iterator[None]:
    """The ledger's writer left with a descriptor that cannot write (the file opened read-only in its place)."""
    saved = os.dup(ledger._fd)
    read_only = os.open(ledger.path, os.O_RDONLY)
    os.dup2(read_only, ledger._fd, inheritable=False)
    os.close(read_only)
    try:
        yield
    finally:
        os.dup2(saved, ledger._fd, inheritable=False)
        os.close(saved)


async def test_readyz_is_unavailable_while_the_ledger_cannot_take_appends(client: TestClient, runtime) -> None:
    with appends_failing(runtime.ledger):
        with pytest.raises(LedgerError):
            await runtime.ledger.append("test.append", {"n": 1})
        response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 503 and body["status"] == "unavailable"
    assert (body["ledger"]["status"], body["ledger"]["code"]) == ("down", "ledger-unavailable")


async def test_readyz_is_ready_again_without_a_restart_once_the_ledger_takes_appends(
    env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    ticks = Ticks()
    prepare_authorities(env)
    client = await aiohttp_client(create_app(dataclasses.replace(env.settings, health_cache_seconds=5.0, monotonic=ticks), registry=CollectorRegistry()))
    ledger = client.app[STATE_KEY].rt.ledger
    with appends_failing(ledger):
        assert (await client.get("/readyz")).status == 503
    ticks.advance(5.1)
    response = await client.get("/readyz")
    assert response.status == 200 and (await response.json())["ledger"] == {"status": "up"}
    await ledger.append("test.append", {"n": 1})


async def test_the_ledger_probe_adds_no_entry_and_leaves_no_file(client: TestClient, runtime) -> None:
    before = runtime.settings.ledger_path.read_bytes()
    files = sorted(runtime.settings.ledger_path.parent.iterdir())
    assert (await client.get("/readyz")).status == 200
    assert runtime.settings.ledger_path.read_bytes() == before
    assert sorted(runtime.settings.ledger_path.parent.iterdir()) == files


async def test_store_checks_are_cached_so_probes_cannot_overload_a_store(client: TestClient, runtime, monkeypatch) -> None:
    calls = 0
    original = runtime.stores["eu-west-1"].check

    async def counted() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        await original()

    monkeypatch.setattr(runtime.stores["eu-west-1"], "check", counted)
    responses = await asyncio.gather(*(client.get("/readyz") for _ in range(20)), *(client.get("/metrics") for _ in range(5)))
    assert all(r.status == 200 for r in responses)
    assert calls == 1  # 25 concurrent probes, one store check


async def test_a_cached_result_is_checked_again_once_it_is_older_than_the_cache_time(
    env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]], monkeypatch
) -> None:
    ticks = Ticks()
    settings = dataclasses.replace(env.settings, health_cache_seconds=5.0, monotonic=ticks)
    prepare_authorities(env)
    client = await aiohttp_client(create_app(settings, registry=CollectorRegistry()))
    runtime = client.app[STATE_KEY].rt
    calls = 0
    original = runtime.stores["eu-west-1"].check

    async def counted() -> None:
        nonlocal calls
        calls += 1
        await original()

    monkeypatch.setattr(runtime.stores["eu-west-1"], "check", counted)
    await client.get("/readyz")
    ticks.advance(5.1)
    await client.get("/readyz")
    assert calls == 2


async def test_the_request_id_is_echoed_on_probes(client: TestClient) -> None:
    response = await client.get("/readyz", headers={"X-Request-ID": "probe-42"})
    assert response.headers["X-Request-ID"] == "probe-42"
