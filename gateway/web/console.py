"""The legal console: a small server-rendered web UI over the case service.

Sign-in takes a legal bearer token (``gateway token issue --role legal``),
verifies it as the API does, and opens a server-side session
(``gateway.services.sessions``): the cookie holds only the session's random id
(HttpOnly, SameSite=Strict, Path=/console), never the token. Every request
looks the session up in the control store, so every replica sees it and
sign-out ends it everywhere; an unknown, ended or expired session is sent to
the sign-in page. The cookie is ``Secure`` when the request came over TLS to the
gateway, or from a configured trusted proxy (``[console] trusted_proxies``)
saying ``X-Forwarded-Proto: https``. Every POST form carries a CSRF token: an
HMAC, keyed with a secret derived from the provider key, of the session (or, on
the sign-in form, of a pre-session nonce cookie).

Forms call the same service methods as the JSON API, so every action is
written to the ledger. Pages show metadata, decisions and hashes only: the
console never reads a record's content.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import secrets
import weakref
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web

from gateway.errors import GatewayError, InvalidRequest, http_status
from gateway.legal.verify import OrderRejected
from gateway.model import Caller, isoformat, parse_time
from gateway.services.analysis import MAX_CANDIDATE_BYTES, Analysis
from gateway.services.cases import ACTIVE, STATES
from gateway.services.sessions import Session, session_hash
from gateway.tokens import verify_token
from gateway.web.bodies import form_body, multipart_form_body
from gateway.web.state import CALLER_KEY, STATE_KEY

routes = web.RouteTableDef()

PREFIX = "/console"
SESSION_COOKIE = "gw_console"
LOGIN_COOKIE = "gw_console_login"
FLASH_COOKIE = "gw_console_flash"
CSRF_FIELD = "csrf"
MAX_FORM_BYTES = 256 * 1024
FORM_KEY = web.RequestKey("console_form", Mapping)
SESSION_KEY = web.RequestKey("console_session", str)  # the id from the cookie, once its session is found live
# what a case's page shows of the order behind it
CASE_ORDER_FIELDS = ("id", "authority", "served_by", "instrument", "categories", "received_at", "expires_at", "nondisclosure_until", "case_ref")

TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def _templates() -> Any:
    """The console's Jinja2 environment, made on the first page rendered (Jinja2 is slow to import; serving starts without it)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["codespans"] = codespans
    return environment


def codespans(text: object) -> Any:
    """Text with its `backtick` spans as ``<code>`` elements, everything escaped; unbalanced backticks stay as they are."""
    from markupsafe import Markup, escape

    parts = str(text).split("`")
    if len(parts) % 2 == 0:
        return escape(str(text))
    return Markup("").join(escape(p) if i % 2 == 0 else Markup("<code>") + escape(p) + Markup("</code>") for i, p in enumerate(parts))


# The CSRF secret, derived once per app the first time it is needed (app keys are frozen once it starts).
_secrets: weakref.WeakKeyDictionary[web.Application, bytes] = weakref.WeakKeyDictionary()

FLASHES = {
    "approve": "Your approval is recorded.",
    "deny": "Your denial is recorded.",
    "withdraw": "The case is withdrawn.",
    "object": "The objection is recorded.",
    "assign": "The case is assigned.",
    "signed-out": "You are signed out.",
}


# --- helpers ----------------------------------------------------------------------------


def _secret(request: web.Request) -> bytes:
    """Derived from the provider key, so every replica behind a load balancer accepts the others' forms."""
    if request.app not in _secrets:
        _secrets[request.app] = request.app[STATE_KEY].rt.console_secret
    return _secrets[request.app]


def csrf_token(request: web.Request, binding: str) -> str:
    """The CSRF token for a session (or a sign-in nonce): HMAC-SHA256 with the app's secret."""
    return hmac.new(_secret(request), binding.encode(), hashlib.sha256).hexdigest()


def _session_binding(session_id: str) -> str:
    return "session:" + hashlib.sha256(session_id.encode()).hexdigest()


def _now(request: web.Request) -> datetime:
    return request.app[STATE_KEY].rt.settings.clock()


