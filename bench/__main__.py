"""Run every benchmark and print one Markdown table per benchmark: ``python -m bench``.

Each benchmark runs in its own process with a time limit, so the whole run stays
bounded (under 10 minutes with the defaults on 2 cores). ``--only NAME`` runs one
(repeatable); ``--quick`` shortens each. ``bash scripts/bench.sh`` installs what
they need first.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

BENCHES: dict[str, tuple[list[str], list[str], int]] = {
    # name: (default args, quick args, time limit in seconds)
    "engine": ([], ["--repeat", "10", "--rounds", "2"], 240),
    "dataplane": ([], ["--rounds", "1", "--seconds", "2"], 180),
    "s3plane": ([], ["--quick"], 180),
    "s3large": ([], ["--quick"], 600),
    "s3front": ([], ["--quick"], 180),
    "orders": ([], ["--quick"], 420),
    "fileread": ([], ["--objects", "500", "--rounds", "5"], 120),
    "ledger": (["--seconds", "2"], ["--seconds", "1"], 120),
    "startup": ([], ["--quick"], 240),
    "profile": ([], ["--seconds", "4"], 120),
    "policydiff": ([], ["--rounds", "1"], 300),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(BENCHES), action="append", help="run only this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args()
    started = time.monotonic()
    failed = 0
    for name, (default, quick, limit) in BENCHES.items():
        if args.only and name not in args.only:
            continue
        print(f"## {name}\n", flush=True)
        try:
            done = subprocess.run([sys.executable, "-m", f"bench.{name}", *(quick if args.quick else default)], capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            print(f"(stopped after {limit} s)\n", flush=True)
            failed += 1
            continue
        if done.returncode != 0:
            failed += 1
            print(f"(failed, exit {done.returncode})\n\n```\n{done.stderr.strip()[-2000:]}\n```\n", flush=True)
        else:
            print(done.stdout.strip() + "\n", flush=True)
    print(f"Total {time.monotonic() - started:.0f} s.")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
