"""ECS demand: which pending pods, and which pods now on ECI, a scale-up should make room for.

ECS demand is every pending pod whose placement policy chooses an ECS unit (the policy from
``extender.policy``, with the workload's live counts; pending pods of one workload are counted one
after another so that replica N+1 goes to ECI), every pending pod no policy manages (as
cluster-autoscaler would), and every pod running on ECI for lack of ECS room that could be moved
(``autoscaler.eviction``) and whose expected remaining run time could make a new node cheaper
(``costs.ecs_cheaper``; scale-up then judges the nodes it really builds with
``costs.new_node_pays``).  The expected remaining run time is the annotation
``spillover.dev/expected-duration`` (``8h``, ``3600``) less the pod's age or, for Deployments,
StatefulSets and ReplicaSets without it or past it (still serving), the whole horizon (the
planner and rebalance pass ``outlived``); a Job's pod is expected to run at
least as long again as it has run (without the annotation, or past it: heavy-tailed lifetimes,
as ``predictive.pinned`` assumes), and so is a replica without the annotation that is its
workload's only pod (``only_pod``; a replica with siblings on ECI is the first a scale-in takes:
``extender.deletion_cost``).  A Job's pod moved to ECS runs again the work it has lost
(``eviction.lost_work``), which the new node must pay for too.  DaemonSet
pods are not demand: a new node's DaemonSets are ``settings.daemonset_overhead``, subtracted from
its allocatable.  Pending pods no policy unit can take get their reason in ``unschedulable``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from extender.model import Node, NodeKind, Pod, is_daemon_or_static
from extender.policy import ResourcePolicy, unit_counts
from extender.snapshot import ClusterState

from .context import Context, IntArray, by_identity, policy_of
from .costs import ecs_cheaper
from .eviction import loses_progress, lost_work, move_blocker
from .nodegroup import NodeGroup, PlannerSettings, annotation_seconds

__all__ = [
    "EXPECTED_DURATION",
    "Demand",
    "Keep",
    "cheaper_on_a_new_node",
    "collect",
    "new_node_could_pay",
    "only_pod",
    "remaining",
    "remaining_in",
]

EXPECTED_DURATION = "spillover.dev/expected-duration"
_LONG_RUNNING = ("Deployment", "StatefulSet", "ReplicaSet")
_T = TypeVar("_T", bound=np.generic)


def remaining(
    pod: Pod, *, now: float, horizon: float, outlived: float = 0.0, alone: bool = False
) -> float:
    """Seconds ``pod`` is expected to keep running; 0 when unknown (it then stays on ECI).
    A Job's pod (``eviction.loses_progress``): at least its age.  A replica of a Deployment,
    StatefulSet or ReplicaSet without ``expected-duration``: the ``horizon``, and, when it is
    its workload's only pod (``alone``: ``only_pod``), at least its age (Lindy: a service that
    has run for weeks is expected to run for weeks more, as a Job's pod is; a replica with
    siblings on ECI is the first its workload's scale-in takes, so its age says nothing).

    ``outlived``: what a replica of a Deployment, StatefulSet or ReplicaSet that has outlived
    its ``expected-duration`` is still expected to run (it is still serving; 0: nothing)."""
    total, service = _expected(pod)
    age = max(now - pod.created, 0.0) if pod.created > 0 else 0.0
    # A Job's pod is expected to run at least as long again as it has run
    floor = age if loses_progress(pod) else 0.0
    if total is not None:
        if math.isnan(total):  # a bad annotation counts as unknown: the pod stays where it is
            return 0.0
        left = max(total - age, 0.0)
        return max(left, floor) if left > 0 or not service else outlived
    if not service:
        return floor
    return max(horizon, age) if alone else horizon


def remaining_in(
    state: ClusterState, pod: Pod, *, now: float, horizon: float, outlived: float = 0.0
) -> float:
    """:func:`remaining` of ``pod`` in ``state``: ``alone`` is whether it is its workload's only
    pod there (:func:`only_pod`), as the planner, rebalance and the replay judge it."""
    alone = only_pod(state, pod)
    return remaining(pod, now=now, horizon=horizon, outlived=outlived, alone=alone)


def only_pod(state: ClusterState, pod: Pod) -> bool:
    """Whether ``pod`` is the only pod of its workload in ``state`` (``remaining``'s ``alone``)."""
    if pod.workload is None:
        return False
    pods = iter(state.workload_pods(pod.workload))
    next(pods, None)
    return next(pods, None) is None  # at most one: itself


@by_identity(65536)
def _expected(pod: Pod) -> tuple[float | None, bool]:
    """``pod``'s expected duration in seconds (None: no annotation; NaN: a bad one) and whether
    it is a long-running service's replica: what ``remaining`` reads of the pod, kept per pod
    object (pods are frozen; the planner asks for the same pods pass after pass)."""
    raw = pod.annotations.get(EXPECTED_DURATION)
    service = pod.workload is not None and pod.workload.kind in _LONG_RUNNING
    total: float | None = None
    if raw is not None:
        seconds = annotation_seconds(raw)
        total = math.nan if seconds is None else seconds
    return total, service


def _read_only(a: npt.NDArray[_T]) -> npt.NDArray[_T]:
    a.flags.writeable = False
    return a


_NO_REQ: IntArray = _read_only(np.zeros((0, 4), np.int64))
_NO_INTS: IntArray = _read_only(np.zeros(0, np.int64))
_NO_FLOATS: npt.NDArray[np.float64] = _read_only(np.zeros(0))
_NO_BOOLS: npt.NDArray[np.bool_] = _read_only(np.zeros(0, np.bool_))


@dataclass(slots=True)
class Demand:
    """ECS demand, collected per pod in lists, then turned into arrays by ``finish``."""

    horizon_hours: float
    pods: list[Pod] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)
    policies: list[ResourcePolicy | None] = field(default_factory=list)
    units: list[int] = field(default_factory=list)
    eci_hours_of: dict[int, float] = field(default_factory=dict)  # pods now on ECI: time left, h
    on_eci: int = 0
    # pods on ECI an eviction could move, with the time they are expected to run on (> 0), in
    # the order they were judged; whether each is demand is decided from these
    eci_candidates: list[tuple[Pod, float]] = field(default_factory=list)
    about_to_land: int = 0  # pending pods that fit free or booting capacity (set by scale-up)
    # filled by finish(); until then (most passes: no demand) the shared read-only empties
    req: IntArray = field(default_factory=lambda: _NO_REQ)
    pack: IntArray = field(default_factory=lambda: _NO_INTS)
    pack_keys: list[tuple[int, ResourcePolicy | None, int]] = field(default_factory=list)
    eci_hours: npt.NDArray[np.float64] = field(default_factory=lambda: _NO_FLOATS)
    from_eci: npt.NDArray[np.bool_] = field(default_factory=lambda: _NO_BOOLS)
    # set by scale-up: pods from ECI that fit free capacity or a new node that pays for itself
    moving: npt.NDArray[np.bool_] = field(default_factory=lambda: _NO_BOOLS)

    def add(
        self, pod: Pod, cls: int, policy: ResourcePolicy | None, unit: int, eci_hours: float = -1
    ) -> None:
        if eci_hours >= 0:
            self.eci_hours_of[len(self.pods)] = eci_hours
        self.pods.append(pod)
        self.classes.append(cls)
        self.policies.append(policy)
        self.units.append(unit)

    def finish(self) -> None:
        n = len(self.pods)
        if n == 0:
            return  # most passes: the empty arrays the fields start with
        reqs = [p.requests for p in self.pods]
        self.req = np.array(
            [(r.cpu_milli, r.memory, r.gpu_milli, 1) for r in reqs], np.int64
        ).reshape(n, 4)
        index: dict[tuple[int, str, int], int] = {}
        pack = []
        for cls, policy, unit in zip(self.classes, self.policies, self.units, strict=True):
            key = (cls, policy.key if policy is not None else "", unit)
            k = index.get(key)
            if k is None:
                k = index[key] = len(self.pack_keys)
                self.pack_keys.append((cls, policy, unit))
            pack.append(k)
        self.pack = np.array(pack, np.int64)
        self.eci_hours = np.full(n, self.horizon_hours)
        self.from_eci = np.zeros(n, np.bool_)
        for i, hours in self.eci_hours_of.items():
            self.eci_hours[i] = hours
            self.from_eci[i] = True
        self.moving = self.from_eci.copy()


