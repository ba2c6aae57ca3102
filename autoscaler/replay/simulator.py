"""The discrete-event replay: a trace, a scenario and one variant in, costs and latencies out.

Entry point (stable; other commands build on it)::

    simulate(trace, scenario, variant, *, progress=None, audit=False) -> Result

runs one variant (``report.variants`` lists Spillover's and the baselines') of a scenario on a
trace and returns its :class:`~autoscaler.replay.results.Result`.  It is a pure function of its
arguments (randomness comes from ``scenario.seed``), so variants may run in parallel processes.
``Simulation(...).run()`` is the same with the parts left inspectable (tests).

Virtual time only.  The event loop below merges the trace's events with a heap of the replay's
own (a node becoming Ready, an autoscaler pass, a retry of pending pods) and hands each to one
of the parts:

- :mod:`.scheduler`: kube-scheduler's part; placement by ``extender.policy.decide``;
- :mod:`.autoscaling`: when autoscaler passes run; sizing by ``autoscaler.planner.plan``;
- :mod:`.billing`: what is paid and why (prices through ``autoscaler.costs``);
- :mod:`.spot`: when the cloud reclaims a node of a spot group (``spot.interruptionsPerHour``);
- this module: the loop, the ReplicaSet and StatefulSet controllers (scale-in order from
  ``extender.deletion_cost.desired_costs``, ranked the way the ReplicaSet controller ranks
  victims; StatefulSets by ordinal, highest first), and the time series of the report.

Pending time of a pod: from creation to its first start (a pod deleted before it ever started
counts its whole life and is reported as never started).  Memory is bounded by the trace: the
time series keeps at most ``MAX_SAMPLES`` samples (the sample period grows for long traces) and
the demand history only the forecast's history window.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import heapq
import math
import random
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np

from autoscaler.nodegroup import MoveCosts, NodeGroup
from autoscaler.providers.base import ProviderError
from autoscaler.providers.simulated import SimulatedProvider
from extender import deletion_cost
from extender.model import Node, Resources, WorkloadKey

from .autoscaling import Autoscaler
from .billing import Billing
from .results import Action, CostSplit, Result, Timeline, Variant
from .scenario import Scenario, policies_for
from .scheduler import ECI_NODE, TRACE_GROUP, Clock, PodRecord, Scheduler, balloon_workload
from .spot import SpotReclaims
from .trace import (
    MAX_SPAN,
    NodeAdded,
    NodeRemoved,
    PodCreated,
    PodDeleted,
    ReplicasChanged,
    Template,
    Trace,
)

__all__ = [
    "ECI_NODE",
    "MAX_SAMPLES",
    "Action",
    "CostSplit",
    "Result",
    "Simulation",
    "Timeline",
    "Variant",
    "namespaces",
    "simulate",
]

MAX_SAMPLES = 100_000
# 2020-01-01 on the replay's clock, whose 0 is taken for 2026-01-01: the age bonus of
# ``extender.deletion_cost`` counts minutes from it, so pods created apart get different costs
REPLAY_EPOCH = deletion_cost.EPOCH - 1_767_225_600.0
_READY, _PLAN, _RETRY, _RECLAIM, _DELETE = 0, 1, 2, 3, 4


def namespaces(trace: Trace) -> set[str]:
    """The namespaces of the trace's pods and workloads."""
    out: set[str] = set()
    for ev in trace.events:
        if isinstance(ev, PodCreated | ReplicasChanged):
            out.add(ev.workload.namespace)
    return out


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
        if trace.end > MAX_SPAN:
            raise ValueError(
                f"trace spans {trace.end / 86_400 / 365.25:,.0f} years: are these absolute times?"
            )
        self.trace = trace
        self.scenario = scenario
        self.variant = variant
        self.progress = progress
        self.audit = audit
        self.end = trace.end
        self.period = max(scenario.sample_period, self.end / MAX_SAMPLES)
        settings = scenario.autoscaler.settings
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
        self.clock = Clock()
        self.heap: list[tuple[float, int, int]] = []
        self.seq = 0
        moves = settings.rebalance or MoveCosts()  # a restart costs as much when none is moved
        self.billing = Billing(settings.eci_price, restart=moves.restart)
        self.provider = SimulatedProvider(
            groups,
            clock=lambda: self.clock.now,
            label=settings.node_group_label,
            overhead=settings.daemonset_overhead,
        )
        policies = variant.policies
        if scenario.every_namespace:
            policies = policies_for(policies, namespaces(trace))
        self.scheduler = Scheduler(
            clock=self.clock,
            groups=self.groups,
            settings=settings,
            timing=scenario.timing,
            policies=policies,
            eci=variant.eci,
            preempt=variant.headroom > 0,
            billing=self.billing,
            rng=random.Random(scenario.seed),
            request_plan=self._request_plan,
            scoring=variant.scoring,
        )
        self.scheduler.rebalancing = variant.rebalance and variant.autoscaling
        self.autoscaler = Autoscaler(
            clock=self.clock,
            scenario=scenario,
            groups=self.groups,
            provider=self.provider,
            scheduler=self.scheduler,
            billing=self.billing,
            enabled=variant.autoscaling and not variant.static,
            predictive_on=variant.forecast and scenario.forecast.enabled,
            reaction_delay=variant.reaction_delay,
            # The scenario's settings.consolidation / settings.rebalance, the controller's keys:
            # the variants that use them (Spillover) take them as configured, the others none.
            consolidation=settings.consolidation if variant.consolidation else None,
            rebalance=settings.rebalance if variant.rebalance else None,
            push_plan=lambda t: self._push(t, _PLAN),
            push_ready=lambda t: self._push(t, _READY),
            audit=audit,
        )
        self.spot = SpotReclaims(
            groups=self.groups,
            rate_per_hour=scenario.spot_interruptions_per_hour,
            seed=scenario.seed,
        )
        self.replicas: dict[WorkloadKey, tuple[Template, dict[str, PodRecord]]] = {}
        self.deleting: dict[int, str] = {}  # heap seq -> uid of a pod whose end was put back
        self.serial = 0
        self.samples: list[tuple[float, ...]] = []
        self.next_sample = 0.0
        overhead = settings.daemonset_overhead
        for node in self.provider.nodes(now=0.0):
            group = self.groups[node.labels[settings.node_group_label]]
            self.billing.node_requested(
                node.name,
                price_per_hour=group.price_per_hour,
                allocatable=group.template(overhead=overhead).allocatable,
                now=0.0,
            )
            self._node_ready(node)
        for name in variant.headroom_groups:
            for _ in range(variant.headroom if name in self.groups else 0):
                self._create_balloon(name)

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> Result:
        events = self.trace.events
        n = len(events)
        heap = self.heap
        scheduler = self.scheduler
        i = 0
        end = self.end
        step = max(1, n // 200)
        if scheduler.pending or self.groups:
            self.autoscaler.at(0.0)
        while True:
            if heap and heap[0][0] <= end and (i >= n or heap[0][0] <= events[i].t):
                t, seq, kind = heapq.heappop(heap)
                self._advance(t)
                if kind == _PLAN:
                    if self.autoscaler.due(t):
                        self.autoscaler.run()
                elif kind == _READY:
                    self._nodes_ready(t)
                    scheduler.retry()
                elif kind == _RECLAIM:
                    self._reclaim(self.spot.due.pop(seq))
                elif kind == _DELETE:
                    self._trace_deleted(self.deleting.pop(seq))
                else:
                    scheduler.retry()
            elif i < n:
                ev = events[i]
                i += 1
                self._advance(ev.t)
                if isinstance(ev, PodCreated):
                    if ev.uid in scheduler.pods:
                        raise ValueError(f"trace: pod {ev.uid} created twice (t={ev.t})")
                    scheduler.schedule(scheduler.new_pod(ev.uid, ev.workload, ev.name, ev.template))
                elif isinstance(ev, PodDeleted):
                    self._trace_deleted(ev.uid)
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

    def check(self) -> None:
        self.scheduler.check()

    def _push(self, t: float, kind: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind))

    def _request_plan(self, react: bool) -> None:
        self.autoscaler.request(react)

    def _advance(self, t: float) -> None:
        if t < self.clock.now:
            raise AssertionError(f"virtual time went backwards: {t} < {self.clock.now}")
        while self.next_sample <= t and self.next_sample <= self.end:
            self._sample(self.next_sample)
            self.next_sample += self.period
        if t >= self.autoscaler.next_sample:
            self.autoscaler.sample(t)
        self.clock.now = t

    def _sample(self, t: float) -> None:
        s = self.scheduler
        self.samples.append(
            (
                t,
                s.live_cpu / 1000,
                s.live_gpu / 1000,
                s.ecs_cpu / 1000,
                s.ecs_gpu / 1000,
                len(s.nodes),
                s.n_ecs_pods,
                s.n_eci_pods,
                len(s.pending),
            )
        )

    # -- nodes ---------------------------------------------------------------------------------------
    def _nodes_ready(self, t: float) -> None:
        for node in self.provider.nodes(now=t):
            if node.name not in self.scheduler.nodes and node.name in self.billing.requested:
                self._node_ready(node)

    def _node_ready(self, node: Node) -> None:
        self.scheduler.node_ready(node)
        group = node.labels.get(self.scenario.autoscaler.settings.node_group_label, "")
        at = self.spot.reclaim_at(node.name, group, now=self.clock.now)
        if at is not None:
            self._push(at, _RECLAIM)
            self.spot.due[self.seq] = node.name

    def _reclaim(self, name: str) -> None:
        """The cloud takes a spot node back: its pods are evicted, the autoscaler reacts."""
        node = self.scheduler.nodes.get(name)
        if node is None:
            return  # already scaled down
        try:
            self.provider.remove(node.group, [name], now=self.clock.now)
        except ProviderError:
            return  # the group is at its minimum: modelled as not reclaimed (see .spot)
        self.autoscaler.actions.append(
            Action(self.clock.now, node.group, "interrupted", 1, "spot instance reclaimed")
        )
        self.scheduler.remove_node(name)
        self.autoscaler.request(True)

    def _trace_node_added(self, ev: NodeAdded) -> None:
        labels = {**ev.labels, self.scenario.autoscaler.settings.node_group_label: TRACE_GROUP}
        node = Node(name=ev.name, labels=labels, allocatable=ev.allocatable, created=ev.t)
        self.billing.node_requested(
            ev.name, price_per_hour=ev.price_per_hour, allocatable=ev.allocatable, now=ev.t
        )
        self.scheduler.node_ready(node)
        self.scheduler.retry()

    def _trace_node_removed(self, ev: NodeRemoved) -> None:
        node = self.scheduler.nodes.get(ev.name)
        if node is not None and node.group == TRACE_GROUP:
            self.scheduler.remove_node(ev.name)

    # -- workloads: the ReplicaSet and StatefulSet controllers ----------------------------------
    def _create_balloon(self, group_name: str) -> None:
        group = self.groups[group_name]
        overhead = self.scenario.autoscaler.settings.daemonset_overhead
        a = group.template(overhead=overhead).allocatable
        self.serial += 1
        uid = f"overprovisioning-{group_name}-{self.serial}"
        template = Template(
            Resources(a.cpu_milli, a.memory, 1, a.gpu_milli), {"app": "overprovisioning"}
        )
        rec = self.scheduler.new_pod(uid, balloon_workload(group_name), uid, template)
        self.scheduler.pending[uid] = rec

    def _trace_deleted(self, uid: str) -> None:
        """The trace ends a pod; a Job's pod that an eviction set back (``PodRecord.late``) ends
        that much later (and again later if evicted once more meanwhile)."""
        rec = self.scheduler.pods.get(uid)
        if rec is not None and rec.late > 0:
            self._push(self.clock.now + rec.late, _DELETE)
            self.deleting[self.seq] = uid
            rec.late = 0.0
            return
        self._pod_deleted(uid)

    def _pod_deleted(self, uid: str) -> None:
        s = self.scheduler
        rec = s.pods.get(uid)
        on_ecs = rec is not None and rec.node is not None
        s.delete(uid)
        if on_ecs:
            # Lower utilization may start a node's scale-down timer; pending pods may fit now.
            if s.pending:
                self._push(self.clock.now, _RETRY)
            self.autoscaler.request(False)

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
        wl = ev.workload
        stateful = wl.kind == "StatefulSet"
        while len(live) < ev.replicas:
            if stateful:
                name = f"{wl.name}-{len(live)}"  # ordinals 0..n-1, the next one up
            else:
                self.serial += 1
                name = f"{wl.name}-{self.serial:x}"
            uid = f"{wl.namespace}/{name}"
            rec = self.scheduler.new_pod(uid, wl, name, template)
            live[uid] = rec
            self.scheduler.schedule(rec)
        if len(live) > ev.replicas:
            k = len(live) - ev.replicas
            victims = (
                sorted(live.values(), key=lambda p: p.pod.ordinal or 0)[-k:]
                if stateful
                else self._victims(list(live.values()), k)
            )
            for rec in victims:
                del live[rec.uid]
                self._pod_deleted(rec.uid)

    def _victims(self, pods: list[PodRecord], k: int) -> list[PodRecord]:
        """The ReplicaSet controller's choice of ``k`` pods to delete (``getPodsToDelete``).

        Its ``ActivePodsWithRanks.Less`` (``_deleted_before``), first deleted first; the
        ``pod-deletion-cost`` it reads is what ``extender.deletion_cost.desired_costs`` wants at
        this moment (the reconciler's few seconds until a value is written are not modelled),
        none in a variant without Spillover's reconciler (``Variant.deletion_cost``: the
        cluster-autoscaler and all-ECI baselines, plain clusters).
        """
        policy = pods[0].policy
        costs: dict[str, int] = {}
        if policy is not None and self.variant.deletion_cost:
            costs = deletion_cost.desired_costs(
                policy,
                pods=[p.pod for p in pods if p.bound],
                nodes=self.scheduler.state.nodes,
                now=self.clock.now,
                epoch=REPLAY_EPOCH,
            )
        on_node = Counter(p.bound for p in pods if p.bound)
        now = self.clock.now
        ranked = [
            _Ranked(p, costs.get(p.uid, 0), on_node[p.bound] if p.bound else 0, now) for p in pods
        ]
        ranked.sort(key=functools.cmp_to_key(_deleted_before))
        return [r.rec for r in ranked[:k]]

    # -- the end -------------------------------------------------------------------------------------
    def _finish(self) -> Result:
        end = self.end
        s = self.scheduler
        s.finish()
        for name in self.billing.billed_nodes():
            node = s.nodes.get(name)
            group = node.group if node is not None else self._booting_group(name)
            self.billing.node_removed(name, group, now=end)
        b = self.billing
        split = b.result()
        ecs_cost = split.ecs_busy + split.ecs_idle + b.lost_on_ecs
        eci_cost = split.eci_burst + split.eci_long_stay + split.lost_work - b.lost_on_ecs
        a = self.autoscaler
        return Result(
            name=self.variant.name,
            description=self.variant.description,
            duration=end,
            ecs_cost=ecs_cost,
            ecs_node_seconds=sum(b.node_seconds.values()),
            ecs_node_seconds_by_group={g: b.node_seconds.get(g, 0.0) for g in self.groups}
            | b.node_seconds,
            eci_cost=eci_cost,
            eci_vcpu_seconds=b.eci_vcpu_s,
            eci_gib_seconds=b.eci_gib_s,
            eci_gpu_seconds=b.eci_gpu_s,
            pending=np.asarray(s.pending_times, np.float64),
            never_started=s.never_started,
            pods=s.n_pods,
            ecs_pod_seconds=s.ecs_pod_s,
            eci_pod_seconds=s.eci_pod_s,
            eci_no_room_pod_seconds=s.eci_no_room_s,
            eci_by_price_pod_seconds=s.eci_by_price_s,
            lost_work_pod_seconds=s.lost_s,
            actions=tuple(a.actions),
            peak_nodes=s.peak_nodes,
            planner_calls=a.planner_calls,
            decide_calls=s.decide_calls,
            events=len(self.trace.events),
            evictions=s.evictions,
            moves=s.moves,
            timeline=self._timeline(),
            split=split,
            unmanaged=s.unmanaged,
            idle_nodes=b.idle_nodes(),
            restart_cost=split.restarts,
        )

    def _booting_group(self, name: str) -> str:
        for group in self.groups:
            if name.startswith(group + "-"):
                return group
        return TRACE_GROUP

    def _timeline(self) -> Timeline:
        data = np.asarray(self.samples, np.float64).reshape(-1, 9)
        t = data[:, 0]
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
            cost=self.billing.curve(t),
        )


