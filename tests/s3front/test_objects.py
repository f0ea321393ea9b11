"""Object operations through the S3 front with unmodified boto3: ranges, conditions, metadata, copies, batch deletes, errors."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from gateway.services.buckets import record_key_of
from gateway.services.records import record_key
from gateway.stores.files import FileStore
from tests.s3front.support import Front


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    front = Front.start(Path(tmp_path_factory.mktemp("s3objects")))
    try:
        yield front
    finally:
        front.stop()


@pytest.fixture(scope="module")
def s3(front: Front):
    return front.client()


def error_of(refused: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    return refused.value.response["ResponseMetadata"]["HTTPStatusCode"], refused.value.response["Error"]["Code"]


def md5(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


# --- GetObject: ranges and conditions ------------------------------------------------------------


def test_a_range_read_is_206_with_the_bytes_and_their_content_range(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="range/a", Body=b"0123456789")
    got = s3.get_object(Bucket="eu-data", Key="range/a", Range="bytes=2-5")
    assert (got["ResponseMetadata"]["HTTPStatusCode"], got["Body"].read(), got["ContentRange"]) == (206, b"2345", "bytes 2-5/10")


def test_a_suffix_range_reads_the_last_bytes(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="range/b", Body=b"0123456789")
    assert s3.get_object(Bucket="eu-data", Key="range/b", Range="bytes=-3")["Body"].read() == b"789"


def test_a_range_past_the_end_is_416_invalid_range(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="range/c", Body=b"0123")
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="eu-data", Key="range/c", Range="bytes=10-20")
    assert error_of(refused) == (416, "InvalidRange")


def test_if_none_match_with_the_current_etag_is_304(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="cond/a", Body=b"same")
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="eu-data", Key="cond/a", IfNoneMatch=md5(b"same"))
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304


def test_if_match_with_another_etag_is_412_precondition_failed(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="cond/b", Body=b"now")
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="eu-data", Key="cond/b", IfMatch=md5(b"before"))
    assert error_of(refused) == (412, "PreconditionFailed")


def test_if_modified_since_a_later_time_is_304(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="cond/c", Body=b"old")
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="eu-data", Key="cond/c", IfModifiedSince=datetime.now(UTC) + timedelta(hours=1))
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304


def test_if_unmodified_since_an_earlier_time_is_412(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="cond/d", Body=b"new")
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="eu-data", Key="cond/d", IfUnmodifiedSince=datetime.now(UTC) - timedelta(days=1))
    assert error_of(refused) == (412, "PreconditionFailed")


def test_if_match_with_the_current_etag_reads_the_object(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="cond/e", Body=b"match")
    assert s3.get_object(Bucket="eu-data", Key="cond/e", IfMatch=md5(b"match"))["Body"].read() == b"match"


# --- PutObject: conditions -----------------------------------------------------------------------


def test_a_put_with_if_none_match_star_over_an_existing_object_is_412(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="cas/a", Body=b"first")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="eu-data", Key="cas/a", Body=b"second", IfNoneMatch="*")
    assert error_of(refused) == (412, "PreconditionFailed")


def test_a_put_with_if_match_of_the_current_etag_replaces_the_object(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="cas/b", Body=b"v1")
    s3.put_object(Bucket="eu-data", Key="cas/b", Body=b"v2", IfMatch=md5(b"v1"))
    assert s3.get_object(Bucket="eu-data", Key="cas/b")["Body"].read() == b"v2"


def test_a_put_with_if_match_of_a_stale_etag_is_412_and_changes_nothing(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="cas/c", Body=b"v1")
    s3.put_object(Bucket="eu-data", Key="cas/c", Body=b"v2")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="eu-data", Key="cas/c", Body=b"v3", IfMatch=md5(b"v1"))
    assert (error_of(refused), s3.get_object(Bucket="eu-data", Key="cas/c")["Body"].read()) == ((412, "PreconditionFailed"), b"v2")


# --- user metadata -------------------------------------------------------------------------------


def test_user_metadata_round_trips_with_names_lower_cased_and_values_as_sent(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="meta/a", Body=b"x", Metadata={"Project-Name": "Blue  Sky", "owner_id": "42"})
    assert s3.get_object(Bucket="eu-data", Key="meta/a")["Metadata"] == {"project-name": "Blue  Sky", "owner_id": "42"}


def test_head_object_gives_the_user_metadata_and_content_type(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="meta/b", Body=b"{}", Metadata={"kind": "report"}, ContentType="application/json")
    head = s3.head_object(Bucket="eu-data", Key="meta/b")
    assert (head["Metadata"], head["ContentType"]) == ({"kind": "report"}, "application/json")


def test_the_residency_tag_and_seal_never_show_to_s3_clients(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="meta/c", Body=b"x")
    headers = s3.head_object(Bucket="eu-data", Key="meta/c")["ResponseMetadata"]["HTTPHeaders"]
    assert [name for name in headers if "residency-tag" in name or "seal" in name or name.startswith("x-amz-meta-")] == []


def test_user_metadata_over_2_kib_is_metadata_too_large(s3) -> None:
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="eu-data", Key="meta/d", Body=b"x", Metadata={"big": "v" * 2100})
    assert error_of(refused) == (400, "MetadataTooLarge")


def test_user_metadata_that_fits_s3s_limit_but_not_beside_the_tag_is_metadata_too_large_and_no_write_is_begun(front: Front, s3) -> None:
    intents = [e["kind"] for e in front.ledger()].count("record.write-intent")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="eu-data", Key="meta/e", Body=b"x", Metadata={"big": "v" * 1900})
    assert (error_of(refused), [e["kind"] for e in front.ledger()].count("record.write-intent")) == ((400, "MetadataTooLarge"), intents)


# --- CopyObject ----------------------------------------------------------------------------------


def test_a_copy_in_one_region_copies_the_body_and_the_metadata(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="copy/src", Body=b"copied", Metadata={"kind": "note"}, ContentType="text/plain")
    s3.copy_object(Bucket="eu-data", Key="copy/dst", CopySource={"Bucket": "eu-data", "Key": "copy/src"})
    got = s3.get_object(Bucket="eu-data", Key="copy/dst")
    assert (got["Body"].read(), got["Metadata"], got["ContentType"]) == (b"copied", {"kind": "note"}, "text/plain")


def test_a_copy_with_the_replace_directive_takes_the_requests_metadata(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="copy/src2", Body=b"x", Metadata={"kind": "note"})
    s3.copy_object(Bucket="eu-data", Key="copy/dst2", CopySource="eu-data/copy/src2", MetadataDirective="REPLACE", Metadata={"kind": "memo"})
    assert s3.head_object(Bucket="eu-data", Key="copy/dst2")["Metadata"] == {"kind": "memo"}


def test_a_copy_from_a_subject_routed_bucket_into_a_home_region_bucket_of_its_region_is_allowed(s3) -> None:
    s3.put_object(Bucket="records", Key="sean/copied", Body=b"from a subject")
    s3.copy_object(Bucket="eu-data", Key="copy/from-sean", CopySource="records/sean/copied")
    assert s3.get_object(Bucket="eu-data", Key="copy/from-sean")["Body"].read() == b"from a subject"


def test_a_copy_from_the_eu_into_the_us_is_refused_as_a_transfer_with_its_reason(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="copy/eu-only", Body=b"stays")
    with pytest.raises(ClientError) as refused:
        s3.copy_object(Bucket="us-data", Key="copy/eu-only", CopySource="eu-data/copy/eu-only")
    headers = refused.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert (error_of(refused), headers["x-residency-decision"]) == ((403, "AccessDenied"), "service-not-covered")


def test_a_refused_copy_writes_nothing(front: Front, s3) -> None:
    s3.put_object(Bucket="eu-data", Key="copy/eu-only2", Body=b"stays")
    with pytest.raises(ClientError):
        s3.copy_object(Bucket="us-data", Key="copy/eu-only2", CopySource="eu-data/copy/eu-only2")
    with pytest.raises(ClientError) as missing:
        front.client("support", "us-east-1").head_object(Bucket="us-data", Key="copy/eu-only2")
    assert error_of(missing) == (404, "404")


def test_a_refused_copy_is_ledgered_with_both_regions(front: Front, s3) -> None:
    s3.put_object(Bucket="eu-data", Key="copy/eu-only3", Body=b"stays")
    with pytest.raises(ClientError):
        s3.copy_object(Bucket="us-data", Key="copy/eu-only3", CopySource="eu-data/copy/eu-only3")
    refused = [e["data"] for e in front.ledger() if e["kind"] == "s3.copy-refused"][-1]
    assert (refused["source"]["region"], refused["destination"]["region"], refused["transfer"]["outcome"]) == ("eu-west-1", "us-east-1", "refuse")


def test_a_copy_is_ledgered(front: Front, s3) -> None:
    s3.put_object(Bucket="eu-data", Key="copy/src3", Body=b"x")
    s3.copy_object(Bucket="eu-data", Key="copy/dst3", CopySource="eu-data/copy/src3")
    copied = [e["data"] for e in front.ledger() if e["kind"] == "s3.copied"][-1]
    assert (copied["source"]["key"], copied["destination"]["key"]) == (record_key_of("copy/src3"), record_key_of("copy/dst3"))


# --- DeleteObjects -------------------------------------------------------------------------------


def test_delete_objects_deletes_each_key_and_names_it(s3) -> None:
    for key in ("batch/a", "batch/b"):
        s3.put_object(Bucket="eu-data", Key=key, Body=b"x")
    answer = s3.delete_objects(Bucket="eu-data", Delete={"Objects": [{"Key": "batch/a"}, {"Key": "batch/b"}]})
    left = s3.list_objects_v2(Bucket="eu-data", Prefix="batch/").get("Contents", [])
    assert (sorted(d["Key"] for d in answer["Deleted"]), left) == (["batch/a", "batch/b"], [])


def test_quiet_delete_objects_names_only_the_keys_it_could_not_delete(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="batch/c", Body=b"x")
    answer = s3.delete_objects(Bucket="eu-data", Delete={"Objects": [{"Key": "batch/c"}, {"Key": "k" * 81}], "Quiet": True})
    assert ("Deleted" in answer, [(e["Key"], e["Code"]) for e in answer["Errors"]]) == (False, [("k" * 81, "KeyTooLongError")])


def test_delete_objects_by_a_us_service_of_eu_objects_refuses_each_key(front: Front, s3) -> None:
    s3.put_object(Bucket="eu-data", Key="batch/d", Body=b"x")
    answer = front.client("support", "us-east-1").delete_objects(Bucket="eu-data", Delete={"Objects": [{"Key": "batch/d"}]})
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("batch/d", "AccessDenied")]


def test_each_key_of_delete_objects_is_ledgered(front: Front, s3) -> None:
    for key in ("batch/e", "batch/f"):
        s3.put_object(Bucket="eu-data", Key=key, Body=b"x")
    before = [e["kind"] for e in front.ledger()].count("record.deleted")
    s3.delete_objects(Bucket="eu-data", Delete={"Objects": [{"Key": "batch/e"}, {"Key": "batch/f"}]})
    assert [e["kind"] for e in front.ledger()].count("record.deleted") == before + 2


# --- listing -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(s3) -> str:
    """Objects under `tree/`: two files at the top, and three folders."""
    for key in ("tree/a.txt", "tree/b.txt", "tree/docs/1", "tree/docs/2", "tree/img/1", "tree/x y/1"):
        s3.put_object(Bucket="eu-data", Key=key, Body=key.encode())
    return "tree/"


def test_a_delimiter_folds_keys_into_common_prefixes(s3, tree: str) -> None:
    listed = s3.list_objects_v2(Bucket="eu-data", Prefix=tree, Delimiter="/")
    assert ([o["Key"] for o in listed["Contents"]], [p["Prefix"] for p in listed["CommonPrefixes"]], listed["KeyCount"]) == (
        ["tree/a.txt", "tree/b.txt"],
        ["tree/docs/", "tree/img/", "tree/x y/"],
        5,
    )


def test_list_objects_v2_pages_through_keys_and_common_prefixes(s3, tree: str) -> None:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="eu-data", Prefix=tree, Delimiter="/", PaginationConfig={"PageSize": 2})
    found = [(o.get("Key") or o.get("Prefix")) for page in pages for o in page.get("Contents", []) + page.get("CommonPrefixes", [])]
    assert sorted(found) == ["tree/a.txt", "tree/b.txt", "tree/docs/", "tree/img/", "tree/x y/"]


def test_list_objects_v1_pages_with_markers(s3, tree: str) -> None:
    pages = s3.get_paginator("list_objects").paginate(Bucket="eu-data", Prefix=tree, PaginationConfig={"PageSize": 2})
    found = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert found == ["tree/a.txt", "tree/b.txt", "tree/docs/1", "tree/docs/2", "tree/img/1", "tree/x y/1"]


def test_start_after_lists_the_keys_after_it(s3, tree: str) -> None:
    listed = s3.list_objects_v2(Bucket="eu-data", Prefix=tree, StartAfter="tree/docs/2")
    assert [o["Key"] for o in listed["Contents"]] == ["tree/img/1", "tree/x y/1"]


def test_max_keys_truncates_a_listing(s3, tree: str) -> None:
    listed = s3.list_objects_v2(Bucket="eu-data", Prefix=tree, MaxKeys=1)
    assert ([o["Key"] for o in listed["Contents"]], listed["IsTruncated"], listed["KeyCount"]) == (["tree/a.txt"], True, 1)


def test_fetch_owner_gives_each_object_an_owner(s3, tree: str) -> None:
    listed = s3.list_objects_v2(Bucket="eu-data", Prefix=tree, FetchOwner=True)
    assert all("Owner" in o for o in listed["Contents"])


def test_url_encoded_keys_read_back_as_written(s3, tree: str) -> None:
    listed = s3.list_objects_v2(Bucket="eu-data", Prefix="tree/x y/", EncodingType="url")
    assert [o["Key"] for o in listed["Contents"]] == ["tree/x%20y/1"]


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, subresource",
    [
        (lambda s3: s3.get_object_acl(Bucket="eu-data", Key="tree/a.txt"), "acl"),
        (lambda s3: s3.get_object_tagging(Bucket="eu-data", Key="tree/a.txt"), "tagging"),
        (lambda s3: s3.get_bucket_versioning(Bucket="eu-data"), "versioning"),
        (lambda s3: s3.get_bucket_lifecycle_configuration(Bucket="eu-data"), "lifecycle"),
        (lambda s3: s3.get_bucket_policy(Bucket="eu-data"), "policy"),
        (lambda s3: s3.put_object_tagging(Bucket="eu-data", Key="tree/a.txt", Tagging={"TagSet": []}), "tagging"),
    ],
)
def test_an_unimplemented_subresource_is_501_naming_it(s3, tree: str, call, subresource: str) -> None:
    with pytest.raises(ClientError) as refused:
        call(s3)
    assert (error_of(refused), f"`{subresource}`" in refused.value.response["Error"]["Message"]) == ((501, "NotImplemented"), True)


def test_an_object_tagging_put_leaves_the_object_as_it_was(s3) -> None:
    s3.put_object(Bucket="eu-data", Key="sub/kept", Body=b"kept")
    with pytest.raises(ClientError):
        s3.put_object_tagging(Bucket="eu-data", Key="sub/kept", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert s3.get_object(Bucket="eu-data", Key="sub/kept")["Body"].read() == b"kept"


def test_an_overwrite_under_legal_hold_is_access_denied_in_s3s_words(front: Front, s3) -> None:
    s3.put_object(Bucket="eu-data", Key="held/a", Body=b"evidence")
    store = FileStore("eu-west-1", front.workdir.data_dir / "stores/eu-west-1")
    asyncio.run(store.set_legal_hold(record_key("s3.eu-data", record_key_of("held/a")), True))
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="eu-data", Key="held/a", Body=b"changed")
    error = refused.value.response["Error"]
    assert (error["Code"], error["Message"]) == ("AccessDenied", "Object is WORM protected and cannot be overwritten")
