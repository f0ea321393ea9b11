"""A disclosure package carries a large S3 object's bytes, not its manifest: objects written through a real
`gateway serve` S3 front with unmodified boto3, a real signed legal order, the package over the REST API and
`gateway package verify`; and, in process, what no client can time (a chunk that changes while its package streams)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from gateway.config import load_config
from gateway.keys import load_private_key, resolve
from gateway.legal.verify import sign_order
from gateway.model import Caller, Subject
from gateway.packages import PackageError, record_path
from gateway.runtime import Runtime, init_keys
from gateway.services.objects import CHUNK_BYTES, Manifest, ObjectService
from gateway.services.records import record_key
from tests.faults.harness import ROOT, SHIPPED_CONFIG, GatewayProcess, Workdir, free_port
from tests.orders_support import case_named, claims_of, sign_case
from tests.s3front.support import IRISH_SUBJECT, S3_TABLE, Front
from tests.support import make_env

MIB = 1024 * 1024
DUBLIN_ORDER = "scenario 19: Irish court order for an Irish resident's content stored in Dublin"
LARGE = os.urandom(CHUNK_BYTES + 2 * MIB + 17)  # made by the test: two chunks, the last one short
PARTS = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)
MULTIPART = os.urandom(11 * MIB + 5)  # three parts of 5 MiB, 5 MiB and the rest


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    s3_port = free_port()
    workdir = Workdir.make(Path(tmp_path_factory.mktemp("s3pkg")), SHIPPED_CONFIG.read_text() + S3_TABLE.format(port=s3_port))
    init_keys(load_config(workdir.config), workdir.data_dir, demo_authorities=True)  # authorities' keys are read at start
    front = Front(workdir, GatewayProcess(workdir).wait_ready(), s3_port)
    try:
        yield front
    finally:
        front.stop()


def register(front: Front, subject: str) -> None:
    headers = {**front.workdir.service("support", "eu-west-1"), "Content-Type": "application/json"}
    status, _ = front.rest("PUT", f"/v1/subjects/{subject}", headers, json.dumps(IRISH_SUBJECT).encode())
    assert status == 201


def order_for(front: Front, subject: str) -> str:
    """Submit the Dublin court order (content) for ``subject``, signed with its authority's demo key, at the real time: its id."""
    case, now, order_id = case_named(DUBLIN_ORDER), datetime.now(UTC), f"order-{subject}"
    claims = claims_of(case) | {"jti": order_id, "subjects": [subject], "iat": int(now.timestamp()), "exp": int((now + timedelta(days=30)).timestamp())}
    public = resolve(front.workdir.data_dir, load_config(front.workdir.config).legal.authorities[case.order.served_by].public_key)
    token = sign_order(claims, key=load_private_key(public.with_suffix(".key")), kid=case.order.served_by)
    headers = {**front.workdir.person("intake", "portal"), "Content-Type": "application/jose"}
    status, body = front.rest("POST", "/v1/orders", headers, token.encode())
    assert status == 201, body
    return order_id


def package_of(front: Front, order_id: str, folder: Path) -> Path:
    request = urllib.request.Request(f"{front.process.url}/v1/orders/{order_id}/package", headers=front.workdir.person("intake", "portal"))
    with urllib.request.urlopen(request) as answer:
        path = folder / f"{order_id}.tar"
        path.write_bytes(answer.read())
    return path


def verify(front: Front, package: Path) -> dict[str, Any]:
    """`gateway package verify --json` of the package with the provider's public key, as an authority would run it."""
    command = [sys.executable, "-m", "gateway", "package", "verify", str(package), "--format", "json"]
    options = ["--config", str(front.workdir.config), "--data-dir", str(front.workdir.data_dir)]
    done = subprocess.run([*command, *options], cwd=ROOT, capture_output=True, text=True)
    return json.loads(done.stdout)


def members(package: Path) -> dict[str, bytes]:
    with tarfile.open(package) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]


def packaged_record(package: Path, path: str) -> dict[str, Any]:
    return next(r for r in json.loads(members(package)["manifest.json"])["records"] if r["path"] == path)


def chunk_files(front: Front, subject: str) -> list[Path]:
    return sorted((front.workdir.data_dir / "stores/eu-west-1/objects/subjects" / subject / "uploads").rglob("whole/*"))


