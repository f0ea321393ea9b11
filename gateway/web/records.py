"""Data-plane routes: subjects and records. Handlers translate HTTP to service calls and back."""

from __future__ import annotations

import re

from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.services.objects import ObjectService
from gateway.services.records import Precondition, RecordPreconditionFailed
from gateway.web.bodies import MAX_JSON_BYTES, parse_json, read_body
from gateway.web.contract import (
    AUDIT_SEQ,
    BINARY,
    CURSOR_QUERY,
    ETAG,
    KEY_PATH,
    LIMIT_QUERY,
    NEXT_CURSOR,
    SUBJECT_PATH,
    header,
    json_request,
    operation,
    query_param,
    ref,
    reply,
)
from gateway.web.federation import forward, route_of
from gateway.web.pages import decode_cursor, encode_cursor, page_limit
from gateway.web.problem import problem
from gateway.web.state import CALLER_KEY, REQUEST_ID_KEY, STATE_KEY

routes = web.RouteTableDef()

# an entity tag (RFC 9110 section 8.8.3): optionally weak, a quoted string of visible characters but `"`
_ETAG = re.compile(r'\s*((?:W/)?"[\x21\x23-\x7e]*")\s*(?:,|\Z)')


def _etags(name: str, value: str) -> frozenset[str]:
    """The SHA-256 values named by an `If-Match` header: `*`, or a list of entity tags (weak ones never match)."""
    if value.strip() == "*":
        return frozenset({"*"})
    tags: set[str] = set()
    at = 0
    while at < len(value):
        found = _ETAG.match(value, at)
        if found is None or found.end() == at:
            raise InvalidRequest(f'header `{name}` must be `*` or a list of quoted entity tags such as `"<sha256>"`', code="invalid-precondition")
        tag = found.group(1)
        if not tag.startswith("W/"):
            tags.add(tag[1:-1])
        at = found.end()
    if not value.strip():
        raise InvalidRequest(f"header `{name}` is empty; send `*` or a quoted entity tag", code="invalid-precondition")
    return frozenset(tags)


def _precondition(request: web.Request, *, create_only: bool) -> Precondition:
    """The request's `If-Match` and (``create_only``: PUT) `If-None-Match: *`; 400 `invalid-precondition` if malformed."""
    if_match = request.headers.get("If-Match")
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and (not create_only or if_none_match.strip() != "*"):
        allowed = "only `If-None-Match: *` (create only)" if create_only else "no `If-None-Match`"
        raise InvalidRequest(f"this request accepts {allowed}", code="invalid-precondition")
    return Precondition(if_match=None if if_match is None else _etags("If-Match", if_match), if_none_match=if_none_match is not None)


def _precondition_failed(request: web.Request, error: RecordPreconditionFailed) -> web.Response:
    """412, with the record's current `ETag` when it has one (the caller may read it: the decision came first)."""
    response = problem(request, 412, error.code, error.message)
    if error.etag is not None:
        response.headers["ETag"] = error.etag
    return response


async def _json_body(request: web.Request) -> tuple[object, bytes]:
    """The JSON body, parsed, and its bytes (as a peer that owns the subject is sent them)."""
    if request.content_type != "application/json":
        raise InvalidRequest("send the body as `application/json`", code="unsupported-media-type")
    raw = await read_body(request, MAX_JSON_BYTES, what="body")
    return parse_json(raw), raw


DATA_PLANE = ("bearer", "federation")  # a service's own token, or a peer gateway's forwarding a service's request
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
CATEGORY_QUERY = {**query_param("category", {"type": "string"}, "a data category of the configuration", required=True), "example": "subscriber"}
WRITTEN = {"type": "object", "required": ["tag"], "properties": {"tag": ref("Tag")}}
READ_HEADERS = {
    "ETag": ETAG,
    "X-Residency-Region": header("the region the record is stored in"),
    "X-Residency-Jurisdiction": header("the country whose law governs that region"),
    "X-Data-Category": header("the record's data category"),
    "X-Residency-Decision": header("the code of the rule that allowed the read"),
    "X-Audit-Seq": AUDIT_SEQ,
}


@routes.put("/v1/subjects/{subject}")
@operation(
    "putSubject",
    summary="Register a subject in its home region (or update its facts)",
    roles=("service",),
    schemes=DATA_PLANE,
    parameters=(SUBJECT_PATH,),
    body=json_request(ref("Subject")),
    responses={200: reply("updated", ref("SubjectView")), 201: reply("registered", ref("SubjectView"))},
    problems=(400, 404, 409, 413, 503),
)
async def put_subject(request: web.Request) -> web.StreamResponse:
    caller = request[CALLER_KEY]
    rt = request.app[STATE_KEY].rt
    body, raw = await _json_body(request)
    subject = rt.records.parse_subject(request.match_info["subject"], body)
    if rt.federation is not None:
        route = await rt.federation.registration(subject.id, subject.home_region, caller, request_id=request[REQUEST_ID_KEY])
        if route is not None:
            response = await forward(request, route, subject=subject.id, body=raw)
            if response.status in (200, 201):
                await rt.federation.learned(subject.id, route.region)
            return response
    subject, created = await rt.records.register_subject(caller, subject)
    return web.json_response(subject.to_json(), status=201 if created else 200)


