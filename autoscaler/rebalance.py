"""Rebalance: move pods that went to ECI only for lack of room back to ECS, once there is room.

``rebalance`` is pure and is the one place that decides moves; the controller carries them out
(an eviction through the Eviction API, after which the pod's controller creates a replacement
that the extender places on ECS) and the replay simulates them.  A pod on ECI is moved when:

- an eviction can move it (``autoscaler.eviction.move_blocker``: a ReplicaSet, StatefulSet,
  ReplicationController or Job pod, not annotated ``safe-to-evict: "false"``);
- its placement policy, counting the workload without it, now chooses an ECS unit: it went to
  ECI for lack of room, not because it is beyond the unit's ``max`` (those stay, and a move never
  takes a unit past its ``max``: each move counts against it before the next one is judged);
- it fits the free room of a registered, schedulable ECS node of that unit, after the pending
  pods (which come first: the same ``demand.collect`` and first-fit kernel as scale-up, pending
  pods first);
- the move saves money (``costs.move_saving``): what ECI would still bill it over its expected
  remaining run time (``demand.remaining``, whole GPUs) exceeds ``MoveCosts.restart`` (the price
  of a restart: cold caches, a replica short) plus the price of the work its replacement runs
  again (``eviction.lost_work``: a Job's pod starts over, all it ran since its start or its last
  checkpoint; a service replica loses none) at its share of the price of the cheapest node it
  may use.  The room is already paid for, so the rest of ECI's bill is the saving: a Job's pod
  with a run-time estimate moves early in its life and stays once the re-run would cost more
  than ECI's bill left (past its estimate it is expected to run as long again as it has run,
  so it moves when its share of the node costs less than ECI, whatever its age);
- its PodDisruptionBudget allows one more disruption, and the rate limit (``limit`` moves now;
  ``allowed`` turns a per-minute budget and the recent moves into it) is not used up.

An answer that moves nothing because no pod on ECI is worth moving or none finds room is kept
on the planner's memo (``PlannerMemo.keep``) and given again, without the work, while
it provably stays the answer (``_still_idle``): the same ``ClusterState`` at the same
``revision`` (no pod, node, policy or ordinal start written since), equal groups, settings,
costs and backend, time not gone back, and each pod on ECI it judged still as worth moving or
not as then.  Those are all its inputs but ``now``, ``limit`` and ``pdbs``: ``now`` reaches the
answer only through which pods on ECI are worth moving (``demand.remaining`` and
``eviction.lost_work``; a pod whose remaining time is 0 stays at 0 as time goes on, so only the
judged ones can change, each with the node share price it was judged at), and the
limit and the budgets only act on pods that found room, of which there were none.

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
from .costs import eci_cost, move_saving, node_share
from .eviction import lost_work
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


@dataclass(frozen=True, slots=True)
class _Idle:
    """An answer that moved nothing, and when and for which pods (see the module docstring)."""

    at: float
    # pods on ECI an eviction could move: worth it then? at which ECS price per hour of the pod?
    judged: tuple[tuple[Pod, bool, float], ...]
    answer: Moves


def _saving(
    pod: Pod, left: float, *, now: float, rate: float, settings: PlannerSettings, costs: MoveCosts
) -> float:
    """``costs.move_saving`` of ``pod`` now: ``left`` seconds to go, the work it would run
    again (``eviction.lost_work``) at ``rate`` CNY/h."""
    return move_saving(
        pod.requests,
        eci=settings.eci_price,
        remaining=left,
        restart=costs.restart,
        redo=lost_work(pod, ran=now - pod.created),
        ecs_per_hour=rate,
    )


def _share_price(ctx: Context, pod: Pod, cls: int, policy: ResourcePolicy, unit: int) -> float:
    """CNY/h of ``pod``'s share of the cheapest node it may use in ``unit`` (its re-run's
    price; ``costs.node_share``), 0 when none may hold it."""
    prices = [
        share * ctx.groups[g].group.price_per_hour
        for g in ctx.new_node_groups(cls, policy, unit)
        for share in [node_share(pod.requests, ctx.templates[g].allocatable)]
        if share <= 1.0
    ]
    return min(prices, default=0.0)


def _still_idle(
    idle: _Idle,
    state: ClusterState,
    *,
    now: float,
    settings: PlannerSettings,
    costs: MoveCosts,
) -> bool:
    """Whether ``rebalance`` would give ``idle.answer`` again now, in the same state with the
    same groups, settings, costs and backend (module docstring).  ``state`` is the one the
    answer was kept for, at the same revision: each judged pod is its workload's only pod
    (``demand.only_pod``) or not as then."""
    if now < idle.at:
        return False
    horizon = settings.forecast_horizon
    for pod, was, rate in idle.judged:
        left = demand_pass.remaining_in(state, pod, now=now, horizon=horizon, outlived=horizon)
        worth = left > 0 and _saving(pod, left, now=now, rate=rate, settings=settings, costs=costs)
        if (worth > 0) != was:
            return False
    return True


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
    ``memo``: the planner's tables kept between passes (``context.PlannerMemo``), with the last
    answer that moved nothing (module docstring)."""
    if not state.policies:
        return Moves()
    key = (tuple(groups), settings, costs, backend)
    idle = memo.recall(REBALANCE, state, key) if memo is not None else None
    if isinstance(idle, _Idle) and _still_idle(
        idle, state, now=now, settings=settings, costs=costs
    ):
        assert memo is not None
        memo.skipped(REBALANCE)
        return idle.answer
    k = kernels_for(backend)
    ctx = Context(state, groups, settings, memo=memo)
    rates: dict[str, float] = {}  # uid -> CNY/h of its share of a node, for pods that lose work

    def rate_of(ctx: Context, pod: Pod, cls: int, policy: ResourcePolicy, unit: int) -> float:
        if lost_work(pod, ran=now - pod.created) <= 0:
            return 0.0
        rate = rates.get(pod.uid)
        if rate is None:
            rate = rates[pod.uid] = _share_price(ctx, pod, cls, policy, unit)
        return rate

    def worth(
        ctx: Context, pod: Pod, cls: int, policy: ResourcePolicy, unit: int, left: float, now: float
    ) -> bool:
        rate = rate_of(ctx, pod, cls, policy, unit)
        return _saving(pod, left, now=now, rate=rate, settings=settings, costs=costs) > 0

    # A replica that has outlived its expected duration is still serving: it is expected to run
    # one more horizon (the planner's new nodes expect the same).
    horizon = settings.forecast_horizon
    demand = demand_pass.collect(ctx, {}, now=now, keep=worth, outlived=horizon)

    def nothing_moves(answer: Moves) -> Moves:
        if memo is not None:
            judged = tuple(
                (p, saving > 0, rate)
                for p, left in demand.eci_candidates
                for rate in [rates.get(p.uid, 0.0)]
                for saving in [_saving(p, left, now=now, rate=rate, settings=settings, costs=costs)]
            )
            memo.keep(REBALANCE, state, key, _Idle(now, judged, answer))
        return answer

    if not demand.from_eci.any():
        return nothing_moves(Moves())
    nodes, free = free_capacity(ctx, booting=False)
    if not nodes:
        return nothing_moves(
            Moves(notes=("no schedulable ECS node has room: no pod moves from ECI",))
        )
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
        rate = rates.get(pod.uid, 0.0)
        saving = _saving(pod, left, now=now, rate=rate, settings=settings, costs=costs)
        options.append((saving, pod, nodes[int(fitted[i])].name, left, bill))
    options.sort(key=lambda o: (-o[0], o[1].key))
    budget = [max(b.disruptions_allowed, 0) for b in pdbs]
    moves: list[Move] = []
    notes: list[str] = []
    unplaced = int(np.count_nonzero(demand.from_eci & (fitted < 0)))
    if unplaced:
        notes.append(f"{unplaced} pod(s) on ECI worth moving find no room on ECS nodes now")
    if not options:
        return nothing_moves(Moves(notes=tuple(notes)))
    for saving, pod, target, left, bill in options:
        redo = lost_work(pod, ran=now - pod.created)
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
                    + (
                        f" and {redo / 60:.0f} min of lost work run again "
                        f"({bill - costs.restart - saving:.3f} CNY)"
                        if redo > 0
                        else ""
                    )
                ),
            )
        )
    return Moves(tuple(moves), tuple(notes))
