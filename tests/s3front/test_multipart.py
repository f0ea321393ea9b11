"""Multipart uploads and objects larger than one chunk, through unmodified boto3 against a real `gateway serve --s3-port` process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError, IncompleteReadError, ResponseStreamingError

from gateway.services.objects import CHUNK_BYTES
from gateway.services.records import record_key
from gateway.stores.files import FileStore
from tests.faults.harness import ROOT, GatewayProcess, Workdir, free_port
from tests.s3front import test_boto3
from tests.s3front.support import IRISH_SUBJECT, Front

front = test_boto3.front  # a gateway process of this module's own, serving the front

MIB = 1024 * 1024
PARTS = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)
OBJECT = os.urandom(20 * MIB + 12345)  # made by the test: 5 parts, the last one short


def store(front: Front) -> FileStore:
    return FileStore("eu-west-1", front.workdir.data_dir / "stores/eu-west-1")


def stored_keys(front: Front, prefix: str) -> list[str]:
    return asyncio.run(store(front).list(prefix))


def begin(s3, key: str) -> str:
    return s3.create_multipart_upload(Bucket="records", Key=key)["UploadId"]


def put_parts(s3, key: str, upload: str, parts: list[bytes]) -> list[dict]:
    done = []
    for number, data in enumerate(parts, 1):
        etag = s3.upload_part(Bucket="records", Key=key, UploadId=upload, PartNumber=number, Body=data)["ETag"]
        done.append({"PartNumber": number, "ETag": etag})
    return done


def complete(s3, key: str, upload: str, parts: list[dict]) -> dict:
    return s3.complete_multipart_upload(Bucket="records", Key=key, UploadId=upload, MultipartUpload={"Parts": parts})


def test_upload_file_in_5_mib_parts_downloads_as_the_same_bytes(front: Front, tmp_path: Path) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    (tmp_path / "up").write_bytes(OBJECT)
    s3.upload_file(str(tmp_path / "up"), "records", "sean/video", Config=PARTS)
    s3.download_file("records", "sean/video", str(tmp_path / "down"), Config=PARTS)
    assert hashlib.sha256((tmp_path / "down").read_bytes()).digest() == hashlib.sha256(OBJECT).digest()


def test_a_completed_uploads_etag_is_the_md5_of_its_parts_md5s_and_the_part_count(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    parts = [OBJECT[: 5 * MIB], OBJECT[5 * MIB : 6 * MIB]]
    upload = begin(s3, "sean/etag")
    answer = complete(s3, "sean/etag", upload, put_parts(s3, "sean/etag", upload, parts))
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-2"
    assert (answer["ETag"], s3.head_object(Bucket="records", Key="sean/etag")["ETag"]) == (f'"{expected}"', f'"{expected}"')


def test_upload_part_answers_the_md5_of_the_part_as_its_etag(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/part-etag")
    answer = s3.upload_part(Bucket="records", Key="sean/part-etag", UploadId=upload, PartNumber=1, Body=b"part one")
    assert answer["ETag"] == f'"{hashlib.md5(b"part one").hexdigest()}"'


def test_a_part_smaller_than_5_mib_that_is_not_the_last_is_entity_too_small(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/small-parts")
    with pytest.raises(ClientError) as refused:
        complete(s3, "sean/small-parts", upload, put_parts(s3, "sean/small-parts", upload, [b"a" * 1000, b"b" * 1000]))
    assert refused.value.response["Error"]["Code"] == "EntityTooSmall"


def test_a_part_list_out_of_order_is_invalid_part_order(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/order")
    parts = put_parts(s3, "sean/order", upload, [OBJECT[: 5 * MIB], b"tail"])
    with pytest.raises(ClientError) as refused:
        complete(s3, "sean/order", upload, list(reversed(parts)))
    assert refused.value.response["Error"]["Code"] == "InvalidPartOrder"


def test_a_part_listed_with_another_etag_is_invalid_part(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/wrong-etag")
    parts = put_parts(s3, "sean/wrong-etag", upload, [b"only part"])
    with pytest.raises(ClientError) as refused:
        complete(s3, "sean/wrong-etag", upload, [{**parts[0], "ETag": '"' + "0" * 32 + '"'}])
    assert refused.value.response["Error"]["Code"] == "InvalidPart"


def test_a_part_uploaded_again_replaces_the_earlier_one(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/again")
    put_parts(s3, "sean/again", upload, [b"first try"])
    complete(s3, "sean/again", upload, put_parts(s3, "sean/again", upload, [b"second try"]))
    assert s3.get_object(Bucket="records", Key="sean/again")["Body"].read() == b"second try"


def test_a_completion_that_sends_the_whole_objects_crc32_completes(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/full-crc")
    parts = put_parts(s3, "sean/full-crc", upload, [b"whole object"])
    crc = base64.b64encode(zlib.crc32(b"whole object").to_bytes(4, "big")).decode()
    s3.complete_multipart_upload(Bucket="records", Key="sean/full-crc", UploadId=upload, MultipartUpload={"Parts": parts}, ChecksumCRC32=crc)
    assert s3.get_object(Bucket="records", Key="sean/full-crc")["Body"].read() == b"whole object"


def test_list_parts_names_each_part_with_its_size_and_etag(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/listed")
    put_parts(s3, "sean/listed", upload, [b"one", b"three"])
    parts = s3.list_parts(Bucket="records", Key="sean/listed", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts] == [
        (1, 3, f'"{hashlib.md5(b"one").hexdigest()}"'),
        (2, 5, f'"{hashlib.md5(b"three").hexdigest()}"'),
    ]


def test_list_multipart_uploads_lists_an_upload_in_progress(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/in-progress")
    listed = s3.list_multipart_uploads(Bucket="records", Prefix="sean/in-progress")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("sean/in-progress", upload)]


def test_an_aborted_upload_is_no_such_upload_afterwards(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/aborted")
    put_parts(s3, "sean/aborted", upload, [b"abandoned"])
    s3.abort_multipart_upload(Bucket="records", Key="sean/aborted", UploadId=upload)
    with pytest.raises(ClientError) as gone:
        s3.list_parts(Bucket="records", Key="sean/aborted", UploadId=upload)
    assert gone.value.response["Error"]["Code"] == "NoSuchUpload"


def test_an_aborted_upload_leaves_none_of_its_chunks_in_the_store(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/aborted-chunks")
    put_parts(s3, "sean/aborted-chunks", upload, [b"abandoned"])
    s3.abort_multipart_upload(Bucket="records", Key="sean/aborted-chunks", UploadId=upload)
    assert stored_keys(front, f"subjects/sean/uploads/{upload}/") == []


def test_a_completed_upload_leaves_only_the_objects_chunks_under_its_prefix(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/tidy")
    put_parts(s3, "sean/tidy", upload, [b"replaced"])
    complete(s3, "sean/tidy", upload, put_parts(s3, "sean/tidy", upload, [b"kept"]))
    assert len(stored_keys(front, f"subjects/sean/uploads/{upload}/")) == 1


def test_every_multipart_step_is_ledgered_with_its_intent_before_its_outcome(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/ledgered")
    complete(s3, "sean/ledgered", upload, put_parts(s3, "sean/ledgered", upload, [b"ledgered"]))
    kinds = [k for k in front.ledger_kinds() if k.startswith(("s3.", "record.writ"))][-7:]
    assert kinds == [
        "s3.upload-intent",
        "s3.upload-created",
        "s3.part-intent",
        "s3.part-written",
        "record.write-intent",
        "record.written",
        "s3.upload-completed",
    ]


def test_a_cross_border_caller_may_not_begin_an_upload_for_the_subject(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        begin(front.client("analytics", "us-east-1", "analytics"), "sean/from-abroad")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_a_cross_border_caller_may_not_list_the_subjects_uploads(front: Front) -> None:
    with pytest.raises(ClientError) as refused:
        front.client("analytics", "us-east-1", "analytics").list_multipart_uploads(Bucket="records", Prefix="sean/")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_a_put_object_larger_than_the_record_limit_is_stored_in_chunks_and_reads_back(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/large-put", Body=OBJECT)
    assert hashlib.sha256(s3.get_object(Bucket="records", Key="sean/large-put")["Body"].read()).digest() == hashlib.sha256(OBJECT).digest()


def test_a_large_put_objects_etag_is_the_md5_of_its_body(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    assert s3.put_object(Bucket="records", Key="sean/large-etag", Body=OBJECT)["ETag"] == f'"{hashlib.md5(OBJECT).hexdigest()}"'


def test_head_of_a_chunked_object_gives_its_whole_size(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/large-head", Body=OBJECT)
    assert s3.head_object(Bucket="records", Key="sean/large-head")["ContentLength"] == len(OBJECT)


def test_a_range_read_of_a_chunked_object_across_two_chunks_returns_exactly_those_bytes(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/ranged", Body=OBJECT)
    start, end = CHUNK_BYTES - 10, CHUNK_BYTES + 9
    answer = s3.get_object(Bucket="records", Key="sean/ranged", Range=f"bytes={start}-{end}")
    assert (answer["ContentRange"], answer["Body"].read()) == (f"bytes {start}-{end}/{len(OBJECT)}", OBJECT[start : end + 1])


def test_the_rest_api_shows_a_chunked_object_as_its_manifest(front: Front) -> None:
    front.client("support", "eu-west-1", "support").put_object(Bucket="records", Key="sean/manifest", Body=OBJECT)
    status, body = front.rest("GET", "/v1/subjects/sean/records/manifest", front.workdir.service("support", "eu-west-1"))
    manifest = json.loads(body)
    assert (status, manifest["object"], manifest["size"], sum(c["size"] for c in manifest["chunks"])) == (200, "chunked", len(OBJECT), len(OBJECT))


def test_list_objects_v2_gives_a_chunked_objects_whole_size(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/listed-large", Body=OBJECT)
    listed = s3.list_objects_v2(Bucket="records", Prefix="sean/listed-large")["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("sean/listed-large", len(OBJECT))]


def test_the_rest_listing_names_a_chunked_objects_size_beside_its_manifests(front: Front) -> None:
    front.client("support", "eu-west-1", "support").put_object(Bucket="records", Key="sean/rest-listed", Body=OBJECT)
    _, body = front.rest("GET", "/v1/subjects/sean/records", front.workdir.service("support", "eu-west-1"))
    found = next(r for r in json.loads(body)["records"] if r["key"] == "rest-listed")
    assert (found["object_size"], found["size"] < 10_000) == (len(OBJECT), True)


def test_a_chunk_changed_in_the_store_stops_the_read_before_any_of_its_bytes(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/tampered", Body=OBJECT)
    _, body = front.rest("GET", "/v1/subjects/sean/records/tampered", front.workdir.service("support", "eu-west-1"))
    second = json.loads(body)["chunks"][1]["key"]
    files = store(front)
    stored = asyncio.run(files.get(second))
    asyncio.run(files.put(second, b"X" * len(stored.body), stored.metadata))  # same size and tag, other bytes
    received = bytearray()
    with pytest.raises((IncompleteReadError, ResponseStreamingError)):  # the body ends before its Content-Length
        for piece in s3.get_object(Bucket="records", Key="sean/tampered")["Body"].iter_chunks(64 * 1024):
            received += piece
    assert bytes(received) == OBJECT[: len(received)] and len(received) <= CHUNK_BYTES


def test_a_chunk_changed_in_the_store_is_ledgered_as_a_residency_violation(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/tampered-first", Body=OBJECT)
    _, body = front.rest("GET", "/v1/subjects/sean/records/tampered-first", front.workdir.service("support", "eu-west-1"))
    first = json.loads(body)["chunks"][0]["key"]
    files = store(front)
    stored = asyncio.run(files.get(first))
    asyncio.run(files.put(first, b"X" * len(stored.body), stored.metadata))
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="records", Key="sean/tampered-first")
    assert (refused.value.response["Error"]["Code"], front.ledger_kinds()[-1]) == ("AccessDenied", "residency.violation")


def test_deleting_a_chunked_object_removes_its_chunks(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/deleted-large", Body=OBJECT)
    _, body = front.rest("GET", "/v1/subjects/sean/records/deleted-large", front.workdir.service("support", "eu-west-1"))
    prefix = json.loads(body)["chunks"][0]["key"].rsplit("/", 2)[0] + "/"
    s3.delete_object(Bucket="records", Key="sean/deleted-large")
    assert stored_keys(front, prefix) == []


def test_a_small_object_put_over_a_chunked_one_removes_its_chunks(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/shrunk", Body=OBJECT)
    _, body = front.rest("GET", "/v1/subjects/sean/records/shrunk", front.workdir.service("support", "eu-west-1"))
    prefix = json.loads(body)["chunks"][0]["key"].rsplit("/", 2)[0] + "/"
    s3.put_object(Bucket="records", Key="sean/shrunk", Body=b"small now")
    assert stored_keys(front, prefix) == []


def test_completing_an_upload_over_an_object_under_legal_hold_is_access_denied(front: Front) -> None:
    s3 = front.client("support", "eu-west-1", "support")
    s3.put_object(Bucket="records", Key="sean/held-large", Body=b"evidence")
    asyncio.run(store(front).set_legal_hold(record_key("sean", "held-large"), True))
    upload = begin(s3, "sean/held-large")
    with pytest.raises(ClientError) as refused:
        complete(s3, "sean/held-large", upload, put_parts(s3, "sean/held-large", upload, [b"overwrite"]))
    error = refused.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPHeaders"]["x-residency-refusal"]) == ("AccessDenied", "legal-hold")


def test_an_upload_begun_before_a_restart_completes_after_it(tmp_path: Path) -> None:
    workdir = Workdir.make(tmp_path)
    port = free_port()
    process = GatewayProcess(workdir, args=("--s3-port", str(port), "--s3-bucket", "records=content")).wait_ready()
    first = Front(workdir, process, port)
    headers = {**workdir.service("support", "eu-west-1"), "Content-Type": "application/json"}
    status, _ = first.rest("PUT", "/v1/subjects/sean", headers, json.dumps(IRISH_SUBJECT).encode())
    assert status == 201
    s3 = first.client("support", "eu-west-1", "support")
    upload = begin(s3, "sean/restarted")
    parts = put_parts(s3, "sean/restarted", upload, [b"before"])
    process.stop()
    port = free_port()
    process = GatewayProcess(workdir, args=("--s3-port", str(port), "--s3-bucket", "records=content")).wait_ready()
    try:
        s3 = Front(workdir, process, port).client("support", "eu-west-1", "support")
        complete(s3, "sean/restarted", upload, parts)
        assert s3.get_object(Bucket="records", Key="sean/restarted")["Body"].read() == b"before"
    finally:
        process.stop()


def test_an_upload_begun_through_one_replica_is_continued_and_completed_through_another(tmp_path: Path) -> None:
    workdir = Workdir.make(tmp_path)
    fronts = []
    for name in ("left", "right"):
        port = free_port()
        args = ("--s3-port", str(port), "--s3-bucket", "records=content", "--chain-id", name)
        fronts.append(Front(workdir, GatewayProcess(workdir, name=name, args=args).wait_ready(), port))
    left, right = fronts
    try:
        headers = {**workdir.service("support", "eu-west-1"), "Content-Type": "application/json"}
        assert left.rest("PUT", "/v1/subjects/sean", headers, json.dumps(IRISH_SUBJECT).encode())[0] == 201
        on_left, on_right = left.client("support", "eu-west-1", "support"), right.client("support", "eu-west-1", "support")
        upload = begin(on_left, "sean/replicated")
        parts = put_parts(on_right, "sean/replicated", upload, [b"written through the other replica"])
        complete(on_left, "sean/replicated", upload, parts)
        assert on_right.get_object(Bucket="records", Key="sean/replicated")["Body"].read() == b"written through the other replica"
    finally:
        for front_ in fronts:
            front_.process.stop()


def test_gateway_s3_abort_uploads_removes_abandoned_uploads_and_ledgers_each_abort(tmp_path: Path) -> None:
    workdir = Workdir.make(tmp_path)
    port = free_port()
    process = GatewayProcess(workdir, args=("--s3-port", str(port), "--s3-bucket", "records=content")).wait_ready()
    front_ = Front(workdir, process, port)
    try:
        headers = {**workdir.service("support", "eu-west-1"), "Content-Type": "application/json"}
        assert front_.rest("PUT", "/v1/subjects/sean", headers, json.dumps(IRISH_SUBJECT).encode())[0] == 201
        s3 = front_.client("support", "eu-west-1", "support")
        upload = begin(s3, "sean/abandoned")
        put_parts(s3, "sean/abandoned", upload, [b"never completed"])
        command = [sys.executable, "-m", "gateway", "s3", "abort-uploads", "--config", str(workdir.config), "--data-dir", str(workdir.data_dir)]
        subprocess.run([*command, "--older-than", "0", "--by", "ops", "--format", "json"], cwd=ROOT, check=True, capture_output=True)
        aborted = [e for e in workdir.entries() if e["kind"] == "s3.abort-intent"]
        assert (stored_keys(front_, "subjects/sean/uploads/"), [(e["data"]["upload"], e["data"]["by"]["principal"]) for e in aborted]) == (
            [],
            [(upload, "ops")],
        )
    finally:
        process.stop()
