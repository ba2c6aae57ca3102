"""Scale-down: which group nodes are unneeded, and which of those can be removed now.

A group node whose requested cpu and memory are both below the threshold (for a node with GPUs:
whose requested GPUs are) is unneeded from the first pass that saw it so; once unneeded long enough, it is removed when its pods all fit on the
nodes that stay (simulated one candidate after another, updating free capacity, as
cluster-autoscaler does; the simulation is ``k.drain``), its group stays at or above its minimum,
PodDisruptionBudgets allow the evictions, the capacity of each ``Floor``'s groups stays at or
above its level (the forecast's, per resource class, and what pods on or moving to ECS use) and no
scale-up happened within ``scale_down_delay_after_add``.  Nodes of one group are taken in the
order of its removal policy.  A node with a pod that cannot move (no controller, or
``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``, or a Job's pod that would lose work
worth more than a restart: ``eviction.drain_blocker``) stays; local storage is not modelled.  DaemonSet pods do not need to move.  Destinations are ECS nodes only, and for a pod
a placement policy manages, nodes of the unit it runs in (a ``pool=general`` unit's pod never
lands on a ``pool=batch`` node); ECI virtual nodes are never scaled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from extender.model import Node, NodeKind, Pod
from extender.policy import ResourcePolicy

from .backends import Kernels
from .consolidation import (
    CONSOLIDATED,
    Consolidation,
    drain_price,
    drain_stuck,
    replacement,
    restart_cost,
)
from .context import Context, Usage, by_identity, fmt_time, policy_of, vector
from .eviction import checkpoint_interval, drain_clear_until
from .kernels import DRAIN_MIN_SIZE, DRAIN_NO_FIT, DRAIN_PDB, DRAIN_RECEIVED, DRAIN_REMOVED
from .nodegroup import NodeGroup, PlannerSettings
from .state import DisruptionBudget, GroupState

__all__ = ["EMPTY", "UNDERUTILIZED", "Floor", "Removal", "scale_down"]

UNDERUTILIZED = "underutilized"
EMPTY = "empty"  # no pod but DaemonSet pods: nothing to move


@dataclass(frozen=True, slots=True)
class Floor:
    """Scale-down keeps the capacity of ``groups`` in dimension ``dim`` at or above ``milli``."""

    groups: frozenset[int]
    dim: int  # 0 cpu, 2 gpu
    milli: float
    why: str  # "ECS capacity must stay at or above 10.00 cores (forecast)"


@dataclass(frozen=True, slots=True)
class Removal:
    """A node to remove; the planner makes it a ``ScaleDown``."""

    group: str
    node: str
    reason: str
    code: str


def scale_down(
    ctx: Context,
    k: Kernels,
    *,
    now: float,
    previous: Mapping[str, float],
    pdbs: Sequence[DisruptionBudget],
    floors: Sequence[Floor],
    migrating_milli: int,
    blocked_by_scale_up: bool,
    notes: list[str],
    consolidation: Consolidation | None = None,
    replacements: list[tuple[int, str]] | None = None,
) -> tuple[list[Removal], dict[str, float]]:
    """Nodes to remove now, and every unneeded node with the time it became unneeded.

    With ``consolidation`` (``autoscaler.consolidation``) a node is also unneeded when its pods
    fit on the other nodes, however busy it is; an empty node goes after
    ``consolidation.empty_after``; nodes are removed most expensive first; and an unneeded node
    whose pods fit nowhere else but on one new node of a cheaper group gets that node: the pair
    ``(group index, reason)`` is appended to ``replacements``.
    """
    state, settings = ctx.state, ctx.settings
    threshold = settings.scale_down_utilization_threshold
    unneeded: dict[str, float] = {}
    candidates: list[Candidate] = []
    kept = migrating_milli  # cpu that group nodes must keep: their pods and pods moving to ECS
    busy: list[Candidate] = []  # above the threshold: unneeded only if their pods fit elsewhere
    fits_elsewhere: set[str] = set()

    def stuck_why(pod: Pod, node: Node, g: int) -> str | None:
        return drain_stuck(ctx, pod, node, g, now=now)

    for name, g in ctx.node_group.items():
        node = state.nodes.get(name)
        u = ctx.usage(name)
        kept += u.cpu_milli
        if node is None or node.kind is not NodeKind.ECS:
            continue
        judged = _judge(node, u, ctx.groups[g], g, settings, consolidation)
        if judged is None:
            continue
        below, candidate = judged
        if below:
            candidates.append(candidate)
        elif not u.blocked and _movable_now(u, node, g, ctx.groups[g], settings, now, stuck_why):
            busy.append(candidate)
            fits_elsewhere.add(name)
    if busy:
        status = _busy_drain(ctx, k, busy, pdbs)
        candidates += [c for c, st in zip(busy, status, strict=True) if st == DRAIN_REMOVED]
    ready: list[Candidate] = []
    for order, node, g, movable, why in candidates:
        name = node.name
        since = previous.get(name, now)
        unneeded[name] = since
        wait = settings.scale_down_unneeded_time
        if consolidation is not None and not movable:
            wait = min(wait, consolidation.empty_after)
        if now - since < wait:
            continue
        # a node this close to going is asked about each pod in order until one is stuck (most
        # often the first: a long Job's pod), without ``_first_stuck``'s times: here they cost
        # more than they save (measured on the replay, bench/RESULTS.md, session 11)
        stuck = next(((p, w) for p in movable if (w := stuck_why(p, node, g)) is not None), None)
        if stuck is not None:
            notes.append(f"node {name} stays: pod {stuck[0].key} {stuck[1]}")
            continue
        gs = ctx.groups[g]
        if gs.in_cooldown(now):
            notes.append(f"node {name} stays: group {gs.group.name} is in cooldown")
            continue
        if not isinstance(why, str):
            cpu, mem, gpu = why
            requested = f"cpu {cpu:.0%}, memory {mem:.0%}" if gpu is None else f"gpu {gpu:.0%}"
            why = f"requests {requested} < {threshold:.0%}"
        text = f"unneeded since {fmt_time(since)} for {now - since:.0f}s ({why})"
        ready.append((order, node, g, movable, text))
    candidates = ready
    if not candidates:
        return [], unneeded
    if blocked_by_scale_up:
        notes.append(
            f"scale-down of {len(candidates)} unneeded node(s) waits: scaling up now, "
            "or pending pods are about to use free capacity"
        )
        return [], unneeded
    last_up = max(
        (gs.last_scale_up for gs in ctx.groups if gs.last_scale_up is not None), default=None
    )
    if last_up is not None and now - last_up < settings.scale_down_delay_after_add:
        notes.append(
            f"scale-down of {len(candidates)} unneeded node(s) waits until "
            f"{fmt_time(last_up + settings.scale_down_delay_after_add)} (delay after scale-up)"
        )
        return [], unneeded
    candidates.sort(key=lambda c: c[0])
    if kept > 0:
        floors = [
            *floors,
            Floor(
                frozenset(range(len(ctx.groups))),
                0,
                float(kept),
                f"ECS capacity must stay at or above {kept / 1000:.2f} cores "
                "(pods on and moving to ECS)",
            ),
        ]
    capacity = [ctx.capacity_milli(f.groups, f.dim) for f in floors]

    def held_by(node: Node, g: int) -> Floor | None:
        have = vector(node.allocatable)
        return next(
            (
                f
                for f, cap in zip(floors, capacity, strict=True)
                if g in f.groups and cap - have[f.dim] < f.milli
            ),
            None,
        )

    # Typically empty nodes a forecast keeps, pass after pass: when no candidate has a pod to
    # move and a floor holds each one now (capacity only falls as nodes go), none can go, and the
    # drain would only count group minimums: count them here, with the same notes.
    if all(not c[3] for c in candidates):
        held = [h for h in (held_by(c[1], c[2]) for c in candidates) if h is not None]
        if len(held) == len(candidates):
            budget = [gs.target_size - gs.group.min_size for gs in ctx.groups]
            for (_, node, g, _, _), h in zip(candidates, held, strict=True):
                group = ctx.groups[g].group
                if budget[g] <= 0:
                    notes.append(
                        f"node {node.name} stays: group {group.name} is at its min size "
                        f"{group.min_size}"
                    )
                    continue
                budget[g] -= 1
                notes.append(f"node {node.name} stays: {h.why}")
            return [], unneeded

    status, dest, dests, starts = _simulate(ctx, k, candidates, pdbs)
    downs: list[Removal] = []
    for c, (_, node, g, movable, said) in enumerate(candidates):
        text = str(said)  # in words for every ready node (above)
        group = ctx.groups[g].group
        outcome = int(status[c])
        if outcome == DRAIN_REMOVED:
            floor = held_by(node, g)
            if floor is not None:
                notes.append(f"node {node.name} stays: {floor.why}")
                continue
            have = vector(node.allocatable)
            for i, f in enumerate(floors):
                if g in f.groups:
                    capacity[i] -= have[f.dim]
            targets = sorted({dests[int(dest[i])].name for i in range(starts[c], starts[c + 1])})
            moved = (
                f"its {len(movable)} pod(s) fit on {', '.join(targets)}"
                if movable
                else "it runs no pod that must move"
            )
            code = (
                EMPTY
                if not movable
                else CONSOLIDATED
                if node.name in fits_elsewhere
                else UNDERUTILIZED
            )
            downs.append(Removal(group.name, node.name, f"{text}; {moved}", code))
        elif outcome == DRAIN_NO_FIT:
            found = None
            if consolidation is not None and consolidation.replace and replacements is not None:
                found = replacement(ctx, k, node=node, g=g, movable=movable, now=now)
            if found is None:
                notes.append(f"node {node.name} stays: its pods do not all fit on other nodes")
            elif not any(r[0] == found[0] for r in replacements or ()):
                notes.append(f"node {node.name} is to be replaced: {found[1]}")
                replacements.append(found)  # type: ignore[union-attr]
        elif outcome == DRAIN_MIN_SIZE:
            notes.append(
                f"node {node.name} stays: group {group.name} is at its min size {group.min_size}"
            )
        elif outcome == DRAIN_PDB:
            notes.append(f"node {node.name} stays: a PodDisruptionBudget allows no more evictions")
        elif outcome == DRAIN_RECEIVED:
            notes.append(f"node {node.name} stays: it receives pods from a removed node")
    return downs, unneeded


@by_identity(65536)
def _judge(
    node: Node,
    u: Usage,
    gs: GroupState,
    g: int,
    settings: PlannerSettings,
    consolidation: Consolidation | None,
) -> tuple[bool, Candidate] | None:
    """Whether group ``g``'s ``node`` (its ``u``sage) is below the utilization threshold, and
    its candidate entry; None when it is above and there is no consolidation.  A function of
    those objects alone (frozen; usage entries are replaced on change), kept by identity: most
    nodes are the same pass after pass."""
    a = node.allocatable
    cpu = u.cpu_milli / a.cpu_milli if a.cpu_milli else 1.0
    mem = u.memory / a.memory if a.memory else 1.0
    # GPU nodes are judged by their GPUs alone, as cluster-autoscaler does: a node whose
    # GPUs are busy is needed however little cpu its pods ask for.
    gpu = u.gpu_milli / a.gpu_milli if a.gpu_milli else None
    below = (max(cpu, mem) if gpu is None else gpu) < settings.scale_down_utilization_threshold
    if not below and consolidation is None:
        return None
    name = node.name
    created = node.created or next((m.created for m in gs.nodes if m.name == name), 0.0)
    newest_first = gs.group.removal_policy.value == "NewestInstance"
    order: tuple[Any, ...] = (g, -created if newest_first else created, name)
    if consolidation is not None:  # most expensive first: a replaced node before its successor
        order = (-gs.group.price_per_hour, *order)
    # the shares, put in words only for a node that is ready to go (most are not)
    why: Why = (cpu, mem, gpu) if below else "its pods fit on other nodes"
    return below, (order, node, g, u.movable, why)


def _movable_now(
    u: Usage,
    node: Node,
    g: int,
    gs: GroupState,
    settings: PlannerSettings,
    now: float,
    stuck_why: Callable[[Pod, Node, int], str | None],
) -> bool:
    """Whether no pod of ``u.movable`` is stuck on ``node`` now (``stuck_why``; ``_first_stuck``
    asks only the pods that may be).

    A pod stuck for a reason that only grows with time stays stuck: a Job's pod without
    checkpoints loses all it has run (``eviction.lost_work``: its age), so the price of its
    lost work at a non-negative share of the node's price never falls again.  The first time
    such a pod is found stuck is kept (``_Stay.since``), and later passes at that time or after
    answer False without asking each pod again (busy nodes of long Jobs, pass after pass)."""
    stay = _stay(u, node, gs.group, settings)
    if now >= stay.since:
        return False
    stuck = _first_stuck(stay, u.movable, node, g, now, stuck_why)
    if stuck is None:
        return True
    if math.isinf(checkpoint_interval(stuck[0])) and gs.group.price_per_hour >= 0:
        stay.since = now
    return False


@dataclass(slots=True)
class _Stay:
    """What scale-down knows of when the pods of one usage entry are stuck on a node
    (``consolidation.drain_stuck``): ``clear``, per pod of ``movable``, a time up to which it is
    not (``eviction.drain_clear_until``; NaN until ``_first_stuck`` first asks about the pod),
    ``until`` the least of them once all are known (``-inf`` before), and ``since``, a time
    from which one is stuck for good (``inf``: not known; ``_movable_now`` sets it)."""

    group: NodeGroup
    settings: PlannerSettings
    clear: list[float]
    until: float = -math.inf
    since: float = math.inf


@by_identity(65536)
def _stay(u: Usage, node: Node, group: NodeGroup, settings: PlannerSettings) -> _Stay:
    """``_Stay`` of ``u``'s pods on ``node`` of ``group``: a function of those objects (what the
    share, the price and the restart are made of), kept by identity, so that what is known of
    them lasts as long as the usage entry (each pod's time: ``_clear_until``)."""
    return _Stay(group, settings, [math.nan] * len(u.movable))


@by_identity(65536)
def _clear_until(pod: Pod, node: Node, group: NodeGroup, settings: PlannerSettings) -> float:
    """``eviction.drain_clear_until`` of ``pod`` on ``node`` of ``group``, at the price and
    restart ``consolidation.drain_stuck`` weighs: a function of those objects, kept by identity
    (a pod stays on its node while other pods come and go, each a new usage entry)."""
    price = drain_price(pod, node, group)
    return drain_clear_until(pod, share_per_hour=price, restart=restart_cost(settings))


def _first_stuck(
    stay: _Stay,
    movable: Sequence[Pod],
    node: Node,
    g: int,
    now: float,
    stuck_why: Callable[[Pod, Node, int], str | None],
) -> tuple[Pod, str] | None:
    """The first pod of ``movable`` (whose ``_Stay`` is ``stay``) stuck on ``node`` now, and
    why (``stuck_why``), or None; a pod clear at ``now`` is not asked (its time is found the
    first time the scan reaches it: a scan that stops at an early stuck pod finds no other)."""
    if now <= stay.until:
        return None
    clear = stay.clear
    for i, pod in enumerate(movable):
        t = clear[i]
        if t != t:  # NaN: not found yet
            t = clear[i] = _clear_until(pod, node, stay.group, stay.settings)
        if now > t and (why := stuck_why(pod, node, g)) is not None:
            return pod, why
    stay.until = min(clear, default=math.inf)
    return None


# why a candidate is unneeded: its requested shares (cpu, memory, gpu or None) below the
# threshold, or a reason in words
Why = str | tuple[float, float, float | None]
Candidate = tuple[tuple[Any, ...], Node, int, list[Pod], Why]
BUSY_DRAIN = "scale-down: busy nodes"  # its answer's name on the planner's memo
DRAIN = "drain"  # the purpose of the drain's eligibility rows (``Context.node_elig``)


def _busy_drain(
    ctx: Context, k: Kernels, busy: Sequence[Candidate], pdbs: Sequence[DisruptionBudget]
) -> list[int]:
    """``_simulate``'s status of each of ``busy`` (consolidation: do their pods fit elsewhere?),
    in the order of ``busy``; the drain itself takes them in their candidate order.

    A function of what ``_simulate`` reads, not of the time: the ECS nodes it may drain to and
    their usage (``Context.usage``), the busy nodes with theirs and the pods to move, the
    policies (pods' units), the groups (templates, members, sizes), the settings, the
    PodDisruptionBudgets and the kernels.  Kept on the planner's memo with all of those as the
    key (``PlannerMemo.recall_key``): a pass after a change elsewhere (a pod on ECI, an
    unrelated write) gets the same answer without draining again.  Nodes and pods are frozen and
    usage entries are replaced on change, so the key compares mostly by identity.  A hit
    registers no pod class: a class's index is the pass's own name for it, and what the later
    readers (the drain of ready nodes, ``replacement``) read of a class depends on its pods'
    node selector, affinity and tolerations alone, which make the class."""
    memo = ctx.memo
    ordered = sorted(busy, key=lambda c: c[0])
    found = None
    if memo is not None:
        key = (
            tuple(ctx.groups),
            ctx.settings,
            tuple(pdbs),
            k,
            ctx.state.policies,
            tuple((c[1], ctx.usage(c[1].name), tuple(c[3])) for c in ordered),
            tuple((n, ctx.usage(n.name)) for n in ctx.ecs_nodes),
        )
        found = memo.recall_key(BUSY_DRAIN, key)
    if found is not None:
        assert memo is not None
        memo.skipped(BUSY_DRAIN)
        by_name: dict[str, int] = found
    else:
        status, _, _, _ = _simulate(ctx, k, ordered, pdbs)
        by_name = {c[1].name: st for c, st in zip(ordered, status.tolist(), strict=True)}
        if memo is not None:
            memo.keep(BUSY_DRAIN, ctx.state, key, by_name)
    return [by_name[c[1].name] for c in busy]


def _simulate(
    ctx: Context, k: Kernels, candidates: Sequence[Candidate], pdbs: Sequence[DisruptionBudget]
) -> tuple[Any, Any, list[Node], list[int]]:
    """``k.drain`` over ``candidates`` in their order: status and destination per pod."""
    policies = ctx.state.policies
    # destinations: schedulable nodes first, candidates last, so pods prefer nodes that stay
    cand_names = {c[1].name for c in candidates}
    dests = [n for n in ctx.ecs_nodes if n.name not in cand_names] + [c[1] for c in candidates]
    position = {n.name: i for i, n in enumerate(dests)}
    rows = []
    for node in dests:
        u = ctx.usage(node.name)
        used = (u.cpu_milli, u.memory, u.gpu_milli, len(u.pods))
        a = node.allocatable
        slots = a.pods - used[3] if (node.ready and not node.unschedulable) else 0
        rows.append((a.cpu_milli - used[0], a.memory - used[1], a.gpu_milli - used[2], slots))
    free = np.array(rows, np.int64).reshape(len(rows), 4)
    req_rows: list[tuple[int, int, int, int]] = []
    pod_class: list[int] = []
    pod_pdb: list[int] = []
    starts = [0]
    cand_node: list[int] = []
    # A managed pod's replacement may only land in the unit it is counted in now (the unit of
    # its node): one eligibility row per (pod class, policy, unit).
    keys: dict[tuple[int, str, int], int] = {}
    rows_of: list[tuple[int, ResourcePolicy | None, int]] = []
    for _, node, _, movable, _ in candidates:
        # the unit of the node per policy (by the policy object's id: the pass's policies
        # tuple holds them all): the pods of one node mostly share a policy
        units: dict[int, tuple[ResourcePolicy | None, str, int]] = {}
        for pod in movable:
            r = pod.requests
            req_rows.append((r.cpu_milli, r.memory, r.gpu_milli, 1))
            policy = policy_of(policies, pod) if policies else None
            found = units.get(id(policy))
            if found is None:
                unit = policy.unit_of(node) if policy is not None else None
                found = units[id(policy)] = (
                    (None, "", -1) if policy is None or unit is None else (policy, policy.key, unit)
                )
            cls = ctx.class_of(pod)
            row_key = (cls, found[1], found[2])
            row = keys.get(row_key)
            if row is None:
                row = keys[row_key] = len(rows_of)
                rows_of.append((cls, found[0], found[2]))
            pod_class.append(row)
            covers = (b for b, pdb in enumerate(pdbs) if pdb.covers(pod)) if pdbs else ()
            pod_pdb.append(next(iter(covers), -1))
        starts.append(len(req_rows))
        cand_node.append(position[node.name])
    elig = (
        np.stack([ctx.node_elig(c, p, u, dests, purpose=DRAIN) for c, p, u in rows_of])
        if rows_of
        else np.ones((1, len(dests)), np.bool_)
    )
    status, dest = k.drain(
        np.array(req_rows, np.int64).reshape(len(req_rows), 4),
        pod_class=np.array(pod_class, np.int64),
        pod_pdb=np.array(pod_pdb, np.int64),
        cand_start=np.array(starts, np.int64),
        cand_node=np.array(cand_node, np.int64),
        cand_group=np.array([c[2] for c in candidates], np.int64),
        group_budget=np.array([gs.target_size - gs.group.min_size for gs in ctx.groups], np.int64),
        pdb_budget=np.array([max(p.disruptions_allowed, 0) for p in pdbs], np.int64),
        free=free,
        elig=elig,
    )
    return status, dest, dests, starts
