"""GET of a 4 KiB object through the S3 front versus the REST data-plane GET of the same record.

Run ``python -m bench.s3front`` (from the repository root). One ``gateway
serve --s3-port`` process on 127.0.0.1 on a fresh data folder (dev keys, the
shipped regions.toml, file stores), seeded through the REST API with one subject
in us-east-1 and one 4 KiB ``subscriber`` record. The same record is then read
by the same service (``crm`` in us-east-1) two ways, through the same load
generator (``wrk``, 32 connections, 2 threads) in interleaved rounds:

- REST: ``GET /v1/subjects/S/records/K`` with a bearer token from ``gateway
  token issue`` (token check);
- S3: ``GET /records/S/K`` on the S3 port, signed with AWS Signature Version 4
  in the ``Authorization`` header as boto3 signs it (botocore's own signer),
  with credentials from ``gateway s3 credentials`` (SigV4 check: access key,
  canonical request, signature). The signed headers are fixed for the run (wrk
  sends the same request each time), which the front accepts for its 15 minutes
  of clock skew; it verifies every request in full and caches no verification.

Both then do the same work: residency decision, tag check, file-store read and
a durable ledger entry. Before the load each side's answer is checked to be the
record's bytes; wrk counts non-2xx answers, reported. Medians over rounds; the
ratio S3 / REST throughput is the figure (target >= 0.8x).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.dataplane import ROOT, _ms, free_port, seed_record, start, stop, wait_http
from bench.machine import cpu_model

GATEWAY = [sys.executable, "-m", "gateway"]
BUCKET, SUBJECT, KEY, SIZE = "records", "bench-subject", "profile-4k", 4096


@dataclass(frozen=True)
class Seeded:
    rest_url: str
    rest_headers: dict[str, str]
    s3_url: str
    s3_headers: dict[str, str]
    payload: bytes


def signed_headers(url: str, credentials: dict[str, str]) -> dict[str, str]:
    """The headers boto3 sends on a GetObject of ``url``: botocore's S3 SigV4 signer, unsigned body hash as for any GET."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=url)
    keys = Credentials(credentials["AWS_ACCESS_KEY_ID"], credentials["AWS_SECRET_ACCESS_KEY"])
    S3SigV4Auth(keys, "s3", credentials["AWS_DEFAULT_REGION"]).add_auth(request)
    return {name: value for name, value in request.headers.items() if name.lower() != "host"}


def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextmanager
def seeded(tmp: Path) -> Iterator[Seeded]:
    shutil.copy(ROOT / "regions.toml", tmp / "regions.toml")
    common = ["--config", str(tmp / "regions.toml"), "--data-dir", str(tmp / "data")]
    port, s3_port = free_port(), free_port()
    serve = [*GATEWAY, "serve", *common, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = start([*serve, "--s3-port", str(s3_port), "--s3-bucket", f"{BUCKET}=subscriber"], tmp / "gateway.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        who = ["--service", "crm", "--region", "us-east-1", "--purpose", "crm"]
        token = subprocess.run([*GATEWAY, "token", "issue", *common, *who, "--ttl", "3600"], capture_output=True, text=True, check=True, cwd=ROOT)
        token = token.stdout.strip().split()[-1]
        found = subprocess.run([*GATEWAY, "s3", "credentials", *common, *who], capture_output=True, text=True, check=True, cwd=ROOT).stdout
        credentials = dict(line.split("=", 1) for line in found.split())
        payload = seed_record(base, token)
        s3_url = f"http://127.0.0.1:{s3_port}/{BUCKET}/{SUBJECT}/{KEY}"
        yield Seeded(f"{base}/v1/subjects/{SUBJECT}/records/{KEY}", {"Authorization": f"Bearer {token}"}, s3_url, signed_headers(s3_url, credentials), payload)
    finally:
        stop(proc)


def load(url: str, headers: dict[str, str], connections: int, seconds: float) -> dict[str, float]:
    """``wrk`` on ``url`` with ``headers`` on every request: req/s, p50 and p99 (ms), non-2xx answers."""
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "bad": float(bad.group(1)) if bad else 0.0,
    }


def run(rounds: int, seconds: float, connections: int) -> str:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (scripts/bench.sh installs it)")
    with tempfile.TemporaryDirectory(prefix=".bench-s3front-", dir=Path.cwd()) as tmp_name, seeded(Path(tmp_name)) as seed:
        sides = {"REST": (seed.rest_url, seed.rest_headers), "S3": (seed.s3_url, seed.s3_headers)}
        for side, (url, headers) in sides.items():
            status, body = fetch(url, headers)
            if (status, body) != (200, seed.payload):
                raise RuntimeError(f"{side} GET did not answer the record: {status} {body[:300]!r}")
            load(url, headers, connections, 1.0)  # warm-up
        results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
        for i in range(rounds):
            for side in ("REST", "S3") if i % 2 == 0 else ("S3", "REST"):
                results[side].append(load(*sides[side], connections, seconds))

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    ratio = med("S3", "rps") / med("REST", "rps")
    per_round = ", ".join(f"{s['rps']:,.0f}/{r['rps']:,.0f}" for s, r in zip(results["S3"], results["REST"], strict=True))
    bad = sum(r["bad"] for side in results.values() for r in side)
    return "\n".join(
        [
            f"GET of a 4 KiB record, {connections} connections, {rounds} interleaved rounds of {seconds:g} s, load from wrk "
            f"({datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()})",
            "",
            "| path | req/s | p50 ms | p99 ms |",
            "|---|---:|---:|---:|",
            f"| REST data plane, bearer token | {med('REST', 'rps'):,.0f} | {med('REST', 'p50'):.2f} | {med('REST', 'p99'):.2f} |",
            f"| S3 front, SigV4 header signature (boto3's) | {med('S3', 'rps'):,.0f} | {med('S3', 'p50'):.2f} | {med('S3', 'p99'):.2f} |",
            "",
            f"Ratio S3 / REST throughput: {ratio:.2f}x (target >= 0.8x; medians over rounds; per-round req/s S3/REST: {per_round}). "
            f"Non-2xx answers: {bad:.0f}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=4.0, help="load per round and side (default 4)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="one round of 2 s")
    args = parser.parse_args()
    rounds, seconds = (1, 2.0) if args.quick else (args.rounds, args.seconds)
    print(run(rounds, seconds, args.connections))


if __name__ == "__main__":
    main()
