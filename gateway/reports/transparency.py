"""The transparency report: legal orders counted per issuing country and half-year.

Pure: ``build_report(entries, start, end)`` takes ledger entries (as
``read_entries`` returns them) and counts; it reads no file and no clock.

What is counted (see the legal model's "Transparency report fields"):

- every ``order.decided`` entry is one request, attributed to its
  ``issuer_jurisdiction`` and to the half-year of the entry's time (H1 is
  January to June, H2 July to December);
- a preservation order (``preservation`` true) is counted only in
  ``preservation`` and kept out of every other field and total;
- each request falls in exactly one outcome share, first match wins:
  ``content`` (some content disclosed), ``non_content`` (something disclosed,
  no content), ``rejected`` (every item refused, or refused as a whole with no
  item), ``no_data`` (nothing stored for the subjects named, the rest refused),
  ``other`` (routed to MLAT, in legal review or on hold). An item sent to
  legal review or put on an EU notification hold is taken as its case left
  it at the end of the ledger read: a case approved by two lawyers discloses
  the categories it approved and refuses the rest; one denied, expired,
  withdrawn or objected to refuses; a hold released discloses. A case is
  found by the id ``case_id_for(authority, order, subject, region)`` it was
  opened under; ``case.objection`` and ``case.released`` are read for this;
- ``mlat``, ``legal_review``, ``emergency``, ``extraterritorial`` (some data
  stored in another country than the issuer's) count requests;
  ``eu_notifications`` counts the distinct states notified per request;
- ``order.rejected`` entries (refused before any decision: bad signature,
  unknown authority, replay...) name no verified issuer, so they are counted
  as rejected requests in an ``unattributed`` row (``country`` is ``None``),
  whose accounts are unknown; a decided order whose entry names no issuing
  country is counted there too.

``legal_review`` counts requests sent to review, split by how their cases stand
at the end of the ledger read: ``review_approved`` (a case approved by two
lawyers), ``review_denied`` (denied, or closed undecided: expired or withdrawn,
so nothing was disclosed) and ``review_open``. The cases are found through
``case.opened`` entries that name the order's ``authority`` and ``order``, and
the ``case.approved``, ``case.denied``, ``case.expired`` and ``case.withdrawn``
entries that name the ``case``.

What is not counted:

- support access (the Customer Lockbox pattern: a ``case.opened`` of kind
  ``lockbox``, naming no authority and no order, and the entries that follow
  it) is a provider's own staff asking a customer, not a law-enforcement
  request; like the large providers' reports, this one leaves it out;
- every other kind of entry (service reads and lists, records and subjects
  written, residency violations, holds, notices, packages, received orders,
  approvals by one lawyer, checkpoints, configuration loads, kinds added
  later...) says nothing about how a legal order ended and is not read.

An entry the report reads but cannot (no object, a ``kind`` that is not text,
a ``time`` that is not a time, a field missing or of the wrong type) is never
guessed at and never stops the report: it is listed in ``skipped`` with its
``seq``, ``kind`` and problem, and counted nowhere else. Case entries dated
before the report starts cannot concern an order decided in it and are not
read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any

from gateway.model import parse_time
from gateway.services.cases import case_id_for

DECIDED = "order.decided"
REJECTED = "order.rejected"
OUTCOMES = ("content", "non_content", "no_data", "rejected", "other")
COUNTS = (
    "requests",
    *OUTCOMES,
    "mlat",
    "legal_review",
    "review_open",
    "review_approved",
    "review_denied",
    "emergency",
    "extraterritorial",
    "eu_notifications",
    "preservation",
)
CASE_OPENED = "case.opened"
CASE_ENDINGS = {"case.approved": "approved", "case.denied": "denied", "case.expired": "denied", "case.withdrawn": "denied"}
# what a case's end makes of the items it held: approved (for its categories), refused, or released (a hold)
CASE_SETTLES = {"case.approved": "approved", "case.denied": "refused", "case.expired": "refused", "case.withdrawn": "refused"}
CASE_SETTLES |= {"case.objection": "refused", "case.released": "released"}
SUPPORT_ACCESS = "lockbox"  # the ``kind`` of a support-access case
READ = frozenset({DECIDED, REJECTED, CASE_OPENED, *CASE_SETTLES})  # every other kind is not read
DEFAULT_CONTENT = frozenset({"content"})
SKIPPED_SHOWN = 20  # skipped entries listed in the rendered report; all are counted


@dataclass(frozen=True)
class Row:
    """One issuing country (``None``: unattributed) in one half-year (``"2026-H2"``; ``"all"`` for the whole range)."""

    period: str
    country: str | None
    requests: int = 0
    accounts: int | None = 0  # None: not known (unattributed rejections)
    content: int = 0
    non_content: int = 0
    no_data: int = 0
    rejected: int = 0
    other: int = 0
    mlat: int = 0
    legal_review: int = 0
    review_open: int = 0
    review_approved: int = 0
    review_denied: int = 0
    emergency: int = 0
    extraterritorial: int = 0
    eu_notifications: int = 0
    preservation: int = 0

    def share(self, outcome: str) -> float | None:
        """Percentage of requests with ``outcome`` (one decimal), ``None`` without requests."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome `{outcome}`")
        return round(100 * getattr(self, outcome) / self.requests, 1) if self.requests else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["country"] = self.country if self.country is not None else "unattributed"
        data["shares"] = {o: self.share(o) for o in OUTCOMES}
        return data


