"""Prometheus metrics on an explicit registry (a fresh one per app and per test).

Labels are low-cardinality: regions, jurisdictions, outcomes, reason codes,
instruments, route templates. Never a subject id, record key, order id or
personal attribute. Times are seconds; moments are Unix timestamps in seconds.

Under ``gateway serve --workers N`` each worker process records its own values
in prometheus_client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set
by the parent), and ``/metrics`` shows every worker's, whichever worker
answers (``exposition``): counters and histograms summed; a gauge each worker
sets alike from shared state (store health, cases, holds) as the most recent
value of a live worker; the open write intents, one count per worker's
chain, summed over the live workers. A single process keeps its values in
memory, as the default registry does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Order handling is measured against a 30-minute objective: 1800 s is a bucket
# boundary, so "decided within the objective" is one `le="1800"` series.
ORDER_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 7200.0, 14400.0, 86400.0)
ORDER_OBJECTIVE_SECONDS = 1800.0
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
NO_REGION = "none"
SHARED = "livemostrecent"  # a gauge every worker sets from the same shared state: the latest value of a live worker


class GatewayMetrics:
    """Implements ``gateway.services.observer.Observer``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # Labelled children of the per-request metrics, looked up once per label set:
        # ``labels()`` validates and locks on every call, which a hot path notices.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # --- HTTP
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
        # --- residency decisions on service reads
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
        # --- legal orders
        self.order_decisions = Counter(
            "gateway_order_decisions_total",
            "Order items decided, one per (subject, region, category), by outcome, instrument, issuing jurisdiction and data region.",
            ["outcome", "instrument", "issuing_jurisdiction", "data_region"],
            registry=registry,
        )
        self.orders_rejected = Counter(
            "gateway_orders_rejected_total",
            "Orders refused before any item was decided (signature, validity, instrument...), by reason code.",
            ["reason"],
            registry=registry,
        )
        self.order_decision_seconds = Histogram(
            "gateway_order_receipt_to_decision_seconds",
            "Time from an order's receipt to its decision (objective: 1800 s).",
            buckets=ORDER_BUCKETS,
            registry=registry,
        )
        self.order_package_seconds = Histogram(
            "gateway_order_receipt_to_package_seconds",
            "Time from an order's receipt to each disclosure package produced for it.",
            buckets=ORDER_BUCKETS,
            registry=registry,
        )
        self.cases = Gauge(
            "gateway_cases",
            "Legal cases (orders' items that need people: legal review, holds) by kind and state, as of the last refresh.",
            ["kind", "state"],
            registry=registry,
            multiprocess_mode=SHARED,
        )
        self.case_next_deadline = Gauge(
            "gateway_case_next_deadline_timestamp_seconds",
            "Earliest deadline among active cases of a kind (Unix seconds); NaN when none is active.",
            ["kind"],
            registry=registry,
            multiprocess_mode=SHARED,
        )
        self._case_labels: set[tuple[str, str]] = set()
        self._deadline_kinds: set[str] = set()
        # --- holds
        self.holds_active = Gauge(
            "gateway_holds_active", "Records under a legal hold, as counted by the last hold sweep.", registry=registry, multiprocess_mode=SHARED
        )
        self.holds_next_release = Gauge(
            "gateway_holds_next_release_timestamp_seconds",
            "Earliest release time among held records after the last sweep (Unix seconds); NaN when nothing is held.",
            registry=registry,
            multiprocess_mode=SHARED,
        )
        self.holds_next_release.set(math.nan)
        self.hold_sweeps = Counter("gateway_hold_sweeps_total", "Completed hold sweeps.", registry=registry)
        # --- regional stores
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
        self.store_up = Gauge(
            "gateway_store_up", "1 if the region's store answered its last health check.", ["region"], registry=registry, multiprocess_mode=SHARED
        )
        # --- audit ledger
        self.ledger_appends = Counter(
            "gateway_ledger_appends_total", "Audit ledger appends by result.", ["result"], registry=registry
        )
        self.ledger_batch_size = Histogram(
            "gateway_ledger_batch_entries", "Entries made durable together by one ledger fsync.", buckets=BATCH_BUCKETS, registry=registry
        )
        self.ledger_fsync_seconds = Histogram(
            "gateway_ledger_fsync_duration_seconds", "Audit ledger fsync latency.", buckets=FSYNC_BUCKETS, registry=registry
        )
        self.ledger_fsync_failures = Counter(
            "gateway_ledger_fsync_failures_total", "Audit ledger batches whose write or fsync failed.", registry=registry
        )
        # --- write intents without an outcome (gateway.services.reconcile)
        self.write_intents_open = Gauge(
            "gateway_write_intents_open",
            "Write intents older than reconcile_after_seconds still without an outcome after the last reconcile pass (their region could not be read).",
            registry=registry,
            multiprocess_mode="livesum",  # each worker reconciles its own chain: their counts add up
        )
        self.write_intents_reconciled = Counter(
            "gateway_write_intents_reconciled_total",
            "Write intents without an outcome that a reconcile pass settled, by what the store showed.",
            ["result"],
            registry=registry,
        )
        # --- peer gateways (federation)
        self.peer_requests = Counter(
            "gateway_peer_requests_total",
            "Requests to peer gateways by peer and outcome: answered, unavailable (no answer) or refused (the peer refused this gateway's token).",
            ["peer", "outcome"],
            registry=registry,
        )

    def exposition(self) -> CollectorRegistry:
        """What ``/metrics`` shows: this registry, or under ``--workers`` every worker's values from the multiprocess folder."""
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return self.registry
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=directory)
        return merged

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def http_request(self, *, route: str, method: str, status: int, seconds: float) -> None:
        self._child(self.http_requests, route, method, str(status)).inc()
        self._child(self.http_seconds, route, method).observe(seconds)

    # Observer
    def residency_decision(self, *, outcome: str, caller_jurisdiction: str, data_region: str, reason: str) -> None:
        self._child(self.residency_decisions, outcome, caller_jurisdiction, data_region, reason).inc()

    def residency_violation(self, *, region: str, reason: str) -> None:
        self.residency_violations.labels(region, reason).inc()

    def store_operation(self, *, region: str, operation: str, seconds: float, ok: bool) -> None:
        self._child(self.store_seconds, region, operation).observe(seconds)
        if not ok:
            self.store_errors.labels(region, operation).inc()

    def ledger_append(self, *, ok: bool) -> None:
        self._child(self.ledger_appends, "ok" if ok else "error").inc()

    def ledger_batch(self, *, size: int, fsync_seconds: float, ok: bool) -> None:
        if ok:
            self.ledger_batch_size.observe(size)
            self.ledger_fsync_seconds.observe(fsync_seconds)
        else:
            self.ledger_fsync_failures.inc()

    def intents_reconciled(self, *, results: Mapping[str, int], open: int) -> None:
        for result, count in results.items():
            self.write_intents_reconciled.labels(result).inc(count)
        self.write_intents_open.set(open)

    def peer_request(self, *, peer: str, outcome: str) -> None:
        self._child(self.peer_requests, peer, outcome).inc()

    def order_decision(self, *, outcome: str, instrument: str, issuing_jurisdiction: str, data_region: str | None) -> None:
        self.order_decisions.labels(outcome, instrument, issuing_jurisdiction, data_region or NO_REGION).inc()

    def order_rejected(self, *, reason: str) -> None:
        self.orders_rejected.labels(reason).inc()

    def order_decided(self, *, seconds: float) -> None:
        self.order_decision_seconds.observe(max(seconds, 0.0))

    def order_packaged(self, *, seconds: float) -> None:
        self.order_package_seconds.observe(max(seconds, 0.0))

    def holds_swept(self, *, active: int, next_release_at: float | None) -> None:
        self.holds_active.set(active)
        self.holds_next_release.set(math.nan if next_release_at is None else next_release_at)
        self.hold_sweeps.inc()

    # Set from the operations routes (gateway.web.ops), not by services.
    def cases_seen(self, *, counts: dict[tuple[str, str], int], next_deadline: dict[str, float]) -> None:
        """Counts by (kind, state) and the earliest active deadline by kind; series seen before and gone now read 0 / NaN."""
        for kind, state in self._case_labels - set(counts):
            self.cases.labels(kind, state).set(0)
        for (kind, state), count in counts.items():
            self.cases.labels(kind, state).set(count)
        self._case_labels |= set(counts)
        for kind in self._deadline_kinds - set(next_deadline):
            self.case_next_deadline.labels(kind).set(math.nan)
        for kind, at in next_deadline.items():
            self.case_next_deadline.labels(kind).set(at)
        self._deadline_kinds |= set(next_deadline)
