"""Planner tables: small clusters whose right answer is computed by hand in each test's comment."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from autoscaler.forecast import Forecast
from autoscaler.nodegroup import InstanceType, NodeGroup, PlannerSettings, RemovalPolicy
from autoscaler.planner import EXPECTED_DURATION, Plan, plan
from autoscaler.state import DisruptionBudget, GroupNode, GroupState
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
from extender.policy import ResourcePolicy, Unit
from extender.selectors import LabelSelector
from extender.snapshot import ClusterState

GIB = 2**30
NOW = 100_000.0
LABEL = "spillover.dev/node-group"
G4 = NodeGroup("g4", InstanceType("ecs.4c16g", 4000, 16 * GIB), price_per_hour=0.706, max_size=10)
G8 = NodeGroup("g8", InstanceType("ecs.8c32g", 8000, 32 * GIB), price_per_hour=1.0, max_size=10)
# Two pools of 4-cpu nodes, for policies whose ECS unit names a pool.
GENERAL4 = NodeGroup(
    "general",
    InstanceType("ecs.4c16g", 4000, 16 * GIB),
    labels={"pool": "general"},
    price_per_hour=0.706,
    max_size=10,
)
BATCH4 = dataclasses.replace(GENERAL4, name="batch", labels={"pool": "batch"})
ECI = Node(
    "virtual-kubelet",
    labels={"type": "virtual-kubelet"},
    taints=(Taint("virtual-kubelet.io/provider", "alibabacloud", "NoSchedule"),),
    allocatable=Resources(10**6, 10**15, 10**5, 10**6),
    kind=NodeKind.ECI,
)
ECI_TOLERATION = Toleration("virtual-kubelet.io/provider", "Exists")


def pod(
    name: str,
    cpu: int = 1000,
    mem: int = 2 * GIB,
    *,
    node: str = "",
    app: str = "web",
    kind: str = "ReplicaSet",
    gpu: int = 0,
    **extra: object,
) -> Pod:
    owner = None if kind == "Pod" else OwnerRef(kind, f"{app}-abc" if kind == "ReplicaSet" else app)
    workload = WorkloadKey(
        "default", "Deployment" if kind == "ReplicaSet" else kind, name if kind == "Pod" else app
    )
    fields: dict[str, object] = {
        "uid": name,
        "name": name,
        "namespace": "default",
        "labels": {"app": app, "pod-template-hash": "abc"},
        "requests": Resources(cpu, mem, 1, gpu),
        "owner": owner,
        "node_name": node,
        "phase": "Running" if node else "Pending",
        "workload": workload,
        "tolerations": (ECI_TOLERATION,),
    }
    fields.update(extra)
    return Pod(**fields)  # type: ignore[arg-type]


def node(name: str, group: NodeGroup, created: float = 0.0, **extra: object) -> Node:
    return Node(
        name,
        labels={**group.labels, LABEL: group.name},
        taints=group.taints,
        allocatable=group.instance_type.capacity,
        created=created,
        **extra,  # type: ignore[arg-type]
    )


def run(
    pods: Sequence[Pod],
    groups: Sequence[GroupState],
    *,
    nodes: Sequence[Node] = (),
    policies: Sequence[ResourcePolicy] = (),
    settings: PlannerSettings | None = None,
    forecast: Forecast | Mapping[str, Forecast] | None = None,
    unneeded: dict[str, float] | None = None,
    pdbs: Sequence[DisruptionBudget] = (),
    backend: str = "numba",
) -> Plan:
    state = ClusterState(nodes=nodes, pods=pods, policies=policies)
    return plan(
        state,
        groups,
        forecast=forecast,
        settings=settings or PlannerSettings(),
        now=NOW,
        unneeded=unneeded,
        pdbs=pdbs,
        backend=backend,
    )


def ten_pods() -> list[Pod]:
    return [pod(f"p{i}") for i in range(10)]


# -- scale-up ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_ten_small_pods_take_three_4cpu_nodes(backend: str) -> None:
    result = run(ten_pods(), [GroupState(G4, 0)], backend=backend)
    (up,) = result.scale_ups
    assert (up.group, up.delta, up.new_target) == ("g4", 3, 3)
    assert sorted(up.pods) == sorted(f"default/p{i}" for i in range(10))
    assert "10 pod(s) fit on 3 new" in up.reason
    assert up.code == "pending-pods"
    assert not result.unschedulable


def test_least_waste_and_price_pick_differently() -> None:
    # g4: 3 nodes, cpu waste 1 - 10/12; g8: 2 nodes, cpu waste 1 - 10/16 -> least-waste takes g4.
    # price per pod: g4 3 * 0.706 / 10 = 0.212, g8 2 * 1.0 / 10 = 0.2 -> price takes g8.
    groups = [GroupState(G4, 0), GroupState(G8, 0)]
    waste = run(ten_pods(), groups)
    price = run(ten_pods(), groups, settings=PlannerSettings(expander="price"))
    assert [(u.group, u.delta) for u in waste.scale_ups] == [("g4", 3)]
    assert [(u.group, u.delta) for u in price.scale_ups] == [("g8", 2)]
    assert "least-waste" in waste.scale_ups[0].reason
    assert "price" in price.scale_ups[0].reason


def test_priority_expander() -> None:
    settings = PlannerSettings(expander="priority", priorities={10: ("g8",), 1: (".*",)})
    result = run(ten_pods(), [GroupState(G4, 0), GroupState(G8, 0)], settings=settings)
    assert [(u.group, u.delta) for u in result.scale_ups] == [("g8", 2)]


def test_cost_expander_compares_with_eci() -> None:
    # Over one hour, g8's 2 nodes cost 2.0 CNY; the pods on ECI would cost
    # 10 * (1 * 0.1764 + 2 * 0.02207) = 2.205 CNY; g4 costs 2.118: net per pod -0.0087 vs -0.0205.
    result = run(
        ten_pods(),
        [GroupState(G4, 0), GroupState(G8, 0)],
        settings=PlannerSettings(expander="cost"),
    )
    (up,) = result.scale_ups
    assert up.group == "g8"
    assert "cheaper than" in up.reason


def test_max_size_is_respected_and_the_rest_gets_a_reason() -> None:
    small = dataclasses.replace(G4, max_size=2)
    result = run(ten_pods(), [GroupState(small, 0)])
    (up,) = result.scale_ups
    assert (up.delta, up.new_target, len(up.pods)) == (2, 2, 8)
    assert len(result.unschedulable) == 2
    assert all("reached its max size 2" in r for r in result.unschedulable.values())


def test_target_above_registered_nodes_counts_as_booting_capacity() -> None:
    # target 1 but no node registered yet: 4 pods wait for the booting node, 6 need 2 more
    result = run(ten_pods(), [GroupState(G4, 1)])
    (up,) = result.scale_ups
    assert (up.delta, up.new_target, len(up.pods)) == (2, 3, 6)


def test_overflow_goes_to_the_next_group_when_one_is_full() -> None:
    small = dataclasses.replace(G4, max_size=2)
    result = run(ten_pods(), [GroupState(small, 0), GroupState(G8, 0)])
    assert [(u.group, u.delta, len(u.pods)) for u in result.scale_ups] == [
        ("g4", 2, 8),
        ("g8", 1, 2),
    ]


def test_identical_groups_pack_alike() -> None:
    # the same instance type in two zones: packed once, the tie broken by name; with room for one
    # node, zone a's single full node wastes less (0% cpu) than zone b's three, so it goes first
    zone_a = dataclasses.replace(G4, name="g4-a", labels={"zone": "a"})
    zone_b = dataclasses.replace(G4, name="g4-b", labels={"zone": "b"})
    result = run(ten_pods(), [GroupState(zone_b, 0), GroupState(zone_a, 0)])
    assert [(u.group, u.delta) for u in result.scale_ups] == [("g4-a", 3)]
    small_a = dataclasses.replace(zone_a, max_size=1)
    result = run(ten_pods(), [GroupState(zone_b, 0), GroupState(small_a, 0)])
    assert [(u.group, u.delta, len(u.pods)) for u in result.scale_ups] == [
        ("g4-b", 2, 6),
        ("g4-a", 1, 4),
    ]


def test_per_loop_cap() -> None:
    result = run(ten_pods(), [GroupState(G4, 0)], settings=PlannerSettings(max_nodes_per_loop=1))
    assert [(u.delta, len(u.pods)) for u in result.scale_ups] == [(1, 4)]
    assert all("per-loop cap" in r for r in result.unschedulable.values())


def test_cooldown_is_respected() -> None:
    result = run(ten_pods(), [GroupState(G4, 0, last_scale_up=NOW - 100)])
    assert result.scale_ups == ()
    assert all("in cooldown" in r for r in result.unschedulable.values())
    later = run(ten_pods(), [GroupState(G4, 0, last_scale_up=NOW - 301)])
    assert later.scale_ups[0].delta == 3


def test_taint_and_selector_mismatch_are_excluded_with_a_reason() -> None:
    tainted = dataclasses.replace(
        G8, name="gpu", taints=(Taint("nvidia.com/gpu", "", "NoSchedule"),)
    )
    other = dataclasses.replace(G4, name="batch", labels={"pool": "batch"})
    picky = [pod(f"w{i}", node_selector={"pool": "web"}) for i in range(2)]
    wide = pod("wide", 6000)  # only the 8-cpu group could hold it, and it is tainted
    result = run([*ten_pods(), *picky, wide], [GroupState(tainted, 0), GroupState(other, 0)])
    (up,) = result.scale_ups
    assert (up.group, up.delta, len(up.pods)) == ("batch", 3, 10)
    assert set(result.unschedulable) == {"default/w0", "default/w1", "default/wide"}
    reason = result.unschedulable["default/w0"]
    assert "gpu: node selector / required affinity does not match" in reason
    assert "batch: node selector / required affinity does not match" in reason
    reason = result.unschedulable["default/wide"]
    assert "gpu: untolerated taint nvidia.com/gpu=:NoSchedule" in reason
    assert "batch: pod requests exceed a new node's allocatable" in reason


def test_pod_too_big_for_every_group() -> None:
    result = run([pod("huge", 16_000)], [GroupState(G4, 0), GroupState(G8, 0)])
    assert result.scale_ups == ()
    assert "exceed a new node's allocatable" in result.unschedulable["default/huge"]


def test_gpu_pods_go_to_the_gpu_group() -> None:
    gpu = NodeGroup(
        "gpu",
        InstanceType("gn7", 96_000, 384 * GIB, 8000),
        taints=(Taint("nvidia.com/gpu", "present", "NoSchedule"),),
        price_per_hour=64,
        max_size=4,
    )
    tol = (Toleration("nvidia.com/gpu", "Exists"),)
    pods = [pod(f"t{i}", 8000, 32 * GIB, gpu=1000, tolerations=tol) for i in range(9)]
    result = run(pods, [GroupState(G8, 0), GroupState(gpu, 0)])
    assert [(u.group, u.delta) for u in result.scale_ups] == [("gpu", 2)]


def test_free_and_booting_capacity_is_used_first() -> None:
    # one registered g4 node with 2 cpu free, one still booting (target 2): 6 pods fit, 4 need 1 node
    n1 = node("n1", G4)
    busy = [pod(f"b{i}", node="n1") for i in range(2)]
    result = run([*busy, *ten_pods()], [GroupState(G4, 2)], nodes=[n1])
    (up,) = result.scale_ups
    assert (up.delta, len(up.pods)) == (1, 4)
    assert any("nodes still booting" in n for n in result.notes)


def test_daemonset_pods_are_not_demand_and_overhead_is_subtracted() -> None:
    ds = pod("ds", 100, GIB, kind="DaemonSet", app="kube-proxy")
    settings = PlannerSettings(daemonset_overhead=Resources(100, GIB, 1))
    # 3.9 allocatable cpu per node: 3 pods each -> 10 pods need 4 nodes, the DaemonSet pod none
    result = run([ds, *ten_pods()], [GroupState(G4, 0)], settings=settings)
    (up,) = result.scale_ups
    assert (up.delta, len(up.pods)) == (4, 10)


def policy(ecs_max: int) -> ResourcePolicy:
    return ResourcePolicy(
        "web",
        "default",
        LabelSelector({"app": "web"}),
        (Unit(NodeKind.ECS, ecs_max), Unit(NodeKind.ECI)),
    )


def test_policy_sends_only_the_first_n_to_ecs() -> None:
    # max 3 on ECS, one already there: 2 of the 5 pending pods are ECS demand, 3 belong on ECI
    n1 = node("n1", G4)
    running = pod("r0", 4000, node="n1")
    result = run(
        [running, *ten_pods()[:5]], [GroupState(G4, 1)], nodes=[n1, ECI], policies=[policy(3)]
    )
    (up,) = result.scale_ups
    assert (up.delta, up.pods) == (1, ("default/p0", "default/p1"))
    assert any("3 pending pod(s) belong on ECI" in n for n in result.notes)


@pytest.mark.parametrize(
    ("duration", "created", "moves"),
    [
        ("26m", 0.0, True),
        ("1560", 0.0, True),
        ("24m", 0.0, False),
        ("55m", NOW - 35 * 60, False),  # 20 min left
        # past its estimate, a replica still serves: one more horizon (3,600 s > 1,501 s), as
        # rebalance and a replica without the annotation expect
        ("30m", NOW - 40 * 60, True),
        ("soon", 0.0, False),
    ],
)
def test_eci_pods_cheaper_on_ecs_break_even(duration: str, created: float, moves: bool) -> None:
    # 2 cpu / 8 GiB pod alone on a new 2 cpu / 8 GiB node (0.353 CNY/h; ECI 0.52934 CNY/h), 60 s
    # boot, 10 min unneeded time: ECS is cheaper when 0.353 * (60 + R + 600) < 0.52934 * (R - 60),
    # that is when the pod has more than R = 1501 s (25 min) left.
    g2 = NodeGroup("g2", InstanceType("ecs.2c8g", 2000, 8 * GIB), price_per_hour=0.353, max_size=5)
    on_eci = pod(
        "e0",
        2000,
        8 * GIB,
        node=ECI.name,
        annotations={EXPECTED_DURATION: duration},
        created=created,
    )
    result = run([on_eci], [GroupState(g2, 0)], nodes=[ECI], policies=[policy(3)])
    if moves:
        (up,) = result.scale_ups
        assert (up.group, up.delta, up.pods) == ("g2", 1, ("default/e0",))
        assert "now on ECI, cheaper on ECS" in up.reason
        assert up.code == "eci-cheaper-on-ecs"
    else:
        assert result.scale_ups == ()


G2_DEAR = NodeGroup("g2", InstanceType("ecs.2c8g", 2000, 8 * GIB), price_per_hour=0.48, max_size=5)


@pytest.mark.parametrize(
    ("age", "sibling", "moves"),
    [
        # expected to run 3 h more: ECS 0.48 * 11,460 / 3600 = 1.528 < ECI 0.529344 * 10,740 /
        # 3600 = 1.579210
        (3 * 3600.0, False, True),
        # 100 min old: ECS 0.48 * 6,660 / 3600 = 0.888 > ECI 0.529344 * 5,940 / 3600 = 0.873418
        (6000.0, False, False),
        # a replica with a sibling is the first a scale-in takes: one horizon, ECS 0.48 * 4,260
        # / 3600 = 0.568 > ECI 0.529344 * 3,540 / 3600 = 0.520522 (for each of the two)
        (3 * 3600.0, True, False),
    ],
)
def test_a_lone_replica_on_eci_is_expected_to_run_as_long_again_as_it_has_run(
    age: float, sibling: bool, moves: bool
) -> None:
    # A 2 cpu / 8 GiB replica without an expected duration, alone on a new 2 cpu / 8 GiB node
    # at 0.48 CNY/h (ECI 0.529344 CNY/h), 60 s boot, 10 min unneeded time: ECS is cheaper when
    # 0.48 * (660 + R) < 0.529344 * (R - 60), that is when it has more than R = 7,064.5 s left,
    # which the horizon (3,600 s) never is
    on_eci = [pod("e0", 2000, 8 * GIB, node=ECI.name, created=NOW - age)]
    if sibling:
        on_eci.append(pod("e1", 2000, 8 * GIB, node=ECI.name, created=NOW - age))
    result = run(on_eci, [GroupState(G2_DEAR, 0)], nodes=[ECI], policies=[policy(3)])
    if moves:
        (up,) = result.scale_ups
        assert (up.group, up.delta, up.pods) == ("g2", 1, ("default/e0",))
        assert up.code == "eci-cheaper-on-ecs"
    else:
        assert result.scale_ups == ()


def test_a_new_node_for_pods_on_eci_is_judged_over_the_time_all_of_them_run() -> None:
    # Two 2 cpu / 8 GiB replicas of two single-pod Deployments on ECI (0.529344 CNY/h each):
    # one 10 h old (expected to run 10 h more), one a minute old (the horizon, 1 h).  A new
    # 4 cpu / 16 GiB node at 0.7 CNY/h holds both.  Over the hour both run it costs 0.7 * (60
    # + 3,600 + 600) / 3600 = 0.828333 against ECI's 2 * 0.529344 * 3,540 / 3600 = 1.041043:
    # it pays.  Paid for the older one's 10 h (36,660 s: 7.128333) against ECI's 0.529344 *
    # (35,940 + 3,540) / 3600 = 5.805139, it would not.  Each alone: the per-pod filter passes
    # (half the node: 0.35 * 4,260 / 3600 = 0.414167 < 0.520522; 0.35 * 36,660 / 3600 =
    # 3.564167 < 5.284629).
    g4 = NodeGroup("g4", InstanceType("ecs.4c16g", 4000, 16 * GIB), price_per_hour=0.7, max_size=5)
    old, new = (
        pod(
            name,
            2000,
            8 * GIB,
            node=ECI.name,
            created=NOW - age,
            workload=WorkloadKey("default", "Deployment", name),
        )
        for name, age in (("old", 36_000.0), ("new", 60.0))
    )
    result = run([old, new], [GroupState(g4, 0)], nodes=[ECI], policies=[policy(3)])
    (up,) = result.scale_ups
    assert (up.group, up.delta, sorted(up.pods)) == ("g4", 1, ["default/new", "default/old"])


def test_eci_pods_beyond_the_ecs_max_stay() -> None:
    g2 = NodeGroup("g2", InstanceType("ecs.2c8g", 2000, 8 * GIB), price_per_hour=0.353, max_size=5)
    n1 = node("n1", g2)
    on_ecs = pod("s0", 2000, 8 * GIB, node="n1")
    on_eci = pod("e0", 2000, 8 * GIB, node=ECI.name)  # Deployment: long-running
    result = run([on_ecs, on_eci], [GroupState(g2, 1)], nodes=[n1, ECI], policies=[policy(1)])
    assert result.scale_ups == ()


# -- predictive --------------------------------------------------------------------------------


def flat(level: float, upper: float | None = None) -> Forecast:
    n = 120
    return Forecast(
        start=NOW,
        step=60.0,
        point=np.full(n, level),
        upper=np.full(n, level if upper is None else upper),
        quantile=0.9,
        period="none",
        model="static",
    )


# Break-even arithmetic of the predictive tests (default prices, 1 h horizon): a g4 node's worth
# of demand (4 cores, 16 GiB) costs 4 * 0.1764 + 16 * 0.022068 = 1.0587 CNY/h on ECI; a new g4
# node costs 0.706 * (60 s boot + 3600 s) / 3600 = 0.7178 CNY, one already up 0.706 CNY.  A node
# holding 3 of its 4 cores pays (0.794), one holding 2 does not (0.529).  A gpu8 node's worth is
# 8 * 12 + 96 * 0.1764 + 384 * 0.022068 = 121.41 CNY/h; a new one costs 64 * 3660 / 3600 =
# 65.07, one up 64: holding 6 GPUs pays (91.06), holding 4 does not (60.70).


def test_forecast_pre_provisions_the_nodes_that_pay_for_themselves() -> None:
    # point forecast 11 cores, no ECS capacity: two full nodes and a third holding 3 cores
    result = run([], [GroupState(G4, 0)], forecast=flat(11, 20))
    (up,) = result.scale_ups
    assert (up.group, up.delta, up.pods) == ("g4", 3, ())
    assert up.reason.startswith("forecast: pre-provision 3 node(s), each paying for itself")
    assert up.code == "predictive"
    # 10 cores: the third node would hold 2 cores, worth less than it costs; the upper band
    # (20 cores) does not matter: an overflow to ECI starts in seconds, so the expected demand
    # judges the node
    (up,) = run([], [GroupState(G4, 0)], forecast=flat(10, 20)).scale_ups
    assert up.delta == 2


def test_a_group_grown_for_pods_and_forecast_has_the_code_of_its_first_reason() -> None:
    # 10 pods take 3 nodes (12 cores); the forecast expects 19 cores: 2 more nodes (4 + 3 cores)
    result = run(ten_pods(), [GroupState(G4, 0)], forecast=flat(19, 20))
    (up,) = result.scale_ups
    assert up.delta == 5
    assert "; then forecast: pre-provision 2 node(s)" in up.reason
    assert up.code == "pending-pods"


def test_forecast_uses_the_break_even_share_of_the_window() -> None:
    # 4 cores steady and a 20-minute spike to 20: the second node would hold 4 cores for 20 of
    # the 61 steps after the boot: 1.0587 * 20 / 61 = 0.347 < 0.7178, so 1 node, not 5
    point = np.full(120, 4.0)
    point[10:30] = 20.0
    spike = dataclasses.replace(flat(4), point=point)
    result = run([], [GroupState(G4, 0)], forecast=spike)
    assert [(u.group, u.delta) for u in result.scale_ups] == [("g4", 1)]


def test_forecast_never_scales_in() -> None:
    nodes = [node(f"n{i}", G4, created=i) for i in range(3)]
    pods = [pod(f"r{i}", 3000, node=f"n{i}") for i in range(3)]  # 75% busy: needed
    groups = [GroupState(G4, 3, last_scale_up=0.0)]
    for forecast in (flat(0), None):
        result = run(pods, groups, nodes=nodes, forecast=forecast)
        assert result.scale_ups == ()
        assert result.scale_downs == ()


def test_forecast_keeps_pre_provisioned_capacity() -> None:
    # three empty nodes, unneeded for long; 11 cores expected: the third node holds 3 cores
    # (0.794 > 0.706 for a node already up), so ECS keeps 12 cores and no node goes
    nodes = [node(f"n{i}", G4, created=i) for i in range(3)]
    old = {f"n{i}": NOW - 3600 for i in range(3)}
    groups = [GroupState(G4, 3, last_scale_up=0.0)]
    kept = run([], groups, nodes=nodes, forecast=flat(11), unneeded=old)
    assert kept.scale_downs == ()
    assert any("must stay at or above 12.00 cores" in n for n in kept.notes)
    # the forecast falls to 5 cores: the second node would hold 1 core (0.265 < 0.706), so ECS
    # keeps 4 cores and two of the three nodes go (12 - 4 = 8 >= 4, 8 - 4 = 4 >= 4, not a third)
    freed = run([], groups, nodes=nodes, forecast=flat(5), unneeded=old)
    assert [d.node for d in freed.scale_downs] == ["n0", "n1"]


def test_forecast_and_min_size_both_keep_empty_nodes_with_their_own_reasons() -> None:
    # four empty nodes, min 2, 15 cores expected (the fourth node holds 3: ECS keeps 16): the
    # first two would take capacity below 16, the last two the group below its minimum
    g4 = dataclasses.replace(G4, min_size=2)
    nodes = [node(f"n{i}", g4, created=i) for i in range(4)]
    old = {f"n{i}": NOW - 3600 for i in range(4)}
    result = run(
        [], [GroupState(g4, 4, last_scale_up=0.0)], nodes=nodes, forecast=flat(15), unneeded=old
    )
    assert result.scale_downs == ()
    assert [n for n in result.notes if n.startswith("node ")] == [
        "node n0 stays: capacity of its cpu groups must stay at or above 16.00 cores (forecast)",
        "node n1 stays: capacity of its cpu groups must stay at or above 16.00 cores (forecast)",
        "node n2 stays: group g4 is at its min size 2",
        "node n3 stays: group g4 is at its min size 2",
    ]


GPU8 = NodeGroup(
    "gpu8",
    InstanceType("ecs.gn7i.8gpu", 96_000, 384 * GIB, gpu_milli=8000),
    price_per_hour=64.0,
    max_size=10,
    taints=(Taint("nvidia.com/gpu", "present", "NoSchedule"),),
)
GPU_TOLERATION = Toleration("nvidia.com/gpu", "Exists")


def gpu_job(name: str, gpu: int = 1000, *, kind: str = "Job", **extra: Any) -> Pod:
    """A short GPU Job pod: on its own never cheaper on ECS (no expected duration)."""
    return pod(
        name,
        4000,
        16 * GIB,
        kind=kind,
        app="train",
        gpu=gpu,
        tolerations=(ECI_TOLERATION, GPU_TOLERATION),
        **extra,
    )


def test_gpu_forecast_sizes_the_gpu_group() -> None:
    # 14 GPUs expected for the whole window, GPU nodes of 8: the second holds 6 (91.06 > 65.07),
    # so 2 nodes of gpu8, none of the general group (no cpu forecast)
    result = run([], [GroupState(G4, 0), GroupState(GPU8, 0)], forecast={"gpu": flat(14)})
    (up,) = result.scale_ups
    assert (up.group, up.delta, up.pods, up.code) == ("gpu8", 2, (), "predictive")
    assert "14.00 GPUs of expected demand above ECS capacity 0.00 GPUs" in up.reason
    # 12 GPUs: the second would hold 4 (60.70 < 65.07): one node
    result = run([], [GroupState(G4, 0), GroupState(GPU8, 0)], forecast={"gpu": flat(12)})
    assert [(u.group, u.delta) for u in result.scale_ups] == [("gpu8", 1)]


def test_forecasts_per_class_size_their_own_groups() -> None:
    # cpu 11 cores -> 3 g4 nodes; gpu 14 GPUs -> 2 gpu8 nodes (whose 192 cores do not count as
    # general capacity: GPU pods' taint keeps general pods off them)
    groups = [GroupState(G4, 0), GroupState(GPU8, 0)]
    result = run([], groups, forecast={"cpu": flat(11), "gpu": flat(14)})
    assert [(u.group, u.delta) for u in result.scale_ups] == [("g4", 3), ("gpu8", 2)]


def test_short_gpu_pods_land_on_pre_provisioned_gpu_nodes() -> None:
    # the two gpu8 nodes the forecast asked for are up; twelve short 1-GPU pods arrive: they fit
    # their free capacity, so nothing scales up and nothing is sent to ECI for lack of room
    nodes = [node(f"gpu-{i}", GPU8, created=i) for i in range(2)]
    pods = [gpu_job(f"j{i}") for i in range(12)]
    groups = [GroupState(G4, 0), GroupState(GPU8, 2, last_scale_up=0.0)]
    result = run(pods, groups, nodes=nodes, forecast={"gpu": flat(12)})
    assert result.scale_ups == ()
    assert result.unschedulable == {}
    assert any("12 pending pod(s) fit free capacity of existing nodes" in n for n in result.notes)


def test_short_gpu_pods_on_eci_are_not_moved_to_ecs() -> None:
    # pods already on ECI stay there: each is too short to be cheaper on ECS on its own, and the
    # forecast only sizes capacity for the pods still to come
    nodes = [ECI, node("gpu-0", GPU8)]
    pods = [gpu_job(f"j{i}", node="virtual-kubelet") for i in range(4)]
    groups = [GroupState(GPU8, 1, last_scale_up=0.0)]
    train = ResourcePolicy(
        "train",
        "default",
        LabelSelector({"app": "train"}),
        (Unit(NodeKind.ECS), Unit(NodeKind.ECI)),
    )
    result = run(pods, groups, nodes=nodes, policies=[train], forecast={"gpu": flat(8)})
    assert result.scale_ups == ()
    assert result.scale_downs == ()


def test_gpu_forecast_never_scales_in_and_holds_its_level() -> None:
    # two empty gpu8 nodes, unneeded for long: 14 GPUs expected keep both (the second holds 6:
    # 91.06 > 64), 12 or 5 GPUs let one go (4 GPUs: 60.70 < 64), no forecast lets both go; a
    # 0-GPU forecast removes no busy node either
    nodes = [node(f"gpu-{i}", GPU8, created=i) for i in range(2)]
    old = {f"gpu-{i}": NOW - 3600 for i in range(2)}
    groups = [GroupState(GPU8, 2, last_scale_up=0.0)]
    kept = run([], groups, nodes=nodes, forecast={"gpu": flat(14)}, unneeded=old)
    assert kept.scale_ups == ()
    assert kept.scale_downs == ()
    assert any("must stay at or above 16.00 GPUs (forecast)" in n for n in kept.notes)
    for level in (12, 5):
        one = run([], groups, nodes=nodes, forecast={"gpu": flat(level)}, unneeded=old)
        assert [d.node for d in one.scale_downs] == ["gpu-0"]
    both = run([], groups, nodes=nodes, forecast=None, unneeded=old)
    assert [d.node for d in both.scale_downs] == ["gpu-0", "gpu-1"]
    busy = [gpu_job(f"j{i}", 8000, node=f"gpu-{i}") for i in range(2)]
    busy = [dataclasses.replace(p, requests=Resources(60_000, 300 * GIB, 1, 8000)) for p in busy]
    for forecast in ({"gpu": flat(0)}, None):
        result = run(busy, groups, nodes=nodes, forecast=forecast)
        assert result.scale_ups == ()
        assert result.scale_downs == ()


TRAIN = ResourcePolicy(
    "train", "default", LabelSelector({"app": "train"}), (Unit(NodeKind.ECS), Unit(NodeKind.ECI))
)


@pytest.mark.parametrize(
    ("kind", "expected", "age", "nodes"),
    [
        ("Pod", "8h", 0.0, 1),
        ("Job", "8h", 0.0, 2),
        ("ReplicaSet", "8h", 0.0, 2),
        ("Pod", "30m", 0.0, 1),
        ("Pod", "10m", 0.0, 2),
        ("Pod", None, 0.0, 2),
        ("Pod", None, 600.0, 2),
        ("Pod", None, 1800.0, 1),
        ("Pod", "10m", 8 * 3600.0, 1),
    ],
)
def test_forecast_stacks_no_node_for_eci_pods_it_would_not_take(
    kind: str, expected: str | None, age: float, nodes: int
) -> None:
    # 14 GPUs expected, one 8-GPU pod of them running on ECI for 8 more hours.  A bare pod
    # never moves: the nodes added take only the other 6 GPUs, and one node holding 6 pays
    # (91.06 > 65.07): 1 node, not 2.  A Deployment's replica, or a Job's pod (which runs its
    # work again), moves into the room: 14 GPUs, 2 nodes (the first for the pod itself, then
    # one for the other 6).
    # The bare pod counts only until its expected end; the 61 steps after the boot are at
    # 120 s, 180 s, ..., 3720 s.  30 min left: pinned at 28 steps (120..1740 s); the second node
    # holds 6 GPUs at the other 33: 6 * 33 / 61 / 8 * 121.41 = 49.3 < 65.07, 1 node.  10 min
    # left: pinned at 8 steps (120..540 s): 6 * 53 / 61 / 8 * 121.41 = 79.1 > 65.07, 2 nodes.
    # A pod is expected to run at least as long again as it has run (unknown run time, or past
    # its estimate): just started, it ends now (a stream of short pods is what new nodes take);
    # 10 min old, pinned 10 min (2 nodes as above); 30 min or 8 h old, as long again (1 node).
    notes = {EXPECTED_DURATION: expected} if expected else {}
    created = NOW - age if age else 0.0
    stuck = gpu_job("big", 8000, node=ECI.name, kind=kind, annotations=notes, created=created)
    groups = [GroupState(GPU8, 0)]
    result = run([stuck], groups, nodes=[ECI], policies=[TRAIN], forecast={"gpu": flat(14)})
    assert [(u.group, u.delta) for u in result.scale_ups] == [("gpu8", nodes)]
    if kind != "ReplicaSet" and nodes == 1:
        (up,) = result.scale_ups
        assert up.code == "predictive"
        assert "(besides up to 8.00 GPUs on ECI that would not move)" in up.reason
        # the peak: 6 GPUs while the pod runs all the window, 14 once it has ended
        top = "6.00" if expected == "8h" or age > 3720 else "14.00"
        assert f"{top} GPUs of expected demand above ECS capacity 0.00 GPUs" in up.reason


def test_forecast_adds_nodes_for_a_rise_after_the_boot_above_the_pinned_pods() -> None:
    # An 8-GPU bare pod on ECI for 8 more hours; 8 GPUs expected until one hour from now (all of
    # it that pod), 24 after.  Nodes at 50 CNY/h that boot for an hour: nothing is held now, but
    # after the boot (steps 3600..7200 s) the new nodes take 16 GPUs at 60 of the 61 steps: each
    # of two full nodes is worth 121.41 * 60 / 61 = 119.4 CNY over the hour, more than the
    # 50 * 2 h it is paid from now: 2 nodes.
    slow = dataclasses.replace(GPU8, boot_time=3600.0, price_per_hour=50.0)
    point = np.where(np.arange(125) * 60.0 <= 3600, 8.0, 24.0)
    rise = dataclasses.replace(flat(8), point=point, upper=point)
    stuck = gpu_job("big", 8000, node=ECI.name, kind="Pod", annotations={EXPECTED_DURATION: "8h"})
    result = run(
        [stuck], [GroupState(slow, 0)], nodes=[ECI], policies=[TRAIN], forecast={"gpu": rise}
    )
    assert [(u.group, u.delta, u.code) for u in result.scale_ups] == [("gpu8", 2, "predictive")]


def test_forecast_stacks_no_node_for_eci_pods_too_big_for_it() -> None:
    # 11 cores expected (3 g4 nodes with nothing on ECI), 6 of them a replica on ECI that no
    # 4-core node holds, expected to run the whole horizon (a Deployment without the annotation:
    # pinned until 3600 s, so at 59 of the 61 steps after the 60 s boot): the nodes take 5
    # cores, one full node and a second holding 1 core at 59 steps and 4 at 2 ((59 + 8) / 61 /
    # 4 * 1.0587 = 0.29 < 0.7178): 1 node
    big = pod("big", 6000, 8 * GIB, node=ECI.name)
    web = ResourcePolicy(
        "web", "default", LabelSelector({"app": "web"}), (Unit(NodeKind.ECS), Unit(NodeKind.ECI))
    )
    result = run([big], [GroupState(G4, 0)], nodes=[ECI], policies=[web], forecast=flat(11))
    assert [(u.group, u.delta) for u in result.scale_ups] == [("g4", 1)]
    fits = pod("fits", 4000, 8 * GIB, node=ECI.name)  # a 4-core replica moves into the room
    result = run([fits], [GroupState(G4, 0)], nodes=[ECI], policies=[web], forecast=flat(11))
    assert [(u.group, u.delta) for u in result.scale_ups] == [("g4", 3)]


def test_forecast_keeps_no_capacity_for_eci_pods_it_would_not_take() -> None:
    # two empty gpu8 nodes, unneeded for long, 14 GPUs expected: both stay (the second holds 6,
    # test above).  If 8 of the 14 are a bare pod on ECI for 8 more hours, ECS keeps what the
    # other 6 need: the first node holds 6 (91.06 > 64), the second nothing: one goes.
    nodes = [node(f"gpu-{i}", GPU8, created=i) for i in range(2)]
    old = {f"gpu-{i}": NOW - 3600 for i in range(2)}
    groups = [GroupState(GPU8, 2, last_scale_up=0.0)]
    stuck = gpu_job("big", 8000, node=ECI.name, kind="Pod", annotations={EXPECTED_DURATION: "8h"})

    def with_stuck(gpus: float) -> Plan:
        forecast = {"gpu": flat(gpus)}
        return run(
            [stuck], groups, nodes=[*nodes, ECI], policies=[TRAIN], forecast=forecast, unneeded=old
        )

    result = with_stuck(14)
    assert result.scale_ups == ()
    assert [d.node for d in result.scale_downs] == ["gpu-0"]
    assert any("besides 8.00 GPUs on ECI that would not move" in n for n in result.notes)
    # all of the demand is that pod: no level, no forecast floor, both go
    result = with_stuck(8)
    assert [d.node for d in result.scale_downs] == ["gpu-0", "gpu-1"]
    assert any("all gpu demand is pods on ECI" in n for n in result.notes)


def test_gpu_forecast_without_gpu_groups_is_ignored_with_a_note() -> None:
    result = run([], [GroupState(G4, 0)], forecast={"gpu": flat(12)})
    assert result.scale_ups == ()
    assert "gpu forecast ignored: no node group with GPUs" in result.notes


# -- scale-down --------------------------------------------------------------------------------


def half_empty() -> tuple[list[Node], list[Pod]]:
    """n1 holds one 0.5-cpu pod (12%); n2 is 75% busy with 1 cpu free: n1's pod fits on n2."""
    nodes = [node("n1", G4, created=1.0), node("n2", G4, created=2.0)]
    pods = [pod("small", 500, GIB, node="n1"), pod("big", 3000, 4 * GIB, node="n2")]
    return nodes, pods


