"""The size of the decision space of the shipped policy and the time ``gateway policy diff`` takes over it.

Run ``python -m bench.policydiff`` (from the repository root). The shipped
``regions.toml`` is diffed against itself (no change: every point is decided
twice and compared) and against a copy with the EU production order's start
moved a month later (the space gains that date's samples), ``--rounds`` times
each; the table gives the points and the median, best and worst wall time of
``gateway.legal.diff.diff`` (the files are parsed once, outside the timing).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import cpu_model
from gateway.config import load_config
from gateway.legal.diff import Side, diff

ROOT = Path(__file__).resolve().parent.parent
_EPOC_START = 'compels = "agreement"\nin_force_from = 2026-08-18\n# Art 5(4)'


def run(rounds: int) -> str:
    shipped = load_config(ROOT / "regions.toml")
    text = (ROOT / "regions.toml").read_text()
    with tempfile.TemporaryDirectory() as folder:
        later = Path(folder) / "regions.toml"
        later.write_text(text.replace(_EPOC_START, _EPOC_START.replace("2026-08-18", "2026-09-18")))
        edited = load_config(later)
    old = Side(shipped.legal, shipped.regions)
    lines = [
        f"Decision space of the shipped policy, {rounds} rounds ({datetime.now(UTC).date().isoformat()}, {cpu_model()}, Python {platform.python_version()})",
        "",
        "| diff | points | changed | median s | best s | worst s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, new in (("shipped against itself", old), ("EPOC start a month later", Side(edited.legal, edited.regions))):
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            result = diff(old, new)
            times.append(time.perf_counter() - started)
        lines.append(f"| {name} | {result.points:,} | {result.changed:,} | {statistics.median(times):.1f} | {min(times):.1f} | {max(times):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="diffs timed per pair (default 3)")
    args = parser.parse_args()
    print(run(args.rounds))


if __name__ == "__main__":
    main()
