"""Consolidation: fewer or cheaper ECS nodes for the same pods, as Karpenter consolidates.

cluster-autoscaler removes a node only when its requests are below a threshold (50 %) for an
unneeded time (10 min).  With a ``Consolidation`` the planner's scale-down (``scaledown``, which
holds the rules; this module holds the settings and the replacement search) also

- removes an *empty* node (only DaemonSet pods) ``empty_after`` after it became empty, instead of
  the unneeded time;
- counts a node as unneeded however busy it is when its pods all fit on the other nodes (the
  same drain simulation, ``k.drain``, that judges every removal: resources, max pods, node
  selectors, taints, the unit of each managed pod, PodDisruptionBudgets, group minimums);
- removes the most expensive candidates first;
- replaces an unneeded node whose pods fit nowhere else by one new node of a *cheaper* group they
  all fit on (``replacement``, first-fit by ``k.ffd`` onto one template); once that node is up,
  the old node's pods fit on it and the old node goes by the rules above;
- counts pods on ECI: a new node that scale-up would build for pods on ECI alone, and that does
  not pay for itself (``costs.new_node_pays``), may also take all the pods of existing nodes
  (``absorbable``, ``absorb``), which can then go: the node pays when ECI's bill saved plus
  the price of the nodes it lets go (each from the unneeded time after the node is up until
  its own pods would have ended) exceeds its price, less a restart per pod it takes.  A
  32-core node that takes a 20-core replica off ECI and the pods of two half-used 8-core nodes
  is such a node.  Once it is up, rebalance moves the pods on ECI onto it, the other nodes'
  pods fit on the rest, and those nodes go by the rules above.

The settings (``Consolidation``) live with the other planner settings in ``nodegroup``, read
from the groups YAML (``settings.consolidation``) by the controller and from the scenario by the
replay.  The drain itself (the controller) cordons, evicts, and waits until the evicted pods are gone
before it deletes the node.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from extender.model import Node, Pod

from .backends import Kernels
from .context import Context, IntArray, Usage, policy_of
from .costs import node_share
from .demand import remaining_in
from .eviction import drain_blocker
from .nodegroup import Consolidation, MoveCosts, NodeGroup, PlannerSettings
from .state import DisruptionBudget

__all__ = [
    "CONSOLIDATED",
    "Absorbable",
    "Consolidation",
    "Sheddable",
    "absorb",
    "absorbable",
    "drain_price",
    "drain_stuck",
    "replacement",
    "restart_cost",
    "shed_bound",
    "sheddable",
]

CONSOLIDATED = "consolidated"  # the code of a removal or replacement consolidation decided


def replacement(
    ctx: Context, k: Kernels, *, node: Node, g: int, movable: Sequence[Pod], now: float
) -> tuple[int, str] | None:
    """The cheapest group, cheaper than ``g``, with one new node that holds all of ``movable``
    (each pod within the unit it runs in), and why; None if there is none."""
    if not movable:
        return None
    old = ctx.groups[g].group
    policies = ctx.state.policies
    req = np.array(
        [(p.requests.cpu_milli, p.requests.memory, p.requests.gpu_milli, 1) for p in movable],
        np.int64,
    ).reshape(len(movable), 4)
    order = np.lexsort((-req[:, 1], -req[:, 0], -req[:, 2])).astype(np.int64)
    units = []
    for pod in movable:
        policy = policy_of(policies, pod) if policies else None
        unit = policy.unit_of(node) if policy is not None else None
        units.append(policy.units[unit] if policy is not None and unit is not None else None)
    best: tuple[float, int] | None = None
    for h, gs in enumerate(ctx.groups):
        group = gs.group
        if h == g or group.price_per_hour >= old.price_per_hour:
            continue
        if gs.in_cooldown(now) or gs.target_size >= group.max_size:
            continue
        template = ctx.templates[h]
        if not all(
            ctx.classes[ctx.class_of(p)].groups[h] and (u is None or u.contains(template))
            for p, u in zip(movable, units, strict=True)
        ):
            continue
        _, assign = k.ffd(
            req,
            order=order,
            cap=ctx.cap[h : h + 1],
            elig=np.ones((1, len(movable)), np.bool_),
            max_nodes=np.ones(1, np.int64),
        )
        if (assign[0] >= 0).all() and (best is None or group.price_per_hour < best[0]):
            best = (group.price_per_hour, h)
    if best is None:
        return None
    new = ctx.groups[best[1]].group
    return best[1], (
        f"its {len(movable)} pod(s) fit on one {new.name} node at {new.price_per_hour:g}/h "
        f"instead of {old.name} at {old.price_per_hour:g}/h"
    )


def drain_stuck(ctx: Context, pod: Pod, node: Node, g: int, *, now: float) -> str | None:
    """Why draining ``pod`` off group ``g``'s ``node`` now is not allowed
    (``eviction.drain_blocker``, its lost work at its share of the node's price), or None."""
    price = drain_price(pod, node, ctx.groups[g].group)
    return drain_blocker(pod, now=now, share_per_hour=price, restart=restart_cost(ctx.settings))


def drain_price(pod: Pod, node: Node, group: NodeGroup) -> float:
    """Per hour, what ``drain_stuck`` prices ``pod``'s lost work at: its share of the price of
    ``node`` (of ``group``)."""
    return min(node_share(pod.requests, node.allocatable), 1.0) * group.price_per_hour


def restart_cost(settings: PlannerSettings) -> float:
    """What ``drain_stuck`` weighs a pod's lost work against: a restart (``MoveCosts``)."""
    return (settings.rebalance or _MOVES).restart


_MOVES = MoveCosts()


@dataclass(frozen=True, slots=True)
class Absorbable:
    """An existing node whose pods a new node could take, so that it can go."""

    node: str
    group: int
    price_per_hour: float
    used: tuple[int, int, int, int]  # what its pods ask: cpu, memory, GPU, pod slots
    life: float  # seconds it would still be paid for: its pods' longest expected run
    pods: int


def absorbable(
    ctx: Context, *, g: int, now: float, pdbs: Sequence[DisruptionBudget]
) -> list[Absorbable]:
    """Ready group nodes whose pods all may move onto a new node of group ``g`` (the same
    rules as a drain: controllers, ``drain_stuck``, PodDisruptionBudgets that allow a
    disruption, node selectors and taints, each managed pod within the unit it runs in), most
    expensive first.  A node without pods to move is not one: it goes as empty anyway."""
    template = ctx.templates[g]
    policies = ctx.state.policies
    horizon = ctx.settings.forecast_horizon
    out = []
    for node, h, u in _drainable(ctx):
        ok = True
        life = 0.0
        for pod in u.movable:
            policy = policy_of(policies, pod) if policies else None
            unit = policy.unit_of(node) if policy is not None else None
            if (
                not ctx.classes[ctx.class_of(pod)].groups[g]
                or (
                    policy is not None
                    and unit is not None
                    and not policy.units[unit].contains(template)
                )
                or any(b.covers(pod) and b.disruptions_allowed <= 0 for b in pdbs)
                or drain_stuck(ctx, pod, node, h, now=now) is not None
            ):
                ok = False
                break
            life = max(
                life, remaining_in(ctx.state, pod, now=now, horizon=horizon, outlived=horizon)
            )
        if ok and life > 0:
            used = (u.cpu_milli, u.memory, u.gpu_milli, len(u.movable))
            price = ctx.groups[h].group.price_per_hour
            out.append(Absorbable(node.name, h, price, used, life, len(u.movable)))
    out.sort(key=lambda a: (-a.price_per_hour, a.used[0], a.node))
    return out


@dataclass(frozen=True, slots=True)
class Sheddable:
    """What ``shed_bound`` chooses from, listed once: every ready, unblocked group node with
    pods to move (``_drainable``): its name, group, what its pods ask (cpu, memory, GPU, pod
    slots; also as the rows of ``used``).  A function of the pass's ``Context`` alone (its
    nodes and their usage do not change within a pass)."""

    nodes: tuple[str, ...]
    groups: tuple[int, ...]
    asks: tuple[tuple[int, int, int, int], ...]
    used: IntArray  # (nodes, 4)
    group: IntArray  # ``groups`` as an array

    def fits(self, room: IntArray) -> npt.NDArray[np.bool_]:
        """Per node: whether all its pods fit ``room`` (cpu, memory, GPU, pod slots) alone."""
        over = np.asarray((self.used > room).any(axis=1), np.bool_)
        return ~over


def sheddable(ctx: Context) -> Sheddable:
    """``Sheddable`` of this pass (scale-up lists it once and bounds each group with it)."""
    names, groups, asks = [], [], []
    for node, h, u in _drainable(ctx):
        names.append(node.name)
        groups.append(h)
        asks.append((u.cpu_milli, u.memory, u.gpu_milli, len(u.movable)))
    rows = np.array(asks, np.int64).reshape(len(asks), 4)
    return Sheddable(tuple(names), tuple(groups), tuple(asks), rows, np.array(groups, np.int64))


def shed_bound(
    ctx: Context, *, room: IntArray, listed: Sheddable | None = None
) -> list[Absorbable]:
    """Every ready, unblocked group node with pods to move whose pods fit ``room`` alone, as if
    each went for all the time a new node is paid and moved its pods without a restart: more
    than ``absorb`` can take from ``absorbable``, so a new node that does not pay with all of
    these pays with none of those (the cheap test before the per-pod rules).  ``listed``: this
    pass's ``sheddable`` when the caller keeps it (else listed here)."""
    found = sheddable(ctx) if listed is None else listed
    out = []
    for i in np.flatnonzero(found.fits(room)).tolist():
        h = found.groups[i]
        price = ctx.groups[h].group.price_per_hour
        out.append(Absorbable(found.nodes[i], h, price, found.asks[i], math.inf, 0))
    return out


def _drainable(ctx: Context) -> Iterator[tuple[Node, int, Usage]]:
    """Ready, schedulable group nodes with pods to move and none that can never be evicted,
    each with its group index and usage."""
    for node in ctx.ecs_nodes:
        h = ctx.node_group.get(node.name)
        if h is None or not node.ready or node.unschedulable:
            continue
        u = ctx.usage(node.name)
        if not u.blocked and u.movable:
            yield node, h, u


def absorb(
    candidates: Sequence[Absorbable],
    *,
    room: IntArray,
    budget: list[int],
    pays: Callable[[Sequence[Absorbable]], bool],
) -> list[Absorbable] | None:
    """The fewest of ``candidates`` (taken in their order, each whose pods fit the ``room`` the
    others leave and whose group's ``budget``, nodes above its minimum, allows one more) with
    which the new node ``pays``; None if none do.  Takes the chosen nodes' budget."""
    chosen: list[Absorbable] = []
    left = room.copy()
    spent = [0] * len(budget)
    for c in candidates:
        used = np.array(c.used, np.int64)
        if budget[c.group] - spent[c.group] <= 0 or (used > left).any():
            continue
        chosen.append(c)
        left -= used
        spent[c.group] += 1
        if pays(chosen):
            for i, n in enumerate(spent):
                budget[i] -= n
            return chosen
    return None
