"""The OpenAPI 3.1 description of the routes this gateway serves (`GET /openapi.json`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

import gateway

routes = web.RouteTableDef()

PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "problem document", **PROBLEM} for s in statuses}


SUBJECT_PATH = {"name": "subject", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}}
KEY_PATH = {"name": "key", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}}

IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": 'act only if the record exists and its `ETag` (`"<sha256 of the body>"`) is one of these; `*`: if it exists',
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "enum": ["*"]},
    "description": "`*`: create only, never overwrite",
}
ETAG_HEADER = {"ETag": {"description": 'the SHA-256 of the record\'s body, quoted: `"<sha256>"`', "schema": {"type": "string"}}}
PRECONDITION_FAILED = {
    "412": {
        "description": "`precondition-failed`: the record's current version does not meet `If-Match` / `If-None-Match`; "
        "its `ETag` header is the current one, if the record exists",
        "headers": ETAG_HEADER,
        **PROBLEM,
    }
}

CASE_PATH = {"name": "case", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^case-[0-9a-f]{16}$"}}
ORDER_PATH = {"name": "order", "in": "path", "required": True, "schema": {"type": "string"}}
AUTHORITY_QUERY = {
    "name": "authority",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "needed when two authorities used the same order id",
}
LIMIT_QUERY = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    "description": "items per page; outside 1..1000 is 400 `invalid-request`",
}
CURSOR_QUERY = {
    "name": "cursor",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "maxLength": 2048},
    "description": "the `next_cursor` of the previous page, as it was (opaque); one the gateway did not make for this list is 400 `invalid-cursor`",
}
NEXT_CURSOR = {"type": ["string", "null"], "description": "pass as `cursor` for the next page; null on the last page"}
CASE_FILTERS = [
    {"name": "state", "in": "query", "required": False, "schema": {"type": "string"}, "description": "a case state, e.g. `open`, `holding`"},
    {"name": "jurisdiction", "in": "query", "required": False, "schema": {"type": "string", "pattern": "^[A-Z]{2}$"}, "description": "issuing country"},
    {"name": "region", "in": "query", "required": False, "schema": {"type": "string"}, "description": "storage region"},
    {"name": "instrument", "in": "query", "required": False, "schema": {"type": "string"}, "description": "instrument id"},
]
EXPLAIN_BODY = {"type": "object", "required": ["order"], "properties": {"order": {"type": "string"}, "at": {"type": "string"}}}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Disclosure gateway", "version": gateway.__version__},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "code", "detail"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "code": {"type": "string"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                    "request_id": {"type": "string"},
                    "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
                },
            },
            "Reason": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "rule": {"type": "string"}, "detail": {"type": "string"}},
            },
            "Subject": {
                "type": "object",
                "required": ["home_region", "residence"],
                "additionalProperties": False,
                "properties": {
                    "home_region": {"type": "string"},
                    "residence": {"type": "string", "pattern": "^[A-Z]{2}$"},
                    "nationality": {"type": ["string", "null"], "pattern": "^[A-Z]{2}$"},
                    "us_person": {"type": ["boolean", "null"]},
                    "location": {"type": ["string", "null"], "pattern": "^[A-Z]{2}$"},
                },
            },
            "RecordMeta": {
                "type": "object",
                "properties": {
                    "subject": {"type": "string"},
                    "key": {"type": "string"},
                    "category": {"type": "string"},
                    "region": {"type": "string"},
                    "sha256": {"type": "string"},
                    "size": {"type": "integer"},
                    "written_at": {"type": "string", "format": "date-time"},
                    "legal_hold": {"type": "boolean"},
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/subjects/{subject}": {
            "put": {
                "summary": "Register a subject in its home region",
                "parameters": [SUBJECT_PATH],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Subject"}}}},
                "responses": {"200": {"description": "updated"}, "201": {"description": "registered"}, **_problems(400, 401, 403, 409, 503)},
            }
        },
        "/v1/subjects/{subject}/records/{key}": {
            "put": {
                "summary": "Store a record in the subject's home region",
                "description": "The write's intent is in the audit ledger before the store is touched: a 503 `ledger-unavailable` means "
                "nothing was stored. 201 is answered once per creation; concurrent writers of one key are applied one at a time; "
                "409 `write-conflict` when other gateways kept changing the key (retry).",
                "parameters": [
                    SUBJECT_PATH,
                    KEY_PATH,
                    {"name": "category", "in": "query", "required": True, "schema": {"type": "string"}},
                    IF_MATCH,
                    IF_NONE_MATCH,
                ],
                "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {
                    "200": {"description": "overwritten", "headers": ETAG_HEADER},
                    "201": {"description": "stored", "headers": ETAG_HEADER},
                    **_problems(400, 401, 403, 404, 409, 413, 451, 503),
                    **PRECONDITION_FAILED,
                },
            },
            "get": {
                "summary": "Read a record if residency allows",
                "parameters": [SUBJECT_PATH, KEY_PATH],
                "responses": {
                    "200": {
                        "description": "the record",
                        "headers": ETAG_HEADER,
                        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **_problems(401, 403, 404, 451, 503),
                },
            },
            "delete": {
                "summary": "Erase a record (refused with 409 `legal-hold` while a legal hold is on it)",
                "parameters": [SUBJECT_PATH, KEY_PATH, IF_MATCH],
                "responses": {"204": {"description": "erased"}, **_problems(400, 401, 403, 404, 409, 451, 503), **PRECONDITION_FAILED},
            },
        },
        "/v1/subjects/{subject}/records": {
            "get": {
                "summary": "List record metadata, by key, a page at a time",
                "parameters": [SUBJECT_PATH, LIMIT_QUERY, CURSOR_QUERY],
                "responses": {
                    "200": {
                        "description": "record metadata; `skipped` counts the records left out as residency violations (damaged records)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["subject", "region", "records", "skipped", "next_cursor"],
                                    "properties": {
                                        "subject": {"type": "string"},
                                        "region": {"type": "string"},
                                        "records": {"type": "array", "items": {"$ref": "#/components/schemas/RecordMeta"}},
                                        "skipped": {"type": "integer", "minimum": 0},
                                        "next_cursor": NEXT_CURSOR,
                                    },
                                }
                            }
                        },
                    },
                    **_problems(401, 403, 404, 451, 503),
                },
            }
        },
        "/v1/orders": {
            "post": {
                "summary": "Submit a signed legal order (compact JWS); returns the decision document",
                "requestBody": {"required": True, "content": {"application/jose": {"schema": {"type": "string"}}}},
                "responses": {
                    "200": {"description": "identical resubmission: the stored decision"},
                    "201": {"description": "decided"},
                    **_problems(401, 403, 409, 422, 503),
                },
            }
        },
        "/v1/orders/{order}": {
            "get": {
                "summary": "The decision document as it stands now",
                "parameters": [ORDER_PATH, AUTHORITY_QUERY],
                "responses": {"200": {"description": "decision document"}, **_problems(401, 403, 404, 409)},
            }
        },
        "/v1/orders/{order}/package": {
            "get": {
                "summary": "The signed disclosure package (POSIX tar: manifest.json, manifest.sig, records/...)",
                "parameters": [ORDER_PATH, AUTHORITY_QUERY],
                "responses": {
                    "200": {
                        "description": "package, with its exact Content-Length; a record changed or damaged since its decision is withheld and named in "
                        "the signed withheld.json; a stream cut short (a store failing) is a short body",
                        "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **_problems(401, 403, 404, 409),
                },
            }
        },
        "/v1/explain": {
            "post": {
                "summary": "Dry run: the decision document with the full trace; changes nothing",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": EXPLAIN_BODY}},
                },
                "responses": {"200": {"description": "decision document with trace"}, **_problems(400, 401, 403, 422)},
            }
        },
        "/v1/cases": {
            "get": {
                "summary": "Legal review queue, a page at a time: open and holding cases first, then soonest deadline, then id",
                "parameters": [*CASE_FILTERS, LIMIT_QUERY, CURSOR_QUERY],
                "responses": {
                    "200": {
                        "description": "one page of cases",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["cases", "next_cursor"],
                                    "properties": {"cases": {"type": "array", "items": {"type": "object"}}, "next_cursor": NEXT_CURSOR},
                                }
                            }
                        },
                    },
                    **_problems(400, 401, 403),
                },
            }
        },
        "/v1/cases/{case}": {
            "get": {"summary": "One case", "parameters": [CASE_PATH], "responses": {"200": {"description": "case"}, **_problems(401, 403, 404)}}
        },
        "/v1/cases/{case}/approvals": {
            "post": {
                "summary": "Approve, deny or withdraw with a written justification (two distinct lawyers approve; one denies)",
                "parameters": [CASE_PATH],
                "responses": {"201": {"description": "the case as it now stands"}, **_problems(400, 401, 403, 404, 409)},
            }
        },
        "/v1/cases/{case}/assignee": {
            "post": {
                "summary": "Assign a case to a lawyer",
                "parameters": [CASE_PATH],
                "responses": {"200": {"description": "the case"}, **_problems(400, 401, 403, 404)},
            }
        },
        "/v1/cases/{case}/objections": {
            "post": {
                "summary": "Record an enforcing-state objection (ground, authority, date); the hold becomes a refusal",
                "parameters": [CASE_PATH],
                "responses": {"201": {"description": "the case as it now stands"}, **_problems(400, 401, 403, 404, 409)},
            }
        },
        "/v1/reports/transparency": {
            "get": {
                "summary": "The transparency report: legal orders per issuing country and half-year, from the audit ledger",
                "parameters": [
                    {"name": "from", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}},
                    {"name": "format", "in": "query", "required": False, "schema": {"type": "string", "enum": ["json", "csv", "html"], "default": "json"}},
                ],
                "responses": {
                    "200": {"description": "the report", "content": {"application/json": {}, "text/csv": {}, "text/html": {}}},
                    **_problems(400, 401, 403),
                },
            }
        },
        "/v1/support-access": {
            "post": {
                "summary": "A support engineer asks to see a customer's records (Customer Lockbox): opens a case",
                "responses": {"201": {"description": "the case"}, **_problems(400, 401, 403, 404)},
            }
        },
        "/v1/cases/{case}/customer-approval": {
            "post": {
                "summary": "The customer's answer to a support-access request, relayed by a configured consent relay (the customer portal)",
                "parameters": [CASE_PATH],
                "responses": {"201": {"description": "the case"}, **_problems(400, 401, 403, 404, 409)},
            }
        },
        "/v1/support-access/{case}/records/{key}": {
            "get": {
                "summary": "Read a record under an approved support-access case, within 12 hours of the request",
                "parameters": [CASE_PATH, KEY_PATH],
                "responses": {"200": {"description": "the record"}, **_problems(401, 403, 404)},
            }
        },
        "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "alive"}}}},
        "/readyz": {
            "get": {
                "summary": "Readiness per region",
                "security": [],
                "responses": {"200": {"description": "ready or degraded"}, "503": {"description": "no region answers"}},
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}},
    },
}


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(SPEC)
