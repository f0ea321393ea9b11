"""Real S3 clients, unmodified, against a real `gateway serve --s3-port` process: the AWS CLI, rclone and s3cmd.

Each client gets credentials from `gateway s3 credentials` and nothing else: no
config of the machine's, only what a service would set to point it at the gateway.
rclone and s3cmd are not built on botocore, so they check the front's SigV4 and
XML against other implementations.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import GatewayProcess, Workdir, free_port
from tests.s3front.support import IRISH_SUBJECT, Front
from tests.support import system_tool

EU = ("support", "eu-west-1", "support")
US = ("analytics", "us-east-1", "analytics")
PART = 5 * 1024 * 1024  # the smallest part S3 takes, and the threshold the clients are set to split at
# What each client needs from the gateway beyond this branch; temporary, removed when those land


def clean_env(home: Path) -> dict[str, str]:
    """The environment a client runs in: none of the machine's AWS settings or CA bundles (rclone refuses a custom bundle over HTTP)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_")) and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    return {**env, "HOME": str(home)}


class Clients:
    def __init__(self, front: Front, root: Path) -> None:
        self.front, self.root = front, root
        self.home = root / "home"
        self.home.mkdir()
        self.calls = 0
        self.found: dict[tuple[str, str, str], dict[str, str]] = {}

    def credentials(self, who: tuple[str, str, str]) -> dict[str, str]:
        """`gateway s3 credentials` for ``who`` (service, region, purpose), once per module."""
        if who not in self.found:
            self.found[who] = self.front.credentials(*who)
        return self.found[who]

    def file(self, data: bytes) -> Path:
        self.calls += 1
        path = self.root / f"file-{self.calls}"
        path.write_bytes(data)
        return path

    def out(self) -> Path:
        self.calls += 1
        return self.root / f"out-{self.calls}"

    def aws(self, who: tuple[str, str, str], *args: str) -> subprocess.CompletedProcess[str]:
        found = self.credentials(who)
        config = self.root / "aws-config"
        env = {**clean_env(self.home), **found, "AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(self.root / "none")}
        command = system_tool("aws", "awscli, the test extra")
        if not config.exists():
            subprocess.run([command, "configure", "set", "default.s3.multipart_threshold", "5MB"], env=env, check=True, timeout=60)
            subprocess.run([command, "configure", "set", "default.s3.multipart_chunksize", "5MB"], env=env, check=True, timeout=60)
        return subprocess.run([command, "--endpoint-url", self.front.endpoint, *args], env=env, capture_output=True, text=True, timeout=120)

    def rclone(self, who: tuple[str, str, str], *args: str) -> subprocess.CompletedProcess[str]:
        """rclone with a remote `gw` configured by environment variables alone, as a container would."""
        found = self.credentials(who)
        remote = {
            "TYPE": "s3",
            "PROVIDER": "Other",
            "ENDPOINT": self.front.endpoint,
            "ACCESS_KEY_ID": found["AWS_ACCESS_KEY_ID"],
            "SECRET_ACCESS_KEY": found["AWS_SECRET_ACCESS_KEY"],
            "REGION": found["AWS_DEFAULT_REGION"],
            "FORCE_PATH_STYLE": "true",
            "LIST_VERSION": "2",
            "NO_CHECK_BUCKET": "true",  # the bucket is the gateway's; a service does not create it
            "UPLOAD_CUTOFF": "5M",
            "CHUNK_SIZE": "5M",
        }
        config = self.root / "rclone.conf"  # empty: the remote is all in the environment
        config.touch()
        env = {**clean_env(self.home), "RCLONE_CONFIG": str(config)} | {f"RCLONE_CONFIG_GW_{k}": v for k, v in remote.items()}
        command = [system_tool("rclone", "Debian package `rclone`"), "--retries", "1", "--low-level-retries", "1"]
        return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=120)

    def s3cmd(self, who: tuple[str, str, str], *args: str) -> subprocess.CompletedProcess[str]:
        """s3cmd with a generated config: path style (host_bucket without `%(bucket)s`), signature v4, plain HTTP."""
        found = self.credentials(who)
        host = self.front.endpoint.removeprefix("http://")
        config = self.root / f"s3cfg-{who[0]}"
        config.write_text(
            "[default]\n"
            f"access_key = {found['AWS_ACCESS_KEY_ID']}\nsecret_key = {found['AWS_SECRET_ACCESS_KEY']}\n"
            f"bucket_location = {found['AWS_DEFAULT_REGION']}\nhost_base = {host}\nhost_bucket = {host}\n"
            "use_https = False\nsignature_v2 = False\nmax_retries = 1\nmultipart_chunk_size_mb = 5\n"
        )
        command = system_tool("s3cmd", "Debian package `s3cmd`")
        return subprocess.run([command, "-c", str(config), *args], env=clean_env(self.home), capture_output=True, text=True, timeout=120)

    def refusals(self, key: str) -> list[tuple[str, list[dict]]]:
        """(service, reasons) of every refused read of ``sean/key`` in the ledger."""
        return [
            (e["data"]["by"]["service"], e["data"]["reasons"])
            for e in self.front.workdir.entries()
            if e["kind"] == "service.read" and e["data"].get("key") == key and e["data"]["outcome"] == "refuse"
        ]

    def rest_refusal(self, key: str) -> list[dict]:
        """The reasons the REST API refuses the US service's read of ``sean/key`` with, from the ledger."""
        status, _ = self.front.rest("GET", f"/v1/subjects/sean/records/{key}", self.front.workdir.service(*US[:2]))
        assert status == 451
        return self.refusals(key)[-1][1]


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    root = Path(tmp_path_factory.mktemp("s3clients"))
    workdir = Workdir.make(root / "gateway")
    s3_port = free_port()
    process = GatewayProcess(workdir, args=("--s3-port", str(s3_port), "--s3-bucket", "records=content")).wait_ready()
    front = Front(workdir, process, s3_port)
    status, _ = front.rest("PUT", "/v1/subjects/sean", {**workdir.service(*EU[:2]), "Content-Type": "application/json"}, json.dumps(IRISH_SUBJECT).encode())
    assert status == 201
    try:
        yield Clients(front, root)
    finally:
        process.stop()


