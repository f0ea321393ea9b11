"""Legal-review routes: the case queue, approvals and objections."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import Forbidden, InvalidRequest
from gateway.web.bodies import json_body
from gateway.web.contract import (
    AUDIT_SEQ,
    BINARY,
    CASE_PATH,
    CURSOR_QUERY,
    KEY_PATH,
    LIMIT_QUERY,
    NEXT_CURSOR,
    json_request,
    operation,
    query_param,
    ref,
    reply,
)
from gateway.web.pages import decode_cursor, encode_cursor, page_limit
from gateway.web.state import CALLER_KEY, STATE_KEY

routes = web.RouteTableDef()


async def _json_object(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object", code="invalid-json")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown field `{unknown[0]}`; allowed: {', '.join(sorted(allowed))}", code="invalid-request")
    return body


@routes.get("/v1/cases")
@operation(
    "listCases",
    summary="Legal review queue, a page at a time: open and holding cases first, then soonest deadline, then id",
    roles=("legal",),
    parameters=(
        query_param("state", {"type": "string", "maxLength": 128}, "a case state, e.g. `open`, `holding`"),
        query_param("jurisdiction", {"type": "string", "pattern": "^[A-Z]{2}$"}, "the issuing country"),
        query_param("region", {"type": "string", "maxLength": 128}, "the storage region"),
        query_param("instrument", {"type": "string", "maxLength": 128}, "an instrument id"),
        LIMIT_QUERY,
        CURSOR_QUERY,
    ),
    responses={
        200: reply(
            "one page of cases",
            {
                "type": "object",
                "required": ["cases", "next_cursor"],
                "properties": {"cases": {"type": "array", "items": ref("Case")}, "next_cursor": NEXT_CURSOR},
            },
        )
    },
    problems=(400, 503),
)
async def list_cases(request: web.Request) -> web.Response:
    q = request.query
    limit = page_limit(q)
    after = decode_cursor(q, "cases", _is_case_position)
    cases, following = await request.app[STATE_KEY].rt.cases.page(
        after=None if after is None else (after[0], after[1], after[2]),
        limit=limit,
        state=q.get("state"),
        jurisdiction=q.get("jurisdiction"),
        region=q.get("region"),
        instrument=q.get("instrument"),
    )
    return web.json_response({"cases": cases, "next_cursor": None if following is None else encode_cursor("cases", list(following))})


def _is_case_position(position: list[Any]) -> bool:
    """``[closed, deadline, id]``, as ``case_position`` makes it."""
    return len(position) == 3 and isinstance(position[0], bool) and isinstance(position[1], str) and isinstance(position[2], str)


@routes.get("/v1/cases/{case}")
@operation(
    "getCase",
    summary="One case",
    roles=("legal",),
    parameters=(CASE_PATH,),
    responses={200: reply("the case", ref("Case"))},
    problems=(404, 503),
)
async def get_case(request: web.Request) -> web.Response:
    return web.json_response(await request.app[STATE_KEY].rt.cases.get(request.match_info["case"]))


@routes.post("/v1/cases/{case}/approvals")
@operation(
    "decideCase",
    summary="Approve, deny or withdraw with a written justification (two distinct lawyers approve; one denies)",
    roles=("legal",),
    parameters=(CASE_PATH,),
    body=json_request(
        {
            "type": "object",
            "required": ["decision", "justification"],
            "additionalProperties": False,
            "properties": {
                "decision": {"type": "string", "enum": ["approve", "deny", "withdraw"]},
                "justification": {"type": "string", "description": "why; a short one is 400 `invalid-approval`"},
                "categories": {"type": "array", "items": {"type": "string"}, "description": "approve only these of the case's categories"},
            },
        }
    ),
    responses={201: reply("the case as it now stands", ref("Case"))},
    problems=(400, 404, 409, 413, 503),
)
async def decide_case(request: web.Request) -> web.Response:
    """Body: {"decision": "approve"|"deny"|"withdraw", "justification": "...", "categories": [...]?}."""
    caller = request[CALLER_KEY]
    body = await _json_object(request, {"decision", "justification", "categories"})
    categories = body.get("categories")
    if categories is not None and (not isinstance(categories, list) or not all(isinstance(c, str) for c in categories)):
        raise InvalidRequest("`categories` must be a list of category names", code="invalid-approval")
    case = await request.app[STATE_KEY].rt.cases.decide(
        request.match_info["case"],
        caller,
        decision=str(body.get("decision", "")),
        justification=str(body.get("justification", "")),
        categories=categories,
    )
    return web.json_response(case, status=201)


@routes.post("/v1/cases/{case}/assignee")
@operation(
    "assignCase",
    summary="Assign a case to a lawyer",
    roles=("legal",),
    parameters=(CASE_PATH,),
    body=json_request({"type": "object", "required": ["assignee"], "additionalProperties": False, "properties": {"assignee": {"type": "string"}}}),
    responses={200: reply("the case", ref("Case"))},
    problems=(400, 404, 409, 413, 503),
)
async def assign_case(request: web.Request) -> web.Response:
    """Body: {"assignee": "<legal principal>"}."""
    caller = request[CALLER_KEY]
    body = await _json_object(request, {"assignee"})
    case = await request.app[STATE_KEY].rt.cases.assign(request.match_info["case"], caller, str(body.get("assignee", "")))
    return web.json_response(case)


@routes.post("/v1/cases/{case}/objections")
@operation(
    "objectToCase",
    summary="Record an enforcing-state objection (ground, authority, date); the hold becomes a refusal",
    roles=("legal",),
    parameters=(CASE_PATH,),
    body=json_request(
        {
            "type": "object",
            "required": ["ground", "authority", "date"],
            "additionalProperties": False,
            "properties": {"ground": {"type": "string"}, "authority": {"type": "string"}, "date": {"type": "string", "format": "date"}},
        }
    ),
    responses={201: reply("the case as it now stands", ref("Case"))},
    problems=(400, 404, 409, 413, 503),
)
async def object_case(request: web.Request) -> web.Response:
    """Body: {"ground": "...", "authority": "...", "date": "YYYY-MM-DD"}: an enforcing-state objection."""
    caller = request[CALLER_KEY]
    body = await _json_object(request, {"ground", "authority", "date"})
    case = await request.app[STATE_KEY].rt.cases.object(
        request.match_info["case"],
        caller,
        ground=str(body.get("ground", "")),
        authority=str(body.get("authority", "")),
        date=str(body.get("date", "")),
    )
    return web.json_response(case, status=201)


@routes.post("/v1/support-access")
@operation(
    "requestSupportAccess",
    summary="A support engineer asks to see a customer's records (Customer Lockbox): opens a case",
    roles=("support",),
    body=json_request(
        {
            "type": "object",
            "required": ["subject", "keys", "justification"],
            "additionalProperties": False,
            "properties": {"subject": {"type": "string"}, "keys": {"type": "array", "items": {"type": "string"}}, "justification": {"type": "string"}},
        }
    ),
    responses={201: reply("the case", ref("Case"))},
    problems=(400, 404, 409, 413, 503),
)
async def request_support_access(request: web.Request) -> web.Response:
    """Body: {"subject": "...", "keys": ["..."], "justification": "..."}: a Customer Lockbox request."""
    caller = request[CALLER_KEY]
    body = await _json_object(request, {"subject", "keys", "justification"})
    rt = request.app[STATE_KEY].rt
    subject = await rt.records.subject(str(body.get("subject", "")))
    keys = body.get("keys")
    case = await rt.cases.open_support_request(
        caller,
        subject=subject.id,
        region=subject.home_region,
        keys=keys if isinstance(keys, list) else [],
        justification=str(body.get("justification", "")),
    )
    return web.json_response(case, status=201)


@routes.post("/v1/cases/{case}/customer-approval")
@operation(
    "relayCustomerApproval",
    summary="The customer's answer to a support-access request, relayed by a configured consent relay (the customer portal)",
    roles=("service",),
    parameters=(CASE_PATH,),
    body=json_request(
        {"type": "object", "required": ["decision"], "additionalProperties": False, "properties": {"decision": {"type": "string", "enum": ["approve", "deny"]}}}
    ),
    responses={201: reply("the case", ref("Case"))},
    problems=(400, 404, 409, 413, 503),
)
async def customer_approval(request: web.Request) -> web.Response:
    """Body: {"decision": "approve"|"deny"}: the customer's answer, relayed by a service of `support_access.consent_relays`."""
    caller = request[CALLER_KEY]
    body = await _json_object(request, {"decision"})
    case = await request.app[STATE_KEY].rt.cases.customer_decision(request.match_info["case"], caller, decision=str(body.get("decision", "")))
    return web.json_response(case, status=201)


@routes.get("/v1/support-access/{case}/records/{key}")
@operation(
    "readUnderSupportAccess",
    summary="Read a record under an approved support-access case, within 12 hours of the request",
    roles=("support",),
    parameters=(CASE_PATH, KEY_PATH),
    responses={
        200: {
            "description": "the record",
            "headers": {"X-Audit-Seq": AUDIT_SEQ},
            "content": {"application/octet-stream": {"schema": BINARY}},
        }
    },
    problems=(404, 451, 503),
)
async def support_read(request: web.Request) -> web.Response:
    caller = request[CALLER_KEY]
    rt = request.app[STATE_KEY].rt
    case = await rt.cases.get(request.match_info["case"])
    key = request.match_info["key"]
    if not rt.cases.lockbox_allows(case, caller, key, rt.settings.clock()):
        raise Forbidden(
            f"case `{case['id']}` does not let `{caller.principal}` see `{key}` now: "
            "it needs the customer's and a lawyer's approval, within 12 hours of the request"
        )
    subject = await rt.records.subject(case["subject"])
    result = await rt.records.read_under_case(caller, subject, key, case_id=case["id"])
    return web.Response(body=result.body, content_type="application/octet-stream", headers={"X-Audit-Seq": str(result.ledger_seq)})
