"""The simulator: a hand-computed scenario, invariants, determinism, and the shared decision code."""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import autoscaler.controller
import autoscaler.planner
import autoscaler.predictive
import autoscaler.rebalance
import extender.deletion_cost
import extender.model
import extender.policies
import extender.policy
from autoscaler.replay.report import fluid_bound, variants
from autoscaler.replay.scenario import Scenario
from autoscaler.replay.scoring import BIN_PACKING
from autoscaler.replay.simulator import Result, Simulation, Variant, simulate
from autoscaler.replay.trace import (
    Event,
    PodCreated,
    PodDeleted,
    ReplicasChanged,
    Template,
    Trace,
    TraceHeader,
)
from extender.model import NodeKind, Resources, WorkloadKey
from extender.policy import Unit

from .conftest import ECI_PRICE, SMALL_GROUP, small_scenario

ONE = Template(Resources(1000, 2**30, 1, 0), {"app": "web"})
WEB = WorkloadKey("shop", "Deployment", "web")
ECI_RATE = 1 * 0.000049 + 1 * 0.00000613  # one vCPU and one GiB per second


def one_pod_trace() -> Trace:
    return Trace(
        TraceHeader(),
        [
            PodCreated(0.0, "a", WorkloadKey("shop", "Pod", "a"), "a", ONE),
            PodDeleted(1000.0, "a"),
            PodDeleted(2000.0, "unknown"),  # a no-op that makes the replay last 2000 s
        ],
    )


def by_name(scenario: Scenario, trace: Trace) -> dict[str, Variant]:
    return {v.name: v for v in variants(scenario, fluid_bound(trace, scenario))}


def test_hand_computed_spillover(scenario: Scenario) -> None:
    trace = one_pod_trace()
    r = simulate(trace, scenario, by_name(scenario, trace)["spillover"], audit=True)
    # No ECS node at t=0: the policy overflows to ECI; it starts 10 s later and runs to t=1000.
    # A bare pod without an expected duration stays on ECI: the planner adds nothing.
    assert r.pending.tolist() == [10.0]
    assert r.ecs_cost == 0.0
    assert r.eci_vcpu_seconds == pytest.approx(990.0)
    assert r.eci_gib_seconds == pytest.approx(990.0)
    assert r.eci_cost == pytest.approx(990 * ECI_RATE, rel=1e-12)
    assert r.cost == pytest.approx(0.0545787, rel=1e-9)
    assert r.eci_share == 1.0
    assert r.eci_no_room_share == 1.0  # the policy's ECS unit had no node: lack of room
    # and by price: no expected run time left, so no new node could be cheaper (the planner's
    # break-even, demand.new_node_could_pay)
    assert r.eci_by_price_share == 1.0
    assert r.actions == ()


def test_eci_for_lack_of_room_is_split_by_the_planners_break_even() -> None:
    # A 2 cpu / 8 GiB node at 0.353 CNY/h, 60 s boot, 100 s unneeded time.  At t=0 there is no
    # node: both pods overflow to ECI (no room) and start at 10.  The replica w (2 cpu / 8 GiB,
    # a Deployment's, no expected duration: one horizon, 3,600 s): a new node costs 0.353 CNY/h
    # x (60 + 3,600 + 100) s = 0.3687 CNY, ECI 0.5293 CNY/h x 3,540 s = 0.5205: ECS would pay,
    # the planner adds the node (Ready at 61) and rebalance moves w there: its time on ECI is
    # not by price.  The bare pod b (no expected run time: 0 s left) stays on ECI by price
    # until t=1000: 990 s.
    group = {**SMALL_GROUP, "pricePerHour": 0.353}
    scenario = small_scenario(
        autoscaler={
            "groups": [group],
            "settings": {
                "scaleDownUtilizationThreshold": 0.5,
                "scaleDownUnneededTime": "100s",
                "scaleDownDelayAfterAdd": "0s",
                "eciPrice": ECI_PRICE,
            },
        }
    )
    whole = Template(Resources(2000, 8 * 2**30, 1, 0), {"app": "w"})
    trace = Trace(
        TraceHeader(),
        [
            PodCreated(0.0, "w", WorkloadKey("shop", "Deployment", "w"), "w", whole),
            PodCreated(0.0, "b", WorkloadKey("shop", "Pod", "b"), "b", ONE),
            PodDeleted(1000.0, "w"),
            PodDeleted(1000.0, "b"),
        ],
    )
    r = simulate(trace, scenario, by_name(scenario, trace)["spillover"], audit=True)
    assert r.moves == 1
    assert r.eci_no_room_pod_seconds == r.eci_pod_seconds  # both went there for lack of room
    assert r.eci_by_price_pod_seconds == pytest.approx(990.0)
    assert 60.0 <= r.eci_no_room_pod_seconds - 990.0 < 100.0  # w: from 10 until moved
    total = r.ecs_pod_seconds + r.eci_pod_seconds
    assert r.eci_by_price_share == pytest.approx(990.0 / total)