def flip_last_byte(path: Path) -> None:
    """Change the stored chunk's last body byte on disk, its header (and so its residency tag) as it was."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_package_carries_a_large_put_objects_exact_bytes_at_its_member(front: Front, tmp_path: Path) -> None:
    register(front, "large-put")
    front.client().put_object(Bucket="records", Key="large-put/video", Body=LARGE)
    package = package_of(front, order_for(front, "large-put"), tmp_path)
    assert members(package)[record_path("large-put", "eu-west-1", "video")] == LARGE


def test_a_package_carries_a_multipart_uploads_exact_bytes_at_its_member(front: Front, tmp_path: Path) -> None:
    register(front, "multipart")
    (tmp_path / "up").write_bytes(MULTIPART)
    front.client().upload_file(str(tmp_path / "up"), "records", "multipart/video", Config=PARTS)
    package = package_of(front, order_for(front, "multipart"), tmp_path)
    assert members(package)[record_path("multipart", "eu-west-1", "video")] == MULTIPART


def test_the_signed_package_manifest_names_a_large_objects_sha256_and_size(front: Front, tmp_path: Path) -> None:
    register(front, "named")
    (tmp_path / "up").write_bytes(MULTIPART)
    front.client().upload_file(str(tmp_path / "up"), "records", "named/video", Config=PARTS)
    package = package_of(front, order_for(front, "named"), tmp_path)
    listed = packaged_record(package, record_path("named", "eu-west-1", "video"))
    assert (listed["sha256"], listed["size"]) == (hashlib.sha256(MULTIPART).hexdigest(), len(MULTIPART))


def test_the_order_lists_a_large_objects_record_with_the_objects_sha256_and_size(front: Front) -> None:
    register(front, "listed")
    front.client().put_object(Bucket="records", Key="listed/video", Body=LARGE)
    order_id = order_for(front, "listed")
    status, body = front.rest("GET", f"/v1/orders/{order_id}", front.workdir.person("intake", "portal"))
    records = [r for i in json.loads(body)["items"] for r in i["records"]]
    assert (status, [(r["key"], r["sha256"], r["size"]) for r in records]) == (200, [("video", hashlib.sha256(LARGE).hexdigest(), len(LARGE))])


def test_gateway_package_verify_accepts_a_package_holding_a_large_object(front: Front, tmp_path: Path) -> None:
    register(front, "verified")
    front.client().put_object(Bucket="records", Key="verified/video", Body=LARGE)
    front.client().put_object(Bucket="records", Key="verified/note", Body=b"a small record beside it")
    report = verify(front, package_of(front, order_for(front, "verified"), tmp_path))
    assert (report["ok"], report["records"], report["problems"]) == (True, 2, [])


def test_a_chunk_changed_in_the_store_withholds_the_object_and_the_package_still_verifies(front: Front, tmp_path: Path) -> None:
    register(front, "changed")
    front.client().put_object(Bucket="records", Key="changed/video", Body=LARGE)
    front.client().put_object(Bucket="records", Key="changed/note", Body=b"a small record beside it")
    order_id = order_for(front, "changed")
    flip_last_byte(chunk_files(front, "changed")[-1])
    report = verify(front, package_of(front, order_id, tmp_path))
    withheld = [(w["path"], w["detail"]) for w in report["withheld"]]
    assert (report["ok"], report["records"], withheld) == (True, 1, [(record_path("changed", "eu-west-1", "video"), "tag-content-mismatch")])


def test_a_package_never_carries_the_bytes_of_a_chunk_changed_in_the_store(front: Front, tmp_path: Path) -> None:
    register(front, "unsent")
    front.client().put_object(Bucket="records", Key="unsent/video", Body=LARGE)
    order_id = order_for(front, "unsent")
    flip_last_byte(chunk_files(front, "unsent")[0])
    sent = package_of(front, order_id, tmp_path).read_bytes()
    assert LARGE[: CHUNK_BYTES - 1] not in sent


# --- in process: what a client cannot time -----------------------------------------------------

WRITER = Caller("crm", "service", service="crm", region="eu-west-1", purpose="crm")


async def pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), MIB):
        yield data[start : start + MIB]


async def open_with_object(tmp_path: Path, subject: str) -> tuple[Runtime, Any]:
    """A runtime on file stores holding ``subject``'s large object `video`, and the env it runs in."""
    env = make_env(tmp_path)
    init_keys(load_config(env.settings.config_path), env.data_dir, demo_authorities=True)
    rt = await Runtime.open(env.settings)
    await rt.records.register_subject(WRITER, Subject(subject, "eu-west-1", residence="IE"))
    await ObjectService(rt.records).put_object(WRITER, subject, "video", "content", pieces(LARGE))
    return rt, env


async def submit_order(rt: Runtime, env: Any, subject: str) -> str:
    claims = claims_of(case_named(DUBLIN_ORDER)) | {"jti": f"order-{subject}", "subjects": [subject]}
    view, _ = await rt.orders.submit(sign_case(env, case_named(DUBLIN_ORDER), claims), submitted_by="portal")
    return view.document.id


async def test_a_chunk_changed_after_its_object_was_checked_stops_the_package_before_any_changed_byte(tmp_path: Path) -> None:
    rt, env = await open_with_object(tmp_path, "raced")
    try:
        _, _, stream = await rt.orders.package(await submit_order(rt, env, "raced"))
        header = record_path("raced", "eu-west-1", "video").encode()
        sent = bytearray()
        with pytest.raises(PackageError):
            async for chunk in stream:
                sent += chunk
                if chunk.startswith(header):  # the object was checked whole: its member begins; now a chunk changes
                    chunk_path = sorted((env.data_dir / "stores/eu-west-1/objects/subjects/raced/uploads").rglob("whole/*"))[0]
                    flip_last_byte(chunk_path)
        assert LARGE[:MIB] not in sent
    finally:
        await rt.close()


async def test_a_large_object_whose_manifest_names_no_sha256_is_withheld_from_its_package(tmp_path: Path) -> None:
    rt, env = await open_with_object(tmp_path, "unhashed")
    try:
        stored = await rt.stores["eu-west-1"].get(record_key("unhashed", "video"))
        written = Manifest.parse(stored.body)
        old = Manifest(written.size, written.etag, written.chunks)  # as manifests were written before they carried the SHA-256
        await rt.records.put_record(WRITER, "unhashed", "video", "content", old.to_bytes(), object_size=old.size)
        _, _, stream = await rt.orders.package(await submit_order(rt, env, "unhashed"))
        sent = b"".join([chunk async for chunk in stream])
        with tarfile.open(fileobj=io.BytesIO(sent)) as tar:
            withheld = json.loads(tar.extractfile("withheld.json").read())["records"]  # type: ignore[union-attr]
        assert [(w["path"], w["detail"]) for w in withheld] == [(record_path("unhashed", "eu-west-1", "video"), "object-sha256-unknown")]
    finally:
        await rt.close()
