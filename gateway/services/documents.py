"""Decision documents: built, written, read back and viewed here, and nowhere else.

A decision document is the JSON object stored once per order (under
``orders/<authority>/<order>/decision`` in the control store) and returned by
the API. It holds ids, hashes and decisions, never record content:

- ``Document`` and ``Item`` (one (subject, region, category) decision) are
  its types, frozen; ``decision_document`` builds one from the verified order
  and its items; ``decided_item`` builds the item of one (subject, region,
  category) from the engine's decision, and ``damaged_items`` the ``refuse``
  items of records that cannot prove their integrity;
- ``to_json`` renders one as JSON, ``write_document`` turns JSON into the
  stored and served bytes, and ``read_document`` reads stored bytes back, old
  documents included: each keeps the keys it was stored with, in their order
  (``keys``; a key an earlier version did not write is absent, not ``None``),
  so that what is served for it is what was served before;
- ``view`` is what a stored document means at a given time, given the state
  of its cases (a ``View``): pure, no I/O and no clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

import orjson

from gateway.legal.engine import Decision
from gateway.legal.orders import Order
from gateway.model import isoformat
from gateway.services.cases import APPROVED, DENIED, EXPIRED, OBJECTED, WITHDRAWN, disclosure_allowed
from gateway.services.records import Profile
from gateway.services.shared import Codec

DISCLOSED = "disclose"
INTEGRITY_RULE = "record.integrity"
RECORDS_KEPT = (DISCLOSED, "hold", "preserve", "legal-review")  # outcomes whose items list their records
TRACED = ("legal-review", "hold")  # outcomes whose items carry their trace to the case a person reviews

DECIDED_KEYS = ("subject", "region", "category", "profile_sha256", "outcome", "basis", "reasons", "obligations", "rule", "records", "record_count")
DAMAGED_KEYS = ("subject", "region", "category", "outcome", "basis", "reasons", "obligations", "rule", "records", "record_count", "damaged_records")
DOCUMENT_KEYS = (
    "id",
    "authority",
    "served_by",
    "instrument",
    "subjects",
    "categories",
    "received_at",
    "expires_at",
    "nondisclosure_until",
    "case_ref",
    "renews",
    "fingerprint",
    "whole_order",
    "extensions",
    "objections",
    "items",
)


@dataclass(frozen=True)
class Item:
    """The decision on one (subject, region, category) of an order.

    ``keys`` are the JSON keys the item has, in their order: ``profile_sha256`` is absent from items
    stored before it was written and from ``damaged_items``; ``trace`` is there only until the document
    is stored; ``damaged_records`` only on items of damaged records. ``extra`` holds keys this version
    does not know, kept as they were stored."""

    subject: str
    region: str | None
    category: str | None
    outcome: str
    basis: str | None
    reasons: Sequence[Mapping[str, Any]]
    obligations: Mapping[str, Any]
    rule: str
    records: Sequence[Mapping[str, Any]]
    record_count: int
    profile_sha256: str | None = None
    trace: Sequence[str] | None = None
    damaged_records: Sequence[Mapping[str, Any]] | None = None
    keys: tuple[str, ...] = field(default=DECIDED_KEYS, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def without_trace(self) -> Item:
        """The item as it is stored: its trace goes to the case a person reviews, not into the document."""
        return replace(self, trace=None, keys=tuple(k for k in self.keys if k != "trace"))

    def to_json(self) -> dict[str, Any]:
        return _render(self, _ITEM_FIELDS)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Item:
        return cls(
            **{k: data.get(k) for k in _ITEM_FIELDS},  # type: ignore[arg-type]
            keys=tuple(data),
            extra={k: v for k, v in data.items() if k not in _ITEM_FIELDS},
        )


@dataclass(frozen=True)
class Document:
    """A decided order: who sent what, when, and the decision on each of its items.

    ``keys`` are the JSON keys the document has, in their order: ``served_by``, ``whole_order`` and the
    like are absent from documents stored before they were written; ``submitted_by`` follows the items
    of a submitted order, and ``extended_until`` comes with the first renewal that extends it. ``extra``
    holds keys this version does not know, kept as they were stored."""

    id: str
    authority: str
    instrument: str
    subjects: Sequence[str]
    categories: Sequence[str]
    received_at: str
    items: Sequence[Item]
    served_by: str | None = None
    expires_at: str | None = None
    nondisclosure_until: str | None = None
    case_ref: str | None = None
    renews: str | None = None
    fingerprint: str | None = None
    whole_order: Mapping[str, Any] | None = None
    extensions: int = 0
    objections: Sequence[Any] = ()
    submitted_by: str | None = None
    extended_until: str | None = None
    keys: tuple[str, ...] = field(default=DOCUMENT_KEYS, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def submitted(self, by: str) -> Document:
        """The document of an order submitted by ``by``."""
        return replace(self, submitted_by=by, keys=_with_key(self.keys, "submitted_by"))

    def extended(self, until: str) -> Document:
        """The document of a preservation a renewal extended until ``until`` (or later, if another did)."""
        return replace(
            self,
            extensions=int(self.extensions) + 1,
            extended_until=max(until, self.extended_until or until),
            keys=_with_key(_with_key(self.keys, "extensions"), "extended_until"),
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Document:
        values = {k: data.get(k) for k in _REQUIRED} | {k: data[k] for k in _DOCUMENT_FIELDS if k in data}
        values["items"] = [Item.from_json(i) for i in data.get("items", ())]
        return cls(**values, keys=tuple(data), extra={k: v for k, v in data.items() if k not in _DOCUMENT_FIELDS})


_ITEM_FIELDS = frozenset(f.name for f in fields(Item)) - {"keys", "extra"}
_DOCUMENT_FIELDS = frozenset(f.name for f in fields(Document)) - {"keys", "extra"}
_REQUIRED = ("id", "authority", "instrument", "subjects", "categories", "received_at")


def _with_key(keys: tuple[str, ...], key: str) -> tuple[str, ...]:
    return keys if key in keys else (*keys, key)


def _render(value: Item | Document, known: frozenset[str]) -> dict[str, Any]:
    return {k: getattr(value, k) if k in known else value.extra[k] for k in value.keys}


@dataclass(frozen=True)
class Explained:
    """What an order would be decided as at ``at``, with the engine's full trace; nothing was changed."""

    document: Document
    trace: Sequence[str]
    at: datetime

    @property
    def explain(self) -> dict[str, Any]:
        """When it was decided as of, and that nothing was changed."""
        return {"at": isoformat(self.at), "side_effects": False}

    def to_json(self) -> dict[str, Any]:
        """The document, its items' traces included, then ``trace`` and ``explain``."""
        return {**to_json(self.document), "trace": self.trace, "explain": self.explain}


