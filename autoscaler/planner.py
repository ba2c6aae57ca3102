"""The planner: how many ECS nodes each node group needs now, and which nodes can go.

Pure: a function of the cluster state, the groups' current sizes, an optional forecast, settings
and ``now``. The controller and the replay call the same ``plan``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from extender.selectors import LabelSelector
from extender.snapshot import ClusterState

from .nodegroup import NodeGroup, PlannerSettings

if TYPE_CHECKING:
    from .forecast import Forecast

__all__ = [
    "DisruptionBudget",
    "GroupNode",
    "GroupState",
    "Plan",
    "PlannerSettings",
    "ScaleDown",
    "ScaleUp",
    "plan",
]


@dataclass(frozen=True, slots=True)
class GroupNode:
    """A node the provider says belongs to the group (it may not have registered yet)."""

    name: str
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class GroupState:
    """A node group as the provider sees it now."""

    group: NodeGroup
    target_size: int
    nodes: tuple[GroupNode, ...] = ()
    last_scale_up: float | None = None
    last_scale_down: float | None = None


@dataclass(frozen=True, slots=True)
class DisruptionBudget:
    """A PodDisruptionBudget reduced to what eviction needs: which pods, how many may go now."""

    namespace: str
    selector: LabelSelector
    disruptions_allowed: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class ScaleUp:
    group: str
    delta: int
    new_target: int
    pods: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class ScaleDown:
    group: str
    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    scale_ups: tuple[ScaleUp, ...] = ()
    scale_downs: tuple[ScaleDown, ...] = ()
    unneeded: Mapping[str, float] = field(default_factory=dict)
    unschedulable: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def plan(
    state: ClusterState,
    groups: Sequence[GroupState],
    *,
    forecast: Forecast | None,
    settings: PlannerSettings,
    now: float,
    unneeded: Mapping[str, float] | None = None,
    pdbs: Sequence[DisruptionBudget] = (),
    backend: str = "numba",
) -> Plan:
    """One planning pass (implementation in progress: returns an empty plan for now)."""
    del state, groups, forecast, settings, now, pdbs, backend
    return Plan(unneeded=dict(unneeded or {}))
