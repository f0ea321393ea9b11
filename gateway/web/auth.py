"""Bearer-token authentication and role checks for handlers."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import Forbidden, Unauthenticated
from gateway.model import Caller
from gateway.web.state import CALLER_KEY, STATE_KEY


def authenticate(request: web.Request, *roles: str) -> Caller:
    """The verified caller, who must hold one of ``roles``; 401 or 403 otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send `Authorization: Bearer <token>`; make one with `gateway token issue`")
    state = request.app[STATE_KEY]
    caller = state.tokens.verify(token.strip(), now=state.rt.settings.clock())
    if roles and caller.role not in roles:
        raise Forbidden(f"role `{caller.role}` may not call this route; it needs {' or '.join(f'`{r}`' for r in roles)}")
    request[CALLER_KEY] = caller
    return caller