def put(clients: Clients, key: str, body: bytes) -> None:
    clients.front.client(*EU).put_object(Bucket="records", Key=f"sean/{key}", Body=body)


def big() -> bytes:
    """Six MiB that differ from part to part, so parts out of order would show."""
    return b"".join(hashlib.sha256(str(i).encode()).digest() * 1024 for i in range(6 * 32))


# the AWS CLI


def test_aws_s3_cp_uploads_a_file_that_downloads_byte_for_byte(clients: Clients) -> None:
    up = clients.aws(EU, "s3", "cp", str(clients.file(b"from the aws cli")), "s3://records/sean/aws-cp")
    out = clients.out()
    down = clients.aws(EU, "s3", "cp", "s3://records/sean/aws-cp", str(out))
    assert (up.returncode, up.stderr, down.returncode, down.stderr, out.read_bytes()) == (0, "", 0, "", b"from the aws cli")


def test_aws_s3_ls_lists_a_subjects_objects_with_their_sizes(clients: Clients) -> None:
    put(clients, "aws-ls-a", b"a")
    put(clients, "aws-ls-b", b"bb")
    listed = clients.aws(EU, "s3", "ls", "s3://records/sean/aws-ls-")
    assert [line.split()[2:] for line in listed.stdout.splitlines()] == [["1", "aws-ls-a"], ["2", "aws-ls-b"]]


def test_aws_s3_rm_deletes_the_object(clients: Clients) -> None:
    put(clients, "aws-rm", b"x")
    removed = clients.aws(EU, "s3", "rm", "s3://records/sean/aws-rm")
    head = clients.aws(EU, "s3api", "head-object", "--bucket", "records", "--key", "sean/aws-rm")
    assert (removed.returncode, head.returncode, "404" in head.stderr) == (0, 255, True)


