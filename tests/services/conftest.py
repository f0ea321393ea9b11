from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from prometheus_client import CollectorRegistry

from gateway.audit import MemoryLedger
from gateway.config import Config, parse_config
from gateway.metrics import GatewayMetrics
from gateway.model import Caller, Subject
from gateway.services.audit_log import AuditLog
from gateway.services.records import RecordService
from gateway.stores import FileStore, RecordStore
from gateway.stores.memory import MemoryStore
from gateway.tags import TagSigner, TagVerifier
from tests.support import SHIPPED_CONFIG, FrozenClock

WRITER = Caller("security-operations", "service", service="security-operations", region="us-east-1", purpose="incident-response")  # group BCR: every region
AOIFE = Subject("aoife", "eu-west-1", "IE", "IE", False, "IE")


def s3_config(bucket_prefix: str = "records") -> Config:
    raw = tomllib.loads(SHIPPED_CONFIG.read_text())
    for region_id, region in raw["regions"].items():
        # in-process moto on a busy machine can take longer than the default 2 s deadline; these tests are not about time
        region["store"] = {"kind": "s3", "bucket": f"{bucket_prefix}-{region_id}", "region_name": region_id, "object_lock": True, "deadline": 30.0}
    return parse_config(raw)


def shipped_config() -> Config:
    return parse_config(tomllib.loads(SHIPPED_CONFIG.read_text()))


def build_service(config: Config, stores: Mapping[str, RecordStore]) -> tuple[RecordService, GatewayMetrics, MemoryLedger]:
    keys = {r: ed25519.Ed25519PrivateKey.generate() for r in config.regions}
    metrics = GatewayMetrics(CollectorRegistry())
    ledger = MemoryLedger(FrozenClock())
    signer = TagSigner(keys)
    service = RecordService(
        config=config,
        stores=stores,
        control=MemoryStore("control"),
        signer=signer,
        verifier=TagVerifier(
            {r: k.public_key() for r, k in keys.items()}, {r.id: r.jurisdiction for r in config.regions.values()}, seal_keys=signer.seal_keys
        ),
        audit=AuditLog(ledger, metrics),
        clock=FrozenClock(),
    )
    return service, metrics, ledger



def replica(service: RecordService) -> RecordService:
    """Another gateway over the same stores, keys and ledger, with nothing cached: as on another replica, or after a restart."""
    parts = ("config", "stores", "control", "signer", "verifier", "audit", "clock")
    return RecordService(**{name: getattr(service, name) for name in parts})


@pytest.fixture(params=["memory", "file"])
async def control(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RecordStore]:
    """A control store shared by replicas: the in-memory twin, and the file store (its lock stands in for S3's conditions)."""
    if request.param == "memory":
        yield MemoryStore("control")
    else:
        files = FileStore("control", tmp_path / "control")
        await files.open()
        yield files