def run_on_half_empty(pods: Sequence[Pod], *, pdbs: Sequence[DisruptionBudget] = ()) -> Plan:
    """One pass over ``half_empty()``'s nodes (G4, scaled up long ago), n1 unneeded since 0."""
    nodes, _ = half_empty()
    return run(
        pods, [GroupState(G4, 2, last_scale_up=0.0)], nodes=nodes, unneeded={"n1": 0.0}, pdbs=pdbs
    )


def test_scale_down_after_unneeded_time_and_not_before() -> None:
    nodes, pods = half_empty()
    groups = [GroupState(G4, 2, last_scale_up=0.0)]
    first = run(pods, groups, nodes=nodes)
    assert first.scale_downs == ()
    assert first.unneeded == {"n1": NOW}
    early = run(pods, groups, nodes=nodes, unneeded={"n1": NOW - 599})
    assert early.scale_downs == ()
    assert early.unneeded == {"n1": NOW - 599}
    late = run(pods, groups, nodes=nodes, unneeded={"n1": NOW - 600, "gone": 1.0})
    (down,) = late.scale_downs
    assert (down.group, down.node) == ("g4", "n1")
    assert "fit on n2" in down.reason
    assert "cpu 12%" in down.reason
    assert down.code == "underutilized"
    assert late.unneeded == {"n1": NOW - 600}