@dataclass(frozen=True)
class Skipped:
    """A ledger entry the report reads but could not: where it is and what is wrong with it."""

    seq: int | None  # None: the entry names no sequence number
    kind: str | None  # None: the entry names no kind
    problem: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "problem": self.problem}


@dataclass(frozen=True)
class TransparencyReport:
    start: date
    end: date
    rows: tuple[Row, ...]  # per period and country, periods in order, unattributed last
    totals: tuple[Row, ...] = field(default=())  # per period, country "total"
    total: Row = field(default_factory=lambda: Row("all", "total"))  # the whole range
    skipped: tuple[Skipped, ...] = field(default=())  # entries that could not be read, in ledger order

    def periods(self) -> list[str]:
        return [t.period for t in self.totals]

    def rows_of(self, period: str) -> list[Row]:
        return [r for r in self.rows if r.period == period]

    def by_country(self) -> list[Row]:
        """Each country over the whole range (period ``"all"``), unattributed last."""
        merged: dict[str | None, Row] = {}
        for row in self.rows:
            merged[row.country] = _add(merged.get(row.country, Row("all", row.country, accounts=None if row.country is None else 0)), row)
        return sorted(merged.values(), key=_order)

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "rows": [r.to_json() for r in self.rows],
            "totals": [t.to_json() for t in self.totals],
            "total": self.total.to_json(),
            "skipped": {"entries": len(self.skipped), "first": [s.to_json() for s in self.skipped[:SKIPPED_SHOWN]]},
        }


def half_year(day: date) -> str:
    return f"{day.year}-H{1 if day.month <= 6 else 2}"


def classify(items: list[Mapping[str, Any]], content_categories: frozenset[str] = DEFAULT_CONTENT) -> str:
    """The outcome share a decided request falls in (see the module docstring)."""
    outcomes = {i.get("outcome") for i in items}
    disclosed = [i for i in items if i.get("outcome") == "disclose"]
    if disclosed:
        return "content" if any(i.get("category") in content_categories for i in disclosed) else "non_content"
    if outcomes <= {"refuse"}:  # also an order refused as a whole that named nobody
        return "rejected"
    if outcomes <= {"refuse", "no-data"}:
        return "no_data"
    return "other"


# --- reading entries: each reader returns what it needs or raises Unreadable ------


class Unreadable(ValueError):
    """An entry the report reads has a field missing or of the wrong type; the message names the field."""


def _day(entry: Mapping[str, Any]) -> date:
    value = entry.get("time")
    if not isinstance(value, str):
        raise Unreadable("`time` is missing or not text")
    try:
        return parse_time(value).date()
    except (ValueError, OverflowError):
        raise Unreadable("`time` is not an RFC 3339 time") from None