def test_aws_s3api_put_object_and_get_object_round_trip_with_the_md5_etag(clients: Clients) -> None:
    body = b"put by s3api"
    put_ = clients.aws(EU, "s3api", "put-object", "--bucket", "records", "--key", "sean/aws-api", "--body", str(clients.file(body)))
    out = clients.out()
    got = clients.aws(EU, "s3api", "get-object", "--bucket", "records", "--key", "sean/aws-api", str(out))
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    assert (json.loads(put_.stdout)["ETag"], json.loads(got.stdout)["ETag"], out.read_bytes()) == (etag, etag, body)


def test_aws_s3api_head_object_gives_the_size_and_the_metadata_the_object_was_put_with(clients: Clients) -> None:
    body = str(clients.file(b"12345"))
    clients.aws(EU, "s3api", "put-object", "--bucket", "records", "--key", "sean/aws-head", "--body", body, "--metadata", "category=content,camera=door")
    head = json.loads(clients.aws(EU, "s3api", "head-object", "--bucket", "records", "--key", "sean/aws-head").stdout)
    assert (head["ContentLength"], head["Metadata"]) == (5, {"category": "content", "camera": "door"})


def test_aws_cli_reading_across_the_border_is_access_denied_with_the_rest_apis_reason(clients: Clients) -> None:
    put(clients, "aws-border", b"irish data")
    read = clients.aws(US, "s3api", "get-object", "--bucket", "records", "--key", "sean/aws-border", str(clients.out()))
    assert (read.returncode, "(AccessDenied)" in read.stderr, "not registered under" in read.stderr) == (255, True, True)


def test_aws_cli_reading_across_the_border_is_ledgered_as_the_rest_api_refuses_it(clients: Clients) -> None:
    put(clients, "aws-border-ledger", b"irish data")
    clients.aws(US, "s3", "cp", "s3://records/sean/aws-border-ledger", str(clients.out()))
    assert clients.refusals("aws-border-ledger") == [("analytics", clients.rest_refusal("aws-border-ledger"))]


def test_aws_s3_cp_of_a_file_over_the_multipart_threshold_uploads_in_parts_and_downloads_whole(clients: Clients) -> None:
    data = big()
    up = clients.aws(EU, "s3", "cp", str(clients.file(data)), "s3://records/sean/aws-big")
    head = json.loads(clients.aws(EU, "s3api", "head-object", "--bucket", "records", "--key", "sean/aws-big").stdout or "{}")
    out = clients.out()
    clients.aws(EU, "s3", "cp", "s3://records/sean/aws-big", str(out))
    assert (up.returncode, head.get("ETag", "").endswith('-2"'), out.read_bytes() == data) == (0, True, True)


# rclone (Go, not botocore)


def test_rclone_copies_a_file_up_and_back_byte_for_byte(clients: Clients) -> None:
    up = clients.rclone(EU, "copyto", str(clients.file(b"from rclone")), "gw:records/sean/rclone-rt")
    out = clients.out()
    down = clients.rclone(EU, "copyto", "gw:records/sean/rclone-rt", str(out))
    assert (up.returncode, up.stderr, down.returncode, out.read_bytes()) == (0, "", 0, b"from rclone")


def test_rclone_lists_a_subjects_objects(clients: Clients) -> None:
    put(clients, "rclone-ls-a", b"a")
    put(clients, "rclone-ls-b", b"b")
    listed = clients.rclone(EU, "lsf", "--include", "rclone-ls-*", "gw:records/sean/")
    assert listed.stdout.split() == ["rclone-ls-a", "rclone-ls-b"]


def test_rclone_reads_an_object_put_by_another_client(clients: Clients) -> None:
    put(clients, "rclone-cat", b"put by boto3")
    assert clients.rclone(EU, "cat", "gw:records/sean/rclone-cat").stdout == "put by boto3"


