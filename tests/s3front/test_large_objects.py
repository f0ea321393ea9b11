"""Large and multipart objects together with the rest of the front: home-region buckets, user metadata, copies,
conditions, deletes of many keys, and paged listings of parts and uploads."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from gateway.services.buckets import record_key_of
from gateway.services.objects import CHUNK_BYTES
from gateway.stores.files import FileStore
from tests.s3front.support import Front

MIB = 1024 * 1024
PARTS = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)
LARGE = os.urandom(CHUNK_BYTES + 3 * MIB + 17)  # made by the test: more than one chunk


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    front = Front.start(Path(tmp_path_factory.mktemp("s3large")))
    try:
        front.client().put_object(Bucket="records", Key="sean/seed", Body=b"an object the tests below name")
        yield front
    finally:
        front.stop()


def error_of(refused: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    return refused.value.response["ResponseMetadata"]["HTTPStatusCode"], refused.value.response["Error"]["Code"]


def eu_store(front: Front) -> FileStore:
    return FileStore("eu-west-1", front.workdir.data_dir / "stores/eu-west-1")


def test_a_multipart_upload_into_a_home_region_bucket_reads_back_under_its_s3_key(front: Front, tmp_path: Path) -> None:
    s3 = front.client()
    (tmp_path / "up").write_bytes(LARGE)
    s3.upload_file(str(tmp_path / "up"), "eu-data", "videos/2026/talk one.mp4", Config=PARTS)
    assert hashlib.sha256(s3.get_object(Bucket="eu-data", Key="videos/2026/talk one.mp4")["Body"].read()).digest() == hashlib.sha256(LARGE).digest()


def test_a_multipart_objects_chunks_stay_in_the_home_region_buckets_region(front: Front, tmp_path: Path) -> None:
    s3 = front.client()
    (tmp_path / "up").write_bytes(LARGE)
    s3.upload_file(str(tmp_path / "up"), "eu-data", "kept-in-eu.bin", Config=PARTS)
    us = FileStore("us-east-1", front.workdir.data_dir / "stores/us-east-1")
    eu_uploads = asyncio.run(eu_store(front).list("subjects/s3.eu-data/uploads/"))
    assert (len(eu_uploads) > 0, asyncio.run(us.list("subjects/s3.eu-data/"))) == (True, [])


def test_list_multipart_uploads_of_a_home_region_bucket_names_each_upload_by_its_s3_key(front: Front) -> None:
    s3 = front.client()
    upload = s3.create_multipart_upload(Bucket="eu-data", Key="in progress/a.bin")["UploadId"]
    listed = s3.list_multipart_uploads(Bucket="eu-data", Prefix="in progress/")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("in progress/a.bin", upload)]


def test_user_metadata_and_content_type_given_at_create_multipart_upload_come_back_on_the_object(front: Front) -> None:
    s3 = front.client()
    upload = s3.create_multipart_upload(Bucket="records", Key="sean/meta", Metadata={"Camera": "Front Door"}, ContentType="video/mp4")["UploadId"]
    etag = s3.upload_part(Bucket="records", Key="sean/meta", UploadId=upload, PartNumber=1, Body=b"frames")["ETag"]
    s3.complete_multipart_upload(Bucket="records", Key="sean/meta", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    head = s3.head_object(Bucket="records", Key="sean/meta")
    assert (head["Metadata"], head["ContentType"]) == ({"camera": "Front Door"}, "video/mp4")


def test_user_metadata_of_a_large_put_object_round_trips(front: Front) -> None:
    s3 = front.client()
    s3.put_object(Bucket="records", Key="sean/large-meta", Body=LARGE, Metadata={"source": "scanner 2"})
    assert s3.head_object(Bucket="records", Key="sean/large-meta")["Metadata"] == {"source": "scanner 2"}


def test_a_copy_of_a_chunked_object_reads_back_as_the_same_bytes(front: Front) -> None:
    s3 = front.client()
    s3.put_object(Bucket="records", Key="sean/original", Body=LARGE)
    s3.copy_object(Bucket="records", Key="sean/copy", CopySource={"Bucket": "records", "Key": "sean/original"})
    assert s3.get_object(Bucket="records", Key="sean/copy")["Body"].read() == LARGE


def test_a_copy_of_a_chunked_object_survives_the_deletion_of_its_source(front: Front) -> None:
    s3 = front.client()
    s3.put_object(Bucket="records", Key="sean/source", Body=LARGE)
    s3.copy_object(Bucket="records", Key="sean/kept", CopySource={"Bucket": "records", "Key": "sean/source"})
    s3.delete_object(Bucket="records", Key="sean/source")
    assert hashlib.md5(s3.get_object(Bucket="records", Key="sean/kept")["Body"].read()).hexdigest() == hashlib.md5(LARGE).hexdigest()


def test_a_copy_of_a_chunked_object_from_the_eu_into_the_us_is_refused(front: Front) -> None:
    s3 = front.client()
    s3.put_object(Bucket="eu-data", Key="large.bin", Body=LARGE)
    with pytest.raises(ClientError) as refused:
        s3.copy_object(Bucket="us-data", Key="large.bin", CopySource={"Bucket": "eu-data", "Key": "large.bin"})
    assert error_of(refused) == (403, "AccessDenied")


def test_if_match_with_a_multipart_etag_allows_the_overwrite(front: Front) -> None:
    s3 = front.client()
    upload = s3.create_multipart_upload(Bucket="records", Key="sean/conditional")["UploadId"]
    etag = s3.upload_part(Bucket="records", Key="sean/conditional", UploadId=upload, PartNumber=1, Body=b"one part")["ETag"]
    done = s3.complete_multipart_upload(Bucket="records", Key="sean/conditional", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    s3.put_object(Bucket="records", Key="sean/conditional", Body=b"second", IfMatch=done["ETag"])
    assert s3.get_object(Bucket="records", Key="sean/conditional")["Body"].read() == b"second"


def test_if_none_match_star_refuses_a_large_put_over_an_object_and_keeps_it(front: Front) -> None:
    s3 = front.client()
    s3.put_object(Bucket="records", Key="sean/exists", Body=b"first")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="records", Key="sean/exists", Body=LARGE, IfNoneMatch="*")
    assert (error_of(refused)[0], s3.get_object(Bucket="records", Key="sean/exists")["Body"].read()) == (412, b"first")


def test_a_large_put_refused_by_its_condition_leaves_no_chunk_in_the_store(front: Front) -> None:
    s3 = front.client()
    s3.put_object(Bucket="records", Key="sean/guarded", Body=b"first")
    before = asyncio.run(eu_store(front).list("subjects/sean/uploads/"))
    with pytest.raises(ClientError):
        s3.put_object(Bucket="records", Key="sean/guarded", Body=LARGE, IfNoneMatch="*")
    assert asyncio.run(eu_store(front).list("subjects/sean/uploads/")) == before


def test_delete_objects_removes_the_chunks_of_a_chunked_object(front: Front) -> None:
    s3 = front.client()
    s3.put_object(Bucket="eu-data", Key="to-delete.bin", Body=LARGE)
    before = set(asyncio.run(eu_store(front).list("subjects/s3.eu-data/uploads/")))
    s3.delete_objects(Bucket="eu-data", Delete={"Objects": [{"Key": "to-delete.bin"}]})
    after = set(asyncio.run(eu_store(front).list("subjects/s3.eu-data/uploads/")))
    assert len(before - after) == 2  # the object's two chunks


def test_a_delete_objects_body_other_than_the_one_signed_is_x_amz_content_sha256_mismatch(front: Front) -> None:
    body = b"<Delete><Object><Key>sean/seed</Key></Object></Delete>"
    signed_hash = {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    status, _, answer = front.signed("POST", f"{front.endpoint}/records?delete", body=body, headers=signed_hash, send=body.replace(b"seed", b"sees"))
    assert (status, b"XAmzContentSHA256Mismatch" in answer, front.client().head_object(Bucket="records", Key="sean/seed")["ContentLength"] > 0) == (
        400,
        True,
        True,
    )


def test_list_parts_pages_by_max_parts_and_part_number_marker(front: Front) -> None:
    s3 = front.client()
    upload = s3.create_multipart_upload(Bucket="records", Key="sean/paged")["UploadId"]
    for number in (1, 2, 3):
        s3.upload_part(Bucket="records", Key="sean/paged", UploadId=upload, PartNumber=number, Body=b"part %d" % number)
    first = s3.list_parts(Bucket="records", Key="sean/paged", UploadId=upload, MaxParts=2)
    rest = s3.list_parts(Bucket="records", Key="sean/paged", UploadId=upload, PartNumberMarker=first["NextPartNumberMarker"])
    assert ([p["PartNumber"] for p in first["Parts"]], first["IsTruncated"], [p["PartNumber"] for p in rest["Parts"]]) == ([1, 2], True, [3])


def test_an_upload_of_a_home_region_bucket_is_stored_under_the_record_key_of_its_s3_key(front: Front) -> None:
    s3 = front.client()
    upload = s3.create_multipart_upload(Bucket="eu-data", Key="mapped.bin")["UploadId"]
    state = asyncio.run(eu_store(front).get(f"subjects/s3.eu-data/uploads/{upload}/upload")).body
    assert record_key_of("mapped.bin").encode() in state


def chunk_keys(front: Front, subject: str) -> set[str]:
    return {k for k in asyncio.run(eu_store(front).list(f"subjects/{subject}/uploads/")) if "/whole/" in k}


def test_deleting_a_chunked_object_through_the_http_api_removes_its_chunks(front: Front) -> None:
    before = chunk_keys(front, "sean")
    front.client().put_object(Bucket="records", Key="sean/rest-delete", Body=LARGE)
    status, _ = front.rest("DELETE", "/v1/subjects/sean/records/rest-delete", front.workdir.service("support", "eu-west-1"))
    assert (status, chunk_keys(front, "sean")) == (204, before)


def test_a_record_written_through_the_http_api_over_a_chunked_object_removes_its_chunks(front: Front) -> None:
    before = chunk_keys(front, "sean")
    front.client().put_object(Bucket="records", Key="sean/rest-over", Body=LARGE)
    headers = {**front.workdir.service("support", "eu-west-1"), "Content-Type": "application/octet-stream"}
    status, _ = front.rest("PUT", "/v1/subjects/sean/records/rest-over?category=content", headers, b"small now")
    assert (status, chunk_keys(front, "sean")) == (200, before)
