"""Data-plane routes: subjects and records. Handlers translate HTTP to service calls and back."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.web.auth import authenticate
from gateway.web.bodies import json_body, read_body
from gateway.web.pages import decode_cursor, encode_cursor, page_limit
from gateway.web.state import STATE_KEY

routes = web.RouteTableDef()


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
    body = await read_body(request, rt.config.limits.max_record_bytes, what="record")
    tag, created = await rt.records.put_record(
        caller, request.match_info["subject"], request.match_info["key"], request.query.get("category"), body
    )
    return web.json_response({"tag": tag.claims()}, status=201 if created else 200)


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
    await request.app[STATE_KEY].rt.records.delete_record(caller, request.match_info["subject"], request.match_info["key"])
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