def test_hand_computed_reactive_all_ecs(scenario: Scenario) -> None:
    trace = one_pod_trace()
    r = simulate(trace, scenario, by_name(scenario, trace)["reactive-ecs"], audit=True)
    # Pending at 0; the loop runs at t=10 and asks for a node; it boots for 60 s: pending 70 s.
    # The pod leaves at 1000; the next loop (1010) marks the node unneeded; 100 s later (1110) it
    # goes.  Billed 1100 s at 0.001 CNY/s.
    assert r.pending.tolist() == [70.0]
    assert [(a.t, a.kind, a.nodes) for a in r.actions] == [
        (10.0, "scale-up", 1),
        (1110.0, "scale-down", 1),
    ]
    assert r.ecs_node_seconds == pytest.approx(1100.0)
    assert r.ecs_cost == pytest.approx(1.1)
    assert r.eci_cost == 0.0
    assert r.peak_nodes == 1


def test_hand_computed_reactive_with_one_spare_node(scenario: Scenario) -> None:
    trace = one_pod_trace()
    r = simulate(trace, scenario, by_name(scenario, trace)["reactive-ecs+1"], audit=True)
    # t=0: the placeholder (a whole node) is pending: a node for it (Ready at 60).  The pod,
    # pending too, waits for the next loop (t=10): a second node (Ready at 70).  At 60 the
    # placeholder takes node 1 and the pod preempts it there (pending 60 s); at 70 the
    # placeholder takes node 2, the spare.  The pod leaves at 1000; node 1 is unneeded from the
    # next loop (1010) and goes after scaleDownUnneededTime (100 s), at 1110; the spare stays.
    assert r.pending.tolist() == [60.0]
    assert [(a.t, a.kind, a.nodes) for a in r.actions] == [
        (0.0, "scale-up", 1),
        (10.0, "scale-up", 1),
        (1110.0, "scale-down", 1),
    ]
    assert r.ecs_node_seconds == pytest.approx(1110.0 + 1990.0)
    assert r.ecs_cost == pytest.approx(3.1)
    s = r.split
    assert s.ecs_busy == pytest.approx(0.47)  # half of node 1 from 60 to 1000
    assert s.ecs_fragmentation == pytest.approx(0.47)  # the other half
    assert s.ecs_booting == pytest.approx(0.12)  # 60 s each
    assert s.ecs_pre_provisioned == pytest.approx(1.93)  # the spare, 70 to 2000
    assert s.ecs_scale_down_wait == pytest.approx(0.11)  # node 1, 1000 to 1110
    assert s.total == pytest.approx(r.cost)


def test_headroom_baseline_removes_the_surplus_beyond_demand_and_spares(
    scenario: Scenario,
) -> None:
    """Like cluster-autoscaler with spare nodes: demand + headroom, the surplus goes."""
    trace = Trace(
        TraceHeader(),
        [
            ReplicasChanged(0.0, WEB, 6, ONE),  # three nodes of demand
            ReplicasChanged(1000.0, WEB, 1),  # half a node
            ReplicasChanged(5000.0, WEB, 1),
        ],
    )
    # Bin-packed, so the nodes are the demand's: with the stock scheduler's spreading a pod
    # takes the half-empty node a node-sized placeholder was to fill, and the placeholder asks
    # for a fifth node (what kube-scheduler's LeastAllocated does with such placeholders).
    scenario = replace(scenario, baseline_scoring=BIN_PACKING)
    for name, spares in (("reactive-ecs", 0), ("reactive-ecs+1", 1)):
        r = simulate(trace, scenario, by_name(scenario, trace)[name], audit=True)
        tl = r.timeline
        assert tl.ecs_nodes.max() == 3 + spares
        assert tl.ecs_nodes[-1] == 1 + spares  # the surplus is gone
        downs = [a.t for a in r.actions if a.kind == "scale-down"]
        assert len(downs) == 2
        # unneeded from the loop after 1000, removed scaleDownUnneededTime (100 s) later
        assert min(downs) >= 1010.0 + 100.0