def document_key(authority: str, order_id: str) -> str:
    """Where an order's decision document is stored in the control store."""
    return f"orders/{authority}/{order_id}/decision"


def to_json(document: Document) -> dict[str, Any]:
    """The document as JSON: its keys in their order, each item's too."""
    data = _render(document, _DOCUMENT_FIELDS)
    if "items" in data:
        data["items"] = [i.to_json() for i in document.items]
    return data


def decision_document(order: Order, items: Sequence[Item], *, fingerprint: str, received_at: datetime, whole: Decision | None = None) -> Document:
    """The document of a decided order; ``whole`` is the decision that settled the whole order (R1), if one did."""
    return Document(
        id=order.id,
        authority=order.issuer.id,
        served_by=order.served_by.id,
        instrument=order.instrument,
        subjects=list(order.subjects),
        categories=list(order.categories),
        received_at=isoformat(received_at),
        expires_at=isoformat(order.expires_at) if order.expires_at else None,
        nondisclosure_until=isoformat(order.nondisclosure_until) if order.nondisclosure_until else None,
        case_ref=order.case_ref,
        renews=order.renews,
        fingerprint=fingerprint,
        whole_order=None if whole is None else {k: whole.to_json()[k] for k in ("outcome", "rule", "reasons")},
        extensions=0,
        objections=[],
        items=list(items),
    )


def decided_item(subject_id: str, profile: Profile | None, category: str, decision: Decision, records: Sequence[dict[str, Any]]) -> Item:
    """The item of one (subject, region, category); ``trace`` is taken off before the document is stored."""
    data = decision.to_json()
    traced = bool(decision.trace) and decision.outcome in TRACED
    return Item(
        subject=subject_id,
        region=profile.subject.home_region if profile else None,
        category=category,
        profile_sha256=profile.sha256 if profile else None,  # the subject facts this item was decided on
        outcome=data["outcome"],
        basis=data["basis"],
        reasons=data["reasons"],
        obligations=data["obligations"],
        rule=data["rule"],
        records=[dict(r) for r in records] if decision.outcome in RECORDS_KEPT else [],
        record_count=len(records),
        trace=list(decision.trace) if traced else None,
        keys=(*DECIDED_KEYS, "trace") if traced else DECIDED_KEYS,
    )


def damaged_items(subject_id: str, region: str, damaged: Sequence[dict[str, Any]]) -> list[Item]:
    """One ``refuse`` item per category (``None``: the tag cannot tell) of the subject's damaged records."""
    by_category: dict[str | None, list[dict[str, Any]]] = {}
    for record in sorted(damaged, key=lambda r: r["key"]):
        by_category.setdefault(record["category"], []).append(record)
    return [
        Item(
            subject=subject_id,
            region=region,
            category=category,
            outcome="refuse",
            basis=None,
            reasons=[
                {
                    "code": "record-integrity",
                    "rule": INTEGRITY_RULE,
                    "detail": f"{_keys(records)} cannot be proven intact and in place: neither disclosed nor held",
                }
            ],
            obligations={},
            rule=INTEGRITY_RULE,
            records=[],
            record_count=len(records),
            damaged_records=[{"key": r["key"], "violation": r["integrity"]} for r in records],
            keys=DAMAGED_KEYS,
        )
        for category, records in sorted(by_category.items(), key=lambda pair: pair[0] or "")
    ]


