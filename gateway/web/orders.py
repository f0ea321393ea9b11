"""Legal-order routes: intake, decision documents, packages, explain."""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.legal.verify import OrderRejected
from gateway.model import parse_time
from gateway.services.documents import write_document
from gateway.web.bodies import MAX_JSON_BYTES, json_body, read_body
from gateway.web.contract import AUTHORITY_QUERY, BINARY, ORDER_PATH, header, json_request, operation, ref, reply
from gateway.web.problem import cut_on_failure, problem
from gateway.web.state import CALLER_KEY, STATE_KEY

routes = web.RouteTableDef()
MAX_ORDER_BYTES = 256 * 1024
WRITE_BYTES = 256 * 1024  # package bytes gathered per socket write
LOCATION = header("the decision document's path", {"type": "string"})


async def _order_text(request: web.Request) -> str:
    body = await read_body(request, MAX_ORDER_BYTES, what="order")
    try:
        return body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise InvalidRequest("send the order as its compact JWS text (`application/jose`)", code="malformed-order") from None


def _rejected(request: web.Request, rejected: OrderRejected) -> web.Response:
    """A refused order is a decision too: a problem document carrying outcome and reason."""
    return problem(
        request,
        422,
        rejected.code,
        rejected.message,
        outcome="refuse",
        reasons=[{"code": rejected.code, "rule": rejected.rule, "detail": rejected.message}],
    )