def simulate(
    trace: Trace,
    scenario: Scenario,
    variant: Variant,
    *,
    progress: Callable[[int], None] | None = None,
    audit: bool = False,
) -> Result:
    """One variant of a scenario on a trace (see the module docstring); the stable entry point."""
    with _fewer_collections():
        return Simulation(trace, scenario, variant, progress=progress, audit=audit).run()


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """A replay allocates millions of short-lived objects and few reference cycles: the cyclic
    garbage collector's youngest generation runs every 50,000 allocations instead of 700 (a
    sixth of the replay's time went to collections that found next to nothing)."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 50_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


# -- the ReplicaSet controller's scale-in order ---------------------------------------------------
class _Ranked:
    """A pod as ``ActivePodsWithRanks`` sees it at ``now``: started = Running and Ready (the
    replay models no readiness probe), bound but not started = Pending; ``rank``: how many of
    the workload's pods share its node; the UID, random in a cluster, a CRC-32 of the uid."""

    __slots__ = ("assigned", "born", "cost", "rank", "ready", "rec", "uid")

    def __init__(self, rec: PodRecord, cost: int, rank: int, now: float) -> None:
        self.rec = rec
        self.assigned = bool(rec.bound)
        self.cost = cost
        self.rank = rank
        # ``_log_age`` of the ready time (None: not ready) and of the creation
        self.ready = _log_age(now - rec.started) if rec.started <= now else None
        self.born = _log_age(now - rec.created)
        self.uid = zlib.crc32(rec.uid.encode())


