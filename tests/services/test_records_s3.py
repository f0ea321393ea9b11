"""RecordService over S3 (moto in-process): tags in metadata, copies between regional buckets refused."""

from __future__ import annotations

import asyncio
import hashlib

import boto3
import pytest

from gateway.model import Caller
from gateway.services.records import ResidencyViolation, record_key
from gateway.stores.s3 import S3Store
from tests.services.conftest import AOIFE, WRITER, build_service, replica, s3_config

EU_SUPPORT = Caller("support", "service", service="support", region="eu-west-1", purpose="support")
US_SUPPORT = Caller("support", "service", service="support", region="us-east-1", purpose="support")


@pytest.fixture
async def s3_setup(aws):
    config = s3_config()
    stores = {r.id: S3Store(r.id, r.store) for r in config.regions.values()}  # type: ignore[arg-type]
    for store in stores.values():
        await store.ensure_bucket()
    service, metrics, ledger = build_service(config, stores)
    yield service, stores, metrics, ledger
    for store in stores.values():
        await store.close()


async def test_a_record_written_over_s3_reads_back_with_its_tag(s3_setup) -> None:
    service, _, _, _ = s3_setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "mail-1", "content", b"hello")
    result = await service.get_record(EU_SUPPORT, "aoife", "mail-1")
    assert result.body == b"hello" and result.meta.region == "eu-west-1"


async def test_the_residency_tag_is_in_the_objects_s3_tags(s3_setup) -> None:
    service, _, _, _ = s3_setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "mail-1", "content", b"hello")
    tags = boto3.client("s3", region_name="eu-west-1").get_object_tagging(Bucket="records-eu-west-1", Key=record_key("aoife", "mail-1"))
    assert {"Key": "residency-region", "Value": "eu-west-1"} in tags["TagSet"]


async def test_an_object_copied_into_another_regions_bucket_is_refused_and_counted(s3_setup) -> None:
    service, _, metrics, _ = s3_setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "mail-1", "content", b"hello")
    s3 = boto3.client("s3", region_name="us-east-1")
    # An operator copies the subject's objects to the US bucket and removes the originals.
    for key in ("subjects/aoife/profile", record_key("aoife", "mail-1")):
        s3.copy_object(Bucket="records-us-east-1", Key=key, CopySource={"Bucket": "records-eu-west-1", "Key": key})
        s3.delete_object(Bucket="records-eu-west-1", Key=key)
    with pytest.raises(ResidencyViolation) as caught:
        await replica(service).get_record(US_SUPPORT, "aoife", "mail-1")
    assert caught.value.details["reasons"][0]["code"] == "tag-region-mismatch"
    sample = metrics.registry.get_sample_value("gateway_residency_violations_total", {"region": "us-east-1", "reason": "tag-region-mismatch"})
    assert sample == 1


async def test_two_replicas_racing_writes_of_one_key_over_s3_create_it_once_and_the_ledger_names_the_stored_version(s3_setup) -> None:
    service, stores, _, ledger = s3_setup
    await service.register_subject(WRITER, AOIFE)
    other = replica(service)
    bodies = [f"body {i}".encode() for i in range(8)]
    results = await asyncio.gather(*((service, other)[i % 2].put_record(WRITER, "aoife", "race", "content", body) for i, body in enumerate(bodies)))
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    written = [e["data"] for e in await ledger.entries() if e["kind"] == "record.written"]
    successor = {w["replaces"]: w["sha256"] for w in written}
    version = None
    while version in successor:
        version = successor[version]
    stored = await stores["eu-west-1"].get(record_key("aoife", "race"))
    assert len(successor) == len(written) == 8 and version == hashlib.sha256(stored.body).hexdigest()