def test_scale_down_needs_the_pods_to_fit_elsewhere() -> None:
    _, pods = half_empty()
    pods[0] = pod("small", 1500, GIB, node="n1")  # 37% busy, but only 1 cpu free on n2
    result = run_on_half_empty(pods)
    assert result.scale_downs == ()
    assert any("do not all fit" in n for n in result.notes)


def test_pdb_blocks() -> None:
    _, pods = half_empty()
    pdb = DisruptionBudget("default", LabelSelector({"app": "web"}), 0, "web")
    result = run_on_half_empty(pods, pdbs=[pdb])
    assert result.scale_downs == ()
    assert any("PodDisruptionBudget" in n for n in result.notes)
    allowed = dataclasses.replace(pdb, disruptions_allowed=1)
    result = run_on_half_empty(pods, pdbs=[allowed])
    assert [d.node for d in result.scale_downs] == ["n1"]


def test_min_size_blocks() -> None:
    nodes, pods = half_empty()
    group = dataclasses.replace(G4, min_size=2)
    result = run(pods, [GroupState(group, 2, last_scale_up=0.0)], nodes=nodes, unneeded={"n1": 0.0})
    assert result.scale_downs == ()
    assert any("min size 2" in n for n in result.notes)


@pytest.mark.parametrize(
    ("policy_", "gone"),
    [(RemovalPolicy.OLDEST_INSTANCE, "old"), (RemovalPolicy.NEWEST_INSTANCE, "new")],
)
def test_removal_policy_order(policy_: RemovalPolicy, gone: str) -> None:
    group = dataclasses.replace(G4, min_size=1, removal_policy=policy_)
    nodes = [node("new", group, created=50.0), node("old", group, created=10.0)]
    result = run(
        [],
        [GroupState(group, 2, last_scale_up=0.0)],
        nodes=nodes,
        unneeded={"new": 0.0, "old": 0.0},
    )
    assert [d.node for d in result.scale_downs] == [gone]


