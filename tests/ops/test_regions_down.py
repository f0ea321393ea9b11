"""A region whose S3 endpoint stops is reported down while the other regions keep serving.

Each region's store is its own `moto_server` process on loopback (threaded
servers in one process would share one store), so stopping one stops exactly
that region.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.web.app import create_app
from tests.ops.conftest import sample
from tests.orders_support import prepare_authorities
from tests.support import SHIPPED_CONFIG, Ticks, make_env

pytestmark = pytest.mark.s3

S3_REGIONS = ("us-east-1", "eu-west-1", "eu-central-1")
MOTO_SERVER = Path(sys.executable).with_name("moto_server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server for {url} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # an HTTP answer, whatever its status
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server at {url} did not answer within {timeout}s")


@pytest.fixture
def regional_endpoints() -> Iterator[dict[str, tuple[str, subprocess.Popen[bytes]]]]:
    if not MOTO_SERVER.exists():
        pytest.skip(f"no moto_server next to {sys.executable}")
    servers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    try:
        for region in S3_REGIONS:
            port = _free_port()
            process = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers[region] = (f"http://127.0.0.1:{port}", process)
        for url, process in servers.values():
            _wait_until_answering(url, process)
        yield servers
    finally:
        for _, process in servers.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _config_with_s3(endpoints: dict[str, str]) -> str:
    text = SHIPPED_CONFIG.read_text()
    for region, url in endpoints.items():
        local = f'store = {{ kind = "file", path = "stores/{region}" }}'
        assert local in text
        text = text.replace(local, f'store = {{ kind = "s3", bucket = "records-{region}", region_name = "{region}", endpoint_url = "{url}" }}')
    return text


async def test_readyz_reports_a_stopped_region_down_while_another_region_keeps_serving(
    tmp_path: Path, aws_credentials: None, regional_endpoints, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    env = make_env(tmp_path, _config_with_s3({r: url for r, (url, _) in regional_endpoints.items()}))
    ticks = Ticks()
    env = dataclasses.replace(env, settings=dataclasses.replace(env.settings, sweep_seconds=0, health_cache_seconds=5.0, monotonic=ticks))
    prepare_authorities(env)
    client = await aiohttp_client(create_app(env.settings, registry=CollectorRegistry()))
    writer = env.service("crm", "eu-west-1", "crm")
    assert (await client.put("/v1/subjects/aoife", json={"home_region": "eu-west-1", "residence": "IE"}, headers=writer)).status == 201
    response = await client.put("/v1/subjects/aoife/records/mail-1", params={"category": "content"}, data=b"hello", headers=writer)
    assert response.status == 201

    body = await (await client.get("/readyz")).json()
    assert body["status"] == "ready", body

    # (1) stop Frankfurt's endpoint
    _, frankfurt = regional_endpoints["eu-central-1"]
    frankfurt.terminate()
    frankfurt.wait(timeout=10)

    # (2) within the cache time, probes are answered from the last check
    assert (await (await client.get("/readyz")).json())["status"] == "ready"

    # (3) after it, the region is down and the gateway degraded, not failed
    ticks.advance(5.1)
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 200 and body["status"] == "degraded", body
    assert body["down"] == ["eu-central-1"]
    assert body["regions"]["eu-central-1"]["status"] == "down"
    assert {r: v["status"] for r, v in body["regions"].items() if r != "eu-central-1"} == {r: "up" for r in body["regions"] if r != "eu-central-1"}
    assert sample(client, "gateway_store_up", {"region": "eu-central-1"}) == 0
    assert sample(client, "gateway_store_up", {"region": "eu-west-1"}) == 1

    # (4) Dublin still serves
    response = await client.get("/v1/subjects/aoife/records/mail-1", headers=env.service("support", "eu-west-1"))
    assert response.status == 200 and await response.read() == b"hello"
