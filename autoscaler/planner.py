"""The planner: how many ECS nodes each node group needs now, and which nodes can go.

``plan`` is pure: a function of the cluster state, the groups as the provider reports them, an
optional forecast, the settings, ``now`` and the unneeded-since timestamps of the previous pass
(the controller keeps those in memory and in its status ConfigMap; losing them only restarts the
scale-down timers, which is safe).  The controller and the replay call the same function.

Scale-up
    ECS demand is every pending pod whose placement policy chooses an ECS unit (the policy from
    ``extender.policy``, with the workload's live counts; pending pods of one workload are counted
    one after another so that replica N+1 goes to ECI), every pending pod no policy manages (as
    cluster-autoscaler would), and every pod running on ECI for lack of ECS room whose expected
    run time makes ECS cheaper (``autoscaler.costs``).  The expected run time is the annotation
    ``spillover.dev/expected-duration`` (``8h``, ``3600``) or, for Deployments, StatefulSets and
    ReplicaSets, the whole horizon; Jobs and bare pods without the annotation stay on ECI.  Demand
    that first-fits the free capacity of existing nodes or of nodes still booting (target size
    above registered nodes) needs no new node.  The rest is packed first-fit-decreasing onto new
    nodes of every group it may use (node selector, required node affinity and taints against the
    group's labels and taints; the policy unit's node selector), an expander picks one group, and
    this repeats for the pods left over.  Max sizes, cooldowns and ``max_nodes_per_loop`` bound
    the options; pods nothing can take get a reason.  DaemonSet pods are not demand: a new node's
    DaemonSets are ``settings.daemonset_overhead``, subtracted from its allocatable.

Predictive
    The forecast is cluster-wide ECS demand in **requested CPU cores** (what the controller
    records: cpu requests of pods on ECS plus ECS demand that is pending).  ECS should hold the
    part of it that lasts: over the next boot time + horizon, the level that the upper quantile
    stays above for at least the break-even fraction of the window (about 2/3 with the default
    prices).  Capacity short of that level is added to a general group (no NoSchedule taint, no
    GPU).  A forecast never removes a node; it only keeps scale-down from going below that level.

Scale-down
    A group node whose requested cpu and memory are both below the threshold is unneeded from
    the first pass that saw it so; once unneeded long enough, it is removed when its pods all fit
    on the nodes that stay (simulated one candidate after another, updating free capacity, as
    cluster-autoscaler does), its group stays at or above its minimum, PodDisruptionBudgets
    allow the evictions, and no scale-up happened within ``scale_down_delay_after_add``.  Nodes
    of one group are taken in the order of its removal policy.  A node with a pod that cannot
    move (no controller, or ``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``) stays;
    local storage is not modelled.  DaemonSet pods do not need to move.  Destinations are ECS
    nodes only; ECI virtual nodes are never scaled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from extender.model import Node, NodeKind, Pod, Resources
from extender.policy import ResourcePolicy, decide, policy_for, unit_counts
from extender.selectors import LabelSelector, fits_node_selector, untolerated_taint
from extender.snapshot import ClusterState

from . import kernels_ref
from .costs import GIB, break_even_fraction, ecs_cheaper
from .expanders import Option, expander_for
from .kernels import DRAIN_MIN_SIZE, DRAIN_NO_FIT, DRAIN_PDB, DRAIN_RECEIVED, DRAIN_REMOVED
from .nodegroup import NodeGroup, PlannerSettings, parse_duration

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
    "plan",
]

EXPECTED_DURATION = "spillover.dev/expected-duration"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
BACKENDS = ("numba", "reference")
_LONG_RUNNING = ("Deployment", "StatefulSet", "ReplicaSet")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?")

IntArray = npt.NDArray[np.int64]


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

    def last_any(self) -> float:
        ups = -math.inf if self.last_scale_up is None else self.last_scale_up
        downs = -math.inf if self.last_scale_down is None else self.last_scale_down
        return max(ups, downs)

    def in_cooldown(self, now: float) -> bool:
        return now - self.last_any() < self.group.cooldown


@dataclass(frozen=True, slots=True)
class DisruptionBudget:
    """A PodDisruptionBudget reduced to what eviction needs: which pods, how many may go now."""

    namespace: str
    selector: LabelSelector
    disruptions_allowed: int
    name: str = ""

    def covers(self, pod: Pod) -> bool:
        return pod.namespace == self.namespace and self.selector.matches(pod.labels)


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
                }
                for u in self.scale_ups
            ],
            "scaleDowns": [
                {"group": d.group, "node": d.node, "reason": d.reason} for d in self.scale_downs
            ],
            "unneeded": dict(self.unneeded),
            "unschedulable": dict(self.unschedulable),
            "notes": list(self.notes),
        }


# -- shared context ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Class:
    """Pods that match nodes the same way (node selector, required affinity, tolerations)."""

    pod: Pod
    groups: list[bool]
    group_why: list[str]
    eci_nodes: list[Node]


class _Context:
    def __init__(
        self, state: ClusterState, groups: Sequence[GroupState], settings: PlannerSettings
    ) -> None:
        self.state = state
        self.groups = list(groups)
        self.settings = settings
        self.templates = [
            gs.group.template(overhead=settings.daemonset_overhead) for gs in self.groups
        ]
        self.template_group = {t.name: g for g, t in enumerate(self.templates)}
        index = {gs.group.name: g for g, gs in enumerate(self.groups)}
        self.node_group: dict[str, int] = {}
        for g, gs in enumerate(self.groups):
            for member in gs.nodes:
                self.node_group[member.name] = g
        label = settings.node_group_label
        for node in state.nodes.values():
            if node.kind is NodeKind.ECS and node.name not in self.node_group:
                g_label = index.get(node.labels.get(label, ""))
                if g_label is not None:
                    self.node_group[node.name] = g_label
        self.registered = [0] * len(self.groups)
        for name, g in self.node_group.items():
            if name in state.nodes:
                self.registered[g] += 1
        self.eci_nodes = [n for n in state.nodes.values() if n.kind is NodeKind.ECI]
        self.ecs_nodes = [
            n
            for n in state.nodes.values()
            if n.kind is NodeKind.ECS and n.ready and not n.unschedulable
        ]
        self.classes: list[_Class] = []
        self._class_index: dict[tuple[Any, ...], int] = {}
        self._node_elig: dict[tuple[str, int, str, int], npt.NDArray[np.bool_]] = {}
        self.cap = np.array([_vector(t.allocatable) for t in self.templates], np.int64).reshape(
            len(self.groups), 4
        )

    def upcoming(self, g: int) -> int:
        return max(0, self.groups[g].target_size - self.registered[g])

    def class_of(self, pod: Pod) -> int:
        key = (
            tuple(pod.node_selector.items()) if pod.node_selector else (),
            pod.required_affinity,
            pod.tolerations,
        )
        found = self._class_index.get(key)
        if found is not None:
            return found
        ok: list[bool] = []
        why: list[str] = []
        for template in self.templates:
            taint = untolerated_taint(pod.tolerations, template.taints)
            if not fits_node_selector(pod, template):
                ok.append(False)
                why.append("node selector / required affinity does not match the group's labels")
            elif taint is not None:
                ok.append(False)
                why.append(f"untolerated taint {taint.key}={taint.value}:{taint.effect}")
            else:
                ok.append(True)
                why.append("")
        eci = [n for n in self.eci_nodes if _accepts(pod, n)]
        self.classes.append(_Class(pod, ok, why, eci))
        self._class_index[key] = len(self.classes) - 1
        return len(self.classes) - 1

    def node_elig(
        self,
        cls: int,
        policy: ResourcePolicy | None,
        unit: int,
        nodes: Sequence[Node],
        *,
        purpose: str,
    ) -> npt.NDArray[np.bool_]:
        """Which of ``nodes`` a pod class may use (within the policy's unit, if any)."""
        key = (purpose, cls, policy.key if policy else "", unit)  # one node list per purpose
        found = self._node_elig.get(key)
        if found is not None:
            return found
        pod = self.classes[cls].pod
        unit_obj = policy.units[unit] if policy is not None and unit >= 0 else None
        out = np.array(
            [_accepts(pod, n) and (unit_obj is None or unit_obj.contains(n)) for n in nodes],
            np.bool_,
        )
        self._node_elig[key] = out
        return out


def _accepts(pod: Pod, node: Node) -> bool:
    return fits_node_selector(pod, node) and untolerated_taint(pod.tolerations, node.taints) is None


def _vector(r: Resources) -> tuple[int, int, int, int]:
    return (r.cpu_milli, r.memory, r.gpu_milli, r.pods)


def _kernels(backend: str) -> ModuleType:
    if backend == "reference":
        return kernels_ref
    if backend == "numba":
        from . import kernels

        return kernels
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")


def _expected_duration(pod: Pod, horizon: float) -> float:
    raw = pod.annotations.get(EXPECTED_DURATION)
    if raw is not None:
        try:
            return max(float(raw), 0.0) if _NUMBER.fullmatch(raw) else parse_duration(raw, "")
        except ValueError:  # a bad annotation counts as unknown: the pod stays where it is
            return 0.0
    if pod.workload is not None and pod.workload.kind in _LONG_RUNNING:
        return horizon
    return 0.0


# -- demand ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Demand:
    """ECS demand, collected per pod in lists, then turned into arrays by ``finish``."""

    horizon_hours: float
    pods: list[Pod] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)
    policies: list[ResourcePolicy | None] = field(default_factory=list)
    units: list[int] = field(default_factory=list)
    eci_hours_of: dict[int, float] = field(default_factory=dict)  # pods now on ECI: run time, h
    on_eci: int = 0
    about_to_land: int = 0  # pending pods that fit free or booting capacity
    # filled by finish()
    req: IntArray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    pack: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    pack_keys: list[tuple[int, ResourcePolicy | None, int]] = field(default_factory=list)
    eci_hours: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    from_eci: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_))

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