def test_pods_that_cannot_move_keep_their_node() -> None:
    _, pods = half_empty()
    bare = pod("bare", 100, GIB, node="n1", kind="Pod")
    pinned = pod(
        "pinned",
        100,
        GIB,
        node="n1",
        annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    )
    for blocker, why in ((bare, "has no controller"), (pinned, "safe-to-evict")):
        result = run_on_half_empty([*pods, blocker])
        assert result.scale_downs == ()
        assert any(why in n for n in result.notes)


def test_a_jobs_pod_keeps_its_node_once_its_work_is_worth_a_restart() -> None:
    # n1 holds a replica and a Job's pod of 1 cpu (a quarter of a 0.706 CNY/h node: 0.1765
    # CNY/h): its work is worth more than the 0.1 CNY restart after 2039.7 s.  Before, n1 goes;
    # after, it stays, and the note says why.
    nodes, pods = half_empty()
    pods[1] = pod("big", 2000, 4 * GIB, node="n2")
    groups = [GroupState(G4, 2, last_scale_up=0.0)]
    for age, goes in ((2039.0, True), (2100.0, False)):
        job = pod("job", 1000, 2 * GIB, node="n1", kind="Job", created=NOW - age)
        result = run([*pods, job], groups, nodes=nodes, unneeded={"n1": 0.0})
        assert [d.node for d in result.scale_downs] == (["n1"] if goes else [])
    assert (
        "node n1 stays: pod default/job would lose 35 min of its Job's work (0.10 CNY"
        in (result.notes)[0]
    )