def _over_tls(request: web.Request) -> bool:
    """Did the browser reach us over TLS: directly, or through a trusted proxy that says so?

    ``X-Forwarded-Proto`` counts only from a peer inside ``[console] trusted_proxies``,
    and only when every value in it is ``https`` (a chain with a plain-http hop is not).
    """
    if request.secure:
        return True
    forwarded = [v.strip().lower() for header in request.headers.getall("X-Forwarded-Proto", []) for v in header.split(",")]
    if not forwarded or any(v != "https" for v in forwarded):
        return False
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False  # a unix socket, or an address we cannot read: not a trusted proxy
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return any(peer in network for network in request.app[STATE_KEY].rt.config.console.trusted_proxies)


def _cookie_options(request: web.Request) -> dict[str, Any]:
    return {"path": PREFIX, "httponly": True, "samesite": "Strict", "secure": _over_tls(request)}


def _left(deadline: str | None, now: datetime) -> str:
    """A deadline as time left (``2d 4h left``) or overdue (``overdue by 3h``)."""
    if not deadline:
        return "no deadline"
    delta = parse_time(deadline) - now
    overdue = delta < timedelta(0)
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        text = f"{days}d {hours}h"
    elif hours:
        text = f"{hours}h {minutes}m"
    else:
        text = f"{minutes}m"
    return f"overdue by {text}" if overdue else f"{text} left"


def _urgency(deadline: str | None, state: str, now: datetime) -> str:
    if not deadline or state not in ACTIVE:
        return "none"
    left = parse_time(deadline) - now
    if left < timedelta(0):
        return "overdue"
    return "soon" if left < timedelta(hours=72) else "ok"


def _render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    caller = request.get(CALLER_KEY)
    session = request.get(SESSION_KEY)
    base = {
        "caller": caller,
        "csrf": csrf_token(request, _session_binding(session)) if caller is not None and session else "",
        "csrf_field": CSRF_FIELD,
        "path": request.path,
        "status": status,
        "flash": None,
        "error": None,
    }
    html = _templates().get_template(template).render({**base, **context})
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
    )
    return response


def _error_page(request: web.Request, status: int, code: str, detail: str) -> web.Response:
    return _render(request, "error.html", status=status, code=code, detail=detail, status_title=_TITLES.get(status, "Error"))


_TITLES = {400: "Bad request", 401: "Sign-in needed", 403: "Forbidden", 404: "Not found", 409: "Conflict", 422: "Order refused", 503: "Unavailable"}


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _to_login(request: web.Request) -> web.Response:
    response = _redirect(f"{PREFIX}/login")
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    return response


def _caller_from(request: web.Request, token: str) -> tuple[Caller, float]:
    """Verify a bearer token as the API does; return the caller and the token's expiry (seconds since the epoch)."""
    rt = request.app[STATE_KEY].rt
    caller = verify_token(token, key=rt.token_key, identity=rt.config.identity, now=_now(request), regions=rt.config.regions.keys())
    claims = jwt.decode(token, options={"verify_signature": False})  # verified just above; only the expiry is read here
    return caller, float(claims["exp"])


