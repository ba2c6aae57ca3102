"""Prometheus metrics of the extender, on a registry of its own (tests build as many as they like)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.latency = Histogram(
            "spillover_extender_request_seconds",
            "Time to answer one extender call, by verb.",
            ["verb"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "spillover_extender_requests",
            "Extender calls by verb and HTTP status code.",
            ["verb", "code"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "spillover_extender_decisions",
            "Placement decisions by unit resource (ecs, eci, none, unmanaged) and reason.",
            ["unit", "reason"],
            registry=self.registry,
        )
        self.ledger_size = Gauge(
            "spillover_extender_ledger_reservations",
            "Reservations not yet confirmed by the watch.",
            registry=self.registry,
        )
        self.watch_restarts = Counter(
            "spillover_extender_watch_restarts",
            "Watch streams restarted, by resource and cause (expired, error, closed).",
            ["resource", "cause"],
            registry=self.registry,
        )
        self.deletion_cost_patches = Counter(
            "spillover_extender_deletion_cost_patches",
            "pod-deletion-cost annotations written, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.synced = Gauge(
            "spillover_extender_cache_synced",
            "1 when the cluster cache has listed every watched kind.",
            registry=self.registry,
        )
