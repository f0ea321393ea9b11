"""The HTTP client to peer gateways: the one place that talks to them, over aiohttp.

Every request carries its own federation token (``gateway.federation``),
signed with this gateway's federation key for that peer, that method and that
path. Each peer gets one connection pool, with its ``connect_timeout`` and
``read_timeout`` (seconds to connect; to wait for each read of the answer),
and, for an ``https://`` peer, certificates verified against its ``ca_file``
or the system's trust store. aiohttp's errors become ``PeerUnavailable``
here, naming the peer: nothing from aiohttp leaks up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ed25519
from yarl import URL

from gateway.config import FederationSettings, Peer
from gateway.errors import StoreError
from gateway.federation import issue_federation_token
from gateway.keys import resolve
from gateway.model import Caller, Clock
from gateway.services.observer import NullObserver, Observer

CHUNK = 64 * 1024
SMALL_BODY = 256 * 1024  # the most read of an answer that is not streamed (a problem document, a lookup, an order's items)
# aiohttp's failures to reach a peer or to hear it out
_UNREACHABLE = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class PeerUnavailable(StoreError):
    """A peer gateway did not answer (refused, timed out, cut off); nothing is answered in its place."""

    code = "peer-unavailable"


class PeerRefused(PeerUnavailable):
    """A peer gateway refused this gateway's federation token: the two are not configured as each other's peers."""

    code = "peer-refused"


def unavailable(peer: Peer, what: str) -> PeerUnavailable:
    return PeerUnavailable(f"peer gateway `{peer.id}` that serves this data {what}; try again later", peer=peer.id)


@dataclass
class PeerAnswer:
    """A peer's answer: its status and headers, and its body, read (``body``) or to be streamed (``chunks``)."""

    peer: Peer
    status: int
    headers: Mapping[str, str]
    content_length: int | None
    body: bytes | None
    _response: aiohttp.ClientResponse

    @property
    def problem_code(self) -> str | None:
        """The stable ``code`` of the peer's problem document, if its answer is one (read whole)."""
        if self.body is None or not self.headers.get("Content-Type", "").startswith("application/problem+json"):
            return None
        try:
            code = json.loads(self.body).get("code")
        except (ValueError, AttributeError):
            return None
        return code if isinstance(code, str) else None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; ``PeerUnavailable`` if the peer stops sending."""
        if self.body is not None:
            yield self.body
            return
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK):
                yield chunk
        except _UNREACHABLE as exc:
            raise unavailable(self.peer, "stopped answering") from exc


class PeerClient:
    """Requests to peer gateways on behalf of a caller; one connection pool per peer, made when first used."""

    def __init__(
        self,
        federation: FederationSettings,
        peers: Mapping[str, Peer],
        *,
        key: ed25519.Ed25519PrivateKey,
        data_dir: Path,
        clock: Clock,
        observer: Observer | None = None,
    ) -> None:
        self.federation = federation
        self.peers = peers
        self.key = key
        self.data_dir = data_dir
        self.clock = clock
        self.observer = observer or NullObserver()
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, peer: Peer) -> aiohttp.ClientSession:
        session = self._sessions.get(peer.id)
        if session is None:
            tls: ssl.SSLContext | bool = True  # https: verified against the system's trust store
            if peer.ca_file is not None:
                tls = ssl.create_default_context(cafile=str(resolve(self.data_dir, peer.ca_file)))
            timeout = aiohttp.ClientTimeout(total=None, connect=peer.connect_timeout, sock_connect=peer.connect_timeout, sock_read=peer.read_timeout)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, ssl=tls), timeout=timeout, auto_decompress=False, raise_for_status=False
            )
            self._sessions[peer.id] = session
        return session

    def token(self, peer: Peer, caller: Caller, *, method: str, path: str, request_id: str) -> str:
        return issue_federation_token(
            caller,
            key=self.key,
            issuer=self.federation.id,
            audience=peer.id,
            method=method,
            path=path,
            request_id=request_id,
            now=self.clock(),
            ttl=timedelta(seconds=self.federation.token_seconds),
        )

    @contextlib.asynccontextmanager
    async def request(
        self,
        peer: Peer,
        caller: Caller,
        method: str,
        path: str,
        *,
        request_id: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        stream: bool = True,
    ) -> AsyncIterator[PeerAnswer]:
        """``method path`` (the raw path, with its query) at ``peer``, for ``caller``. A problem document, and with
        ``stream`` False any answer, is read whole (at most ``SMALL_BODY``); otherwise its body is streamed."""
        sent = {
            **(headers or {}),
            "Authorization": f"Bearer {self.token(peer, caller, method=method, path=path, request_id=request_id)}",
            "X-Request-ID": request_id,
        }
        url = URL(peer.url + path, encoded=True)
        try:
            response = await self._session(peer).request(method, url, headers=sent, data=body, allow_redirects=False)
        except _UNREACHABLE as exc:
            self.observer.peer_request(peer=peer.id, outcome="unavailable")
            raise unavailable(peer, "cannot be reached") from exc
        self.observer.peer_request(peer=peer.id, outcome="refused" if response.status == 401 else "answered")
        try:
            read = not stream or response.content_type == "application/problem+json"
            try:
                payload = await _read_small(response, peer) if read else None
            except _UNREACHABLE as exc:
                raise unavailable(peer, "stopped answering") from exc
            yield PeerAnswer(peer, response.status, response.headers, response.content_length, payload, response)
        finally:
            response.release()  # a body not read to its end closes the connection rather than reusing it

    async def json(self, peer: Peer, caller: Caller, method: str, path: str, *, request_id: str, body: Any = None) -> tuple[int, Any]:
        """(status, parsed JSON body or None) of a small JSON request to ``peer``."""
        data = None if body is None else json.dumps(body).encode()
        headers = {} if data is None else {"Content-Type": "application/json"}
        async with self.request(peer, caller, method, path, request_id=request_id, headers=headers, body=data, stream=False) as answer:
            try:
                return answer.status, json.loads(answer.body or b"null")
            except ValueError:
                return answer.status, None

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


async def _read_small(response: aiohttp.ClientResponse, peer: Peer) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > SMALL_BODY:
            raise unavailable(peer, f"answered with more than {SMALL_BODY} bytes where a short answer was due")
        chunks.append(chunk)
    return b"".join(chunks)
