"""The API contract, declared beside each handler: ``@operation(...)``.

A route's declaration is the one source of what it is: its ``operationId``,
the roles that may call it (enforced here, before the handler runs, and
rendered as the operation's security), its parameters, request body, the
responses it answers with their schemas and headers, and the statuses it
answers with a problem document. ``gateway.web.openapi`` builds the OpenAPI
document from the declarations of the routes the app serves, so a route
cannot be served undescribed, nor described unserved
(``tests/web/test_openapi_contract.py``).

The console (``/console/``) is HTML for people, signed in by a session
cookie; it is not part of this contract.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.runtime import Settings
from gateway.web.auth import authenticate
from gateway.web.state import SETTINGS_KEY

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPERATION_ATTR = "__operation__"
ROLES = ("service", "intake", "legal", "ops", "support")
# How a caller proves who it is: ``bearer``, a token of this gateway's token issuer; ``federation``, a
# peer gateway's token for one request it forwards, carrying the original caller (``gateway.federation``)
SCHEMES = ("bearer", "federation")
BEARER = ("bearer",)


@dataclass(frozen=True)
class Operation:
    """One route as the contract states it.

    ``roles``: who may call it; empty: anyone, with or without a token.
    ``schemes``: the tokens it takes: ``bearer`` (this gateway's callers), ``federation`` (a request a peer gateway
    forwards for its caller, whose role is the one checked), or both.
    ``open_if``: a setting under which the route is open after all (``/metrics``).
    ``responses``: the statuses answered with a body of their own, as OpenAPI response objects.
    ``problems``: the statuses answered with a problem document (``application/problem+json``).
    """

    id: str
    summary: str
    roles: tuple[str, ...]
    description: str = ""
    parameters: tuple[Mapping[str, Any], ...] = ()
    body: Mapping[str, Any] | None = None
    responses: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    problems: tuple[int, ...] = ()
    open_if: Callable[[Settings], bool] | None = None
    schemes: tuple[str, ...] = BEARER

    def is_open(self, settings: Settings) -> bool:
        return not self.roles or (self.open_if is not None and self.open_if(settings))


def operation(
    id: str,
    *,
    summary: str,
    roles: tuple[str, ...],
    description: str = "",
    parameters: tuple[Mapping[str, Any], ...] = (),
    body: Mapping[str, Any] | None = None,
    responses: Mapping[int, Mapping[str, Any]],
    problems: tuple[int, ...] = (),
    open_if: Callable[[Settings], bool] | None = None,
    schemes: tuple[str, ...] = BEARER,
) -> Callable[[Handler], Handler]:
    """Declare a handler's contract; the caller is authenticated for ``roles`` before the handler runs.

    Put it under the route decorator, so the route serves the declared handler. An authenticated
    route's problems always include 401 and 403, and one that takes parameters or a body 400.
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    if not schemes or set(schemes) - set(SCHEMES):
        raise ValueError(f"schemes must be some of {SCHEMES}, not {schemes}")
    if roles:
        problems = (*problems, 401, 403)
    if parameters or body is not None:
        problems = (*problems, 400)  # a malformed parameter or body, or a request line over the parser's limit
    problems = tuple(sorted(set(problems)))
    declared = Operation(id, summary, roles, description, parameters, body, responses, problems, open_if, schemes)

    def declare(handler: Handler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            if not declared.is_open(request.app[SETTINGS_KEY]):
                authenticate(request, *declared.roles, schemes=declared.schemes)
            return await handler(request)

        handle.__name__ = handler.__name__
        handle.__doc__ = handler.__doc__
        setattr(handle, OPERATION_ATTR, declared)
        return handle

    return declare


def declared(handler: object) -> Operation | None:
    """The operation a handler was declared with, if any."""
    found = getattr(handler, OPERATION_ATTR, None)
    return found if isinstance(found, Operation) else None


# --- building blocks ---------------------------------------------------------------------


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: Mapping[str, Any], media_type: str = "application/json") -> dict[str, Any]:
    return {"content": {media_type: {"schema": dict(schema)}}}


def json_request(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"required": True, **json_content(schema)}


def reply(
    description: str, schema: Mapping[str, Any] | None = None, *, headers: Mapping[str, Any] | None = None, media_type: str = "application/json"
) -> dict[str, Any]:
    """A response object: a JSON body of ``schema`` (none if None), with ``headers``."""
    found: dict[str, Any] = {"description": description}
    if schema is not None:
        found |= json_content(schema, media_type)
    if headers:
        found["headers"] = dict(headers)
    return found


def header(description: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": dict(schema or {"type": "string"})}


def path_param(name: str, pattern: str, description: str = "", *, example: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}
    if description:
        found["description"] = description
    if example is not None:
        found["example"] = example
    return found


def query_param(name: str, schema: Mapping[str, Any], description: str = "", *, required: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "in": "query", "required": required, "schema": dict(schema)}
    if description:
        found["description"] = description
    return found


BINARY = {"type": "string", "format": "binary"}
IDENTIFIER = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SUBJECT_PATH = path_param("subject", IDENTIFIER, "the subject (customer account) id", example="cust-1042")
KEY_PATH = path_param("key", IDENTIFIER, "the record's key", example="invoice-2026-11.json")
CASE_PATH = path_param("case", "^case-[0-9a-f]{16}$", "a case id")
ORDER_PATH = path_param("order", "^[^/]{1,256}$", "the order's id (its `jti`)")
AUTHORITY_QUERY = query_param("authority", {"type": "string"}, "needed when two authorities used the same order id")
LIMIT_QUERY = query_param(
    "limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "items per page; outside 1..1000 is 400 `invalid-request`"
)
CURSOR_QUERY = query_param(
    "cursor",
    {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,2048}$"},
    "the `next_cursor` of the previous page, as it was (opaque); one the gateway did not make for this list is 400 `invalid-cursor`",
)
NEXT_CURSOR = {"type": ["string", "null"], "description": "pass as `cursor` for the next page; null on the last page"}
ETAG = header('the SHA-256 of the record\'s body, quoted: `"<sha256>"`')
AUDIT_SEQ = header("the sequence number of the read's entry in the audit ledger", {"type": "string", "pattern": "^[0-9]+$"})