Keep = Callable[[Context, Pod, int, ResourcePolicy, int, float, float], bool]


def cheaper_on_a_new_node(
    ctx: Context, pod: Pod, cls: int, policy: ResourcePolicy, unit: int, left: float, now: float
) -> bool:
    """Whether a new node of some group the pod may use could make ``pod`` (on ECI, ``left``
    seconds to go at ``now``, heading for ``unit``) cheaper (``new_node_could_pay``)."""
    return new_node_could_pay(
        pod,
        ((ctx.groups[g].group, ctx.templates[g]) for g in ctx.new_node_groups(cls, policy, unit)),
        settings=ctx.settings,
        left=left,
        now=now,
    )


def new_node_could_pay(
    pod: Pod,
    groups: Iterable[tuple[NodeGroup, Node]],
    *,
    settings: PlannerSettings,
    left: float,
    now: float,
) -> bool:
    """Whether a new node of one of ``groups`` (each with its node template; those ``pod`` may
    use) could make ``pod``, on ECI with ``left`` seconds to go at ``now``, cheaper
    (``costs.ecs_cheaper``; a Job's pod runs again the work it will have lost once the node is
    up: ``eviction.lost_work``).  The planner's break-even, and the replay's test of whether a
    pod on ECI for lack of room is there by price (``autoscaler.replay.scheduler``)."""
    return any(
        ecs_cheaper(
            pod.requests,
            price_per_hour=group.price_per_hour,
            capacity=template.allocatable,
            eci=settings.eci_price,
            remaining=left,
            boot=group.boot_time,
            linger=settings.scale_down_unneeded_time,
            redo=lost_work(pod, ran=now + group.boot_time - pod.created),
        )
        for group, template in groups
    )


