"""Federation: which gateway owns a subject, and requests forwarded to it.

A gateway serves the regions it owns from its own stores. A subject whose home
region a peer owns is the peer's: every data-plane request for it is forwarded
to that peer, which decides with its own policy and writes its own ledger;
this gateway writes one ``federation.forwarded`` entry (peer, region, subject,
key, method, the peer's status and audit seq, the caller) and never answers
in the peer's place (a peer that does not answer is 503 ``peer-unavailable``).

Finding the owner (``route``): the home claim in this gateway's control store
first (claims never change, so an answer is kept in memory for good); for an
id without a claim, each peer is asked once (``GET
/v1/federation/subjects/{subject}``: one request per peer, never per region),
and the answer is written create-only as a claim here. A request a peer
forwarded is never forwarded again: it is served here, or refused with 403
``not-region-owner`` when its subject lives in another gateway's region.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from gateway.config import Config, Peer
from gateway.errors import Conflict, GatewayError
from gateway.model import Caller, is_identifier
from gateway.peers import PeerAnswer, PeerClient, PeerRefused, PeerUnavailable
from gateway.services.audit_log import AuditLog
from gateway.services.documents import PENDING, Document, Item
from gateway.services.records import RecordService, not_region_owner, who

log = logging.getLogger("gateway.federation")

HOMES_KEPT = 100_000  # subjects whose home region this process remembers (claims never change)
ASKED_AT_ONCE = 16  # an order's subjects looked up at once
FEDERATION_RULE = "federation"
# a peer's item, as merged: its decision (not its state now, which the peer's own document shows)
MERGED_KEYS = ("subject", "region", "category", "profile_sha256", "outcome", "basis", "reasons", "obligations", "rule", "damaged_records")


@dataclass(frozen=True)
class Route:
    """Where a request goes: the peer that owns ``region``, the subject's home."""

    peer: Peer
    region: str