def test_hand_computed_static_and_all_eci(scenario: Scenario) -> None:
    trace = one_pod_trace()
    v = by_name(scenario, trace)
    static = simulate(trace, scenario, v["static-N"], audit=True)
    assert static.pending.tolist() == [0.0]
    assert static.cost == pytest.approx(2.0)  # one node for the whole 2000 s
    eci = simulate(trace, scenario, v["all-eci"], audit=True)
    assert eci.cost == pytest.approx(990 * ECI_RATE)
    assert (eci.eci_share, eci.eci_no_room_share) == (1.0, 0.0)  # on ECI by policy, not for room


def random_trace(seed: int, *, pods: int = 300, replicas: bool = True) -> Trace:
    rng = random.Random(seed)
    events: list[tuple[float, int, Event]] = []
    shapes = [Resources(500, 2**29, 1), Resources(1000, 2**30, 1), Resources(2000, 4 * 2**30, 1)]
    for i in range(pods):
        start = rng.uniform(0, 20_000)
        life = rng.expovariate(1 / 1500)
        shape = rng.choice(shapes)
        wl = WorkloadKey("shop", "Pod", f"p{i}")
        events.append((start, 2 * i, PodCreated(start, f"p{i}", wl, f"p{i}", Template(shape))))
        events.append((start + life, 2 * i + 1, PodDeleted(start + life, f"p{i}")))
    if replicas:
        t = 0.0
        for k in range(60):
            n = rng.randint(0, 12)
            events.append((t, 10**6 + k, ReplicasChanged(t, WEB, n, ONE if k == 0 else None)))
            t += rng.uniform(100, 600)
    events.sort(key=lambda e: (e[0], e[1]))
    return Trace(TraceHeader(), [e for _, _, e in events])


def check_result(r: Result, scenario: Scenario) -> None:
    price = scenario.autoscaler.settings.eci_price
    parts = (
        r.eci_vcpu_seconds * price.vcpu_second
        + r.eci_gib_seconds * price.gib_second
        + r.eci_gpu_seconds * price.gpu_hour / 3600
    )
    assert r.eci_cost == pytest.approx(parts, rel=1e-9, abs=1e-12)
    groups = {g.name: g.price_per_hour for g in scenario.autoscaler.groups}
    ecs = sum(s * groups[g] / 3600 for g, s in r.ecs_node_seconds_by_group.items())
    assert r.ecs_cost == pytest.approx(ecs, rel=1e-9, abs=1e-12)
    assert r.cost == pytest.approx(r.ecs_cost + r.eci_cost)
    # Every CNY is in one bucket of the split.
    split = r.split
    assert split.ecs_busy + split.ecs_idle == pytest.approx(r.ecs_cost, rel=1e-9, abs=1e-9)
    assert split.eci_burst + split.eci_long_stay == pytest.approx(r.eci_cost, rel=1e-9, abs=1e-9)
    assert min(v for _, v in split.items()) >= 0
    assert r.timeline.cost[-1] <= r.cost + 1e-9
    # Every pod is either started (a pending time) or reported as never started.
    assert r.pending.size == r.pods
    assert (r.pending >= 0).all()


@pytest.mark.parametrize(
    "name", ["spillover", "reactive-ecs", "reactive-ecs+1", "all-eci", "static-N"]
)
def test_invariants_on_a_random_trace(name: str) -> None:
    scenario = small_scenario()
    trace = random_trace(11)
    sim = Simulation(trace, scenario, by_name(scenario, trace)[name], audit=True)
    r = sim.run()  # audit: no pod on two nodes, no node over capacity, after every step
    check_result(r, scenario)
    if name == "all-eci":
        assert r.ecs_cost == 0.0
    if name == "spillover":
        assert r.pending_percentile(99) <= 10.0  # ECS or ECI: never more than the ECI start