async def _session_from(request: web.Request) -> tuple[str, Session] | None:
    """The cookie's session id and its live session, or None (no cookie, or a session unknown, ended or expired)."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if not session_id:
        return None
    session = await request.app[STATE_KEY].rt.sessions.find(session_id)
    return None if session is None else (session_id, session)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(handler: Handler | None = None, *, form_limit: int = MAX_FORM_BYTES, uploads: bool = False) -> Any:
    """A console page: needs a live legal session (else the sign-in page); errors become HTML problem pages.

    A POST's form is read (at most ``form_limit`` bytes; ``multipart/form-data`` too when
    ``uploads``) and its CSRF token checked before the handler runs.
    """

    def decorate(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                found = await _session_from(request)
            except GatewayError as error:  # the control store cannot be read: no page, and say why
                return _error_page(request, http_status(error), error.code, error.message)
            if found is None:
                return _to_login(request)  # never signed in, signed out, or expired: sign in again
            session_id, session = found
            caller = session.caller
            if caller.role != "legal":
                response = _error_page(request, 403, "forbidden", f"role `{caller.role}` may not use the legal console")
                response.del_cookie(SESSION_COOKIE, path=PREFIX)
                return response
            request[CALLER_KEY] = caller
            request[SESSION_KEY] = session_id
            try:
                if request.method == "POST":
                    form = await _form(request, form_limit, uploads=uploads)
                    sent = form.get(CSRF_FIELD, "")
                    if not isinstance(sent, str) or not hmac.compare_digest(sent, csrf_token(request, _session_binding(session_id))):
                        return _error_page(request, 403, "csrf-invalid", "this form's security token is missing or wrong; reload the page and try again")
                return await handler(request)
            except GatewayError as error:
                return _error_page(request, http_status(error), error.code, error.message)

        wrapped.__name__ = handler.__name__
        wrapped.__doc__ = handler.__doc__
        return wrapped

    return decorate(handler) if handler is not None else decorate


async def _form(request: web.Request, limit: int = MAX_FORM_BYTES, *, uploads: bool = False) -> Mapping[str, Any]:
    form = request.get(FORM_KEY)
    if form is None:  # the CSRF check and the handler read the same form
        if uploads and request.content_type == "multipart/form-data":
            form = await multipart_form_body(request, limit)
        else:
            form = await form_body(request, limit)
        request[FORM_KEY] = form
    return form


def _take_flash(request: web.Request) -> str | None:
    return FLASHES.get(request.cookies.get(FLASH_COOKIE, ""))


def _with_flash(request: web.Request, response: web.StreamResponse, key: str) -> web.StreamResponse:
    response.set_cookie(FLASH_COOKIE, key, max_age=60, **_cookie_options(request))
    return response


def _flashed(request: web.Request, response: web.Response, flash: str | None) -> web.Response:
    if flash is not None:
        response.del_cookie(FLASH_COOKIE, path=PREFIX)
    return response


# --- sign in and out ----------------------------------------------------------------------


def _login_page(request: web.Request, *, status: int = 200, error: dict[str, str] | None = None, flash: str | None = None) -> web.Response:
    nonce = secrets.token_urlsafe(24)
    response = _render(request, "login.html", status=status, error=error, flash=flash, login_csrf=csrf_token(request, "login:" + nonce))
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=1800, **_cookie_options(request))
    return response


@routes.get(f"{PREFIX}/login")
async def login_form(request: web.Request) -> web.Response:
    flash = _take_flash(request)
    return _flashed(request, _login_page(request, flash=flash), flash)


@routes.post(f"{PREFIX}/login")
async def login(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    if not nonce or not isinstance(sent, str) or not hmac.compare_digest(sent, csrf_token(request, "login:" + nonce)):
        return _error_page(request, 403, "csrf-invalid", "the sign-in form's security token is missing or wrong; reload the page and try again")
    token = str(form.get("token", "")).strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        return _login_page(request, status=400, error={"code": "invalid-request", "detail": "paste a legal bearer token"})
    try:
        caller, expires = _caller_from(request, token)
    except GatewayError as error:
        return _login_page(request, status=http_status(error), error={"code": error.code, "detail": error.message})
    if caller.role != "legal":
        return _error_page(request, 403, "forbidden", f"role `{caller.role}` may not use the legal console; sign in with a `legal` token")
    try:
        session_id, session = await request.app[STATE_KEY].rt.sessions.open(caller, expires)
    except GatewayError as error:  # no session without its ledger entry
        return _error_page(request, http_status(error), error.code, error.message)
    response = _redirect(f"{PREFIX}/")
    max_age = max(1, int((session.expires_at - _now(request)).total_seconds()))
    response.set_cookie(SESSION_COOKIE, session_id, max_age=max_age, **_cookie_options(request))
    response.del_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@routes.post(f"{PREFIX}/logout")
@page
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session on the server, so the cookie stops working wherever a copy of it is."""
    await request.app[STATE_KEY].rt.sessions.close(request[SESSION_KEY])
    response = _redirect(f"{PREFIX}/login")
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    return _with_flash(request, response, "signed-out")


