"""Console sessions: a random id in the cookie, the session in the control store, ended by sign-out or age; `Secure` behind a trusted proxy."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.errors import Unauthenticated
from gateway.tokens import verify_token
from gateway.web.app import create_app
from gateway.web.console import CSRF_FIELD, LOGIN_COOKIE, SESSION_COOKIE
from gateway.web.state import STATE_KEY
from tests.console.support import JUSTIFICATION, REVIEW, console_as, csrf_from, legal_token, sign_in, submitted
from tests.orders_support import ledger_entries, prepare_authorities
from tests.support import SHIPPED_CONFIG, Env, self_signed_certificate

MakeClient = Callable[..., Awaitable[TestClient]]


def _session_of(client: TestClient) -> str:
    return next(c.value for c in client.session.cookie_jar if c.key == SESSION_COOKIE)


def _as(session: str) -> dict[str, str]:
    """Request headers that present ``session`` as the console cookie, from any client."""
    return {"Cookie": f"{SESSION_COOKIE}={session}"}


def _configure(env: Env, old: str, new: str) -> None:
    """Change one line of the shipped regions.toml in the env's copy (before an app starts on it)."""
    text = SHIPPED_CONFIG.read_text()
    assert old in text
    env.settings.config_path.write_text(text.replace(old, new, 1))


def _tls_context(folder: Path) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1, made now."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*self_signed_certificate(folder))
    return context