def test_same_seed_same_result_and_jitter_is_seeded() -> None:
    scenario = small_scenario(
        timing={"loopPeriod": "10s", "eciStartDelay": "10s", "eciStartJitter": "4s"}
    )
    trace = random_trace(5)
    v = by_name(scenario, trace)["spillover"]
    a, b = simulate(trace, scenario, v), simulate(trace, scenario, v)
    assert a.cost == b.cost
    assert np.array_equal(a.pending, b.pending)
    assert a.actions == b.actions
    other = simulate(trace, replace(scenario, seed=scenario.seed + 1), v)
    assert not np.array_equal(a.pending, other.pending)


def test_scale_in_removes_eci_replicas_first() -> None:
    """keep-2-on-ECS: replicas 5 -> 2 deletes the three ECI pods (pod-deletion-cost)."""
    scenario = small_scenario()
    keep2 = replace(scenario.policies[0], units=(Unit(NodeKind.ECS, max=2), Unit(NodeKind.ECI)))
    variant = Variant("keep-2", (keep2,), autoscaling=False, forecast=False, static={"small": 3})
    trace = Trace(
        TraceHeader(),
        [
            ReplicasChanged(0.0, WEB, 5, ONE),
            ReplicasChanged(100.0, WEB, 2),
            ReplicasChanged(200.0, WEB, 2),
        ],
    )
    sim = Simulation(trace, replace(scenario, policies=(keep2,)), variant, audit=True)
    sim.run()
    # 2 ECS pods and 3 ECI pods ran; the survivors are the ECS ones.
    live = sim.replicas[WEB][1]
    assert len(live) == 2
    assert sim.scheduler.eci_pod_s == pytest.approx(3 * 90.0)  # started at 10, all deleted at 100
    assert sim.scheduler.eci_no_room_s == 0.0  # beyond the max (3 nodes had room): by policy
    assert sim.scheduler.ecs_pod_s == pytest.approx(2 * 200.0)  # the ECS pods ran to the end


def test_victims_of_one_cost_follow_the_replicaset_controllers_own_order() -> None:
    """Pods of one deletion cost (here on nodes in no unit: one band) are left to kube's own
    order (``ActivePodsWithRanks.Less``): the node holding most of the workload's pods first,
    then the younger ready time by powers of two of its age in ns, the same power by UID."""
    scenario = small_scenario()
    trace = Trace(TraceHeader(), [ReplicasChanged(0.0, WEB, 5, ONE)])
    sim = Simulation(trace, scenario, by_name(scenario, trace)["spillover"])
    recs = [sim.scheduler.new_pod(f"shop/web-{i}", WEB, f"web-{i}", ONE) for i in range(5)]
    sim.clock.now = 1000.0
    # (node, started): web-4 is the newest but alone with web-3 on its node
    layout = [("n1", 100.0), ("n1", 200.0), ("n1", 300.0), ("n2", 100.0), ("n2", 990.0)]
    for rec, (node, started) in zip(recs, layout, strict=True):
        rec.bound, rec.created, rec.started = node, started - 5.0, started
    # n1 holds 3: one of its pods goes first.  Ready 700, 800 and 900 s ago: 2^39 ns = 549.8 s,
    # 2^40 ns = 1099.5 s, so one power of two for the three: the UID decides.
    first = min(recs[:3], key=lambda r: zlib.crc32(r.uid.encode()))
    assert sim._victims(recs, 1) == [first]
    # n1 down to 2 pods ties with n2: web-4 (ready 10 s ago, 2^33 ns) is the youngest
    rest = [r for r in recs if r is not first]
    assert sim._victims(rest, 1) == [recs[4]]
    # the same ready time: creation decides, by powers of two of its age, then the UID
    old, young = sorted(rest[:2], key=lambda r: zlib.crc32(r.uid.encode()))  # both on n1
    old.started = young.started = 300.0
    young.created, old.created = 290.0, 10.0  # 710 s and 990 s ago: both 2^39 ns, the UID
    assert sim._victims([old, young], 1) == [old]
    old.created = -200.0  # 1,200 s ago: 2^40 ns, an older power of two than 710 s
    assert sim._victims([old, young], 1) == [young]
    # a pod not started (not ready) goes before every ready one, an unassigned one before it
    rest[2].started = rest[3].started = math.inf
    assert sim._victims(rest, 1) == [rest[3]]  # web-4: pending, younger creation
    rest[2].bound = ""
    assert sim._victims(rest, 2) == [rest[2], rest[3]]


