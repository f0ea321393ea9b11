"""The S3 conformance suite's two targets and its pass counts.

Every case in this folder runs twice, through an unmodified boto3 client: against
moto's real HTTP server (`moto_server`, its own process) and against the gateway's
S3 front (`gateway serve --s3-port`, its own process). A ``Target`` gives each
case its client, its bucket and a key prefix; on the front, the bucket has a home
region, so any key is an object key as in S3.

``DIFFERS`` names the cases a target is known to fail, with the reason; they run
as non-strict xfails, so a fix shows as XPASS. At the end pytest prints how many
cases each target passed (tests/conftest.py, so that it prints with pytest-xdist too).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tests.faults.harness import MOTO_SERVER, MotoProcess
from tests.s3front.support import Front

TARGETS = ("moto", "front")

MOTO_NO_AUTH = "moto_server accepts any credentials and signature (it checks none without IAM set up)"

# (target, case) -> why the target fails the case
DIFFERS: dict[tuple[str, str], str] = {
    ("moto", "test_a_wrong_secret_is_signature_does_not_match"): MOTO_NO_AUTH,
    ("moto", "test_an_unknown_access_key_is_invalid_access_key_id"): MOTO_NO_AUTH,
    ("moto", "test_an_expired_presigned_url_is_refused"): MOTO_NO_AUTH,
    ("moto", "test_a_wrong_content_md5_is_bad_digest"): "moto stores the object whatever its Content-MD5",
    ("moto", "test_delete_objects_quiet_answers_no_deleted_entries"): "moto lists the deleted keys even when asked to be quiet",
}


@dataclass
class Target:
    name: str
    endpoint: str
    region: str
    access_key: str
    secret: str
    bucket: str
    prefix: str  # every key a case writes starts with it

    def client(self, *, access_key: str | None = None, secret: str | None = None):
        session = boto3.session.Session(
            aws_access_key_id=access_key or self.access_key, aws_secret_access_key=secret or self.secret, region_name=self.region
        )
        return session.client("s3", endpoint_url=self.endpoint)

    def key(self, name: str) -> str:
        return self.prefix + name


@pytest.fixture(scope="session")
def moto_target() -> Iterator[Target]:
    if not MOTO_SERVER.exists():
        pytest.skip(f"no moto_server next to the interpreter ({MOTO_SERVER})")
    server = MotoProcess()
    try:
        target = Target("moto", server.url, "us-east-1", "testing", "testing", "conformance", "conf/")
        target.client().create_bucket(Bucket=target.bucket)
        yield target
    finally:
        server.kill()


@pytest.fixture(scope="session")
def front_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The front's ``eu-data`` bucket (home region eu-west-1: any key, as in S3), read and written by an EU service."""
    front = Front.start(Path(tmp_path_factory.mktemp("s3conformance")))
    try:
        found = front.credentials("support", "eu-west-1", "support")
        yield Target("front", front.endpoint, found["AWS_DEFAULT_REGION"], found["AWS_ACCESS_KEY_ID"], found["AWS_SECRET_ACCESS_KEY"], "eu-data", "conf/")
    finally:
        front.stop()


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Target:
    return request.getfixturevalue(f"{request.param}_target")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        reason = callspec and DIFFERS.get((callspec.params.get("target"), item.originalname))
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
