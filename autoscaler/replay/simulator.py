"""The discrete-event replay: a trace, a scenario and one variant in, costs and latencies out.

Virtual time only.  Trace events are consumed in order and merged with a heap of the simulator's
own events (a node becoming Ready, an autoscaler pass, a retry of pending pods).  The decisions
come from the modules the live services use, called through their modules so that a test can
watch them:

- placement: ``extender.policy.policy_for`` / ``extender.policy.decide`` for every pod placement,
  with per-workload unit counts kept incrementally (the extender's ``unit_counts`` walks the
  workload's pods; the replay knows every bind and unbind, so it keeps the same counts as it goes);
- sizing: ``autoscaler.planner.plan``, once per autoscaler pass (not per event);
- scale-in order of replicated workloads: ``extender.deletion_cost.desired_costs``, ranked the way
  the ReplicaSet controller ranks victims (unbound, then not yet started, then lowest deletion cost,
  then most recently started, then newest);
- node groups: ``autoscaler.providers.simulated.SimulatedProvider`` in virtual time.

What the simulator plays itself is kube-scheduler's part: it offers the policy, for each node
group, the oldest Ready node the pod fits on (resources, taints, node selector) plus the ECI
virtual node when the pod tolerates it (the webhook adds that toleration to pods whose policy has
an ECI unit; GPU pods tolerate ``nvidia.com/gpu`` as the ExtendedResourceToleration admission
plugin arranges), binds to the accepted node of the cheapest group, and retries pending pods when
capacity appears.  For the headroom baseline it preempts placeholder pods the way the
cluster-autoscaler "overprovisioning" pattern relies on.

Billing: an ECS node from the moment it is asked for until it is removed (boot time is paid); an
ECI pod from the moment it starts until it is deleted, per vCPU-second, GiB-second and whole GPU.
Pending time of a pod: from creation to its first start (a pod deleted before it ever started
counts its whole life and is reported as never started).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import replace

import numpy as np

import autoscaler.forecast as forecasting
import autoscaler.planner as planner
import autoscaler.predictive as predictive
from autoscaler.costs import GIB
from autoscaler.nodegroup import NodeGroup
from autoscaler.providers.base import ProviderError
from autoscaler.providers.simulated import SimulatedProvider
from extender import deletion_cost
from extender import policy as placement
from extender.model import Node, NodeKind, Pod, Resources, Taint, Toleration, WorkloadKey
from extender.policy import ResourcePolicy
from extender.selectors import fits_node_selector, tolerates_taints
from extender.snapshot import ClusterState

from .results import Action, Result, Timeline, Variant
from .scenario import Scenario
from .trace import NodeAdded, NodeRemoved, PodCreated, PodDeleted, ReplicasChanged, Template, Trace

__all__ = ["ECI_NODE", "Action", "Result", "Simulation", "Timeline", "Variant", "simulate"]

ECI_NODE = "virtual-kubelet-eci"
ECI_TAINT = Taint("virtual-kubelet.io/provider", "alibabacloud", "NoSchedule")
GPU_TOLERATION = Toleration(key="nvidia.com/gpu", operator="Exists")
ECI_TOLERATION = Toleration(key=ECI_TAINT.key, operator="Exists")
BALLOON = WorkloadKey("kube-system", "Deployment", "overprovisioning")
_TRACE_GROUP = "(trace)"

_READY, _PLAN, _RETRY = 0, 1, 2


class _Pod:
    __slots__ = (
        "balloon",
        "bound",
        "created",
        "gpus",
        "key",
        "node",
        "pod",
        "policy",
        "req",
        "started",
        "tol_eci",
        "uid",
        "waited",
        "wl",
    )

    def __init__(
        self, uid: str, wl: WorkloadKey, pod: Pod, policy: ResourcePolicy | None, now: float
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
        self.node: _Node | None = None  # None: pending or on ECI (see bound)
        self.bound = ""  # node name, "" while pending
        self.started = math.inf
        self.waited = -1.0  # pending time, set at the first start
        self.tol_eci = False
        self.balloon = wl == BALLOON


class _Node:
    __slots__ = ("cpu", "gpu", "group", "mem", "members", "name", "node", "pods")

    def __init__(self, node: Node, group: str) -> None:
        a = node.allocatable
        self.name = node.name
        self.node = node
        self.group = group
        self.cpu, self.mem, self.gpu, self.pods = a.cpu_milli, a.memory, a.gpu_milli, a.pods
        self.members: dict[str, _Pod] = {}


class Simulation:
    """One replay of one variant.  ``audit=True`` checks the invariants after every step (tests)."""

    def __init__(
        self,
        trace: Trace,
        scenario: Scenario,
        variant: Variant,
        *,
        progress: Callable[[int], None] | None = None,
        audit: bool = False,
    ) -> None:
        self.trace = trace
        self.scenario = scenario
        self.variant = variant
        self.settings = scenario.autoscaler.settings
        self.timing = scenario.timing
        self.progress = progress
        self.audit = audit
        self.rng = random.Random(scenario.seed)
        groups = scenario.autoscaler.groups
        if variant.static:
            groups = tuple(
                replace(g, min_size=n, max_size=n, desired=n)
                for g in groups
                if (n := variant.static.get(g.name, 0)) > 0
            )
        elif not variant.autoscaling:
            groups = ()
        self.groups: dict[str, NodeGroup] = {g.name: g for g in groups}
        # Cheapest group first: the scheduler-side tie-break between accepted nodes.
        self.group_order = sorted(self.groups, key=lambda n: (self.groups[n].price_per_hour, n))
        self.now = 0.0
        self.provider = SimulatedProvider(
            groups,
            clock=lambda: self.now,
            label=self.settings.node_group_label,
            overhead=self.settings.daemonset_overhead,
        )
        self.eci_node = Node(
            name=ECI_NODE,
            labels={"type": "virtual-kubelet"},
            taints=(ECI_TAINT,),
            allocatable=Resources(10**9, 10**18, 10**9, 10**9, 10**18),
            kind=NodeKind.ECI,
        )
        self.state = ClusterState(
            nodes=[self.eci_node] if variant.eci else [], policies=variant.policies
        )
        self.nodes: dict[str, _Node] = {}
        self.by_group: dict[str, list[_Node]] = {g: [] for g in self.group_order}
        self.pods: dict[str, _Pod] = {}
        self.pending: dict[str, _Pod] = {}
        self.counts: dict[tuple[WorkloadKey, str], list[int]] = {}
        self.unit_cache: dict[tuple[str, str], int | None] = {}
        self.fit_cache: dict[tuple[WorkloadKey, str], bool] = {}
        self.policy_cache: dict[
            tuple[WorkloadKey, frozenset[tuple[str, str]]], ResourcePolicy | None
        ] = {}
        self.replicas: dict[WorkloadKey, tuple[Template, dict[str, _Pod]]] = {}
        self.serial = 0
        self.heap: list[tuple[float, int, int, str]] = []
        self.seq = 0
        self.plan_at = math.inf
        self.unneeded: dict[str, float] = {}
        self.last_up: dict[str, float] = {}
        self.last_down: dict[str, float] = {}
        self.node_cost_intervals: list[tuple[float, float, float]] = []  # start, end, CNY/s
        self.node_requested: dict[str, float] = {}
        self.eci_intervals: list[tuple[float, float, float]] = []
        self.node_seconds: dict[str, float] = dict.fromkeys(self.groups, 0.0)
        self.eci_vcpu_s = self.eci_gib_s = self.eci_gpu_s = 0.0
        self.ecs_pod_s = self.eci_pod_s = 0.0
        self.trace_prices: dict[str, float] = {}
        self.pending_times: list[float] = []
        self.never_started = 0
        self.n_pods = 0
        self.actions: list[Action] = []
        self.planner_calls = 0
        self.decide_calls = 0
        self.evictions = 0
        self.peak_nodes = 0
        self.live_cpu = 0
        self.live_gpu = 0
        self.n_ecs_pods = 0
        self.n_eci_pods = 0
        self.samples: list[tuple[float, ...]] = []
        self.next_sample = 0.0
        self.end = trace.end
        # Predictive sizing: one forecast per resource class (autoscaler.predictive) of live pods,
        # wherever they run: requested cpu cores of pods without GPUs (the demand general-purpose
        # groups can hold) and requested GPUs of GPU pods (GPU groups), sampled every
        # forecast.step, refitted every forecast.refit on the last forecast.history, as the
        # controller records and refits them.
        self.live_milli = dict.fromkeys(predictive.CLASSES, 0)
        self.fc_t: list[float] = []
        self.fc_v: dict[str, list[float]] = {cls: [] for cls in predictive.CLASSES}
        self.fc_next_sample = 0.0
        self.fc_next_refit = 0.0
        self.fc: dict[str, forecasting.Forecast] = {}
        self.forecast_fits = 0
        self.predictive = (
            variant.forecast
            and scenario.forecast.enabled
            and variant.autoscaling
            and bool(self.groups)
        )
        for node in self.provider.nodes(now=0.0):
            self._node_ready(node, requested=0.0)
        for group in variant.headroom_groups:
            for _ in range(variant.headroom if group in self.groups else 0):
                self._create_balloon(group)

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> Result:
        events = self.trace.events
        n = len(events)
        heap = self.heap
        i = 0
        end = self.end
        step = max(1, n // 200)
        if self.pending or self.groups:
            self._request_plan(0.0)
        while True:
            if heap and heap[0][0] <= end and (i >= n or heap[0][0] <= events[i].t):
                t, _, kind, _ = heapq.heappop(heap)
                self._advance(t)
                if kind == _PLAN:
                    if t == self.plan_at:
                        self.plan_at = math.inf
                        self._autoscale()
                elif kind == _READY:
                    for node in self.provider.nodes(now=t):
                        if node.name not in self.nodes and node.name in self.node_requested:
                            self._node_ready(node, requested=self.node_requested[node.name])
                    self._retry()
                elif kind == _RETRY:
                    self._retry()
            elif i < n:
                ev = events[i]
                i += 1
                self._advance(ev.t)
                if isinstance(ev, PodCreated):
                    self._pod_created(ev)
                elif isinstance(ev, PodDeleted):
                    self._pod_deleted(ev.uid)
                elif isinstance(ev, ReplicasChanged):
                    self._replicas(ev)
                elif isinstance(ev, NodeAdded):
                    self._trace_node_added(ev)
                else:
                    assert isinstance(ev, NodeRemoved)
                    self._trace_node_removed(ev)
                if self.progress is not None and i % step == 0:
                    self.progress(step)
            else:
                break
            if self.audit:
                self.check()
        self._advance(end)
        return self._finish()

    def _push(self, t: float, kind: int, arg: str = "") -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, arg))

    def _advance(self, t: float) -> None:
        if t < self.now:
            raise AssertionError(f"virtual time went backwards: {t} < {self.now}")
        period = self.scenario.sample_period
        while self.next_sample <= t and self.next_sample <= self.end:
            self._sample(self.next_sample)
            self.next_sample += period
        if self.predictive:
            step = self.scenario.forecast.step
            while self.fc_next_sample <= t:
                self.fc_t.append(self.fc_next_sample)
                for cls, series in self.fc_v.items():
                    series.append(self.live_milli[cls] / 1000)
                self.fc_next_sample += step
        self.now = t

    def _sample(self, t: float) -> None:
        cpu = gpu = 0
        for node in self.nodes.values():
            a = node.node.allocatable
            cpu += a.cpu_milli
            gpu += a.gpu_milli
        self.samples.append(
            (
                t,
                self.live_cpu / 1000,
                self.live_gpu / 1000,
                cpu / 1000,
                gpu / 1000,
                len(self.nodes),
                self.n_ecs_pods,
                self.n_eci_pods,
                len(self.pending),
            )
        )

    # -- pods --------------------------------------------------------------------------------------
    def _new_pod(self, uid: str, wl: WorkloadKey, name: str, template: Template) -> _Pod:
        r = template.requests
        key = (wl, frozenset(template.labels.items()))
        if key in self.policy_cache:
            policy = self.policy_cache[key]
        else:
            probe = Pod(uid=uid, name=name, namespace=wl.namespace, labels=template.labels)
            policy = self.policy_cache[key] = placement.policy_for(self.state.policies, probe)
        tolerations: tuple[Toleration, ...] = ()
        if r.gpu_milli:
            tolerations += (GPU_TOLERATION,)
        tol_eci = policy is not None and policy.has_eci and self.variant.eci
        if tol_eci:
            tolerations += (ECI_TOLERATION,)
        pod = Pod(
            uid=uid,
            name=name,
            namespace=wl.namespace,
            labels=template.labels,
            annotations=template.annotations,
            requests=r,
            created=self.now,
            workload=wl,
            tolerations=tolerations,
            priority=-1 if wl == BALLOON else 0,
        )
        rec = _Pod(uid, wl, pod, policy, self.now)
        rec.tol_eci = tol_eci
        if rec.key is not None and rec.key not in self.counts:
            assert policy is not None
            self.counts[rec.key] = [0] * len(policy.units)
        self.pods[uid] = rec
        if not rec.balloon:
            self.n_pods += 1
        self.live_cpu += r.cpu_milli
        self.live_gpu += r.gpu_milli
        if not rec.balloon:
            cls, amount = predictive.demand_class(r)
            self.live_milli[cls] += amount
        self.state.upsert_pod(rec.pod)
        return rec

    def _create_balloon(self, name: str) -> None:
        group = self.groups[name]
        a = group.template(overhead=self.settings.daemonset_overhead).allocatable
        self.serial += 1
        uid = f"overprovisioning-{self.serial}"
        template = Template(
            Resources(a.cpu_milli, a.memory, 1, a.gpu_milli), {"app": "overprovisioning"}
        )
        rec = self._new_pod(uid, BALLOON, uid, template)
        self.pending[uid] = rec

    def _pod_created(self, ev: PodCreated) -> None:
        if ev.uid in self.pods:
            raise ValueError(f"trace: pod {ev.uid} created twice (t={ev.t})")
        rec = self._new_pod(ev.uid, ev.workload, ev.name, ev.template)
        self._schedule(rec)

    def _schedule(self, rec: _Pod) -> None:
        if not self._place(rec):
            self.pending[rec.uid] = rec
            self._request_plan(self._reaction())

    def _pod_deleted(self, uid: str) -> None:
        rec = self.pods.pop(uid, None)
        if rec is None:
            return  # deleting an unknown pod is a no-op, as in the API
        on_ecs = rec.node is not None
        self._unbind(rec)
        self.pending.pop(uid, None)
        if rec.waited < 0 and not rec.balloon:
            self.never_started += 1
            self.pending_times.append(self.now - rec.created)
        r = rec.pod.requests
        self.live_cpu -= r.cpu_milli
        self.live_gpu -= r.gpu_milli
        if not rec.balloon:
            cls, amount = predictive.demand_class(r)
            self.live_milli[cls] -= amount
        self.state.remove_pod(uid)
        if on_ecs:
            # Lower utilization may start a node's scale-down timer; pending pods may fit now.
            if self.pending:
                self._push(self.now, _RETRY)
            self._request_plan(self._tick())

    def _replicas(self, ev: ReplicasChanged) -> None:
        current = self.replicas.get(ev.workload)
        template = ev.template or (current[0] if current else None)
        if template is None:
            raise ValueError(
                f"trace: workload {ev.workload} changes replicas before its pod template is known "
                f"(t={ev.t})"
            )
        live = current[1] if current else {}
        self.replicas[ev.workload] = (template, live)
        while len(live) < ev.replicas:
            self.serial += 1
            name = f"{ev.workload.name}-{self.serial:x}"
            uid = f"{ev.workload.namespace}/{name}"
            rec = self._new_pod(uid, ev.workload, name, template)
            live[uid] = rec
            self._schedule(rec)
        if len(live) > ev.replicas:
            for rec in self._victims(list(live.values()), len(live) - ev.replicas):
                del live[rec.uid]
                self._pod_deleted(rec.uid)

    def _victims(self, pods: list[_Pod], k: int) -> list[_Pod]:
        """The ReplicaSet controller's choice of ``k`` pods to delete (``getPodsToDelete``)."""
        policy = pods[0].policy
        costs: dict[str, int] = {}
        if policy is not None:
            costs = deletion_cost.desired_costs(
                policy, pods=[p.pod for p in pods if p.bound], nodes=self.state.nodes
            )
        now = self.now

        def rank(p: _Pod) -> tuple[int, int, int, float, float]:
            return (
                1 if p.bound else 0,
                1 if p.started <= now else 0,
                costs.get(p.uid, 0),
                -p.started if p.started <= now else 0.0,
                -p.created,
            )

        return heapq.nsmallest(k, pods, key=rank)

    # -- placement (the scheduler's part, the policy's decision) ---------------------------------
    def _fits_group(self, rec: _Pod, group: str) -> bool:
        key = (rec.wl, group)
        ok = self.fit_cache.get(key)
        if ok is None:
            template = (
                self.groups[group].template(overhead=self.settings.daemonset_overhead)
                if group in self.groups
                else None
            )
            ok = (
                template is not None
                and tolerates_taints(rec.pod.tolerations, template.taints)
                and fits_node_selector(rec.pod, template)
            )
            self.fit_cache[key] = ok
        return ok

    def _first_fit(self, rec: _Pod, group: str) -> _Node | None:
        cpu, mem, gpu = rec.req
        for node in self.by_group.get(group, ()):
            if node.cpu >= cpu and node.mem >= mem and node.gpu >= gpu and node.pods >= 1:
                return node
        return None

    def _candidates(self, rec: _Pod) -> list[_Node]:
        found = []
        for group in self.group_order:
            if self._fits_group(rec, group):
                node = self._first_fit(rec, group)
                if node is not None:
                    found.append(node)
        for node in self.by_group.get(_TRACE_GROUP, ()):
            if tolerates_taints(rec.pod.tolerations, node.node.taints) and fits_node_selector(
                rec.pod, node.node
            ):
                cpu, mem, gpu = rec.req
                if node.cpu >= cpu and node.mem >= mem and node.gpu >= gpu and node.pods >= 1:
                    found.append(node)
                    break
        return found

    def _place(self, rec: _Pod) -> bool:
        ecs = self._candidates(rec)
        policy = rec.policy
        if policy is None:
            if not ecs:
                return self._preempt(rec)
            self._bind(rec, ecs[0])
            return True
        offered = [n.node for n in ecs]
        if rec.tol_eci:
            offered.append(self.eci_node)
        assert rec.key is not None
        self.decide_calls += 1
        decision = placement.decide(policy, counts=self.counts[rec.key], candidates=offered)
        if not decision.placed:
            return not ecs and self._preempt(rec)
        chosen = decision.accepted[0]
        if chosen == ECI_NODE:
            self._bind(rec, None)
        else:
            self._bind(rec, self.nodes[chosen])
        return True

    def _preempt(self, rec: _Pod) -> bool:
        """Evict one lower-priority placeholder whose node then fits the pod, then bind there."""
        if rec.balloon or self.variant.headroom == 0:
            return False
        cpu, mem, gpu = rec.req
        for group in self.group_order:
            if not self._fits_group(rec, group):
                continue
            for node in self.by_group[group]:
                for other in node.members.values():
                    if not other.balloon:
                        continue
                    c, m, g = other.req
                    if node.cpu + c >= cpu and node.mem + m >= mem and node.gpu + g >= gpu:
                        self._unbind(other)
                        self.pending[other.uid] = other
                        self._request_plan(self._reaction())
                        decision_ok = self._place(rec)
                        return decision_ok
        return False

    def _unit(self, policy: ResourcePolicy, node: Node) -> int | None:
        key = (
            policy.key,
            node.name
            if node.kind is NodeKind.ECI
            else node.labels.get(self.settings.node_group_label, node.name),
        )
        if key not in self.unit_cache:
            self.unit_cache[key] = policy.unit_of(node)
        return self.unit_cache[key]

    def _count(self, rec: _Pod, target: Node, delta: int) -> None:
        """Add ``delta`` to the count of the unit of ``rec``'s policy that ``target`` is in."""
        if rec.policy is not None:
            unit = self._unit(rec.policy, target)
            if unit is not None:
                assert rec.key is not None
                self.counts[rec.key][unit] += delta

    def _bind(self, rec: _Pod, node: _Node | None) -> None:
        now = self.now
        if node is None:
            delay = self.timing.eci_start_delay
            if self.timing.eci_start_jitter > 0:
                delay += self.rng.random() * self.timing.eci_start_jitter
            rec.bound = ECI_NODE
            target = self.eci_node
            self.n_eci_pods += 1
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
            self.n_ecs_pods += 1
        rec.node = node
        rec.started = now + delay
        if rec.waited < 0:
            rec.waited = rec.started - rec.created
            if not rec.balloon:
                self.pending_times.append(rec.waited)
        self._count(rec, target, 1)
        rec.pod = _moved(rec.pod, rec.bound, "Running")
        self.state.upsert_pod(rec.pod)
        if node is None:
            # An ECI pod may belong on ECS (cost model): the next loop looks at it.
            self._request_plan(self._tick())

    def _unbind(self, rec: _Pod) -> None:
        if not rec.bound:
            return
        now = self.now
        ran = max(0.0, now - rec.started)
        node = rec.node
        if node is None:
            self.n_eci_pods -= 1
            target = self.eci_node
            if ran > 0 and not rec.balloon:
                cpu, mem, _ = rec.req
                price = self.settings.eci_price
                vcpu_s = cpu / 1000 * ran
                gib_s = mem / GIB * ran
                gpu_s = rec.gpus * ran
                self.eci_vcpu_s += vcpu_s
                self.eci_gib_s += gib_s
                self.eci_gpu_s += gpu_s
                rate = (
                    cpu / 1000 * price.vcpu_second
                    + mem / GIB * price.gib_second
                    + rec.gpus * price.gpu_hour / 3600
                )
                self.eci_intervals.append((rec.started, now, rate))
                self.eci_pod_s += ran
        else:
            self.n_ecs_pods -= 1
            target = node.node
            cpu, mem, gpu = rec.req
            node.cpu += cpu
            node.mem += mem
            node.gpu += gpu
            node.pods += 1
            del node.members[rec.uid]
            if not rec.balloon:
                self.ecs_pod_s += ran
        self._count(rec, target, -1)
        rec.node = None
        rec.bound = ""
        rec.started = math.inf
        if rec.uid in self.pods:  # evicted, not deleted: pending again
            rec.pod = _moved(rec.pod, "", "Pending")
            self.state.upsert_pod(rec.pod)

    def _retry(self) -> None:
        if not self.pending:
            return
        for uid, rec in list(self.pending.items()):
            if self._place(rec):
                del self.pending[uid]

    # -- nodes -------------------------------------------------------------------------------------
    def _node_ready(self, node: Node, *, requested: float) -> None:
        group = node.labels.get(self.settings.node_group_label, "")
        rec = _Node(node, group)
        self.nodes[node.name] = rec
        self.by_group.setdefault(group, []).append(rec)
        self.node_requested[node.name] = requested
        self.state.upsert_node(node)
        self.peak_nodes = max(self.peak_nodes, len(self.nodes))

    def _node_removed(self, name: str) -> None:
        rec = self.nodes.pop(name)
        self.by_group[rec.group].remove(rec)
        evicted = list(rec.members.values())
        for pod in evicted:
            self._unbind(pod)
            self.evictions += not pod.balloon
        self.state.remove_node(name)
        requested = self.node_requested.pop(name)
        price = self._price(rec.group, name)
        self.node_cost_intervals.append((requested, self.now, price / 3600))
        self.node_seconds[rec.group] = self.node_seconds.get(rec.group, 0.0) + self.now - requested
        for pod in evicted:
            if not self._place(pod):
                self.pending[pod.uid] = pod
        if evicted:
            self._request_plan(self._reaction())

    def _price(self, group: str, name: str) -> float:
        if group == _TRACE_GROUP:
            return self.trace_prices.get(name, 0.0)
        return self.groups[group].price_per_hour

    def _trace_node_added(self, ev: NodeAdded) -> None:
        labels = {**ev.labels, self.settings.node_group_label: _TRACE_GROUP}
        node = Node(name=ev.name, labels=labels, allocatable=ev.allocatable, created=ev.t)
        self.trace_prices[ev.name] = ev.price_per_hour
        self._node_ready(node, requested=ev.t)
        self._retry()

    def _trace_node_removed(self, ev: NodeRemoved) -> None:
        if ev.name in self.nodes and self.nodes[ev.name].group == _TRACE_GROUP:
            self._node_removed(ev.name)

    # -- the autoscaler ----------------------------------------------------------------------------
    def _tick(self) -> float:
        period = self.timing.loop_period
        return (math.floor(self.now / period) + 1) * period

    def _reaction(self) -> float:
        delay = self.variant.reaction_delay
        return self._tick() if delay is None else self.now + delay

    def _request_plan(self, t: float) -> None:
        if not self.groups or not self.variant.autoscaling or self.variant.static:
            return
        if t < self.plan_at:
            self.plan_at = t
            self._push(t, _PLAN)

    def _group_states(self) -> list[planner.GroupState]:
        states = []
        for name, group in self.groups.items():
            status = self.provider.status(name, now=self.now)
            nodes = tuple(
                planner.GroupNode(i.id, self.node_requested.get(i.id, self.now))
                for i in status.instances
            )
            states.append(
                planner.GroupState(
                    group,
                    status.target,
                    nodes,
                    last_scale_up=self.last_up.get(name),
                    last_scale_down=self.last_down.get(name),
                )
            )
        return states

    def _refit(self) -> None:
        spec = self.scenario.forecast
        self.fc_next_refit = self.now + spec.refit
        n = max(0, len(self.fc_t) - int(spec.history / spec.step))
        self.fc = {}
        if len(self.fc_t) - n < 12:
            return  # under an hour of history
        boot = max((g.boot_time for g in self.groups.values()), default=0.0)
        horizon = spec.refit + boot + self.settings.forecast_horizon + spec.step
        ts = np.asarray(self.fc_t[n:], np.float64)
        for cls, series in self.fc_v.items():
            values = series[n:]
            if max(values) <= 0:
                continue  # nothing of this class to forecast
            self.forecast_fits += 1
            self.fc[cls] = forecasting.fit_forecast(
                ts, np.asarray(values, np.float64), horizon=horizon
            )

    def _autoscale(self) -> None:
        now = self.now
        if self.predictive and now >= self.fc_next_refit:
            self._refit()
        self.planner_calls += 1
        result = planner.plan(
            self.state,
            self._group_states(),
            forecast=self.fc or None,
            settings=self.settings,
            now=now,
            unneeded=self.unneeded,
        )
        self.unneeded = dict(result.unneeded)
        for up in result.scale_ups:
            before = {s.name for s in self.provider.nodes(now=math.inf)}
            try:
                self.provider.set_target(up.group, up.new_target, now=now)
            except ProviderError as err:  # the planner respects max sizes; report, go on
                self.actions.append(Action(now, up.group, "refused", 0, str(err)))
                continue
            boot = self.groups[up.group].boot_time
            added = [n for n in self.provider.nodes(now=math.inf) if n.name not in before]
            for node in added:
                self.node_requested[node.name] = now
            if added:
                self._push(now + boot, _READY)
                self.last_up[up.group] = now
                self.actions.append(Action(now, up.group, "scale-up", len(added), up.reason))
        downs: dict[str, list[str]] = {}
        for down in result.scale_downs:
            if down.node in self.nodes:
                downs.setdefault(down.group, []).append(down.node)
                self.actions.append(Action(now, down.group, "scale-down", 1, down.reason))
        for group, names in downs.items():
            self.provider.remove(group, names, now=now)
            for name in names:
                self._node_removed(name)
            self.last_down[group] = now
        # Come back when something the planner waits for is due: unneeded nodes, pods pending
        # for ECS capacity that is not on its way.
        # Unneeded nodes whose time is already up but that stayed (their pods cannot move) wait
        # for the next change instead of a pass every loop.
        wait = self.settings.scale_down_unneeded_time
        due = [since + wait for since in self.unneeded.values() if since + wait > now]
        if due:
            self._request_plan(max(min(due), self._tick()))
        # Pods still pending for ECS capacity that is not on its way: look again next loop if
        # this pass acted, else once a group's cooldown ends (a pass with nothing new to see
        # would decide the same; any change in the cluster asks for a pass anyway).
        waiting = any(rec.pod.key not in result.unschedulable for rec in self.pending.values())
        if waiting and self.provider.next_ready(now=now) is None:
            if result.scale_ups or result.scale_downs:
                self._request_plan(self._tick())
            else:
                ends = [
                    self.last_up[g] + self.groups[g].cooldown
                    for g in self.last_up
                    if self.last_up[g] + self.groups[g].cooldown > now
                ]
                if ends:
                    self._request_plan(max(min(ends), self._tick()))
        if self.fc:
            # Pre-provisioning needs passes even when nothing happens.
            self._request_plan(now + self.scenario.forecast.every)

    # -- the end -------------------------------------------------------------------------------------
    def check(self) -> None:
        """Invariants: no pod on two nodes, no node over its allocatable, counts match the pods."""
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

    def _finish(self) -> Result:
        end = self.end
        for rec in list(self.pods.values()):
            if rec.bound:
                self._unbind(rec)
            if rec.waited < 0 and not rec.balloon:
                self.never_started += 1
                self.pending_times.append(end - rec.created)
        for name, requested in self.node_requested.items():
            node = self.nodes.get(name)
            group = node.group if node is not None else self._booting_group(name)
            price = self._price(group, name)
            self.node_cost_intervals.append((requested, end, price / 3600))
            self.node_seconds[group] = self.node_seconds.get(group, 0.0) + end - requested
        ecs_cost = sum((e - s) * rate for s, e, rate in self.node_cost_intervals)
        eci_cost = sum((e - s) * rate for s, e, rate in self.eci_intervals)
        return Result(
            name=self.variant.name,
            description=self.variant.description,
            duration=end,
            ecs_cost=ecs_cost,
            ecs_node_seconds=sum(self.node_seconds.values()),
            ecs_node_seconds_by_group=dict(self.node_seconds),
            eci_cost=eci_cost,
            eci_vcpu_seconds=self.eci_vcpu_s,
            eci_gib_seconds=self.eci_gib_s,
            eci_gpu_seconds=self.eci_gpu_s,
            pending=np.asarray(self.pending_times, np.float64),
            never_started=self.never_started,
            pods=self.n_pods,
            ecs_pod_seconds=self.ecs_pod_s,
            eci_pod_seconds=self.eci_pod_s,
            actions=tuple(self.actions),
            peak_nodes=self.peak_nodes,
            planner_calls=self.planner_calls,
            decide_calls=self.decide_calls,
            events=len(self.trace.events),
            evictions=self.evictions,
            timeline=self._timeline(),
        )

    def _booting_group(self, name: str) -> str:
        for group in self.groups:
            if name.startswith(group + "-"):
                return group
        return _TRACE_GROUP

    def _timeline(self) -> Timeline:
        data = np.asarray(self.samples, np.float64).reshape(-1, 9)
        t = data[:, 0]
        intervals = self.node_cost_intervals + self.eci_intervals
        cost = np.zeros_like(t)
        if intervals:
            # The cost rate is piecewise constant, so cumulative cost is piecewise linear between
            # the interval ends: integrate at the breakpoints, interpolate at the samples.
            arr = np.asarray(intervals, np.float64)
            times = np.concatenate([arr[:, 0], arr[:, 1]])
            deltas = np.concatenate([arr[:, 2], -arr[:, 2]])
            order = np.argsort(times, kind="stable")
            times, deltas = times[order], deltas[order]
            rate = np.cumsum(deltas)
            spent = np.concatenate([[0.0], np.cumsum(rate[:-1] * np.diff(times))])
            cost = np.interp(t, times, spent, left=0.0)
        return Timeline(
            t=t,
            demand_cpu=data[:, 1],
            demand_gpu=data[:, 2],
            ecs_cpu=data[:, 3],
            ecs_gpu=data[:, 4],
            ecs_nodes=data[:, 5],
            ecs_pods=data[:, 6],
            eci_pods=data[:, 7],
            pending_pods=data[:, 8],
            cost=cost,
        )


def _moved(p: Pod, node_name: str, phase: str) -> Pod:
    """``replace(p, node_name=..., phase=...)`` without its per-field overhead (hot path)."""
    return Pod(
        uid=p.uid,
        name=p.name,
        namespace=p.namespace,
        labels=p.labels,
        annotations=p.annotations,
        requests=p.requests,
        owner=p.owner,
        node_name=node_name,
        phase=phase,
        terminating=p.terminating,
        tolerations=p.tolerations,
        node_selector=p.node_selector,
        required_affinity=p.required_affinity,
        priority=p.priority,
        scheduler_name=p.scheduler_name,
        nominated_node=p.nominated_node,
        created=p.created,
        workload=p.workload,
    )


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def simulate(
    trace: Trace,
    scenario: Scenario,
    variant: Variant,
    *,
    progress: Callable[[int], None] | None = None,
    audit: bool = False,
) -> Result:
    return Simulation(trace, scenario, variant, progress=progress, audit=audit).run()