def test_daemonset_pods_do_not_block() -> None:
    _, pods = half_empty()
    ds = pod("proxy-n1", 100, GIB, node="n1", kind="DaemonSet", app="kube-proxy")
    result = run_on_half_empty([*pods, ds])
    assert [d.node for d in result.scale_downs] == ["n1"]
    assert result.scale_downs[0].code == "underutilized"


@pytest.mark.parametrize("kind", ["DaemonSet", "Node"], ids=["daemonset", "static-mirror"])
def test_a_node_with_only_daemonset_or_static_pods_is_empty(kind: str) -> None:
    _, pods = half_empty()
    ds = pod("proxy-n1", 100, GIB, node="n1", kind=kind, app="kube-proxy")
    result = run_on_half_empty([pods[1], ds])
    (down,) = result.scale_downs
    assert (down.node, down.code) == ("n1", "empty")
    assert "it runs no pod that must move" in down.reason


def test_delay_after_scale_up_and_no_scale_down_while_scaling_up() -> None:
    nodes, pods = half_empty()
    quick = dataclasses.replace(G4, cooldown=0.0)
    recent = run(
        pods, [GroupState(quick, 2, last_scale_up=NOW - 60)], nodes=nodes, unneeded={"n1": 0.0}
    )
    assert recent.scale_downs == ()
    assert any("delay after scale-up" in n for n in recent.notes)
    busy = run_on_half_empty([*pods, pod("x", 3600)])
    assert busy.scale_ups
    assert busy.scale_downs == ()
    landing = run_on_half_empty([*pods, pod("y", 3500)])
    assert landing.scale_ups == ()
    assert landing.scale_downs == ()  # y is about to land on n1


