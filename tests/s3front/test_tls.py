"""boto3 over HTTPS, as services run it: there its default checksum travels in an aws-chunked trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER)."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from aiohttp import web
from boto3.s3.transfer import TransferConfig
from prometheus_client import CollectorRegistry

from gateway.config import S3Bucket
from gateway.model import Caller
from gateway.s3front.app import create_s3_app
from gateway.s3front.credentials import S3_KEY_FILE, access_key_id, load_key, make_key, secret_for
from gateway.web.app import create_app
from tests.faults.harness import free_port
from tests.s3front.support import IRISH_SUBJECT
from tests.support import make_env, self_signed_certificate

MIB = 1024 * 1024


@dataclass
class TlsFront:
    endpoint: str
    cert: Path
    access_key: str
    secret: str

    def client(self):
        return boto3.session.Session(aws_access_key_id=self.access_key, aws_secret_access_key=self.secret, region_name="eu-west-1").client(
            "s3", endpoint_url=self.endpoint, verify=str(self.cert)
        )


@pytest.fixture(scope="module")
def tls_front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsFront]:
    """The gateway's apps in this process, on a loop of their own; the S3 front over TLS."""
    folder = tmp_path_factory.mktemp("tls")
    env = make_env(folder)
    env.clock.now = datetime.now(UTC)  # boto3 signs with the real time
    cert, key = self_signed_certificate(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    make_key(env.data_dir / S3_KEY_FILE)
    api_port, s3_port = free_port(), free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runners: list[web.AppRunner] = []

    async def start() -> None:
        app = create_app(env.settings, registry=CollectorRegistry())
        front = create_s3_app(app, {"records": S3Bucket("records", default_category="content")}, env.data_dir)
        for served, port, tls in ((app, api_port, None), (front, s3_port, context)):
            runner = web.AppRunner(served)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
            runners.append(runner)

    async def stop() -> None:
        for runner in reversed(runners):
            await runner.cleanup()

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    try:
        headers = {**env.service("support", "eu-west-1"), "Content-Type": "application/json"}
        request = urllib.request.Request(f"http://127.0.0.1:{api_port}/v1/subjects/sean", json.dumps(IRISH_SUBJECT).encode(), headers, method="PUT")
        with urllib.request.urlopen(request) as answer:
            assert answer.status == 201
        caller = Caller("support", "service", service="support", region="eu-west-1", purpose="support")
        s3_key = load_key(env.data_dir / S3_KEY_FILE)
        access = access_key_id(s3_key, caller, expires=int(datetime.now(UTC).timestamp()) + 3600)
        yield TlsFront(f"https://127.0.0.1:{s3_port}", cert, access, secret_for(s3_key, access))
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def s3(tls_front: TlsFront) -> Iterator:
    client = tls_front.client()
    yield client
    client.close()


def payload_forms(s3) -> list[str]:
    """The x-amz-content-sha256 of each request the client sends from now on."""
    sent: list[str] = []
    s3.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.headers.get("X-Amz-Content-SHA256", b"").decode()))
    return sent


def test_a_default_boto3_client_over_https_sends_its_checksum_in_a_trailer_that_is_verified(s3) -> None:
    sent = payload_forms(s3)
    answer = s3.put_object(Bucket="records", Key="sean/over-tls", Body=b"hello over TLS")
    assert (sent, "ChecksumCRC32" in answer) == (["STREAMING-UNSIGNED-PAYLOAD-TRAILER"], True)


def test_an_object_put_over_https_with_a_trailer_reads_back(s3) -> None:
    s3.put_object(Bucket="records", Key="sean/over-tls-read", Body=b"hello over TLS")
    assert s3.get_object(Bucket="records", Key="sean/over-tls-read")["Body"].read() == b"hello over TLS"


def test_a_multipart_upload_over_https_sends_every_part_with_a_trailer_and_reads_back(s3, tmp_path: Path) -> None:
    data = bytes(range(256)) * (12 * MIB // 256)
    (tmp_path / "up").write_bytes(data)
    sent = payload_forms(s3)
    s3.upload_file(str(tmp_path / "up"), "records", "sean/parts-over-tls", Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
    parts = [form for form in sent if form.startswith("STREAMING-")]
    assert (len(parts), s3.get_object(Bucket="records", Key="sean/parts-over-tls")["Body"].read() == data) == (3, True)
