"""Operations routes: liveness, readiness, metrics.

- ``/healthz``: the process answers. Nothing else is checked, so a slow store
  never gets a healthy pod killed.
- ``/readyz``: the configuration is loaded, the ledger could take an append now
  (its writer thread writes and fsyncs a probe, ``FileLedger.probe``, adding no
  entry) and each region's store (and the control store) answers within
  ``READY_TIMEOUT``. A region that does not answer is listed as down and makes
  the gateway ``degraded`` (200: the other regions keep serving); only a ledger
  that cannot take appends (``ledger-unavailable``) or every region down makes
  it ``unavailable`` (503). Each probe's result is reused for the cache time, so
  the ledger is ready again, without a restart, at the first probe after its
  writes work again.
  While the process drains after SIGTERM (``gateway.web.drain``) it answers 503
  ``shutting-down`` without probing anything.
- ``/metrics``: the Prometheus exposition; open, or for ops tokens only.

Store checks and the ledger probe are cached per runtime for ``Settings.health_cache_seconds`` and
concurrent probes share one check in flight, so however often kubelets,
load balancers and scrapers ask, a store sees at most one check per interval.
Each scrape of ``/metrics`` refreshes ``gateway_store_up`` through that cache
and the case gauges at most every ``CASES_REFRESH_SECONDS``. ``monitor`` does
the same on a timer without any probe, for an app that registers it as a
``cleanup_ctx``. A store that is down is prepared again by its check
(``HealingStore.check``), so probes and the monitor also heal it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.errors import GatewayError, LedgerError
from gateway.metrics import GatewayMetrics
from gateway.model import parse_time
from gateway.runtime import CONTROL, Runtime
from gateway.web.contract import operation, ref, reply
from gateway.web.drain import DRAIN_KEY
from gateway.web.state import METRICS_KEY, SETTINGS_KEY, STATE_KEY

log = logging.getLogger("gateway.ops")

routes = web.RouteTableDef()
READY_TIMEOUT = 2.0
LEDGER = "/ledger"  # the ledger probe's entry in the health cache (not an identifier, so no region's)
CASES_REFRESH_SECONDS = 30.0


@dataclass(frozen=True)
class Check:
    problem: str | None  # None: up
    at: float  # the health clock (``Health.now``) when it finished

    @property
    def up(self) -> bool:
        return self.problem is None


@dataclass
class Health:
    """Cached health of one runtime's stores and ledger."""

    ttl: float
    now: Callable[[], float] = time.monotonic  # ``Settings.monotonic``: a clock that only moves forward
    checks: dict[str, Check] = field(default_factory=dict)
    inflight: dict[str, asyncio.Future[Check]] = field(default_factory=dict)
    cases_at: float = -1e18

    async def cached(self, name: str, probe: Callable[[], Awaitable[str | None]]) -> Check:
        """The last result if fresher than ``ttl``, else the one check in flight (started if none is)."""
        found = self.checks.get(name)
        if found is not None and self.now() - found.at < self.ttl:
            return found
        future = self.inflight.get(name)
        if future is None:

            async def run() -> Check:
                try:
                    result = Check(await probe(), self.now())
                finally:
                    self.inflight.pop(name, None)
                self.checks[name] = result
                return result

            future = self.inflight[name] = asyncio.ensure_future(run())
        return await asyncio.shield(future)  # one impatient prober must not cancel the others' check


_health: weakref.WeakKeyDictionary[object, Health] = weakref.WeakKeyDictionary()


def health_of(rt: Runtime) -> Health:
    found = _health.get(rt.records)
    if found is None:
        found = _health[rt.records] = Health(ttl=rt.settings.health_cache_seconds, now=rt.settings.monotonic)
    return found


async def _store_problem(check: Callable[[], Awaitable[None]]) -> str | None:
    try:
        await asyncio.wait_for(check(), READY_TIMEOUT)
    except TimeoutError:
        return f"no answer within {READY_TIMEOUT:g}s"
    except GatewayError as exc:
        return exc.message  # a store check names no record
    except Exception as exc:  # a health check reports; it never raises
        return type(exc).__name__
    return None


async def check_stores(rt: Runtime, metrics: GatewayMetrics) -> dict[str, Check]:
    """Every region's store and the control store, through the cache; sets ``gateway_store_up``."""
    health = health_of(rt)
    stores = {**rt.stores, CONTROL: rt.control}
    names = list(stores)
    results = await asyncio.gather(*(health.cached(name, lambda s=stores[name]: _store_problem(s.check)) for name in names))
    checks = dict(zip(names, results, strict=True))
    for name, check in checks.items():
        metrics.store_up.labels(name).set(1 if check.up else 0)
    return checks


