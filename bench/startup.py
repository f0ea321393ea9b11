"""Start-up: time from launching ``gateway serve`` to ``/readyz`` answering 200.

Run ``python -m bench.startup`` (from the repository root). With the shipped
five-region ``regions.toml`` and file stores, in a fresh data folder beside the
current directory:

- first start: an empty data folder, so the gateway also makes its dev keys,
  store folders and ledger;
- restart: the same folder again, now holding keys, a ledger with entries (the
  first start's and ``--entries`` more written through the API) and records;
  repeated ``--repeat`` times;
- restart with a long ledger: ``--ledger-entries`` more data-plane read entries
  (100,000 by default, about 45 MB) appended to the chain the gateway writes,
  through the project's own ledger (``Runtime.open`` and ``AuditLog.record``,
  as the data plane writes them), then 3 restarts. A restart verifies a long
  chain from its last signed head before it serves and the rest in the
  background (``FileLedger.open``), so this row should stay near the one
  before (bench/README.md, "Start-up grows with the ledger").

Each start is timed from ``Popen`` to the first 200 from ``/readyz`` (polled
every 5 ms), then the process is stopped with SIGTERM. Prints a Markdown table
with the median and the min–max spread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
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


async def grow_ledger(config: Path, data_dir: Path, entries: int) -> None:
    """Append ``entries`` data-plane read entries to the chain ``gateway serve`` writes here (its host name's)."""
    import logging

    from gateway.audit.chain import chain_id_from
    from gateway.runtime import Runtime, Settings

    logging.disable(logging.WARNING)  # the demo authorities without keys, said once by every start already
    settings = Settings(config_path=config, data_dir=data_dir, init_keys=False, chain_id=chain_id_from(socket.gethostname()))
    rt = await Runtime.open(settings)
    try:
        entry = {
            "by": {"service": "crm", "region": "us-east-1", "purpose": "crm", "token": "0" * 16},
            "subject": "startup-subject",
            "region": "us-east-1",
            "outcome": "serve",
            "reasons": [{"code": "same-jurisdiction", "rule": "residency.same-jurisdiction"}],
            "mechanism": None,
            "key": "r0",
            "sha256": "0" * 64,
        }
        for start in range(0, entries, 512):  # 512 in flight: group commit writes them in a few batches
            await asyncio.gather(*(rt.audit.record("record.read", entry) for _ in range(min(512, entries - start))))
    finally:
        await rt.close()


def run(repeat: int, entries: int, ledger_entries: int) -> str:
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
        long_times = []
        if ledger_entries:
            asyncio.run(grow_ledger(tmp / "regions.toml", tmp / "data", ledger_entries))
            long_lines = sum(1 for chain in (tmp / "data" / "ledger").glob("*.jsonl") for _ in chain.open("rb"))
            long_mib = sum(chain.stat().st_size for chain in (tmp / "data" / "ledger").glob("*.jsonl")) / (1 << 20)
            for _ in range(3):
                seconds, proc, _ = ready_after(common, log, timeout=300)
                stop(proc)
                long_times.append(seconds)
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
            *(
                [
                    f"| restart, ledger of {long_lines:,} lines ({long_mib:,.0f} MiB) | {len(long_times)} | "
                    f"{statistics.median(long_times):.3f} | {min(long_times):.3f} | {max(long_times):.3f} |"
                ]
                if long_times
                else []
            ),
            "",
            f"Target < {TARGET_SECONDS:g} s to ready (restart, short ledger): {verdict}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="restarts to time (default 10)")
    parser.add_argument("--entries", type=int, default=200, help="records written before the restarts (default 200)")
    parser.add_argument("--ledger-entries", type=int, default=100_000, help="entries appended before the long-ledger restarts (0: none)")
    parser.add_argument("--quick", action="store_true", help="3 restarts, 50 records, 20,000 more ledger entries")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.entries, args.ledger_entries = 3, 50, 20_000
    print(run(args.repeat, args.entries, args.ledger_entries))


if __name__ == "__main__":
    main()