def write_document(document: Mapping[str, Any]) -> bytes:
    """A document's bytes, stored and served alike: orjson writes 5 MB for 10,000 records in 3-9 ms, not 40-55."""
    return orjson.dumps(document)


def read_document(body: bytes) -> Document:
    """A stored decision document. ``orjson`` parses it (5.6 MB for 10,000 records: 24 ms, not 38);
    a document the standard encoder wrote before ``orjson`` did may hold what only ``json``
    reads back (a lone surrogate's escape from an order's free text, say), so ``json`` reads those."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = json.loads(body)
    return Document.from_json(data)


DOCUMENT: Codec[Document] = Codec(read_document, lambda document: write_document(to_json(document)))  # a stored document, for ``shared.update``


@dataclass(frozen=True)
class ViewedItem:
    """An item as it stands now: ``state`` (``decided``, ``holding``, ``released``, ``approved``...), its case's id,
    a review that ended without disclosure (``review``) and what an objection made of a hold (``effective``)."""

    item: Item
    state: str
    case: str | None = None
    review: Mapping[str, Any] | None = None
    effective: Mapping[str, Any] | None = None

    @property
    def disclosable(self) -> bool:
        """Whether the item's records go into the order's package now."""
        return self.item.outcome == DISCLOSED or self.state in ("released", APPROVED)

    def to_json(self) -> dict[str, Any]:
        data = {**self.item.to_json(), "state": self.state}
        data |= {k: v for k, v in (("case", self.case), ("review", self.review), ("effective", self.effective)) if v is not None}
        return data


@dataclass(frozen=True)
class View:
    """A stored document as it stands at a time, given the state of its cases."""

    document: Document
    items: Sequence[ViewedItem]

    @property
    def released(self) -> list[ViewedItem]:
        """The items whose records go into the order's package now."""
        return [i for i in self.items if i.disclosable]

    @property
    def package(self) -> dict[str, Any]:
        released = self.released
        return {
            "available": any(i.item.records for i in released),
            "records": sum(len(i.item.records) for i in released),
            "href": f"/v1/orders/{self.document.id}/package?authority={self.document.authority}",
        }

    def to_json(self) -> dict[str, Any]:
        """The document, each item with its state, then a count per outcome (``summary``) and the package."""
        data = {**to_json(self.document), "items": [i.to_json() for i in self.items]}
        outcomes = [i.item.outcome for i in self.items]
        data["summary"] = {o: outcomes.count(o) for o in sorted(set(outcomes))}
        data["package"] = self.package
        return data


def view(document: Document, *, now: datetime, cases: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> View:
    """The stored document as it stands at ``now``: cases approved, denied or objected; holds past their window released."""
    cases = cases or {}
    return View(document, [_viewed(item, document, cases.get((item.subject, item.region)), now) for item in document.items])  # type: ignore[arg-type]


def _viewed(item: Item, document: Document, case: Mapping[str, Any] | None, now: datetime) -> ViewedItem:
    stamp = isoformat(now)
    case_id = case["id"] if case is not None else None
    if item.outcome == "legal-review":
        state = case["state"] if case else "open"
        if state == APPROVED and not disclosure_allowed(case or {}, item.category, now):  # type: ignore[arg-type]
            state = "approval-expired" if item.category in case["approved"]["categories"] else "not-approved"  # type: ignore[index]
        ended = state in (DENIED, EXPIRED, WITHDRAWN) and case
        review = {"state": state, **({"reason": case["denied"]["reason"]} if state == DENIED else {})} if ended else None  # type: ignore[index]
        return ViewedItem(item, state, case_id, review=review)
    if item.outcome == "hold":
        if case is not None and case["state"] == OBJECTED:
            return ViewedItem(item, "objected", case_id, effective={"outcome": "refuse", "reason": "enforcing-state-objection", "rule": "R6.objection"})
        return ViewedItem(item, "released" if item.obligations.get("release_at", "9999") <= stamp else "holding", case_id)
    if item.outcome == "preserve":
        until = max(item.obligations.get("until", ""), document.extended_until or "")  # a renewal extends it
        return ViewedItem(item, "preserving" if until > stamp else "expired", case_id)
    return ViewedItem(item, "decided", case_id)


def _keys(records: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"`{r['key']}`" for r in records)