def test_rclone_reading_across_the_border_is_access_denied_with_status_403(clients: Clients) -> None:
    put(clients, "rclone-border", b"irish data")
    read = clients.rclone(US, "cat", "gw:records/sean/rclone-border")
    assert (read.returncode != 0, "AccessDenied" in read.stderr, "status code: 403" in read.stderr) == (True, True, True)


def test_rclone_reading_across_the_border_is_ledgered_as_the_rest_api_refuses_it(clients: Clients) -> None:
    put(clients, "rclone-border-ledger", b"irish data")
    clients.rclone(US, "cat", "gw:records/sean/rclone-border-ledger")
    refused = clients.refusals("rclone-border-ledger")
    assert refused and set(map(json.dumps, (r for _, r in refused))) == {json.dumps(clients.rest_refusal("rclone-border-ledger"))}


def test_rclone_uploads_a_file_over_its_cutoff_in_parts_and_downloads_it_whole(clients: Clients) -> None:
    data = big()
    up = clients.rclone(EU, "copyto", str(clients.file(data)), "gw:records/sean/rclone-big")
    out = clients.out()
    clients.rclone(EU, "copyto", "gw:records/sean/rclone-big", str(out))
    assert (up.returncode, out.exists() and out.read_bytes() == data) == (0, True)


# s3cmd (Python, its own SigV4, not botocore)


def test_s3cmd_puts_a_file_and_gets_it_back_byte_for_byte(clients: Clients) -> None:
    up = clients.s3cmd(EU, "put", str(clients.file(b"from s3cmd")), "s3://records/sean/s3cmd-rt")
    out = clients.out()
    down = clients.s3cmd(EU, "get", "--force", "s3://records/sean/s3cmd-rt", str(out))
    assert (up.returncode, down.returncode, out.exists() and out.read_bytes()) == (0, 0, b"from s3cmd")


def test_s3cmd_gets_an_object_put_by_another_client(clients: Clients) -> None:
    put(clients, "s3cmd-get", b"put by boto3")
    out = clients.out()
    got = clients.s3cmd(EU, "get", "s3://records/sean/s3cmd-get", str(out))
    assert (got.returncode, out.read_bytes()) == (0, b"put by boto3")


def test_s3cmd_deletes_an_object(clients: Clients) -> None:
    put(clients, "s3cmd-del", b"x")
    deleted = clients.s3cmd(EU, "del", "s3://records/sean/s3cmd-del")
    head = clients.aws(EU, "s3api", "head-object", "--bucket", "records", "--key", "sean/s3cmd-del")
    assert (deleted.returncode, "404" in head.stderr) == (0, True)


def test_s3cmd_reading_across_the_border_is_refused_with_403_and_its_access_denied_exit_status(clients: Clients) -> None:
    put(clients, "s3cmd-border", b"irish data")
    read = clients.s3cmd(US, "get", "s3://records/sean/s3cmd-border", str(clients.out()))
    assert (read.returncode, "403 (Forbidden)" in read.stderr) == (77, True)  # 77: s3cmd's EX_ACCESSDENIED


def test_s3cmd_reading_across_the_border_is_ledgered_as_the_rest_api_refuses_it(clients: Clients) -> None:
    put(clients, "s3cmd-border-ledger", b"irish data")
    clients.s3cmd(US, "get", "s3://records/sean/s3cmd-border-ledger", str(clients.out()))
    refused = clients.refusals("s3cmd-border-ledger")
    assert refused and {json.dumps(r) for _, r in refused} == {json.dumps(clients.rest_refusal("s3cmd-border-ledger"))}


def test_s3cmd_puts_a_file_over_its_chunk_size_in_parts_and_gets_it_whole(clients: Clients) -> None:
    data = big()
    up = clients.s3cmd(EU, "put", str(clients.file(data)), "s3://records/sean/s3cmd-big")
    out = clients.out()
    clients.s3cmd(EU, "get", "s3://records/sean/s3cmd-big", str(out))
    assert (up.returncode, out.exists() and out.read_bytes() == data) == (0, True)