# --- the queue ------------------------------------------------------------------------------


@routes.get(PREFIX)
async def console_root(request: web.Request) -> web.Response:
    return _redirect(f"{PREFIX}/")


@routes.get(f"{PREFIX}/")
@page
async def queue(request: web.Request) -> web.StreamResponse:
    rt = request.app[STATE_KEY].rt
    filters = {name: request.query.get(name, "").strip() or None for name in ("state", "jurisdiction", "region", "instrument")}
    if filters["jurisdiction"]:
        filters["jurisdiction"] = filters["jurisdiction"].upper()
    now = _now(request)
    error = None
    status = 200
    try:
        cases = await rt.cases.list(**filters)
    except InvalidRequest as invalid:
        cases, error, status = [], {"code": invalid.code, "detail": invalid.message}, 400
    rows = [
        {
            **{k: c.get(k) for k in ("id", "order", "authority", "instrument", "subject", "region", "categories", "state", "deadline", "kind")},
            "left": _left(c.get("deadline"), now) if c["state"] in ACTIVE else "—",
            "urgency": _urgency(c.get("deadline"), c["state"], now),
        }
        for c in cases
    ]
    flash = _take_flash(request)
    response = _render(
        request,
        "queue.html",
        status=status,
        rows=rows,
        filters=filters,
        states=STATES,
        regions=sorted(rt.config.regions),
        instruments=sorted(rt.config.legal.instruments),
        jurisdictions=sorted({a.jurisdiction for a in rt.config.legal.authorities.values()}),
        now=isoformat(now),
        error=error,
        flash=flash,
    )
    return _flashed(request, response, flash)


# --- one case ---------------------------------------------------------------------------------


async def _case_page(
    request: web.Request, case_id: str, *, status: int = 200, error: dict[str, str] | None = None, form: Mapping[str, Any] | None = None
) -> web.Response:
    rt = request.app[STATE_KEY].rt
    case = await rt.cases.get(case_id)
    if case["order"] is not None:
        viewed = await rt.orders.document(case["order"], case["authority"])
        order = {k: getattr(viewed.document, k) for k in CASE_ORDER_FIELDS}
        items = [
            {
                "category": v.item.category,
                "outcome": v.item.outcome,
                "basis": v.item.basis,
                "state": v.state,
                "record_count": v.item.record_count,
                "effective": v.effective,
            }
            for v in viewed.items
            if v.item.subject == case["subject"] and v.item.region == case["region"]
        ]
        package = viewed.package
    else:  # a support-access request: no order behind it, the request is the case itself
        order = dict.fromkeys(CASE_ORDER_FIELDS) | {"instrument": case["instrument"], "categories": [], "received_at": case["created_at"]}
        items, package = [], {}
    now = _now(request)
    caller = request[CALLER_KEY]
    flash = _take_flash(request)
    response = _render(
        request,
        "case.html",
        status=status,
        case=case,
        order=order,
        items=items,
        package=package,
        left=_left(case.get("deadline"), now) if case["state"] in ACTIVE else None,
        urgency=_urgency(case.get("deadline"), case["state"], now),
        can_decide=case["kind"] == "legal-review" and case["state"] == "open",
        can_object=case["kind"] == "hold" and case["state"] == "holding",
        is_submitter=caller.principal == case["submitted_by"],
        already_approved=any(a["by"] == caller.principal and a["decision"] == "approve" for a in case["approvals"]),
        form=dict(form or {}),
        today=now.date().isoformat(),
        error=error,
        flash=flash,
    )
    return _flashed(request, response, flash)


@routes.get(f"{PREFIX}/cases/{{case}}")
@page
async def case_page(request: web.Request) -> web.StreamResponse:
    return await _case_page(request, request.match_info["case"])


