"""``extender.deletion_cost``: the pod-deletion-cost that makes scale-in remove ECI first."""

from __future__ import annotations

import pytest
from pure_helpers import ECI_NODE, ECS_NODE, ECS_OTHER, ns_pod, unit_policy

from extender.deletion_cost import STEP, changed_costs, desired_costs
from extender.model import (
    Node,
    OwnerRef,
    Pod,
)
from extender.policies import PolicyError
from extender.policy import MAX_UNITS, ResourcePolicy


def test_desired_costs_make_eci_and_surplus_pods_go_first() -> None:
    policy = unit_policy({"resource": "ecs", "max": 1}, {"resource": "eci"})
    nodes = {"ecs-1": ECS_NODE, "vk": ECI_NODE, "ecs-2": ECS_OTHER}
    pods = [
        ns_pod("old-ecs", node="ecs-1", created=1.0),
        ns_pod("new-ecs", node="ecs-1", created=2.0),
        ns_pod("eci", node="vk", created=3.0),
        ns_pod("nowhere", node="unknown-node"),
        ns_pod("pending"),
        ns_pod("gone", node="ecs-1", terminating=True),
    ]
    costs = desired_costs(policy, pods=pods, nodes=nodes)
    top = STEP // 2 - 1  # the age bonus of a pod created before 2020
    assert costs == {
        "old-ecs": 2 * STEP + top,
        "new-ecs": -STEP,
        "eci": STEP + top,
        "nowhere": STEP + STEP // 2,
    }
    current = {p.uid: p for p in pods}
    current["eci"] = ns_pod(
        "eci",
        node="vk",
        annotations={"controller.kubernetes.io/pod-deletion-cost": str(STEP + top)},
    )
    assert changed_costs(costs, current) == {
        "old-ecs": 2 * STEP + top,
        "new-ecs": -STEP,
        "nowhere": STEP + STEP // 2,
    }


def _deletion_order(policy: ResourcePolicy, pods: list[Pod], nodes: dict[str, Node]) -> list[str]:
    costs = desired_costs(policy, pods=pods, nodes=nodes)
    return sorted(costs, key=lambda uid: costs[uid])


DAY = 86_400.0
T0 = 1_750_000_000.0  # 2025


def test_scale_in_removes_eci_before_pods_on_nodes_in_no_unit() -> None:
    """Regression: pods on nodes outside every unit got 0, below ECI's cost: deleted first."""
    nodes = {"ecs-1": ECS_NODE, "vk": ECI_NODE, "gpu-1": ECS_OTHER}
    general = {"resource": "ecs", "max": 5, "nodeSelector": {"pool": "general"}}
    policy = unit_policy(general, {"resource": "eci"})
    pods = [
        ns_pod("on-ecs", node="ecs-1", created=T0),
        ns_pod("outside", node="gpu-1", created=T0 + DAY),
        ns_pod("on-eci", node="vk", created=T0 - DAY),
    ]
    assert policy.unit_of(ECS_OTHER) is None
    assert _deletion_order(policy, pods, nodes) == ["on-eci", "outside", "on-ecs"]


def test_scale_in_removes_the_newest_ecs_pod_first_and_never_rewrites_the_others() -> None:
    policy = unit_policy({"resource": "ecs", "max": 10}, {"resource": "eci"})
    nodes = {"ecs-1": ECS_NODE, "vk": ECI_NODE}
    pods = [ns_pod(f"p{i}", node="ecs-1", created=T0 + i * 3600) for i in range(4)]
    assert _deletion_order(policy, pods, nodes) == ["p3", "p2", "p1", "p0"]
    before = desired_costs(policy, pods=pods, nodes=nodes)
    after = desired_costs(policy, pods=pods[1:], nodes=nodes)  # p0 deleted
    assert all(after[uid] == before[uid] for uid in after)
    grown = desired_costs(
        policy, pods=[*pods, ns_pod("p4", node="ecs-1", created=T0 + DAY)], nodes=nodes
    )
    assert all(grown[uid] == before[uid] for uid in before)


def test_deletion_costs_stay_inside_int32_with_the_most_units() -> None:
    units = [{"resource": "ecs", "max": 1, "nodeSelector": {"u": str(i)}} for i in range(15)]
    policy = unit_policy(*units, {"resource": "eci"})
    assert len(policy.units) == MAX_UNITS
    nodes = {f"n{i}": Node(f"n{i}", {"u": str(i)}) for i in range(15)}
    nodes["vk"] = ECI_NODE
    pods = [ns_pod(f"a{i}", node=f"n{i}") for i in range(15)]
    pods += [ns_pod(f"b{i}", node=f"n{i}", created=T0) for i in range(15)]  # beyond max 1
    pods += [ns_pod("e", node="vk"), ns_pod("x", node="elsewhere")]
    costs = desired_costs(policy, pods=pods, nodes=nodes)
    assert all(-(2**31) <= c < 2**31 for c in costs.values())
    with pytest.raises(PolicyError, match="at most 16 units"):
        unit_policy(*units, {"resource": "eci"}, {"resource": "eci"})


def test_daemonset_and_static_pods_get_no_deletion_cost() -> None:
    policy = unit_policy({"resource": "ecs"}, {"resource": "eci"})
    nodes = {"ecs-1": ECS_NODE}
    pods = [
        ns_pod("ds", node="ecs-1", owner=OwnerRef("DaemonSet", "agent")),
        ns_pod("mirror", node="ecs-1", annotations={"kubernetes.io/config.mirror": "x"}),
        ns_pod("web", node="ecs-1"),
    ]
    assert set(desired_costs(policy, pods=pods, nodes=nodes)) == {"web"}
