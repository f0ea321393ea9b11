"""Intake of legal orders: verify, claim once, decide per (subject, region, category), act, record.

``submit`` verifies the signed order, claims its id exactly once (an
identical resubmission returns the stored decision; a different body under a
used id is refused as ``replayed``), lists the named subjects' records in
every region concerned in parallel, asks the pure engine for each (subject,
region, category), acts (legal holds for ``preserve`` and ``hold``) and writes
the ledger before it answers.

``explain`` runs the same verification and decisions with the full trace and
changes nothing: no claim, no hold, no ledger entry.

A damaged record (its stored metadata unreadable, its residency tag failing,
its stored size not its tag's) harms only itself: it is never disclosed or
held, the order refuses it with ``record-integrity`` in an item of its own
(per subject, region and category, ``None`` when the tag cannot tell it;
``damaged_records`` names each record and its violation), and the subject's
other records are decided as usual. ``submit`` ledgers each one as a
``residency.violation`` and counts it. Everything here is ids, hashes and
decisions: never record content.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.config import Config
from gateway.errors import Conflict, GatewayError, InvalidRequest
from gateway.keys import PublicKey
from gateway.legal.engine import Decision, Engine
from gateway.legal.facts import with_unverified_facts
from gateway.legal.orders import Order, PriorPreservation
from gateway.legal.verify import OrderRejected, claims_fingerprint, order_fingerprint, verify_order
from gateway.logs import REQUEST_ID
from gateway.model import Caller, Clock, Subject, isoformat, parse_time
from gateway.services.audit_log import AuditLog
from gateway.services.cases import CaseService
from gateway.services.documents import (
    DISCLOSED,
    DOCUMENT,
    INTEGRITY_RULE,
    PENDING,
    Document,
    Explained,
    Item,
    damaged_items,
    decided_item,
    decision_document,
    document_key,
    read_document,
    to_json,
    write_document,
)
from gateway.services.holds import Holds
from gateway.services.notices import NoticeService
from gateway.services.objects import Manifest
from gateway.services.records import (
    MANIFEST_METADATA,
    TAG_METADATA,
    NotRegionOwner,
    Profile,
    RecordService,
    UnknownSubject,
    corrupt_record,
    size_mismatch,
    subject_prefix,
)
from gateway.services.shared import update
from gateway.stores import ObjectCorrupt, ObjectInfo, ObjectNotFound, PreconditionFailed, RecordStore
from gateway.tags import TagViolation

if TYPE_CHECKING:
    from gateway.services.federation import Federation, Owners, PeerItems

log = logging.getLogger("gateway.orders")


class Replayed(Conflict):
    code = "replayed"


# A replay claim's fingerprint covers the JWS signing input (header and payload); claims stored
# without ``covers`` fingerprint the claims alone (``claims_fingerprint``).
SIGNED_INPUT = "signed-input"


def _claim_key(authority: str, order_id: str) -> str:
    return f"orders/{authority}/{order_id}/claim"


def index_key(order_id: str, authority: str) -> str:
    """Where an order id's use by an authority is noted, so that the order can be found by its id alone."""
    return f"order-ids/{order_id}/{authority}"


PENDING_PREFIX = "federation/pending/"


def pending_key(authority: str, order_id: str) -> str:
    """Where an order whose items wait for a peer gateway is noted, with the signed order to send it again."""
    return f"{PENDING_PREFIX}{authority}/{order_id}"


@dataclass(frozen=True)
class Trust:
    """Registered authorities and the public keys that verify their orders."""

    keys: Mapping[str, PublicKey]