def _demand(ctx: _Context, unschedulable: dict[str, str]) -> _Demand:
    state, settings = ctx.state, ctx.settings
    horizon = settings.forecast_horizon
    demand = _Demand(horizon / 3600)
    policies = state.policies
    counts: dict[Any, list[int]] = {}

    def counts_for(policy: ResourcePolicy, pod: Pod) -> list[int]:
        key = (policy.key, pod.workload)
        found = counts.get(key)
        if found is None:
            pods = state.workload_pods(pod.workload) if pod.workload is not None else ()
            found = unit_counts(policy, pods=pods, nodes=state.nodes, reserved={})
            counts[key] = found
        return found

    def candidates(cls: int) -> list[Node]:
        c = ctx.classes[cls]
        return [t for t, ok in zip(ctx.templates, c.groups, strict=True) if ok] + c.eci_nodes

    for pod in state.pending_pods():
        if pod.terminating or (pod.owner is not None and pod.owner.kind == "DaemonSet"):
            continue
        cls = ctx.class_of(pod)
        policy = policy_for(policies, pod) if policies else None
        if policy is None:
            demand.add(pod, cls, None, -1)
            continue
        unit_counts_now = counts_for(policy, pod)
        decision = decide(
            policy,
            counts=unit_counts_now,
            candidates=candidates(cls),
            ordinal=pod.ordinal,
        )
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
    eci_price = settings.eci_price
    for node in ctx.eci_nodes:
        for pod in sorted(state.pods_on(node.name), key=lambda p: (p.created, p.key)):
            if pod.finished or pod.terminating or pod.workload is None:
                continue
            policy = policy_for(policies, pod)
            own = policy.unit_of(node) if policy is not None else None
            if policy is None or own is None:
                continue
            duration = _expected_duration(pod, horizon)
            if duration <= 0:
                continue
            cls = ctx.class_of(pod)
            now_counts = counts_for(policy, pod)
            trial = list(now_counts)
            trial[own] -= 1
            decision = decide(policy, counts=trial, candidates=candidates(cls), ordinal=pod.ordinal)
            if decision.unit is None or policy.units[decision.unit].resource is not NodeKind.ECS:
                continue
            usable = [
                g
                for g, t in enumerate(ctx.templates)
                if ctx.classes[cls].groups[g] and policy.units[decision.unit].contains(t)
            ]
            if not any(
                ecs_cheaper(
                    pod.requests,
                    price_per_hour=ctx.groups[g].group.price_per_hour,
                    capacity=ctx.templates[g].allocatable,
                    eci=eci_price,
                    duration=duration,
                    horizon=horizon,
                )
                for g in usable
            ):
                continue
            now_counts[own] -= 1
            now_counts[decision.unit] += 1
            demand.add(pod, cls, policy, decision.unit, min(duration, horizon) / 3600)
    demand.finish()
    return demand