def test_receiving_nodes_stay_and_eci_nodes_are_never_scaled() -> None:
    # n1 and n2 both 25% busy: n1 goes, its pod moves to n2, so n2 must stay this pass
    nodes = [node("n1", G4, created=1.0), node("n2", G4, created=2.0), ECI]
    pods = [pod("a", 1000, node="n1"), pod("b", 1000, node="n2"), pod("e", 100, node=ECI.name)]
    unneeded = {"n1": 0.0, "n2": 0.0, ECI.name: 0.0}
    result = run(pods, [GroupState(G4, 2, last_scale_up=0.0)], nodes=nodes, unneeded=unneeded)
    assert [d.node for d in result.scale_downs] == ["n1"]
    assert ECI.name not in result.unneeded
    assert any("n2 stays: it receives pods" in n for n in result.notes)


def test_group_membership_from_the_provider() -> None:
    # the node has no group label, but the provider lists it
    plain = Node("i-123", allocatable=G4.instance_type.capacity, created=5.0)
    result = run(
        [],
        [GroupState(G4, 1, (GroupNode("i-123", 5.0),), last_scale_up=0.0)],
        nodes=[plain],
        unneeded={"i-123": 0.0},
    )
    assert [(d.group, d.node) for d in result.scale_downs] == [("g4", "i-123")]


def test_backends_agree_on_a_mixed_cluster() -> None:
    rng = np.random.default_rng(7)
    groups = [
        GroupState(G4, 2),
        GroupState(G8, 1),
        GroupState(dataclasses.replace(G4, name="g4b", price_per_hour=0.6, max_size=3), 0),
    ]
    nodes = [node("a", G4, 1.0), node("b", G4, 2.0), node("c", G8, 3.0)]
    pods = [
        pod(f"r{i}", int(rng.choice([250, 500, 1500])), node=str(rng.choice(["a", "b", "c"])))
        for i in range(6)
    ]
    pods += [
        pod(f"p{i}", int(rng.choice([250, 1000, 3000])), int(rng.choice([1, 4])) * GIB)
        for i in range(40)
    ]
    fast = run(pods, groups, nodes=nodes, unneeded={"a": 0.0})
    slow = run(pods, groups, nodes=nodes, unneeded={"a": 0.0}, backend="reference")
    assert fast == slow
    assert fast.scale_ups


def test_plan_to_dict() -> None:
    data = run(ten_pods(), [GroupState(G4, 0)]).to_dict()
    assert data["scaleUps"][0]["newTarget"] == 3
    assert data["scaleUps"][0]["code"] == "pending-pods"
    assert set(data) == {"scaleUps", "scaleDowns", "unneeded", "unschedulable", "notes"}


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="backend"):
        run([], [], backend="gpu")


# -- the plan command --------------------------------------------------------------------------


def example_plan_argv(now: int) -> list[str]:
    """``plan`` over the bundled example cluster and default node groups at ``now``."""
    from autoscaler import plan_cli

    data = Path(plan_cli.__file__).parent / "data"
    return [
        "plan",
        "--cluster",
        str(data / "example-cluster.yaml"),
        "--groups",
        str(data / "default-groups.yaml"),
        "--now",
        str(now),
    ]


def test_plan_cli_on_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    from autoscaler import plan_cli

    argv = example_plan_argv(1795400000)
    assert plan_cli.main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {u["group"]: u["delta"] for u in result["scaleUps"]} == {"general-2c8g": 4, "gpu-8x": 1}
    assert "fits no node group" in result["unschedulable"]["ci/arm-builder"]
    assert plan_cli.main(argv) == 0
    assert "scale up   gpu-8x: +1 -> 1 nodes" in capsys.readouterr().out


def test_plan_cli_gpu_forecast_sizes_the_gpu_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from autoscaler import plan_cli

    now = 1795400000
    series = tmp_path / "gpus.csv"
    rows = (f"{now - 2 * 86_400 + 300 * i},22" for i in range(2 * 288))
    series.write_text("ts,value\n" + "\n".join(rows) + "\n")
    argv = [
        *example_plan_argv(now),
        "--gpu-forecast",
        str(series),
        "--json",
    ]
    assert plan_cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    # one node for the pending GPU pod, then 22 GPUs of steady demand: two more nodes, the
    # second holding 6 GPUs, which pays for itself
    (gpu,) = [u for u in result["scaleUps"] if u["group"] == "gpu-8x"]
    assert gpu["delta"] == 3
    assert "; then forecast: pre-provision 2 node(s), each paying for itself" in gpu["reason"]


def test_plan_cli_refuses_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from autoscaler import plan_cli

    groups = tmp_path / "groups.yaml"
    groups.write_text(
        "groups: [{name: a, instanceType: {cpu: '4', memory: 16Gi}, min: 3, max: 1}]\n"
    )
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("nodes: []\n")
    argv = ["plan", "--cluster", str(cluster), "--groups", str(groups)]
    assert plan_cli.main(argv) == 2
    assert "groups[0].min" in capsys.readouterr().err


def test_gpu_nodes_are_judged_by_their_gpus() -> None:
    """A GPU node with busy GPUs is needed however little cpu its pods ask for (as in
    cluster-autoscaler); one whose GPUs idle is unneeded even if cpu were busy."""
    tol = (Toleration("nvidia.com/gpu", "Exists"),)
    busy = node("busy", GPU8)
    idle = node("idle", GPU8)
    pods = [
        *(pod(f"g{i}", 500, GIB, node="busy", gpu=1000, tolerations=tol) for i in range(6)),
        pod("cpu-heavy", 80_000, GIB, node="idle", tolerations=tol),
    ]
    result = run(pods, [GroupState(GPU8, 2, last_scale_up=0.0)], nodes=[busy, idle])
    assert result.unneeded == {"idle": NOW}


# -- forecast demand and break-even, by hand ---------------------------------------------------


@pytest.mark.parametrize(
    ("units", "counted"),
    [
        ((Unit(NodeKind.ECS), Unit(NodeKind.ECI)), 2000),  # overflowed for lack of room
        ((Unit(NodeKind.ECS, max=3), Unit(NodeKind.ECI)), 0),  # may be beyond its max
        ((Unit(NodeKind.ECS, max=0), Unit(NodeKind.ECI)), 0),  # ECS never holds it
        ((Unit(NodeKind.ECI),), 0),
    ],
)
def test_forecast_demand_counts_eci_pods_only_where_ecs_capacity_could_hold_them(
    units: tuple[Unit, ...], counted: int
) -> None:
    from autoscaler.predictive import class_demand_of

    policy = ResourcePolicy("web", "default", LabelSelector({}), units)
    two = Resources(2000, 4 * GIB, 1)
    assert class_demand_of(two, on=NodeKind.ECI, policy=policy) == ("cpu", counted)
    # waiting or on ECS, a pod is demand whatever its policy
    assert class_demand_of(two, on=None, policy=policy) == ("cpu", 2000)
    assert class_demand_of(two, on=NodeKind.ECS, policy=policy) == ("cpu", 2000)


def test_paying_nodes_stacks_slices_by_hand() -> None:
    from autoscaler.predictive import paying_nodes

    # demand 10, 6, 2, 6 (mean 6) on nodes of 4 worth 12 CNY full, costing 5: the first slice
    # [0, 4] holds 4, 4, 2, 4 (mean 3.5: 10.5 > 5); the second [4, 8] 4, 2, 0, 2 (mean 2: 6 > 5);
    # the third [8, 12] 2, 0, 0, 0 (mean 0.5: 1.5 < 5)
    demand = [10.0, 6.0, 2.0, 6.0]
    assert paying_nodes(demand, base=0, per_node=4, node_cost=5, slice_value=12, limit=9) == 2
    # above a capacity of 4 only the [4, 8] slice pays; a node must save more than it costs
    assert paying_nodes(demand, base=4, per_node=4, node_cost=5, slice_value=12, limit=9) == 1
    assert paying_nodes(demand, base=4, per_node=4, node_cost=6, slice_value=12, limit=9) == 0
    assert paying_nodes(demand, base=0, per_node=4, node_cost=5, slice_value=12, limit=1) == 1
    assert paying_nodes([], base=0, per_node=4, node_cost=0, slice_value=12, limit=9) == 0


def _paying_nodes_by_scan(
    demand: list[float],
    *,
    base: float,
    per_node: float,
    node_cost: float,
    slice_value: float,
    limit: int,
) -> int:
    """The definition, node after node from the bottom: what the bisection must agree with."""
    k = 0
    while k < limit:
        lo = base + k * per_node
        held = sum(min(max(d - lo, 0.0), per_node) for d in demand) / len(demand)
        if held / per_node * slice_value <= node_cost:
            break
        k += 1
    return k


@given(
    demand=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=40),
    base=st.floats(0, 1e5, allow_nan=False),
    per_node=st.floats(1e-3, 1e5, allow_nan=False),
    node_cost=st.floats(0, 1e3, allow_nan=False),
    slice_value=st.floats(0, 1e4, allow_nan=False),
    limit=st.integers(1, 300),
)
@example(demand=[10.0, 6.0, 2.0, 6.0], base=0, per_node=4, node_cost=5, slice_value=12, limit=9)
def test_paying_nodes_bisection_is_the_scan(
    demand: list[float],
    base: float,
    per_node: float,
    node_cost: float,
    slice_value: float,
    limit: int,
) -> None:
    from autoscaler.predictive import paying_nodes

    assert paying_nodes(
        demand,
        base=base,
        per_node=per_node,
        node_cost=node_cost,
        slice_value=slice_value,
        limit=limit,
    ) == _paying_nodes_by_scan(
        demand,
        base=base,
        per_node=per_node,
        node_cost=node_cost,
        slice_value=slice_value,
        limit=limit,
    )


