"""What the app does while the process drains after SIGTERM (the signal itself: tests/faults/test_drain_sigterm.py)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.web.drain import DRAIN_KEY


async def test_readyz_answers_503_shutting_down_while_the_process_drains(client: TestClient) -> None:
    client.app[DRAIN_KEY].draining = True
    response = await client.get("/readyz")
    assert response.status == 503 and (await response.json()) == {"status": "shutting-down"}


async def test_an_answer_given_while_the_process_drains_closes_its_connection(client: TestClient) -> None:
    client.app[DRAIN_KEY].draining = True
    response = await client.get("/healthz")
    assert response.status == 200 and response.headers["Connection"].lower() == "close"
