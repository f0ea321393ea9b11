"""A gateway exporting to a real S3 endpoint: what it wrote reaches the Object Lock bucket within the export interval,
so a SIGKILL afterwards (no shutdown, no last export) loses none of it, even with the disk gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.harness import GatewayProcess, MotoProcess, Workdir, config_text, running
from tests.faults.test_workers import audit_verify, store_a_record, wait_for


@pytest.mark.usefixtures("needs_moto_server")
def test_entries_exported_within_the_export_interval_are_in_the_bucket_after_a_sigkill_even_with_the_disk_gone(tmp_path: Path) -> None:
    import boto3

    audit = MotoProcess()
    try:
        export = (
            f'export = {{ bucket = "audit-ledger", region_name = "us-east-1", endpoint_url = "{audit.url}", retention_days = 1, mode = "GOVERNANCE" }}\n'
            "export_interval_seconds = 1\n"
        )
        work = Workdir.make(tmp_path / "w", config_text().replace("[audit]\n", f"[audit]\n{export}"))
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=audit.url, aws_access_key_id="testing", aws_secret_access_key="testing")

        def exported_through() -> int:
            try:
                listed = s3.list_objects_v2(Bucket="audit-ledger", Prefix="segments/gw-0/").get("Contents", [])
            except s3.exceptions.NoSuchBucket:
                return 0
            return max((int(item["Key"].rsplit("-", 1)[1].split(".")[0]) for item in listed), default=0)

        gw = GatewayProcess(work, args=("--chain-id", "gw-0")).wait_ready()
        with running(gw):
            store_a_record(gw, work)
            written = max(e["seq"] for e in work.entries("gw-0") if e["kind"] == "record.written")
            # no shutdown to close the segment: only the export interval takes the entry off the box
            wait_for(lambda: exported_through() > written, "the record's entries in the bucket", within=30)
            gw.kill()
        work.ledger.unlink()  # the pod is gone, and its emptyDir with it
        verified = audit_verify(work, "--remote")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        [chain] = json.loads(verified.stdout)["chains"]
        assert (chain["chain"], chain["source"]) == ("gw-0", "remote") and chain["last_seq"] > written
    finally:
        audit.kill()
