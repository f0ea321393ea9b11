"""Who may call what: every route of the app, called by every kind of caller.

``MATRIX`` is the authorization contract, written once: each route (method and
path template) and who may call it. The tests drive a real server over
``create_app`` as a client would, with tokens made by the gateway's own token
code, and check the answer for each route and each caller; another test checks
that the matrix names exactly the app's routes, so a new route needs a row.

README's "Who may call what" table is rendered from ``MATRIX`` and checked
against it. After changing the matrix, print the new table with
``python -m tests.web.test_authorization_matrix`` and paste it between the
README's ``authorization-matrix`` markers.

Requests carry minimal input (unknown ids, empty bodies), so an allowed caller
is often told what is wrong with its request (400, 404, 409, 422...): the
matrix asserts only that it is never refused as a caller (401, 403) and never
meets a server error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ed25519
from prometheus_client import CollectorRegistry

from gateway.config import load_config
from gateway.federation import issue_federation_token
from gateway.keys import load_private_key, resolve
from gateway.model import ROLES, Caller
from gateway.tokens import issue_token
from gateway.web.app import create_app
from gateway.web.console import CSRF_FIELD, FLASH_COOKIE, SESSION_COOKIE
from tests.console.support import csrf_from, sign_in
from tests.orders_support import prepare_authorities
from tests.support import ROOT, Env

OPEN = "open"  # anyone, with or without a token
PEER = "peer"  # only a peer gateway, with a federation token (gateway.federation): every bearer token is refused
CONSOLE = "console"  # a console route: needs a browser session, which only a `legal` token can open
SIGN_IN = "sign-in"  # the console's sign-in form: opens a session for a `legal` token, refuses any other

# route -> the roles whose bearer token may call it, or OPEN, CONSOLE, SIGN_IN, PEER
MATRIX: dict[str, tuple[str, ...] | str] = {
    "PUT /v1/subjects/{subject}": ("service",),
    "PUT /v1/subjects/{subject}/records/{key}": ("service",),
    "GET /v1/subjects/{subject}/records/{key}": ("service",),
    "DELETE /v1/subjects/{subject}/records/{key}": ("service",),
    "GET /v1/subjects/{subject}/records": ("service",),
    "POST /v1/orders": ("intake",),
    "GET /v1/orders/{order}": ("intake", "legal"),
    "GET /v1/orders/{order}/package": ("intake",),
    "POST /v1/explain": ("legal",),
    "GET /v1/cases": ("legal",),
    "GET /v1/cases/{case}": ("legal",),
    "POST /v1/cases/{case}/approvals": ("legal",),
    "POST /v1/cases/{case}/assignee": ("legal",),
    "POST /v1/cases/{case}/objections": ("legal",),
    "POST /v1/support-access": ("support",),
    "POST /v1/cases/{case}/customer-approval": ("service",),  # and only a consent relay: NOTES
    "GET /v1/support-access/{case}/records/{key}": ("support",),
    "GET /v1/reports/transparency": ("legal",),
    "GET /healthz": OPEN,
    "GET /readyz": OPEN,
    "GET /metrics": OPEN,  # by default; with `serve --metrics-auth`, METRICS_AUTH
    "GET /openapi.json": OPEN,
    "GET /console": OPEN,  # a redirect to /console/
    "GET /console/login": OPEN,
    "POST /console/login": SIGN_IN,
    "POST /console/logout": CONSOLE,
    "GET /console/": CONSOLE,
    "GET /console/cases/{case}": CONSOLE,
    "POST /console/cases/{case}/decide": CONSOLE,
    "POST /console/cases/{case}/assign": CONSOLE,
    "POST /console/cases/{case}/object": CONSOLE,
    "GET /console/rules": CONSOLE,
    "POST /console/explain": CONSOLE,
    "GET /console/changes": CONSOLE,
    "POST /console/changes": CONSOLE,
    "GET /v1/federation/subjects/{subject}": PEER,
    "POST /v1/federation/orders": PEER,
}
# route -> the roles a peer gateway's federation token may carry there (the original caller's), on a gateway with peers
PEER_ROUTES: dict[str, tuple[str, ...]] = {
    "PUT /v1/subjects/{subject}": ("service",),
    "PUT /v1/subjects/{subject}/records/{key}": ("service",),
    "GET /v1/subjects/{subject}/records/{key}": ("service",),
    "DELETE /v1/subjects/{subject}/records/{key}": ("service",),
    "GET /v1/subjects/{subject}/records": ("service",),
    "GET /v1/federation/subjects/{subject}": ("service", "intake"),
    "POST /v1/federation/orders": ("intake",),
}
# /metrics when the gateway is served with `--metrics-auth` (Settings.metrics_public = False)
METRICS = "GET /metrics"
METRICS_AUTH: tuple[str, ...] = ("ops",)

# Finer checks inside a role, shown under the README's table. The service token
# the matrix calls with is the shipped consent relay's.
NOTES = {
    "POST /v1/cases/{case}/customer-approval": "only a service named in `support_access.consent_relays` (the customer portal); "
    "any other service gets 403 `consent-relay-not-allowed`",
}
RELAY = ("customer-portal", "us-east-1", "customer-consent")  # service, region, purpose

NO_TOKEN = "no token"
# kinds of token that must never authenticate; `federation` is a peer's token, which a gateway without peers never takes
UNTRUSTED = ("expired", "wrong-audience", "garbage", "federation")
CALLERS = (*ROLES, NO_TOKEN, *UNTRUSTED)
LABELS = {
    NO_TOKEN: "with no token",
    "expired": "with an expired token",
    "wrong-audience": "with a wrong-audience token",
    "garbage": "with a garbage token",
    "federation": "with a peer's federation token",
}
REFUSED_AS = {
    NO_TOKEN: "unauthenticated",
    "expired": "token-expired",
    "wrong-audience": "token-invalid",
    "garbage": "token-invalid",
    "federation": "token-invalid",
}

# what a path's placeholders are filled with: ids nothing has
PLACEHOLDERS = {"subject": "nobody", "key": "nothing", "order": "no-such-order", "case": "no-such-case"}
SIGN_IN_PAGE = "/console/login"


# --- the callers --------------------------------------------------------------------------


def _caller(role: str) -> Caller:
    if role == "service":
        service, region, purpose = RELAY
        return Caller(service, "service", service=service, region=region, purpose=purpose)
    return Caller(f"{role}-person", role)


def _role_token(env: Env, role: str) -> str:
    return env.token(_caller(role))


def _token(env: Env, caller: str, role: str) -> str | None:
    """The bearer token ``caller`` presents; an untrusted kind is made from a token of ``role``.

    ``expired`` moves the app's clock past its expiry; ``wrong-audience`` is signed
    with the gateway's own token key for another audience; ``federation`` is a peer
    gateway's token for the request, signed with a key of its own.
    """
    if caller in ROLES:
        return _role_token(env, caller)
    if caller == NO_TOKEN:
        return None
    if caller == "expired":
        token = env.token(_caller(role), ttl=timedelta(minutes=5))
        env.clock.advance(minutes=10)
        return token
    if caller == "wrong-audience":
        config = load_config(env.settings.config_path)
        key = load_private_key(resolve(env.data_dir, config.identity.token_private_key))
        identity = dataclasses.replace(config.identity, audience="another-gateway")
        return issue_token(_caller(role), key=key, identity=identity, now=env.clock())
    if caller == "federation":
        key = ed25519.Ed25519PrivateKey.generate()
        return issue_federation_token(
            _caller(role), key=key, issuer="peer", audience="gateway", method="GET", path="/", request_id="r-1", now=env.clock(), ttl=timedelta(seconds=60)
        )
    assert caller == "garbage"
    return "not.a.token"


def _headers(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


# --- the requests ---------------------------------------------------------------------------


def _path(route: str) -> tuple[str, str]:
    method, _, template = route.partition(" ")
    return method, template.format(**PLACEHOLDERS)


async def _call(client: TestClient, route: str, headers: dict[str, str]) -> ClientResponse:
    """``route`` with its placeholders filled and, for a write, an empty JSON object as its body."""
    method, path = _path(route)
    body = b"{}" if method in ("PUT", "POST") else None
    headers = {**headers, "Content-Type": "application/json"} if body is not None else headers
    return await client.request(method, path, data=body, headers=headers, allow_redirects=False)


async def _console_call(client: TestClient, route: str, csrf: str = "") -> ClientResponse:
    """``route`` as the browser sends it: a GET, or a POST of a form carrying ``csrf``."""
    method, path = _path(route)
    data = {CSRF_FIELD: csrf} if method == "POST" else None
    return await client.request(method, path, data=data, allow_redirects=False)


def _sent_to_sign_in(response: ClientResponse) -> bool:
    """The console's answer to a request without a live session (a handler's own redirect there, on sign-out, carries a flash)."""
    return response.status == 303 and response.headers["Location"] == SIGN_IN_PAGE and FLASH_COOKIE not in response.cookies


async def _code(response: ClientResponse) -> str:
    return (await response.json(content_type="application/problem+json"))["code"]


# --- the cases ------------------------------------------------------------------------------


def _cases(access: Callable[[tuple[str, ...] | str, str], bool]) -> list[Any]:
    """One case per (route, caller) the predicate picks, with an id that reads as the request."""
    cases = []
    for route, allowed in MATRIX.items():
        for caller in CALLERS:
            if access(allowed, caller):
                cases.append(pytest.param(route, caller, id=f"{route} {LABELS.get(caller, f'by {caller}')}"))
    return cases


def _bearer(allowed: tuple[str, ...] | str) -> bool:
    return isinstance(allowed, tuple)


def _token_route(allowed: tuple[str, ...] | str) -> bool:
    """A route that needs a token of some kind: a bearer token of some roles, or a peer's federation token."""
    return _bearer(allowed) or allowed == PEER


