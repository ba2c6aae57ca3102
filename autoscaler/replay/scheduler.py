"""kube-scheduler's part of the replay: offer nodes, let the policy decide, bind, unbind.

For each node group the scheduler offers the policy the oldest Ready node the pod fits on
(resources, taints, node selector), plus the ECI virtual node when the pod tolerates it (the
webhook adds that toleration to pods whose policy has an ECI unit; GPU pods tolerate
``nvidia.com/gpu`` as the ExtendedResourceToleration admission plugin arranges).
``extender.policy.decide`` chooses; the pod binds to the accepted node of the cheapest group.
Pods nothing can take wait and are retried when capacity appears.  For the headroom baselines a
pod preempts a placeholder pod, as the cluster-autoscaler "overprovisioning" pattern relies on.

Unit counts are kept incrementally (the replay sees every bind and unbind); :meth:`Scheduler.check`
compares them with ``extender.policy.unit_counts``, the extender's own count.  Every pod that
moves is rebuilt by ``Pod.placed`` (next to the model), so no field of ``Pod`` is dropped.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from autoscaler import predictive
from autoscaler.context import Context, Usage
from autoscaler.demand import new_node_could_pay, remaining_in
from autoscaler.eviction import lost_work, move_blocker
from autoscaler.nodegroup import NodeGroup, PlannerSettings
from extender import policy as placement
from extender.model import (
    Node,
    NodeKind,
    OwnerRef,
    Pod,
    Resources,
    Taint,
    Toleration,
    WorkloadKey,
)
from extender.policy import ResourcePolicy
from extender.selectors import can_hold
from extender.snapshot import ClusterState

from .billing import Billing
from .scenario import Timing
from .scoring import STOCK, Scoring, score
from .trace import Template

__all__ = [
    "BALLOON_NAMESPACE",
    "ECI_NODE",
    "TRACE_GROUP",
    "Clock",
    "NodeRecord",
    "PodRecord",
    "Scheduler",
    "admitted_tolerations",
    "balloon_workload",
    "created_at",
    "is_balloon",
    "owner_of",
]

ECI_NODE = "virtual-kubelet-eci"
ECI_TAINT = Taint("virtual-kubelet.io/provider", "alibabacloud", "NoSchedule")
GPU_TOLERATION = Toleration(key="nvidia.com/gpu", operator="Exists")
ECI_TOLERATION = Toleration(key=ECI_TAINT.key, operator="Exists")
BALLOON_NAMESPACE = "kube-system"
TRACE_GROUP = "(trace)"
_BALLOON_PREFIX = "overprovisioning-"


def created_at(now: float) -> float:
    """``Pod.created`` of a pod the replay creates (or recreates) at ``now``: the replay's clock
    starts at 0, but a ``created`` of 0 means "unknown" to the planner (``demand.remaining``,
    ``predictive.pinned``: a pod without a creation time has no age), so a pod of the trace's
    first instant gets the smallest positive time instead, an age of ``now`` to the planner."""
    return now if now > 0 else math.ulp(0.0)


def admitted_tolerations(requests: Resources, *, eci: bool) -> tuple[Toleration, ...]:
    """The tolerations a pod has once admitted: ``nvidia.com/gpu`` for a GPU pod (what the
    ExtendedResourceToleration admission plugin adds), the ECI taint's when its policy has an
    ECI unit (what the webhook adds).  The replay's scheduler and its report both use it."""
    gpu = (GPU_TOLERATION,) if requests.gpu_milli else ()
    return (*gpu, ECI_TOLERATION) if eci else gpu


def balloon_workload(group: str) -> WorkloadKey:
    """The placeholder Deployment that keeps one spare node of ``group`` (overprovisioning)."""
    return WorkloadKey(BALLOON_NAMESPACE, "Deployment", f"{_BALLOON_PREFIX}{group}")


def is_balloon(workload: WorkloadKey) -> bool:
    return workload.namespace == BALLOON_NAMESPACE and workload.name.startswith(_BALLOON_PREFIX)


