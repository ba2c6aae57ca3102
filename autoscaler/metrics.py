"""Prometheus metrics of the autoscaler controller, on a registry of its own.

The ``reason`` label of planned and applied changes is the change's ``code`` ("pending-pods",
"underutilized", ...), a short fixed vocabulary of the planner; the free-text reason, with its
numbers and names, goes to events and the status ConfigMap only.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LOOP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.loop_duration = Histogram(
            "spillover_autoscaler_loop_seconds",
            "Duration of one controller pass (read, plan, apply), by outcome.",
            ["outcome"],
            buckets=_LOOP_BUCKETS,
            registry=self.registry,
        )
        self.planned = Counter(
            "spillover_autoscaler_planned_changes",
            "Nodes the planner asked to add or remove, by group, direction and reason.",
            ["group", "direction", "reason"],
            registry=self.registry,
        )
        self.applied = Counter(
            "spillover_autoscaler_applied_changes",
            "Nodes added or removed through the provider, by group, direction and reason.",
            ["group", "direction", "reason"],
            registry=self.registry,
        )
        self.moves = Counter(
            "spillover_autoscaler_rebalance_moves",
            "Pods moved from ECI back to ECS (evicted for their controller to recreate), by "
            "outcome: evicted, refused (a PodDisruptionBudget or the API said no), gone.",
            ["outcome"],
            registry=self.registry,
        )
        self.move_savings = Counter(
            "spillover_autoscaler_rebalance_savings_cny",
            "Expected savings of the moves made, restart costs deducted (CNY).",
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "spillover_autoscaler_provider_errors",
            "Provider calls that failed after retries, by group and operation.",
            ["group", "operation"],
            registry=self.registry,
        )
        self.forecast_wape = Gauge(
            "spillover_autoscaler_forecast_wape",
            "Weighted absolute percentage error of the demand forecast over recent minutes.",
            registry=self.registry,
        )
        self.target_size = Gauge(
            "spillover_autoscaler_group_target_size",
            "Target size of each node group as the provider reports it.",
            ["group"],
            registry=self.registry,
        )
        self.pending_pods = Gauge(
            "spillover_autoscaler_pending_pods",
            "Pods without a node at the last pass.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "spillover_autoscaler_leader",
            "1 while this replica holds the leader lease.",
            registry=self.registry,
        )
        self.last_pass = Gauge(
            "spillover_autoscaler_last_pass_timestamp_seconds",
            "Clock time of the last completed pass.",
            registry=self.registry,
        )
