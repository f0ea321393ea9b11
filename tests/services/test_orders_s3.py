"""Preservation holds on S3 (moto in-process, buckets with Object Lock): the order service over S3Store.

The same OrderService the app runs, over one S3 bucket per region and a
control store; a preservation order's legal hold is an S3 Object Lock legal
hold that the gateway's own writes and deletes cannot break, and the sweep
lifts it once the preservation expires under the injected clock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ed25519
from prometheus_client import CollectorRegistry

from gateway.audit import MemoryLedger
from gateway.legal.verify import sign_order
from gateway.metrics import GatewayMetrics
from gateway.model import Caller, parse_time
from gateway.services.audit_log import AuditLog
from gateway.services.cases import CaseService
from gateway.services.intake import Intake, Trust
from gateway.services.notices import NoticeService
from gateway.services.orders import OrderService
from gateway.services.records import RecordService, record_key
from gateway.stores import ObjectLocked
from gateway.stores.memory import MemoryStore
from gateway.stores.s3 import S3Store
from gateway.tags import TagSigner, TagVerifier
from tests.services.conftest import AOIFE, WRITER, s3_config
from tests.support import CASE_DATE, FrozenClock

EU_SERVICE = Caller("crm", "service", service="crm", region="eu-west-1", purpose="crm")
BUCKET = "records-eu-west-1"
KEY = record_key("aoife", "mail-1")


@dataclass
class S3Orders:
    orders: OrderService
    records: RecordService
    ledger: MemoryLedger
    clock: FrozenClock
    fbi: ed25519.Ed25519PrivateKey

    async def submit(self, token: str, *, submitted_by: str) -> tuple[dict[str, Any], bool]:
        """Submit an order; its decision document as the API returns it, and whether it was created."""
        viewed, created = await self.orders.submit(token, submitted_by=submitted_by)
        return viewed.to_json(), created

    def preservation(self, jti: str, *, renews: str | None = None) -> str:
        """A us.preservation order from `us-fbi` for aoife's content, signed with its key."""
        now = int(self.clock().timestamp())
        claims: dict[str, Any] = {
            "jti": jti,
            "iss": "us-fbi",
            "iat": now,
            "exp": now + 30 * 86400,
            "instrument": "us.preservation",
            "subjects": ["aoife"],
            "categories": ["content"],
        }
        if renews:
            claims["renews"] = renews
        return sign_order(claims, key=self.fbi, kid="us-fbi")

    async def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [e["data"] for e in await self.ledger.entries() if e["kind"] == kind]


def _object_lock_hold(key: str = KEY) -> str:
    answer = boto3.client("s3", region_name="eu-west-1").get_object_legal_hold(Bucket=BUCKET, Key=key)
    return answer["LegalHold"]["Status"]


@pytest.fixture
async def s3_orders(aws) -> AsyncIterator[S3Orders]:
    config = s3_config()
    stores = {r.id: S3Store(r.id, r.store) for r in config.regions.values()}  # type: ignore[arg-type]
    for store in stores.values():
        await store.ensure_bucket()
    clock = FrozenClock(CASE_DATE)
    ledger = MemoryLedger(clock)
    tag_keys = {r: ed25519.Ed25519PrivateKey.generate() for r in config.regions}
    control = MemoryStore("control")
    audit = AuditLog(ledger, GatewayMetrics(CollectorRegistry()))
    records = RecordService(
        config=config,
        stores=stores,
        control=control,
        signer=TagSigner(tag_keys),
        verifier=TagVerifier({r: k.public_key() for r, k in tag_keys.items()}, {r.id: r.jurisdiction for r in config.regions.values()}),
        audit=audit,
        clock=clock,
    )
    fbi = ed25519.Ed25519PrivateKey.generate()
    intake = Intake(
        config=config,
        records=records,
        cases=CaseService(control=control, audit=audit, clock=clock),
        notices=NoticeService(control=control, audit=audit, clock=clock),
        control=control,
        trust=Trust({"us-fbi": fbi.public_key()}),
        audit=audit,
        clock=clock,
    )
    orders = OrderService(intake, provider_key=ed25519.Ed25519PrivateKey.generate())
    await records.register_subject(WRITER, AOIFE)
    await records.put_record(WRITER, "aoife", "mail-1", "content", b"preserve me")
    yield S3Orders(orders, records, ledger, clock, fbi)
    for store in stores.values():
        await store.close()


async def _preserved(setup: S3Orders) -> dict[str, Any]:
    document, created = await setup.submit(setup.preservation("pres-1"), submitted_by="portal")
    assert created
    return document


def _until(document: dict[str, Any]) -> datetime:
    return parse_time(document["items"][0]["obligations"]["until"])