def collect(
    ctx: Context,
    unschedulable: dict[str, str],
    *,
    now: float,
    keep: Keep = cheaper_on_a_new_node,
    outlived: float = 0.0,
) -> Demand:
    """The ECS demand of this pass; pods no policy unit can take go to ``unschedulable``.

    ``keep`` decides which pods on ECI that could move are demand (the planner: those a new node
    could make cheaper; rebalance: those worth moving into room that exists).  ``outlived``:
    ``remaining``'s, for replicas that have outlived their expected duration.
    """
    state, settings = ctx.state, ctx.settings
    horizon = settings.forecast_horizon
    demand = Demand(horizon / 3600)
    policies = state.policies
    counts: dict[Any, list[int]] = {}
    # the counts as the cluster has them, kept for the state at its revision (the planner's and
    # rebalance's collects of one pass, and passes with nothing written between them, share it)
    live: dict[Any, tuple[int, ...]] | None = None
    if ctx.memo is not None:
        live = ctx.memo.recall(_COUNTS, state, ())
        if live is None:
            live = {}
            ctx.memo.keep(_COUNTS, state, (), live)

    def counts_for(policy: ResourcePolicy, pod: Pod) -> list[int]:
        """The workload's pods per unit of ``policy``, as this pass has counted them so far."""
        key = (policy.key, pod.workload)
        found = counts.get(key)
        if found is None:
            start = live.get(key) if live is not None else None
            if start is None:
                pods = state.workload_pods(pod.workload) if pod.workload is not None else ()
                start = tuple(unit_counts(policy, pods=pods, nodes=state.nodes, reserved={}))
                if live is not None:
                    live[key] = start
            found = counts[key] = list(start)
        return found

    for pod in state.pending_pods():
        if pod.terminating or is_daemon_or_static(pod):
            continue
        cls = ctx.class_of(pod)
        policy = policy_of(policies, pod) if policies else None
        if policy is None:
            demand.add(pod, cls, None, -1)
            continue
        unit_counts_now = counts_for(policy, pod)
        decision = ctx.decide(cls, policy, unit_counts_now, state.ordinal(pod))
        if decision.unit is None:
            unschedulable[pod.key] = decision.reason
            continue
        unit_counts_now[decision.unit] += 1
        if policy.units[decision.unit].resource is NodeKind.ECI:
            demand.on_eci += 1
            continue
        demand.add(pod, cls, policy, decision.unit)

    if not policies:
        demand.finish()
        return demand
    for node, movable in _movable(ctx, now=now, outlived=outlived):
        for pod, left in movable:
            demand.eci_candidates.append((pod, left))
            policy = policy_of(policies, pod)
            own = policy.unit_of(node) if policy is not None else None
            if policy is None or own is None:
                continue
            cls = ctx.class_of(pod)
            now_counts = counts_for(policy, pod)
            trial = list(now_counts)
            trial[own] -= 1
            decision = ctx.decide(cls, policy, trial, state.ordinal(pod))
            if decision.unit is None or policy.units[decision.unit].resource is not NodeKind.ECS:
                continue
            if not keep(ctx, pod, cls, policy, decision.unit, left, now):
                continue
            now_counts[own] -= 1
            now_counts[decision.unit] += 1
            demand.add(pod, cls, policy, decision.unit, left / 3600)
    demand.finish()
    return demand


_MOVABLE = "demand: movable pods on ECI"  # ``_movable``'s answers' name on the planner's memo
_COUNTS = "demand: unit counts"  # ``collect``'s workloads' unit counts, on the planner's memo


def _movable(
    ctx: Context, *, now: float, outlived: float
) -> list[tuple[Node, list[tuple[Pod, float]]]]:
    """Per ECI node, its pods an eviction could move that are expected to run on
    (``remaining`` > 0), with that time, oldest first (by creation, then key): the pods on ECI
    ``collect`` judges.  A function of the cluster, ``now``, the horizon and ``outlived``: kept
    on the planner's memo for the state at its revision (``PlannerMemo.recall``), so the
    planner's and rebalance's ``collect`` of one pass compute it once."""
    state, memo = ctx.state, ctx.memo
    horizon = ctx.settings.forecast_horizon
    key = (now, horizon, outlived)
    if memo is not None:
        hit: list[tuple[Node, list[tuple[Pod, float]]]] | None = memo.recall(_MOVABLE, state, key)
        if hit is not None:
            return hit
    out = []
    for node in ctx.eci_nodes:
        # cheap filters first: most pods on ECI are short (no expected duration) and stay there
        movable = []
        for pod in state.pods_on(node.name):
            if pod.finished or pod.terminating or pod.workload is None:
                continue
            if move_blocker(pod) is not None:
                continue
            left = remaining_in(state, pod, now=now, horizon=horizon, outlived=outlived)
            if left > 0:
                movable.append((pod.created, pod.key, pod, left))
        movable.sort(key=lambda m: (m[0], m[1]))
        out.append((node, [(pod, left) for _, _, pod, left in movable]))
    if memo is not None:
        memo.keep(_MOVABLE, state, key, out)
    return out


# -- scale-up ----------------------------------------------------------------------------------