# -- scale-up ----------------------------------------------------------------------------------


def _order(req: IntArray) -> IntArray:
    """Decreasing GPU, then cpu, then memory (stable, so equal pods keep their order)."""
    return np.lexsort((-req[:, 1], -req[:, 0], -req[:, 2])).astype(np.int64)


def _free_capacity(ctx: _Context) -> tuple[list[Node], IntArray]:
    """Existing ECS nodes' free capacity, then one template per node still booting."""
    nodes = list(ctx.ecs_nodes)
    rows = []
    for node in nodes:
        used = [0, 0, 0, 0]
        for pod in ctx.state.pods_on(node.name):
            if not pod.finished:
                r = pod.requests
                used[0] += r.cpu_milli
                used[1] += r.memory
                used[2] += r.gpu_milli
                used[3] += 1
        a = node.allocatable
        rows.append(
            (a.cpu_milli - used[0], a.memory - used[1], a.gpu_milli - used[2], a.pods - used[3])
        )
    for g in range(len(ctx.groups)):
        for _ in range(ctx.upcoming(g)):
            nodes.append(ctx.templates[g])
            rows.append(_vector(ctx.templates[g].allocatable))
    return nodes, np.array(rows, np.int64).reshape(len(rows), 4)


def _scale_up(
    ctx: _Context,
    demand: _Demand,
    k: ModuleType,
    *,
    now: float,
    unschedulable: dict[str, str],
    notes: list[str],
) -> dict[int, tuple[int, list[str], list[str]]]:
    """Nodes to add per group index: (delta, pod keys, reasons)."""
    settings = ctx.settings
    out: dict[int, tuple[int, list[str], list[str]]] = {}
    if not demand.pods:
        return out
    req, pack = demand.req, demand.pack
    order = _order(req)

    nodes, free = _free_capacity(ctx)
    if len(nodes):
        elig_nodes = np.stack(
            [ctx.node_elig(c, p, u, nodes, purpose="fit") for c, p, u in demand.pack_keys]
        ).reshape(len(demand.pack_keys), len(nodes))
        fitted = k.fit_existing(req, order=order, free=free, pod_class=pack, elig=elig_nodes)
        waiting = fitted >= 0
        booting = int(np.count_nonzero(fitted >= len(ctx.ecs_nodes)))
        demand.about_to_land = int(np.count_nonzero(waiting & ~demand.from_eci))
        if waiting.any():
            notes.append(
                f"{int(waiting.sum()) - booting} pending pod(s) fit free capacity of existing "
                f"nodes, {booting} fit nodes still booting: no new node for them"
            )
    else:
        waiting = np.zeros(len(demand.pods), np.bool_)
    remaining = ~waiting

    g_count = len(ctx.groups)
    pack_groups = np.zeros((g_count, len(demand.pack_keys)), np.bool_)
    for j, (cls, policy, unit) in enumerate(demand.pack_keys):
        c = ctx.classes[cls]
        for g in range(g_count):
            pack_groups[g, j] = c.groups[g] and (
                policy is None or policy.units[unit].contains(ctx.templates[g])
            )
    base_elig = pack_groups[:, pack]
    price = np.array([gs.group.price_per_hour for gs in ctx.groups], np.float64)
    eci = settings.eci_price
    hours = demand.eci_hours
    eci_cost = (
        req[:, 0] / 1000 * eci.vcpu_second * 3600
        + req[:, 1] / GIB * eci.gib_second * 3600
        + np.ceil(req[:, 2] / 1000) * eci.gpu_hour
    ) * hours
    horizon_h = settings.forecast_horizon / 3600
    blocked: list[str] = []
    room = np.zeros(g_count, np.int64)
    for g, gs in enumerate(ctx.groups):
        if gs.in_cooldown(now):
            blocked.append(f"in cooldown until {_fmt(gs.last_any() + gs.group.cooldown)}")
        elif gs.target_size >= gs.group.max_size:
            blocked.append(f"at its max size {gs.group.max_size}")
        else:
            blocked.append("")
            room[g] = gs.group.max_size - gs.target_size
    loop_left = settings.max_nodes_per_loop
    expander = expander_for(settings)
    # Groups with the same new-node allocatable, the same eligible pods and the same room pack
    # identically (typically one instance type in several zones): pack each kind once.
    template_key = [ctx.cap[g].tobytes() + pack_groups[g].tobytes() for g in range(g_count)]
    while remaining.any() and loop_left > 0:
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
        placed = assign_r[inverse[g]] >= 0
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
        delta, pods, reasons = out.get(g, (0, [], []))
        out[g] = (delta + option.nodes, pods + keys, [*reasons, reason])
        room[g] -= option.nodes
        loop_left -= option.nodes
        if room[g] <= 0:
            blocked[g] = f"reached its max size {ctx.groups[g].group.max_size}"
        remaining &= ~placed
    if remaining.any():
        _explain(ctx, demand, req, remaining, blocked, loop_left, unschedulable)
    return out


