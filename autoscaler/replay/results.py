"""What one replay produces, and what it replays: the variant, its actions, time series, totals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from extender.policy import ResourcePolicy

from .scoring import STOCK, Scoring

__all__ = ["Action", "CostSplit", "IdleNode", "Result", "Timeline", "Variant"]


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of running the cluster: Spillover itself or a baseline."""

    name: str
    policies: tuple[ResourcePolicy, ...]
    autoscaling: bool = True
    forecast: bool = True
    eci: bool = True
    reaction_delay: float | None = 1.0
    headroom: int = 0  # placeholder pods per headroom group, each the size of one of its nodes
    headroom_groups: tuple[str, ...] = ()
    static: Mapping[str, int] = field(default_factory=dict)  # group -> nodes kept, no autoscaling
    description: str = ""
    consolidation: bool = False  # autoscaler.consolidation on top of cluster-autoscaler's rule
    rebalance: bool = False  # autoscaler.rebalance moves pods from ECI back to ECS
    # kube-scheduler's resource scoring (autoscaler.replay.scoring): the stock profile, or the
    # bin-packing one Spillover's manifests ship (the scenario's scheduler.spillover says which)
    scoring: Scoring = STOCK
    # Spillover's reconciler keeps pod-deletion-cost on the pods (extender.deletion_cost); off:
    # a cluster without it, where the ReplicaSet controller's own order decides every scale-in
    deletion_cost: bool = True


@dataclass(frozen=True, slots=True)
class Action:
    t: float
    group: str
    kind: str  # "scale-up" | "scale-down" | "refused" (the provider said no) | "interrupted" (spot)
    nodes: int
    reason: str


@dataclass(frozen=True, slots=True)
class Timeline:
    t: npt.NDArray[np.float64]
    demand_cpu: npt.NDArray[np.float64]  # vCPU requested by live pods
    demand_gpu: npt.NDArray[np.float64]  # GPUs requested by live pods
    ecs_cpu: npt.NDArray[np.float64]  # vCPU of Ready ECS nodes
    ecs_gpu: npt.NDArray[np.float64]
    ecs_nodes: npt.NDArray[np.float64]
    ecs_pods: npt.NDArray[np.float64]
    eci_pods: npt.NDArray[np.float64]
    pending_pods: npt.NDArray[np.float64]
    cost: npt.NDArray[np.float64]  # cumulative CNY


@dataclass(frozen=True, slots=True)
class CostSplit:
    """Where the money of one variant went (``autoscaler.replay.billing`` says how it is split)."""

    ecs_busy: float = 0.0
    ecs_fragmentation: float = 0.0
    ecs_booting: float = 0.0
    ecs_pre_provisioned: float = 0.0
    ecs_scale_down_wait: float = 0.0
    eci_burst: float = 0.0
    eci_long_stay: float = 0.0
    lost_work: float = 0.0
    restarts: float = 0.0

    LABELS: ClassVar[Mapping[str, str]] = {
        "ecs_busy": "ECS busy",
        "ecs_fragmentation": "ECS idle: fragmentation",
        "ecs_booting": "ECS idle: booting",
        "ecs_pre_provisioned": "ECS idle: pre-provisioned",
        "ecs_scale_down_wait": "ECS idle: waiting for scale-down",
        "eci_burst": "ECI bursts (< 1 h)",
        "eci_long_stay": "ECI long stays (>= 1 h)",
        "lost_work": "Lost work (a Job's pod runs again what an eviction lost)",
        "restarts": "Restarts (pods evicted or moved x restart cost)",
    }

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def items(self) -> list[tuple[str, float]]:
        return [(name, float(getattr(self, name))) for name in self.names()]

    @property
    def total(self) -> float:
        return sum(v for _, v in self.items())

    @property
    def ecs_idle(self) -> float:
        return (
            self.ecs_fragmentation
            + self.ecs_booting
            + self.ecs_pre_provisioned
            + self.ecs_scale_down_wait
        )


@dataclass(frozen=True, slots=True)
class IdleNode:
    """An ECS node paid for while it waited for its first pod (``start`` to ``end``, seconds)."""

    name: str
    group: str
    start: float
    end: float
    cost: float


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    description: str
    duration: float
    ecs_cost: float
    ecs_node_seconds: float
    ecs_node_seconds_by_group: Mapping[str, float]
    eci_cost: float
    eci_vcpu_seconds: float
    eci_gib_seconds: float
    eci_gpu_seconds: float
    pending: npt.NDArray[np.float64]  # seconds, one per pod (placeholders excluded)
    never_started: int
    pods: int
    ecs_pod_seconds: float
    eci_pod_seconds: float
    actions: tuple[Action, ...]
    peak_nodes: int
    planner_calls: int
    decide_calls: int
    events: int
    evictions: int
    timeline: Timeline
    moves: int = 0  # pods moved from ECI back to ECS by rebalance
    split: CostSplit = field(default_factory=CostSplit)
    unmanaged: int = 0  # pods no ResourcePolicy of the variant selects
    idle_nodes: tuple[IdleNode, ...] = ()  # the costliest pre-provisioned nodes
    restart_cost: float = 0.0  # pods evicted or moved, at the scenario's restart cost each
    # of eci_pod_seconds: pods the policy sent to ECI because no ECS node had room (not beyond
    # a unit's max, not an ECI-only policy)
    eci_no_room_pod_seconds: float = 0.0
    # of eci_no_room_pod_seconds: pods the planner's break-even judged cheaper on ECI than on
    # any new ECS node for their expected remaining run when they went there (by price)
    eci_by_price_pod_seconds: float = 0.0
    # work Job pods lost to evictions and ran again (``autoscaler.eviction.lost_work``)
    lost_work_pod_seconds: float = 0.0

    @property
    def cost(self) -> float:
        return self.ecs_cost + self.eci_cost + self.restart_cost

    @property
    def eci_share(self) -> float:
        total = self.ecs_pod_seconds + self.eci_pod_seconds
        return self.eci_pod_seconds / total if total > 0 else 0.0

    @property
    def eci_no_room_share(self) -> float:
        """The share of pod-hours on ECI for lack of ECS room (issue 12's <= 2 % target)."""
        total = self.ecs_pod_seconds + self.eci_pod_seconds
        return self.eci_no_room_pod_seconds / total if total > 0 else 0.0

    @property
    def eci_by_price_share(self) -> float:
        """Of ``eci_no_room_share``: pods ECI was cheaper for by the planner's own break-even
        when they went there (``autoscaler.replay.scheduler``; README, "Why pods ran on ECI")."""
        total = self.ecs_pod_seconds + self.eci_pod_seconds
        return self.eci_by_price_pod_seconds / total if total > 0 else 0.0

    def pending_percentile(self, q: float) -> float:
        return float(np.percentile(self.pending, q)) if self.pending.size else 0.0
