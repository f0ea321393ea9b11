"""A gateway started on a long ledger serves once the chain's tail is verified; a break found later in the
background takes it out of service."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ed25519
from prometheus_client import CollectorRegistry

from gateway.audit import FileLedger
from gateway.audit.ledger import VERIFY_AT_OPEN_BYTES
from gateway.model import system_clock
from gateway.web.app import create_app
from tests.support import make_env


async def long_chain(path: Path, chain: str) -> None:
    """A chain file just over the length verified whole at open, written as a gateway writes it (signed heads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    async with await FileLedger.open(path, system_clock, checkpoint_key=ed25519.Ed25519PrivateKey.generate(), chain=chain) as ledger:
        n = 0
        while path.stat().st_size <= VERIFY_AT_OPEN_BYTES:
            await asyncio.gather(*(ledger.append("record.read", {"n": n + i, "pad": "x" * 400}) for i in range(512)))
            n += 512


def alter_entry_near_the_end(path: Path) -> int:
    """Alter an entry of the last batch but one: before the chain's last signed head, so open leaves it to the
    background verification, which reaches it only after reading nearly the whole file. Returns its seq."""
    lines = path.read_bytes().splitlines(keepends=True)
    seq = len(lines) - 600
    entry = json.loads(lines[seq - 1])
    lines[seq - 1] = lines[seq - 1].replace(f'"n":{entry["data"]["n"]},'.encode(), b'"n":-1,')
    path.write_bytes(b"".join(lines))
    return seq


async def test_a_long_ledger_altered_before_its_tail_takes_the_started_gateway_out_of_service_once_found(
    tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    env = make_env(tmp_path)
    settings = dataclasses.replace(env.settings, health_cache_seconds=0)
    await long_chain(settings.ledger_path, settings.chain_id)
    altered = alter_entry_near_the_end(settings.ledger_path)
    client = await aiohttp_client(create_app(settings, registry=CollectorRegistry()))
    for _ in range(3000):  # the background verification reads the whole chain; wait for its verdict
        response = await client.get("/readyz")
        body = await response.json()
        if response.status == 503:
            break
        await asyncio.sleep(0.01)
    assert response.status == 503
    assert body["ledger"]["status"] == "down"
    assert f"entry {altered}: hash does not match its content" in body["ledger"]["problem"]
