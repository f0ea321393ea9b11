"""``gateway serve --workers N``: N worker processes sharing one port, supervised by the parent.

Each worker is a ``gateway serve`` of its own (a fresh interpreter, nothing
inherited but the environment) that binds the port with ``SO_REUSEPORT``, so
the kernel spreads new connections over the workers. Each writes its own
ledger chain, ``<chain>-w<n>`` (``gateway.audit.chain``), and so its own
file: two workers never share one.

The parent serves nothing. It:

(1) starts the workers;
(2) restarts a worker that exits while the parent is not stopping, with the
    same chain id, so the new process continues the chain and reconciles
    the write intents its predecessor left open; a worker that keeps dying
    within ``STEADY_SECONDS`` of its start is restarted after a back-off
    that doubles up to ``MAX_BACKOFF_SECONDS``;
(3) on SIGTERM or SIGINT forwards the signal to every worker, each of which
    drains and closes as ``gateway.web.drain.serve`` says (a second signal
    is forwarded too, and ends their drains at once), and restarts none;
(4) exits once every worker has exited: 0 if each exited 0, else 1.

The workers run in their own process groups, so a Ctrl-C at a terminal
reaches the parent alone, which passes it on once (twice would end the
drain). Stop the parent, not the workers: a SIGKILL to the parent alone
leaves its workers serving (in a container the whole container stops with
its first process, workers included).

Metrics: the workers run with prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, a folder the parent makes and removes), so
``/metrics`` on the shared port shows the sum of every worker's counters and
histograms, whichever worker answers the scrape (``GatewayMetrics.exposition``);
the parent drops a dead worker's gauges (``mark_process_dead``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.web.drain import SIGNALS

log = logging.getLogger("gateway.workers")

STEADY_SECONDS = 10.0  # a worker that ran this long before it exited is restarted at once
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0


@dataclass
class Worker:
    """One worker: its number, chain id and command line, and its process while it runs."""

    number: int
    chain: str
    command: Sequence[str]
    process: asyncio.subprocess.Process | None = None
    exits: list[int] = field(default_factory=list)  # every exit code, restarts included

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)


async def supervise(workers: Sequence[Worker], *, env: Mapping[str, str], metrics_dir: str | None = None) -> int:
    """Run ``workers`` until a signal stops them all (see the module docstring); 0 if each last exited 0."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    received: list[int] = []

    def signalled(sig: int) -> None:
        # (3)
        received.append(sig)
        stopping.set()
        for worker in workers:
            worker.signal(sig)

    for sig in SIGNALS:
        loop.add_signal_handler(sig, signalled, sig)
    try:
        # (1)
        codes = await asyncio.gather(*(_keep(worker, env, stopping, received, metrics_dir) for worker in workers))
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
    # (4)
    log.info("every worker has exited: %s", ", ".join(f"w{w.number} {code}" for w, code in zip(workers, codes, strict=True)), extra={"event": "workers.exited"})
    return 0 if all(code == 0 for code in codes) else 1


async def _keep(worker: Worker, env: Mapping[str, str], stopping: asyncio.Event, received: list[int], metrics_dir: str | None) -> int:
    """Run one worker, and run it again when it exits unasked (2); its last exit code."""
    backoff = FIRST_BACKOFF_SECONDS
    while True:
        started = time.monotonic()
        # its own process group: a Ctrl-C at a terminal reaches the parent alone, which passes it on once
        worker.process = await asyncio.create_subprocess_exec(*worker.command, env=dict(env), process_group=0)
        log.info("worker w%d started (pid %d, ledger chain `%s`)", worker.number, worker.process.pid, worker.chain, extra={"event": "workers.started"})
        for sig in received:  # a signal that came while it was being started
            worker.signal(sig)
        code = await worker.process.wait()
        worker.exits.append(code)
        if metrics_dir is not None:
            _forget_metrics(worker.process.pid, metrics_dir)
        if stopping.is_set():
            return code
        # (2)
        backoff = FIRST_BACKOFF_SECONDS if time.monotonic() - started >= STEADY_SECONDS else min(backoff * 2, MAX_BACKOFF_SECONDS)
        log.warning(
            "worker w%d (ledger chain `%s`) exited with %d; restarting it in %gs",
            worker.number,
            worker.chain,
            code,
            backoff,
            extra={"event": "workers.restart", "code": str(code)},
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=backoff)
        if stopping.is_set():
            return code


def _forget_metrics(pid: int, directory: str) -> None:
    """Drop a dead worker's live gauges from the multiprocess folder (its counters stay: totals never go back)."""
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)
    except OSError:
        log.warning("could not drop the metrics of a dead worker", exc_info=True)


def worker_chain(base: str, number: int) -> str:
    """Worker ``number``'s chain id: ``<base>-w<number>``, the base shortened to keep the id within 100 characters."""
    suffix = f"-w{number}"
    return base[: 100 - len(suffix)] + suffix


def environment(metrics_dir: str | None) -> dict[str, str]:
    """The workers' environment: this process's, with the multiprocess metrics folder."""
    env = dict(os.environ)
    if metrics_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    return env
