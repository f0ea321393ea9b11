"""Start-up: time from launching ``gateway serve`` to ``/readyz`` answering 200.

Run ``python -m bench.startup`` (from the repository root). With the shipped
five-region ``regions.toml`` and file stores, in a fresh data folder beside the
current directory:

- first start: an empty data folder, so the gateway also makes its dev keys,
  store folders and ledger;
- restart: the same folder again, now holding keys, a ledger with entries (the
  first start's and ``--entries`` more written through the API) and records;
  repeated ``--repeat`` times.

Each start is timed from ``Popen`` to the first 200 from ``/readyz`` (polled
every 5 ms), then the process is stopped with SIGTERM. Prints a Markdown table
with the median and the min–max spread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench.dataplane import GATEWAY, ROOT, free_port, http, stop
from bench.machine import cpu_model

TARGET_SECONDS = 1.0


def ready_after(common: list[str], log: Path, timeout: float = 30.0) -> tuple[float, subprocess.Popen[bytes], str]:
    """Start ``gateway serve``; return the seconds until /readyz answered 200, the process and its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(GATEWAY), "serve", *common, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway serve exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - started, proc, base
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.005)
    stop(proc)
    raise RuntimeError(f"/readyz did not answer 200 within {timeout:g} s")


def run(repeat: int, entries: int) -> str:
    with tempfile.TemporaryDirectory(prefix=".bench-startup-", dir=Path.cwd()) as tmp_name:
        tmp = Path(tmp_name)
        shutil.copy(ROOT / "regions.toml", tmp / "regions.toml")
        common = ["--config", str(tmp / "regions.toml"), "--data-dir", str(tmp / "data")]
        log = tmp / "gateway.log"
        first, proc, base = ready_after(common, log)
        try:
            token = subprocess.run(
                [str(GATEWAY), "token", "issue", *common, "--service", "crm", "--region", "us-east-1", "--purpose", "crm"],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout.split()[-1]
            http("PUT", f"{base}/v1/subjects/startup-subject", token, json.dumps({"home_region": "us-east-1", "residence": "US"}).encode(), "application/json")
            for i in range(entries):
                http("PUT", f"{base}/v1/subjects/startup-subject/records/r{i}?category=subscriber", token, b"x" * 512)
        finally:
            stop(proc)
        # one file per ledger chain (<chain id>.jsonl; the chain id is the host name unless set)
        lines = sum(1 for chain in (tmp / "data" / "ledger").glob("*.jsonl") for _ in chain.open("rb"))
        times = []
        for _ in range(repeat):
            seconds, proc, _ = ready_after(common, log)
            stop(proc)
            times.append(seconds)
    verdict = "met" if statistics.median(times) < TARGET_SECONDS else "missed"
    return "\n".join(
        [
            f"Start-up of `gateway serve` to `/readyz` 200, shipped five-region regions.toml, file stores "
            f"({datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()})",
            "",
            "| start | runs | median s | min s | max s |",
            "|---|---:|---:|---:|---:|",
            f"| first, empty data folder (makes keys, stores, ledger) | 1 | {first:.3f} | {first:.3f} | {first:.3f} |",
            f"| restart, ledger of {lines:,} lines | {repeat} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |",
            "",
            f"Target < {TARGET_SECONDS:g} s to ready: {verdict}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="restarts to time (default 10)")
    parser.add_argument("--entries", type=int, default=200, help="records written before the restarts (default 200)")
    parser.add_argument("--quick", action="store_true", help="3 restarts, 50 records")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.entries = 3, 50
    print(run(args.repeat, args.entries))


if __name__ == "__main__":
    main()
