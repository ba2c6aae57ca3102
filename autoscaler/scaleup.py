"""Scale-up: which groups get new nodes for the ECS demand, by bin packing and an expander.

Demand that first-fits the free capacity of existing nodes or of nodes still booting (target size
above registered nodes) needs no new node.  The rest is packed first-fit-decreasing onto new nodes
of every group it may use (node selector, required node affinity and taints against the group's
labels and taints; the policy unit's node selector), an expander picks one group, and this repeats
for the pods left over.  Max sizes, cooldowns and ``max_nodes_per_loop`` bound the options; pods
nothing can take get a reason.  The packing runs in ``k`` (``autoscaler.kernels`` or
``autoscaler.kernels_ref``), chosen by the planner.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from extender.model import Node, Resources

from .backends import Kernels
from .consolidation import (
    Absorbable,
    Consolidation,
    Sheddable,
    absorb,
    absorbable,
    shed_bound,
    sheddable,
)
from .context import Context, Growth, IntArray, fmt_time, vector
from .costs import GIB, eci_costs, new_node_pays, new_node_seconds
from .demand import Demand
from .eviction import lost_work
from .expanders import Option, expander_for
from .nodegroup import MoveCosts, NodeGroup, PlannerSettings
from .state import DisruptionBudget

__all__ = ["ECI_CHEAPER_ON_ECS", "PENDING_PODS", "fit_order", "free_capacity", "scale_up"]

PENDING_PODS = "pending-pods"
ECI_CHEAPER_ON_ECS = "eci-cheaper-on-ecs"


def fit_order(req: IntArray, from_eci: npt.NDArray[np.bool_]) -> IntArray:
    """Pending pods before pods now on ECI (a pod that waits comes first: a pod on ECI already
    runs), each by decreasing GPU, then cpu, then memory (stable: equal pods keep their order)."""
    return np.lexsort((-req[:, 1], -req[:, 0], -req[:, 2], from_eci)).astype(np.int64)


@dataclass(slots=True)
class _Absorbing:
    """Consolidation's part in scale-up (``consolidation.absorb``): the nodes each group's new
    nodes may take the pods of, found once per group and pass, those already taken (and those
    that receive pods in this pass: their pods are more than they hold now), how many nodes
    above its minimum each group may still lose, and the nodes ``shed_bound`` chooses from,
    listed once per pass (``listed``)."""

    pdbs: Sequence[DisruptionBudget]
    budget: list[int]
    found: dict[int, list[Absorbable]] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    shed: Sheddable | None = None

    def listed(self, ctx: Context) -> Sheddable:
        if self.shed is None:
            self.shed = sheddable(ctx)
        return self.shed


def _pays(
    pods: Sequence[tuple[Resources, float]],
    freed: Sequence[Absorbable],
    *,
    group: NodeGroup,
    settings: PlannerSettings,
    redo: Sequence[float],
) -> bool:
    """``costs.new_node_pays`` for a new node of ``group`` holding ``pods`` from ECI and the
    pods of the ``freed`` nodes (a restart each), which then go after the unneeded time."""
    wait = settings.scale_down_unneeded_time
    return new_node_pays(
        pods,
        price_per_hour=group.price_per_hour,
        eci=settings.eci_price,
        boot=group.boot_time,
        linger=wait,
        redo=redo,
        freed=[(a.price_per_hour, a.life) for a in freed],
        drain_wait=wait,
        restarts=sum(a.pods for a in freed) * (settings.rebalance or MoveCosts()).restart,
    )


def _unpaid(
    ctx: Context,
    demand: Demand,
    assign: IntArray,
    g: int,
    *,
    now: float,
    absorbing: _Absorbing | None,
    notes: list[str],
) -> npt.NDArray[np.bool_]:
    """Pods on new nodes of group ``g`` that hold only pods now on ECI and do not pay for
    themselves (``costs.new_node_pays``, with the work a Job's pod runs again once the node is
    up: ``eviction.lost_work``), not even with the pods of existing nodes it could take so that
    they go (``absorbing``: consolidation on; ``consolidation.absorb``): those pods stay on
    ECI.

    A node is judged over the time all its pods are expected to run, the shortest of their
    expected runs (``demand.remaining``): their ECI bills over it against the node's price for
    its boot, that time, the longest work run again and the unneeded time.  Those of its pods
    that run on past it keep a node already judged worth it, as they did when every replica
    without an estimate was expected to run one horizon.  Paid for its longest pod instead, a
    node for young replicas and one that has run for weeks (expected to run for weeks more:
    ``demand.remaining``) would never pay (bench/RESULTS.md, issue 12, session 10)."""
    out = np.zeros(len(assign), np.bool_)
    group, settings = ctx.groups[g].group, ctx.settings
    for n in np.unique(assign[assign >= 0]):
        on = np.flatnonzero(assign == n)
        if not demand.from_eci[on].all():
            continue  # a pending pod needs this node anyway
        # judged over the time all its pods are expected to run (docstring)
        window = float(demand.eci_hours[on].min()) * 3600
        pods = [(demand.pods[i].requests, window) for i in on]
        up = now + group.boot_time
        pays = functools.partial(
            _pays,
            pods,
            group=group,
            settings=settings,
            redo=[lost_work(demand.pods[i], ran=up - demand.pods[i].created) for i in on],
        )
        if pays(()):
            continue
        taken = None
        room = ctx.cap[g] - demand.req[on].sum(axis=0)
        if absorbing is not None and pays(shed_bound(ctx, room=room, listed=absorbing.listed(ctx))):
            found = absorbing.found.get(g)
            if found is None:
                found = absorbing.found[g] = absorbable(ctx, g=g, now=now, pdbs=absorbing.pdbs)
            taken = absorb(
                [a for a in found if a.node not in absorbing.taken],
                room=room,
                budget=absorbing.budget,
                pays=pays,
            )
        if taken is None:
            out[on] = True
            continue
        assert absorbing is not None
        absorbing.taken.update(a.node for a in taken)
        notes.append(
            f"a new {group.name} node for {len(on)} pod(s) on ECI also takes the pods of "
            f"{', '.join(a.node for a in taken)}, which can then go"
        )
    return out


def _packable(
    ctx: Context,
    req: IntArray,
    base_elig: npt.NDArray[np.bool_],
    remaining: npt.NDArray[np.bool_],
    max_nodes: IntArray,
) -> npt.NDArray[np.bool_]:
    """Per group and pod: ``remaining`` pods a new node of the group would take on its own
    (eligible, within a new node's allocatable, the group may add a node).  The packing loop
    places each such pod in some pass of it, whichever groups the expander picks."""
    cap = ctx.cap
    # ``np.all(req[None] <= cap[:, None], axis=2)``, per resource (no reduction over a 3-D array)
    fits = req[:, 0] <= cap[:, 0, None]
    for d in range(1, req.shape[1]):
        fits &= req[:, d] <= cap[:, d, None]
    out: npt.NDArray[np.bool_] = base_elig & fits & remaining[None, :] & (max_nodes >= 1)[:, None]
    return out


def _none_pays(
    ctx: Context,
    demand: Demand,
    packable: npt.NDArray[np.bool_],
    *,
    now: float,
    absorbing: _Absorbing | None,
    per_hour: npt.NDArray[np.float64],
) -> bool:
    """Whether no new node of any group, holding any of the pods it could take (all of them on
    ECI), would pay for itself (``_unpaid`` would keep every pod it packs on ECI), not even with
    the existing nodes it could let go (``absorbing``: consolidation on): even all of a group's
    pods' ECI bills together, plus the price of every node ``_unpaid`` could free, stay below
    what one node costs for all its paid time.  ``per_hour``: ECI's price per hour of each
    demand pod (``EciPrice.per_hour_of`` of ``demand.req``).

    Bounds of ``costs.new_node_pays``: a node's pods save at most the sum over all of them
    (terms >= 0; a relative 1e-9 covers another order of addition); the node is paid
    ``new_node_seconds`` of its pods' shortest remaining time plus their longest redo
    (``_unpaid``), so at least with the shortest remaining time of them all (redo only adds),
    at most with the longest remaining time plus its redo (``eviction.lost_work``);
    the freed nodes are at most ``_freeable``'s, each saved from the unneeded time after the
    boot until the node's paid time ends, no restart paid (restart costs are >= 0).  Node
    price less freed prices over the paid time is concave in it (piecewise linear): when it
    stays above the ECI bills at both ends of that interval, it does within it.

    The bills alone are checked first, for every group: freed nodes only add to what is saved,
    so when the bills alone may pay in some group, the node may pay with them too, and no
    node to free is looked for."""
    wait = ctx.settings.scale_down_unneeded_time
    left = demand.eci_hours * 3600
    bills = []
    # groups of one instance type in several zones take the same pods with the same boot
    same: dict[tuple[bytes, float], tuple[IntArray, float, float]] = {}
    for g in np.flatnonzero(packable.any(axis=1)).tolist():
        group = ctx.groups[g].group
        if group.price_per_hour < 0:
            return False
        boot = group.boot_time
        kind = (packable[g].tobytes(), boot)
        found = same.get(kind)
        if found is None:
            pods = np.flatnonzero(packable[g])
            lefts = left[pods]
            saved = sum(eci_costs(per_hour[pods], lefts - boot).tolist())  # in the pods' order
            least = new_node_seconds(boot=boot, runs=float(lefts.min()), linger=wait)
            found = same[kind] = (pods, saved, least)
        pods, saved, least = found
        if _may_pay(group, paid=least, saved=saved, freed=0.0, wait=wait):
            return False
        bills.append((g, group, pods, saved, least))
    if absorbing is None:
        return True
    listed = absorbing.listed(ctx)
    # none is taken while the bound is asked
    free = np.array([name not in absorbing.taken for name in listed.nodes], np.bool_)
    for g, group, pods, saved, least in bills:
        freed = _freeable(ctx, g, demand.req[pods], absorbing, listed, free)
        if freed > 0 and _may_pay(group, paid=least, saved=saved, freed=freed, wait=wait):
            return False
        if freed > group.price_per_hour:  # the freed nodes may make a longer node pay
            up = now + group.boot_time
            longest = max(
                float(demand.eci_hours[i]) * 3600
                + max(lost_work(demand.pods[i], ran=up - demand.pods[i].created), 0.0)
                for i in pods
            )
            most = new_node_seconds(boot=group.boot_time, runs=longest, linger=wait)
            if _may_pay(group, paid=most, saved=saved, freed=freed, wait=wait):
                return False
    return True


def _may_pay(group: NodeGroup, *, paid: float, saved: float, freed: float, wait: float) -> bool:
    """Whether a new node of ``group`` paid ``paid`` seconds may cost less than ``saved`` (ECI's
    bills) plus ``freed`` (per hour) from ``wait`` after its boot until its paid time ends."""
    shed = freed * max(paid - group.boot_time - wait, 0.0) / 3600
    return not group.price_per_hour * paid / 3600 >= (saved + shed) * (1 + 1e-9)


def _freeable(
    ctx: Context,
    g: int,
    req: IntArray,
    absorbing: _Absorbing,
    listed: Sheddable,
    free: npt.NDArray[np.bool_],
) -> float:
    """The summed price per hour of the most existing nodes a new node of group ``g`` holding
    some of the pods ``req`` could let go (``absorb``): each node of ``listed`` (this pass's
    ``consolidation.sheddable``) whose pods fit what a new node leaves beside the smallest of
    them (``consolidation.shed_bound``), none ``absorbing`` has taken (``free``), per group at
    most its budget."""
    room = ctx.cap[g] - req.min(axis=0)
    fits = listed.fits(room) & free
    count: list[int] = np.bincount(listed.group[fits], minlength=len(ctx.groups)).tolist()
    return sum(
        max(ctx.groups[h].group.price_per_hour, 0.0) * min(n, max(absorbing.budget[h], 0))
        for h, n in enumerate(count)
        if n
    )


def free_capacity(ctx: Context, *, booting: bool = True) -> tuple[list[Node], IntArray]:
    """Existing ECS nodes' free capacity, then (``booting``) one template per node still
    booting."""
    nodes = list(ctx.ecs_nodes)
    free = _ecs_free(ctx, nodes)
    rows = []
    for g in range(len(ctx.groups) if booting else 0):
        for _ in range(ctx.upcoming(g)):
            nodes.append(ctx.templates[g])
            rows.append(vector(ctx.templates[g].allocatable))
    if rows:
        free = np.concatenate([free, np.array(rows, np.int64)])
    return nodes, free


_FREE = "free capacity of the ECS nodes"  # ``_ecs_free``'s answers' name on the planner's memo


def _ecs_free(ctx: Context, nodes: list[Node]) -> IntArray:
    """The free capacity of the ECS ``nodes`` (allocatable less usage), a new array each call.

    Kept on the planner's memo (``PlannerMemo.recall``) for the state at its revision (no pod
    or node written since) and the same nodes: scale-up's and rebalance's of one pass, and
    passes in which nothing moved, read the same rows."""
    memo = ctx.memo
    key = (tuple(nodes),)
    if memo is not None:
        kept: IntArray | None = memo.recall(_FREE, ctx.state, key)
        if kept is not None:
            return kept.copy()
    rows = []
    for node in nodes:
        u = ctx.usage(node.name)
        a = node.allocatable
        rows.append(
            (
                a.cpu_milli - u.cpu_milli,
                a.memory - u.memory,
                a.gpu_milli - u.gpu_milli,
                a.pods - len(u.pods),
            )
        )
    free = np.array(rows, np.int64).reshape(len(rows), 4)
    if memo is not None:
        memo.keep(_FREE, ctx.state, key, free.copy())
    return free


def scale_up(
    ctx: Context,
    demand: Demand,
    k: Kernels,
    *,
    now: float,
    unschedulable: dict[str, str],
    notes: list[str],
    consolidation: Consolidation | None = None,
    pdbs: Sequence[DisruptionBudget] = (),
) -> dict[int, Growth]:
    """Nodes to add per group index; sets ``demand.about_to_land``.  With ``consolidation``, a
    new node for pods on ECI may also take the pods of existing nodes (``_unpaid``), within
    ``pdbs``."""
    settings = ctx.settings
    out: dict[int, Growth] = {}
    if not demand.pods:
        return out
    req, pack = demand.req, demand.pack
    order = fit_order(req, demand.from_eci)

    nodes, free = free_capacity(ctx)
    if len(nodes):
        elig_nodes = np.stack(
            [ctx.node_elig(c, p, u, nodes, purpose="fit") for c, p, u in demand.pack_keys]
        ).reshape(len(demand.pack_keys), len(nodes))
        fitted = k.fit_existing(req, order=order, free=free, pod_class=pack, elig=elig_nodes)
        waiting = fitted >= 0
        receiving = {nodes[i].name for i in fitted[waiting].tolist()}
        booting = int(np.count_nonzero(fitted >= len(ctx.ecs_nodes)))
        demand.about_to_land = int(np.count_nonzero(waiting & ~demand.from_eci))
        if waiting.any():
            notes.append(
                f"{int(waiting.sum()) - booting} pending pod(s) fit free capacity of existing "
                f"nodes, {booting} fit nodes still booting: no new node for them"
            )
    else:
        waiting = np.zeros(len(demand.pods), np.bool_)
        receiving = set()
    remaining = ~waiting
    if not remaining.any():  # many passes: every pod fits free or booting capacity
        return out  # (the end would keep ``demand.moving`` as it is)
    stay_on_eci = 0

    g_count = len(ctx.groups)
    pack_groups = np.zeros((g_count, len(demand.pack_keys)), np.bool_)
    for j, (cls, policy, unit) in enumerate(demand.pack_keys):
        pack_groups[list(ctx.new_node_groups(cls, policy, unit)), j] = True
    base_elig = pack_groups[:, pack]
    price = np.array([gs.group.price_per_hour for gs in ctx.groups], np.float64)
    eci = settings.eci_price
    hours = demand.eci_hours
    per_hour = eci.per_hour_of(req[:, 0], req[:, 1], req[:, 2])
    eci_cost = per_hour * hours
    horizon_h = settings.forecast_horizon / 3600
    blocked: list[str] = []
    room = np.zeros(g_count, np.int64)
    for g, gs in enumerate(ctx.groups):
        if gs.in_cooldown(now):
            blocked.append(f"in cooldown until {fmt_time(gs.last_any() + gs.group.cooldown)}")
        elif gs.target_size >= gs.group.max_size:
            blocked.append(f"at its max size {gs.group.max_size}")
        else:
            blocked.append("")
            room[g] = gs.group.max_size - gs.target_size
    loop_left = settings.max_nodes_per_loop
    expander = expander_for(settings)
    absorbing: _Absorbing | None = None
    if consolidation is not None:
        budget = [gs.target_size - gs.group.min_size for gs in ctx.groups]
        absorbing = _Absorbing(pdbs, budget, taken=set(receiving))
    settled = False
    if loop_left > 0 and demand.from_eci[remaining].all():
        # Only pods on ECI are left (most passes of a cluster that spills): when no node of
        # any group would pay for the pods it could take, not even with the nodes it could
        # let go, the loop below would pack pod after pod only to keep each on ECI, until
        # none is left that a group could take.
        packable = _packable(ctx, req, base_elig, remaining, np.minimum(room, loop_left))
        if _none_pays(ctx, demand, packable, now=now, absorbing=absorbing, per_hour=per_hour):
            stays = packable.any(axis=0)
            stay_on_eci = int(np.count_nonzero(stays))
            remaining &= ~stays
            demand.moving &= ~stays
            settled = True  # what is left, no group can take: the loop would pack nothing
    # Groups with the same new-node allocatable, the same eligible pods and the same room pack
    # identically (typically one instance type in several zones): pack each kind once.
    template_key = [ctx.cap[g].tobytes() + pack_groups[g].tobytes() for g in range(g_count)]
    while not settled and remaining.any() and loop_left > 0:
        max_nodes = np.minimum(room, loop_left)
        kinds: dict[tuple[bytes, int], int] = {}
        first_of_kind: list[int] = []
        inverse = np.empty(g_count, np.int64)
        for g in range(g_count):
            kind = kinds.setdefault((template_key[g], int(max_nodes[g])), len(first_of_kind))
            if kind == len(first_of_kind):
                first_of_kind.append(g)
            inverse[g] = kind
        reps = np.array(first_of_kind, np.int64)
        elig = base_elig[reps] & remaining[None, :]
        used_r, assign_r = k.ffd(
            req, order=order, cap=ctx.cap[reps], elig=elig, max_nodes=max_nodes[reps]
        )
        scores_r = k.option_matrix(
            req,
            assign=assign_r,
            used=used_r,
            cap=ctx.cap[reps],
            price=np.ones(len(reps)),
            eci_cost=eci_cost,
            hours=horizon_h,
        )
        scores = scores_r[inverse]
        scores[:, 4] = scores[:, 1] * price * horizon_h
        options = [
            Option(
                group=ctx.groups[g].group,
                nodes=int(scores[g, 1]),
                pods=int(scores[g, 0]),
                cpu_waste=float(scores[g, 2]),
                memory_waste=float(scores[g, 3]),
                node_cost=float(scores[g, 4]),
                eci_cost=float(scores[g, 5]),
            )
            for g in range(g_count)
            if scores[g, 0] > 0
        ]
        choice = expander.choose(options)
        if choice is None:
            break
        option, why = choice
        g = next(i for i, gs in enumerate(ctx.groups) if gs.group is option.group)
        assign = assign_r[inverse[g]]
        unpaid = _unpaid(ctx, demand, assign, g, now=now, absorbing=absorbing, notes=notes)
        placed = (assign >= 0) & ~unpaid
        if unpaid.any():
            stay_on_eci += int(unpaid.sum())
            remaining &= ~unpaid
            demand.moving &= ~unpaid
            kept = len(np.unique(assign[placed]))
            if kept == 0:
                continue
            option = dataclasses.replace(option, nodes=kept, pods=int(placed.sum()))
        keys = [demand.pods[i].key for i in np.flatnonzero(placed)]
        from_eci = int(np.count_nonzero(demand.from_eci & placed))
        it = option.group.instance_type
        reason = (
            f"{option.pods} pod(s)"
            + (f" ({from_eci} now on ECI, cheaper on ECS)" if from_eci else "")
            + f" fit on {option.nodes} new {it.name or option.group.name} node(s) "
            f"({it.cpu_milli / 1000:g} cpu, {it.memory / GIB:g}Gi"
            + (f", {it.gpu_milli / 1000:g} gpu" if it.gpu_milli else "")
            + f"); {why}"
        )
        code = PENDING_PODS if from_eci < len(keys) else ECI_CHEAPER_ON_ECS
        out.setdefault(g, Growth()).add(option.nodes, pods=keys, reason=reason, code=code)
        room[g] -= option.nodes
        loop_left -= option.nodes
        if room[g] <= 0:
            blocked[g] = f"reached its max size {ctx.groups[g].group.max_size}"
        remaining &= ~placed
    if stay_on_eci:
        notes.append(
            f"{stay_on_eci} pod(s) on ECI stay there: a new node for them costs more than "
            "their remaining ECI bill"
        )
    demand.moving &= waiting | ~remaining
    if remaining.any():
        _explain(ctx, demand, req, remaining, blocked, loop_left, unschedulable)
    return out


def _explain(
    ctx: Context,
    demand: Demand,
    req: IntArray,
    remaining: npt.NDArray[np.bool_],
    blocked: list[str],
    loop_left: int,
    unschedulable: dict[str, str],
) -> None:
    idx = np.flatnonzero(remaining)
    big: npt.NDArray[np.bool_] = np.any(req[idx][None, :, :] > ctx.cap[:, None, :], axis=2)
    cache: dict[tuple[int, bytes], str] = {}
    for col, i in enumerate(idx):
        key = (int(demand.pack[i]), big[:, col].tobytes())
        text = cache.get(key)
        if text is None:
            cls, policy, unit = demand.pack_keys[demand.pack[i]]
            c = ctx.classes[cls]
            parts = []
            for g, gs in enumerate(ctx.groups):
                if not c.groups[g]:
                    why = c.group_why[g]
                elif policy is not None and not policy.units[unit].contains(ctx.templates[g]):
                    why = f"outside {policy.units[unit].describe(unit)} of policy {policy.key}"
                elif big[g, col]:
                    why = "pod requests exceed a new node's allocatable"
                elif blocked[g]:
                    why = blocked[g]
                elif loop_left <= 0:
                    why = f"the per-loop cap of {ctx.settings.max_nodes_per_loop} nodes is reached"
                else:
                    why = "no room left in this pass"
                parts.append(f"{gs.group.name}: {why}")
            text = "fits no node group: " + ("; ".join(parts) if parts else "no node groups")
            cache[key] = text
        unschedulable[demand.pods[i].key] = text