@routes.post(f"{PREFIX}/cases/{{case}}/decide")
@page
async def decide(request: web.Request) -> web.StreamResponse:
    case_id = request.match_info["case"]
    form = await _form(request)
    decision = str(form.get("decision", ""))
    categories = [str(c) for c in form.getall("categories", [])] if hasattr(form, "getall") else []
    try:
        case = await request.app[STATE_KEY].rt.cases.decide(
            case_id,
            request[CALLER_KEY],
            decision=decision,
            justification=str(form.get("justification", "")),
            categories=categories if decision == "approve" and categories else None,
        )
    except GatewayError as error:  # shown on the case page with its code; what was typed is kept
        return await _case_page(
            request,
            case_id,
            status=http_status(error),
            error={"code": error.code, "detail": error.message},
            form={"justification": str(form.get("justification", ""))},
        )
    return _with_flash(request, _redirect(f"{PREFIX}/cases/{case['id']}"), decision)


@routes.post(f"{PREFIX}/cases/{{case}}/assign")
@page
async def assign_case(request: web.Request) -> web.StreamResponse:
    case_id = request.match_info["case"]
    form = await _form(request)
    try:
        case = await request.app[STATE_KEY].rt.cases.assign(case_id, request[CALLER_KEY], str(form.get("assignee", "")))
    except GatewayError as error:
        return await _case_page(request, case_id, status=http_status(error), error={"code": error.code, "detail": error.message})
    return _with_flash(request, _redirect(f"{PREFIX}/cases/{case['id']}"), "assign")


@routes.post(f"{PREFIX}/cases/{{case}}/object")
@page
async def object_case(request: web.Request) -> web.StreamResponse:
    case_id = request.match_info["case"]
    form = await _form(request)
    fields = {name: str(form.get(name, "")) for name in ("ground", "authority", "date")}
    try:
        case = await request.app[STATE_KEY].rt.cases.object(case_id, request[CALLER_KEY], **fields)
    except GatewayError as error:
        return await _case_page(request, case_id, status=http_status(error), error={"code": error.code, "detail": error.message}, form=fields)
    return _with_flash(request, _redirect(f"{PREFIX}/cases/{case['id']}"), "object")


# --- the rules and explain ------------------------------------------------------------------


def _policy(request: web.Request) -> dict[str, Any]:
    config = request.app[STATE_KEY].rt.config
    legal = config.legal
    return {
        "authorities": sorted(legal.authorities.values(), key=lambda a: (a.jurisdiction, a.name)),
        "instruments": sorted(legal.instruments.values(), key=lambda i: i.id),
        "agreements": sorted(legal.agreements.values(), key=lambda a: a.id),
        "blocking": sorted(legal.blocking.values(), key=lambda b: b.id),
        "establishments": sorted(legal.establishments.values(), key=lambda e: e.id),
        "emergency": legal.emergency,
        "extraterritorial": legal.extraterritorial,
        "voluntary": legal.voluntary,
        "review_days": legal.review_days,
        "regions": sorted(config.regions.values(), key=lambda r: r.id),
        "categories": config.categories,
        "jurisdictions": {code: j.name for code, j in config.jurisdictions.items()},
    }


def _names(request: web.Request) -> dict[str, dict[str, str]]:
    """Human names of instruments and authorities, by id: what the pages show, with the id on hover and in a ``<code>``."""
    legal = request.app[STATE_KEY].rt.config.legal
    return {
        "instruments": {i.id: i.name for i in legal.instruments.values()},
        "authorities": {a.id: a.name for a in legal.authorities.values()},
    }


def _rules_page(
    request: web.Request,
    *,
    status: int = 200,
    explained: dict[str, Any] | None = None,
    error: dict[str, str] | None = None,
    form: Mapping[str, str] | None = None,
) -> web.Response:
    rt = request.app[STATE_KEY].rt
    return _render(
        request,
        "rules.html",
        status=status,
        policy=_policy(request),
        names=_names(request),
        digest=rt.config.digest,
        source=Path(rt.config.source).name if rt.config.source else "",
        explained=explained,
        error=error,
        form=dict(form or {}),
    )


@routes.get(f"{PREFIX}/rules")
@page
async def rules(request: web.Request) -> web.StreamResponse:
    return _rules_page(request)


