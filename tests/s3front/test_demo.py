"""`gateway demo --s3-port`: the README tour's S3 step, against the demo's own data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.faults.harness import ROOT, free_port, wait_until_answering
from tests.support import SHIPPED_CONFIG


def test_the_demo_serves_the_s3_front_on_its_data_and_refuses_a_cross_border_read(tmp_path: Path) -> None:
    (tmp_path / "regions.toml").write_text(SHIPPED_CONFIG.read_text())
    common = ["--config", str(tmp_path / "regions.toml"), "--data-dir", str(tmp_path / "data")]
    port, s3_port = free_port(), free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", *common, "--port", str(port), "--s3-port", str(s3_port), "--s3-bucket", "records=content"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/healthz", demo, what="gateway demo")
        who = ["--service", "analytics", "--region", "us-east-1", "--purpose", "analytics"]
        found = subprocess.run([sys.executable, "-m", "gateway", "s3", "credentials", *common, *who], cwd=ROOT, capture_output=True, text=True, check=True)
        env = dict(line.split("=", 1) for line in found.stdout.split())
        session = boto3.session.Session(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"])
        with pytest.raises(ClientError) as refused:
            session.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}").get_object(Bucket="records", Key="aoife/profile")
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    finally:
        demo.terminate()
        demo.wait(timeout=60)