def _first_allowed(route: str) -> str:
    """The role the untrusted tokens are made for: one the route allows, so only the token's flaw refuses it."""
    allowed = MATRIX[route]
    if allowed == PEER:
        return PEER_ROUTES[route][0]
    return allowed[0] if isinstance(allowed, tuple) else "legal"


# --- bearer routes ----------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "caller"), _cases(lambda allowed, caller: _bearer(allowed) and caller in allowed))
async def test_an_allowed_role_is_never_refused_as_a_caller(client: TestClient, env: Env, route: str, caller: str) -> None:
    response = await _call(client, route, _headers(_token(env, caller, caller)))
    assert response.status not in (401, 403) and response.status < 500, await response.text()


@pytest.mark.parametrize(("route", "caller"), _cases(lambda allowed, caller: _bearer(allowed) and caller in ROLES and caller not in allowed))
async def test_a_role_that_is_not_allowed_is_refused_with_403_forbidden(client: TestClient, env: Env, route: str, caller: str) -> None:
    response = await _call(client, route, _headers(_token(env, caller, caller)))
    assert response.status == 403 and await _code(response) == "forbidden", await response.text()


@pytest.mark.parametrize(("route", "caller"), _cases(lambda allowed, caller: allowed == PEER and caller in ROLES))
async def test_a_bearer_token_of_any_role_is_refused_with_403_on_a_route_only_peer_gateways_call(
    client: TestClient, env: Env, route: str, caller: str
) -> None:
    response = await _call(client, route, _headers(_token(env, caller, caller)))
    assert response.status == 403 and await _code(response) == "forbidden", await response.text()


