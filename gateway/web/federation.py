"""Federation routes (for peer gateways only), and relaying a request to the peer that owns its subject.

``forward`` sends a data-plane request on to the owner (``gateway.services.federation``)
and relays its answer as it is: status, body (streamed), and the documented
headers (``ETag``, ``X-Residency-*``, ``X-Data-Category``, ``X-Audit-Seq``,
``Link`` of a 451, ``Location``); a problem document is the owner's own.
The routes here take only a peer's federation token (``schemes=("federation",)``),
and answer only for the regions this gateway owns.
"""

from __future__ import annotations

from aiohttp import web

from gateway.services.federation import Route
from gateway.services.records import UnknownSubject
from gateway.web.contract import SUBJECT_PATH, operation, reply
from gateway.web.problem import cut_on_failure
from gateway.web.state import CALLER_KEY, PROBLEM_CODE_KEY, REQUEST_ID_KEY, STATE_KEY

routes = web.RouteTableDef()

RELAYED = (
    "Content-Type",
    "ETag",
    "X-Residency-Region",
    "X-Residency-Jurisdiction",
    "X-Data-Category",
    "X-Residency-Decision",
    "X-Audit-Seq",
    "Link",
    "Location",
)
FORWARDED = ("Content-Type", "If-Match", "If-None-Match")  # the request headers the owner needs besides its token


async def route_of(request: web.Request, subject: str) -> Route | None:
    """The peer that owns ``subject`` (the request goes there), or None (served here)."""
    federation = request.app[STATE_KEY].rt.federation
    if federation is None:
        return None
    return await federation.route(subject, request[CALLER_KEY], request_id=request[REQUEST_ID_KEY])


async def forward(request: web.Request, route: Route, *, subject: str, key: str | None = None, body: bytes | None = None) -> web.StreamResponse:
    """Send this request to ``route``'s peer and relay its answer; its forwarding is ledgered first."""
    rt = request.app[STATE_KEY].rt
    assert rt.federation is not None
    sent = {name: request.headers[name] for name in FORWARDED if name in request.headers}
    async with rt.federation.forward(
        route,
        request[CALLER_KEY],
        request.method,
        request.raw_path,
        request_id=request[REQUEST_ID_KEY],
        subject=subject,
        key=key,
        headers=sent,
        body=body,
    ) as answer:
        headers = {name: answer.headers[name] for name in RELAYED if name in answer.headers}
        headers["X-Request-ID"] = request[REQUEST_ID_KEY]  # the owner's too: it was sent the same id
        if answer.problem_code is not None:
            request[PROBLEM_CODE_KEY] = answer.problem_code  # the owner's problem, for this gateway's access log
        if answer.body is not None or answer.status == 204 or answer.content_length == 0:
            return web.Response(status=answer.status, body=answer.body or None, headers=headers)
        response = web.StreamResponse(status=answer.status, headers=headers)
        if answer.content_length is not None:
            response.content_length = answer.content_length
        await response.prepare(request)
        with cut_on_failure(request):
            async for chunk in answer.chunks():
                await response.write(chunk)
        await response.write_eof()
        return response


@routes.get("/v1/federation/subjects/{subject}")
@operation(
    "federationSubjectHome",
    summary="For a peer gateway: the home region of one of this gateway's subjects",
    description="Called with a peer's federation token only. 200 names the subject's home region when this gateway owns it; "
    "404 `unknown-subject` otherwise (unknown here, or another gateway's).",
    roles=("service", "intake"),
    schemes=("federation",),
    parameters=(SUBJECT_PATH,),
    responses={
        200: reply(
            "the subject's home region, one this gateway owns",
            {"type": "object", "required": ["subject", "home_region"], "properties": {"subject": {"type": "string"}, "home_region": {"type": "string"}}},
        )
    },
    problems=(404, 503),
)
async def subject_home(request: web.Request) -> web.Response:
    rt = request.app[STATE_KEY].rt
    subject = request.match_info["subject"]
    region = None if rt.federation is None else await rt.federation.local_home(subject)
    if region is None:
        raise UnknownSubject(f"subject `{subject}` is not one of this gateway's subjects")
    return web.json_response({"subject": subject, "home_region": region})