def _paying_nodes_every_step(
    demand: list[float],
    *,
    base: float,
    per_node: float,
    node_cost: float,
    slice_value: float,
    limit: int,
) -> int:
    """``paying_nodes``'s bisection summing every step's term as defined, zeros included."""
    n = len(demand)

    def pays(k: int) -> bool:
        lo = base + k * per_node
        held = sum([min(max(d - lo, 0.0), per_node) for d in demand]) / n
        return held / per_node * slice_value > node_cost

    first, last = 0, limit
    while first < last:
        mid = (first + last) // 2
        if pays(mid):
            first = mid + 1
        else:
            last = mid
    return first


_ANY_FLOAT = st.floats(-1e6, 1e6) | st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan])


@given(
    demand=st.lists(_ANY_FLOAT, min_size=1, max_size=40),
    base=_ANY_FLOAT,
    per_node=st.floats(1e-3, 1e5) | st.sampled_from([1e300, math.inf, math.nan]),
    node_cost=st.floats(-1.0, 1e3),
    slice_value=st.floats(0, 1e4),
    limit=st.integers(1, 300),
)
@example(demand=[-0.0, 0.0, 3.0], base=-0.0, per_node=1.0, node_cost=0.0, slice_value=1.0, limit=3)
@example(demand=[-0.0], base=0.0, per_node=1.0, node_cost=-1.0, slice_value=1.0, limit=1)
@example(demand=[math.inf, 1.0], base=0.0, per_node=1e300, node_cost=0.0, slice_value=1.0, limit=5)
@example(demand=[math.nan, 1.0], base=0.0, per_node=1.0, node_cost=-1.0, slice_value=1.0, limit=5)
def test_paying_nodes_sums_only_the_demand_above_as_every_step(
    demand: list[float],
    base: float,
    per_node: float,
    node_cost: float,
    slice_value: float,
    limit: int,
) -> None:
    """Summing only the steps above a node's bottom (finite numbers) gives what summing every
    step gives, -0.0, NaN and infinities included."""
    from autoscaler import predictive

    args = dict(base=base, per_node=per_node, node_cost=node_cost, slice_value=slice_value)
    predictive._PAID.clear()
    if not per_node > 0:
        assert predictive.paying_nodes(demand, **args, limit=limit) == 0
        return
    assert predictive.paying_nodes(demand, **args, limit=limit) == _paying_nodes_every_step(
        demand, **args, limit=limit
    )


@given(
    points=st.lists(st.floats(-1e3, 1e3) | st.just(math.nan) | st.just(-0.0), min_size=1),
    a=st.tuples(st.integers(0, 30), st.integers(1, 30)),
    b=st.tuples(st.integers(0, 30), st.integers(1, 30)),
    masked=st.booleans(),
)
@example(points=[math.nan, 1.0, -2.0], a=(0, 2), b=(1, 2), masked=False)
@example(points=[1.0, math.nan, -2.0], a=(0, 2), b=(2, 1), masked=False)
@example(points=[-0.0, 0.0], a=(0, 1), b=(1, 1), masked=False)
def test_forecast_windows_are_numpy_s(
    points: list[float], a: tuple[int, int], b: tuple[int, int], masked: bool
) -> None:
    """``predictive._window`` and ``_none_above_zero`` (the forecast's points listed once) give
    what ``forecast.point[steps]`` and numpy's maximum of the two windows give, NaN included."""
    from autoscaler.predictive import _none_above_zero, _window

    forecast = dataclasses.replace(flat(0.0), point=np.array(points), upper=np.array(points))
    n = len(points)

    def steps(at: tuple[int, int]) -> slice | np.ndarray[Any, np.dtype[np.bool_]]:
        first, size = min(at[0], n - 1), at[1]
        if masked:
            return (np.arange(n) >= first) & (np.arange(n) < first + size)
        return slice(first, min(first + size, n))

    sa, sb = steps(a), steps(b)
    wa, wb = _window(forecast, sa), _window(forecast, sb)
    assert [repr(v) for v in wa] == [repr(v) for v in forecast.point[sa].tolist()]
    assert [repr(v) for v in wb] == [repr(v) for v in forecast.point[sb].tolist()]
    plain = float(max(forecast.point[sa].max(), forecast.point[sb].max())) <= 0
    assert _none_above_zero(forecast, sa, wa, sb, wb) is plain


@given(
    points=st.lists(
        st.floats(-1e3, 1e3) | st.sampled_from([0.0, -0.0, math.nan, math.inf]), min_size=1
    ),
    first=st.integers(0, 30),
    size=st.integers(0, 30),
)
@example(points=[-0.0, 0.0, -1.0, math.nan], first=0, size=4)
def test_forecast_milli_units_are_listed_once_as_the_plain_steps(
    points: list[float], first: int, size: int
) -> None:
    """``predictive._milli``, the forecast's steps in milli-units listed once per forecast,
    holds the very floats ``_level_of`` computes step by step with nothing held on ECI (a held
    profile of zeros: ``_profile``) and after the boot, -0.0 and NaN included."""
    from autoscaler.predictive import _milli, _profile, _window

    forecast = dataclasses.replace(flat(0.0), point=np.array(points), upper=np.array(points))
    steps = slice(first, first + size)
    window = _window(forecast, steps)
    held = _profile((), window)
    demand, ahead = _milli(forecast)
    plain = [max(v * 1000 - h, 0.0) for v, h in zip(window, held, strict=True)]
    assert [repr(v) for v in demand[steps]] == [repr(v) for v in plain]
    plain_ahead = [max(v, 0.0) * 1000 for v in window]
    assert [repr(v) for v in ahead[steps]] == [repr(v) for v in plain_ahead]
    assert _milli(forecast) is _milli(forecast)  # kept per forecast object


def test_the_pods_on_eci_collect_judges_are_found_once_per_state_revision_and_time() -> None:
    """``demand._movable`` is kept on the memo for the state at its revision and the same
    ``now``, horizon and ``outlived``: the planner's and rebalance's ``collect`` of one pass
    share it; another time or a write to the cluster computes it again."""
    from autoscaler.context import Context, PlannerMemo
    from autoscaler.demand import _movable

    web = ResourcePolicy(
        "web", "default", LabelSelector({"app": "web"}), (Unit(NodeKind.ECS), Unit(NodeKind.ECI))
    )
    annotated = {EXPECTED_DURATION: "2h"}
    old = pod("e0", node=ECI.name, created=NOW - 600, annotations=annotated)
    young = pod("e1", node=ECI.name, created=NOW - 60, annotations=annotated)
    state = ClusterState(nodes=[ECI], pods=[young, old], policies=[web])
    settings, memo = PlannerSettings(), PlannerMemo()
    groups = [GroupState(G4, 0)]
    first = _movable(Context(state, groups, settings, memo=memo), now=NOW, outlived=3600.0)
    assert first == [(ECI, [(old, 6600.0), (young, 7140.0)])]  # oldest first
    again = _movable(Context(state, groups, settings, memo=memo), now=NOW, outlived=3600.0)
    assert again is first
    later = _movable(Context(state, groups, settings, memo=memo), now=NOW + 60, outlived=3600.0)
    assert later == [(ECI, [(old, 6540.0), (young, 7080.0)])]
    state.remove_pod("e1")
    assert _movable(Context(state, groups, settings, memo=memo), now=NOW + 60, outlived=3600.0) == [
        (ECI, [(old, 6540.0)])
    ]
    plain = _movable(Context(state, groups, settings), now=NOW + 60, outlived=3600.0)
    assert plain == [(ECI, [(old, 6540.0)])]


def _pinned_by_hand(
    ctx: Any, cls: str, groups: Sequence[int], *, now: float
) -> list[list[tuple[float, float]]]:
    """``predictive.pinned``'s rule pod by pod and group by group, as the module states it."""
    from autoscaler.demand import remaining
    from autoscaler.eviction import move_blocker
    from autoscaler.predictive import class_demand_of, demand_class
    from extender.policy import policy_for

    out: list[list[tuple[float, float]]] = [[] for _ in groups]
    for node_ in ctx.eci_nodes:
        for p in ctx.state.pods_on(node_.name):
            policy = policy_for(ctx.state.policies, p)
            mine, amount = class_demand_of(p.requests, on=NodeKind.ECI, policy=policy)
            if p.finished or p.terminating or mine != cls or amount <= 0 or policy is None:
                continue
            assert demand_class(p.requests) == (mine, amount)
            age = now - p.created if p.created > 0 else 0.0
            until = now + max(remaining(p, now=now, horizon=3600.0), age)
            if until <= now:
                continue
            for i, g in enumerate(groups):
                t = ctx.templates[g]
                takes = (
                    move_blocker(p) is None
                    and ctx.classes[ctx.class_of(p)].groups[g]
                    and p.requests.cpu_milli <= t.allocatable.cpu_milli
                    and p.requests.memory <= t.allocatable.memory
                    and p.requests.gpu_milli <= t.allocatable.gpu_milli
                    and any(
                        u.resource is NodeKind.ECS and u.max is None and u.contains(t)
                        for u in policy.units
                    )
                )
                if not takes:
                    out[i].append((until, float(amount)))
    return out