@pytest.mark.parametrize(("route", "caller"), _cases(lambda allowed, caller: _token_route(allowed) and caller not in ROLES))
async def test_a_caller_without_a_valid_token_is_refused_with_401_and_a_bearer_challenge(client: TestClient, env: Env, route: str, caller: str) -> None:
    response = await _call(client, route, _headers(_token(env, caller, _first_allowed(route))))
    assert response.status == 401 and await _code(response) == REFUSED_AS[caller], await response.text()
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize(("route", "caller"), _cases(lambda allowed, caller: allowed == OPEN))
async def test_an_open_route_is_never_refused_whatever_the_caller_sends(client: TestClient, env: Env, route: str, caller: str) -> None:
    response = await _call(client, route, _headers(_token(env, caller, "legal")))
    assert response.status not in (401, 403) and response.status < 500, await response.text()


# --- /metrics with `serve --metrics-auth` ---------------------------------------------------------


@pytest.fixture
async def metrics_auth_client(env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    prepare_authorities(env)
    settings = dataclasses.replace(env.settings, metrics_public=False)
    return await aiohttp_client(create_app(settings, registry=CollectorRegistry()))


@pytest.mark.parametrize("caller", CALLERS)
async def test_with_metrics_auth_only_an_ops_token_reads_metrics(metrics_auth_client: TestClient, env: Env, caller: str) -> None:
    response = await _call(metrics_auth_client, METRICS, _headers(_token(env, caller, "ops")))
    if caller in METRICS_AUTH:
        assert response.status == 200
    elif caller in ROLES:
        assert response.status == 403 and await _code(response) == "forbidden"
    else:
        assert response.status == 401 and await _code(response) == REFUSED_AS[caller]
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")


# --- console routes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "caller"), _cases(lambda allowed, caller: allowed == CONSOLE and caller == "legal"))
async def test_a_legal_session_reaches_each_console_route(client: TestClient, env: Env, route: str, caller: str) -> None:
    signed_in = await sign_in(client, _role_token(env, caller))
    assert signed_in.status == 303 and signed_in.headers["Location"] == "/console/"
    csrf = csrf_from(await (await client.get("/console/")).text())  # as a browser finds it, in the page's forms
    response = await _console_call(client, route, csrf)
    assert response.status not in (401, 403) and response.status < 500, await response.text()
    assert not _sent_to_sign_in(response)


@pytest.mark.parametrize(("route", "caller"), _cases(lambda allowed, caller: allowed == CONSOLE and caller in ROLES and caller != "legal"))
async def test_another_role_cannot_sign_in_so_each_console_route_sends_it_to_sign_in(client: TestClient, env: Env, route: str, caller: str) -> None:
    refused = await sign_in(client, _role_token(env, caller))
    assert refused.status == 403 and SESSION_COOKIE not in refused.cookies
    assert _sent_to_sign_in(await _console_call(client, route))


@pytest.mark.parametrize(("route", "caller"), _cases(lambda allowed, caller: allowed == CONSOLE and caller not in ROLES))
async def test_without_a_valid_token_there_is_no_session_and_each_console_route_sends_to_sign_in(client: TestClient, env: Env, route: str, caller: str) -> None:
    token = _token(env, caller, "legal")
    if token is not None:
        refused = await sign_in(client, token)
        assert refused.status == 401 and SESSION_COOKIE not in refused.cookies
    assert _sent_to_sign_in(await _console_call(client, route))


@pytest.mark.parametrize(("route", "caller"), _cases(lambda allowed, caller: allowed == SIGN_IN))
async def test_the_sign_in_form_opens_a_session_for_a_legal_token_only(client: TestClient, env: Env, route: str, caller: str) -> None:
    token = _token(env, caller, "legal")
    response = await sign_in(client, token or "")
    expected = {"legal": 303, NO_TOKEN: 400}.get(caller, 403 if caller in ROLES else 401)
    assert response.status == expected, await response.text()
    assert (SESSION_COOKIE in response.cookies) == (caller == "legal")


# --- the matrix itself ------------------------------------------------------------------------------


def _app_routes(app: web.Application) -> set[str]:
    """Each route as ``METHOD /path/{template}``, without the HEAD route aiohttp adds beside each GET."""
    routes = [(route.method, route.resource.canonical) for route in app.router.routes() if route.resource is not None]
    gets = {path for method, path in routes if method == "GET"}
    return {f"{method} {path}" for method, path in routes if not (method == "HEAD" and path in gets)}


def test_the_matrix_has_a_row_for_every_route_of_the_app_and_no_other(env: Env) -> None:
    served = _app_routes(create_app(env.settings, registry=CollectorRegistry()))
    assert not served - MATRIX.keys(), f"routes without a row in MATRIX: {sorted(served - MATRIX.keys())}"
    assert not MATRIX.keys() - served, f"rows in MATRIX for no route of the app: {sorted(MATRIX.keys() - served)}"


def test_the_roles_each_route_declares_in_its_contract_are_the_matrixs(env: Env) -> None:
    from gateway.web.contract import declared

    app = create_app(env.settings, registry=CollectorRegistry())
    disagree = []
    for route in app.router.routes():
        operation = declared(route.handler)
        if operation is None or route.method == "HEAD":
            continue
        name = f"{route.method} {route.resource.canonical}"  # type: ignore[union-attr]
        expected = MATRIX[name]
        bearer = "bearer" in operation.schemes
        access = OPEN if operation.is_open(env.settings) else operation.roles if bearer else PEER
        if access != expected:
            disagree.append(f"{name}: declares {operation.roles or OPEN}, the matrix says {expected}")
        if "federation" in operation.schemes and PEER_ROUTES.get(name) != operation.roles:
            disagree.append(f"{name}: takes a peer's token for {operation.roles}, PEER_ROUTES says {PEER_ROUTES.get(name)}")
        if "federation" not in operation.schemes and name in PEER_ROUTES:
            disagree.append(f"{name}: takes no peer's token, PEER_ROUTES says it does")
    assert disagree == []


# --- the README's table -------------------------------------------------------------------------------

README = ROOT / "README.md"
START, END = "<!-- authorization-matrix:start -->", "<!-- authorization-matrix:end -->"
COLUMNS = (*ROLES, "peer gateway", NO_TOKEN, "expired, wrong-audience or garbage token")


def _marks(route: str, allowed: tuple[str, ...] | str) -> list[str]:
    """The row's mark for each column: ✓, open, or the status the caller is answered."""
    if allowed == OPEN:
        return ["open"] * len(COLUMNS)
    note = f" [{list(NOTES).index(route) + 1}]" if route in NOTES else ""
    roles = ("legal",) if allowed in (CONSOLE, SIGN_IN) else () if allowed == PEER else allowed
    marks = ["✓" + note if role in roles else "403" for role in ROLES]
    peer = f"✓ ({', '.join(PEER_ROUTES[route])})" if route in PEER_ROUTES else "401"
    no_token = {CONSOLE: "sign-in", SIGN_IN: "400"}.get(str(allowed), "401")
    return [*marks, peer, no_token, "401"]


def render() -> str:
    """The README's table of who may call what, from MATRIX."""
    rows = [(f"`{route}`", _marks(route, allowed)) for route, allowed in MATRIX.items()]
    rows.insert(list(MATRIX).index(METRICS) + 1, (f"`{METRICS}` with `serve --metrics-auth`", _marks(METRICS, METRICS_AUTH)))
    lines = [
        "| route | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
        *(f"| {route} | " + " | ".join(marks) + " |" for route, marks in rows),
    ]
    notes = [f"[{n}] `{route}`: {text}." for n, (route, text) in enumerate(NOTES.items(), start=1)]
    notes.append(
        "A peer gateway (see Federation) calls with a federation token for one request, carrying the original caller: "
        "its column shows the roles that caller may hold there. A gateway without peers refuses every federation token (401)."
    )
    return "\n".join([*lines, "", *notes])


def test_the_readme_shows_the_matrix_as_rendered_from_it() -> None:
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, f"README.md lacks the markers {START} and {END}"
    shown = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert shown == render(), "README's table differs from MATRIX: print it with `python -m tests.web.test_authorization_matrix`"


if __name__ == "__main__":
    print(render())