@dataclass(kw_only=True)
class Intake:
    """Verifies, decides, acts on and records orders; holds for ``preserve`` and ``hold`` are placed through ``holds``."""

    config: Config
    records: RecordService
    cases: CaseService
    notices: NoticeService
    control: RecordStore
    trust: Trust
    audit: AuditLog
    clock: Clock
    federation: Federation | None = None  # peer gateways that decide the items of the regions they own

    def __post_init__(self) -> None:
        self.stores = self.records.stores
        self.observer = self.audit.observer
        self.engine = Engine(self.config)
        self.holds = Holds(control=self.control, stores=self.stores, audit=self.audit, clock=self.clock)

    # --- verification ----------------------------------------------------------

    def verify(self, token: str, *, now: datetime) -> Order:
        """The verified order, served by an authority that may serve for its issuer; else ``OrderRejected``.

        An order id belongs to its issuer (``iss``): only the issuer or an authority the policy lets
        serve for it (``improper-service``, R1) may use one, so an order signed by any other
        authority is refused here, before intake claims the id or stores anything under it.
        """
        order = verify_order(
            token,
            authorities=self.config.legal.authorities,
            keys=self.trust.keys,
            instruments=self.config.legal.instruments.keys(),
            categories=self.config.categories,
            now=now,
            received_at=now,
        )
        improper = self.engine.check_service(order)
        if improper is not None:
            raise OrderRejected(
                f"{improper.reasons[0].detail}; the order is not accepted under `{order.issuer.id}`'s order ids",
                code=improper.reason,
                rule="R1",
                order=order.id,
                issuer=order.issuer.id,
                served_by=order.served_by.id,
            )
        return order

    # --- intake ----------------------------------------------------------------

    async def submit(self, token: str, *, submitted_by: str, via: str | None = None) -> tuple[Document, bool]:
        """Decide and act on a signed order. Returns (document, created).

        With peers, each subject is decided by the gateway that owns its home region: this one decides its own (and
        ids no gateway knows), and sends the order to each peer that owns one of its subjects, whose items are merged
        into the document naming that peer; a peer that does not answer leaves its items ``pending``, asked again by
        ``complete_pending``. An order a peer forwarded (``via``) is decided here for this gateway's own subjects only.
        """
        now = self.clock()
        fingerprint = order_fingerprint(token)
        try:
            order = self.verify(token, now=now)
        except OrderRejected as rejected:
            self.observer.order_rejected(reason=rejected.code)
            # who an order that verified but may not be served claimed to be (improper-service): ids of registered authorities
            named = {k: rejected.details[k] for k in ("order", "issuer", "served_by") if k in rejected.details}
            await self.audit.record(
                "order.rejected",
                {"fingerprint": fingerprint, "reason": rejected.code, "rule": rejected.rule, "by": submitted_by, **named},
            )
            raise
        authority = order.issuer.id

        # (1) claim the order id once, across replicas, in its issuer's namespace (``verify`` let only who may serve for it this far)
        claim = json.dumps({"fingerprint": fingerprint, "covers": SIGNED_INPUT, "received_at": isoformat(now)}).encode()
        try:
            await self.control.put(_claim_key(authority, order.id), claim, {}, if_absent=True)
        except PreconditionFailed:
            existing = json.loads((await self.control.get(_claim_key(authority, order.id))).body)
            if existing.get("covers") == SIGNED_INPUT:
                same = existing["fingerprint"] == fingerprint
            else:
                # Claimed before the fingerprint covered the header: the claims must match, and the stored
                # document must name the same signing authority.
                same = existing["fingerprint"] == claims_fingerprint(token)
                if same:
                    stored = await self._wait_for_document(authority, order.id)
                    same = stored.served_by == order.served_by.id
                    if same:
                        return stored, False
            if not same:
                await self.audit.record(
                    "order.rejected", {"order": order.id, "authority": authority, "fingerprint": fingerprint, "reason": "replayed", "rule": "R1"}
                )
                raise Replayed(
                    f"order id `{order.id}` was already used by `{authority}` for a different order",
                    outcome="refuse",
                    reasons=[{"code": "replayed", "rule": "R1", "detail": "same order id, different signed order"}],
                ) from None
            return await self._wait_for_document(authority, order.id), False

        received = {"order": order.id, "authority": authority, "served_by": order.served_by.id, "instrument": order.instrument, "fingerprint": fingerprint}
        await self.audit.record("order.received", received | ({"via": via} if via else {}))
        try:
            # (2) decide every (subject, region, category) this gateway owns
            owners = await self._owners(order, now=now, caller=Caller(submitted_by, "intake", via=via))
            traced, whole = await self._decide_claiming_extension(order, now=now, subjects=None if owners is None else owners.local)
            # (3) act
            await self._act(order, traced, now=now)
            traces = {(i.subject, i.region): list(i.trace) for i in traced if i.trace is not None}
            items = [i.without_trace() for i in traced]
            document = decision_document(order, items, fingerprint=fingerprint, received_at=now, whole=whole).submitted(submitted_by)
            local_document = document
            # (2b) the peers decide theirs
            at_peers: list[PeerItems] = []
            if owners is not None and self.federation is not None and owners.elsewhere:
                caller = Caller(submitted_by, "intake")
                at_peers = await self.federation.decide_at_peers(token, document, owners, caller, request_id=_request_id())
                document = _merged(document, order.subjects, [i for result in at_peers for i in result.items])
            if via is not None:
                document = Document.from_json({**to_json(document), "forwarded_by": via})
            # (4) record, then store the document for GET and resubmissions
            await self.audit.record(
                "order.decided",
                {
                    "order": order.id,
                    "authority": authority,
                    "issuer_jurisdiction": order.issuer.jurisdiction,
                    "instrument": order.instrument,
                    "preservation": self.config.legal.instruments[order.instrument].preservation is not None,
                    "emergency": order.emergency,
                    "whole_order": whole.reason if whole else None,
                    **({"peers": sorted({r.peer for r in at_peers})} if at_peers else {}),  # they decided the other items
                    "items": [
                        {
                            "subject": i.subject,
                            "region": i.region,
                            "data_jurisdiction": self.config.regions[i.region].jurisdiction if i.region else None,
                            "category": i.category,
                            "outcome": i.outcome,
                            "basis": i.basis,
                            "reason": i.reasons[0]["code"],
                            "notify": i.obligations.get("notify"),
                            "records": len(i.records),
                        }
                        for i in items
                    ],
                },
            )
            for result in at_peers:
                await self._record_forwarded(order, result)
            await self._record_damaged(order, items)
            for i in items:  # operations: low-cardinality counts, and the time from receipt to decision
                self.observer.order_decision(
                    outcome=i.outcome, instrument=order.instrument, issuing_jurisdiction=order.issuer.jurisdiction, data_region=i.region
                )
            self.observer.order_decided(seconds=(self.clock() - now).total_seconds())
            outcomes = sorted({i.outcome for i in items})
            log.info("order decided", extra={"event": "order.decided", "order": order.id, "authority": authority, "outcomes": outcomes})
            await self.control.put(document_key(authority, order.id), write_document(to_json(document)), {})
            await self.control.put(index_key(order.id, authority), b"", {})
            if any(i.outcome == PENDING for i in document.items):
                marker = {"order": token, "submitted_by": submitted_by, "at": isoformat(now)}
                await self.control.put(pending_key(authority, order.id), json.dumps(marker).encode(), {})
        except BaseException:
            # Nothing is stored under this id yet: free it, so the authority can submit the order again.
            with contextlib.suppress(Exception):
                await self.control.delete(_claim_key(authority, order.id))
            raise
        # (5) decisions that need people become cases in legal's queue (the peers open their own)
        await self.cases.open_for(local_document, submitted_by=submitted_by, traces=traces)
        # (6) customers are told what was disclosed, when the order allows
        disclosed: dict[str, list[str]] = {}
        for item in items:
            if item.outcome == DISCLOSED and item.records:
                disclosed.setdefault(item.subject, []).append(item.category)  # type: ignore[arg-type]
        if disclosed:
            await self.notices.schedule(
                authority=authority,
                order_id=order.id,
                subjects=disclosed.items(),
                nondisclosure_until=document.nondisclosure_until,
                emergency=any(i.basis == "emergency" for i in items if i.outcome == DISCLOSED),
            )
        return document, True

    async def _wait_for_document(self, authority: str, order_id: str) -> Document:
        """A resubmission racing the first submission waits briefly for its document."""
        for _ in range(50):
            try:
                return read_document((await self.control.get(document_key(authority, order_id))).body)
            except ObjectNotFound:
                await asyncio.sleep(0.1)
        raise Conflict(f"order `{order_id}` is still being decided; ask again shortly", code="order-in-progress")

    async def explain(self, token: str, *, at: datetime | None = None) -> Explained:
        """The decision document with the full trace; changes nothing.

        With peers, a subject this gateway's directory places in a peer's region is decided by that peer: it has no
        item here, and the trace says where to explain it (no peer is asked: explaining changes nothing, anywhere)."""
        now = at or self.clock()
        order = self.verify(token, now=now)
        elsewhere = await self._peers_subjects(order)
        local = [s for s in dict.fromkeys(order.subjects) if s not in elsewhere]
        items, trace, whole = await self._decide_all(order, now=now, trace=True, subjects=local if elsewhere else None)
        if whole is None:
            for subject, region in elsewhere.items():
                trace = [*trace, f"## {subject} / {region}: decided by peer gateway `{self.config.regions[region].owner}`; explain it there"]
        document = decision_document(order, items, fingerprint=order_fingerprint(token), received_at=now, whole=whole)
        return Explained(document, trace, now)

    async def _peers_subjects(self, order: Order) -> dict[str, str]:
        """The order's subjects whose home claim here names a peer's region, and that region (none without peers)."""
        if self.federation is None:
            return {}
        found: dict[str, str] = {}
        for subject in dict.fromkeys(order.subjects):
            with contextlib.suppress(GatewayError):
                region = await self.records.claimed_home(subject)
                if region is not None and self.config.regions[region].owner is not None:
                    found[subject] = region
        return found

    # --- deciding --------------------------------------------------------------

    async def _subject_records(self, subject_id: str) -> tuple[Profile | None, list[dict[str, Any]]]:
        """A subject's stored facts (verified or not) and its records' metadata (category, sha256, tag), or (None, []);
        a damaged record is there as its key, the category its tag proves (else ``None``) and its ``integrity`` violation."""
        try:
            profile = await self.records.profile(subject_id, fresh=True)  # a decision rests on the facts as they are now
        except (UnknownSubject, NotRegionOwner):
            return None, []
        except InvalidRequest:
            return None, []
        subject = profile.subject
        store = self.stores[subject.home_region]
        prefix = f"{subject_prefix(subject.id)}records/"
        keys = await store.list(prefix)
        infos: list[tuple[str, ObjectInfo | None]] = []  # a record whose metadata cannot be read has None: a damaged record
        manifests: dict[str, bytes] = {}  # by key, the body of each record that is a chunked object's manifest
        for object_key, answer in zip(keys, await store.heads(keys), strict=True):  # one bulk read, not a task per record
            name = object_key[len(prefix) :]
            if answer is not None and not isinstance(answer, ObjectCorrupt) and answer.metadata.get(MANIFEST_METADATA) == "1":
                # a chunked object: its manifest names what it holds; its tag and body read as one (it may have
                # been rewritten since the head)
                try:
                    obj = await store.get(object_key)
                    answer = ObjectInfo(object_key, len(obj.body), obj.metadata)
                    if obj.metadata.get(MANIFEST_METADATA) == "1":
                        manifests[name] = obj.body
                except ObjectNotFound:
                    answer = None
                except ObjectCorrupt as corrupt:
                    answer = corrupt
            if answer is None:
                continue  # deleted since the listing
            infos.append((name, None if isinstance(answer, ObjectCorrupt) else answer))
        if all(info is None or self.records.tag_is_quick(info.metadata, subject.home_region) for _, info in infos):
            checked = self._checked_records(subject, infos, manifests)  # sealed or remembered: microseconds each
        else:
            # Signature checks release the GIL: one hand-off per subject lets the worker threads check
            # the tags of many subjects on every core, which an order naming thousands of records needs.
            checked = await asyncio.to_thread(self._checked_records, subject, infos, manifests)
        return profile, sorted(checked, key=lambda r: r["key"])

    def _checked_records(
        self, subject: Subject, infos: Sequence[tuple[str, ObjectInfo | None]], manifests: Mapping[str, bytes]
    ) -> list[dict[str, Any]]:
        """The records whose residency tags verify, and the damaged ones (``integrity``: the violation's code),
        which are never disclosed: an unreadable header (``None``), a tag that fails, a size other than the tag's.

        A record that is a chunked object's manifest (its body in ``manifests``) is checked against its tag with
        that body, and listed with the object's SHA-256 and size, which its package member carries, and the
        manifest's own SHA-256 (``manifest_sha256``: the package reads the object through that manifest only).
        A manifest written before manifests carried the object's SHA-256 is listed with ``sha256`` empty:
        its package withholds it (``gateway.services.packaging``)."""
        region = subject.home_region
        checked = []
        for key, info in infos:
            category = None
            manifest: Manifest | None = None
            try:
                if info is None:
                    raise corrupt_record(key, region)
                tag = self.records.check_tag(info.metadata, region=region, subject=subject.id, key=key, body=manifests.get(key))
                category = tag.category
                if info.size != tag.size:
                    raise size_mismatch(key, info.size, tag.size)
                if key in manifests:
                    try:
                        manifest = Manifest.parse(manifests[key])
                    except (ValueError, KeyError, TypeError):
                        raise TagViolation("manifest-malformed", f"the manifest of `{key}` cannot be read") from None
            except TagViolation as violation:
                checked.append({"key": key, "category": category, "integrity": violation.code, "detail": violation.detail})
                continue
            if manifest is None:
                checked.append({"key": key, "category": tag.category, "sha256": tag.sha256, "size": tag.size, "tag": info.metadata[TAG_METADATA]})
            else:
                checked.append(
                    {
                        "key": key,
                        "category": tag.category,
                        "sha256": manifest.sha256 or "",
                        "size": manifest.size,
                        "tag": info.metadata[TAG_METADATA],
                        "manifest_sha256": tag.sha256,
                    }
                )
        return checked

    async def _renewed_document(self, order: Order) -> tuple[str, Document] | None:
        """(authority, document) of the order ``order.renews`` names: the renewing authority's own first, then any other's."""
        if not order.renews:
            return None
        for authority in (order.issuer.id, *sorted(set(self.config.legal.authorities) - {order.issuer.id})):
            try:
                return authority, read_document((await self.control.get(document_key(authority, order.renews))).body)
            except ObjectNotFound:
                continue
        return None

    async def _prior_preservation(self, order: Order) -> PriorPreservation | None:
        found = await self._renewed_document(order)
        if found is None or not order.renews:
            return None
        _, doc = found
        kept = [i.obligations for i in doc.items if i.outcome == "preserve" and i.obligations.get("until")]
        if not kept:
            return None
        # As it stands now: extended by a renewal of it (``extended_until``), or itself a renewal (its items' ``extensions``).
        untils = [parse_time(o["until"]) for o in kept] + ([parse_time(doc.extended_until)] if doc.extended_until else [])
        authority = found[0]
        claimed = len(await self.control.list(_extensions_prefix(authority, order.renews)))  # renewals decided, counted or not yet
        return PriorPreservation(
            order_id=order.renews,
            instrument=doc.instrument,
            issuer_jurisdiction=self.config.legal.authorities[doc.authority].jurisdiction,
            until=max(untils),
            extensions=max(int(doc.extensions), claimed, *(int(o.get("extensions") or 0) for o in kept)),
            subjects=tuple(doc.subjects),
        )

    async def _decide_claiming_extension(
        self, order: Order, *, now: datetime, subjects: Sequence[str] | None
    ) -> tuple[list[Item], Decision | None]:
        """Decide the order's items; a renewal that extends a preservation first claims that extension's slot.

        The slot (``extensions/<n>`` beside the renewed document, n the extensions it was decided on plus one) is
        written create-only, so of two renewals decided on the same count at once, on two replicas, one extends and
        the other is decided again on the new count (``extensions-exhausted`` once the instrument's are used up).
        A resubmission of the renewal that holds a slot finds its own claim.
        """
        for _ in range(EXTENSION_TRIES):
            prior = await self._prior_preservation(order)
            traced, _, whole = await self._decide_all(order, now=now, trace=True, subjects=subjects, prior=prior)
            if prior is None or not any(_extends(i) for i in traced):
                return traced, whole
            found = await self._renewed_document(order)
            assert found is not None and order.renews
            slot = f"{_extensions_prefix(found[0], order.renews)}{prior.extensions + 1}"
            mine = json.dumps({"order": order.id, "authority": order.issuer.id}).encode()
            try:
                await self.control.put(slot, mine, {}, if_absent=True)
                return traced, whole
            except PreconditionFailed:
                if (await self.control.get(slot)).body == mine:
                    return traced, whole  # claimed by this renewal before (a resubmission after a crash)
        raise Conflict("other renewals of this preservation kept being decided at the same time; submit the order again", code="write-conflict")

    async def _decide_all(
        self, order: Order, *, now: datetime, trace: bool, subjects: Sequence[str] | None = None, prior: PriorPreservation | None = None
    ) -> tuple[list[Item], list[str], Decision | None]:
        """Items for every named (subject, category), or those of ``subjects`` only, the trace, and the whole-order
        decision when R1 settles it (for every subject: no subject's data is looked at)."""
        whole = self.engine.check_order(order, now=now, trace=trace)
        if whole is not None:
            # R1 checks that need no subject (no specific identifiers, a regime not in force, not bound...) decide the whole order.
            items = [decided_item(s, None, c, whole, []) for s in dict.fromkeys(order.subjects) for c in order.categories]
            return items, list(whole.trace), whole
        chosen = list(dict.fromkeys(order.subjects if subjects is None else subjects))
        looked_up = await asyncio.gather(*(self._subject_records(s) for s in chosen))
        if prior is None:
            prior = await self._prior_preservation(order)
        items: list[Item] = []
        lines: list[str] = []
        for subject_id, (profile, found) in zip(chosen, looked_up, strict=True):
            subject = profile.subject if profile else None
            records = [r for r in found if "integrity" not in r]
            for category in order.categories:
                matching = [r for r in records if r["category"] == category]
                decision = self.engine.decide(
                    order,
                    subject,
                    subject.home_region if subject else None,
                    category,
                    now=now,
                    has_records=bool(matching),
                    prior_preservation=prior,
                    trace=trace,
                    subject_id=subject_id,
                )
                if profile is not None and profile.violation is not None:
                    decision = with_unverified_facts(
                        decision,
                        received=order.received_at or now,
                        review_days=self.config.legal.review_days,
                        detail=f"the stored facts of `{subject_id}` fail verification ({profile.violation.code}); the engine decided with them unknown",
                    )
                items.append(decided_item(subject_id, profile, category, decision, matching))
                if trace:
                    lines.append(f"## {subject_id} / {subject.home_region if subject else '-'} / {category}")
                    lines.extend(decision.trace)
            # a damaged record the order may reach (its category ordered, or unknown) is refused on its own
            damaged = [r for r in found if "integrity" in r and (r["category"] is None or r["category"] in order.categories)]
            if subject is not None and damaged:
                for item in damaged_items(subject_id, subject.home_region, damaged):
                    items.append(item)
                    if trace:
                        lines.append(f"## {subject_id} / {subject.home_region} / {item.category or 'category unknown'}")
                        lines.extend(
                            f"{INTEGRITY_RULE}: record `{r['key']}` refused: record-integrity ({r['violation']})" for r in item.damaged_records or ()
                        )
        return items, lines, None

    async def _record_damaged(self, order: Order, items: Sequence[Item]) -> None:
        """A residency violation in the ledger and the metrics for each damaged record the order refused."""
        for item in items:
            for damaged in item.damaged_records or ():
                subject, region, key, reason = item.subject, item.region, damaged["key"], damaged["violation"]
                self.observer.residency_violation(region=region, reason=reason)
                log.warning("residency violation", extra={"event": "residency-violation", "region": region, "reason": reason, "order": order.id})
                await self.audit.record(
                    "residency.violation",
                    {"subject": subject, "key": key, "region": region, "reason": reason, "order": order.id, "authority": order.issuer.id},
                )

    # --- peers -----------------------------------------------------------------

    async def _owners(self, order: Order, *, now: datetime, caller: Caller) -> Owners | None:
        """Who decides each subject (None: this gateway decides them all: no peers, or R1 settles the whole order).

        An order a peer forwarded (``caller.via``) is decided here for this gateway's own subjects only, and sent nowhere."""
        if self.federation is None or self.engine.check_order(order, now=now) is not None:
            return None
        subjects = list(dict.fromkeys(order.subjects))
        if caller.via is not None:
            from gateway.services.federation import Owners

            homes = await asyncio.gather(*(self.records.home_region(s) for s in subjects))
            return Owners(local=[s for s, home in zip(subjects, homes, strict=True) if home is not None])
        return await self.federation.owners(subjects, caller, request_id=_request_id())

    async def _record_forwarded(self, order: Order, result: PeerItems) -> None:
        """A peer's part of an order in the ledger: decided, refused or pending there (ids and outcomes, as ``order.decided``)."""
        await self.audit.record(
            "federation.order-forwarded",
            {
                "order": order.id,
                "authority": order.issuer.id,
                "peer": result.peer,
                "status": result.status,
                "items": [
                    {"subject": i.subject, "region": i.region, "category": i.category, "outcome": i.outcome, "reason": i.reasons[0]["code"]}
                    for i in result.items
                ],
            },
        )

    async def complete_pending(self) -> int:
        """Ask the peers again for every order item that waits for one; returns how many items were completed.

        Each stored document is changed by compare-and-swap (``shared.update``), so two replicas, or a change made
        meanwhile (a renewal's extension), never lose each other's update."""
        completed = 0
        for key in await self.control.list(PENDING_PREFIX):
            try:
                completed += await self._complete(key)
            except (GatewayError, ValueError, KeyError) as error:
                code = error.code if isinstance(error, GatewayError) else "invalid-marker"
                log.warning("could not complete an order's items at its peers; tried again next sweep", extra={"event": "order.pending", "code": code})
        return completed

    async def _complete(self, key: str) -> int:
        if self.federation is None:
            return 0
        authority, order_id = key[len(PENDING_PREFIX) :].split("/", 1)
        marker = json.loads((await self.control.get(key)).body)
        document = read_document((await self.control.get(document_key(authority, order_id))).body)
        waiting = list(dict.fromkeys(i.subject for i in document.items if i.outcome == PENDING))
        if not waiting:
            await self.control.delete(key)
            return 0
        received = parse_time(document.received_at)
        order = self.verify(marker["order"], now=received)  # as it was served: its validity is judged then
        caller = Caller(marker["submitted_by"], "intake")
        owners = await self.federation.owners(waiting, caller, request_id=_request_id())
        results = await self.federation.decide_at_peers(marker["order"], document, owners, caller, request_id=_request_id())
        decided = [i for result in results for i in result.items if i.outcome != PENDING]
        if owners.local:  # no gateway holds them after all (``home`` looked here first): no data, decided here like any unknown id
            local, _, _ = await self._decide_all(order, now=received, trace=False, subjects=owners.local)
            decided += local
        done = {i.subject for i in decided}

        def complete(stored: Document | None) -> Document | None:
            """The stored document with its pending items of ``done`` replaced (None: nothing to change)."""
            if stored is None or not any(i.outcome == PENDING and i.subject in done for i in stored.items):
                return None
            kept = [i for i in stored.items if not (i.outcome == PENDING and i.subject in done)]
            return _merged(replace(stored, items=kept), order.subjects, decided)

        updated = await update(self.control, document_key(authority, order_id), complete, codec=DOCUMENT)
        if not updated.written:
            return 0  # completed meanwhile (another replica's sweep)
        merged = updated.value
        assert merged is not None
        for result in results:
            if result.status != "unavailable":  # a peer still down is not ledgered again at every sweep
                await self._record_forwarded(order, result)
        if not any(i.outcome == PENDING for i in merged.items):
            await self.control.delete(key)
        log.info("order items completed at their peers", extra={"event": "order.completed", "order": order_id, "authority": authority})
        return len(decided)

    # --- acting ----------------------------------------------------------------

    async def _act(self, order: Order, items: Sequence[Item], *, now: datetime) -> None:
        for item in items:
            if item.outcome == "preserve":
                until = item.obligations["until"]
            elif item.outcome == "hold":
                until = item.obligations["release_at"]
            else:
                continue
            for record in item.records:
                await self.holds.place(item.region, item.subject, record["key"], f"{order.issuer.id}/{order.id}", until)  # type: ignore[arg-type]
        extended = [i.obligations["until"] for i in items if _extends(i)]
        if order.renews and extended:
            await self._count_extension(order, max(extended))

    async def _count_extension(self, order: Order, until: str) -> None:
        """Mark the preservation this renewal extended (the same document ``_prior_preservation`` read) as extended, and until when.

        A compare-and-swap over the stored document: two renewals counted at once on two replicas both count.
        """
        found = await self._renewed_document(order)
        if found is None:
            return
        authority, _ = found
        await update(self.control, document_key(authority, order.renews or ""), lambda doc: None if doc is None else doc.extended(until), codec=DOCUMENT)


EXTENSION_TRIES = 8  # decisions of one renewal before it gives up on other renewals of the same preservation


def _extensions_prefix(authority: str, order_id: str) -> str:
    """Where the extensions of a preservation are claimed, one create-only object per extension: ``.../extensions/<n>``."""
    return document_key(authority, order_id).removesuffix("decision") + "extensions/"


def _extends(item: Item) -> bool:
    return item.outcome == "preserve" and item.reasons[0]["code"] == "preservation-extended"


def _merged(document: Document, subjects: Sequence[str], items: Sequence[Item]) -> Document:
    """``document`` with ``items`` added, every item in the order's subject order (a subject's items keep theirs)."""
    position = {s: n for n, s in enumerate(dict.fromkeys(subjects))}
    everything = [*document.items, *items]
    ordered = sorted(range(len(everything)), key=lambda n: (position.get(everything[n].subject, len(position)), n))
    return replace(document, items=[everything[n] for n in ordered])


def _request_id() -> str:
    """The request id of the request being served (its peers' requests carry it too), or a new one (a sweep)."""
    return REQUEST_ID.get() or uuid.uuid4().hex
