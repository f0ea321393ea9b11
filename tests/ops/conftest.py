"""Fixtures for the operations tests: a gateway app in a temporary folder, and its exposition."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.web.app import create_app
from gateway.web.state import STATE_KEY
from tests.orders_support import prepare_authorities
from tests.support import Env, make_env


@pytest.fixture
def env(tmp_path: Path) -> Env:
    made = make_env(tmp_path)
    # the sweeper runs by hand in these tests; health checks are cached as in production
    return Env(dataclasses.replace(made.settings, sweep_seconds=0), made.clock)


@pytest.fixture
async def client(env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    prepare_authorities(env)
    return await aiohttp_client(create_app(env.settings, registry=CollectorRegistry()))


@pytest.fixture
def runtime(client: TestClient):
    return client.app[STATE_KEY].rt


def sample(client: TestClient, name: str, labels: dict[str, str] | None = None) -> float | None:
    from gateway.web.state import METRICS_KEY

    return client.app[METRICS_KEY].registry.get_sample_value(name, labels or {})
