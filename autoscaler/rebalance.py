"""Rebalance: move pods that went to ECI only for lack of room back to ECS, once there is room.

``rebalance`` is pure and is the one place that decides moves; the controller carries them out
(an eviction through the Eviction API, after which the pod's controller creates a replacement
that the extender places on ECS) and the replay simulates them.  A pod on ECI is moved when:

- an eviction can move it (``autoscaler.eviction.move_blocker``: a ReplicaSet, StatefulSet or
  ReplicationController pod, not annotated ``safe-to-evict: "false"``);
- its placement policy, counting the workload without it, now chooses an ECS unit: it went to
  ECI for lack of room, not because it is beyond the unit's ``max`` (those stay, and a move never
  takes a unit past its ``max``: each move counts against it before the next one is judged);
- it fits the free room of a registered, schedulable ECS node of that unit, after the pending
  pods (which come first: the same ``demand.collect`` and first-fit kernel as scale-up, pending
  pods first);
- what ECI would still bill it over its expected remaining run time (``demand.remaining``, whole
  GPUs) exceeds ``MoveCosts.restart`` (the price of a restart: cold caches, lost work).  The room
  is already paid for, so that bill is the saving;
- its PodDisruptionBudget allows one more disruption, and the rate limit (``limit`` moves now;
  ``allowed`` turns a per-minute budget and the recent moves into it) is not used up.

Moves with the largest saving go first.  Room that is *cheaper to add* than the remaining ECI bill
is the planner's business: scale-up adds nodes for such pods (``costs.new_node_pays``), and the
next rebalance moves them once those nodes are up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from extender.model import Pod
from extender.policy import ResourcePolicy
from extender.snapshot import ClusterState

from . import demand as demand_pass
from .context import Context, PlannerMemo
from .costs import eci_cost
from .nodegroup import MoveCosts, PlannerSettings
from .planner import kernels_for
from .scaleup import fit_order, free_capacity
from .state import DisruptionBudget, GroupState

__all__ = ["REBALANCE", "Move", "MoveCosts", "Moves", "allowed", "rebalance"]

REBALANCE = "rebalance"  # the code of a move in metrics and Events


@dataclass(frozen=True, slots=True)
class Move:
    pod: str  # namespace/name
    uid: str
    source: str  # the ECI node it runs on
    target: str  # the ECS node whose free room it fits (the extender places the replacement)
    saving: float  # CNY over its expected remaining run time, the restart cost deducted
    reason: str
    code: str = REBALANCE


@dataclass(frozen=True, slots=True)
class Moves:
    moves: tuple[Move, ...] = ()
    notes: tuple[str, ...] = ()


def allowed(recent: Sequence[float], *, now: float, per_minute: int) -> int:
    """Moves the rate limit allows now, given the times of the moves made so far."""
    return max(0, per_minute - sum(1 for t in recent if now - t < 60.0))


def rebalance(
    state: ClusterState,
    groups: Sequence[GroupState],
    costs: MoveCosts,
    *,
    now: float,
    settings: PlannerSettings,
    limit: int,
    pdbs: Sequence[DisruptionBudget] = (),
    backend: str = "numba",
    memo: PlannerMemo | None = None,
) -> Moves:
    """The pods to move from ECI to ECS now; see the module docstring for the rule.
    ``memo``: the planner's tables kept between passes (``context.PlannerMemo``)."""
    if not state.policies:
        return Moves()
    k = kernels_for(backend)
    ctx = Context(state, groups, settings, memo=memo)

    def worth(
        ctx: Context, pod: Pod, cls: int, policy: ResourcePolicy, unit: int, left: float
    ) -> bool:
        return eci_cost(pod.requests, eci=settings.eci_price, seconds=left) > costs.restart

    # A replica that has outlived its expected duration is still serving: into room that is
    # already paid for, it is expected to run one more horizon (a new node is not built on it).
    horizon = settings.forecast_horizon
    demand = demand_pass.collect(ctx, {}, now=now, keep=worth, outlived=horizon)
    if not demand.from_eci.any():
        return Moves()
    nodes, free = free_capacity(ctx, booting=False)
    if not nodes:
        return Moves(notes=("no schedulable ECS node has room: no pod moves from ECI",))
    elig = np.stack(
        [ctx.node_elig(c, p, u, nodes, purpose="fit") for c, p, u in demand.pack_keys]
    ).reshape(len(demand.pack_keys), len(nodes))
    order = fit_order(demand.req, demand.from_eci)
    fitted = k.fit_existing(demand.req, order=order, free=free, pod_class=demand.pack, elig=elig)
    source = {p.uid: p.node_name for p in demand.pods}
    options = []
    for i in np.flatnonzero(demand.from_eci & (fitted >= 0)):
        pod = demand.pods[i]
        left = float(demand.eci_hours[i]) * 3600
        bill = eci_cost(pod.requests, eci=settings.eci_price, seconds=left)
        options.append((bill - costs.restart, pod, nodes[int(fitted[i])].name, left, bill))
    options.sort(key=lambda o: (-o[0], o[1].key))
    budget = [max(b.disruptions_allowed, 0) for b in pdbs]
    moves: list[Move] = []
    notes: list[str] = []
    unplaced = int(np.count_nonzero(demand.from_eci & (fitted < 0)))
    if unplaced:
        notes.append(f"{unplaced} pod(s) on ECI worth moving find no room on ECS nodes now")
    for saving, pod, target, left, bill in options:
        if len(moves) >= limit:
            notes.append(
                f"{len(options) - len(moves)} move(s) wait: the rate limit allows "
                f"{max(limit, 0)} now"
            )
            break
        covering = next((b for b, pdb in enumerate(pdbs) if pdb.covers(pod)), None)
        if covering is not None:
            if budget[covering] <= 0:
                notes.append(f"pod {pod.key} stays on ECI: its PodDisruptionBudget allows no more")
                continue
            budget[covering] -= 1
        moves.append(
            Move(
                pod=pod.key,
                uid=pod.uid,
                source=source[pod.uid],
                target=target,
                saving=saving,
                reason=(
                    f"ECI would bill {bill:.3f} CNY over its expected {left / 60:.0f} min left; "
                    f"{target} has room; saves {saving:.3f} CNY after a {costs.restart:g} CNY "
                    "restart"
                ),
            )
        )
    return Moves(tuple(moves), tuple(notes))