def test_settled_first_unit_pods_go_newest_first_only_where_spillover_writes_the_cost() -> None:
    """Three replicas on one node of the first unit, all older than SETTLE: with Spillover's
    reconciler the newest goes first (its age bonus, on the replay's clock); in a plain
    cluster (the baselines: ``deletion_cost=False``) kube's own order, here the UID."""
    scenario = small_scenario()
    policy = scenario.policies[0]
    variant = Variant("static", (policy,), autoscaling=False, forecast=False, static={"small": 1})
    trace = Trace(TraceHeader(), [ReplicasChanged(0.0, WEB, 3, ONE)])
    picks = []
    for writes in (True, False):
        sim = Simulation(trace, scenario, replace(variant, deletion_cost=writes))
        [node] = [n for n, v in sim.scheduler.state.nodes.items() if v.kind is NodeKind.ECS]
        assert policy.unit_of(sim.scheduler.state.nodes[node]) == 0
        recs = [sim.scheduler.new_pod(f"shop/web-{i}", WEB, f"web-{i}", ONE) for i in range(3)]
        for i, rec in enumerate(recs):
            rec.created, rec.started, rec.bound = 1.0 + 120.0 * i, 11.0 + 120.0 * i, node
            rec.pod = replace(rec.pod, node_name=node, created=rec.created)
        sim.clock.now = 3000.0  # ready 2,750-2,990 s ago: one power of two (2^41 ns)
        picks.append(sim._victims(recs, 1))
    newest = recs[2]
    by_uid = min(recs, key=lambda r: zlib.crc32(r.uid.encode()))
    assert by_uid is not newest  # else the case shows nothing
    assert [[r.uid for r in p] for p in picks] == [[newest.uid], [by_uid.uid]]


def stateful_and_eci_only_pods(trace: Trace, n: int) -> Trace:
    """``trace`` plus, created at 0, the ``n`` pods of StatefulSet shop/db (db-0 ... db-n-1)
    and ``n`` pods of namespace batch (whose policy has no ECS unit)."""
    db = WorkloadKey("shop", "StatefulSet", "db")
    pods: list[Event] = [PodCreated(0.0, f"db-{i}", db, f"db-{i}", ONE) for i in range(n)]
    for i in range(n):
        pods.append(PodCreated(0.0, f"b{i}", WorkloadKey("batch", "Pod", f"b{i}"), f"b{i}", ONE))
    return Trace(trace.header, [*pods, *trace.events])


ECI_ONLY_POLICY = {
    "apiVersion": "spillover.dev/v1alpha1",
    "kind": "ResourcePolicy",
    "metadata": {"name": "batch", "namespace": "batch"},
    "spec": {"selector": {}, "units": [{"resource": "eci"}]},
}


