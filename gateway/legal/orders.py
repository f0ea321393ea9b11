"""Frozen types for legal orders: who issued and served them, and what they ask.

Order verification (the JWS layer) produces an ``Order`` from a signed token;
the engine (``gateway.legal.engine``) decides it. Nothing here knows a country
or an instrument: those are configuration (``gateway.legal.policy``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Authority:
    """A registered issuer or server of orders (``[authorities.<id>]``)."""

    id: str
    name: str
    jurisdiction: str
    kind: str  # court, judge, investigating-judge, prosecutor, police, agency, designated-authority, tribunal
    public_key: str  # PEM path, relative to the data directory
    designated_for: frozenset[str] = frozenset()  # instruments it may serve for another authority

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "jurisdiction": self.jurisdiction,
            "kind": self.kind,
            "designated_for": sorted(self.designated_for),
        }


@dataclass(frozen=True, slots=True)
class Offence:
    """The offence an order is about (claim ``offence``)."""

    description: str
    max_penalty_years: float | None = None
    committed_in: str | None = None  # jurisdiction code, where known
    listed: bool | None = None  # a listed offence committed (partly) by means of an information system, e.g. Reg (EU) 2023/1543 Art 5(4)(b)-(c)

    def to_json(self) -> dict[str, object]:
        return {
            "description": self.description,
            "max_penalty_years": self.max_penalty_years,
            "committed_in": self.committed_in,
            "listed": self.listed,
        }


@dataclass(frozen=True, slots=True)
class Order:
    """A verified legal order.

    ``issuer`` is the ``iss`` authority; ``served_by`` the authority whose key
    signed it (``kid``). They differ when, e.g., a UK court's Overseas
    Production Order is served by the Secretary of State. ``received_at`` is
    when the gateway received (was served) the order: every legal window
    (preservation TTL, notification hold, review deadlines) runs from it; when
    it is ``None`` the decision time is used.
    """

    id: str
    issuer: Authority
    served_by: Authority
    instrument: str
    subjects: tuple[str, ...]
    categories: tuple[str, ...]
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    not_before: datetime | None = None
    made_at: datetime | None = None
    offence: Offence | None = None
    emergency_reason: str | None = None
    nondisclosure_until: datetime | None = None
    case_ref: str | None = None
    renews: str | None = None
    received_at: datetime | None = None

    @property
    def emergency(self) -> bool:
        return bool(self.emergency_reason)


@dataclass(frozen=True, slots=True)
class Objection:
    """An objection recorded by a notified state (R6), e.g. an EPOC enforcing state."""

    by: str  # jurisdiction code of the objecting state
    at: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PriorPreservation:
    """An earlier preservation that an order's ``renews`` claim names.

    The order service looks it up by id and passes it to the engine;
    ``extensions`` counts the renewals already granted on it.
    """

    order_id: str
    instrument: str
    issuer_jurisdiction: str
    until: datetime
    extensions: int = 0
    subjects: tuple[str, ...] = field(default=())
