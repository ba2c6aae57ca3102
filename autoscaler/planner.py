"""The planner: how many ECS nodes each node group needs now, and which nodes can go.

``plan`` is pure: a function of the cluster state, the groups as the provider reports them, an
optional forecast, the settings, ``now`` and the unneeded-since timestamps of the previous pass
(the controller keeps those in memory and in its status ConfigMap; losing them only restarts the
scale-down timers, which is safe).  The controller and the replay call the same function.

This module holds the public types and assembles one pass from modules that each decide one
thing, all over one shared ``context.Context``:

1. ``demand`` -- which pending pods, and which pods on ECI that would be cheaper on ECS, are
   ECS demand (and why the others are not);
2. ``scaleup`` -- demand that fits free or booting capacity needs nothing; the rest is bin-packed
   onto new nodes of each group it may use and an expander picks the group, repeatedly;
3. ``predictive`` -- with a forecast per resource class (``cpu`` for general groups, ``gpu`` for
   GPU groups; a bare ``Forecast`` is the ``cpu`` one), the nodes whose slice of expected
   aggregate demand saves more on ECI than the node costs (break-even, node by node); the
   capacity that rule keeps is also a floor for scale-down, falling with the forecast;
4. ``scaledown`` -- unneeded nodes, whether their pods fit elsewhere, group minimums,
   PodDisruptionBudgets and the removal policy; it waits while anything scales up.

Each change carries free-text ``reason`` for people and a short ``code`` for machines (metric
labels): ``pending-pods``, ``eci-cheaper-on-ecs`` or ``predictive`` for a scale-up (the code of
its first reason, when several passes grew one group), ``underutilized`` or ``empty`` for a
scale-down.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from extender.snapshot import ClusterState

from . import demand as demand_pass
from . import kernels_ref, predictive, scaledown, scaleup
from .backends import Kernels
from .consolidation import CONSOLIDATED, Consolidation
from .context import Context, Growth, PlannerMemo
from .demand import EXPECTED_DURATION
from .eviction import SAFE_TO_EVICT
from .nodegroup import NodeGroup, PlannerSettings
from .providers.base import GroupStatus, InstanceState
from .scaledown import Floor
from .state import DisruptionBudget, GroupNode, GroupState

if TYPE_CHECKING:
    from .forecast import Forecast

__all__ = [
    "BACKENDS",
    "EXPECTED_DURATION",
    "SAFE_TO_EVICT",
    "DisruptionBudget",
    "GroupNode",
    "GroupState",
    "Plan",
    "PlannerSettings",
    "ScaleDown",
    "ScaleUp",
    "group_state",
    "kernels_for",
    "plan",
]

BACKENDS = ("numba", "reference")
UNSPECIFIED = "unspecified"  # the code of a change built without one


def group_state(
    group: NodeGroup,
    status: GroupStatus,
    *,
    registered: Sequence[GroupNode],
    requested: Mapping[str, float] | None = None,
    last_scale_up: float | None,
    last_scale_down: float | None,
    now: float,
) -> GroupState:
    """A group as the planner sees it: the configured group clamped to the provider's sizes.

    ``registered``: the group's nodes known to the cluster; instances the provider is still
    creating are added (created at ``requested[id]``, else ``now``).  The min and max sizes are
    the stricter of the configuration and the provider; the current size is the provider's
    target (``target_size``).  The controller and the replay both build their groups here.
    """
    upcoming: list[GroupNode] = []
    creating = [i for i in status.instances if i.state is InstanceState.CREATING]
    if creating:  # most passes: none (the replay plans every few seconds)
        names = {n.name for n in registered}
        asked = requested or {}
        upcoming = [
            GroupNode(i.node or i.id, asked.get(i.node or i.id, now))
            for i in creating
            if (i.node or i.id) not in names
        ]
    low = max(group.min_size, status.min_size)
    high = min(group.max_size, status.max_size) if status.max_size else 0
    # The same object when nothing is clamped: the planner memoizes node templates by identity.
    spec = group
    if (low, high) != (group.min_size, group.max_size):
        spec = replace(group, min_size=low, max_size=high)
    return GroupState(
        group=spec,
        target_size=status.target,
        nodes=(*registered, *upcoming) if upcoming else tuple(registered),
        last_scale_up=last_scale_up,
        last_scale_down=last_scale_down,
    )


@dataclass(frozen=True, slots=True)
class ScaleUp:
    group: str
    delta: int
    new_target: int
    pods: tuple[str, ...]
    reason: str
    code: str = UNSPECIFIED  # "pending-pods", "eci-cheaper-on-ecs", "predictive"


@dataclass(frozen=True, slots=True)
class ScaleDown:
    group: str
    node: str
    reason: str
    code: str = UNSPECIFIED  # "underutilized", "empty"


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do now. ``unneeded`` goes back into the next pass; ``unschedulable`` is per pod."""

    scale_ups: tuple[ScaleUp, ...] = ()
    scale_downs: tuple[ScaleDown, ...] = ()
    unneeded: Mapping[str, float] = field(default_factory=dict)
    unschedulable: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "scaleUps": [
                {
                    "group": u.group,
                    "delta": u.delta,
                    "newTarget": u.new_target,
                    "pods": list(u.pods),
                    "reason": u.reason,
                    "code": u.code,
                }
                for u in self.scale_ups
            ],
            "scaleDowns": [
                {"group": d.group, "node": d.node, "reason": d.reason, "code": d.code}
                for d in self.scale_downs
            ],
            "unneeded": dict(self.unneeded),
            "unschedulable": dict(self.unschedulable),
            "notes": list(self.notes),
        }