def _data(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    data = entry.get("data")
    if not isinstance(data, Mapping):
        raise Unreadable("`data` is missing or not an object")
    return data


def _text(data: Mapping[str, Any], name: str, where: str = "") -> str | None:
    """``data[name]``: text, or ``None`` when absent or null."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise Unreadable(f"`{where}{name}` is not text")
    return value


def _required_text(data: Mapping[str, Any], name: str, where: str = "") -> str:
    value = _text(data, name, where)
    if not value:
        raise Unreadable(f"`{where}{name}` is missing")
    return value


def _flag(data: Mapping[str, Any], name: str) -> bool:
    """``data[name]``: true or false; absent or null is false."""
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise Unreadable(f"`{name}` is not true or false")
    return bool(value)


def _items(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = data.get("items")
    if not isinstance(items, list):
        raise Unreadable("`items` is missing or not a list")
    for n, item in enumerate(items):
        where = f"items[{n}]."
        if not isinstance(item, Mapping):
            raise Unreadable(f"`items[{n}]` is not an object")
        _required_text(item, "subject", where)
        _required_text(item, "outcome", where)
        for name in ("region", "category", "data_jurisdiction", "notify"):
            _text(item, name, where)
    return items


def count_decided(
    data: Mapping[str, Any], content_categories: frozenset[str] = DEFAULT_CONTENT, settled: list[Mapping[str, Any]] | None = None
) -> dict[str, int]:
    """What one ``order.decided`` entry's data adds to its row; ``Unreadable`` if a field it needs is wrong.

    The outcome share is that of ``settled`` (the items as their cases left them) when given, else of the items as decided.
    """
    if _flag(data, "preservation"):
        return {"preservation": 1}
    items = _items(data)
    issuer = _text(data, "issuer_jurisdiction")
    outcomes = {i["outcome"] for i in items}
    return {
        "requests": 1,
        "accounts": len({i["subject"] for i in items}),
        classify(items if settled is None else settled, content_categories): 1,
        "mlat": int("route-mlat" in outcomes),
        "legal_review": int("legal-review" in outcomes),
        "emergency": int(_flag(data, "emergency")),
        "extraterritorial": int(any(i.get("data_jurisdiction") not in (None, issuer) for i in items)),
        "eu_notifications": len({i["notify"] for i in items if i.get("notify")}),
    }


# --- counting -----------------------------------------------------------------------


@dataclass
class _Tally:
    """The state of one pass over the ledger."""

    start: date
    end: date
    content_categories: frozenset[str]
    rows: dict[tuple[str, str | None], Row] = field(default_factory=dict)
    reviewed: list[tuple[tuple[str, str], tuple[str, str | None]]] = field(default_factory=list)  # (authority, order), row key
    case_order: dict[str, tuple[str, str]] = field(default_factory=dict)  # case id -> (authority, order)
    endings: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    settles: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)  # case id -> (how it ended, categories approved)
    # row key, data, authority, order of each decided order: counted at the end
    decided: list[tuple[tuple[str, str | None], Mapping[str, Any], str | None, str | None]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def read(self, position: int, entry: object) -> None:
        """Count one entry, or list it as skipped."""
        if not isinstance(entry, Mapping):
            self.skipped.append(Skipped(None, None, "the entry is not an object"))
            return
        seq = entry.get("seq")
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        kind = entry.get("kind")
        if not isinstance(kind, str):
            self.skipped.append(Skipped(seq, None, "`kind` is missing or not text"))
            return
        if kind not in READ:
            return
        try:
            if kind in (DECIDED, REJECTED):
                self._order(position, kind, entry)
            else:
                self._case(kind, entry)
        except Unreadable as problem:
            self.skipped.append(Skipped(seq, kind, str(problem)))

    def _order(self, position: int, kind: str, entry: Mapping[str, Any]) -> None:
        day = _day(entry)
        if not self.start <= day <= self.end:
            return
        data = _data(entry)
        if kind == REJECTED:
            self._count((half_year(day), None), {"requests": 1, "rejected": 1, "accounts": None})
            return
        # every field is read before anything is counted: an entry is counted whole or skipped whole
        delta = count_decided(data, self.content_categories)
        country = _text(data, "issuer_jurisdiction") or None
        authority, order = _text(data, "authority"), _text(data, "order")
        key = (half_year(day), country)
        self.decided.append((key, data, authority, order))  # counted once every case's end is known
        if delta.get("legal_review"):
            # an entry that names no order cannot be matched with its cases: it stays open, and alone
            self.reviewed.append(((authority, order) if authority and order else ("", f"#{position}"), key))

    def _case(self, kind: str, entry: Mapping[str, Any]) -> None:
        if _day(entry) < self.start:
            return  # a case moves after its order is decided: this one concerns no order of the report
        data = _data(entry)
        case = _required_text(data, "case")
        if kind == CASE_OPENED:
            if _text(data, "kind") == SUPPORT_ACCESS:
                return  # support access: no authority, no order, not a law-enforcement request
            self.case_order[case] = (_required_text(data, "authority"), _required_text(data, "order"))
            return
        categories = data.get("categories") if kind == "case.approved" else []
        if categories is not None and (not isinstance(categories, list) or not all(isinstance(c, str) for c in categories)):
            raise Unreadable("`categories` is not a list of category names")
        if categories is not None:  # an approval that does not say what it approved settles no item
            self.settles[case] = (CASE_SETTLES[kind], frozenset(categories))
        if kind in CASE_ENDINGS and case in self.case_order:
            self.endings.setdefault(self.case_order[case], []).append(CASE_ENDINGS[kind])

    def _count(self, key: tuple[str, str | None], delta: Mapping[str, Any]) -> None:
        row = self.rows.get(key) or Row(key[0], key[1], accounts=0 if key[1] is not None else None)
        self.rows[key] = _add(row, Row(key[0], key[1], **delta))

    def _settled(self, data: Mapping[str, Any], authority: str | None, order: str | None) -> list[Mapping[str, Any]]:
        """The items of a decided order as their cases left them: an item in review or on hold takes its case's end."""
        items: list[Mapping[str, Any]] = data["items"]
        if not authority or not order:
            return items
        settled = []
        for item in items:
            region = item.get("region")
            end = self.settles.get(case_id_for(authority, order, item["subject"], region)) if region else None
            if item["outcome"] in ("legal-review", "hold") and end is not None:
                how, categories = end
                disclosed = how == "released" or (how == "approved" and item.get("category") in categories)
                item = {**item, "outcome": "disclose" if disclosed else "refuse"}
            settled.append(item)
        return settled

    def report(self) -> TransparencyReport:
        for key, data, authority, order in self.decided:
            if data.get("peers") and not data.get("items"):
                continue  # every item was decided by peer gateways (federation): their reports count the request
            settled = None if data.get("preservation") else self._settled(data, authority, order)  # a preservation's items were not read
            self._count(key, count_decided(data, self.content_categories, settled))
        rows = dict(self.rows)
        for order, key in self.reviewed:
            ended = self.endings.get(order, [])
            state = "review_approved" if "approved" in ended else ("review_denied" if ended else "review_open")
            rows[key] = _add(rows[key], Row(key[0], key[1], accounts=None, **{state: 1}))
        ordered = sorted(rows.values(), key=lambda r: (r.period, *_order(r)))
        totals: dict[str, Row] = {}
        for row in ordered:
            totals[row.period] = _add(totals.get(row.period, Row(row.period, "total")), row)
        total = Row("all", "total")
        for row in totals.values():
            total = _add(total, row)
        return TransparencyReport(self.start, self.end, tuple(ordered), tuple(totals.values()), total, tuple(self.skipped))


def build_report(
    entries: Iterable[object], start: date, end: date, *, content_categories: frozenset[str] = DEFAULT_CONTENT
) -> TransparencyReport:
    """Count the orders decided or rejected between ``start`` and ``end`` (both days included, UTC).

    Never fails on an entry: one it reads but cannot is listed in the report's ``skipped``.
    """
    if end < start:
        raise ValueError(f"the report ends ({end}) before it starts ({start})")
    tally = _Tally(start, end, content_categories)
    for position, entry in enumerate(entries):
        tally.read(position, entry)
    return tally.report()


def _order(row: Row) -> tuple[bool, str]:
    return (row.country is None, row.country or "")


def _add(a: Row, b: Row) -> Row:
    """``a`` plus the counts of ``b``; accounts stay unknown only when both are unknown."""
    changes: dict[str, Any] = {name: getattr(a, name) + getattr(b, name) for name in COUNTS}
    changes["accounts"] = None if a.accounts is None and b.accounts is None else (a.accounts or 0) + (b.accounts or 0)
    return replace(a, **changes)


def parse_range(start: str | None, end: str | None) -> tuple[date, date]:
    """``--from``/``--to`` (or ``from``/``to``) as dates; ``ValueError`` saying what is wrong."""
    days = []
    for name, text in (("from", start), ("to", end)):
        if not text:
            raise ValueError(f"`{name}` is required: a date like `2026-01-01`")
        try:
            days.append(date.fromisoformat(text))
        except ValueError:
            raise ValueError(f"`{name}` must be a date like `2026-01-01`, not `{text}`") from None
    if days[1] < days[0]:
        raise ValueError(f"`to` ({days[1]}) is before `from` ({days[0]})")
    return days[0], days[1]
