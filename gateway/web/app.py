"""The app factory: ``create_app(settings)`` builds everything from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics
from gateway.runtime import Runtime, Settings
from gateway.web import openapi, ops, records
from gateway.web.keys import METRICS_KEY, SETTINGS_KEY, STATE_KEY, AppState
from gateway.web.problem import problem_middleware

# Request bodies above the record limit are refused by the handler with a
# problem document; this is the hard ceiling for any body.
MAX_BODY = 64 * 1024 * 1024


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> web.Application:
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY)
    app[SETTINGS_KEY] = settings
    app[METRICS_KEY] = GatewayMetrics(registry or CollectorRegistry())
    app[STATE_KEY] = AppState()

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings, app[METRICS_KEY])
        app[STATE_KEY].runtime = runtime
        yield
        await runtime.close()

    app.cleanup_ctx.append(runtime_ctx)
    app.add_routes(records.routes)
    app.add_routes(ops.routes)
    app.add_routes(openapi.routes)
    return app
