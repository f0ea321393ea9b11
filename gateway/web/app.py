"""The app factory: ``create_app(settings)`` builds everything from settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics
from gateway.runtime import Runtime, Settings
from gateway.web import cases, console, federation, openapi, ops, orders, records, reports
from gateway.web.drain import DRAIN_KEY, Drain
from gateway.web.middleware import access_log_middleware, request_ids, request_metrics
from gateway.web.problem import problem_middleware
from gateway.web.state import METRICS_KEY, SETTINGS_KEY, STATE_KEY, AppState

log = logging.getLogger("gateway.web")

# Request bodies above the record limit are refused by the handler with a
# problem document; this is the hard ceiling for any body.
MAX_BODY = 64 * 1024 * 1024


async def _sweep_forever(runtime: Runtime) -> None:
    """Release due holds, clear expired console sessions and ask peer gateways again for order items that wait for them,
    on a timer; a failed sweep is logged and retried next time."""
    while True:
        await asyncio.sleep(runtime.settings.sweep_seconds)
        try:
            await runtime.orders.sweep()
            if runtime.federation is not None:
                await runtime.orders.complete_pending()
            await runtime.cases.sweep()
            await runtime.notices.sweep()
            await runtime.sessions.sweep()
        except Exception:
            log.exception("hold sweep failed; retrying in %ss", runtime.settings.sweep_seconds)


async def _reconcile_forever(runtime: Runtime) -> None:
    """Reconcile write intents without an outcome: once at start-up, then on a timer; a failed pass is retried next time.

    In the background, so a region that cannot be read never holds up the start.
    """
    reconciler = runtime.reconciler
    assert reconciler is not None
    every = runtime.settings.reconcile_seconds
    while True:
        try:
            await reconciler.run_once()
        except Exception:
            log.exception("reconcile pass failed; retrying in %ss", every)
        if every <= 0:
            return
        await asyncio.sleep(every)


async def reconcile(app: web.Application) -> AsyncIterator[None]:
    """The background reconciler, for as long as the runtime is open."""
    runtime = app[STATE_KEY].runtime
    task = asyncio.create_task(_reconcile_forever(runtime), name="reconcile") if runtime is not None and runtime.reconciler is not None else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> web.Application:
    # outermost first: the drain sees every request in flight; the request id binds every later log line;
    # the access line is written after the metrics
    drain = Drain()
    middlewares = [drain.track, request_ids, access_log_middleware, request_metrics, problem_middleware]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[DRAIN_KEY] = drain
    app[SETTINGS_KEY] = settings
    app[METRICS_KEY] = GatewayMetrics(registry or CollectorRegistry())
    app[STATE_KEY] = AppState()

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings, app[METRICS_KEY])
        app[STATE_KEY].runtime = runtime
        sweeper = asyncio.create_task(_sweep_forever(runtime)) if settings.sweep_seconds > 0 else None
        yield
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await runtime.close(export_seconds=settings.shutdown_export_seconds)

    app.cleanup_ctx.append(runtime_ctx)
    app.cleanup_ctx.append(reconcile)  # write intents without an outcome, settled against the stores
    app.cleanup_ctx.append(ops.monitor)  # store health and case gauges on a timer, whether or not anything probes
    app.add_routes(records.routes)
    app.add_routes(orders.routes)
    app.add_routes(cases.routes)
    app.add_routes(console.routes)
    app.add_routes(ops.routes)
    app.add_routes(openapi.routes)
    app.add_routes(reports.routes)
    app.add_routes(federation.routes)
    return app