def _document(document: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A decision document as JSON, the bytes ``write_document`` stores."""
    return web.Response(body=write_document(document), status=status, headers=headers, content_type="application/json", charset="utf-8")


@routes.post("/v1/orders")
@operation(
    "submitOrder",
    summary="Submit a signed legal order (compact JWS); returns the decision document",
    description="A refused order (bad signature, unknown authority, expired...) is a decision too: 422 with `outcome` and `reasons`.",
    roles=("intake",),
    body={"required": True, "content": {"application/jose": {"schema": {"type": "string"}}}},
    responses={
        200: reply("an identical resubmission: the stored decision", ref("DecisionDocument"), headers={"Location": LOCATION}),
        201: reply("decided", ref("DecisionDocument"), headers={"Location": LOCATION}),
    },
    problems=(400, 409, 413, 422, 503),
)
async def submit_order(request: web.Request) -> web.Response:
    caller = request[CALLER_KEY]
    orders = request.app[STATE_KEY].rt.orders
    try:
        viewed, created = await orders.submit(await _order_text(request), submitted_by=caller.principal)
    except OrderRejected as rejected:
        return _rejected(request, rejected)
    return _document(viewed.to_json(), status=201 if created else 200, headers={"Location": f"/v1/orders/{viewed.document.id}"})


@routes.post("/v1/federation/orders")
@operation(
    "federationDecideOrder",
    summary="For a peer gateway: decide an order's items for the regions this gateway owns",
    description="Called with a peer's federation token only, for an intake caller. The order (a compact JWS) is verified against "
    "this gateway's own trust, its id claimed here, and the subjects whose home region this gateway owns decided with its own "
    "policy, acted on (holds, cases) and ledgered here; their items are in the answer. A resubmission gets the stored decision (200).",
    roles=("intake",),
    schemes=("federation",),
    body=json_request(
        {"type": "object", "required": ["order"], "additionalProperties": False, "properties": {"order": {"type": "string", "description": "the compact JWS"}}}
    ),
    responses={
        200: reply("an identical resubmission: the stored decision", ref("DecisionDocument")),
        201: reply("decided here, for this gateway's subjects", ref("DecisionDocument")),
    },
    problems=(409, 413, 422, 503),
)
async def decide_for_peer(request: web.Request) -> web.Response:
    caller = request[CALLER_KEY]
    body = await json_body(request, limit=MAX_ORDER_BYTES + MAX_JSON_BYTES, what='body ({"order": "<compact JWS>"})')
    if not isinstance(body, dict) or not isinstance(body.get("order"), str) or set(body) != {"order"}:
        raise InvalidRequest('body must be {"order": "<compact JWS>"}', code="invalid-request")
    try:
        viewed, created = await request.app[STATE_KEY].rt.orders.submit(body["order"].strip(), submitted_by=caller.principal, via=caller.via)
    except OrderRejected as rejected:
        return _rejected(request, rejected)
    return _document(viewed.to_json(), status=201 if created else 200)


@routes.get("/v1/orders/{order}")
@operation(
    "getOrder",
    summary="The decision document as it stands now",
    roles=("intake", "legal"),
    parameters=(ORDER_PATH, AUTHORITY_QUERY),
    responses={200: reply("the decision document, each item with its state", ref("DecisionDocument"))},
    problems=(404, 409, 503),
)
async def get_order(request: web.Request) -> web.Response:
    viewed = await request.app[STATE_KEY].rt.orders.document(request.match_info["order"], request.query.get("authority"))
    return _document(viewed.to_json())


@routes.get("/v1/orders/{order}/package")
@operation(
    "getPackage",
    summary="The signed disclosure package (POSIX tar: manifest.json, manifest.sig, records/...)",
    roles=("intake",),
    parameters=(ORDER_PATH, AUTHORITY_QUERY),
    responses={
        200: {
            "description": "the package, with its exact Content-Length; a record changed or damaged since its decision is withheld and named in "
            "the signed withheld.json; a stream cut short (a store failing) is a short body",
            "headers": {
                "Content-Disposition": header('`attachment; filename="<order>.tar"`'),
                "X-Package-Records": header("how many records the package holds", {"type": "string", "pattern": "^[0-9]+$"}),
            },
            "content": {"application/x-tar": {"schema": BINARY}},
        }
    },
    problems=(404, 409, 503),
)
async def get_package(request: web.Request) -> web.StreamResponse:
    manifest, size, chunks = await request.app[STATE_KEY].rt.orders.package(request.match_info["order"], request.query.get("authority"))
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/x-tar",
            "Content-Disposition": f'attachment; filename="{manifest["order"]}.tar"',
            "X-Package-Records": str(len(manifest["records"])),
        }
    )
    response.content_length = size  # a client sees a stream cut short (see below) as a short body
    await response.prepare(request)
    with cut_on_failure(request):
        # Gather small chunks (the signature, small batches, the end) into writes of at least WRITE_BYTES;
        # a large chunk goes out as it is, never copied into a bigger one.
        pending: list[bytes] = []
        buffered = 0
        async with contextlib.aclosing(chunks) as stream:  # a failed write stops the read-ahead now, not at garbage collection
            async for chunk in stream:
                if len(chunk) >= WRITE_BYTES:
                    if pending:
                        await response.write(b"".join(pending))
                        pending, buffered = [], 0
                    await response.write(chunk)
                    continue
                pending.append(chunk)
                buffered += len(chunk)
                if buffered >= WRITE_BYTES:
                    await response.write(b"".join(pending))
                    pending, buffered = [], 0
        if pending:
            await response.write(b"".join(pending))
    await response.write_eof()
    return response


@routes.post("/v1/explain")
@operation(
    "explainOrder",
    summary="Dry run: the decision document with the full trace; changes nothing",
    roles=("legal",),
    body=json_request(
        {
            "type": "object",
            "required": ["order"],
            "additionalProperties": False,
            "properties": {"order": {"type": "string", "description": "the compact JWS"}, "at": {"type": "string", "format": "date-time"}},
        }
    ),
    responses={200: reply("the decision document with its trace, and `explain`", ref("DecisionDocument"))},
    problems=(400, 413, 422, 503),
)
async def explain(request: web.Request) -> web.Response:
    body = await json_body(request, limit=MAX_ORDER_BYTES + MAX_JSON_BYTES, what="body ({\"order\": \"<compact JWS>\", \"at\": \"<RFC 3339>\"?})")
    if not isinstance(body, dict) or not isinstance(body.get("order"), str) or set(body) - {"order", "at"}:
        raise InvalidRequest("body must be {\"order\": \"<compact JWS>\", \"at\": \"<RFC 3339>\"?}", code="invalid-request")
    at = None
    if body.get("at") is not None:
        try:
            at = parse_time(str(body["at"]))
        except ValueError:
            raise InvalidRequest(f"`at` must be an RFC 3339 time, not `{body['at']}`", code="invalid-time") from None
    try:
        explained = await request.app[STATE_KEY].rt.orders.explain(body["order"].strip(), at=at)
    except OrderRejected as rejected:
        return _rejected(request, rejected)
    return _document(explained.to_json())