class Federation:
    """Routes requests for peers' subjects to them, and answers peers' questions about this gateway's subjects."""

    def __init__(self, *, config: Config, records: RecordService, client: PeerClient, audit: AuditLog) -> None:
        self.config = config
        self.records = records
        self.client = client
        self.audit = audit
        self._homes: dict[str, str] = {}  # subject -> home region, from claims (which never change)

    # --- who owns a subject ------------------------------------------------------

    async def route(self, subject_id: str, caller: Caller, *, request_id: str) -> Route | None:
        """The peer to forward a request about ``subject_id`` to; None to serve it here (this gateway's subject, or unknown).

        A caller that came through a peer (``via``) is served here or refused (``not-region-owner``): never forwarded again."""
        region = await self.home(subject_id, caller, request_id=request_id)
        return None if region is None else self._route(region, caller)

    async def registration(self, subject_id: str, home_region: str, caller: Caller, *, request_id: str) -> Route | None:
        """Where a registration (or change) of ``subject_id`` with ``home_region`` goes: the gateway that holds the id
        if one does (it decides a change, or refuses a move), else the owner of ``home_region``."""
        region = await self.home(subject_id, caller, request_id=request_id)
        return self._route(region or home_region, caller)

    def _route(self, region: str, caller: Caller) -> Route | None:
        peer = self.config.owner_of(region)
        if peer is None:
            return None
        if caller.via is not None:
            raise not_region_owner(region, peer.id)  # a forwarded request is never forwarded again
        return Route(peer, region)

    async def home(self, subject_id: str, caller: Caller, *, request_id: str) -> str | None:
        """The subject's home region, wherever it is served; None if no gateway knows the id.

        ``PeerUnavailable`` when the id is not known here and a peer that could hold it did not answer."""
        if not is_identifier(subject_id):
            return None  # refused as malformed where it is served
        region = self._homes.get(subject_id)
        if region is not None:
            return region
        try:
            region = await self.records.claimed_home(subject_id)
        except GatewayError:
            region = None  # the control store cannot be read: ask as for an id without a claim
        if region is None:
            if caller.via is not None:
                return None  # asked on a peer's behalf: only this gateway's own directory counts
            region = await self._ask_peers(subject_id, caller, request_id=request_id)
        if region is not None:
            self._keep(subject_id, region)
        return region

    async def _ask_peers(self, subject_id: str, caller: Caller, *, request_id: str) -> str | None:
        """Ask every peer once whether the id is one of its subjects; note the answer as a claim here."""
        peers = list(self.config.peers.values())
        answers = await asyncio.gather(*(self._ask(peer, subject_id, caller, request_id) for peer in peers), return_exceptions=True)
        found = {peer.id: answer for peer, answer in zip(peers, answers, strict=True) if isinstance(answer, str)}
        failed = [(peer, answer) for peer, answer in zip(peers, answers, strict=True) if isinstance(answer, BaseException)]
        if len(found) > 1:
            places = ", ".join(f"`{region}` ({peer})" for peer, region in found.items())
            raise Conflict(f"subject `{subject_id}` is registered in several gateways' regions ({places}); resolve before use", code="subject-ambiguous")
        if found:
            region = next(iter(found.values()))
            try:
                await self.records.claim_peer_home(subject_id, region)
            except GatewayError as error:  # best effort: the next lookup asks again (or finds the claim that won)
                log.warning("could not note a peer's subject in the directory", extra={"event": "peer-claim-failed", "code": error.code})
            return region
        if failed:
            if await self.records.home_region(subject_id) is not None:
                return None  # this gateway's own (an id stored before the directory): a peer cannot hold it too
            # a peer that did not answer may hold the id: never answer in its place
            peer, error = failed[0]
            if isinstance(error, GatewayError):
                raise error
            raise PeerUnavailable(f"peer gateway `{peer.id}` could not be asked about this subject; try again later", peer=peer.id) from error
        return None

    async def _ask(self, peer: Peer, subject_id: str, caller: Caller, request_id: str) -> str | None:
        path = f"/v1/federation/subjects/{quote(subject_id, safe='')}"
        status, body = await self.client.json(peer, caller, "GET", path, request_id=request_id)
        if status == 404:
            return None
        region = body.get("home_region") if status == 200 and isinstance(body, dict) else None
        if status in (401, 403):
            raise PeerRefused(f"peer gateway `{peer.id}` refused this gateway's federation token ({status}); check both gateways' peer keys", peer=peer.id)
        if not isinstance(region, str) or region not in self.config.regions or self.config.regions[region].owner != peer.id:
            log.warning("a peer named a home region it does not own", extra={"event": "peer-answer-refused", "status": status})
            raise PeerUnavailable(f"peer gateway `{peer.id}` gave no usable answer ({status})", peer=peer.id)
        return region

    def _keep(self, subject_id: str, region: str) -> None:
        if len(self._homes) >= HOMES_KEPT:
            del self._homes[next(iter(self._homes))]
        self._homes[subject_id] = region

    async def learned(self, subject_id: str, region: str) -> None:
        """A peer registered ``subject_id`` in its ``region`` through this gateway: note it as a claim here."""
        try:
            await self.records.claim_peer_home(subject_id, region)
        except GatewayError as error:
            log.warning("could not note a peer's new subject in the directory", extra={"event": "peer-claim-failed", "code": error.code})
            return
        self._keep(subject_id, region)

    async def local_home(self, subject_id: str) -> str | None:
        """For a peer's question: the home region of ``subject_id`` if it is one of this gateway's subjects."""
        if not is_identifier(subject_id):
            return None
        return await self.records.home_region(subject_id)

    # --- forwarding ----------------------------------------------------------------

    @asynccontextmanager
    async def forward(
        self,
        route: Route,
        caller: Caller,
        method: str,
        path: str,
        *,
        request_id: str,
        subject: str,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> AsyncIterator[PeerAnswer]:
        """Send the request to the owner; ledger that it was forwarded, and its answer, before the answer is relayed.

        The entry is written once the peer's status and headers are in. A read (``GET``) whose entry cannot be
        written is refused (503 ``ledger-unavailable``): nothing is served without it. A write already acted at
        the owner, whose own ledger holds its intent and outcome: its answer is relayed, and a warning logged."""
        peer = route.peer
        async with self.client.request(peer, caller, method, path, request_id=request_id, headers=headers, body=body) as answer:
            if answer.status == 401:
                raise PeerRefused(f"peer gateway `{peer.id}` refused this gateway's federation token; check both gateways' peer keys", peer=peer.id)
            entry: dict[str, Any] = {
                "peer": peer.id,
                "region": route.region,
                "subject": subject,
                **({} if key is None else {"key": key}),
                "method": method,
                "status": answer.status,
                "peer_audit_seq": _seq(answer.headers.get("X-Audit-Seq")),
                "by": who(caller),
            }
            if answer.problem_code is not None:
                entry["code"] = answer.problem_code
            try:
                await self.audit.record("federation.forwarded", entry)
            except GatewayError as error:
                if method == "GET":
                    raise
                log.warning(
                    "a forwarded write has no forwarding entry here; the owner's ledger holds it",
                    extra={"event": "forward-unledgered", "code": error.code, "region": route.region},
                )
            yield answer

    # --- orders ----------------------------------------------------------------------

    async def owners(self, subjects: Sequence[str], caller: Caller, *, request_id: str) -> Owners:
        """Who decides each of an order's subjects: this gateway (its own, and ids no gateway knows), the peer that
        owns the subject's region, or nobody yet (a peer that could hold it did not answer)."""
        limiter = asyncio.Semaphore(ASKED_AT_ONCE)

        async def one(subject: str) -> str | PeerUnavailable | None:
            async with limiter:
                try:
                    return await self.home(subject, caller, request_id=request_id)
                except PeerUnavailable as error:
                    return error

        found = await asyncio.gather(*(one(s) for s in subjects))
        owners = Owners()
        for subject, region in zip(subjects, found, strict=True):
            if isinstance(region, PeerUnavailable):
                owners.unreachable[subject] = str(region.details.get("peer", ""))
            elif region is None or self.config.owner_of(region) is None:
                owners.local.append(subject)
            else:
                owners.remote[subject] = Route(self.config.peers[self.config.regions[region].owner or ""], region)
        return owners

    async def decide_at_peers(self, token: str, document: Document, owners: Owners, caller: Caller, *, request_id: str) -> list[PeerItems]:
        """Send the order to each peer that owns some of its subjects, at once: what each decided, or pending items for
        a peer that did not answer; the subjects whose owner is not known yet (a peer did not answer) are pending too."""
        assigned: dict[str, list[str]] = {}
        for subject, route in owners.remote.items():
            assigned.setdefault(route.peer.id, []).append(subject)
        results = list(await asyncio.gather(*(self._decide_at(self.config.peers[p], token, document, s, caller, request_id) for p, s in assigned.items())))
        unknown: dict[str, list[str]] = {}
        for subject, peer in owners.unreachable.items():
            unknown.setdefault(peer, []).append(subject)
        for peer, subjects in unknown.items():
            detail = f"peer gateway `{peer}` did not answer whether this subject is one of its own; asked again later"
            results.append(PeerItems(peer, "unavailable", [pending_item(s, peer, c, detail) for s in subjects for c in document.categories]))
        return results

    async def _decide_at(self, peer: Peer, token: str, document: Document, subjects: Sequence[str], caller: Caller, request_id: str) -> PeerItems:
        categories = list(document.categories)

        def pending(detail: str, which: Sequence[str] = subjects) -> list[Item]:
            return [pending_item(s, peer.id, c, detail, region=self._region(s)) for s in which for c in categories]

        try:
            status, body = await self.client.json(peer, caller, "POST", "/v1/federation/orders", request_id=request_id, body={"order": token})
        except PeerUnavailable as error:
            return PeerItems(peer.id, "unavailable", pending(error.message))
        code = body.get("code") if isinstance(body, dict) else None
        if status in (200, 201) and isinstance(body, dict) and isinstance(body.get("items"), list):
            owned = {r for r, region in self.config.regions.items() if region.owner == peer.id}
            items = [
                merged_item(i, peer, document)
                for i in body["items"]
                if isinstance(i, dict) and i.get("subject") in subjects and i.get("region") in (*owned, None) and "peer" not in i
                if i.get("outcome") != PENDING
            ]
            missing = [s for s in subjects if s not in {i.subject for i in items}]  # not decided there: never decided here either
            return PeerItems(peer.id, "decided", items + pending(f"peer gateway `{peer.id}` did not decide this subject; asked again later", missing))
        if (status == 422 or code == "replayed") and isinstance(body, dict):
            # the owner refused the order itself (its own trust, its own order ids): that is its decision for its subjects
            reasons = body.get("reasons") or [{"code": code or "refused", "rule": FEDERATION_RULE, "detail": body.get("detail", "")}]
            refused = {"outcome": "refuse", "basis": None, "reasons": reasons, "obligations": {}, "rule": reasons[0].get("rule", FEDERATION_RULE)}
            items = [merged_item({"subject": s, "region": self._region(s), "category": c, **refused}, peer, document) for s in subjects for c in categories]
            return PeerItems(peer.id, "refused", items)
        return PeerItems(peer.id, "unavailable", pending(f"peer gateway `{peer.id}` answered {status} ({code}); asked again later"))

    def _region(self, subject: str) -> str | None:
        return self._homes.get(subject)


def _seq(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


@dataclass
class Owners:
    """Who decides an order's subjects (``Federation.owners``)."""

    local: list[str] = field(default_factory=list)  # this gateway: its own subjects, and ids no gateway knows
    remote: dict[str, Route] = field(default_factory=dict)  # a peer's subject, and its home region
    unreachable: dict[str, str] = field(default_factory=dict)  # not known yet: the peer that did not answer when asked

    @property
    def elsewhere(self) -> bool:
        """Whether some subjects are not decided here."""
        return bool(self.remote or self.unreachable)


@dataclass(frozen=True)
class PeerItems:
    """What one peer did with an order: ``decided`` (its items), ``refused`` (its refusal, per item) or ``unavailable`` (pending items)."""

    peer: str
    status: str
    items: list[Item]


def pending_item(subject: str, peer: str, category: str | None, detail: str, *, region: str | None = None) -> Item:
    """An item the peer that owns it (``peer``) has not decided yet: it did not answer. Never decided here."""
    return Item.from_json(
        {
            "subject": subject,
            "region": region,
            "category": category,
            "outcome": PENDING,
            "basis": None,
            "reasons": [{"code": "peer-unavailable", "rule": FEDERATION_RULE, "detail": detail}],
            "obligations": {},
            "rule": FEDERATION_RULE,
            "records": [],
            "record_count": 0,
            "peer": peer,
        }
    )


def merged_item(data: Mapping[str, Any], peer: Peer, document: Document) -> Item:
    """A peer's item as the forwarder's document holds it: the peer's decision, naming the peer and where its document and
    package part are; its records are the peer's to package, so only their count is kept."""
    kept = {k: data[k] for k in MERGED_KEYS if k in data}
    where = f"{peer.url}/v1/orders/{quote(document.id, safe='')}"
    return Item.from_json(
        {
            **kept,
            "records": [],
            "record_count": int(data.get("record_count") or 0),
            "peer": peer.id,
            "peer_order": f"{where}?authority={document.authority}",
            "peer_package": f"{where}/package?authority={document.authority}",
        }
    )
