"""Where a data-plane GET spends its time: a py-spy profile of ``gateway serve`` under load.

Run ``python -m bench.profile`` (from the repository root; needs ``py-spy``,
installed by ``scripts/bench.sh``, and ptrace rights, e.g. root). It starts the
same seeded gateway as ``bench.dataplane``, puts it under the same load (wrk, 32
connections; the Python client when wrk is absent) and samples it with
``py-spy record --gil`` (only the thread holding the GIL, so the shares are of
Python CPU time, not of waiting). It prints a Markdown table of the functions
with the largest inclusive share, grouped into the request's stages.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.dataplane import load_python, load_wrk, seeded_gateway
from bench.machine import cpu_model

# Stages of a record GET, by the function that does them (first match wins, in this order).
STAGES = (
    ("ledger: encode, hash, write, fsync (worker thread)", ("FileLedger._write_batch",)),
    ("ledger: append and wait (event loop)", ("FileLedger.append", "RecordService._record")),
    ("bearer token check", ("authenticate",)),
    ("residency decision", ("RecordService._decided",)),
    ("residency tag check", ("TagVerifier.verify",)),
    ("file store read", ("FileStore.get",)),
    ("gateway handler, rest", ("get_record",)),
    ("middleware: request id, metrics, access log", ("problem_middleware",)),
    ("aiohttp: parse, route, respond", ("RequestHandler", "StreamWriter", "_SelectorSocketTransport")),
)

OTHER = "other (event loop, thread hand-offs, GC)"
# Frames every sample of a thread passes through; they say nothing about cost.
ROOTS = (
    *("Thread.", "_worker (", "_WorkItem.run", "<module>", "main (cli.py)", "cmd_serve", "run_app"),
    *("BaseEventLoop.run_", "BaseEventLoop._run_once", "Handle._run"),
)


def _name(frame: str) -> str:
    # py-spy raw frames look like "function (path/file.py:line)"
    function, _, where = frame.partition(" (")
    return f"{function} ({Path(where.rsplit(':', 1)[0]).name})" if where else function


def summarise(raw: Path, top: int) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    inclusive: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_name(f) for f in stack.split(";")]
        for name in set(frames):
            if not name.startswith(ROOTS):
                inclusive[name] += n
        for stage, markers in STAGES:
            if any(marker in frame for frame in frames for marker in markers):
                stages[stage] += n
                break
        else:
            stages[OTHER] += n
    scale = 100.0 / max(total, 1)
    by_stage = [(stage, stages[stage] * scale) for stage in [*(s for s, _ in STAGES), OTHER] if stages[stage]]
    return total, by_stage, [(name, n * scale) for name, n in inclusive.most_common(top)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to sample under load (default 10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=25, help="functions to list by inclusive share")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("(skipped: py-spy is not installed; `bash scripts/bench.sh` installs it)")
        return
    load = load_wrk if shutil.which("wrk") else load_python
    with tempfile.TemporaryDirectory(prefix=".bench-profile-", dir=Path.cwd()) as tmp_name, seeded_gateway(Path(tmp_name)) as gateway:
        raw = Path(tmp_name) / "profile.txt"
        load(gateway.url, gateway.token, args.connections, 1.0)
        record = ["record", "--pid", str(gateway.proc.pid), "--duration", f"{args.seconds:.0f}", "--rate", "250", "--gil", "--nonblocking"]
        sampler = subprocess.Popen(
            [spy, *record, "--format", "raw", "--output", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        result = load(gateway.url, gateway.token, args.connections, args.seconds)
        _, err = sampler.communicate(timeout=args.seconds + 60)
        if sampler.returncode != 0 or not raw.exists():
            sys.exit(f"py-spy failed: {err.decode(errors='replace').strip()[-500:]}")
        total, stages, functions = summarise(raw, args.top)
        if os.environ.get("BENCH_PROFILE_KEEP"):
            shutil.copy(raw, os.environ["BENCH_PROFILE_KEEP"])
    print(
        f"py-spy profile (GIL holder only) of `gateway serve` under a 4 KiB record GET load, {args.connections} connections, {args.seconds:g} s: "
        f"{result['rps']:,.0f} req/s, p50 {result['p50']:.2f} ms, p99 {result['p99']:.2f} ms; {total:,} samples "
        f"({datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()})"
    )
    print("\n| stage | share of samples |\n|---|---:|")
    for stage, pct in stages:
        print(f"| {stage} | {pct:.1f}% |")
    print("\n| function (inclusive) | share of samples |\n|---|---:|")
    for name, pct in functions:
        print(f"| `{name}` | {pct:.1f}% |")


if __name__ == "__main__":
    main()
