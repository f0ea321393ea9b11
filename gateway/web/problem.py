"""RFC 9457 problem documents, rendered in exactly one place."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.errors import GatewayError, http_status
from gateway.logs import REQUEST_ID as REQUEST_ID_VAR
from gateway.web.keys import METRICS_KEY, REQUEST_ID_KEY

log = logging.getLogger("gateway.web")
access_log = logging.getLogger("gateway.access")

PROBLEM_TYPE = "urn:disclosure-gateway:problem:"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}\Z")
# Request ids made here: a random prefix per process and a counter, unique across
# processes and restarts without a random draw per request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    451: "Unavailable For Legal Reasons",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(request: web.Request, status: int, code: str, detail: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
        "instance": request.path,
        "request_id": request.get(REQUEST_ID_KEY),
    }
    body.update(extra)
    response = web.json_response(body, status=status, content_type="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="disclosure-gateway"'
    if status == 451:
        # RFC 7725: identify who implements the block
        response.headers["Link"] = '<urn:disclosure-gateway>; rel="blocked-by"'
    return response


def route_template(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    supplied = request.headers.get("X-Request-ID", "")
    request[REQUEST_ID_KEY] = supplied if REQUEST_ID.match(supplied) else new_request_id()
    bound = REQUEST_ID_VAR.set(request[REQUEST_ID_KEY])  # every log line of this request carries the id
    started = time.perf_counter()
    status = 500
    code: str | None = None
    try:
        response = await handler(request)
        status = response.status
    except GatewayError as error:
        status = http_status(error)
        code = error.code
        if status >= 500:
            # the code and the region, not the message: a store's message may quote a record key
            safe = {k: v for k, v in error.details.items() if k in ("region", "operation") and isinstance(v, str)}
            log.error("request failed: %s", error.code, extra={"code": error.code, **safe})
        response = problem(request, status, error.code, error.message, **error.details)
    except web.HTTPException as exc:
        status = exc.status
        if status < 400:
            REQUEST_ID_VAR.reset(bound)
            raise
        code = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(status, "http-error")
        response = problem(request, status, code, exc.reason.lower())
    except Exception:
        code = "internal-error"
        log.exception("unhandled error")
        response = problem(request, 500, "internal-error", "the gateway failed to handle this request; it has been logged")
    finally:
        elapsed = time.perf_counter() - started
        route = route_template(request)
        metrics = request.app.get(METRICS_KEY)
        if metrics is not None:
            metrics.http_request(route=route, method=request.method, status=status, seconds=elapsed)
    if access_log.isEnabledFor(logging.INFO):
        _log_access(request, response, route, status, code, elapsed)
    REQUEST_ID_VAR.reset(bound)
    response.headers["X-Request-ID"] = request[REQUEST_ID_KEY]
    return response


def _log_access(request: web.Request, response: web.StreamResponse, route: str, status: int, code: str | None, elapsed: float) -> None:
    # One line per request, by route template: the raw path names subjects and record keys.
    fields: dict[str, Any] = {"event": "http.request", "method": request.method, "route": route, "status": status, "duration_ms": round(elapsed * 1000, 3)}
    if code is not None:
        fields["code"] = code
    for header, name in (("X-Audit-Seq", "audit_seq"), ("X-Residency-Decision", "decision")):
        if header in response.headers:
            fields[name] = response.headers[header]
    access_log.info("%s %s %s", request.method, route, status, extra=fields)
