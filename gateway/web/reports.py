"""Report routes: the transparency report, from every chain of the audit ledger (role legal)."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.reports.render import FORMATS, MEDIA_TYPES, render
from gateway.reports.transparency import build_report, parse_range
from gateway.web.contract import header, operation, query_param
from gateway.web.state import STATE_KEY

routes = web.RouteTableDef()


@routes.get("/v1/reports/transparency")
@operation(
    "transparencyReport",
    summary="The transparency report: legal orders per issuing country and half-year, from the audit ledger",
    roles=("legal",),
    parameters=(
        query_param("from", {"type": "string", "format": "date"}, "first day of the period", required=True),
        query_param("to", {"type": "string", "format": "date"}, "last day of the period", required=True),
        query_param("format", {"type": "string", "enum": list(FORMATS), "default": "json"}),
    ),
    responses={
        200: {
            "description": "the report",
            "headers": {"Cache-Control": header("`no-store`"), "Content-Disposition": header("for `csv`: an attachment's file name")},
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
        }
    },
    problems=(400, 503),
)
async def transparency(request: web.Request) -> web.Response:
    try:
        start, end = parse_range(request.query.get("from"), request.query.get("to"))
    except ValueError as exc:
        raise InvalidRequest(str(exc), code="invalid-period") from None
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise InvalidRequest(f"unknown report format `{fmt}`; use one of {', '.join(FORMATS)}", code="invalid-format")
    rt = request.app[STATE_KEY].rt
    assert rt.chains is not None
    entries = await rt.chains.entries()  # every chain: this process's, the others' here, and with an export every replica's
    report = build_report(entries, start, end, content_categories=frozenset(rt.config.categories[-1:]))
    body = render(report, fmt, generated_at=rt.settings.clock())
    headers = {"Cache-Control": "no-store"}
    if fmt == "csv":
        headers["Content-Disposition"] = f'attachment; filename="transparency-{start}-{end}.csv"'
    return web.Response(text=body, content_type=MEDIA_TYPES[fmt].split(";")[0], charset="utf-8", headers=headers)