def kernels_for(backend: str) -> Kernels:
    """The bin-packing kernels: ``numba`` (compiled) or ``reference`` (plain Python)."""
    if backend == "reference":
        return kernels_ref
    if backend == "numba":
        return _compiled()
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")


@functools.cache
def _compiled() -> Kernels:
    from . import kernels  # numba loads only when the compiled kernels are asked for

    return kernels


def plan(
    state: ClusterState,
    groups: Sequence[GroupState],
    *,
    forecast: Forecast | Mapping[str, Forecast] | None,
    settings: PlannerSettings,
    now: float,
    unneeded: Mapping[str, float] | None = None,
    pdbs: Sequence[DisruptionBudget] = (),
    backend: str = "numba",
    consolidation: Consolidation | None = None,
    memo: PlannerMemo | None = None,
) -> Plan:
    """One planning pass; see the module docstring and the pass modules for the rules.
    ``memo``: the planner's tables kept between passes (``context.PlannerMemo``; the replay's
    also keeps each node's usage, the controller's does not)."""
    k = kernels_for(backend)
    ctx = Context(state, groups, settings, memo=memo)
    notes: list[str] = []
    unschedulable: dict[str, str] = {}
    # A replica past its expected duration is still serving: one more horizon, as rebalance
    # and a replica without the annotation expect (demand.remaining)
    demand = demand_pass.collect(ctx, unschedulable, now=now, outlived=settings.forecast_horizon)
    if demand.on_eci:
        notes.append(f"{demand.on_eci} pending pod(s) belong on ECI by policy: not ECS demand")
    added = scaleup.scale_up(
        ctx,
        demand,
        k,
        now=now,
        unschedulable=unschedulable,
        notes=notes,
        consolidation=consolidation,
        pdbs=pdbs,
    )
    floors: list[Floor] = []
    for level in predictive.forecast_levels(
        ctx, predictive.by_class(forecast), now=now, notes=notes
    ):
        predictive.pre_provision(ctx, level, added, now=now, notes=notes)
        floors.append(
            Floor(
                frozenset(level.groups),
                level.dim,
                level.milli,
                f"capacity of its {level.cls} groups must stay at or above "
                f"{level.describe(level.milli)} (forecast)",
            )
        )
    migrating = int(demand.req[demand.moving, 0].sum())
    replacements: list[tuple[int, str]] = []
    removals, still = scaledown.scale_down(
        ctx,
        k,
        now=now,
        previous=unneeded or {},
        pdbs=pdbs,
        floors=floors,
        migrating_milli=migrating,
        blocked_by_scale_up=bool(added) or demand.about_to_land > 0,
        notes=notes,
        consolidation=consolidation,
        replacements=replacements,
    )
    for g, why in replacements:
        added.setdefault(g, Growth()).add(1, pods=(), reason=why, code=CONSOLIDATED)
    ups = tuple(
        ScaleUp(
            group=ctx.groups[g].group.name,
            delta=growth.delta,
            new_target=ctx.groups[g].target_size + growth.delta,
            pods=tuple(growth.pods),
            reason="; then ".join(growth.reasons),
            code=growth.code,
        )
        for g, growth in sorted(added.items())
    )
    downs = tuple(ScaleDown(r.group, r.node, r.reason, code=r.code) for r in removals)
    return Plan(ups, downs, still, unschedulable, tuple(notes))
