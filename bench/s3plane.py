"""Data-plane GET of a 4 KiB record on S3: the gateway versus a direct S3 client.

Run ``python -m bench.s3plane`` (from the repository root). Three processes on
127.0.0.1, started and stopped by this script:

- S3: moto's threaded server in its own process, a real S3 HTTP endpoint;
- gateway: ``gateway serve`` with a copy of the shipped ``regions.toml`` whose
  ``us-east-1`` store is an S3 bucket on that endpoint (the other regions stay
  on file stores), seeded through the API with one subject and one 4 KiB
  record, read with a real ``crm`` / us-east-1 service token: token check,
  residency decision, one ``GetObject``, tag verification and a durable ledger
  entry per request. Load from ``wrk`` (32 connections), as ``bench.dataplane``;
- direct: a separate Python process doing the same ``GetObject`` of the same
  object in the same bucket with boto3 (one client, a pool of 32 connections,
  32 threads, closed loop), the way a service without the gateway reads it;
  and, for reference, an aiohttp client signing each request with botocore's
  SigV4 signer (32 tasks), a lighter client than boto3.

Interleaved A/B rounds; medians over rounds, min-max shown, and each process's
CPU per request (moto and the client share the 2 cores, so client CPU decides
throughput). Target (issue 7): the gateway at >= 0.9x the direct client that
uses the same S3 client library as the gateway's store (boto3).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.dataplane import GATEWAY, ROOT, free_port, http, load_python, load_wrk, seed_record, start, stop, wait_http
from bench.machine import cpu_model

BUCKET, SUBJECT, KEY, SIZE = "bench-us-east-1", "bench-subject", "profile-4k", 4096
ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}

DIRECT = """
import sys, threading, time
import boto3
from botocore.config import Config
endpoint, bucket, key, workers, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      config=Config(max_pool_connections=workers, s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
client.get_object(Bucket=bucket, Key=key)["Body"].read()
latencies, errors = [], [0]
stop = time.perf_counter() + seconds
def worker():
    while time.perf_counter() < stop:
        started = time.perf_counter()
        try:
            client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception:
            errors[0] += 1
            continue
        latencies.append((time.perf_counter() - started) * 1000)
threads = [threading.Thread(target=worker) for _ in range(workers)]
began, cpu0 = time.perf_counter(), time.process_time()
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.perf_counter() - began
latencies.sort()
cpu_ms = (time.process_time() - cpu0) / len(latencies) * 1000
print(len(latencies) / elapsed, latencies[len(latencies) // 2], latencies[int(0.99 * (len(latencies) - 1))], errors[0], cpu_ms)
"""

DIRECT_AIOHTTP = """
import asyncio, sys, time
from urllib.parse import quote
import aiohttp, boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from yarl import URL
endpoint, bucket, key, workers, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
signer = S3SigV4Auth(boto3.session.Session().get_credentials().get_frozen_credentials(), "s3", "us-east-1")
url = f"{endpoint}/{bucket}/{quote(key, safe='/~')}"
latencies, errors = [], [0]
async def main():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers)) as session:
        async def get():
            request = AWSRequest(method="GET", url=url, headers={})
            signer.add_auth(request)  # a fresh signature per request, as a real client sends
            async with session.get(URL(url, encoded=True), headers=dict(request.headers.items())) as response:
                await response.read()
                return response.status
        await get()
        stop = time.perf_counter() + seconds
        async def worker():
            while time.perf_counter() < stop:
                started = time.perf_counter()
                if await get() != 200:
                    errors[0] += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
        global began, cpu0
        began, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(workers)))
