"""What every request passes through besides its handler: a request id, an access log line, its metrics.

``create_app`` stacks them outermost first: ``request_ids`` (every line logged
while serving the request carries the id, and the response echoes it),
``access_log`` (one line per request, after the metrics), ``request_metrics``,
then ``problem_middleware`` (``gateway.web.problem``), which turns errors into
problem documents. A redirect passes through: it is counted, not logged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from typing import Any

from aiohttp import web

from gateway.logs import REQUEST_ID as REQUEST_ID_VAR
from gateway.web.problem import Handler
from gateway.web.state import METRICS_KEY, PROBLEM_CODE_KEY, REQUEST_ID_KEY

access_log = logging.getLogger("gateway.access")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}\Z")
# Request ids made here: a random prefix per process and a counter, unique across
# processes and restarts without a random draw per request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"


def route_template(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The caller's ``X-Request-ID`` if well formed, else a new one: bound to every log line of the request and echoed."""
    supplied = request.headers.get("X-Request-ID", "")
    request[REQUEST_ID_KEY] = supplied if REQUEST_ID.match(supplied) else new_request_id()
    bound = REQUEST_ID_VAR.set(request[REQUEST_ID_KEY])
    try:
        response = await handler(request)
    finally:
        REQUEST_ID_VAR.reset(bound)
    response.headers["X-Request-ID"] = request[REQUEST_ID_KEY]
    return response


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per answered request, by route template: the raw path names subjects and record keys."""
    started = time.perf_counter()
    response = await handler(request)
    if access_log.isEnabledFor(logging.INFO):
        elapsed = time.perf_counter() - started
        route, status = route_template(request), response.status
        fields: dict[str, Any] = {"event": "http.request", "method": request.method, "route": route, "status": status, "duration_ms": round(elapsed * 1000, 3)}
        code = request.get(PROBLEM_CODE_KEY)
        if code is not None:
            fields["code"] = code
        for header, name in (("X-Audit-Seq", "audit_seq"), ("X-Residency-Decision", "decision")):
            if header in response.headers:
                fields[name] = response.headers[header]
        access_log.info("%s %s %s", request.method, route, status, extra=fields)
    return response


CLIENT_CLOSED = 499  # as nginx counts a request whose client closed the connection before the answer


@web.middleware
async def request_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Each request's route template, method, status and duration, whether it answered, redirected or was cancelled."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # a redirect: the problem middleware answers every error
        status = exc.status
        raise
    except asyncio.CancelledError:
        if request.transport is None or request.transport.is_closing():
            status = CLIENT_CLOSED  # the client went away mid-request: not a failure of the gateway
        raise
    finally:
        metrics = request.app.get(METRICS_KEY)
        if metrics is not None:
            metrics.http_request(route=route_template(request), method=request.method, status=status, seconds=time.perf_counter() - started)
