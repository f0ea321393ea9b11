"""The served app reconciles write intents left open by a process that died, as it starts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.audit import FileLedger, read_entries
from gateway.canonical import sha256_hex
from gateway.web.app import create_app
from tests.orders_support import prepare_authorities
from tests.support import FrozenClock, make_env

OBJECT = "subjects/aoife/records/mail-1"


async def _left_open_by_a_dead_process(ledger_path: Path, clock: FrozenClock) -> int:
    """A write intent appended a minute before the app starts, with no outcome after it."""
    earlier = FrozenClock(clock.now - timedelta(minutes=1))
    ledger = await FileLedger.open(ledger_path, earlier)
    data = {"subject": "aoife", "key": "mail-1", "region": "eu-west-1", "sha256": sha256_hex(b"v1"), "size": 2, "object": OBJECT, "replaces": None}
    entry = await ledger.append("record.write-intent", data)
    await ledger.close()
    return int(entry["seq"])


async def test_the_app_reconciles_an_intent_left_open_by_a_killed_process_when_it_starts(
    tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    env = make_env(tmp_path)
    prepare_authorities(env)
    seq = await _left_open_by_a_dead_process(env.settings.ledger_path, env.clock)
    await aiohttp_client(create_app(env.settings, registry=CollectorRegistry()))
    for _ in range(500):  # the start-up pass runs in the background; wait for its entry
        reconciled = [e["data"] for e in read_entries(env.settings.ledger_path) if e["kind"] == "record.reconciled"]
        if reconciled:
            break
        await asyncio.sleep(0.01)
    assert reconciled == [{"intent": seq, "object": OBJECT, "region": "eu-west-1", "result": "not-written"}]
