"""Data-plane routes: subjects and records. Handlers translate HTTP to service calls and back."""

from __future__ import annotations

import re

from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.services.records import Precondition, RecordPreconditionFailed
from gateway.web.auth import authenticate
from gateway.web.bodies import json_body, read_body
from gateway.web.pages import decode_cursor, encode_cursor, page_limit
from gateway.web.problem import problem
from gateway.web.state import STATE_KEY

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


async def _json_body(request: web.Request) -> object:
    if request.content_type != "application/json":
        raise InvalidRequest("send the body as `application/json`", code="unsupported-media-type")
    return await json_body(request)


@routes.put("/v1/subjects/{subject}")
async def put_subject(request: web.Request) -> web.Response:
    caller = authenticate(request, "service")
    records = request.app[STATE_KEY].rt.records
    subject = records.parse_subject(request.match_info["subject"], await _json_body(request))
    subject, created = await records.register_subject(caller, subject)
    return web.json_response(subject.to_json(), status=201 if created else 200)


@routes.put("/v1/subjects/{subject}/records/{key}")
async def put_record(request: web.Request) -> web.Response:
    caller = authenticate(request, "service")
    rt = request.app[STATE_KEY].rt
    precondition = _precondition(request, create_only=True)
    body = await read_body(request, rt.config.limits.max_record_bytes, what="record")
    try:
        tag, created = await rt.records.put_record(
            caller, request.match_info["subject"], request.match_info["key"], request.query.get("category"), body, precondition=precondition
        )
    except RecordPreconditionFailed as error:
        return _precondition_failed(request, error)
    return web.json_response({"tag": tag.claims()}, status=201 if created else 200, headers={"ETag": f'"{tag.sha256}"'})


@routes.get("/v1/subjects/{subject}/records/{key}")
async def get_record(request: web.Request) -> web.Response:
    caller = authenticate(request, "service")
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
async def delete_record(request: web.Request) -> web.Response:
    caller = authenticate(request, "service")
    precondition = _precondition(request, create_only=False)
    try:
        await request.app[STATE_KEY].rt.records.delete_record(caller, request.match_info["subject"], request.match_info["key"], precondition=precondition)
    except RecordPreconditionFailed as error:
        return _precondition_failed(request, error)
    return web.Response(status=204)


@routes.get("/v1/subjects/{subject}/records")
async def list_records(request: web.Request) -> web.Response:
    caller = authenticate(request, "service")
    limit = page_limit(request.query)
    after = decode_cursor(request.query, "records", lambda p: len(p) == 1 and isinstance(p[0], str))
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
