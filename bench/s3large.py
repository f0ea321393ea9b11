"""A large object through the S3 front: multipart upload and download with boto3, and the gateway's peak memory.

Run ``python -m bench.s3large`` (from the repository root). For each size, a
fresh ``gateway serve --s3-port`` (file stores, the shipped ``regions.toml``)
in its own process, one registered subject, and credentials from ``gateway s3
credentials``; then boto3's ``upload_file`` and ``download_file`` (multipart
threshold and part size 8 MiB, 10 threads: boto3's defaults but for the part
size) of a file of random bytes, checked byte for byte after the round trip.
The figure that matters is the gateway process's peak resident memory
(``VmHWM`` from ``/proc``), before and after: it should not grow with the
object's size, since the front stores and sends 8 MiB chunks one at a time.
Times are shown for reference only (file stores on one disk, client and
gateway sharing the cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.dataplane import ROOT, free_port, http, start, stop, wait_http
from bench.machine import cpu_model

MIB = 1024 * 1024
SUBJECT = "bench-subject"
GATEWAY = [sys.executable, "-m", "gateway"]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc")


def write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MIB))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def one_size(tmp: Path, size: int) -> dict[str, float]:
    import boto3
    from boto3.s3.transfer import TransferConfig

    work = tmp / f"size-{size}"
    work.mkdir()
    shutil.copy(ROOT / "regions.toml", work / "regions.toml")
    common = ["--config", str(work / "regions.toml"), "--data-dir", str(work / "data")]
    port, s3_port = free_port(), free_port()
    serve = [*GATEWAY, "serve", *common, "--host", "127.0.0.1", "--port", str(port), "--s3-port", str(s3_port), "--s3-bucket", "records=content"]
    proc = start([*serve, "--log-level", "warning"], work / "gateway.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")

        def cli(*words: str) -> str:
            return subprocess.run([*GATEWAY, *words, *common], capture_output=True, text=True, check=True, cwd=ROOT).stdout

        token = cli("token", "issue", "--service", "crm", "--region", "us-east-1", "--purpose", "crm", "--ttl", "3600").split()[-1]
        profile = json.dumps({"home_region": "us-east-1", "residence": "US"}).encode()
        status, body = http("PUT", f"{base}/v1/subjects/{SUBJECT}", token, profile, "application/json")
        if status not in (200, 201):
            raise RuntimeError(f"seeding the subject: {status} {body[:300]!r}")
        found = dict(line.split("=", 1) for line in cli("s3", "credentials", "--service", "crm", "--region", "us-east-1", "--purpose", "crm").split())
        s3 = boto3.session.Session(
            aws_access_key_id=found["AWS_ACCESS_KEY_ID"], aws_secret_access_key=found["AWS_SECRET_ACCESS_KEY"], region_name=found["AWS_DEFAULT_REGION"]
        ).client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}")
        s3.head_bucket(Bucket="records")
        before = peak_rss_mib(proc.pid)
        source, target = work / "object.bin", work / "downloaded.bin"
        expected = write_random(source, size)
        parts = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB)
        began = time.perf_counter()
        s3.upload_file(str(source), "records", f"{SUBJECT}/large", Config=parts)
        uploaded = time.perf_counter()
        after_upload = peak_rss_mib(proc.pid)
        s3.download_file("records", f"{SUBJECT}/large", str(target), Config=parts)
        downloaded = time.perf_counter()
        if file_sha256(target) != expected:
            raise RuntimeError("the downloaded object is not the uploaded one")
        return {
            "size": size / MIB,
            "before": before,
            "upload": after_upload,
            "after": peak_rss_mib(proc.pid),
            "up": size / MIB / (uploaded - began),
            "down": size / MIB / (downloaded - uploaded),
        }
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def run(sizes: list[int]) -> str:
    with tempfile.TemporaryDirectory(prefix=".bench-s3large-", dir=Path.cwd()) as tmp_name:
        rows = [one_size(Path(tmp_name), size) for size in sizes]
    lines = [
        f"Gateway peak RSS through a multipart upload and download with boto3 (8 MiB parts, 10 threads); {os.cpu_count()} cores, {cpu_model()}.",
        "",
        "| object | gateway peak RSS: started | after the upload | after the download | upload MiB/s | download MiB/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['size']:.0f} MiB | {r['before']:.0f} MiB | {r['upload']:.0f} MiB | {r['after']:.0f} MiB | {r['up']:.0f} | {r['down']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,1024", help="object sizes in MiB, comma-separated (default 256,1024)")
    parser.add_argument("--quick", action="store_true", help="64 and 256 MiB")
    args = parser.parse_args()
    sizes = [64, 256] if args.quick else [int(s) for s in args.sizes.split(",")]
    print(run([s * MIB for s in sizes]))


if __name__ == "__main__":
    main()
