"""The OpenAPI 3.1 document (`GET /openapi.json`), built from the routes the app serves.

Each operation is what its handler declares (``gateway.web.contract.operation``);
this module adds the shared schemas, the problem responses and each
operation's security as the running settings make it (``/metrics`` is open
unless it needs an ops token).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

import gateway
from gateway.runtime import Settings
from gateway.web.contract import Operation, declared, header, operation, ref, reply
from gateway.web.state import SETTINGS_KEY

routes = web.RouteTableDef()

COUNTRY = {"type": "string", "pattern": "^[A-Z]{2}$", "description": "an assigned ISO 3166-1 alpha-2 code"}
TIME = {"type": "string", "format": "date-time"}
OPTIONAL_TIME = {"type": ["string", "null"], "format": "date-time"}
OPTIONAL_STRING = {"type": ["string", "null"]}
STRINGS = {"type": "array", "items": {"type": "string"}}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `code` is stable, `detail` says what to fix",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "code": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "request_id": {"type": ["string", "null"]},
            "outcome": {"type": "string"},
            "reasons": {"type": "array", "items": ref("Reason")},
        },
    },
    "Reason": {
        "type": "object",
        "required": ["code"],
        "properties": {"code": {"type": "string"}, "rule": {"type": "string"}, "detail": {"type": "string"}},
    },
    "Subject": {
        "type": "object",
        "description": "what the gateway knows of a subject; a fact not known is null or left out",
        "required": ["home_region", "residence"],
        "additionalProperties": False,
        "properties": {
            "home_region": {"type": "string"},
            "residence": COUNTRY,
            "nationality": {**COUNTRY, "type": ["string", "null"]},
            "us_person": {"type": ["boolean", "null"]},
            "location": {**COUNTRY, "type": ["string", "null"]},
        },
    },
    "SubjectView": {
        "type": "object",
        "required": ["subject", "home_region", "residence", "nationality", "us_person", "location"],
        "properties": {
            "subject": {"type": "string"},
            "home_region": {"type": "string"},
            "residence": {"type": "string"},
            "nationality": OPTIONAL_STRING,
            "us_person": {"type": ["boolean", "null"]},
            "location": OPTIONAL_STRING,
        },
    },
    "Tag": {
        "type": "object",
        "description": "the residency tag the gateway sealed onto the record",
        "required": ["v", "region", "jurisdiction", "subject", "key", "category", "sha256", "size", "written_at"],
        "properties": {
            "v": {"type": "integer"},
            "region": {"type": "string"},
            "jurisdiction": {"type": "string"},
            "subject": {"type": "string"},
            "key": {"type": "string"},
            "category": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": "integer", "minimum": 0},
            "written_at": TIME,
        },
    },
    "RecordMeta": {
        "type": "object",
        "required": ["subject", "key", "category", "region", "sha256", "size", "written_at", "legal_hold"],
        "properties": {
            "subject": {"type": "string"},
            "key": {"type": "string"},
            "category": {"type": "string"},
            "region": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": "integer", "minimum": 0},
            "written_at": TIME,
            "legal_hold": {"type": "boolean"},
            "object_size": {
                "type": "integer",
                "minimum": 0,
                "description": "present when the record is the manifest of an object written through the S3 front in chunks: the object's size",
            },
        },
    },
    "DecisionItem": {
        "type": "object",
        "description": "the decision on one (subject, region, category) of an order, and its state now",
        "required": ["subject", "outcome", "reasons"],
        "properties": {
            "subject": {"type": "string"},
            "region": OPTIONAL_STRING,
            "category": OPTIONAL_STRING,
            "outcome": {
                "type": "string",
                "enum": ["disclose", "hold", "preserve", "route-mlat", "legal-review", "refuse", "no-data", "pending"],
                "description": "`pending`: a peer gateway that owns the subject's region has not answered yet; asked again on a timer",
            },
            "basis": OPTIONAL_STRING,
            "reasons": {"type": "array", "items": ref("Reason")},
            "obligations": {"type": "object"},
            "rule": {"type": "string"},
            "records": {"type": "array", "items": {"type": "object"}},
            "record_count": {"type": "integer", "minimum": 0},
            "state": {"type": "string"},
            "case": {"type": "string"},
            "trace": STRINGS,
            "peer": {"type": "string", "description": "the peer gateway that owns the subject's region and decides this item"},
            "peer_order": {"type": "string", "description": "the peer's own decision document for this order (its state now)"},
            "peer_package": {"type": "string", "description": "where the peer's package of the records it discloses is"},
        },
    },
    "DecisionDocument": {
        "type": "object",
        "description": "a decided order: ids, hashes and decisions, never record content",
        "required": ["id", "authority", "instrument", "subjects", "categories", "received_at", "items"],
        "properties": {
            "id": {"type": "string"},
            "authority": {"type": "string"},
            "served_by": OPTIONAL_STRING,
            "instrument": {"type": "string"},
            "subjects": STRINGS,
            "categories": STRINGS,
            "received_at": TIME,
            "expires_at": OPTIONAL_TIME,
            "nondisclosure_until": OPTIONAL_STRING,
            "case_ref": OPTIONAL_STRING,
            "renews": OPTIONAL_STRING,
            "fingerprint": OPTIONAL_STRING,
            "items": {"type": "array", "items": ref("DecisionItem")},
            "summary": {"type": "object", "additionalProperties": {"type": "integer"}},
            "package": {
                "type": "object",
                "required": ["available", "records", "href"],
                "properties": {"available": {"type": "boolean"}, "records": {"type": "integer"}, "href": {"type": "string"}},
            },
            "trace": STRINGS,
            "explain": {"type": "object", "properties": {"at": TIME, "side_effects": {"type": "boolean", "const": False}}},
        },
    },
    "Case": {
        "type": "object",
        "description": "a cross-border exception, hold or support-access request, as legal reviews it",
        "required": ["id", "kind", "state", "subject", "region", "deadline", "approvals", "objections", "history"],
        "properties": {
            "id": {"type": "string", "pattern": "^case-[0-9a-f]{16}$"},
            "kind": {"type": "string", "enum": ["legal-review", "hold", "lockbox"]},
            "state": {"type": "string"},
            "order": OPTIONAL_STRING,
            "authority": OPTIONAL_STRING,
            "instrument": {"type": "string"},
            "subject": {"type": "string"},
            "region": {"type": "string"},
            "categories": STRINGS,
            "outcome": {"type": "string"},
            "reasons": {"type": "array", "items": ref("Reason")},
            "deadline": OPTIONAL_TIME,
            "assignee": OPTIONAL_STRING,
            "approvals": {"type": "array", "items": {"type": "object"}},
            "objections": {"type": "array", "items": {"type": "object"}},
            "history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["at", "by", "action"],
                    "properties": {"at": TIME, "by": {"type": "string"}, "action": {"type": "string"}},
                },
            },
            "created_at": TIME,
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "degraded", "unavailable", "shutting-down"]},
            "config": {"type": "string"},
            "ledger": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["up", "down"]}}},
            "control": {"type": "object"},
            "regions": {"type": "object", "additionalProperties": {"type": "object", "required": ["status"]}},
            "down": STRINGS,
        },
    },
}

# what each problem status means on any operation, and the headers it carries
PROBLEM_STATUSES: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("the request is malformed: the problem's `code` says what to fix", {}),
    401: (
        "no valid bearer token (missing, expired, not yet valid, wrong audience or signature)",
        {"WWW-Authenticate": header("`Bearer realm=\"disclosure-gateway\"`")},
    ),
    403: ("the token's role or identity may not do this", {}),
    404: ("not found", {}),
    409: ("conflicts with the current state (a legal hold, a case already closed, a write race that did not settle)", {}),
    412: (
        "`precondition-failed`: the record's current version does not meet `If-Match` / `If-None-Match`; its `ETag` is the current one, if the record exists",
        {"ETag": header("the current record's entity tag")},
    ),
    413: ("the body is over this route's limit", {}),
    422: ("the order was refused: the problem carries the decision (`outcome`, `reasons`)", {}),
    451: (
        "refused for a legal reason (RFC 7725): the problem's `reasons` say which rule",
        {"Link": header("`<urn:disclosure-gateway>; rel=\"blocked-by\"`")},
    ),
    503: ("a store or the audit ledger cannot be reached; nothing was done that is not audited", {}),
}


def _problem_response(status: int) -> dict[str, Any]:
    description, headers = PROBLEM_STATUSES[status]
    return reply(description, ref("Problem"), headers=headers, media_type="application/problem+json")


def render(op: Operation, settings: Settings) -> dict[str, Any]:
    """One operation object, its security as ``settings`` make it."""
    is_open = op.is_open(settings)
    problems = [s for s in op.problems if not (is_open and s in (401, 403))]
    found: dict[str, Any] = {"operationId": op.id, "summary": op.summary}
    if op.description:
        found["description"] = op.description
    if op.parameters:
        found["parameters"] = [dict(p) for p in op.parameters]
    if op.body is not None:
        found["requestBody"] = dict(op.body)
    found["responses"] = {str(s): dict(r) for s, r in sorted(op.responses.items())} | {str(s): _problem_response(s) for s in problems}
    found["security"] = [] if is_open else [{scheme: []} for scheme in op.schemes]
    if not is_open:
        found["x-roles"] = list(op.roles)  # who may call it
    return found


def build(app: web.Application) -> dict[str, Any]:
    """The document for the routes ``app`` serves; routes without a declaration (the console's pages) are not in it."""
    settings = app[SETTINGS_KEY]
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        op = declared(route.handler)
        if op is None or route.method == "HEAD":
            continue
        paths.setdefault(route.resource.canonical, {})[route.method.lower()] = render(op, settings)  # type: ignore[union-attr]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Disclosure gateway",
            "version": gateway.__version__,
            "description": "Every error is an RFC 9457 problem document with a stable `code`. The legal console at `/console/` "
            "is HTML for people, signed in with a session; it is not part of this contract.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "a token of this gateway's token issuer"},
                "federation": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "a peer gateway's federation token (JWT `typ` `federation+jwt`), for the one request it forwards; "
                    "it carries the original caller, whose role is the one checked",
                },
            },
            "schemas": SCHEMAS,
        },
        "paths": dict(sorted(paths.items())),
    }


@routes.get("/openapi.json")
@operation(
    "getOpenapi",
    summary="This OpenAPI document",
    roles=(),
    responses={200: reply("the OpenAPI 3.1 document", {"type": "object", "required": ["openapi", "paths"]})},
)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build(request.app))
