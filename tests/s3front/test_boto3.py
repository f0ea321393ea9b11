"""An unmodified boto3 client against a real `gateway serve --s3-port` process, with credentials from `gateway s3 credentials`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import signal
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from gateway.model import Caller
from gateway.s3front.credentials import S3_KEY_FILE, access_key_id, load_key, secret_for
from gateway.s3front.sigv4 import signing_key
from gateway.services.objects import CHUNK_BYTES
from gateway.services.records import record_key
from gateway.stores.files import FileStore
from tests.faults.harness import GatewayProcess, Workdir, free_port
from tests.s3front.support import IRISH_SUBJECT, Front


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    workdir = Workdir.make(Path(tmp_path_factory.mktemp("s3front")))
    s3_port = free_port()
    process = GatewayProcess(workdir, args=("--s3-port", str(s3_port), "--s3-bucket", "records=content")).wait_ready()
    front = Front(workdir, process, s3_port)
    status, _ = front.rest(
        "PUT", "/v1/subjects/sean", {**workdir.service("support", "eu-west-1"), "Content-Type": "application/json"}, json.dumps(IRISH_SUBJECT).encode()
    )
    assert status == 201
    try:
        yield front
    finally:
        process.stop()


def test_an_object_put_through_the_front_reads_back_with_its_md5_etag(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    put = s3.put_object(Bucket="records", Key="sean/note-1", Body=b"hello from Dublin")
    got = s3.get_object(Bucket="records", Key="sean/note-1")
    assert (got["Body"].read(), got["ETag"], put["ETag"]) == (b"hello from Dublin", f'"{hashlib.md5(b"hello from Dublin").hexdigest()}"', got["ETag"])


def test_an_object_put_through_the_front_is_a_record_of_the_rest_api(front: Front) -> None:
    front.client("support", "eu-west-1", "support").put_object(Bucket="records", Key="sean/note-2", Body=b"both ways")
    status, body = front.rest("GET", "/v1/subjects/sean/records/note-2", front.workdir.service("support", "eu-west-1"))
    assert (status, body) == (200, b"both ways")


def test_the_category_of_an_object_is_its_x_amz_meta_category_and_round_trips(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/account", Body=b"{}", Metadata={"category": "subscriber"})
    assert s3.head_object(Bucket="records", Key="sean/account")["Metadata"] == {"category": "subscriber"}


def test_head_object_gives_the_size_and_etag_without_the_body(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/note-3", Body=b"12345")
    head = s3.head_object(Bucket="records", Key="sean/note-3")
    assert (head["ContentLength"], head["ETag"]) == (5, f'"{hashlib.md5(b"12345").hexdigest()}"')


def test_list_objects_v2_lists_a_subjects_objects_a_page_at_a_time(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    for name in ("list-a", "list-b", "list-c"):
        s3.put_object(Bucket="records", Key=f"sean/{name}", Body=name.encode())
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="records", Prefix="sean/list-", PaginationConfig={"PageSize": 2})
    assert [o["Key"] for page in pages for o in page.get("Contents", [])] == ["sean/list-a", "sean/list-b", "sean/list-c"]


def test_a_deleted_object_is_gone(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/gone", Body=b"x")
    s3.delete_object(Bucket="records", Key="sean/gone")
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="records", Key="sean/gone")
    assert refused.value.response["Error"]["Code"] == "NoSuchKey"


def test_a_bucket_that_is_not_configured_is_no_such_bucket(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        front.client("support", "eu-west-1", "support").get_object(Bucket="other", Key="sean/note-1")
    assert refused.value.response["Error"]["Code"] == "NoSuchBucket"


def test_a_key_that_cannot_be_a_record_key_is_invalid_argument(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        front.client("support", "eu-west-1", "support").put_object(Bucket="records", Key="sean/a/b", Body=b"x")
    assert refused.value.response["Error"]["Code"] == "InvalidArgument"


def test_a_cross_border_read_is_access_denied_with_the_rest_apis_reason(front: Front) -> None:
    front.client("support", "eu-west-1", "support").put_object(Bucket="records", Key="sean/profile", Body=b"p")
    status, problem = front.rest("GET", "/v1/subjects/sean/records/profile", front.workdir.service("analytics", "us-east-1"))
    with pytest.raises(ClientError) as refused:
        front.client("analytics", "us-east-1", "analytics").get_object(Bucket="records", Key="sean/profile")
    error = refused.value.response
    assert (status, error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"], error["Error"]["Message"]) == (
        451,
        403,
        "AccessDenied",
        json.loads(problem)["detail"],
    )


def test_a_cross_border_refusal_names_the_rule_in_the_residency_decision_header(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        front.client("analytics", "us-east-1", "analytics").get_object(Bucket="records", Key="sean/note-1")
    assert refused.value.response["ResponseMetadata"]["HTTPHeaders"]["x-residency-decision"] == "service-not-covered"


def test_a_wrong_secret_is_signature_does_not_match(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        front.client("support", "eu-west-1", "support", secret="not-the-secret").get_object(Bucket="records", Key="sean/note-1")
    assert (refused.value.response["ResponseMetadata"]["HTTPStatusCode"], refused.value.response["Error"]["Code"]) == (403, "SignatureDoesNotMatch")


def test_a_wrong_secret_is_ledgered(front: Front) -> None:
    before = front.ledger_kinds().count("s3.signature-refused")
    with pytest.raises(ClientError):
        front.client("support", "eu-west-1", "support", secret="not-the-secret").head_bucket(Bucket="records")
    assert front.ledger_kinds().count("s3.signature-refused") > before


def test_a_presigned_get_url_reads_the_object_without_credentials(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/shared", Body=b"shared")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "records", "Key": "sean/shared"}, ExpiresIn=300)
    with urllib.request.urlopen(url) as answer:
        assert answer.read() == b"shared"


def test_list_buckets_lists_the_configured_buckets(front: Front) -> None:
    assert [b["Name"] for b in front.client("support", "eu-west-1", "support").list_buckets()["Buckets"]] == ["records"]


def raw_signed(front: Front, method: str, key: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """A request signed by botocore's own signer, sent as it is: for the forms boto3 does not send on its own.

    botocore's base SigV4 signer signs the ``X-Amz-Content-SHA256`` it is given (its S3 one replaces it with the body's)."""
    found = front.credentials("support", "eu-west-1", "support")
    request = AWSRequest(method=method, url=f"{front.endpoint}/records/{key}", data=body, headers=headers)
    SigV4Auth(Credentials(found["AWS_ACCESS_KEY_ID"], found["AWS_SECRET_ACCESS_KEY"]), "s3", "eu-west-1").add_auth(request)
    sent = urllib.request.Request(request.url, data=body, method=method, headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(sent) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_body_other_than_the_one_signed_is_x_amz_content_sha256_mismatch(front: Front) -> None:
    status, body = raw_signed(front, "PUT", "sean/mismatch", b"sent", {"X-Amz-Content-SHA256": hashlib.sha256(b"signed").hexdigest()})
    assert (status, b"<Code>XAmzContentSHA256Mismatch</Code>" in body) == (400, True)


def send_chunked(front: Front, key: str, data: bytes, *, chunk: int = 8192, forge: int | None = None) -> tuple[int, bytes]:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload, each chunk signed as AWS specifies; ``forge``: the chunk whose signature is wrong."""
    found = front.credentials("support", "eu-west-1", "support")
    headers = {"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": str(len(data))}
    request = AWSRequest(method="PUT", url=f"{front.endpoint}/records/{key}", headers=headers)
    SigV4Auth(Credentials(found["AWS_ACCESS_KEY_ID"], found["AWS_SECRET_ACCESS_KEY"]), "s3", "eu-west-1").add_auth(request)
    amz_date = request.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/eu-west-1/s3/aws4_request"
    key_bytes = signing_key(found["AWS_SECRET_ACCESS_KEY"], amz_date[:8], "eu-west-1", "s3")
    previous = request.headers["Authorization"].rpartition("Signature=")[2]
    body = b""
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for n, piece in enumerate(pieces):
        text = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, hashlib.sha256(b"").hexdigest(), hashlib.sha256(piece).hexdigest()])
        previous = hmac.new(key_bytes, text.encode(), hashlib.sha256).hexdigest()
        signature = "0" * 64 if n == forge else previous
        body += b"%x;chunk-signature=%s\r\n%s\r\n" % (len(piece), signature.encode(), piece)
    sent = urllib.request.Request(request.url, data=body, method="PUT", headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(sent) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_signed_chunked_upload_reads_back_whole(front: Front) -> None:
    data = bytes(range(256)) * 100
    assert send_chunked(front, "sean/chunked", data)[0] == 200
    assert front.client("support", "eu-west-1", "support").get_object(Bucket="records", Key="sean/chunked")["Body"].read() == data


def test_a_chunked_upload_with_a_forged_chunk_signature_is_signature_does_not_match(front: Front) -> None:
    status, body = send_chunked(front, "sean/forged", b"z" * 20000, forge=1)
    assert (status, b"<Code>SignatureDoesNotMatch</Code>" in body) == (403, True)


def test_a_chunked_upload_with_a_forged_chunk_signature_stores_nothing(front: Front) -> None:
    send_chunked(front, "sean/forged-nothing", b"z" * 20000, forge=2)
    with pytest.raises(ClientError) as missing:
        front.client("support", "eu-west-1", "support").head_object(Bucket="records", Key="sean/forged-nothing")
    assert missing.value.response["Error"]["Code"] == "404"


def test_a_large_chunked_upload_cut_short_by_a_forged_chunk_leaves_no_chunk_in_the_store(front: Front) -> None:
    data = b"c" * (CHUNK_BYTES + 3 * 1024 * 1024)  # more than one stored chunk before the forged one
    status, _ = send_chunked(front, "sean/forged-large", data, chunk=1024 * 1024, forge=10)
    files = FileStore("eu-west-1", front.workdir.data_dir / "stores/eu-west-1")
    assert (status, asyncio.run(files.list("subjects/sean/uploads/"))) == (403, [])


def test_a_forged_chunk_signature_is_ledgered(front: Front) -> None:
    send_chunked(front, "sean/forged-ledgered", b"z" * 20000, forge=0)
    assert front.ledger_kinds()[-1] == "s3.signature-refused"


def test_an_upload_with_a_trailing_crc32_as_botocore_encodes_it_over_https_reads_back(front: Front) -> None:
    data = b"trailing checksum " * 1000
    chunked = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32").read()
    headers = {
        "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Encoding": "aws-chunked",
        "X-Amz-Trailer": "x-amz-checksum-crc32",
        "X-Amz-Decoded-Content-Length": str(len(data)),
    }
    assert raw_signed(front, "PUT", "sean/trailer", chunked, headers)[0] == 200
    assert front.client("support", "eu-west-1", "support").get_object(Bucket="records", Key="sean/trailer")["Body"].read() == data


def test_an_upload_whose_trailing_crc32_is_not_the_bodys_is_bad_digest(front: Front) -> None:
    chunked = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    headers = {"X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "Content-Encoding": "aws-chunked", "X-Amz-Trailer": "x-amz-checksum-crc32"}
    status, body = raw_signed(front, "PUT", "sean/bad-trailer", chunked, headers)
    assert (status, b"<Code>BadDigest</Code>" in body) == (400, True)


def test_a_default_boto3_client_sends_a_crc32_that_is_verified_and_echoed(front: Front) -> None:
    answer = front.client("support", "eu-west-1", "support").put_object(Bucket="records", Key="sean/checksummed", Body=b"hello")
    assert answer["ChecksumCRC32"] == base64.b64encode(zlib.crc32(b"hello").to_bytes(4, "big")).decode()


def test_a_client_that_sends_checksums_only_when_required_puts_without_one(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support", config=BotoConfig(request_checksum_calculation="when_required"))
    s3.put_object(Bucket="records", Key="sean/unchecksummed", Body=b"no checksum")
    assert s3.get_object(Bucket="records", Key="sean/unchecksummed")["Body"].read() == b"no checksum"


def test_a_put_whose_crc32_header_is_not_the_bodys_is_bad_digest(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        front.client("support", "eu-west-1", "support").put_object(Bucket="records", Key="sean/bad-crc", Body=b"hello", ChecksumCRC32="AAAAAA==")
    assert refused.value.response["Error"]["Code"] == "BadDigest"


def test_an_unsigned_request_is_access_denied(front: Front) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{front.endpoint}/records/sean/note-1")
    assert (refused.value.code, b"<Code>AccessDenied</Code>" in refused.value.read()) == (403, True)


def test_expired_credentials_are_refused(front: Front) -> None:
    key = load_key(front.workdir.data_dir / S3_KEY_FILE)
    caller = Caller("support", "service", service="support", region="eu-west-1", purpose="support")
    access = access_key_id(key, caller, expires=int(datetime.now(UTC).timestamp()) - 1)
    session = boto3.session.Session(aws_access_key_id=access, aws_secret_access_key=secret_for(key, access), region_name="eu-west-1")
    with pytest.raises(ClientError) as refused:
        session.client("s3", endpoint_url=front.endpoint).list_buckets()
    assert refused.value.response["Error"]["Code"] == "ExpiredToken"


def test_deleting_an_object_under_legal_hold_is_access_denied_naming_the_hold(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/held", Body=b"evidence")
    # a hold as a preservation order places it: on the region's store, which the serving process shares (file locks)
    asyncio.run(FileStore("eu-west-1", front.workdir.data_dir / "stores/eu-west-1").set_legal_hold(record_key("sean", "held"), True))
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket="records", Key="sean/held")
    error = refused.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPHeaders"]["x-residency-refusal"]) == ("AccessDenied", "legal-hold")


def test_sigterm_stops_a_gateway_serving_the_front_with_exit_status_0(tmp_path: Path) -> None:
    workdir = Workdir.make(tmp_path)
    s3_port = free_port()
    process = GatewayProcess(workdir, args=("--s3-port", str(s3_port))).wait_ready()
    Front(workdir, process, s3_port).client("support", "eu-west-1", "support").head_bucket(Bucket="records")
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