def _explain(
    ctx: _Context,
    demand: _Demand,
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


def _fmt(t: float) -> str:
    return f"t={t:.0f}"


# -- forecast ----------------------------------------------------------------------------------


def _general(ctx: _Context, g: int) -> bool:
    group = ctx.groups[g].group
    hard = any(t.effect in ("NoSchedule", "NoExecute") for t in group.taints)
    return not hard and group.instance_type.gpu_milli == 0


def _forecast_level(ctx: _Context, forecast: Forecast, now: float, notes: list[str]) -> float:
    """Cores of forecast demand that last long enough to belong on ECS (0 when none)."""
    general = [g for g in range(len(ctx.groups)) if _general(ctx, g)]
    if not general:
        notes.append("forecast ignored: no general-purpose node group (untainted, no GPU)")
        return 0.0
    eci = ctx.settings.eci_price
    fraction = min(
        break_even_fraction(
            price_per_hour=ctx.groups[g].group.price_per_hour,
            capacity=ctx.templates[g].allocatable,
            eci=eci,
        )
        for g in general
    )
    boot = max(ctx.groups[g].group.boot_time for g in general)
    end = now + boot + ctx.settings.forecast_horizon
    times = forecast.start + forecast.step * np.arange(forecast.upper.size, dtype=np.float64)
    window = forecast.upper[(times >= now - forecast.step) & (times <= end)]
    if window.size == 0:
        notes.append("forecast ignored: it does not cover the next boot time + horizon")
        return 0.0
    if fraction >= 1.0:
        notes.append("forecast: ECS is never cheaper than ECI at these prices")
        return 0.0
    level = float(np.quantile(window, 1.0 - fraction))
    notes.append(
        f"forecast: the {forecast.quantile:.0%} upper bound stays at or above {level:.2f} cores "
        f"for {fraction:.0%} of the next {(end - now) / 60:.0f} min (break-even share), "
        "so that much belongs on ECS"
    )
    return max(level, 0.0)


def _ecs_capacity_milli(
    ctx: _Context, added: Mapping[int, tuple[int, list[str], list[str]]]
) -> int:
    total = 0
    for name in ctx.node_group:
        node = ctx.state.nodes.get(name)
        if node is not None and node.kind is NodeKind.ECS:
            total += node.allocatable.cpu_milli
    for g in range(len(ctx.groups)):
        nodes = ctx.upcoming(g) + (added[g][0] if g in added else 0)
        total += nodes * ctx.templates[g].allocatable.cpu_milli
    return total


def _predict(
    ctx: _Context,
    level: float,
    added: dict[int, tuple[int, list[str], list[str]]],
    *,
    now: float,
    notes: list[str],
) -> None:
    capacity = _ecs_capacity_milli(ctx, added)
    deficit = level * 1000 - capacity
    if deficit <= 0:
        return
    loop_left = ctx.settings.max_nodes_per_loop - sum(d for d, _, _ in added.values())
    eci = ctx.settings.eci_price
    hours = ctx.settings.forecast_horizon / 3600
    options = []
    for g, gs in enumerate(ctx.groups):
        if not _general(ctx, g) or gs.in_cooldown(now):
            continue
        room = min(gs.group.max_size - gs.target_size - added.get(g, (0, [], []))[0], loop_left)
        cap = ctx.templates[g].allocatable
        if room <= 0 or cap.cpu_milli <= 0:
            continue
        nodes = min(room, math.ceil(deficit / cap.cpu_milli))
        covered = min(deficit, nodes * cap.cpu_milli)
        waste = 1.0 - covered / (nodes * cap.cpu_milli)
        memory = covered / cap.cpu_milli * cap.memory  # in the group's cpu:memory ratio
        eci_hour = covered / 1000 * eci.vcpu_second * 3600 + memory / GIB * eci.gib_second * 3600
        options.append(
            Option(
                gs.group,
                nodes,
                0,
                waste,
                waste,
                nodes * gs.group.price_per_hour * hours,
                eci_hour * hours,
            )
        )
    choice = expander_for(ctx.settings).choose(options)
    if choice is None:
        notes.append(
            f"forecast wants {deficit / 1000:.2f} more ECS cores but no general group can grow now"
        )
        return
    option, why = choice
    g = next(i for i, gs in enumerate(ctx.groups) if gs.group is option.group)
    reason = (
        f"forecast: pre-provision {option.nodes} node(s) for {deficit / 1000:.2f} cores of lasting "
        f"demand above ECS capacity {capacity / 1000:.2f} cores; {why}"
    )
    delta, pods, reasons = added.get(g, (0, [], []))
    added[g] = (delta + option.nodes, pods, [*reasons, reason])


# -- scale-down --------------------------------------------------------------------------------


def _scale_down(
    ctx: _Context,
    k: ModuleType,
    *,
    now: float,
    previous: Mapping[str, float],
    pdbs: Sequence[DisruptionBudget],
    floor_milli: float,
    blocked_by_scale_up: bool,
    notes: list[str],
) -> tuple[list[ScaleDown], dict[str, float]]:
    state, settings = ctx.state, ctx.settings
    threshold = settings.scale_down_utilization_threshold
    unneeded: dict[str, float] = {}
    candidates: list[tuple[tuple[Any, ...], Node, int, list[Pod], str]] = []
    for name, g in ctx.node_group.items():
        node = state.nodes.get(name)
        if node is None or node.kind is not NodeKind.ECS:
            continue
        pods = [p for p in state.pods_on(name) if not p.finished]
        a = node.allocatable
        cpu = sum(p.requests.cpu_milli for p in pods) / a.cpu_milli if a.cpu_milli else 1.0
        mem = sum(p.requests.memory for p in pods) / a.memory if a.memory else 1.0
        if max(cpu, mem) >= threshold:
            continue
        since = previous.get(name, now)
        unneeded[name] = since
        if now - since < settings.scale_down_unneeded_time:
            continue
        movable = [p for p in pods if p.owner is None or p.owner.kind != "DaemonSet"]
        stuck = next(
            (
                p
                for p in movable
                if p.owner is None or p.annotations.get(SAFE_TO_EVICT, "").lower() == "false"
            ),
            None,
        )
        if stuck is not None:
            why = (
                "has no controller"
                if stuck.owner is None
                else f'is annotated {SAFE_TO_EVICT}: "false"'
            )
            notes.append(f"node {name} stays: pod {stuck.key} {why}")
            continue
        gs = ctx.groups[g]
        if gs.in_cooldown(now):
            notes.append(f"node {name} stays: group {gs.group.name} is in cooldown")
            continue
        created = node.created or next((m.created for m in gs.nodes if m.name == name), 0.0)
        newest_first = gs.group.removal_policy.value == "NewestInstance"
        key = (g, -created if newest_first else created, name)
        text = (
            f"unneeded since {_fmt(since)} for {now - since:.0f}s "
            f"(requests cpu {cpu:.0%}, memory {mem:.0%} < {threshold:.0%})"
        )
        candidates.append((key, node, g, movable, text))
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
            f"{_fmt(last_up + settings.scale_down_delay_after_add)} (delay after scale-up)"
        )
        return [], unneeded
    candidates.sort(key=lambda c: c[0])

    # destinations: schedulable nodes first, candidates last, so pods prefer nodes that stay
    cand_names = {c[1].name for c in candidates}
    dests = [n for n in ctx.ecs_nodes if n.name not in cand_names] + [c[1] for c in candidates]
    position = {n.name: i for i, n in enumerate(dests)}
    rows = []
    for node in dests:
        used = [0, 0, 0, 0]
        for pod in state.pods_on(node.name):
            if not pod.finished:
                r = pod.requests
                used[0] += r.cpu_milli
                used[1] += r.memory
                used[2] += r.gpu_milli
                used[3] += 1
        a = node.allocatable
        slots = a.pods - used[3] if (node.ready and not node.unschedulable) else 0
        rows.append((a.cpu_milli - used[0], a.memory - used[1], a.gpu_milli - used[2], slots))
    free = np.array(rows, np.int64).reshape(len(rows), 4)
    req_rows: list[tuple[int, int, int, int]] = []
    pod_class: list[int] = []
    pod_pdb: list[int] = []
    starts = [0]
    cand_node: list[int] = []
    for _, node, _, movable, _ in candidates:
        for pod in movable:
            r = pod.requests
            req_rows.append((r.cpu_milli, r.memory, r.gpu_milli, 1))
            pod_class.append(ctx.class_of(pod))
            pod_pdb.append(next((b for b, pdb in enumerate(pdbs) if pdb.covers(pod)), -1))
        starts.append(len(req_rows))
        cand_node.append(position[node.name])
    classes = sorted(set(pod_class))
    remap = {c: i for i, c in enumerate(classes)}
    elig = (
        np.stack([ctx.node_elig(c, None, -1, dests, purpose="drain") for c in classes])
        if classes
        else np.ones((1, len(dests)), np.bool_)
    )
    status, dest = k.drain(
        np.array(req_rows, np.int64).reshape(len(req_rows), 4),
        pod_class=np.array([remap[c] for c in pod_class], np.int64),
        pod_pdb=np.array(pod_pdb, np.int64),
        cand_start=np.array(starts, np.int64),
        cand_node=np.array(cand_node, np.int64),
        cand_group=np.array([c[2] for c in candidates], np.int64),
        group_budget=np.array([gs.target_size - gs.group.min_size for gs in ctx.groups], np.int64),
        pdb_budget=np.array([max(p.disruptions_allowed, 0) for p in pdbs], np.int64),
        free=free,
        elig=elig,
    )
    capacity = _ecs_capacity_milli(ctx, {})
    downs: list[ScaleDown] = []
    for c, (_, node, g, movable, text) in enumerate(candidates):
        group = ctx.groups[g].group
        code = int(status[c])
        if code == DRAIN_REMOVED:
            if capacity - node.allocatable.cpu_milli < floor_milli:
                notes.append(
                    f"node {node.name} stays: ECS capacity must stay at or above "
                    f"{floor_milli / 1000:.2f} cores (forecast and pods moving to ECS)"
                )
                continue
            capacity -= node.allocatable.cpu_milli
            targets = sorted({dests[int(dest[i])].name for i in range(starts[c], starts[c + 1])})
            moved = (
                f"its {len(movable)} pod(s) fit on {', '.join(targets)}"
                if movable
                else "it runs no pod that must move"
            )
            downs.append(ScaleDown(group.name, node.name, f"{text}; {moved}"))
        elif code == DRAIN_NO_FIT:
            notes.append(f"node {node.name} stays: its pods do not all fit on other nodes")
        elif code == DRAIN_MIN_SIZE:
            notes.append(
                f"node {node.name} stays: group {group.name} is at its min size {group.min_size}"
            )
        elif code == DRAIN_PDB:
            notes.append(f"node {node.name} stays: a PodDisruptionBudget allows no more evictions")
        elif code == DRAIN_RECEIVED:
            notes.append(f"node {node.name} stays: it receives pods from a removed node")
    return downs, unneeded


