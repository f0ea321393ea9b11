"""A process that appends to a ledger as fast as it can until it is killed (for test_sigkill).

``python -m tests.audit.sigkill_child LEDGER ACKS KEY``: 64 tasks append
concurrently; after each append returns (durable), one ``write`` puts
``<seq> <hash>`` on a line of ACKS, so every acknowledged entry is on record
before the parent's SIGKILL can land.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from gateway.audit import FileLedger
from gateway.keys import load_ed25519_private
from gateway.model import system_clock

WRITERS = 64


async def main(ledger_path: Path, acks_path: Path, key_path: Path) -> None:
    ledger = await FileLedger.open(ledger_path, system_clock, checkpoint_key=load_ed25519_private(key_path), checkpoint_every=50)
    acks = os.open(acks_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def writer(n: int) -> None:
        i = 0
        while True:
            entry = await ledger.append("load.test", {"writer": n, "i": i, "pad": "x" * (n % 7) * 40})
            os.write(acks, f"{entry['seq']} {entry['hash']}\n".encode())
            i += 1

    await asyncio.gather(*(writer(n) for n in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
