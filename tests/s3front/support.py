"""A real `gateway serve` whose S3 front and buckets come from regions.toml, and unmodified boto3 clients of it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials

from tests.faults.harness import ROOT, SHIPPED_CONFIG, GatewayProcess, Workdir, free_port

IRISH_SUBJECT = {"home_region": "eu-west-1", "residence": "IE", "nationality": "IE", "us_person": False}
S3_TABLE = """
[s3]
port = {port}
virtual_host = "s3.gateway.local"

[s3.buckets.records]
route = "subject"
default_category = "content"

[s3.buckets.eu-data]
home_region = "eu-west-1"
default_category = "content"

[s3.buckets.us-data]
home_region = "us-east-1"
default_category = "content"
"""


class Front:
    def __init__(self, workdir: Workdir, process: GatewayProcess, s3_port: int) -> None:
        self.workdir, self.process, self.endpoint = workdir, process, f"http://127.0.0.1:{s3_port}"

    @classmethod
    def start(cls, root: Path) -> Front:
        """A gateway serving the shipped regions.toml with the `[s3]` table above (the front's port comes from there)."""
        s3_port = free_port()
        workdir = Workdir.make(root, SHIPPED_CONFIG.read_text() + S3_TABLE.format(port=s3_port))
        front = cls(workdir, GatewayProcess(workdir).wait_ready(), s3_port)
        status, _ = front.rest(
            "PUT", "/v1/subjects/sean", {**workdir.service("support", "eu-west-1"), "Content-Type": "application/json"}, json.dumps(IRISH_SUBJECT).encode()
        )
        assert status == 201
        return front

    def credentials(self, service: str, region: str, purpose: str) -> dict[str, str]:
        command = [sys.executable, "-m", "gateway", "s3", "credentials", "--config", str(self.workdir.config), "--data-dir", str(self.workdir.data_dir)]
        out = subprocess.run([*command, "--service", service, "--region", region, "--purpose", purpose], cwd=ROOT, capture_output=True, text=True, check=True)
        return dict(line.split("=", 1) for line in out.stdout.split())

    def client(
        self, service: str = "support", region: str = "eu-west-1", purpose: str | None = None, *, secret: str | None = None, config: BotoConfig | None = None
    ):
        """An unmodified boto3 client with the service's S3 credentials (``secret``: sign with another secret instead)."""
        found = self.credentials(service, region, purpose or service)
        session = boto3.session.Session(
            aws_access_key_id=found["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=secret or found["AWS_SECRET_ACCESS_KEY"],
            region_name=found["AWS_DEFAULT_REGION"],
        )
        return session.client("s3", endpoint_url=self.endpoint, config=config)

    def rest(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.process.url}{path}", data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def signed(self, method: str, url: str, *, body: bytes = b"", headers: dict[str, str] | None = None, send: bytes | None = None):
        """A request signed by botocore's own signer for ``url`` (whose host may be a virtual host), sent to the front's port;
        ``send``: a body to send instead of the one signed.

        Returns (status, headers, body)."""
        found = self.credentials("support", "eu-west-1", "support")
        request = AWSRequest(method=method, url=url, data=body, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD", **(headers or {})})
        SigV4Auth(Credentials(found["AWS_ACCESS_KEY_ID"], found["AWS_SECRET_ACCESS_KEY"]), "s3", "eu-west-1").add_auth(request)
        path = url.split("/", 3)[3] if url.count("/") >= 3 else ""
        sent_headers = {**dict(request.headers.items()), "Host": url.split("/")[2]}  # botocore signs the URL's host; urllib would send the port's
        body = body if send is None else send
        sent = urllib.request.Request(f"{self.endpoint}/{path}", data=body or None, method=method, headers=sent_headers)
        try:
            with urllib.request.urlopen(sent) as answer:
                return answer.status, dict(answer.headers.items()), answer.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers.items()), error.read()

    def ledger(self) -> list[dict]:
        return [json.loads(line) for line in self.workdir.ledger.read_text().splitlines()]

    def ledger_kinds(self) -> list[str]:
        return [entry["kind"] for entry in self.ledger()]

    def stop(self) -> None:
        self.process.stop()
