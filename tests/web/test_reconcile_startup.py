"""The served app reconciles write intents left open: by a process that died, as it starts; by a failed outcome append, on a later pass."""

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
from tests.orders_support import ledger_entries, prepare_authorities
from tests.support import Env, FrozenClock, make_env
from tests.web.test_write_audit import DUBLIN_CRM, _put, _register, outcomes_failing

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


async def test_a_write_acknowledged_without_its_outcome_entry_is_reconciled_as_written(client: TestClient, env: Env, runtime) -> None:
    await _register(client, env)
    with outcomes_failing(runtime, "record.written"):
        assert (await _put(client, env, "mail-1", b"kept")).status == 201  # stored; its intent is durable
    [intent] = ledger_entries(env, "record.write-intent")
    env.clock.advance(seconds=runtime.config.audit.reconcile_after_seconds + 1)
    await runtime.reconciler.run_once()
    [reconciled] = ledger_entries(env, "record.reconciled")
    assert (reconciled["data"]["intent"], reconciled["data"]["result"]) == (intent["seq"], "written")
    assert (await client.get("/v1/subjects/aoife/records/mail-1", headers=env.service(*DUBLIN_CRM))).status == 200
