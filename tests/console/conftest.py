"""Fixtures for the legal console and case tests: a full app on local file stores, a frozen clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.web.app import create_app
from gateway.web.state import STATE_KEY
from tests.orders_support import prepare_authorities
from tests.support import Env, make_env

# a "what changes" analysis takes seconds of one core; on a loaded machine many more: the tests wait for it
ANALYSIS_SECONDS = 900.0


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = make_env(tmp_path)
    env.settings = replace(env.settings, analysis_seconds=ANALYSIS_SECONDS)
    return env


@pytest.fixture
def make_client(env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> Callable[..., Awaitable[TestClient]]:
    """Start another app on the same settings (and so the same data directory): a restart, or with its own
    ``chain_id`` (the ledger chain it writes) a second replica running beside the first."""

    async def make(chain_id: str | None = None) -> TestClient:
        prepare_authorities(env)  # authorities' public keys are read when the app starts
        settings = env.settings if chain_id is None else replace(env.settings, chain_id=chain_id)
        return await aiohttp_client(create_app(settings, registry=CollectorRegistry()))

    return make


@pytest.fixture
async def client(make_client: Callable[[], Awaitable[TestClient]]) -> TestClient:
    return await make_client()


@pytest.fixture
def runtime(client: TestClient):
    return client.app[STATE_KEY].rt


@pytest.fixture
async def served(env: Env) -> AsyncIterator[str]:
    """The gateway on a real loopback port, for a real browser: its base URL."""
    prepare_authorities(env)
    runner = web.AppRunner(create_app(env.settings, registry=CollectorRegistry()))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
