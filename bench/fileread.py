"""File store reads on the event loop: microseconds per small object, for ``get`` and ``get_bodies``.

Run ``python -m bench.fileread`` (from the repository root). It stores
``--objects`` objects of ``--size`` bytes (4 KiB by default, a typical
record) in a fresh ``FileStore`` in a temporary folder, reads them all once
to warm the page cache, then for ``--rounds`` rounds times one ``get`` of
each and one ``get_bodies`` of all of them (in slices of ``--batch`` keys, as
a package fetches them), and prints the median per object, in CPU time (the
process's, so other work on a shared machine counts less; every read is small
enough to run on the event loop, so no worker thread's time is left out).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from bench.machine import cpu_model
from gateway.stores import FileStore


async def measure(objects: int, size: int, rounds: int, batch: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=".bench-fileread-", dir=Path.cwd()) as tmp:
        store = FileStore("bench", Path(tmp) / "store")
        await store.open()
        keys = [f"subjects/s{n // 10}/records/r{n}" for n in range(objects)]
        for key in keys:
            await store.put(key, os.urandom(size), {"residency-region": "bench"})
        await store.get_bodies(keys)
        gets, bulks = [], []
        for _ in range(rounds):
            started = time.process_time()
            for key in keys:
                await store.get(key)
            gets.append((time.process_time() - started) / objects)
            started = time.process_time()
            for at in range(0, objects, batch):
                await store.get_bodies(keys[at : at + batch])
            bulks.append((time.process_time() - started) / objects)
        return {"get": statistics.median(gets) * 1e6, "get_bodies": statistics.median(bulks) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096, help="bytes per object (default 4096)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=256, help="keys per get_bodies call (default 256, a package's batch)")
    args = parser.parse_args()
    result = asyncio.run(measure(args.objects, args.size, args.rounds, args.batch))
    print(
        f"{args.objects:,} objects of {args.size:,} bytes, file store, reads on the event loop "
        f"({os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()})\n\n"
        "| get CPU µs/object | get_bodies CPU µs/object |\n|---:|---:|\n"
        f"| {result['get']:.1f} | {result['get_bodies']:.1f} |\n\n"
        f"Medians over {args.rounds} rounds."
    )


if __name__ == "__main__":
    main()
