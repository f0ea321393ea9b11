"""Operations routes: health, readiness, metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.errors import GatewayError
from gateway.web.auth import authenticate
from gateway.web.keys import METRICS_KEY, SETTINGS_KEY, STATE_KEY

routes = web.RouteTableDef()
READY_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    rt = request.app[STATE_KEY].rt
    metrics = request.app[METRICS_KEY]

    async def check(region: str) -> tuple[str, str | None]:
        try:
            await asyncio.wait_for(rt.stores[region].check(), READY_TIMEOUT)
        except TimeoutError:
            return region, f"no answer within {READY_TIMEOUT:g}s"
        except GatewayError as exc:
            return region, exc.message
        return region, None

    results = await asyncio.gather(*(check(r) for r in rt.stores))
    regions = {}
    for region, problem in results:
        metrics.store_up.labels(region).set(0 if problem else 1)
        regions[region] = {"status": "down", "problem": problem} if problem else {"status": "up"}
    down = [r for r, p in results if p]
    status = "ready" if not down else ("degraded" if len(down) < len(results) else "unavailable")
    return web.json_response(
        {"status": status, "config": rt.config.digest, "regions": regions},
        status=200 if status != "unavailable" else 503,
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    if not request.app[SETTINGS_KEY].metrics_public:
        authenticate(request, "ops")
    output = generate_latest(request.app[METRICS_KEY].registry)
    response = web.Response(body=output)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
