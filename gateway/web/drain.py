"""Serving until SIGTERM or SIGINT, then a graceful shutdown bounded by a drain time.

``serve(app, ...)`` runs the app on a TCP port until the process is told to
stop, then shuts down in this order:

(1) the listening socket closes (new connections are refused), ``/readyz``
    answers 503 ``shutting-down`` to anything still connected, and idle
    keep-alive connections are closed;
(2) requests in flight finish, request bodies still arriving included, for at
    most ``drain_seconds`` (a second signal ends this wait); each answer given
    now closes its connection;
(3) requests still running then are cancelled: their clients get a closed
    connection, and a handler cancelled before its store write stores nothing;
(4) the app's cleanup closes the runtime: pending ledger appends complete and,
    with ``[audit.export]``, the open segment is closed by a checkpoint and
    uploaded, within ``Settings.shutdown_export_seconds``.

Why not ``web.run_app``: aiohttp's own shutdown marks every connection as
closing before it waits for handlers (``Server.pre_shutdown``), and a closing
connection drops the bytes that still arrive on it
(``RequestHandler.data_received``). A body half received at SIGTERM can then
never complete: its handler waits in ``request.read()`` for the whole
``shutdown_timeout`` (60 s), is cancelled, and nothing is stored. Here only
connections with no request in flight are closed; the others keep reading.

``Drain`` is what the app knows of the shutdown: its middleware ``track``
(the outermost) keeps the requests in flight, and ``/readyz`` reads
``draining``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from gateway.web.problem import ProblemServer

log = logging.getLogger("gateway.shutdown")

DRAIN_SECONDS = 20.0  # the default drain time: shorter than a pod's grace period minus its preStop delay (see deploy/k8s)
SETTLE_SECONDS = 0.05  # after the socket closes, before idle connections are told apart from busy ones
# Once the drain time is over: how long cancelled handlers and answers being written get to end
# before aiohttp closes their connections anyway.
CANCEL_SECONDS = 1.0
# The most (3) and aiohttp's closing of connections in (4) take: the wait above, then aiohttp's two waits of it.
CLOSE_BOUND_SECONDS = 3 * CANCEL_SECONDS

SIGNALS = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Drain:
    """The requests in flight and whether the process is draining; one per app."""

    def __init__(self) -> None:
        self.draining = False
        self.inflight: dict[asyncio.Task[object], web.Request] = {}
        self.finished = 0  # requests that ended (answered or failed) since draining began
        self._empty = asyncio.Event()
        self._empty.set()

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Keep the request in ``inflight`` while its handler runs; an answer given while draining closes its connection."""
        task = asyncio.current_task()
        assert task is not None
        self.inflight[task] = request
        self._empty.clear()
        try:
            response = await handler(request)
            if self.draining:
                response.force_close()  # no keep-alive: the connection ends after this answer
            return response
        finally:
            del self.inflight[task]
            if self.draining:
                self.finished += 1
            if not self.inflight:
                self._empty.set()

    def close_idle(self, server: web.Server) -> int:
        """Close every connection with no request in flight (idle keep-alive ones, or a request not begun); return how many."""
        busy = {request.protocol for request in self.inflight.values()}
        idle = [connection for connection in server.connections if connection not in busy]
        for connection in idle:
            connection.close()  # an idle connection closes at once; one writing an answer closes after it
        return len(idle)

    async def wait_empty(self, timeout: float, cut_short: asyncio.Event) -> bool:
        """Wait until no request is in flight, at most ``timeout`` seconds or until ``cut_short`` is set; whether none is left."""
        waits = [asyncio.ensure_future(self._empty.wait()), asyncio.ensure_future(cut_short.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return not self.inflight

    async def cancel_inflight(self) -> int:
        """Cancel the handlers still running and wait (briefly) for them to end; return how many there were."""
        tasks = list(self.inflight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_SECONDS)
        return len(tasks)


DRAIN_KEY = web.AppKey("drain", Drain)


async def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    drain_seconds: float = DRAIN_SECONDS,
    announce: Callable[[str], None] | None = None,
    reuse_port: bool = False,
    fronts: Sequence[tuple[web.Application, int]] = (),
) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM or SIGINT, then drain and close (see the module docstring).

    ``reuse_port`` binds with ``SO_REUSEPORT``, so the workers of ``gateway serve --workers`` share the port.
    ``fronts``: more apps, each on its own port (the S3 front), started after ``app`` (whose start-up opens the
    runtime they use), drained with it and closed before it.
    """
    drain = app[DRAIN_KEY]
    front_runners = [
        (web.AppRunner(front, handle_signals=False, shutdown_timeout=CANCEL_SECONDS), front[DRAIN_KEY], front_port) for front, front_port in fronts
    ]
    loop = asyncio.get_running_loop()
    stop, hurry = asyncio.Event(), asyncio.Event()

    def signalled() -> None:
        if stop.is_set():
            hurry.set()  # a second signal ends the drain now; the runtime still closes
        stop.set()

    for sig in SIGNALS:
        loop.add_signal_handler(sig, signalled)  # from here on: a signal during start-up stops the process once it is up
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=CANCEL_SECONDS)
    try:
        await runner.setup()  # the app's start-up: the runtime opens here
    except BaseException:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        raise
    assert runner.server is not None
    # the same server, answering a request its HTTP parser refuses with a problem document (``problem.ProblemServer``)
    runner.server.__class__ = ProblemServer
    front_sites: list[web.TCPSite] = []
    try:
        for front_runner, _, front_port in front_runners:
            await front_runner.setup()
            front_sites.append(web.TCPSite(front_runner, host, front_port, reuse_port=reuse_port or None))
        for front_site in front_sites:
            await front_site.start()  # before the main site: once /healthz answers, every front listens too
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        if announce is not None:
            announce(f"======== Running on {site.name} ========\n(Press CTRL+C to quit)")
            for front_site in front_sites:
                announce(f"======== S3 front on {front_site.name} ========")
        await stop.wait()

        # (1)
        started = time.monotonic()
        drain.draining = True
        for _, front_drain, _ in front_runners:
            front_drain.draining = True
        await site.stop()
        for front_site in front_sites:
            await front_site.stop()
        # Requests whose headers arrived just before the signal take a few turns of the loop to reach
        # their handler (and so ``inflight``); closing their connection first would drop their bodies.
        await asyncio.sleep(SETTLE_SECONDS)
        assert runner.server is not None
        in_flight = len(drain.inflight) + sum(len(d.inflight) for _, d, _ in front_runners)
        idle = drain.close_idle(runner.server)
        for front_runner, front_drain, _ in front_runners:
            if front_runner.server is not None:
                idle += front_drain.close_idle(front_runner.server)
        log.info(
            "draining: stopped accepting; %d requests in flight, %d idle connections closed; waiting up to %gs",
            in_flight,
            idle,
            drain_seconds,
            extra={"event": "shutdown.draining", "in_flight": in_flight, "idle_closed": idle, "drain_seconds": drain_seconds},
        )
        # (2)
        await drain.wait_empty(drain_seconds, hurry)
        for _, front_drain, _ in front_runners:
            await front_drain.wait_empty(max(0.0, drain_seconds - (time.monotonic() - started)), hurry)
        # (3)
        cancelled = await drain.cancel_inflight()
        for _, front_drain, _ in front_runners:
            cancelled += await front_drain.cancel_inflight()
        elapsed = time.monotonic() - started
        finished = drain.finished + sum(d.finished for _, d, _ in front_runners)
        log.info(
            "drained in %.3fs: %d requests finished, %d cancelled",
            elapsed,
            finished - cancelled,
            cancelled,
            extra={"event": "shutdown.drained", "finished": finished - cancelled, "cancelled": cancelled, "duration_ms": round(elapsed * 1000, 3)},
        )
    finally:
        # (4) aiohttp closes what connections are left, then the app's cleanup closes the runtime
        closing = time.monotonic()
        for front_runner, _, _ in reversed(front_runners):
            await front_runner.cleanup()
        await runner.cleanup()
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        log.info(
            "closed in %.3fs",
            time.monotonic() - closing,
            extra={"event": "shutdown.closed", "duration_ms": round((time.monotonic() - closing) * 1000, 3)},
        )
