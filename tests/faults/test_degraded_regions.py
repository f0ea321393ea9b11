"""A region that is down at start or loses its bucket does not take the gateway down, and heals by itself.

Real processes: `gateway serve` and one `moto_server` per S3 region (see
``harness``). Frankfurt (`eu-central-1`) is the region that fails; Dublin
(`eu-west-1`) is another S3 region that keeps serving.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.faults.harness import GatewayProcess, MotoProcess, Workdir, config_text, free_port, running, s3_store

pytestmark = [pytest.mark.s3, pytest.mark.usefixtures("needs_moto_server")]

HEAL_WITHIN = 30.0  # seconds: the health cache time (5 s) between preparations, with room for a slow machine
DOWN = "eu-central-1"
UP = "eu-west-1"


def call(method: str, url: str, headers: dict[str, str], body: bytes | None = None, *, as_json: bool = False) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    if as_json:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, _body(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _body(error.read())


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def register(gw: GatewayProcess, headers: dict[str, str], subject: str, region: str, residence: str) -> tuple[int, Any]:
    body = json.dumps({"home_region": region, "residence": residence}).encode()
    return call("PUT", f"{gw.url}/v1/subjects/{subject}", headers, body, as_json=True)


def write(gw: GatewayProcess, headers: dict[str, str], subject: str, key: str, body: bytes) -> tuple[int, Any]:
    return call("PUT", f"{gw.url}/v1/subjects/{subject}/records/{key}?category=content", headers, body)


def read(gw: GatewayProcess, headers: dict[str, str], subject: str, key: str) -> tuple[int, Any]:
    return call("GET", f"{gw.url}/v1/subjects/{subject}/records/{key}", headers)


def eventually(attempt: Callable[[], bool], *, within: float = HEAL_WITHIN) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if attempt():
            return True
        time.sleep(0.25)
    return False


def two_s3_regions(root: Path, dublin: str, frankfurt: str, *, require_all: bool = False) -> Workdir:
    text = config_text({UP: s3_store(UP, dublin), DOWN: s3_store(DOWN, frankfurt)})
    if require_all:
        assert "require_all_regions = false" in text
        text = text.replace("require_all_regions = false", "require_all_regions = true")
    return Workdir.make(root, text)


def test_the_gateway_starts_with_a_region_down_and_that_region_serves_once_its_endpoint_answers(tmp_path: Path) -> None:
    dublin = MotoProcess()
    frankfurt_port = free_port()  # nothing listens here yet
    frankfurt: MotoProcess | None = None
    try:
        work = two_s3_regions(tmp_path / "w", dublin.url, f"http://127.0.0.1:{frankfurt_port}")
        with running(GatewayProcess(work).wait_ready()) as gw:
            irish = work.service("crm", UP, "crm")
            german = work.service("crm", DOWN, "crm")
            # (1) degraded, not down: the other regions register, write and read
            status, ready = call("GET", f"{gw.url}/readyz", {})
            assert (status, ready["status"], ready["down"]) == (200, "degraded", [DOWN]), ready
            assert register(gw, irish, "aoife", UP, "IE")[0] == 201
            assert write(gw, irish, "aoife", "mail-1", b"hello")[0] == 201
            assert read(gw, irish, "aoife", "mail-1") == (200, b"hello")
            # (2) the region that is down answers 503 naming itself
            status, problem = register(gw, german, "hanna", DOWN, "DE")
            assert (status, problem["code"], problem["region"]) == (503, "store-unavailable", DOWN), problem
            # (3) its endpoint comes up: the region serves without a restart
            frankfurt = MotoProcess(frankfurt_port)
            assert eventually(lambda: register(gw, german, "hanna", DOWN, "DE")[0] == 201)
            assert write(gw, german, "hanna", "mail-1", b"hallo")[0] == 201
            assert read(gw, german, "hanna", "mail-1") == (200, b"hallo")
            assert eventually(lambda: call("GET", f"{gw.url}/readyz", {})[1]["status"] == "ready")
    finally:
        dublin.kill()
        if frankfurt is not None:
            frankfurt.kill()


def test_a_bucket_lost_while_running_is_created_again_and_writes_work_again(tmp_path: Path) -> None:
    dublin, frankfurt = MotoProcess(), MotoProcess()
    try:
        work = two_s3_regions(tmp_path / "w", dublin.url, frankfurt.url)
        with running(GatewayProcess(work).wait_ready()) as gw:
            german = work.service("crm", DOWN, "crm")
            assert register(gw, german, "hanna", DOWN, "DE")[0] == 201
            assert write(gw, german, "hanna", "mail-1", b"hallo")[0] == 201
            frankfurt.kill()
            frankfurt.start()  # empty: the bucket is gone

            def writes_again() -> bool:
                register(gw, german, "hanna", DOWN, "DE")
                return write(gw, german, "hanna", "mail-2", b"wieder")[0] == 201

            assert eventually(writes_again)
            assert read(gw, german, "hanna", "mail-2") == (200, b"wieder")
            bucket = boto3.client("s3", region_name=DOWN, endpoint_url=frankfurt.url, aws_access_key_id="testing", aws_secret_access_key="testing")
            assert "records-eu-central-1" in [b["Name"] for b in bucket.list_buckets()["Buckets"]]
    finally:
        dublin.kill()
        frankfurt.kill()


def test_a_write_for_a_subject_whose_store_came_back_empty_is_refused_as_unknown_not_acknowledged(tmp_path: Path) -> None:
    dublin, frankfurt = MotoProcess(), MotoProcess()
    try:
        work = two_s3_regions(tmp_path / "w", dublin.url, frankfurt.url)
        with running(GatewayProcess(work).wait_ready()) as gw:
            german = work.service("crm", DOWN, "crm")
            assert register(gw, german, "hanna", DOWN, "DE")[0] == 201
            assert write(gw, german, "hanna", "mail-1", b"hallo")[0] == 201
            frankfurt.kill()
            frankfurt.start()
            # an operator makes the bucket again (the gateway would too): it is empty, the profile is gone
            s3 = boto3.client("s3", region_name=DOWN, endpoint_url=frankfurt.url, aws_access_key_id="testing", aws_secret_access_key="testing")
            s3.create_bucket(Bucket="records-eu-central-1", CreateBucketConfiguration={"LocationConstraint": DOWN})
            status, problem = write(gw, german, "hanna", "mail-2", b"lost")
            assert status == 404, problem
            assert problem["code"] == "unknown-subject"
            assert "Contents" not in s3.list_objects_v2(Bucket="records-eu-central-1")
            # registered again, the subject takes writes
            assert register(gw, german, "hanna", DOWN, "DE")[0] == 201
            assert write(gw, german, "hanna", "mail-2", b"wieder")[0] == 201
    finally:
        dublin.kill()
        frankfurt.kill()


def test_a_gateway_that_requires_every_region_refuses_to_start_with_one_down(tmp_path: Path) -> None:
    dublin = MotoProcess()
    try:
        work = two_s3_regions(tmp_path / "w", dublin.url, f"http://127.0.0.1:{free_port()}", require_all=True)
        gw = GatewayProcess(work)
        with running(gw):
            assert gw.wait(timeout=60) != 0
        assert "`startup.require_all_regions` is set" in gw.log_text() and f"`{DOWN}`" in gw.log_text()
    finally:
        dublin.kill()


def test_a_gateway_with_no_region_ready_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    regions = ("us-east-1", "eu-west-1", "eu-central-1", "eu-west-2", "ap-southeast-2")
    work = Workdir.make(tmp_path / "w", config_text({r: s3_store(r, dead) for r in regions}))
    gw = GatewayProcess(work)
    with running(gw):
        assert gw.wait(timeout=60) != 0
    assert "no region's store is ready" in gw.log_text()


def test_the_gateway_starts_with_the_control_store_down_and_registrations_answer_503_naming_it(tmp_path: Path) -> None:
    control = f"http://127.0.0.1:{free_port()}"
    work = Workdir.make(tmp_path / "w", config_text(control=s3_store("us-east-1", control, bucket="gateway-control")))
    with running(GatewayProcess(work).wait_ready()) as gw:
        irish = work.service("crm", UP, "crm")
        status, ready = call("GET", f"{gw.url}/readyz", {})
        assert (status, ready["status"], ready["control"]["status"], ready["down"]) == (200, "degraded", "down", []), ready
        status, problem = register(gw, irish, "aoife", UP, "IE")
        assert (status, problem["code"], problem["region"]) == (503, "store-unavailable", "control"), problem