# -- the pass ----------------------------------------------------------------------------------


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
    """One planning pass; see the module docstring for the rules."""
    k = _kernels(backend)
    ctx = _Context(state, groups, settings)
    notes: list[str] = []
    unschedulable: dict[str, str] = {}
    demand = _demand(ctx, unschedulable)
    if demand.on_eci:
        notes.append(f"{demand.on_eci} pending pod(s) belong on ECI by policy: not ECS demand")
    added = _scale_up(ctx, demand, k, now=now, unschedulable=unschedulable, notes=notes)
    level = 0.0
    if forecast is not None:
        level = _forecast_level(ctx, forecast, now, notes)
        _predict(ctx, level, added, now=now, notes=notes)
    migrating = int(demand.req[demand.from_eci, 0].sum())
    used = 0
    for name in ctx.node_group:
        used += sum(p.requests.cpu_milli for p in state.pods_on(name) if not p.finished)
    floor = max(level * 1000, float(used + migrating))
    downs, still = _scale_down(
        ctx,
        k,
        now=now,
        previous=unneeded or {},
        pdbs=pdbs,
        floor_milli=floor,
        blocked_by_scale_up=bool(added) or demand.about_to_land > 0,
        notes=notes,
    )
    ups = tuple(
        ScaleUp(
            group=ctx.groups[g].group.name,
            delta=delta,
            new_target=ctx.groups[g].target_size + delta,
            pods=tuple(pods),
            reason="; then ".join(reasons),
        )
        for g, (delta, pods, reasons) in sorted(added.items())
    )
    return Plan(ups, tuple(downs), still, unschedulable, tuple(notes))
