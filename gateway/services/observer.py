"""What services report to operations; ``gateway.metrics`` implements it with Prometheus.

Every argument is a low-cardinality value: an outcome, a region, a
jurisdiction, an instrument, a reason code, a count or a duration. Never a
subject id, a record key, an order id or anything read from a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Observer(Protocol):
    def residency_decision(self, *, outcome: str, caller_jurisdiction: str, data_region: str, reason: str) -> None: ...

    def residency_violation(self, *, region: str, reason: str) -> None: ...

    def store_operation(self, *, region: str, operation: str, seconds: float, ok: bool) -> None: ...

    def ledger_append(self, *, ok: bool) -> None: ...

    def ledger_batch(self, *, size: int, fsync_seconds: float, ok: bool) -> None:
        """One group commit of the ledger: ``size`` entries made durable by one fsync taking ``fsync_seconds``."""
        ...

    def intents_reconciled(self, *, results: Mapping[str, int], open: int) -> None:
        """After a reconcile pass: intents settled by result, and those old enough but still open (their region could not be read)."""
        ...

    def order_decision(self, *, outcome: str, instrument: str, issuing_jurisdiction: str, data_region: str | None) -> None:
        """One (subject, region, category) item of an order decided; ``data_region`` is None when no region holds the subject."""
        ...

    def order_rejected(self, *, reason: str) -> None:
        """An order refused before any item was decided (bad signature, expired...), by its stable reason code."""
        ...

    def order_decided(self, *, seconds: float) -> None:
        """Time from an order's receipt to its decision."""
        ...

    def order_packaged(self, *, seconds: float) -> None:
        """Time from an order's receipt to a disclosure package produced for it."""
        ...

    def holds_swept(self, *, active: int, next_release_at: float | None) -> None:
        """After a sweep: records still under a legal hold and the earliest release time (Unix seconds) among them."""
        ...

    def peer_request(self, *, peer: str, outcome: str) -> None:
        """A request to a peer gateway: ``answered``, ``unavailable`` (no answer) or ``refused`` (it refused this gateway's token)."""
        ...


class NullObserver:
    def residency_decision(self, *, outcome: str, caller_jurisdiction: str, data_region: str, reason: str) -> None:
        pass

    def residency_violation(self, *, region: str, reason: str) -> None:
        pass

    def store_operation(self, *, region: str, operation: str, seconds: float, ok: bool) -> None:
        pass

    def ledger_append(self, *, ok: bool) -> None:
        pass

    def ledger_batch(self, *, size: int, fsync_seconds: float, ok: bool) -> None:
        pass

    def intents_reconciled(self, *, results: Mapping[str, int], open: int) -> None:
        pass

    def order_decision(self, *, outcome: str, instrument: str, issuing_jurisdiction: str, data_region: str | None) -> None:
        pass

    def order_rejected(self, *, reason: str) -> None:
        pass

    def order_decided(self, *, seconds: float) -> None:
        pass

    def order_packaged(self, *, seconds: float) -> None:
        pass

    def holds_swept(self, *, active: int, next_release_at: float | None) -> None:
        pass

    def peer_request(self, *, peer: str, outcome: str) -> None:
        pass
