"""Prometheus metrics on an explicit registry (a fresh one per app and per test).

Labels are low-cardinality: regions, jurisdictions, outcomes, reason codes,
route templates. Never a subject id, record key or personal attribute.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    """Implements ``gateway.services.observer.Observer``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.http_requests = Counter(
            "gateway_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_seconds = Histogram(
            "gateway_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.residency_decisions = Counter(
            "gateway_residency_decisions_total",
            "Residency decisions on service reads.",
            ["outcome", "caller_jurisdiction", "data_region", "reason"],
            registry=registry,
        )
        self.residency_violations = Counter(
            "gateway_residency_violations_total",
            "Records refused because their residency tag is missing, forged or names another region.",
            ["region", "reason"],
            registry=registry,
        )
        self.store_seconds = Histogram(
            "gateway_store_operation_duration_seconds",
            "Regional store operation latency.",
            ["region", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.store_errors = Counter(
            "gateway_store_errors_total",
            "Regional store operations that failed.",
            ["region", "operation"],
            registry=registry,
        )
        self.store_up = Gauge("gateway_store_up", "1 if the region's store answered its last health check.", ["region"], registry=registry)
        self.ledger_appends = Counter(
            "gateway_ledger_appends_total", "Audit ledger appends by result.", ["result"], registry=registry
        )

    # Observer
    def residency_decision(self, *, outcome: str, caller_jurisdiction: str, data_region: str, reason: str) -> None:
        self.residency_decisions.labels(outcome, caller_jurisdiction, data_region, reason).inc()

    def residency_violation(self, *, region: str, reason: str) -> None:
        self.residency_violations.labels(region, reason).inc()

    def store_operation(self, *, region: str, operation: str, seconds: float, ok: bool) -> None:
        self.store_seconds.labels(region, operation).observe(seconds)
        if not ok:
            self.store_errors.labels(region, operation).inc()

    def ledger_append(self, *, ok: bool) -> None:
        self.ledger_appends.labels("ok" if ok else "error").inc()
