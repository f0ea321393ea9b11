"""Token authentication and role checks for handlers: this gateway's bearer tokens, and peers' federation tokens."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import Forbidden, Unauthenticated
from gateway.federation import is_federation_token
from gateway.model import Caller
from gateway.tokens import TokenInvalid
from gateway.web.state import CALLER_KEY, STATE_KEY


def authenticate(request: web.Request, *roles: str, schemes: tuple[str, ...] = ("bearer",)) -> Caller:
    """The verified caller, who must hold one of ``roles``; 401 or 403 otherwise.

    ``schemes`` are the tokens the route takes: ``bearer`` (this gateway's token issuer) and ``federation`` (a
    request a peer gateway forwards; its caller is the original caller, ``via`` that peer). A federation token
    is never a bearer token (401 on a route that takes only those); a valid bearer token on a route that takes
    only federation tokens is 403.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("send `Authorization: Bearer <token>`; make one with `gateway token issue`")
    state = request.app[STATE_KEY]
    now = state.rt.settings.clock()
    # A token remembered by the bearer verifier came this way before and was no federation token then:
    # its header is not parsed again.
    if token not in state.tokens and is_federation_token(token):
        verifier = state.rt.federation_verifier
        if "federation" not in schemes:
            raise TokenInvalid("a peer gateway's federation token is not a bearer token; this route takes only bearer tokens")
        if verifier is None:
            raise TokenInvalid("this gateway has no peers, so it takes no federation token")
        caller = verifier.verify(token, method=request.method, path=request.raw_path, now=now)
    else:
        caller = state.tokens.verify(token, now=now)
        if "bearer" not in schemes:
            raise Forbidden("only a peer gateway may call this route, with a federation token")
    if roles and caller.role not in roles:
        raise Forbidden(f"role `{caller.role}` may not call this route; it needs {' or '.join(f'`{r}`' for r in roles)}")
    request[CALLER_KEY] = caller
    return caller
