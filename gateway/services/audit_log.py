"""The one way services write the audit ledger: fail closed, counted.

Every service (records, orders, cases, notices) is given the same
``AuditLog``; none writes the ledger any other way. An append that fails
raises, so the act it records is not served: a ``GatewayError`` from the
ledger as it is, anything else as ``LedgerError`` (503 ``ledger-unavailable``).
Each append, written or not, is counted by the observer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gateway.errors import GatewayError, LedgerError
from gateway.services.observer import NullObserver, Observer


class Ledger(Protocol):
    """The ledger port: ``FileLedger``, ``MemoryLedger`` and the runtime's read-only ledger implement it."""

    async def append(self, kind: str, data: Mapping[str, Any]) -> dict[str, Any]: ...

    async def probe(self) -> None:
        """Raise ``LedgerError`` if an append could not be made now; add no entry."""
        ...

    async def close(self) -> None: ...


class AuditLog:
    """A ledger and the observer that counts its appends."""

    def __init__(self, ledger: Ledger, observer: Observer | None = None) -> None:
        self.ledger = ledger
        self.observer = observer or NullObserver()

    async def record(self, kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Append one entry; raise (and count the failure) if it could not be written."""
        try:
            entry = await self.ledger.append(kind, data)
        except GatewayError:
            self.observer.ledger_append(ok=False)
            raise
        except Exception as exc:  # the ledger must never fail open
            self.observer.ledger_append(ok=False)
            raise LedgerError("the audit ledger could not be written; nothing was served") from exc
        self.observer.ledger_append(ok=True)
        return entry
