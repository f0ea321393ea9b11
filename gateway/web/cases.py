"""Legal-review routes: the case queue, approvals and objections."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import Forbidden, InvalidRequest
from gateway.web.auth import authenticate
from gateway.web.bodies import json_body
from gateway.web.pages import decode_cursor, encode_cursor, page_limit
from gateway.web.state import STATE_KEY

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
async def list_cases(request: web.Request) -> web.Response:
    authenticate(request, "legal")
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
async def get_case(request: web.Request) -> web.Response:
    authenticate(request, "legal")
    return web.json_response(await request.app[STATE_KEY].rt.cases.get(request.match_info["case"]))


@routes.post("/v1/cases/{case}/approvals")
async def decide_case(request: web.Request) -> web.Response:
    """Body: {"decision": "approve"|"deny"|"withdraw", "justification": "...", "categories": [...]?}."""
    caller = authenticate(request, "legal")
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
async def assign_case(request: web.Request) -> web.Response:
    """Body: {"assignee": "<legal principal>"}."""
    caller = authenticate(request, "legal")
    body = await _json_object(request, {"assignee"})
    case = await request.app[STATE_KEY].rt.cases.assign(request.match_info["case"], caller, str(body.get("assignee", "")))
    return web.json_response(case)


@routes.post("/v1/cases/{case}/objections")
async def object_case(request: web.Request) -> web.Response:
    """Body: {"ground": "...", "authority": "...", "date": "YYYY-MM-DD"}: an enforcing-state objection."""
    caller = authenticate(request, "legal")
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
async def request_support_access(request: web.Request) -> web.Response:
    """Body: {"subject": "...", "keys": ["..."], "justification": "..."}: a Customer Lockbox request."""
    caller = authenticate(request, "support")
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
async def customer_approval(request: web.Request) -> web.Response:
    """Body: {"decision": "approve"|"deny"}: the customer's answer, relayed by a service of `support_access.consent_relays`."""
    caller = authenticate(request, "service")
    body = await _json_object(request, {"decision"})
    case = await request.app[STATE_KEY].rt.cases.customer_decision(request.match_info["case"], caller, decision=str(body.get("decision", "")))
    return web.json_response(case, status=201)


@routes.get("/v1/support-access/{case}/records/{key}")
async def support_read(request: web.Request) -> web.Response:
    caller = authenticate(request, "support")
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
