"""Every S3 operation the front serves leaves a ledger entry naming its caller; those on a subject's data carry the
residency decision they rest on (outcome and reasons), as the HTTP API's entries do."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.s3front.support import Front


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    front = Front.start(Path(tmp_path_factory.mktemp("s3ledger")))
    try:
        s3 = front.client()
        s3.put_object(Bucket="eu-data", Key="kept.txt", Body=b"kept")
        s3.create_bucket(Bucket="made-here", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield front
    finally:
        front.stop()


def _fresh() -> str:
    return f"fresh-{uuid.uuid4().hex}.txt"


def _stored(s3) -> str:
    """The key of an object just put, to be deleted."""
    key = _fresh()
    s3.put_object(Bucket="eu-data", Key=key, Body=b"to delete")
    return key


def _upload(s3) -> str:
    return s3.create_multipart_upload(Bucket="eu-data", Key="parts.bin")["UploadId"]


def _part(s3) -> None:
    s3.upload_part(Bucket="eu-data", Key="parts.bin", UploadId=_upload(s3), PartNumber=1, Body=b"part")


def _complete(s3) -> None:
    upload = _upload(s3)
    etag = s3.upload_part(Bucket="eu-data", Key="parts.bin", UploadId=upload, PartNumber=1, Body=b"part")["ETag"]
    s3.complete_multipart_upload(Bucket="eu-data", Key="parts.bin", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})


# operation -> (what it does with a boto3 client, the ledger kind it must add, whether that entry carries a residency decision)
OPERATIONS: dict[str, tuple[Callable, str, bool]] = {
    "GetObject": (lambda s3: s3.get_object(Bucket="eu-data", Key="kept.txt")["Body"].read(), "service.read", True),
    "GetObject with a Range": (lambda s3: s3.get_object(Bucket="eu-data", Key="kept.txt", Range="bytes=0-1")["Body"].read(), "service.read", True),
    "HeadObject": (lambda s3: s3.head_object(Bucket="eu-data", Key="kept.txt"), "service.read", True),
    "PutObject": (lambda s3: s3.put_object(Bucket="eu-data", Key="new.txt", Body=b"new"), "record.write-intent", True),
    "PutObject with If-None-Match": (lambda s3: s3.put_object(Bucket="eu-data", Key=_fresh(), Body=b"x", IfNoneMatch="*"), "record.write-intent", True),
    "DeleteObject": (lambda s3: s3.delete_object(Bucket="eu-data", Key=_stored(s3)), "record.delete-intent", True),
    "DeleteObjects": (lambda s3: s3.delete_objects(Bucket="eu-data", Delete={"Objects": [{"Key": _stored(s3)}]}), "record.delete-intent", True),
    "CopyObject": (lambda s3: s3.copy_object(Bucket="eu-data", Key="copy.txt", CopySource={"Bucket": "eu-data", "Key": "kept.txt"}), "s3.copied", False),
    "ListObjectsV2": (lambda s3: s3.list_objects_v2(Bucket="eu-data"), "service.list", True),
    "ListObjects": (lambda s3: s3.list_objects(Bucket="eu-data"), "service.list", True),
    "CreateMultipartUpload": (_upload, "s3.upload-intent", True),
    "UploadPart": (_part, "s3.part-intent", True),
    "CompleteMultipartUpload": (_complete, "s3.upload-completed", True),
    "AbortMultipartUpload": (lambda s3: s3.abort_multipart_upload(Bucket="eu-data", Key="parts.bin", UploadId=_upload(s3)), "s3.abort-intent", True),
    "ListParts": (lambda s3: s3.list_parts(Bucket="eu-data", Key="parts.bin", UploadId=_upload(s3)), "s3.parts-listed", True),
    "ListMultipartUploads": (lambda s3: s3.list_multipart_uploads(Bucket="eu-data"), "s3.uploads-listed", True),
    "CreateBucket": (lambda s3: s3.create_bucket(Bucket="made-now", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}), "s3.bucket-created", False),
    "DeleteBucket": (lambda s3: s3.delete_bucket(Bucket="made-here"), "s3.bucket-deleted", False),
    "HeadBucket": (lambda s3: s3.head_bucket(Bucket="eu-data"), "s3.bucket-read", False),
    "GetBucketLocation": (lambda s3: s3.get_bucket_location(Bucket="eu-data"), "s3.bucket-read", False),
    "ListBuckets": (lambda s3: s3.list_buckets(), "s3.buckets-listed", False),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_each_s3_operation_is_ledgered_naming_its_caller(front: Front, operation: str) -> None:
    act, kind, _ = OPERATIONS[operation]
    before = len(front.ledger())
    act(front.client())
    assert [e["data"]["by"]["service"] for e in front.ledger()[before:] if e["kind"] == kind][-1:] == ["support"]


@pytest.mark.parametrize("operation", [name for name, (_, _, decided) in OPERATIONS.items() if decided])
def test_each_s3_operation_on_a_subjects_data_is_ledgered_with_its_residency_decision(front: Front, operation: str) -> None:
    act, kind, _ = OPERATIONS[operation]
    before = len(front.ledger())
    act(front.client())
    entry = [e["data"] for e in front.ledger()[before:] if e["kind"] == kind][-1]
    assert (entry["outcome"], entry["region"], [r["code"] for r in entry["reasons"]] != []) == ("allow", "eu-west-1", True)
