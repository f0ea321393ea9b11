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
  ``other`` (routed to MLAT, in legal review or on hold);
- ``mlat``, ``legal_review``, ``emergency``, ``extraterritorial`` (some data
  stored in another country than the issuer's) count requests;
  ``eu_notifications`` counts the distinct states notified per request;
- ``order.rejected`` entries (refused before any decision: bad signature,
  unknown authority, replay...) name no verified issuer, so they are counted
  as rejected requests in an ``unattributed`` row (``country`` is ``None``),
  whose accounts are unknown.

``legal_review`` counts requests sent to review, split by how their cases stand
at the end of the ledger read: ``review_approved`` (a case approved by two
lawyers), ``review_denied`` (denied, or closed undecided: expired or withdrawn,
so nothing was disclosed) and ``review_open``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any

from gateway.model import parse_time

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
DEFAULT_CONTENT = frozenset({"content"})


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
class TransparencyReport:
    start: date
    end: date
    rows: tuple[Row, ...]  # per period and country, periods in order, unattributed last
    totals: tuple[Row, ...] = field(default=())  # per period, country "total"
    total: Row = field(default_factory=lambda: Row("all", "total"))  # the whole range

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


def count_decided(data: Mapping[str, Any], content_categories: frozenset[str] = DEFAULT_CONTENT) -> dict[str, int]:
    """What one ``order.decided`` entry adds to its row."""
    if data.get("preservation"):
        return {"preservation": 1}
    items = [i for i in data.get("items", []) if isinstance(i, Mapping)]
    issuer = data.get("issuer_jurisdiction")
    outcomes = {i.get("outcome") for i in items}
    return {
        "requests": 1,
        "accounts": len({i.get("subject") for i in items}),
        classify(items, content_categories): 1,
        "mlat": int("route-mlat" in outcomes),
        "legal_review": int("legal-review" in outcomes),
        "emergency": int(bool(data.get("emergency"))),
        "extraterritorial": int(any(i.get("data_jurisdiction") not in (None, issuer) for i in items)),
        "eu_notifications": len({i["notify"] for i in items if i.get("notify")}),
    }


def build_report(
    entries: Iterable[Mapping[str, Any]], start: date, end: date, *, content_categories: frozenset[str] = DEFAULT_CONTENT
) -> TransparencyReport:
    """Count the orders decided or rejected between ``start`` and ``end`` (both days included, UTC)."""
    if end < start:
        raise ValueError(f"the report ends ({end}) before it starts ({start})")
    rows: dict[tuple[str, str | None], Row] = {}
    reviewed: dict[tuple[str, str], tuple[str, str | None]] = {}  # (authority, order) -> row key, for orders sent to review
    case_order: dict[str, tuple[str, str]] = {}
    endings: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        kind = entry.get("kind")
        data = entry.get("data", {})
        if kind == CASE_OPENED:
            case_order[data["case"]] = (data["authority"], data["order"])
            continue
        if kind in CASE_ENDINGS and data.get("case") in case_order:
            endings.setdefault(case_order[data["case"]], []).append(CASE_ENDINGS[kind])
            continue
        if kind not in (DECIDED, REJECTED):
            continue
        day = parse_time(entry["time"]).date()
        if not start <= day <= end:
            continue
        data = entry.get("data", {})
        if kind == DECIDED:
            country = data.get("issuer_jurisdiction")
            delta = count_decided(data, content_categories)
        else:
            country, delta = None, {"requests": 1, "rejected": 1, "accounts": None}
        key = (half_year(day), country)
        row = rows.get(key) or Row(key[0], country, accounts=0 if country is not None else None)
        rows[key] = _add(row, Row(key[0], country, **delta))  # type: ignore[arg-type]
        if delta.get("legal_review"):
            reviewed[(data.get("authority", ""), data.get("order", ""))] = key
    for order, key in reviewed.items():
        ended = endings.get(order, [])
        state = "review_approved" if "approved" in ended else ("review_denied" if ended else "review_open")
        rows[key] = _add(rows[key], Row(key[0], key[1], accounts=None, **{state: 1}))
    ordered = sorted(rows.values(), key=lambda r: (r.period, *_order(r)))
    totals: dict[str, Row] = {}
    for row in ordered:
        totals[row.period] = _add(totals.get(row.period, Row(row.period, "total")), row)
    total = Row("all", "total")
    for row in totals.values():
        total = _add(total, row)
    return TransparencyReport(start, end, tuple(ordered), tuple(totals.values()), total)


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
