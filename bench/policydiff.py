"""The size of the decision space of the shipped policy and the time ``gateway policy diff`` and ``gateway policy prove`` take over it.

Run ``python -m bench.policydiff`` (from the repository root). The shipped
``regions.toml`` is diffed against itself (no change: every point is decided
twice and compared) and against a copy with the EU production order's start
moved a month later (the space gains that date's samples), and its invariants
are proved (every point in some invariant's scope decided once and checked),
``--rounds`` times each; the table gives the points and the median, best and
worst wall time of ``gateway.legal.diff.diff`` and ``gateway.legal.invariants.prove``
(the files are parsed once, outside the timing), and the median CPU time, which
on a shared machine is what the single-threaded run would take alone. The budget for a diff and a
proof of the shipped policy together is 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import cpu_model
from gateway.config import load_config
from gateway.legal.diff import Side, diff
from gateway.legal.invariants import prove

ROOT = Path(__file__).resolve().parent.parent
_EPOC_START = 'compels = "agreement"\nin_force_from = 2026-08-18\n# Art 5(4)'


def _timed(rounds: int, work: Callable[[], tuple[int, str]]) -> tuple[int, str, list[float], list[float]]:
    """Wall and CPU seconds of each round: on a shared machine the CPU time is what the run would take alone (it is single-threaded)."""
    times, cpu = [], []
    points, outcome = 0, ""
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        points, outcome = work()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return points, outcome, times, cpu


def _row(name: str, points: int, outcome: str, times: list[float], cpu: list[float]) -> str:
    return f"| {name} | {points:,} | {outcome} | {statistics.median(times):.1f} | {min(times):.1f} | {max(times):.1f} | {statistics.median(cpu):.1f} |"


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
        "| run | points | result | median s | best s | worst s | median CPU s |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    medians = []
    for name, new in (("diff: shipped against itself", old), ("diff: EPOC start a month later", Side(edited.legal, edited.regions))):

        def differ(new: Side = new) -> tuple[int, str]:
            result = diff(old, new)
            return result.points, f"{result.changed:,} changed"

        points, outcome, times, cpu = _timed(rounds, differ)
        medians.append((statistics.median(times), statistics.median(cpu)))
        lines.append(_row(name, points, outcome, times, cpu))

    def prover() -> tuple[int, str]:
        result = prove(old)
        held = sum(r.holds for r in result.results)
        return result.points, f"{held} of {len(result.results)} invariants hold"

    points, outcome, times, cpu = _timed(rounds, prover)
    lines.append(_row("prove: shipped invariants", points, outcome, times, cpu))
    wall, cpu_s = medians[0][0] + statistics.median(times), medians[0][1] + statistics.median(cpu)
    lines += ["", f"A diff and a proof of the shipped policy: {wall:.1f} s wall, {cpu_s:.1f} s CPU (medians; budget 60 s)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs timed per row (default 3)")
    args = parser.parse_args()
    print(run(args.rounds))


if __name__ == "__main__":
    main()