def _log_age(seconds: float) -> int:
    """kube's ``logarithmicRankDiff`` term: ``int(log2(age in ns))``, -1 for no age."""
    ns = seconds * 1e9
    return int(math.log2(ns)) if ns > 0 else -1


def _deleted_before(a: _Ranked, b: _Ranked) -> int:
    """kube's ``ActivePodsWithRanks.Less`` (pkg/controller/controller_utils.go) with
    ``PodDeletionCost`` and ``LogarithmicScaleDown`` on (their defaults since 1.22), as a
    comparison: negative when ``a`` is deleted first.  1. unassigned first; 2-3. pending / not
    ready first; 4. lower deletion cost; 5. more of the workload's pods on its node ("doubled
    up"); 6. both ready: the younger ready time by powers of two of its age, the same power
    decided by UID (equal ready times go on); 7. restart counts (the replay has none); 8. the
    younger creation the same way (equal creation: a tie)."""
    if a.assigned != b.assigned:
        return -1 if not a.assigned else 1
    if (a.ready is None) != (b.ready is None):
        return -1 if a.ready is None else 1
    if a.cost != b.cost:
        return -1 if a.cost < b.cost else 1
    if a.rank != b.rank:
        return -1 if a.rank > b.rank else 1
    if a.ready is not None and b.ready is not None and a.rec.started != b.rec.started:
        return _younger(a.ready, b.ready, a.uid, b.uid)
    if a.rec.created != b.rec.created:
        return _younger(a.born, b.born, a.uid, b.uid)
    return 0


def _younger(a_log: int, b_log: int, a_uid: int, b_uid: int) -> int:
    if a_log != b_log:
        return -1 if a_log < b_log else 1
    return -1 if a_uid < b_uid else 1 if a_uid > b_uid else 0