async def _signed_in_cookie(client: TestClient, env: Env, headers: dict[str, str]):
    """Sign in sending ``headers`` with both requests; the session cookie as set.

    The sign-in nonce cookie is sent by hand: the client's jar sends no `Secure` cookie over plain http.
    """
    client.session.cookie_jar.clear()
    form = await client.get("/console/login", headers=headers)
    nonce = form.cookies[LOGIN_COOKIE].value
    response = await client.post(
        "/console/login",
        data={"token": legal_token(env, "alice"), CSRF_FIELD: csrf_from(await form.text())},
        headers={**headers, "Cookie": f"{LOGIN_COOKIE}={nonce}"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    return response.cookies[SESSION_COOKIE]


async def test_the_session_cookie_is_a_random_id_not_the_token_and_does_not_verify_as_one(client: TestClient, env: Env) -> None:
    token = legal_token(env, "alice")
    await sign_in(client, token)
    session = _session_of(client)
    assert session != token and token not in session and session.count(".") == 0 and len(session) >= 43
    rt = client.app[STATE_KEY].rt
    with pytest.raises(Unauthenticated):
        verify_token(session, key=rt.token_key, identity=rt.config.identity, now=env.clock(), regions=rt.config.regions.keys())


async def test_the_sign_in_page_tells_the_lawyer_the_browser_keeps_a_session_id_and_not_the_token(client: TestClient) -> None:
    page = await (await client.get("/console/login")).text()
    assert "keeps only a random session id" in page
    assert "token is kept" not in page


async def test_the_control_store_keeps_neither_the_session_id_nor_the_token(client: TestClient, env: Env) -> None:
    token = legal_token(env, "alice")
    await sign_in(client, token)
    session = _session_of(client)
    stored = b"".join(p.read_bytes() for p in (env.data_dir / "control").rglob("*") if p.is_file())
    assert b"alice" in stored  # the session is there, bound to its principal...
    assert session.encode() not in stored and token.encode() not in stored  # ...under a hash, without the token


async def test_a_session_cookie_replayed_after_sign_out_is_sent_to_sign_in(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    session = _session_of(client)
    signed_out = await client.post("/console/logout", data={CSRF_FIELD: csrf}, allow_redirects=False)
    assert signed_out.status == 303
    client.session.cookie_jar.clear()
    replayed = await client.get("/console/", headers=_as(session), allow_redirects=False)
    assert (replayed.status, replayed.headers["Location"]) == (303, "/console/login")


async def test_an_unknown_session_is_sent_to_sign_in_and_its_cookie_deleted(client: TestClient) -> None:
    response = await client.get("/console/", headers=_as("x" * 43), allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/console/login")
    assert response.cookies[SESSION_COOKIE].value == ""


async def test_a_session_past_its_longest_age_is_sent_to_sign_in_though_its_token_is_still_valid(env: Env, make_client: MakeClient) -> None:
    _configure(env, "session_max_age_seconds = 28800", "session_max_age_seconds = 600")
    client = await make_client()
    await console_as(client, env, "alice")  # the token lasts an hour
    env.clock.advance(minutes=11)
    response = await client.get("/console/", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/console/login")


async def test_the_session_cookie_lasts_no_longer_than_the_longest_session(env: Env, make_client: MakeClient) -> None:
    _configure(env, "session_max_age_seconds = 28800", "session_max_age_seconds = 600")
    client = await make_client()
    response = await sign_in(client, legal_token(env, "alice"))
    assert int(response.cookies[SESSION_COOKIE]["max-age"]) == 600


async def test_a_csrf_token_from_another_session_of_the_same_lawyer_is_forbidden(client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    token = legal_token(env, "alice")
    await sign_in(client, token)
    first = await client.get("/console/")
    old_csrf = csrf_from(await first.text())
    await sign_in(client, token)  # the same token, a new session
    form = {"decision": "approve", "justification": JUSTIFICATION, CSRF_FIELD: old_csrf}
    response = await client.post(f"/console/cases/{item['case']}/decide", data=form, allow_redirects=False)
    assert response.status == 403 and "csrf-invalid" in await response.text()
    assert ledger_entries(env, "case.approval") == []


async def test_signing_in_and_out_is_in_the_ledger_with_the_principal_and_never_the_session_id(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    session = _session_of(client)
    await client.post("/console/logout", data={CSRF_FIELD: csrf}, allow_redirects=False)
    signed_in, signed_out = ledger_entries(env, "console.signed-in"), ledger_entries(env, "console.signed-out")
    assert [e["data"]["principal"] for e in signed_in + signed_out] == ["alice", "alice"]
    assert signed_in[0]["data"]["session"] == signed_out[0]["data"]["session"]
    assert session not in env.settings.ledger_path.read_text()


async def test_a_session_opened_on_one_replica_works_on_another_until_signed_out_there(env: Env, make_client: MakeClient) -> None:
    first, second = await make_client(), await make_client(chain_id="replica-2")
    await console_as(first, env, "alice")
    session = _session_of(first)
    seen = await second.get("/console/", headers=_as(session), allow_redirects=False)
    assert seen.status == 200 and "alice" in await seen.text()
    await second.post("/console/logout", data={CSRF_FIELD: csrf_from(await seen.text())}, headers=_as(session), allow_redirects=False)
    first.session.cookie_jar.clear()
    replayed = await first.get("/console/", headers=_as(session), allow_redirects=False)
    assert (replayed.status, replayed.headers["Location"]) == (303, "/console/login")


async def test_the_sweeper_deletes_expired_sessions_from_the_control_store(client: TestClient, env: Env) -> None:
    await console_as(client, env, "alice")
    sessions = client.app[STATE_KEY].rt.sessions
    assert await sessions.control.list("console-sessions/") != []
    env.clock.advance(hours=2)
    assert await sessions.sweep() == 1
    assert await sessions.control.list("console-sessions/") == []


async def test_the_sweeper_reads_a_bounded_batch_and_goes_on_where_it_stopped(client: TestClient, env: Env) -> None:
    for _ in range(3):
        await sign_in(client, legal_token(env, "alice"))
    sessions = client.app[STATE_KEY].rt.sessions
    env.clock.advance(hours=2)
    assert [await sessions.sweep(batch=2), await sessions.sweep(batch=2)] == [2, 1]
    assert await sessions.control.list("console-sessions/") == []


async def test_the_cookie_is_secure_when_a_trusted_proxy_says_the_request_came_over_https(env: Env, make_client: MakeClient) -> None:
    _configure(env, "trusted_proxies = []", 'trusted_proxies = ["127.0.0.0/8"]')  # the test client connects from 127.0.0.1
    client = await make_client()
    cookie = await _signed_in_cookie(client, env, headers={"X-Forwarded-Proto": "https"})
    assert cookie["secure"]


async def test_the_cookie_is_secure_when_the_browser_reaches_the_gateway_over_tls(env: Env, tmp_path: Path, aiohttp_server, aiohttp_client) -> None:
    prepare_authorities(env)
    server = await aiohttp_server(create_app(env.settings, registry=CollectorRegistry()), ssl=_tls_context(tmp_path))
    client = await aiohttp_client(server, connector=aiohttp.TCPConnector(ssl=False))  # a self-signed certificate made for this test
    response = await sign_in(client, legal_token(env, "alice"))
    assert response.status == 303 and response.cookies[SESSION_COOKIE]["secure"]


async def test_a_forwarded_https_header_from_an_untrusted_peer_is_ignored(env: Env, make_client: MakeClient) -> None:
    _configure(env, "trusted_proxies = []", 'trusted_proxies = ["10.0.0.0/8"]')
    client = await make_client()
    cookie = await _signed_in_cookie(client, env, headers={"X-Forwarded-Proto": "https"})
    assert not cookie["secure"]


async def test_a_forwarded_chain_with_a_plain_http_hop_is_not_secure_even_from_a_trusted_proxy(env: Env, make_client: MakeClient) -> None:
    _configure(env, "trusted_proxies = []", 'trusted_proxies = ["127.0.0.1"]')
    client = await make_client()
    cookie = await _signed_in_cookie(client, env, headers={"X-Forwarded-Proto": "https, http"})
    assert not cookie["secure"]