def test_replay_drives_the_shared_decision_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every decision the services make is made by the same function in the replay."""
    calls: dict[str, int] = {}
    ordinals: list[int | None] = []

    def counting(owner: Any, name: str) -> None:
        original = getattr(owner, name)
        calls[name] = 0

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            if name == "decide":
                ordinals.append(kwargs.get("ordinal"))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    counting(extender.policy, "decide")
    counting(extender.policy, "policy_for")
    counting(extender.policy, "unit_counts")
    counting(autoscaler.planner, "group_state")
    counting(autoscaler.predictive, "class_demand_of")
    counting(autoscaler.predictive.RefitRule, "refit")
    counting(extender.deletion_cost, "desired_costs")
    counting(extender.model.Pod, "placed")
    counting(autoscaler.rebalance, "rebalance")
    counting(autoscaler.rebalance, "allowed")
    counting(autoscaler.rebalance, "move_saving")
    scenario = small_scenario(
        forecast={
            "enabled": True,
            "refit": "1h",
            "history": "24h",
            "step": "5m",
            "passEvery": "1h",
            "minHistory": "1h",
        },
    )
    scenario = replace(
        scenario, policies=(*scenario.policies, extender.policies.policy_from_dict(ECI_ONLY_POLICY))
    )
    trace = stateful_and_eci_only_pods(random_trace(2, pods=50), 3)
    sim = Simulation(trace, scenario, by_name(scenario, trace)["spillover"], audit=True)
    plan = autoscaler.planner.plan
    demand_checked = 0

    def checked_plan(state: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("memo") is None:  # the audit's second computation of the same pass
            return plan(state, *args, **kwargs)
        # The forecast's demand is the controller's class_demand of the replay's cluster.
        nonlocal demand_checked
        theirs = autoscaler.controller.class_demand(state)
        ours = {cls: m / 1000 for cls, m in sim.scheduler.demand.items()}
        assert ours == pytest.approx(theirs)
        # The groups the pass sees (a state is reused while its inputs stay the same) are what
        # group_state builds now.
        kept = sim.autoscaler._states.copy()
        sim.autoscaler._states.clear()
        assert list(args[0]) == sim.autoscaler._group_states()
        sim.autoscaler._states = kept
        demand_checked += 1
        return plan(state, *args, **kwargs)

    monkeypatch.setattr(autoscaler.planner, "plan", checked_plan)
    r = sim.run()
    assert calls["decide"] == r.decide_calls > 0
    assert demand_checked == r.planner_calls > 0
    assert calls["policy_for"] > 0
    assert calls["desired_costs"] > 0
    # StatefulSet pods are placed by ordinal, as the extender places them.
    assert sorted(o for o in ordinals if o is not None)[:3] == [0, 1, 2]
    # One node-group state builder (clamped to the provider): every group of every pass (and
    # of the check above, which rebuilds them all).
    assert calls["group_state"] >= r.planner_calls * len(scenario.autoscaler.groups)
    # One demand rule, one refit rule.
    assert calls["class_demand_of"] > 0
    assert calls["refit"] > 0
    assert sim.autoscaler.forecast_fits > 0
    # Unit counts checked against the extender's own count (audit); pods moved by Pod.placed.
    assert calls["unit_counts"] > 0
    assert calls["placed"] >= r.decide_calls
    # Moves back from ECI: the controller's rebalance and rate limit, once per pass that has a
    # pod on ECI an eviction could move (the others provably move nothing); the audit asks
    # rebalance a second time, without the memo.
    assert 0 < calls["rebalance"] == 2 * calls["allowed"] <= 2 * r.planner_calls
    # ... each move priced by the one saving rule (costs.move_saving)
    assert calls["move_saving"] > 0


def test_passes_without_movable_pods_on_eci_skip_a_rebalance_that_would_move_nothing() -> None:
    scenario = small_scenario()
    trace = stateful_and_eci_only_pods(random_trace(3, pods=80), 3)
    sim = Simulation(trace, scenario, by_name(scenario, trace)["spillover"], audit=True)
    a = sim.autoscaler
    move_back = a._move_back
    skipped = 0

    def checked(groups: Any) -> None:
        nonlocal skipped
        if sim.scheduler.n_eci_movable == 0:
            skipped += 1
            assert a.rebalance is not None
            moves = autoscaler.rebalance.rebalance(
                sim.scheduler.state, groups, a.rebalance, now=sim.clock.now,
                settings=a.settings, limit=a.rebalance.per_minute,
            )  # fmt: skip
            assert moves.moves == ()
        move_back(groups)

    a._move_back = checked  # type: ignore[method-assign]
    r = sim.run()
    assert 0 < skipped < r.planner_calls


def test_statefulset_replicas_by_ordinal() -> None:
    """keep-2-on-ECS for a StatefulSet: ordinals 0, 1 on ECS, 2+ on ECI; scale-in highest first."""
    scenario = small_scenario()
    keep2 = replace(scenario.policies[0], units=(Unit(NodeKind.ECS, max=2), Unit(NodeKind.ECI)))
    variant = Variant("keep-2", (keep2,), autoscaling=False, forecast=False, static={"small": 3})
    db = WorkloadKey("shop", "StatefulSet", "db")
    trace = Trace(
        TraceHeader(),
        [
            ReplicasChanged(0.0, db, 4, ONE),
            ReplicasChanged(100.0, db, 3),
            ReplicasChanged(200.0, db, 3),
        ],
    )
    sim = Simulation(trace, replace(scenario, policies=(keep2,)), variant, audit=True)
    sim.run()
    # Room for all four on ECS, but the policy puts ordinals 2 and 3 on ECI by ordinal.
    assert sim.scheduler.eci_pod_s == pytest.approx(90.0 + 190.0)  # db-3 until 100, db-2 to 200
    assert sorted(sim.replicas[db][1]) == ["shop/db-0", "shop/db-1", "shop/db-2"]


def gpu_scenario() -> Scenario:
    """The small group plus an 8-GPU group at 64 CNY/h, forecast on (refit every 6 h)."""
    gpu = {
        "name": "gpu",
        "instanceType": {"cpu": "96", "memory": "384Gi", "gpu": 8, "maxPods": 110},
        "labels": {"spillover.dev/node-group": "gpu"},
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        "pricePerHour": 64.0,
        "min": 0,
        "max": 10,
        "cooldown": "0s",
        "bootTime": "120s",
    }
    settings = {
        "scaleDownUtilizationThreshold": 0.5,
        "scaleDownUnneededTime": "10m",
        "scaleDownDelayAfterAdd": "10m",
        "eciPrice": ECI_PRICE,
    }
    return small_scenario(
        autoscaler={"groups": [SMALL_GROUP, gpu], "settings": settings},
        forecast={
            "enabled": True,
            "refit": "6h",
            "history": "168h",
            "step": "5m",
            "passEvery": "1h",
            "minHistory": "1h",
        },
    )


def steady_short_gpu_pods(hours: int, pods: int = 14) -> Trace:
    """``pods`` 1-GPU pods at all times, each living 10 minutes: too short for ECS one by one."""
    gpu_pod = Template(Resources(4000, 16 * 2**30, 1, 1000), {"app": "train"})
    events: list[tuple[float, int, Event]] = []
    n = 0
    for slot in range(pods):
        t = slot * 50.0
        while t < hours * 3600:
            wl = WorkloadKey("shop", "Pod", f"g{n}")
            events.append((t, 2 * n, PodCreated(t, f"g{n}", wl, f"g{n}", gpu_pod)))
            events.append((t + 600, 2 * n + 1, PodDeleted(t + 600, f"g{n}")))
            n += 1
            t += 600
    events.sort(key=lambda e: (e[0], e[1]))
    return Trace(TraceHeader(), [e for _, _, e in events])


def test_steady_short_gpu_demand_lands_on_forecast_gpu_nodes() -> None:
    scenario = gpu_scenario()
    trace = steady_short_gpu_pods(48)
    sim = Simulation(trace, scenario, by_name(scenario, trace)["spillover"], audit=True)
    on_eci: set[str] = set()
    bind = sim.scheduler.bind

    def checked_bind(rec: Any, node: Any) -> None:
        assert rec.uid not in on_eci, f"{rec.uid} left ECI"  # an ECI pod is never moved
        if node is None:
            # the policy overflows to ECI only when no ECS node has room for the pod
            assert sim.scheduler.candidates(rec) == []
            on_eci.add(rec.uid)
        bind(rec, node)

    sim.scheduler.bind = checked_bind  # type: ignore[method-assign]
    r = sim.run()
    check_result(r, scenario)
    # Until the first refit with history (6 h) every pod runs on ECI; from then on the gpu
    # forecast (14 GPUs) keeps two 8-GPU nodes and the pods land there as they arrive: the
    # second node holds 6 GPUs, worth 6 * 12 + 24 * 0.1764 + 96 * 0.022068 = 78.4 CNY/h on ECI
    # against the node's 64 * (120 s + 1 h) / 1 h = 66.1.
    assert r.ecs_node_seconds_by_group.get("gpu", 0.0) > 0
    assert r.ecs_node_seconds_by_group.get("small", 0.0) == 0.0
    assert r.eci_share < 0.25
    assert r.pending_percentile(99) <= 10.0


def test_forecast_gpus_a_whole_node_would_not_pay_for_stay_on_eci() -> None:
    # 12 GPUs: the second node would hold 4 GPUs, worth 4 * 12 + 16 * 0.1764 + 64 * 0.022068 =
    # 52.2 CNY/h on ECI, less than the node's 66.1: one 8-GPU node, the other 4 pods on ECI
    scenario = gpu_scenario()
    r = simulate(
        steady_short_gpu_pods(24, pods=12),
        scenario,
        by_name(scenario, steady_short_gpu_pods(24, pods=12))["spillover"],
    )
    assert r.timeline.ecs_nodes.max() == 1
    assert r.eci_share > 0.3


def test_one_spare_node_per_group_with_two_groups() -> None:
    """Each group keeps its own spare (a placeholder sized like its node), the surplus goes."""
    scenario = gpu_scenario()
    train = WorkloadKey("shop", "Deployment", "train")
    gpu_pod = Template(Resources(4000, 16 * 2**30, 1, 1000), {"app": "train"})
    trace = Trace(
        TraceHeader(),
        [
            ReplicasChanged(0.0, WEB, 4, ONE),
            ReplicasChanged(0.0, train, 12, gpu_pod),  # two 8-GPU nodes
            ReplicasChanged(3600.0, WEB, 0),
            ReplicasChanged(3600.0, train, 0),
            ReplicasChanged(10_000.0, train, 0),
        ],
    )
    r = simulate(trace, scenario, by_name(scenario, trace)["reactive-ecs+1"], audit=True)
    assert r.never_started == 0
    downs = [a for a in r.actions if a.kind == "scale-down"]
    assert {a.group for a in downs} == {"small", "gpu"}
    assert r.timeline.ecs_nodes[-1] == 2  # one spare in each group
    assert r.timeline.ecs_gpu[-1] == 8


def test_memory_is_bounded_by_the_trace_not_its_span() -> None:
    """Nine years between two events: the time series keeps at most MAX_SAMPLES samples."""
    from autoscaler.replay.simulator import MAX_SAMPLES

    scenario = small_scenario()
    nine_years = 9 * 365 * 86_400.0
    trace = Trace(
        TraceHeader(),
        [
            PodCreated(0.0, "a", WorkloadKey("shop", "Pod", "a"), "a", ONE),
            PodDeleted(nine_years, "a"),
        ],
    )
    r = simulate(trace, scenario, by_name(scenario, trace)["spillover"])
    assert MAX_SAMPLES // 2 < r.timeline.t.size <= MAX_SAMPLES + 1
    assert r.eci_vcpu_seconds == pytest.approx(nine_years - 10.0)
    with pytest.raises(ValueError, match=r"trace spans 54 years: are these absolute times\?"):
        simulate(
            Trace(TraceHeader(), [PodDeleted(1.7e9, "x")]),
            scenario,
            by_name(scenario, trace)["spillover"],
        )


def test_kept_per_pod_facts_are_worked_out_afresh_by_the_audit() -> None:
    """The groups a pod fits, its policy and its node's unit are worked out once per pod (the
    first two shared by pods that match alike); the audit recomputes them for every pod: a pod of another namespace
    with the same labels gets its own namespace's policy (here none)."""
    scenario = small_scenario()
    trace = Trace(TraceHeader(), [PodDeleted(100.0, "none")])
    sim = Simulation(trace, scenario, by_name(scenario, trace)["spillover"], audit=True)
    s = sim.scheduler
    for ns in ("shop", "shop", "elsewhere"):
        wl = WorkloadKey(ns, "Deployment", "web")
        s.schedule(s.new_pod(f"{ns}/{len(s.pods)}", wl, f"web-{len(s.pods)}", ONE))
    sim.check()
    recs = list(s.pods.values())
    assert [r.policy is not None for r in recs] == [True, True, False]
    assert all(r.fits == ("small",) for r in recs)
    assert [r.unit for r in recs] == [1, 1, None]  # no node yet: ECI, counted until unbound
    recs[0].unit = 0
    with pytest.raises(AssertionError, match="kept unit"):
        sim.check()
    recs[0].unit = 1
    sim.check()
    recs[0].fits = ()
    with pytest.raises(AssertionError, match="fits groups"):
        sim.check()


def test_a_placement_scores_each_offered_node_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pick among the nodes the extender accepts reuses the scores the offer was made
    with (nothing changes in between): one node, one score."""
    from autoscaler.replay.scoring import score

    scenario = small_scenario()
    trace = Trace(TraceHeader(), [PodDeleted(100.0, "none")])
    sim = Simulation(trace, scenario, by_name(scenario, trace)["static-N"], audit=True)
    s = sim.scheduler
    assert len(s.nodes) == 1
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> int:
        value = score(*args, **kwargs)
        calls.append(value)
        return value

    monkeypatch.setattr("autoscaler.replay.scheduler.score", counted)
    rec = s.new_pod("shop/a", WEB, "a", ONE)
    s.schedule(rec)
    assert rec.node is not None
    assert len(calls) == 1
    sim.check()