@routes.put("/v1/subjects/{subject}/records/{key}")
@operation(
    "putRecord",
    summary="Store a record in the subject's home region",
    description="The write's intent is in the audit ledger before the store is touched: a 503 `ledger-unavailable` means "
    "nothing was stored. 201 is answered once per creation; concurrent writers of one key are applied one at a time; "
    "409 `write-conflict` when other gateways kept changing the key (retry).",
    roles=("service",),
    schemes=DATA_PLANE,
    parameters=(SUBJECT_PATH, KEY_PATH, CATEGORY_QUERY, IF_MATCH, IF_NONE_MATCH),
    body={"required": True, "content": {"application/octet-stream": {"schema": BINARY}}},
    responses={
        200: reply("overwritten", WRITTEN, headers={"ETag": ETAG}),
        201: reply("stored", WRITTEN, headers={"ETag": ETAG}),
    },
    problems=(400, 404, 409, 412, 413, 451, 503),
)
async def put_record(request: web.Request) -> web.StreamResponse:
    caller = request[CALLER_KEY]
    rt = request.app[STATE_KEY].rt
    precondition = _precondition(request, create_only=True)
    body = await read_body(request, rt.config.limits.max_record_bytes, what="record")
    route = await route_of(request, request.match_info["subject"])
    if route is not None:
        return await forward(request, route, subject=request.match_info["subject"], key=request.match_info["key"], body=body)
    try:
        tag, created = await ObjectService(rt.records).put_record(
            caller, request.match_info["subject"], request.match_info["key"], request.query.get("category"), body, precondition=precondition
        )
    except RecordPreconditionFailed as error:
        return _precondition_failed(request, error)
    return web.json_response({"tag": tag.claims()}, status=201 if created else 200, headers={"ETag": f'"{tag.sha256}"'})


@routes.get("/v1/subjects/{subject}/records/{key}")
@operation(
    "getRecord",
    summary="Read a record if residency allows",
    roles=("service",),
    schemes=DATA_PLANE,
    parameters=(SUBJECT_PATH, KEY_PATH),
    responses={200: {"description": "the record", "headers": READ_HEADERS, "content": {"application/octet-stream": {"schema": BINARY}}}},
    problems=(404, 451, 503),
)
async def get_record(request: web.Request) -> web.StreamResponse:
    caller = request[CALLER_KEY]
    route = await route_of(request, request.match_info["subject"])
    if route is not None:
        return await forward(request, route, subject=request.match_info["subject"], key=request.match_info["key"])
    result = await request.app[STATE_KEY].rt.records.get_record(caller, request.match_info["subject"], request.match_info["key"])
    meta = result.meta
    return web.Response(
        body=result.body,
        content_type="application/octet-stream",
        headers={
            "ETag": f'"{meta.sha256}"',
            "X-Residency-Region": meta.region,
            "X-Residency-Jurisdiction": result.decision.data_jurisdiction,
            "X-Data-Category": meta.category,
            "X-Residency-Decision": result.decision.reasons[0].code,
            "X-Audit-Seq": str(result.ledger_seq),
        },
    )


@routes.delete("/v1/subjects/{subject}/records/{key}")
@operation(
    "deleteRecord",
    summary="Erase a record (refused with 409 `legal-hold` while a legal hold is on it)",
    roles=("service",),
    schemes=DATA_PLANE,
    parameters=(SUBJECT_PATH, KEY_PATH, IF_MATCH),
    responses={204: reply("erased")},
    problems=(400, 404, 409, 412, 451, 503),
)
async def delete_record(request: web.Request) -> web.StreamResponse:
    caller = request[CALLER_KEY]
    precondition = _precondition(request, create_only=False)
    route = await route_of(request, request.match_info["subject"])
    if route is not None:
        return await forward(request, route, subject=request.match_info["subject"], key=request.match_info["key"])
    try:
        objects = ObjectService(request.app[STATE_KEY].rt.records)  # removes a large S3 object's chunks with its record
        await objects.delete(caller, request.match_info["subject"], request.match_info["key"], precondition=precondition)
    except RecordPreconditionFailed as error:
        return _precondition_failed(request, error)
    return web.Response(status=204)


@routes.get("/v1/subjects/{subject}/records")
@operation(
    "listRecords",
    summary="List record metadata, by key, a page at a time",
    roles=("service",),
    schemes=DATA_PLANE,
    parameters=(SUBJECT_PATH, LIMIT_QUERY, CURSOR_QUERY),
    responses={
        200: reply(
            "record metadata; `skipped` counts the records of this page left out as residency violations (damaged records)",
            {
                "type": "object",
                "required": ["subject", "region", "records", "skipped", "next_cursor"],
                "properties": {
                    "subject": {"type": "string"},
                    "region": {"type": "string"},
                    "records": {"type": "array", "items": ref("RecordMeta")},
                    "skipped": {"type": "integer", "minimum": 0},
                    "next_cursor": NEXT_CURSOR,
                },
            },
        )
    },
    problems=(400, 404, 451, 503),
)
async def list_records(request: web.Request) -> web.StreamResponse:
    caller = request[CALLER_KEY]
    limit = page_limit(request.query)
    after = decode_cursor(request.query, "records", lambda p: len(p) == 1 and isinstance(p[0], str))
    route = await route_of(request, request.match_info["subject"])
    if route is not None:
        return await forward(request, route, subject=request.match_info["subject"])
    listing = await request.app[STATE_KEY].rt.records.list_records(
        caller, request.match_info["subject"], after=None if after is None else after[0], limit=limit
    )
    return web.json_response(
        {
            "subject": request.match_info["subject"],
            "region": listing.decision.data_region,
            "records": [m.to_json() for m in listing.records],
            "skipped": listing.skipped,  # records of this page refused as residency violations (each ledgered and counted)
            "next_cursor": None if listing.next_after is None else encode_cursor("records", [listing.next_after]),
        }
    )
