"""Console sessions: a random id in the browser, the session itself in the control store.

Signing in to the legal console with a verified bearer token opens a session:
a random 256-bit id, given to the browser (the console's cookie) and never
stored. The control store keeps ``console-sessions/<sha256 of the id>`` with
the principal, the role and when the session began and ends, never the id nor
the token, so whoever can read the store cannot act as a signed-in lawyer.
Every replica sees the same sessions. A session ends at the earlier of the
token's expiry and the configured longest session; signing out deletes it at
once, so an old cookie is worthless.

Sign-in and sign-out are written to the ledger (``console.signed-in``,
``console.signed-out``) with the principal and the session's hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.model import Caller, Clock, isoformat, parse_time
from gateway.services.audit_log import AuditLog
from gateway.stores import ObjectNotFound, RecordStore

log = logging.getLogger("gateway.sessions")

FOLDER = "console-sessions/"
SWEEP_BATCH = 200  # sessions read per sweep: bounded work per tick, the next sweep goes on where this one stopped


def session_hash(session_id: str) -> str:
    """What the store and the ledger know a session by: its id cannot be recovered from it."""
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    hash: str
    caller: Caller
    created_at: datetime
    expires_at: datetime


class ConsoleSessions:
    """Open, find and end console sessions; clear away expired ones."""

    def __init__(self, *, control: RecordStore, audit: AuditLog, clock: Clock, max_age: timedelta) -> None:
        self.control = control
        self.audit = audit
        self.clock = clock
        self.max_age = max_age
        self._after = ""  # where the next sweep starts

    async def open(self, caller: Caller, token_expires: float) -> tuple[str, Session]:
        """A new session for ``caller``, whose token expires at ``token_expires`` (seconds since the epoch): its id and record.

        The session ends at the earlier of the token's expiry and ``max_age`` from now.
        """
        now = self.clock()
        latest = now + self.max_age
        expires = latest if token_expires >= latest.timestamp() else datetime.fromtimestamp(token_expires, tz=now.tzinfo)
        session_id = secrets.token_urlsafe(32)
        session = Session(session_hash(session_id), Caller(caller.principal, caller.role), now, expires)
        body = {"principal": caller.principal, "role": caller.role, "created_at": isoformat(now), "expires_at": isoformat(expires)}
        await self.control.put(FOLDER + session.hash, json.dumps(body, sort_keys=True).encode(), {}, if_absent=True)
        try:
            await self.audit.record("console.signed-in", {"principal": caller.principal, "session": session.hash, "expires_at": isoformat(expires)})
        except BaseException:
            await self._forget(session.hash)  # a sign-in the ledger does not show must not work
            raise
        return session_id, session

    async def find(self, session_id: str) -> Session | None:
        """The live session of ``session_id``; None when it is unknown, ended or expired (an expired one is deleted)."""
        if not session_id:
            return None
        digest = session_hash(session_id)
        try:
            stored = await self.control.get(FOLDER + digest)
        except ObjectNotFound:
            return None
        session = _read(digest, stored.body)
        if session is None or session.expires_at <= self.clock():
            await self._forget(digest)
            return None
        return session

    async def close(self, session_id: str) -> Session | None:
        """End a session now (sign-out): deleted first, so its id stops working even if the ledger then fails."""
        session = await self.find(session_id)
        if session is None:
            return None
        await self._forget(session.hash)
        await self.audit.record("console.signed-out", {"principal": session.caller.principal, "session": session.hash})
        return session

    async def sweep(self, batch: int = SWEEP_BATCH) -> int:
        """Delete expired sessions, reading at most ``batch`` of them; the next sweep starts after the last one read."""
        keys = await self.control.list(FOLDER)
        chosen = [k for k in keys if k > self._after][:batch]
        if len(chosen) < batch:  # wrap around to the start
            chosen += [k for k in keys if k <= self._after and k not in chosen][: batch - len(chosen)]
        self._after = chosen[-1] if chosen and len(keys) > batch else ""
        now = self.clock()
        removed = 0
        for key in chosen:
            digest = key[len(FOLDER) :]
            try:
                session = _read(digest, (await self.control.get(key)).body)
            except ObjectNotFound:
                continue
            if session is None or session.expires_at <= now:
                await self._forget(digest)
                removed += 1
        return removed

    async def _forget(self, digest: str) -> None:
        with contextlib.suppress(ObjectNotFound):  # another replica (or the sweeper) got there first
            await self.control.delete(FOLDER + digest)


def _read(digest: str, body: bytes) -> Session | None:
    """A stored session, or None when it cannot be read (treated as ended)."""
    try:
        data = json.loads(body)
        return Session(digest, Caller(str(data["principal"]), str(data["role"])), parse_time(data["created_at"]), parse_time(data["expires_at"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("console session %s… is unreadable; it is ended", digest[:12])
        return None