def owner_of(workload: WorkloadKey) -> OwnerRef | None:
    """The owner reference a pod of ``workload`` carries (a Deployment's pods: its ReplicaSet)."""
    if workload.kind == "Pod":
        return None
    if workload.kind == "Deployment":
        return OwnerRef("ReplicaSet", workload.name)
    return OwnerRef(workload.kind, workload.name)


class Clock:
    """The replay's virtual time, shared by its parts."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0.0


class PodRecord:
    __slots__ = (
        "balloon",
        "bound",
        "by_price",
        "created",
        "demand",
        "fits",
        "gpus",
        "key",
        "late",
        "no_room",
        "node",
        "ordinal",
        "pod",
        "policy",
        "redo",
        "req",
        "started",
        "tol_eci",
        "uid",
        "unit",
        "waited",
        "wl",
    )

    def __init__(
        self,
        uid: str,
        wl: WorkloadKey,
        pod: Pod,
        policy: ResourcePolicy | None,
        now: float,
        *,
        balloon: bool,
    ) -> None:
        r = pod.requests
        self.uid = uid
        self.wl = wl
        self.pod = pod
        self.policy = policy
        self.key = (wl, policy.key) if policy is not None else None
        self.req = (r.cpu_milli, r.memory, r.gpu_milli)
        self.gpus = math.ceil(r.gpu_milli / 1000)
        self.created = now
        self.node: NodeRecord | None = None  # None: pending or on ECI (see bound)
        self.bound = ""  # node name, "" while pending
        self.started = math.inf
        self.waited = -1.0  # pending time, set at the first start
        self.tol_eci = False
        # the unit of its policy its node is in while bound, the count it adds to (``bind``)
        self.unit: int | None = None
        self.balloon = balloon
        self.ordinal = pod.ordinal  # a StatefulSet pod's, for decide (fixed for its life)
        # on ECI because no ECS node had room (``Decision.no_room``), not by the policy's max
        self.no_room = False
        # of those: the planner's break-even (``demand.new_node_could_pay``) judged ECI cheaper
        # than any new ECS node for its expected remaining run when it went there
        self.by_price = False
        self.demand = (predictive.CPU, 0)  # what this pod adds to its class's demand now
        # the node groups whose nodes it fits, cheapest first (``Scheduler.fitting``: selector,
        # affinity and tolerations, which stay with the pod for its life)
        self.fits: tuple[str, ...] = ()
        # A Job's pod evicted after running a while (``eviction.lost_work``): its end is ``late``
        # seconds after the trace's, and its next ``redo`` seconds of running are that work again
        self.late = 0.0
        self.redo = 0.0


class NodeRecord:
    __slots__ = ("alloc", "cpu", "gpu", "group", "mem", "members", "name", "node", "pods")

    def __init__(self, node: Node, group: str) -> None:
        a = node.allocatable
        self.name = node.name
        self.node = node
        self.group = group
        self.cpu, self.mem, self.gpu, self.pods = a.cpu_milli, a.memory, a.gpu_milli, a.pods
        self.alloc = (a.cpu_milli, a.memory, a.gpu_milli)  # what ``scoring.score`` reads
        self.members: dict[str, PodRecord] = {}


class Scheduler:
    """Pods and nodes of one replay, and the scheduler's decisions about them."""

    def __init__(
        self,
        *,
        clock: Clock,
        groups: Mapping[str, NodeGroup],
        settings: PlannerSettings,
        timing: Timing,
        policies: tuple[ResourcePolicy, ...],
        eci: bool,
        preempt: bool,
        billing: Billing,
        rng: random.Random,
        request_plan: Callable[[bool], None],
        scoring: Scoring | None = STOCK,
    ) -> None:
        """``request_plan(react)``: ask for an autoscaler pass (``react``: after the reaction
        delay, else at the next loop).  ``scoring``: kube-scheduler's resource scores among the
        nodes that fit (``autoscaler.replay.scoring``); None: the first that fits."""
        self.scoring = scoring
        self.clock = clock
        self.groups = groups
        self.settings = settings
        self.timing = timing
        self.eci = eci
        self.preemption = preempt
        self.billing = billing
        self.rng = rng
        self.request_plan = request_plan
        # Cheapest group first: the scheduler-side tie-break between accepted nodes.
        self.group_order = sorted(groups, key=lambda n: (groups[n].price_per_hour, n))
        self.templates = {
            n: g.template(overhead=settings.daemonset_overhead) for n, g in groups.items()
        }
        self.eci_node = Node(
            name=ECI_NODE,
            labels={"type": "virtual-kubelet"},
            taints=(ECI_TAINT,),
            allocatable=Resources(10**9, 10**18, 10**9, 10**9, 10**18),
            kind=NodeKind.ECI,
        )
        self.state = ClusterState(nodes=[self.eci_node] if eci else [], policies=policies)
        self.nodes: dict[str, NodeRecord] = {}
        # The planner's per-node usage, kept across passes (``PlannerMemo.usage``): an entry
        # goes whenever a pod binds to or leaves its node, or the node comes or goes.
        self.usage: dict[str, Usage] = {}
        self.by_group: dict[str, list[NodeRecord]] = {g: [] for g in self.group_order}
        self.ecs_cpu = self.ecs_gpu = 0  # allocatable of the Ready nodes, summed
        self.members_changed = 0  # counts nodes turning Ready and going (membership versions)
        self.pods: dict[str, PodRecord] = {}
        self.pending: dict[str, PodRecord] = {}
        self.counts: dict[tuple[WorkloadKey, str], list[int]] = {}
        self.unit_cache: dict[tuple[str, str], int | None] = {}
        self.fit_cache: dict[tuple[Any, ...], tuple[str, ...]] = {}
        # ``policy_for`` of a pod that is not a placeholder: its namespace and labels decide
        self.policy_cache: dict[tuple[str, frozenset[tuple[str, str]]], ResourcePolicy | None] = {}
        # ``_by_price``'s groups, by policy and the groups the pod fits
        self.price_groups: dict[
            tuple[str, tuple[str, ...]], tuple[tuple[NodeGroup, Node], ...]
        ] = {}
        self.demand = dict.fromkeys(predictive.CLASSES, 0)  # class demand, milli-units
        self.pending_times: list[float] = []
        self.never_started = 0
        self.n_pods = 0
        self.unmanaged = 0
        self.decide_calls = 0
        self.evictions = 0
        self.moves = 0
        self.peak_nodes = 0
        self.live_cpu = 0
        self.live_gpu = 0
        self.n_ecs_pods = 0
        self.n_eci_pods = 0
        self.n_eci_movable = 0  # pods on ECI an eviction could move (autoscaler.eviction)
        self.rebalancing = False  # the variant moves pods back: room on ECS asks for a pass
        self.ecs_pod_s = 0.0
        self.eci_pod_s = 0.0
        self.eci_no_room_s = 0.0  # of eci_pod_s: pods the policy sent there for lack of room
        self.eci_by_price_s = 0.0  # of eci_no_room_s: those ECI was cheaper for (PodRecord)
        self.lost_s = 0.0  # pod-seconds of work Job pods lost to evictions (run again)

    # -- pods -------------------------------------------------------------------------------------
    def new_pod(self, uid: str, wl: WorkloadKey, name: str, template: Template) -> PodRecord:
        """A pod as the API server would hold it after admission (the webhook's toleration)."""
        now = self.clock.now
        r = template.requests
        balloon = is_balloon(wl)
        policy: ResourcePolicy | None = None
        if not balloon:
            # only its namespace and labels count (``_policy``)
            key = (wl.namespace, frozenset(template.labels.items()))
            if key in self.policy_cache:
                policy = self.policy_cache[key]
            else:
                policy = self.policy_cache[key] = self._policy(
                    uid, name, wl.namespace, template.labels
                )
        tol_eci = policy is not None and self.eci and policy.has_eci
        tolerations = admitted_tolerations(r, eci=bool(tol_eci))
        pod = Pod(
            uid=uid,
            name=name,
            namespace=wl.namespace,
            labels=template.labels,
            annotations=template.annotations,
            requests=r,
            owner=owner_of(wl),
            created=created_at(now),
            workload=wl,
            tolerations=tolerations,
            priority=-1 if balloon else 0,
        )
        rec = PodRecord(uid, wl, pod, policy, now, balloon=balloon)
        rec.tol_eci = tol_eci
        rec.fits = self.fitting(pod)
        if rec.key is not None and rec.key not in self.counts:
            assert policy is not None
            self.counts[rec.key] = [0] * len(policy.units)
        self.pods[uid] = rec
        if not rec.balloon:
            self.n_pods += 1
            self.unmanaged += policy is None
        self.live_cpu += r.cpu_milli
        self.live_gpu += r.gpu_milli
        self._redemand(rec, None)
        self.state.upsert_pod(rec.pod)
        return rec

    def _redemand(self, rec: PodRecord, on: NodeKind | None) -> None:
        """Keep the class demand of ``predictive.class_demand_of`` (the controller's rule)."""
        cls, old = rec.demand
        self.demand[cls] -= old
        rec.demand = predictive.class_demand_of(rec.pod.requests, on=on, policy=rec.policy)
        self.demand[rec.demand[0]] += rec.demand[1]

    def schedule(self, rec: PodRecord) -> None:
        if not self.place(rec):
            self.pending[rec.uid] = rec
            self.request_plan(True)

    def delete(self, uid: str) -> PodRecord | None:
        """The pod is deleted; returns it (``None``: unknown, a no-op as in the API)."""
        rec = self.pods.pop(uid, None)
        if rec is None:
            return None
        self.unbind(rec)
        self.pending.pop(uid, None)
        if rec.waited < 0 and not rec.balloon:
            self.never_started += 1
            self.pending_times.append(self.clock.now - rec.created)
        self.live_cpu -= rec.req[0]
        self.live_gpu -= rec.req[2]
        cls, amount = rec.demand
        self.demand[cls] -= amount
        rec.demand = (cls, 0)
        self.state.remove_pod(uid)
        if rec.key is not None and rec.wl.kind == "Pod":
            self.counts.pop(rec.key, None)  # a bare pod is its own workload: forget its counts
        return rec

    def retry(self) -> None:
        if not self.pending:
            return
        for uid, rec in list(self.pending.items()):
            if self.place(rec):
                del self.pending[uid]

    # -- placement (the scheduler's part, the policy's decision) ---------------------------------
    def fitting(self, pod: Pod) -> tuple[str, ...]:
        """The node groups, cheapest first, whose nodes ``pod`` fits (``can_hold`` on the
        group's template).  Pods that match nodes the same way (selector, affinity,
        tolerations) share the answer: an openb list has a workload per pod, but two or three
        ways to match."""
        key = (tuple(pod.node_selector.items()), pod.required_affinity, pod.tolerations)
        fits = self.fit_cache.get(key)
        if fits is None:
            fits = self.fit_cache[key] = self._groups_fitting(pod)
        return fits

    def _groups_fitting(self, pod: Pod) -> tuple[str, ...]:
        """``fitting``'s answer worked out (the audit's too)."""
        return tuple(g for g in self.group_order if can_hold(pod, self.templates[g]))

    def _policy(
        self, uid: str, name: str, namespace: str, labels: Mapping[str, str]
    ) -> ResourcePolicy | None:
        """``policy_for`` of a pod that is not a placeholder, from a probe of what it reads
        (no owner, no annotations: only the namespace and labels count); ``new_pod`` keeps it
        per namespace and labels, the audit works it out again."""
        probe = Pod(uid=uid, name=name, namespace=namespace, labels=labels)
        return placement.policy_for(self.state.policies, probe)

    def fits_group(self, rec: PodRecord, group: str) -> bool:
        return group in rec.fits

    def _score(self, rec: PodRecord, node: NodeRecord) -> int:
        """kube-scheduler's score of ``node`` for ``rec`` (0 for every node without a scoring)."""
        if self.scoring is None:
            return 0
        return score(
            self.scoring, free=(node.cpu, node.mem, node.gpu), alloc=node.alloc, req=rec.req
        )

    def _best(self, rec: PodRecord, nodes: Iterable[NodeRecord]) -> tuple[NodeRecord, int] | None:
        """kube-scheduler's pick among ``nodes``, with its score: the best score of those that
        fit (the first of equals), or the first that fits without a scoring."""
        cpu, mem, gpu = rec.req
        scoring = self.scoring
        best = None
        for node in nodes:
            if node.cpu >= cpu and node.mem >= mem and node.gpu >= gpu and node.pods >= 1:
                if scoring is None:
                    return node, 0
                value = score(
                    scoring, free=(node.cpu, node.mem, node.gpu), alloc=node.alloc, req=rec.req
                )
                if best is None or value > best[1]:
                    best = node, value
        return best

    def candidates(self, rec: PodRecord) -> list[NodeRecord]:
        return [node for node, _ in self._candidates(rec)]

    def _candidates(self, rec: PodRecord) -> list[tuple[NodeRecord, int]]:
        """The nodes kube-scheduler would offer the extender, with their scores (nothing changes
        between the offer and the bind, so the pick among the accepted ones reuses them): the
        best of each group, whose nodes are alike (the template's labels), and every trace node
        that fits, each with its own labels (a policy unit may select some of them)."""
        found = []
        for group in rec.fits:
            picked = self._best(rec, self.by_group[group])
            if picked is not None:
                found.append(picked)
        for node in self.by_group.get(TRACE_GROUP, ()):
            if can_hold(rec.pod, node.node):
                cpu, mem, gpu = rec.req
                if node.cpu >= cpu and node.mem >= mem and node.gpu >= gpu and node.pods >= 1:
                    found.append((node, self._score(rec, node)))
        return found

    def place(self, rec: PodRecord) -> bool:
        ecs = self._candidates(rec)
        policy = rec.policy
        if policy is None:
            if not ecs:
                return self._preempt(rec)
            self.bind(rec, _top(ecs))
            return True
        offered = [n.node for n, _ in ecs]
        if rec.tol_eci:
            offered.append(self.eci_node)
        assert rec.key is not None
        self.decide_calls += 1
        decision = placement.decide(
            policy, counts=self.counts[rec.key], candidates=offered, ordinal=rec.ordinal
        )
        if not decision.placed:
            return not ecs and self._preempt(rec)
        chosen = decision.accepted[0]
        if chosen == ECI_NODE:
            rec.no_room = decision.no_room
            rec.by_price = decision.no_room and self._by_price(rec)
            self.bind(rec, None)
        else:  # the extender's unit; kube-scheduler's scores pick among its nodes
            accepted = set(decision.accepted)  # in the order offered
            self.bind(rec, _top([(n, v) for n, v in ecs if n.name in accepted]))
        return True

    def _by_price(self, rec: PodRecord) -> bool:
        """Whether no new node of a group ``rec``'s policy may use could make it cheaper than
        ECI over its expected remaining run (the planner's break-even and expectation:
        ``demand.new_node_could_pay``, ``demand.remaining`` with the planner's ``outlived``)."""
        policy = rec.policy
        assert policy is not None
        now, horizon = self.clock.now, self.settings.forecast_horizon
        left = remaining_in(self.state, rec.pod, now=now, horizon=horizon, outlived=horizon)
        key = (policy.key, rec.fits)
        groups = self.price_groups.get(key)
        if groups is None:
            groups = self.price_groups[key] = tuple(
                (self.groups[g], t)
                for g in rec.fits
                for t in [self.templates[g]]
                if any(u.resource is NodeKind.ECS and u.contains(t) for u in policy.units)
            )
        return not new_node_could_pay(rec.pod, groups, settings=self.settings, left=left, now=now)

    def _preempt(self, rec: PodRecord) -> bool:
        """Evict one lower-priority placeholder whose node then fits the pod, then bind there."""
        if rec.balloon or not self.preemption:
            return False
        cpu, mem, gpu = rec.req
        for group in rec.fits:
            for node in self.by_group[group]:
                for other in node.members.values():
                    if not other.balloon:
                        continue
                    c, m, g = other.req
                    if node.cpu + c >= cpu and node.mem + m >= mem and node.gpu + g >= gpu:
                        self.unbind(other)
                        self.pending[other.uid] = other
                        self.request_plan(True)
                        return self.place(rec)
        return False

    def _unit(self, policy: ResourcePolicy, node: Node) -> int | None:
        """``policy.unit_of(node)``, kept per group (its nodes carry the template's labels), per
        node for ECI and the trace's nodes (each has its own labels)."""
        group = node.labels.get(self.settings.node_group_label, node.name)
        key = (
            policy.key,
            node.name if node.kind is NodeKind.ECI or group == TRACE_GROUP else group,
        )
        if key not in self.unit_cache:
            self.unit_cache[key] = policy.unit_of(node)
        return self.unit_cache[key]

    def _count(self, rec: PodRecord, target: Node) -> None:
        """Count ``rec``, bound to ``target``, in its policy's unit there; ``_uncount`` takes
        it off the same unit (kept in ``rec.unit``) when it leaves."""
        if rec.policy is not None:
            unit = rec.unit = self._unit(rec.policy, target)
            if unit is not None:
                assert rec.key is not None
                self.counts[rec.key][unit] += 1

    def _uncount(self, rec: PodRecord) -> None:
        if rec.unit is not None:
            assert rec.key is not None
            self.counts[rec.key][rec.unit] -= 1
            rec.unit = None

    def bind(self, rec: PodRecord, node: NodeRecord | None) -> None:
        now = self.clock.now
        if node is None:
            delay = self.timing.eci_start_delay
            if self.timing.eci_start_jitter > 0:
                delay += self.rng.random() * self.timing.eci_start_jitter
            rec.bound = ECI_NODE
            target = self.eci_node
            self.usage.pop(ECI_NODE, None)
            self.n_eci_pods += 1
            self.n_eci_movable += move_blocker(rec.pod) is None
        else:
            cpu, mem, gpu = rec.req
            node.cpu -= cpu
            node.mem -= mem
            node.gpu -= gpu
            node.pods -= 1
            node.members[rec.uid] = rec
            delay = self.timing.ecs_pod_start_delay
            rec.bound = node.name
            target = node.node
            self.usage.pop(node.name, None)
            self.n_ecs_pods += 1
            if not rec.balloon:
                self.billing.pod_on_node(node.name, rec.pod.requests, 1, now=now)
        rec.node = node
        rec.started = now + delay
        if rec.waited < 0:
            rec.waited = rec.started - rec.created
            if not rec.balloon:
                self.pending_times.append(rec.waited)
        self._count(rec, target)
        rec.pod = rec.pod.placed(rec.bound, "Running")
        if node is None:
            # Waiting and on ECS count alike in the rule; only a move to or from ECI can change
            # a pod's demand (check() holds the kept demand to the rule after every step).
            self._redemand(rec, NodeKind.ECI)
        self.state.upsert_pod(rec.pod)
        if node is None:
            # An ECI pod may belong on ECS (cost model): the next loop looks at it.
            self.request_plan(False)

    def unbind(self, rec: PodRecord) -> None:
        if not rec.bound:
            return
        now = self.clock.now
        ran = max(0.0, now - rec.started)
        node = rec.node
        self.usage.pop(rec.bound, None)
        if node is None:
            self.n_eci_pods -= 1
            self.n_eci_movable -= move_blocker(rec.pod) is None
            if ran > 0 and not rec.balloon:
                again = min(ran, rec.redo)
                rec.redo -= again
                self.billing.eci_pod(rec.pod.requests, started=rec.started, ended=now, redo=again)
                self.eci_pod_s += ran
                if rec.no_room:
                    self.eci_no_room_s += ran
                    if rec.by_price:
                        self.eci_by_price_s += ran
        else:
            self.n_ecs_pods -= 1
            cpu, mem, gpu = rec.req
            node.cpu += cpu
            node.mem += mem
            node.gpu += gpu
            node.pods += 1
            del node.members[rec.uid]
            if not rec.balloon:
                self.ecs_pod_s += ran
                self.billing.pod_on_node(node.name, rec.pod.requests, -1, now=now)
                if rec.redo > 0 and ran > 0:
                    again = min(ran, rec.redo)
                    rec.redo -= again
                    self.billing.redone_on_node(node.name, rec.pod.requests, again)
            self._room_on_ecs()
        self._uncount(rec)
        rec.node = None
        rec.bound = ""
        rec.started = math.inf
        if rec.uid in self.pods:  # evicted, not deleted: pending again
            rec.pod = rec.pod.placed("", "Pending")
            if node is None:
                self._redemand(rec, None)
            self.state.upsert_pod(rec.pod)

    # -- nodes ------------------------------------------------------------------------------------
    def node_ready(self, node: Node) -> None:
        group = node.labels.get(self.settings.node_group_label, "")
        rec = NodeRecord(node, group)
        self.usage.pop(node.name, None)
        self.nodes[node.name] = rec
        self.by_group.setdefault(group, []).append(rec)
        self.ecs_cpu += node.allocatable.cpu_milli
        self.ecs_gpu += node.allocatable.gpu_milli
        self.members_changed += 1
        self.state.upsert_node(node)
        self.peak_nodes = max(self.peak_nodes, len(self.nodes))
        self.billing.node_ready(node.name, now=self.clock.now)
        self._room_on_ecs()

    def _room_on_ecs(self) -> None:
        """ECS room appeared: with pods on ECI that could move there, the next loop looks."""
        if self.rebalancing and self.n_eci_movable > 0:
            self.request_plan(False)

    def remove_node(self, name: str) -> None:
        """The node is gone: its pods are evicted and placed again (or wait)."""
        rec = self.nodes.pop(name)
        self.by_group[rec.group].remove(rec)
        self.ecs_cpu -= rec.node.allocatable.cpu_milli
        self.ecs_gpu -= rec.node.allocatable.gpu_milli
        self.members_changed += 1
        evicted = list(rec.members.values())
        for pod in evicted:
            self._evict(pod)
            if not pod.balloon:
                self.evictions += 1
                self.billing.restarted()
        self.state.remove_node(name)
        self.usage.pop(name, None)
        self.billing.node_removed(name, rec.group, now=self.clock.now)
        for pod in evicted:
            if not self.place(pod):
                self.pending[pod.uid] = pod
        if evicted:
            self.request_plan(True)

    def _evict(self, rec: PodRecord) -> None:
        """Unbind ``rec``, evicted: a Job's replacement (``eviction.lost_work``) is a new pod
        that runs again the work lost, so it ends that much later than the trace says."""
        now = self.clock.now
        lost = lost_work(rec.pod, ran=now - rec.started)
        self.unbind(rec)
        if lost > 0 and not rec.balloon:
            rec.late += lost
            rec.redo += lost
            self.lost_s += lost
            rec.pod = dataclasses.replace(rec.pod, created=created_at(now))
            self.state.upsert_pod(rec.pod)

    def move(self, uid: str) -> bool:
        """Rebalance evicted the pod from ECI: its controller's replacement is placed again
        (same uid; same lifetime for a service's replica: the trace deletes it when it would
        have ended; a Job's runs again the work it lost: ``_evict``)."""
        rec = self.pods.get(uid)
        if rec is None or rec.bound != ECI_NODE:
            return False
        self._evict(rec)
        self.moves += 1
        self.billing.restarted()
        self.schedule(rec)
        return True

    # -- the end ----------------------------------------------------------------------------------
    def finish(self) -> None:
        """Stop every pod at the end of the replay (pods never started are reported)."""
        end = self.clock.now
        for rec in list(self.pods.values()):
            if rec.bound:
                self.unbind(rec)
            if rec.waited < 0 and not rec.balloon:
                self.never_started += 1
                self.pending_times.append(end - rec.created)

    def check(self) -> None:
        """Invariants: no pod on two nodes, no node over its allocatable, the unit counts are the
        extender's (``extender.policy.unit_counts``), the class demand is the controller's, each
        pod's kept facts (groups it fits, policy) those worked out afresh."""
        seen: set[str] = set()
        for node in self.nodes.values():
            a = node.node.allocatable
            used = [0, 0, 0, 0]
            for uid, rec in node.members.items():
                assert uid not in seen, f"pod {uid} on two nodes"
                seen.add(uid)
                _require(rec.node is node and rec.bound == node.name, f"pod {uid} misfiled")
                used[0] += rec.req[0]
                used[1] += rec.req[1]
                used[2] += rec.req[2]
                used[3] += 1
            _require(used[0] <= a.cpu_milli and used[1] <= a.memory, f"{node.name} over capacity")
            _require(used[2] <= a.gpu_milli and used[3] <= a.pods, f"{node.name} over capacity")
            assert (node.cpu, node.mem, node.gpu, node.pods) == (
                a.cpu_milli - used[0],
                a.memory - used[1],
                a.gpu_milli - used[2],
                a.pods - used[3],
            )
        for uid, rec in self.pending.items():
            _require(not rec.bound and uid not in seen, f"pending pod {uid} is bound")
        for rec in self.pods.values():
            assert rec.bound or rec.uid in self.pending, f"pod {rec.uid} neither bound nor pending"
            pod = rec.pod
            fits = self._groups_fitting(pod)
            _require(rec.fits == fits, f"pod {rec.uid}: fits groups {rec.fits}, not {fits}")
            policy = (
                None if rec.balloon else self._policy(rec.uid, pod.name, pod.namespace, pod.labels)
            )
            _require(rec.policy is policy, f"pod {rec.uid}: kept policy is not policy_for's")
            unit = None
            if policy is not None and rec.bound:
                unit = policy.unit_of(self.eci_node if rec.node is None else rec.node.node)
            _require(rec.unit == unit, f"pod {rec.uid}: kept unit {rec.unit}, not {unit}")
        by_key: dict[tuple[WorkloadKey, str], list[PodRecord]] = {}
        for rec in self.pods.values():
            if rec.key is not None:
                by_key.setdefault(rec.key, []).append(rec)
        for key, counts in self.counts.items():
            pods = by_key.get(key, [])
            if not pods:
                _require(not any(counts), f"{key}: unit counts {counts} without pods")
                continue
            policy = pods[0].policy
            assert policy is not None
            theirs = placement.unit_counts(
                policy, pods=[r.pod for r in pods], nodes=self.state.nodes, reserved={}
            )
            _require(counts == theirs, f"{key}: unit counts {counts}, the extender's {theirs}")
        movable = sum(
            1 for r in self.pods.values() if r.bound == ECI_NODE and move_blocker(r.pod) is None
        )
        _require(movable == self.n_eci_movable, f"{self.n_eci_movable} movable pods on ECI kept")
        fresh = Context(self.state, [], self.settings)
        for name, kept in self.usage.items():
            _require(kept == fresh.usage(name), f"{name}: kept usage is stale")
        _require(
            (self.ecs_cpu, self.ecs_gpu)
            == (
                sum(n.node.allocatable.cpu_milli for n in self.nodes.values()),
                sum(n.node.allocatable.gpu_milli for n in self.nodes.values()),
            ),
            "ECS allocatable totals are stale",
        )
        total = dict.fromkeys(predictive.CLASSES, 0)
        for rec in self.pods.values():
            on = None
            if rec.bound:
                on = NodeKind.ECI if rec.node is None else NodeKind.ECS
            cls, amount = predictive.class_demand_of(rec.pod.requests, on=on, policy=rec.policy)
            total[cls] += amount
        _require(total == self.demand, f"class demand {self.demand}, the rule's {total}")


def _top(scored: list[tuple[NodeRecord, int]]) -> NodeRecord:
    """The first node of the best score (kube-scheduler's pick; the replay's tie-break)."""
    best, best_score = scored[0]
    for node, value in scored[1:]:
        if value > best_score:
            best, best_score = node, value
    return best


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)
