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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.config import Config
from gateway.errors import Conflict, InvalidRequest
from gateway.keys import PublicKey
from gateway.legal.engine import Decision, Engine
from gateway.legal.facts import with_unverified_facts
from gateway.legal.orders import Order, PriorPreservation
from gateway.legal.verify import OrderRejected, claims_fingerprint, order_fingerprint, verify_order
from gateway.model import Clock, Subject, isoformat, parse_time
from gateway.services.audit_log import AuditLog
from gateway.services.cases import CaseService
from gateway.services.documents import (
    DISCLOSED,
    DOCUMENT,
    INTEGRITY_RULE,
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
from gateway.services.records import TAG_METADATA, Profile, RecordService, UnknownSubject, corrupt_record, size_mismatch, subject_prefix
from gateway.services.shared import update
from gateway.stores import ObjectCorrupt, ObjectInfo, ObjectNotFound, PreconditionFailed, RecordStore
from gateway.tags import TagViolation

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

    async def submit(self, token: str, *, submitted_by: str) -> tuple[Document, bool]:
        """Decide and act on a signed order. Returns (document, created)."""
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

        await self.audit.record(
            "order.received",
            {"order": order.id, "authority": authority, "served_by": order.served_by.id, "instrument": order.instrument, "fingerprint": fingerprint},
        )
        try:
            # (2) decide every (subject, region, category)
            traced, _, whole = await self._decide_all(order, now=now, trace=True)
            # (3) act
            await self._act(order, traced, now=now)
            traces = {(i.subject, i.region): list(i.trace) for i in traced if i.trace is not None}
            items = [i.without_trace() for i in traced]
            document = decision_document(order, items, fingerprint=fingerprint, received_at=now, whole=whole).submitted(submitted_by)
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
        except BaseException:
            # Nothing is stored under this id yet: free it, so the authority can submit the order again.
            with contextlib.suppress(Exception):
                await self.control.delete(_claim_key(authority, order.id))
            raise
        # (5) decisions that need people become cases in legal's queue
        await self.cases.open_for(document, submitted_by=submitted_by, traces=traces)
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
        """The decision document with the full trace; changes nothing."""
        now = at or self.clock()
        order = self.verify(token, now=now)
        items, trace, whole = await self._decide_all(order, now=now, trace=True)
        document = decision_document(order, items, fingerprint=order_fingerprint(token), received_at=now, whole=whole)
        return Explained(document, trace, now)

    # --- deciding --------------------------------------------------------------

    async def _subject_records(self, subject_id: str) -> tuple[Profile | None, list[dict[str, Any]]]:
        """A subject's stored facts (verified or not) and its records' metadata (category, sha256, tag), or (None, []);
        a damaged record is there as its key, the category its tag proves (else ``None``) and its ``integrity`` violation."""
        try:
            profile = await self.records.profile(subject_id, fresh=True)  # a decision rests on the facts as they are now
        except UnknownSubject:
            return None, []
        except InvalidRequest:
            return None, []
        subject = profile.subject
        store = self.stores[subject.home_region]
        prefix = f"{subject_prefix(subject.id)}records/"
        keys = await store.list(prefix)
        limiter = asyncio.Semaphore(16)

        async def one(object_key: str) -> tuple[str, ObjectInfo | None] | None:
            async with limiter:
                try:
                    return object_key[len(prefix) :], await store.head(object_key)
                except ObjectNotFound:
                    return None
                except ObjectCorrupt:
                    return object_key[len(prefix) :], None  # its metadata cannot be read: a damaged record

        infos = [found for found in await asyncio.gather(*(one(k) for k in keys)) if found is not None]
        if all(info is None or self.records.tag_is_quick(info.metadata, subject.home_region) for _, info in infos):
            checked = self._checked_records(subject, infos)  # sealed or remembered: microseconds each
        else:
            # Signature checks release the GIL: one hand-off per subject lets the worker threads check
            # the tags of many subjects on every core, which an order naming thousands of records needs.
            checked = await asyncio.to_thread(self._checked_records, subject, infos)
        return profile, sorted(checked, key=lambda r: r["key"])

    def _checked_records(self, subject: Subject, infos: Sequence[tuple[str, ObjectInfo | None]]) -> list[dict[str, Any]]:
        """The records whose residency tags verify, and the damaged ones (``integrity``: the violation's code),
        which are never disclosed: an unreadable header (``None``), a tag that fails, a size other than the tag's."""
        region = subject.home_region
        checked = []
        for key, info in infos:
            category = None
            try:
                if info is None:
                    raise corrupt_record(key, region)
                tag = self.records.check_tag(info.metadata, region=region, subject=subject.id, key=key)
                category = tag.category
                if info.size != tag.size:
                    raise size_mismatch(key, info.size, tag.size)
            except TagViolation as violation:
                checked.append({"key": key, "category": category, "integrity": violation.code, "detail": violation.detail})
                continue
            checked.append({"key": key, "category": tag.category, "sha256": tag.sha256, "size": tag.size, "tag": info.metadata[TAG_METADATA]})
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
        return PriorPreservation(
            order_id=order.renews,
            instrument=doc.instrument,
            issuer_jurisdiction=self.config.legal.authorities[doc.authority].jurisdiction,
            until=max(untils),
            extensions=max(int(doc.extensions), *(int(o.get("extensions") or 0) for o in kept)),
            subjects=tuple(doc.subjects),
        )

    async def _decide_all(self, order: Order, *, now: datetime, trace: bool) -> tuple[list[Item], list[str], Decision | None]:
        """Items for every named (subject, category), the trace, and the whole-order decision when R1 settles it."""
        whole = self.engine.check_order(order, now=now, trace=trace)
        if whole is not None:
            # R1 checks that need no subject (no specific identifiers, a regime not in force, not bound...) decide the whole order.
            items = [decided_item(s, None, c, whole, []) for s in dict.fromkeys(order.subjects) for c in order.categories]
            return items, list(whole.trace), whole
        looked_up = await asyncio.gather(*(self._subject_records(s) for s in dict.fromkeys(order.subjects)))
        prior = await self._prior_preservation(order)
        items: list[Item] = []
        lines: list[str] = []
        for subject_id, (profile, found) in zip(dict.fromkeys(order.subjects), looked_up, strict=True):
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
        extended = [i.obligations["until"] for i in items if i.outcome == "preserve" and i.reasons[0]["code"] == "preservation-extended"]
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