async def refresh_cases(rt: Runtime, metrics: GatewayMetrics) -> None:
    """Cases by kind and state, and each kind's nearest active deadline; at most every ``CASES_REFRESH_SECONDS``."""
    cases_service = rt.cases
    health = health_of(rt)
    if health.now() - health.cases_at < CASES_REFRESH_SECONDS:
        return
    health.cases_at = health.now()
    from gateway.services.cases import ACTIVE

    counts: dict[tuple[str, str], int] = {}
    nearest: dict[str, float] = {}
    for case in await cases_service.list():
        kind, state = str(case.get("kind")), str(case.get("state"))
        counts[(kind, state)] = counts.get((kind, state), 0) + 1
        if state in ACTIVE and case.get("deadline"):
            at = parse_time(case["deadline"]).timestamp()
            nearest[kind] = min(at, nearest.get(kind, at))
    metrics.cases_seen(counts=counts, next_deadline=nearest)


async def refresh(rt: Runtime, metrics: GatewayMetrics) -> None:
    """Everything the gauges show that is read rather than counted; failures are logged, never raised."""
    await check_stores(rt, metrics)
    try:
        await refresh_cases(rt, metrics)
    except Exception:
        log.warning("could not count cases for the metrics", exc_info=True)


async def monitor(app: web.Application) -> AsyncIterator[None]:
    """A ``cleanup_ctx`` that refreshes store health and case gauges on a timer, whether or not anything probes.

    Register it after the context that opens the runtime. ``Settings.health_monitor_seconds``
    sets the period; 0 turns it off (probes and scrapes still refresh the gauges).
    """
    period = app[SETTINGS_KEY].health_monitor_seconds
    if period <= 0:
        yield
        return

    async def loop() -> None:
        while True:
            await asyncio.sleep(max(period, app[SETTINGS_KEY].health_cache_seconds, 1.0))
            rt = app[STATE_KEY].runtime
            if rt is not None:
                try:
                    await refresh(rt, app[METRICS_KEY])
                except Exception:
                    log.exception("health refresh failed; retrying next period")

    task = asyncio.create_task(loop(), name="health-monitor")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@routes.get("/healthz")
@operation(
    "healthz",
    summary="Liveness: the process answers (nothing else is checked)",
    roles=(),
    responses={200: reply("alive", {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}})},
)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@operation(
    "readyz",
    summary="Readiness: the ledger, the control store and each region",
    roles=(),
    responses={
        200: reply("`ready`, or `degraded` (some regions or the control store down; the others serve)", ref("Readiness")),
        503: reply("`unavailable` (the ledger cannot take appends, or no region answers) or `shutting-down`", ref("Readiness")),
    },
)
async def readyz(request: web.Request) -> web.Response:
    drain = request.app.get(DRAIN_KEY)
    if drain is not None and drain.draining:  # SIGTERM: load balancers take this pod out while its requests finish
        return web.json_response({"status": "shutting-down"}, status=503)
    rt = request.app[STATE_KEY].rt
    checks = await check_stores(rt, request.app[METRICS_KEY])
    now = health_of(rt).now()

    def shown(check: Check) -> dict[str, Any]:
        age = round(now - check.at, 3)
        return {"status": "up", "checked_seconds_ago": age} if check.up else {"status": "down", "problem": check.problem, "checked_seconds_ago": age}

    control = checks.pop(CONTROL)
    # the ledger's own writer proves it could append now (FileLedger.probe), through the same cache
    ledger_problem = (await health_of(rt).cached(LEDGER, lambda: _store_problem(rt.ledger.probe))).problem
    down = sorted(name for name, check in checks.items() if not check.up)
    if ledger_problem or len(down) == len(checks):
        status = "unavailable"
    elif down or not control.up:
        status = "degraded"
    else:
        status = "ready"
    body = {
        "status": status,
        "config": rt.config.digest,
        "ledger": {"status": "down", "code": LedgerError.code, "problem": ledger_problem} if ledger_problem else {"status": "up"},
        "control": shown(control),
        "regions": {name: shown(check) for name, check in checks.items()},
        "down": down,
    }
    return web.json_response(body, status=503 if status == "unavailable" else 200)


@routes.get("/metrics")
@operation(
    "metrics",
    summary="Prometheus metrics (text exposition); open, unless the configuration asks for an ops token",
    roles=("ops",),
    open_if=lambda settings: settings.metrics_public,
    responses={200: {"description": "the text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: web.Request) -> web.Response:
    gateway_metrics = request.app[METRICS_KEY]
    await refresh(request.app[STATE_KEY].rt, gateway_metrics)
    output = generate_latest(gateway_metrics.exposition())
    response = web.Response(body=output)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
