"""RFC 9457 problem documents, rendered in exactly one place."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from gateway.errors import GatewayError, http_status
from gateway.web.state import PROBLEM_CODE_KEY, REQUEST_ID_KEY

log = logging.getLogger("gateway.web")

PROBLEM_TYPE = "urn:disclosure-gateway:problem:"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    422: "Unprocessable Content",
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


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as a problem document; the code of one made here is left on the request for the access log."""
    try:
        return await handler(request)
    except GatewayError as error:
        status = http_status(error)
        if status >= 500:
            # the code and the region, not the message: a store's message may quote a record key
            safe = {k: v for k, v in error.details.items() if k in ("region", "operation", "peer") and isinstance(v, str)}
            log.error("request failed: %s", error.code, extra={"code": error.code, **safe})
        request[PROBLEM_CODE_KEY] = error.code
        return problem(request, status, error.code, error.message, **error.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(exc.status, "http-error")
        request[PROBLEM_CODE_KEY] = code
        response = problem(request, exc.status, code, exc.reason.lower())
        if "Allow" in exc.headers:  # RFC 9110: a 405 names the methods the resource allows
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error")
        request[PROBLEM_CODE_KEY] = "internal-error"
        return problem(request, 500, "internal-error", "the gateway failed to handle this request; it has been logged")


# --- a failure after the status line is out ------------------------------------------------


@contextlib.contextmanager
def cut_on_failure(request: web.Request) -> Iterator[None]:
    """Around writing a streamed body: the status line and part of the body are already out, so no problem
    document can follow; on a failure the connection is cut, so the client sees a body that never completes
    (a truncated package fails verification) rather than one that looks whole or has an error spliced into it."""
    try:
        yield
    except Exception:
        if request.transport is not None:
            request.transport.close()
        raise


# --- requests the HTTP parser refuses ------------------------------------------------------


def malformed_request(status: int) -> web.Response:
    """The answer to a request aiohttp's parser refused (a request line or header over 8 KiB, a bad header): a problem
    document like every other error (not aiohttp's plain text), naming nothing from the request, on a closed connection."""
    code = "malformed-request"
    detail = "the request line or headers are malformed or over 8190 bytes each; send a well-formed HTTP request"
    body = {"type": PROBLEM_TYPE + code, "title": TITLES.get(status, "Bad Request"), "status": status, "code": code, "detail": detail}
    response = web.json_response(body, status=status, content_type="application/problem+json")
    response.force_close()
    return response


class ProblemRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, whose answer to a request its parser refused is a problem document."""

    __slots__ = ()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)  # logs it (``logs.client_mistakes_are_not_errors``), and may raise
        return malformed_request(status) if 400 <= status < 500 else response


class ProblemServer(web.Server):
    """aiohttp's server, making ``ProblemRequestHandler``s (``drain.serve`` gives its runner's server this class)."""

    def __call__(self) -> web.RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)
