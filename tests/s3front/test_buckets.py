"""Buckets from regions.toml and CreateBucket: home regions, the residency decision on their objects, the bucket registry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from gateway.model import Caller
from gateway.s3front.credentials import S3_KEY_FILE, access_key_id, load_key, secret_for
from gateway.services.buckets import record_key_of
from gateway.services.records import record_key
from gateway.stores.files import FileStore
from tests.faults.harness import SHIPPED_CONFIG, GatewayProcess, Workdir, free_port
from tests.s3front.support import S3_TABLE, Front


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    front = Front.start(Path(tmp_path_factory.mktemp("s3buckets")))
    try:
        yield front
    finally:
        front.stop()


def error_of(refused: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    return refused.value.response["ResponseMetadata"]["HTTPStatusCode"], refused.value.response["Error"]["Code"]


def test_the_front_serves_on_the_port_and_the_buckets_regions_toml_names(front: Front) -> None:
    assert [b["Name"] for b in front.client().list_buckets()["Buckets"]][:3] == ["eu-data", "records", "us-data"]


def test_an_object_of_a_home_region_bucket_may_have_any_key_and_reads_back(front: Front) -> None:
    s3 = front.client()
    s3.put_object(Bucket="eu-data", Key="photos/2026/a b+c.txt", Body=b"any key")
    assert s3.get_object(Bucket="eu-data", Key="photos/2026/a b+c.txt")["Body"].read() == b"any key"


def test_an_object_of_a_home_region_bucket_is_stored_in_that_regions_store(front: Front) -> None:
    front.client().put_object(Bucket="eu-data", Key="where.txt", Body=b"here")
    store = FileStore("eu-west-1", front.workdir.data_dir / "stores/eu-west-1")
    assert asyncio.run(store.get(record_key("s3.eu-data", record_key_of("where.txt")))).body == b"here"


def test_a_us_read_of_a_home_region_bucket_in_the_eu_is_refused_with_the_rest_apis_reason(front: Front) -> None:
    front.client().put_object(Bucket="eu-data", Key="profile.json", Body=b"{}")
    front.client().put_object(Bucket="records", Key="sean/profile", Body=b"{}")
    _, problem = front.rest("GET", "/v1/subjects/sean/records/profile", front.workdir.service("analytics", "us-east-1"))
    with pytest.raises(ClientError) as refused:
        front.client("analytics", "us-east-1").get_object(Bucket="eu-data", Key="profile.json")
    headers = refused.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert (error_of(refused), headers["x-residency-decision"]) == ((403, "AccessDenied"), json.loads(problem)["reasons"][0]["code"])


def test_a_us_write_to_a_home_region_bucket_in_the_eu_is_refused(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        front.client("analytics", "us-east-1").put_object(Bucket="eu-data", Key="from-us.txt", Body=b"x")
    assert error_of(refused) == (403, "AccessDenied")


def test_a_read_of_a_home_region_bucket_is_ledgered_as_a_read_of_its_region(front: Front) -> None:
    s3 = front.client()
    s3.put_object(Bucket="eu-data", Key="ledgered.txt", Body=b"x")
    s3.get_object(Bucket="eu-data", Key="ledgered.txt")
    read = [e for e in front.ledger() if e["kind"] == "service.read"][-1]["data"]
    assert (read["subject"], read["region"]) == ("s3.eu-data", "eu-west-1")


def test_a_key_longer_than_a_home_region_bucket_holds_is_key_too_long(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        front.client().put_object(Bucket="eu-data", Key="k" * 81, Body=b"x")
    assert error_of(refused) == (400, "KeyTooLongError")


def test_a_virtual_host_style_request_names_its_bucket_in_the_host(front: Front) -> None:
    front.client().put_object(Bucket="eu-data", Key="virtual.txt", Body=b"by host")
    port = front.endpoint.rsplit(":", 1)[1]
    status, _, body = front.signed("GET", f"http://eu-data.s3.gateway.local:{port}/virtual.txt")
    assert (status, body) == (200, b"by host")


def test_create_bucket_in_the_callers_region_makes_a_bucket_with_that_home(front: Front) -> None:
    s3 = front.client()
    s3.create_bucket(Bucket="dublin-made", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket="dublin-made")["LocationConstraint"] == "eu-west-1"


def test_a_created_bucket_is_listed(front: Front) -> None:
    s3 = front.client()
    s3.create_bucket(Bucket="listed-made", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert "listed-made" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_create_bucket_is_ledgered(front: Front) -> None:
    front.client().create_bucket(Bucket="ledgered-made", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    created = [e["data"] for e in front.ledger() if e["kind"] == "s3.bucket-created"]
    assert {"bucket": "ledgered-made", "home_region": "eu-west-1"}.items() <= created[-1].items()


def test_create_bucket_in_an_unknown_region_is_invalid_location_constraint(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        front.client().create_bucket(Bucket="nowhere", CreateBucketConfiguration={"LocationConstraint": "mars-north-1"})
    assert error_of(refused) == (400, "InvalidLocationConstraint")


def test_create_bucket_in_another_region_than_the_callers_is_access_denied(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        front.client().create_bucket(Bucket="us-made-by-eu", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert error_of(refused) == (403, "AccessDenied")


def test_create_bucket_of_an_existing_name_is_bucket_already_owned_by_you(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        front.client().create_bucket(Bucket="eu-data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert error_of(refused) == (409, "BucketAlreadyOwnedByYou")


def test_delete_bucket_of_a_bucket_with_objects_is_bucket_not_empty(front: Front) -> None:
    s3 = front.client()
    s3.create_bucket(Bucket="full-made", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="full-made", Key="a", Body=b"x")
    with pytest.raises(ClientError) as refused:
        s3.delete_bucket(Bucket="full-made")
    assert error_of(refused) == (409, "BucketNotEmpty")


def test_a_deleted_bucket_is_no_such_bucket(front: Front) -> None:
    s3 = front.client()
    s3.create_bucket(Bucket="gone-made", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.delete_bucket(Bucket="gone-made")
    with pytest.raises(ClientError) as refused:
        s3.head_bucket(Bucket="gone-made")
    assert error_of(refused) == (404, "404")


def test_get_bucket_location_of_a_configured_home_region_bucket_is_its_region(front: Front) -> None:
    assert front.client().get_bucket_location(Bucket="us-data")["LocationConstraint"] == "us-east-1"


def test_the_rest_api_refuses_to_register_a_subject_id_reserved_for_a_buckets_objects(front: Front) -> None:
    headers = {**front.workdir.service("support", "eu-west-1"), "Content-Type": "application/json"}
    status, problem = front.rest("PUT", "/v1/subjects/s3.mine", headers, json.dumps({"home_region": "eu-west-1", "residence": "IE"}).encode())
    assert (status, json.loads(problem)["code"]) == (400, "invalid-subject")


def test_a_created_bucket_survives_a_restart(tmp_path: Path) -> None:
    front = Front.start(tmp_path)
    front.client().create_bucket(Bucket="kept-made", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    front.stop()
    again = Front(front.workdir, front.process.__class__(front.workdir).wait_ready(), int(front.endpoint.rsplit(":", 1)[1]))
    try:
        assert again.client().get_bucket_location(Bucket="kept-made")["LocationConstraint"] == "eu-west-1"
    finally:
        again.stop()


def test_serve_s3_port_and_s3_bucket_override_and_add_to_regions_toml(tmp_path: Path) -> None:
    configured = free_port()
    workdir = Workdir.make(tmp_path, SHIPPED_CONFIG.read_text() + S3_TABLE.format(port=configured))
    s3_port = free_port()
    front = Front(workdir, GatewayProcess(workdir, args=("--s3-port", str(s3_port), "--s3-bucket", "extra=content")).wait_ready(), s3_port)
    try:
        assert [b["Name"] for b in front.client().list_buckets()["Buckets"]] == ["eu-data", "extra", "records", "us-data"]
    finally:
        front.stop()


def test_list_buckets_is_ledgered_with_who_listed(front: Front) -> None:
    front.client("analytics", "us-east-1").list_buckets()
    listed = [e["data"] for e in front.ledger() if e["kind"] == "s3.buckets-listed"][-1]
    assert (listed["by"]["service"], listed["count"] >= 3) == ("analytics", True)


def test_head_bucket_is_ledgered_with_the_buckets_region(front: Front) -> None:
    front.client().head_bucket(Bucket="us-data")
    read = [e["data"] for e in front.ledger() if e["kind"] == "s3.bucket-read"][-1]
    assert (read["bucket"], read["act"], read["home_region"]) == ("us-data", "head", "us-east-1")


def test_get_bucket_location_is_ledgered(front: Front) -> None:
    front.client().get_bucket_location(Bucket="eu-data")
    read = [e["data"] for e in front.ledger() if e["kind"] == "s3.bucket-read"][-1]
    assert (read["bucket"], read["act"]) == ("eu-data", "location")


def test_head_of_a_missing_bucket_is_ledgered_as_not_found(front: Front) -> None:
    with pytest.raises(ClientError):
        front.client().head_bucket(Bucket="no-such-bucket")
    read = [e["data"] for e in front.ledger() if e["kind"] == "s3.bucket-read"][-1]
    assert (read["bucket"], read["found"]) == ("no-such-bucket", False)


def test_expired_credentials_are_ledgered_naming_the_service(front: Front) -> None:
    key = load_key(front.workdir.data_dir / S3_KEY_FILE)
    caller = Caller("billing", "service", service="billing", region="eu-west-1", purpose="billing")
    access = access_key_id(key, caller, expires=int(datetime.now(UTC).timestamp()) - 1)
    session = boto3.session.Session(aws_access_key_id=access, aws_secret_access_key=secret_for(key, access), region_name="eu-west-1")
    with pytest.raises(ClientError):
        session.client("s3", endpoint_url=front.endpoint).list_buckets()
    refused = [e["data"] for e in front.ledger() if e["kind"] == "s3.signature-refused"][-1]
    assert (refused["code"], refused["by"]["service"]) == ("ExpiredToken", "billing")