@pytest.mark.parametrize("cls", ["cpu", "gpu"])
def test_pinned_is_the_rule_pod_by_pod(cls: str) -> None:
    """On ECI: a bare pod (stuck), a replica that fits both general groups, one too big for g4,
    one whose policy's ECS unit only takes the batch pool, one under a bounded ECS unit (no
    demand), GPU pods (bare and a Job's); the general and batch groups and a GPU group."""
    from autoscaler.context import Context, PlannerMemo
    from autoscaler.predictive import pinned

    gpu8 = NodeGroup(
        "gpu8", InstanceType("ecs.gpu", 32000, 128 * GIB, gpu_milli=8000), price_per_hour=20.0
    )
    groups = [GroupState(G4, 0), GroupState(G8, 0), GroupState(BATCH4, 0), GroupState(gpu8, 0)]
    selector = LabelSelector

    def web(name: str, app: str, *units: Unit) -> ResourcePolicy:
        return ResourcePolicy(name, "default", selector({"app": app}), units)

    policies = [
        web("a", "web", Unit(NodeKind.ECS), Unit(NodeKind.ECI)),
        web("b", "batch", Unit(NodeKind.ECS, node_selector={"pool": "batch"}), Unit(NodeKind.ECI)),
        web("c", "capped", Unit(NodeKind.ECS, 1), Unit(NodeKind.ECI)),
        web("d", "gpu", Unit(NodeKind.ECS), Unit(NodeKind.ECI)),
    ]
    two_h = {EXPECTED_DURATION: "2h"}
    on_eci = [
        pod("bare", node=ECI.name, kind="Pod", created=NOW - 600),
        pod("fits", node=ECI.name, created=NOW - 60, annotations=two_h),
        pod("big", 6000, 20 * GIB, node=ECI.name, created=NOW - 900),
        pod("pool", node=ECI.name, app="batch", created=NOW - 30, annotations=two_h),
        pod("capped", node=ECI.name, app="capped", created=NOW - 30),
        pod("g-bare", 4000, GIB, node=ECI.name, app="gpu", kind="Pod", gpu=2000, created=NOW - 5),
        pod("g-job", 4000, GIB, node=ECI.name, app="gpu", kind="Job", gpu=1000, created=NOW - 50),
    ]
    state = ClusterState(nodes=[ECI], pods=on_eci, policies=policies)
    for memo in (None, PlannerMemo()):
        ctx = Context(state, groups, PlannerSettings(), memo=memo)
        for chosen in ([0, 1, 2], [3], [2, 0]):
            assert pinned(ctx, cls, chosen, now=NOW) == _pinned_by_hand(ctx, cls, chosen, now=NOW)
    ctx = Context(state, groups, PlannerSettings())
    held = pinned(ctx, "cpu", [0, 1, 2], now=NOW)
    # g4: bare, big (6 cpu), pool (batch pool only); g8: bare, pool; batch: bare, big
    assert [len(h) for h in held] == [3, 2, 2]


def test_collect_counts_each_workload_once_per_state_revision() -> None:
    """``demand.collect`` keeps the workloads' unit counts as the cluster has them on the memo
    for the state at its revision: a second collect of the same revision (rebalance's after
    the planner's) reads them, a write counts again; the demand is the one without a memo."""
    from autoscaler.context import Context, PlannerMemo
    from autoscaler.demand import _COUNTS, cheaper_on_a_new_node, collect

    web = ResourcePolicy(
        "web", "default", LabelSelector({"app": "web"}), (Unit(NodeKind.ECS, 3), Unit(NodeKind.ECI))
    )
    day = {EXPECTED_DURATION: "24h"}
    pods = [pod(f"s{i}", node="n1") for i in range(2)]
    pods += [pod(f"e{i}", node=ECI.name, created=NOW - 60, annotations=day) for i in range(3)]
    state = ClusterState(nodes=[node("n1", G4), ECI], pods=pods, policies=[web])
    settings, memo = PlannerSettings(), PlannerMemo()
    groups = [GroupState(G4, 1)]

    def demand_of(memo: PlannerMemo | None) -> list[str]:
        ctx = Context(state, groups, settings, memo=memo)
        d = collect(ctx, {}, now=NOW, keep=cheaper_on_a_new_node, outlived=3600.0)
        return [p.key for p in d.pods]

    plain = demand_of(None)
    assert plain == ["default/e0"]  # the ECS unit holds 2 of 3: one more may go there
    assert demand_of(memo) == plain
    live = memo.recall(_COUNTS, state, ())
    assert live == {("default/web", pods[0].workload): (2, 3)}
    assert demand_of(memo) == plain  # the same revision: the same table, not counted again
    assert memo.recall(_COUNTS, state, ()) is live
    state.remove_pod("s1")  # a write: counted again, (1, 3): two may go to ECS
    assert demand_of(memo) == demand_of(None) == ["default/e0", "default/e1"]
    assert memo.recall(_COUNTS, state, ()) == {("default/web", pods[0].workload): (1, 3)}


def test_the_free_capacity_of_ecs_nodes_is_found_once_per_state_revision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``scaleup.free_capacity``'s rows of the ECS nodes are kept on the memo for the state at
    its revision: scale-up's and rebalance's of one pass read them once, each gets its own
    array, and a write to the cluster computes them again, as a planner without a memo does."""
    from autoscaler.context import Context, PlannerMemo, Usage
    from autoscaler.scaleup import free_capacity

    state = ClusterState(
        nodes=[node("a", G4, 1.0), node("b", G4, 2.0)], pods=[pod("p", 1500, node="a")]
    )
    settings, memo = PlannerSettings(), PlannerMemo()
    groups = [GroupState(G4, 3, (GroupNode("a", 1.0), GroupNode("b", 2.0)))]  # one booting

    def plain(booting: bool) -> list[list[int]]:
        rows: list[list[int]] = free_capacity(Context(state, groups, settings), booting=booting)[
            1
        ].tolist()
        return rows

    nodes, free = free_capacity(Context(state, groups, settings, memo=memo))
    assert [n.name for n in nodes][:2] == ["a", "b"]
    assert len(nodes) == 3
    assert free.tolist() == plain(True)
    assert free[0, 0] == 4000 - 1500
    free[:] = 0  # the caller's own array
    asked: list[str] = []
    usage = Context.usage

    def counted(self: Context, name: str) -> Usage:
        asked.append(name)
        return usage(self, name)

    monkeypatch.setattr(Context, "usage", counted)
    again = free_capacity(Context(state, groups, settings, memo=memo), booting=False)[1]
    assert asked == []
    assert again.tolist() == plain(False) == plain(True)[:2]
    state.upsert_pod(pod("q", 1000, node="b"))
    asked.clear()
    after = free_capacity(Context(state, groups, settings, memo=memo), booting=False)[1]
    assert asked == ["a", "b"]
    assert after.tolist() == plain(False)
    assert after[1, 0] == 4000 - 1000


@given(
    req=st.lists(st.tuples(*[st.integers(0, 9)] * 4), max_size=12),
    cap=st.lists(st.tuples(*[st.integers(0, 9)] * 4), min_size=1, max_size=5),
    seed=st.integers(0, 2**32 - 1),
)
def test_packable_pods_are_the_plain_ones(
    req: list[tuple[int, int, int, int]], cap: list[tuple[int, int, int, int]], seed: int
) -> None:
    """``scaleup._packable`` compares resource by resource what the plain expression compares
    in one reduction over a 3-D array."""
    from types import SimpleNamespace

    from autoscaler.scaleup import _packable

    rng = np.random.default_rng(seed)
    r = np.array(req, np.int64).reshape(len(req), 4)
    c = np.array(cap, np.int64)
    elig = rng.random((len(cap), len(req))) < 0.7
    remaining = rng.random(len(req)) < 0.7
    max_nodes = rng.integers(0, 3, len(cap))
    ctx: Any = SimpleNamespace(cap=c)
    plain = np.all(r[None, :, :] <= c[:, None, :], axis=2)
    want = elig & plain & remaining[None, :] & (max_nodes >= 1)[:, None]
    got = _packable(ctx, r, elig, remaining, max_nodes)
    assert got.shape == want.shape
    assert got.tolist() == want.tolist()
