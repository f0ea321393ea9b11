"""A damaged record harms only itself, on S3: the app over one bucket per region (moto in-process).

An operator with access to a bucket rewrites a record's user metadata (its
residency tag) or its body with boto3, bypassing the gateway; the gateway
refuses that record alone and serves, decides and packages the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.legal.decision_cases import Case
from gateway.services.records import record_key
from gateway.web.app import create_app
from tests.orders_support import download_package, item_for, ledger_entries, prepare_authorities, sign_case, submit, verify_package_bytes
from tests.support import SHIPPED_CONFIG, Env, make_env
from tests.web.test_damaged_records import three_records

pytestmark = pytest.mark.s3

WARRANT = "scenario 1: US court warrant for a US citizen's content stored in the US"
WRITER = ("crm", "us-east-1", "crm")
BUCKET = "records-us-east-1"
DAMAGED = "rec-content-2"


# in-process moto on a busy machine can take longer than a region's default 2 s deadline; this test is not about time
SLOW_MACHINE_DEADLINE = 30.0


def _s3_config() -> str:
    text = SHIPPED_CONFIG.read_text()
    for region in ("us-east-1", "eu-west-1", "eu-central-1", "eu-west-2", "ap-southeast-2"):
        local = f'store = {{ kind = "file", path = "stores/{region}" }}'
        assert local in text
        text = text.replace(local, f'store = {{ kind = "s3", bucket = "records-{region}", region_name = "{region}", deadline = {SLOW_MACHINE_DEADLINE} }}')
    return text


@pytest.fixture
def env(tmp_path: Path, aws: None) -> Env:
    return make_env(tmp_path, _s3_config())


@pytest.fixture
async def client(env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    prepare_authorities(env)
    return await aiohttp_client(create_app(env.settings, registry=CollectorRegistry()))


def rewrite_tag(subject: str, key: str) -> None:
    """Replace the record's residency tag in its S3 user metadata, in place."""
    s3 = boto3.client("s3", region_name="us-east-1")
    object_key = record_key(subject, key)
    metadata = s3.head_object(Bucket=BUCKET, Key=object_key)["Metadata"]
    s3.copy_object(
        Bucket=BUCKET,
        Key=object_key,
        CopySource={"Bucket": BUCKET, "Key": object_key},
        Metadata={**metadata, "residency-tag": "rewritten-by-hand"},
        MetadataDirective="REPLACE",
    )


def rewrite_body(subject: str, key: str, body: bytes) -> None:
    """Put another body under the record's key, keeping its metadata (and so its residency tag)."""
    s3 = boto3.client("s3", region_name="us-east-1")
    object_key = record_key(subject, key)
    metadata = s3.head_object(Bucket=BUCKET, Key=object_key)["Metadata"]
    s3.put_object(Bucket=BUCKET, Key=object_key, Body=body, Metadata=metadata)


async def _decided(client: TestClient, env: Env, case: Case) -> dict[str, Any]:
    status, document = await submit(client, env, sign_case(env, case))
    assert status == 201, document
    return document


def _refused(document: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(d["key"], d["violation"], i["category"]) for i in document["items"] if i["reasons"][0]["code"] == "record-integrity" for d in i["damaged_records"]]


async def test_a_list_over_s3_skips_a_record_whose_tag_was_rewritten_in_the_bucket_and_says_so(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    rewrite_tag(case.subject.id, DAMAGED)
    response = await client.get(f"/v1/subjects/{case.subject.id}/records", headers=env.service(*WRITER))
    body = await response.json()
    assert response.status == 200, body
    assert ([r["key"] for r in body["records"]], body["skipped"]) == (["rec-content", "rec-content-3"], 1)


async def test_an_order_over_s3_refuses_a_record_whose_tag_was_rewritten_and_discloses_the_rest(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    rewrite_tag(case.subject.id, DAMAGED)
    document = await _decided(client, env, case)
    assert [r["key"] for r in item_for(document, case.subject.id, "content")["records"]] == ["rec-content", "rec-content-3"]
    assert _refused(document) == [(DAMAGED, "tag-malformed", None)]
    assert [(v["data"]["key"], v["data"]["order"]) for v in ledger_entries(env, "residency.violation")] == [(DAMAGED, case.order.id)]


async def test_an_order_over_s3_refuses_a_record_whose_body_was_rewritten_in_the_bucket(client: TestClient, env: Env, tmp_path: Path) -> None:
    case = await three_records(client, env)
    rewrite_body(case.subject.id, DAMAGED, b"a longer body put straight into the bucket")
    document = await _decided(client, env, case)
    assert _refused(document) == [(DAMAGED, "tag-content-mismatch", "content")]
    status, data, complete = await download_package(client, env, case.order.id)
    assert (status, complete) == (200, True)
    report = verify_package_bytes(env, data, tmp_path)
    assert (report.ok, report.records, report.withheld) == (True, 2, [])


async def test_a_package_over_s3_withholds_a_record_whose_body_changed_in_the_bucket_after_the_decision(
    client: TestClient, env: Env, tmp_path: Path
) -> None:
    case = await three_records(client, env)
    await _decided(client, env, case)
    rewrite_body(case.subject.id, DAMAGED, b"REC-CONTENT-2 BODY")  # the same length: only its hash tells
    status, data, complete = await download_package(client, env, case.order.id)
    assert (status, complete) == (200, True)
    report = verify_package_bytes(env, data, tmp_path)
    assert (report.ok, report.records, [w["detail"] for w in report.withheld]) == (True, 2, ["record-changed"])
    assert b"REC-CONTENT-2 BODY" not in data