@routes.post(f"{PREFIX}/explain")
@page
async def explain(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    fields = {"order": str(form.get("order", "")).strip(), "at": str(form.get("at", "")).strip()}
    if not fields["order"]:
        return _rules_page(request, status=400, error={"code": "invalid-request", "detail": "paste a signed order (compact JWS)"}, form=fields)
    at = None
    if fields["at"]:
        try:
            at = parse_time(fields["at"])
        except ValueError:
            return _rules_page(request, status=400, error={"code": "invalid-time", "detail": f"`{fields['at']}` is not an RFC 3339 time"}, form=fields)
    try:
        explanation = await request.app[STATE_KEY].rt.orders.explain(fields["order"], at=at)
    except OrderRejected as rejected:
        error = {"code": rejected.code, "detail": f"{rejected.rule}: {rejected.message}"}
        return _rules_page(request, status=422, error=error, form=fields)
    except GatewayError as error:
        return _rules_page(request, status=http_status(error), error={"code": error.code, "detail": error.message}, form=fields)
    document = explanation.document
    explained = {
        "id": document.id,
        "authority": document.authority,
        "served_by": document.served_by,
        "instrument": document.instrument,
        "subjects": document.subjects,
        "categories": document.categories,
        "received_at": document.received_at,
        "expires_at": document.expires_at,
        "whole_order": document.whole_order,
        "explain": explanation.explain,
        "items": [
            {
                "subject": i.subject,
                "region": i.region,
                "category": i.category,
                "outcome": i.outcome,
                "basis": i.basis,
                "rule": i.rule,
                "reasons": i.reasons,
                "obligations": i.obligations,
                "record_count": i.record_count,
            }
            for i in document.items
        ],
        "trace": explanation.trace,
    }
    return _rules_page(request, explained=explained, form=fields)


# --- what a candidate policy changes ---------------------------------------------------------

# a pasted candidate arrives percent-encoded (up to three bytes a byte) unless the form is sent as multipart
CHANGES_FORM_BYTES = 3 * MAX_CANDIDATE_BYTES + MAX_FORM_BYTES


def _changes_page(
    request: web.Request,
    *,
    status: int = 200,
    analysis: Analysis | None = None,
    error: dict[str, str] | None = None,
    pasted: str = "",
) -> web.Response:
    rt = request.app[STATE_KEY].rt
    names = _names(request)
    if analysis is not None:
        names = {kind: {**names[kind], **analysis.names.get(kind, {})} for kind in names}
    return _render(
        request,
        "changes.html",
        status=status,
        analysis=analysis,
        names=names,
        digest=rt.config.digest,
        max_mib=MAX_CANDIDATE_BYTES // (1024 * 1024),
        error=error,
        pasted=pasted,
    )


@routes.get(f"{PREFIX}/changes")
@page
async def changes(request: web.Request) -> web.StreamResponse:
    return _changes_page(request)


@routes.post(f"{PREFIX}/changes")
@page(form_limit=CHANGES_FORM_BYTES, uploads=True)
async def analyse_changes(request: web.Request) -> web.StreamResponse:
    """Decide the whole decision space under the running policy and a candidate; show what changes. The running policy stays."""
    form = await _form(request)
    upload = form.get("file")
    pasted = form.get("candidate", "")
    pasted = pasted if isinstance(pasted, str) else ""
    candidate = upload if isinstance(upload, bytes) and upload else pasted.encode("utf-8")
    if not candidate.strip():
        error = {"code": "invalid-request", "detail": "paste a candidate `regions.toml` or choose its file"}
        return _changes_page(request, status=400, error=error)
    rt = request.app[STATE_KEY].rt
    assert rt.analysis is not None
    try:
        analysis = await rt.analysis.analyse(candidate, caller=request[CALLER_KEY], session=session_hash(request[SESSION_KEY]))
    except GatewayError as error:
        return _changes_page(request, status=http_status(error), error={"code": error.code, "detail": error.message}, pasted=pasted)
    if not analysis.valid:
        count = len(analysis.findings)
        error = {"code": "config-invalid", "detail": f"{count} problem{'s' if count != 1 else ''} in the candidate; nothing was compared"}
        return _changes_page(request, status=422, analysis=analysis, error=error, pasted=pasted)
    return _changes_page(request, analysis=analysis, pasted=pasted)