async def test_a_preservation_order_places_an_s3_object_lock_legal_hold(s3_orders: S3Orders) -> None:
    document = await _preserved(s3_orders)
    assert [(i["outcome"], i["region"], len(i["records"])) for i in document["items"]] == [("preserve", "eu-west-1", 1)]
    assert _object_lock_hold() == "ON"


async def test_a_record_under_an_s3_hold_cannot_be_overwritten_through_the_gateway(s3_orders: S3Orders) -> None:
    await _preserved(s3_orders)
    with pytest.raises(ObjectLocked):
        await s3_orders.records.put_record(WRITER, "aoife", "mail-1", "content", b"rewritten")
    body = boto3.client("s3", region_name="eu-west-1").get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    assert body == b"preserve me"


async def test_a_record_under_an_s3_hold_cannot_be_deleted_through_the_gateway(s3_orders: S3Orders) -> None:
    await _preserved(s3_orders)
    with pytest.raises(ObjectLocked) as caught:
        await s3_orders.records.delete_record(EU_SERVICE, "aoife", "mail-1")
    assert caught.value.code == "legal-hold"
    assert _object_lock_hold() == "ON"


async def test_a_held_s3_object_version_cannot_be_deleted_in_the_bucket_directly_either(s3_orders: S3Orders) -> None:
    await _preserved(s3_orders)
    s3 = boto3.client("s3", region_name="eu-west-1")
    version = s3.head_object(Bucket=BUCKET, Key=KEY)["VersionId"]
    with pytest.raises(ClientError) as caught:
        s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=version)
    assert caught.value.response["Error"]["Code"] == "AccessDenied"


async def test_a_sweep_before_the_s3_preservation_expires_leaves_the_hold_in_place(s3_orders: S3Orders) -> None:
    document = await _preserved(s3_orders)
    s3_orders.clock.now = _until(document) - timedelta(seconds=1)
    assert await s3_orders.orders.sweep() == 0
    assert _object_lock_hold() == "ON"


async def test_the_s3_hold_lifts_at_expiry_and_the_record_can_then_be_deleted(s3_orders: S3Orders) -> None:
    document = await _preserved(s3_orders)
    s3_orders.clock.now = _until(document) + timedelta(seconds=1)
    assert await s3_orders.orders.sweep() == 1
    assert _object_lock_hold() == "OFF"
    await s3_orders.records.delete_record(EU_SERVICE, "aoife", "mail-1")
    assert [e["key"] for e in await s3_orders.kinds("record.deleted")] == ["mail-1"]


async def test_an_identical_resubmission_places_no_second_s3_hold(s3_orders: S3Orders) -> None:
    token = s3_orders.preservation("pres-1")
    first, _ = await s3_orders.submit(token, submitted_by="portal")
    again, created = await s3_orders.submit(token, submitted_by="portal")
    assert (created, again) == (False, first)
    assert len(await s3_orders.kinds("hold.placed")) == 1 and len(await s3_orders.kinds("order.decided")) == 1


async def test_a_renewal_extends_the_s3_hold_once_past_the_first_orders_expiry(s3_orders: S3Orders) -> None:
    first = await _preserved(s3_orders)
    s3_orders.clock.now = CASE_DATE + timedelta(days=80)
    renewal, _ = await s3_orders.submit(s3_orders.preservation("pres-2", renews="pres-1"), submitted_by="portal")
    item = renewal["items"][0]
    assert (item["outcome"], item["reasons"][0]["code"], item["obligations"]["extensions"]) == ("preserve", "preservation-extended", 1)
    assert _until(renewal) == _until(first) + timedelta(days=90)
    s3_orders.clock.now = _until(first) + timedelta(days=1)
    assert await s3_orders.orders.sweep() == 0
    assert _object_lock_hold() == "ON"
    book = json.loads((await s3_orders.orders.control.get("holds/eu-west-1/aoife/mail-1")).body)
    assert set(book["holds"]) == {"us-fbi/pres-2"}
    s3_orders.clock.now = _until(renewal) + timedelta(seconds=1)
    assert await s3_orders.orders.sweep() == 1
    assert _object_lock_hold() == "OFF"


async def test_a_further_renewal_of_an_extended_s3_preservation_is_refused(s3_orders: S3Orders) -> None:
    await _preserved(s3_orders)
    s3_orders.clock.now = CASE_DATE + timedelta(days=80)
    await s3_orders.submit(s3_orders.preservation("pres-2", renews="pres-1"), submitted_by="portal")
    s3_orders.clock.now = CASE_DATE + timedelta(days=170)
    again, _ = await s3_orders.submit(s3_orders.preservation("pres-3", renews="pres-1"), submitted_by="portal")
    assert [(i["outcome"], i["reasons"][0]["code"]) for i in again["items"]] == [("refuse", "extensions-exhausted")]
