"""S3 behaviours, each run against moto and against the gateway's S3 front (see conftest)."""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.s3conformance.conftest import Target

PART = 5 * 1024 * 1024  # the smallest part S3 takes (but the last)


def etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


def error(call, **kwargs) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a call that must fail."""
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    response = refused.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def put(target: Target, name: str, body: bytes = b"0123456789", **kwargs) -> dict:
    return target.client().put_object(Bucket=target.bucket, Key=target.key(name), Body=body, **kwargs)


def get(target: Target, name: str, **kwargs) -> dict:
    return target.client().get_object(Bucket=target.bucket, Key=target.key(name), **kwargs)


# PutObject, GetObject, HeadObject


def test_an_object_reads_back_byte_for_byte(target: Target) -> None:
    put(target, "rt", b"round trip")
    assert get(target, "rt")["Body"].read() == b"round trip"


def test_every_byte_value_round_trips(target: Target) -> None:
    put(target, "bytes", bytes(range(256)) * 4)
    assert get(target, "bytes")["Body"].read() == bytes(range(256)) * 4


def test_an_empty_object_round_trips(target: Target) -> None:
    put(target, "empty", b"")
    assert get(target, "empty")["Body"].read() == b""


def test_a_one_mebibyte_object_round_trips(target: Target) -> None:
    body = hashlib.sha256(b"seed").digest() * 32768
    put(target, "mib", body)
    assert get(target, "mib")["Body"].read() == body


def test_the_put_etag_is_the_md5_of_the_body(target: Target) -> None:
    assert put(target, "etag-put", b"md5 me")["ETag"] == etag(b"md5 me")


def test_the_get_etag_is_the_put_etag(target: Target) -> None:
    put(target, "etag-get", b"md5 me too")
    assert get(target, "etag-get")["ETag"] == etag(b"md5 me too")


def test_an_overwrite_replaces_the_body_and_etag(target: Target) -> None:
    put(target, "over", b"first")
    put(target, "over", b"second")
    got = get(target, "over")
    assert (got["Body"].read(), got["ETag"]) == (b"second", etag(b"second"))


def test_get_gives_the_content_length(target: Target) -> None:
    put(target, "len", b"12345678")
    assert get(target, "len")["ContentLength"] == 8


def test_head_gives_the_size(target: Target) -> None:
    put(target, "head-size", b"123")
    assert target.client().head_object(Bucket=target.bucket, Key=target.key("head-size"))["ContentLength"] == 3


def test_head_gives_the_etag(target: Target) -> None:
    put(target, "head-etag", b"abc")
    assert target.client().head_object(Bucket=target.bucket, Key=target.key("head-etag"))["ETag"] == etag(b"abc")


def test_head_gives_a_last_modified_time_near_now(target: Target) -> None:
    put(target, "head-time")
    modified = target.client().head_object(Bucket=target.bucket, Key=target.key("head-time"))["LastModified"]
    assert abs(modified - datetime.now(UTC)) < timedelta(minutes=5)


def test_the_category_metadata_round_trips(target: Target) -> None:
    put(target, "category", Metadata={"category": "content"})
    assert target.client().head_object(Bucket=target.bucket, Key=target.key("category"))["Metadata"] == {"category": "content"}


def test_user_metadata_round_trips_exactly(target: Target) -> None:
    put(target, "meta", Metadata={"category": "content", "colour": "blue", "owner-team": "billing"})
    head = target.client().head_object(Bucket=target.bucket, Key=target.key("meta"))
    assert head["Metadata"] == {"category": "content", "colour": "blue", "owner-team": "billing"}


def test_the_content_type_round_trips(target: Target) -> None:
    put(target, "ctype", b"{}", ContentType="application/json")
    assert get(target, "ctype")["ContentType"] == "application/json"


def test_a_wrong_content_md5_is_bad_digest(target: Target) -> None:
    wrong = "1B2M2Y8AsgTpgAmY7PhCfg=="  # the MD5 of no bytes
    assert error(target.client().put_object, Bucket=target.bucket, Key=target.key("digest"), Body=b"x", ContentMD5=wrong) == (400, "BadDigest")


# Errors of a missing key or bucket


def test_getting_a_missing_key_is_404_no_such_key(target: Target) -> None:
    assert error(target.client().get_object, Bucket=target.bucket, Key=target.key("never")) == (404, "NoSuchKey")


def test_heading_a_missing_key_is_404(target: Target) -> None:
    assert error(target.client().head_object, Bucket=target.bucket, Key=target.key("never"))[0] == 404


def test_getting_from_a_missing_bucket_is_404_no_such_bucket(target: Target) -> None:
    assert error(target.client().get_object, Bucket="no-such-bucket", Key=target.key("x")) == (404, "NoSuchBucket")


def test_head_bucket_of_the_bucket_answers_200(target: Target) -> None:
    assert target.client().head_bucket(Bucket=target.bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_head_bucket_of_a_missing_bucket_is_404(target: Target) -> None:
    assert error(target.client().head_bucket, Bucket="no-such-bucket")[0] == 404


def test_list_buckets_names_the_bucket(target: Target) -> None:
    assert target.bucket in [b["Name"] for b in target.client().list_buckets()["Buckets"]]


def test_get_bucket_location_answers(target: Target) -> None:
    assert "LocationConstraint" in target.client().get_bucket_location(Bucket=target.bucket)


# Range and conditional GET


def test_a_range_request_answers_206_with_those_bytes(target: Target) -> None:
    put(target, "range", b"0123456789")
    got = get(target, "range", Range="bytes=2-5")
    assert (got["ResponseMetadata"]["HTTPStatusCode"], got["Body"].read()) == (206, b"2345")


def test_a_suffix_range_answers_the_last_bytes(target: Target) -> None:
    put(target, "suffix", b"0123456789")
    assert get(target, "suffix", Range="bytes=-3")["Body"].read() == b"789"


def test_a_range_answer_names_its_content_range(target: Target) -> None:
    put(target, "crange", b"0123456789")
    assert get(target, "crange", Range="bytes=0-3")["ContentRange"] == "bytes 0-3/10"


def test_a_range_past_the_end_is_invalid_range(target: Target) -> None:
    put(target, "badrange", b"0123456789")
    assert error(target.client().get_object, Bucket=target.bucket, Key=target.key("badrange"), Range="bytes=20-30") == (416, "InvalidRange")


def test_if_none_match_with_the_current_etag_is_304(target: Target) -> None:
    put(target, "inm", b"same")
    assert error(target.client().get_object, Bucket=target.bucket, Key=target.key("inm"), IfNoneMatch=etag(b"same"))[0] == 304


def test_if_match_with_another_etag_is_412(target: Target) -> None:
    put(target, "im", b"this")
    assert error(target.client().get_object, Bucket=target.bucket, Key=target.key("im"), IfMatch=etag(b"that")) == (412, "PreconditionFailed")


def test_if_match_with_the_current_etag_reads_the_object(target: Target) -> None:
    put(target, "im-ok", b"this")
    assert get(target, "im-ok", IfMatch=etag(b"this"))["Body"].read() == b"this"


def test_if_modified_since_after_the_write_is_304(target: Target) -> None:
    put(target, "ims")
    later = datetime.now(UTC) + timedelta(hours=1)
    assert error(target.client().get_object, Bucket=target.bucket, Key=target.key("ims"), IfModifiedSince=later)[0] == 304


# Conditional PutObject


def test_a_put_with_if_none_match_star_over_an_object_is_412(target: Target) -> None:
    put(target, "inm-put", b"first")
    assert error(target.client().put_object, Bucket=target.bucket, Key=target.key("inm-put"), Body=b"second", IfNoneMatch="*") == (
        412,
        "PreconditionFailed",
    )


def test_a_put_with_if_none_match_star_of_a_new_key_writes_it(target: Target) -> None:
    put(target, "inm-new", b"new", IfNoneMatch="*")
    assert get(target, "inm-new")["Body"].read() == b"new"


# DeleteObject, DeleteObjects


def test_a_deleted_object_is_no_such_key(target: Target) -> None:
    put(target, "del")
    target.client().delete_object(Bucket=target.bucket, Key=target.key("del"))
    assert error(target.client().get_object, Bucket=target.bucket, Key=target.key("del")) == (404, "NoSuchKey")


def test_deleting_a_missing_key_answers_204(target: Target) -> None:
    answer = target.client().delete_object(Bucket=target.bucket, Key=target.key("never-there"))
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_objects_removes_the_objects(target: Target) -> None:
    for name in ("multi-a", "multi-b"):
        put(target, name)
    target.client().delete_objects(Bucket=target.bucket, Delete={"Objects": [{"Key": target.key("multi-a")}, {"Key": target.key("multi-b")}]})
    listed = target.client().list_objects_v2(Bucket=target.bucket, Prefix=target.key("multi-"))
    assert listed.get("Contents", []) == []


def test_delete_objects_verbose_names_each_deleted_key(target: Target) -> None:
    for name in ("verbose-a", "verbose-b"):
        put(target, name)
    keys = [target.key("verbose-a"), target.key("verbose-b")]
    answer = target.client().delete_objects(Bucket=target.bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in answer["Deleted"]) == keys


def test_delete_objects_quiet_answers_no_deleted_entries(target: Target) -> None:
    put(target, "quiet")
    answer = target.client().delete_objects(Bucket=target.bucket, Delete={"Objects": [{"Key": target.key("quiet")}], "Quiet": True})
    assert (answer["ResponseMetadata"]["HTTPStatusCode"], answer.get("Deleted", []), answer.get("Errors", [])) == (200, [], [])


# CopyObject


def test_copy_object_copies_the_bytes(target: Target) -> None:
    put(target, "copy-src", b"copied")
    target.client().copy_object(Bucket=target.bucket, Key=target.key("copy-dst"), CopySource={"Bucket": target.bucket, "Key": target.key("copy-src")})
    assert get(target, "copy-dst")["Body"].read() == b"copied"


def test_copy_object_keeps_metadata_by_default(target: Target) -> None:
    put(target, "copy-meta-src", Metadata={"category": "content", "colour": "red"})
    source = {"Bucket": target.bucket, "Key": target.key("copy-meta-src")}
    target.client().copy_object(Bucket=target.bucket, Key=target.key("copy-meta-dst"), CopySource=source)
    assert get(target, "copy-meta-dst")["Metadata"] == {"category": "content", "colour": "red"}


def test_copy_object_with_metadata_directive_replace_takes_the_new_metadata(target: Target) -> None:
    put(target, "copy-rep-src", Metadata={"category": "content", "colour": "red"})
    source = {"Bucket": target.bucket, "Key": target.key("copy-rep-src")}
    metadata = {"category": "content", "colour": "green"}
    target.client().copy_object(Bucket=target.bucket, Key=target.key("copy-rep-dst"), CopySource=source, MetadataDirective="REPLACE", Metadata=metadata)
    assert get(target, "copy-rep-dst")["Metadata"] == {"category": "content", "colour": "green"}


# ListObjectsV2, ListObjects


def fill(target: Target, stem: str, count: int) -> list[str]:
    names = [f"{stem}-{i:02d}" for i in range(count)]
    for name in names:
        put(target, name, name.encode())
    return [target.key(name) for name in names]


def test_list_v2_lists_the_keys_under_a_prefix_in_order(target: Target) -> None:
    keys = fill(target, "lp", 3)
    put(target, "lq-00")
    listed = target.client().list_objects_v2(Bucket=target.bucket, Prefix=target.key("lp-"))
    assert [o["Key"] for o in listed["Contents"]] == keys


def test_list_v2_contents_carry_the_size(target: Target) -> None:
    put(target, "lsize-a", b"four")
    listed = target.client().list_objects_v2(Bucket=target.bucket, Prefix=target.key("lsize-"))
    assert [o["Size"] for o in listed["Contents"]] == [4]


def test_list_v2_contents_carry_the_etag(target: Target) -> None:
    put(target, "letag-a", b"four")
    listed = target.client().list_objects_v2(Bucket=target.bucket, Prefix=target.key("letag-"))
    assert [o["ETag"] for o in listed["Contents"]] == [etag(b"four")]


def test_list_v2_stops_at_max_keys_and_says_it_is_truncated(target: Target) -> None:
    fill(target, "lmax", 3)
    listed = target.client().list_objects_v2(Bucket=target.bucket, Prefix=target.key("lmax-"), MaxKeys=2)
    assert (listed["KeyCount"], listed["IsTruncated"], "NextContinuationToken" in listed) == (2, True, True)


def test_list_v2_continuation_lists_every_key_once(target: Target) -> None:
    keys = fill(target, "lcont", 5)
    pages = target.client().get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=target.key("lcont-"), PaginationConfig={"PageSize": 2})
    assert [o["Key"] for page in pages for o in page.get("Contents", [])] == keys


def test_list_v2_start_after_skips_the_keys_up_to_it(target: Target) -> None:
    keys = fill(target, "lsa", 3)
    listed = target.client().list_objects_v2(Bucket=target.bucket, Prefix=target.key("lsa-"), StartAfter=keys[0])
    assert [o["Key"] for o in listed["Contents"]] == keys[1:]


def test_list_v2_of_a_prefix_with_no_keys_is_empty(target: Target) -> None:
    listed = target.client().list_objects_v2(Bucket=target.bucket, Prefix=target.key("nothing-here-"))
    assert (listed["KeyCount"], listed.get("Contents", [])) == (0, [])


def test_list_v2_with_a_delimiter_rolls_keys_up_into_common_prefixes(target: Target) -> None:
    put(target, "ldelim")
    listed = target.client().list_objects_v2(Bucket=target.bucket, Delimiter="/")
    assert target.prefix in [p["Prefix"] for p in listed.get("CommonPrefixes", [])]


def test_list_v1_lists_by_prefix(target: Target) -> None:
    keys = fill(target, "lv1p", 2)
    listed = target.client().list_objects(Bucket=target.bucket, Prefix=target.key("lv1p-"))
    assert [o["Key"] for o in listed["Contents"]] == keys


def test_list_v1_pages_with_marker(target: Target) -> None:
    keys = fill(target, "lv1m", 3)
    listed = target.client().list_objects(Bucket=target.bucket, Prefix=target.key("lv1m-"), Marker=keys[0])
    assert [o["Key"] for o in listed["Contents"]] == keys[1:]


# Multipart upload


def parts(count: int) -> list[bytes]:
    """``count`` parts of the smallest size S3 takes, each different, the last short."""
    return [bytes([65 + i]) * PART for i in range(count - 1)] + [b"tail"]


def upload(target: Target, name: str, bodies: list[bytes]) -> tuple[str, list[dict]]:
    s3 = target.client()
    upload_id = s3.create_multipart_upload(Bucket=target.bucket, Key=target.key(name))["UploadId"]
    done = [
        {"PartNumber": n, "ETag": s3.upload_part(Bucket=target.bucket, Key=target.key(name), UploadId=upload_id, PartNumber=n, Body=body)["ETag"]}
        for n, body in enumerate(bodies, start=1)
    ]
    return upload_id, done


def test_a_multipart_upload_completes_to_the_parts_joined(target: Target) -> None:
    bodies = parts(2)
    upload_id, done = upload(target, "mp", bodies)
    target.client().complete_multipart_upload(Bucket=target.bucket, Key=target.key("mp"), UploadId=upload_id, MultipartUpload={"Parts": done})
    assert get(target, "mp")["Body"].read() == b"".join(bodies)


def test_a_multipart_etag_is_the_md5_of_the_part_md5s_dash_count(target: Target) -> None:
    bodies = parts(2)
    upload_id, done = upload(target, "mp-etag", bodies)
    answer = target.client().complete_multipart_upload(Bucket=target.bucket, Key=target.key("mp-etag"), UploadId=upload_id, MultipartUpload={"Parts": done})
    expected = hashlib.md5(b"".join(hashlib.md5(b).digest() for b in bodies)).hexdigest()
    assert answer["ETag"] == f'"{expected}-2"'


def test_list_parts_lists_the_uploaded_parts(target: Target) -> None:
    upload_id, _ = upload(target, "mp-list", parts(2))
    listed = target.client().list_parts(Bucket=target.bucket, Key=target.key("mp-list"), UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(1, PART), (2, 4)]


def test_list_multipart_uploads_lists_an_open_upload(target: Target) -> None:
    upload_id, _ = upload(target, "mp-open", parts(1))
    listed = target.client().list_multipart_uploads(Bucket=target.bucket, Prefix=target.key("mp-open"))
    assert [u["UploadId"] for u in listed.get("Uploads", [])] == [upload_id]


def test_an_aborted_multipart_upload_is_no_such_upload(target: Target) -> None:
    upload_id, _ = upload(target, "mp-abort", parts(1))
    target.client().abort_multipart_upload(Bucket=target.bucket, Key=target.key("mp-abort"), UploadId=upload_id)
    assert error(target.client().list_parts, Bucket=target.bucket, Key=target.key("mp-abort"), UploadId=upload_id) == (404, "NoSuchUpload")


def test_completing_with_a_wrong_part_etag_is_invalid_part(target: Target) -> None:
    upload_id, done = upload(target, "mp-bad", parts(2))
    done[0]["ETag"] = etag(b"not this part")
    multipart = {"Parts": done}
    assert error(target.client().complete_multipart_upload, Bucket=target.bucket, Key=target.key("mp-bad"), UploadId=upload_id, MultipartUpload=multipart) == (
        400,
        "InvalidPart",
    )


# Presigned URLs and signatures


def test_a_presigned_get_url_reads_the_object_without_credentials(target: Target) -> None:
    put(target, "presigned", b"shared")
    url = target.client().generate_presigned_url("get_object", Params={"Bucket": target.bucket, "Key": target.key("presigned")}, ExpiresIn=300)
    with urllib.request.urlopen(url) as answer:
        assert answer.read() == b"shared"


def test_a_presigned_put_url_writes_the_object(target: Target) -> None:
    url = target.client().generate_presigned_url("put_object", Params={"Bucket": target.bucket, "Key": target.key("presigned-put")}, ExpiresIn=300)
    parts = urllib.parse.urlsplit(url)
    # http.client sends no Content-Type of its own (urllib would add one, which a presigned URL of boto3's default form signs as empty)
    connection = http.client.HTTPConnection(parts.netloc)
    connection.request("PUT", f"{parts.path}?{parts.query}", body=b"put by url")
    assert connection.getresponse().status == 200
    connection.close()
    assert get(target, "presigned-put")["Body"].read() == b"put by url"


def test_an_expired_presigned_url_is_refused(target: Target) -> None:
    put(target, "presigned-old", b"old")
    url = target.client().generate_presigned_url("get_object", Params={"Bucket": target.bucket, "Key": target.key("presigned-old")}, ExpiresIn=1)
    time.sleep(2)  # past the URL's expiry, not a measurement
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url)
    assert (refused.value.code, b"<Code>AccessDenied</Code>" in refused.value.read()) == (403, True)


def test_a_wrong_secret_is_signature_does_not_match(target: Target) -> None:
    s3 = target.client(secret="not-the-secret")
    assert error(s3.get_object, Bucket=target.bucket, Key=target.key("x")) == (403, "SignatureDoesNotMatch")


def test_an_unknown_access_key_is_invalid_access_key_id(target: Target) -> None:
    s3 = target.client(access_key="AKIAUNKNOWNUNKNOWN00")
    assert error(s3.get_object, Bucket=target.bucket, Key=target.key("x")) == (403, "InvalidAccessKeyId")
