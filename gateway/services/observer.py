"""What services report to operations; ``gateway.metrics`` implements it with Prometheus."""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    def residency_decision(self, *, outcome: str, caller_jurisdiction: str, data_region: str, reason: str) -> None: ...

    def residency_violation(self, *, region: str, reason: str) -> None: ...

    def store_operation(self, *, region: str, operation: str, seconds: float, ok: bool) -> None: ...

    def ledger_append(self, *, ok: bool) -> None: ...


class NullObserver:
    def residency_decision(self, *, outcome: str, caller_jurisdiction: str, data_region: str, reason: str) -> None:
        pass

    def residency_violation(self, *, region: str, reason: str) -> None:
        pass

    def store_operation(self, *, region: str, operation: str, seconds: float, ok: bool) -> None:
        pass

    def ledger_append(self, *, ok: bool) -> None:
        pass