asyncio.run(main())
elapsed = time.perf_counter() - began
latencies.sort()
cpu_ms = (time.process_time() - cpu0) / len(latencies) * 1000
print(len(latencies) / elapsed, latencies[len(latencies) // 2], latencies[int(0.99 * (len(latencies) - 1))], errors[0], cpu_ms)
"""

MOTO = """
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
while True:
    time.sleep(3600)
"""

# The direct clients, each its own process with `connections` requests in flight.
DIRECTS = {"boto3": DIRECT, "aiohttp-sigv4": DIRECT_AIOHTTP}
LABELS = {
    "gateway": "through the gateway (wrk)",
    "boto3": "direct: boto3 `get_object`, 32 threads, pool of 32",
    "aiohttp-sigv4": "direct: aiohttp, botocore SigV4 signature per request",
}

S3_STORE = re.compile(r"(\[regions\.us-east-1\][^\[]*?)store = \{[^}]*\}", re.S)


def load_direct(script: str, endpoint: str, connections: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", script, endpoint, BUCKET, f"subjects/{SUBJECT}/records/{KEY}", str(connections), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **ENV},
        timeout=seconds + 60,
    ).stdout.split()
    rps, p50, p99, errors, cpu = (float(x) for x in out)
    return {"rps": rps, "p50": p50, "p99": p99, "bad": errors, "client_cpu": cpu}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pids: dict[str, int], work: Callable[[], dict[str, float]]) -> dict[str, float]:
    """``work()``'s figures plus the CPU ms per request of each process in ``pids`` meanwhile."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = work()
    requests = result["rps"] * result.get("seconds", 1.0)
    for name, pid in pids.items():
        result[name] = (cpu_seconds(pid) - before[name]) * 1000 / max(requests, 1.0)
    return result


def run(rounds: int, seconds: float, connections: int) -> str:
    load = load_wrk if shutil.which("wrk") else load_python
    results: dict[str, list[dict[str, float]]] = {"gateway": [], **{name: [] for name in DIRECTS}}
    with tempfile.TemporaryDirectory(prefix=".bench-s3plane-", dir=Path.cwd()) as tmp_name:
        tmp = Path(tmp_name)
        s3_port, gw_port = free_port(), free_port()
        endpoint = f"http://127.0.0.1:{s3_port}"
        s3_store = f'store = {{ kind = "s3", bucket = "{BUCKET}", endpoint_url = "{endpoint}" }}'
        config = S3_STORE.sub(lambda m: m.group(1) + s3_store, (ROOT / "regions.toml").read_text(), count=1)
        if f'bucket = "{BUCKET}"' not in config:
            raise RuntimeError("could not put us-east-1 on S3 in the benchmark's copy of regions.toml")
        (tmp / "regions.toml").write_text(config)
        common = ["--config", str(tmp / "regions.toml"), "--data-dir", str(tmp / "data")]
        os.environ.update(ENV)  # the gateway and moto inherit the (dummy) credentials
        s3 = start([sys.executable, "-c", MOTO, str(s3_port)], tmp / "moto.log")
        gateway = None
        try:
            wait_http(endpoint)
            gateway = start([str(GATEWAY), "serve", *common, "--host", "127.0.0.1", "--port", str(gw_port), "--log-level", "warning"], tmp / "gateway.log")
            base = f"http://127.0.0.1:{gw_port}"
            try:
                wait_http(f"{base}/healthz")
            except RuntimeError:
                sys.stderr.write((tmp / "gateway.log").read_text()[-3000:])
                raise
            token = subprocess.run(
                [str(GATEWAY), "token", "issue", *common, "--service", "crm", "--region", "us-east-1", "--purpose", "crm", "--ttl", "3600"],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout.split()[-1]
            payload = seed_record(base, token)
            url = f"{base}/v1/subjects/{SUBJECT}/records/{KEY}"
            status, body = http("GET", url, token)
            if status != 200 or body != payload:
                raise RuntimeError(f"reading the record back: {status} {body[:300]!r}")
            load(url, token, connections, 1.0)
            for script in DIRECTS.values():
                load_direct(script, endpoint, connections, 1.0)
            sides = ["gateway", *DIRECTS]
            for i in range(rounds):
                for side in sides[i % len(sides) :] + sides[: i % len(sides)]:  # rotate the order each round
                    if side == "gateway":
                        pids = {"server_cpu": gateway.pid, "moto_cpu": s3.pid}
                        results[side].append(measured(pids, lambda: {**load(url, token, connections, seconds), "seconds": seconds}))
                    else:
                        script = DIRECTS[side]
                        results[side].append(
                            measured({"moto_cpu": s3.pid}, lambda script=script: {**load_direct(script, endpoint, connections, seconds), "seconds": seconds})
                        )
        finally:
            if gateway is not None:
                stop(gateway)
            stop(s3)

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    def spread(side: str) -> str:
        values = [r["rps"] for r in results[side]]
        return f"{min(values):,.0f}-{max(values):,.0f}"

    # The target compares like with like: the gateway's S3 store is boto3, so is the direct client it is held to.
    ratio = med("gateway", "rps") / med("boto3", "rps")
    bad = sum(r["bad"] for side in results.values() for r in side)
    rows = [
        f"| {LABELS[side]} | {med(side, 'rps'):,.0f} | {spread(side)} | {med(side, 'p50'):.2f} | {med(side, 'p99'):.2f} | "
        f"{med(side, 'server_cpu' if side == 'gateway' else 'client_cpu'):.2f} | {med(side, 'moto_cpu'):.2f} |"
        for side in results
    ]
    per_round = "; ".join(f"{side} " + "/".join(f"{r['rps']:,.0f}" for r in results[side]) for side in results)
    return "\n".join(
        [
            f"GET of a 4 KiB record on S3 (moto server), {connections} in flight, {rounds} interleaved rounds of {seconds:g} s "
            f"({datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()})",
            "",
            "| client | req/s (median) | req/s min-max | p50 ms | p99 ms | client CPU ms/req | moto CPU ms/req |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Ratio gateway / direct boto3 client: {ratio:.2f}x (target >= 0.9x); "
            + ", ".join(f"gateway / {name}: {med('gateway', 'rps') / med(name, 'rps'):.2f}x" for name in DIRECTS if name != "boto3")
            + f". Per-round req/s: {per_round}. Failed or non-2xx answers: {bad:.0f}.",
            "(Client CPU for the gateway is the gateway process; wrk's own CPU is not counted.)",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 3.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    started = time.monotonic()
    print(run(args.rounds, args.seconds, args.connections))
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
