"""``extender.deletion_cost``: the pod-deletion-cost that makes scale-in remove ECI first."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pure_helpers import ECI_NODE, ECS_NODE, ECS_OTHER, ns_pod, unit_policy

from extender.deletion_cost import (
    ANNOTATION,
    SETTLE,
    STEP,
    age_bonus,
    changed_costs,
    desired_costs,
)
from extender.model import (
    Node,
    NodeKind,
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
    costs = desired_costs(policy, pods=pods, nodes=nodes, now=3.0)
    top = STEP // 2 - 1  # the age bonus of a pod created before 2020
    assert costs == {
        "old-ecs": 0,  # the first unit within its max: no annotation needed
        "new-ecs": -2 * STEP - 1,  # beyond max: below every band
        "eci": -STEP + top,
        "nowhere": -STEP + STEP // 2,
    }
    current = {p.uid: p for p in pods}
    current["eci"] = ns_pod("eci", node="vk", annotations={ANNOTATION: str(-STEP + top)})
    assert changed_costs(costs, current) == {"new-ecs": -2 * STEP - 1, "nowhere": -STEP + STEP // 2}
    # a value of the earlier scheme (positive bands) is rewritten once; "0" is as good as absent
    current["old-ecs"] = ns_pod("old-ecs", node="ecs-1", annotations={ANNOTATION: str(2 * STEP)})
    current["nowhere"] = ns_pod("nowhere", node="x", annotations={ANNOTATION: str(STEP)})
    assert changed_costs(costs, current) == {
        "old-ecs": 0,
        "new-ecs": -2 * STEP - 1,
        "nowhere": -STEP + STEP // 2,
    }
    current["old-ecs"] = ns_pod("old-ecs", node="ecs-1", annotations={ANNOTATION: "0"})
    assert "old-ecs" not in changed_costs(costs, current)
    # once it has lived SETTLE seconds, the first unit's pod gets its age bonus, above every band
    settled = desired_costs(policy, pods=pods, nodes=nodes, now=1.0 + SETTLE)
    assert settled == costs | {"old-ecs": top}
    assert changed_costs(settled, current)["old-ecs"] == top


def _deletion_order(
    policy: ResourcePolicy, pods: list[Pod], nodes: dict[str, Node], *, now: float
) -> list[str]:
    costs = desired_costs(policy, pods=pods, nodes=nodes, now=now)
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
    assert _deletion_order(policy, pods, nodes, now=T0) == ["on-eci", "outside", "on-ecs"]
    assert _deletion_order(policy, pods, nodes, now=T0 + SETTLE) == ["on-eci", "outside", "on-ecs"]


def test_first_unit_pods_are_written_once_settled_and_every_unit_goes_newest_first() -> None:
    policy = unit_policy({"resource": "ecs", "max": 4}, {"resource": "eci"})
    nodes = {"ecs-1": ECS_NODE, "vk": ECI_NODE}
    ecs = [ns_pod(f"s{i}", node="ecs-1", created=T0 + i * 3600) for i in range(4)]
    eci = [ns_pod(f"e{i}", node="vk", created=T0 + DAY + i * 3600) for i in range(3)]
    pods = ecs + eci
    current = {p.uid: p for p in pods}
    now = T0 + 3 * 3600 + SETTLE - 1  # s3 is new, s0 .. s2 have settled
    before = desired_costs(policy, pods=pods, nodes=nodes, now=now)
    assert set(changed_costs(before, current)) == {"s0", "s1", "s2", "e0", "e1", "e2"}
    assert before["s3"] == 0
    # ECI newest first, then the new first-unit pod, then the settled ones newest first
    order = ["e2", "e1", "e0", "s3", "s2", "s1", "s0"]
    assert _deletion_order(policy, pods, nodes, now=now) == order
    assert before["s0"] == age_bonus(T0) < STEP // 2
    # neither a scale-in nor a scale-up rewrites the other pods
    after = desired_costs(policy, pods=pods[1:], nodes=nodes, now=now)  # s0 deleted
    assert all(after[uid] == before[uid] for uid in after)
    grown = desired_costs(
        policy, pods=[*pods, ns_pod("e3", node="vk", created=T0 + 2 * DAY)], nodes=nodes, now=now
    )
    assert all(grown[uid] == before[uid] for uid in before)
    # time passing writes s3 once, and nothing else
    later = desired_costs(policy, pods=pods, nodes=nodes, now=now + 1)
    assert {uid for uid in later if later[uid] != before[uid]} == {"s3"}


_UNIT_NODES = 4


@st.composite
def _workloads(draw: st.DrawFn) -> tuple[ResourcePolicy, list[Pod], dict[str, Node], float]:
    """A policy of up to 16 units (ECS units by label, at most one ECI unit anywhere) and bound
    pods on its units' nodes, on a node in no unit and on a node the cache does not know."""
    n_ecs = draw(st.integers(1, MAX_UNITS - 1))
    units: list[dict[str, object]] = [
        {"resource": "ecs", "nodeSelector": {"u": str(i)}, **({} if m is None else {"max": m})}
        for i, m in enumerate(
            draw(st.lists(st.none() | st.integers(0, 3), min_size=n_ecs, max_size=n_ecs))
        )
    ]
    eci_at = draw(st.none() | st.integers(0, n_ecs))
    if eci_at is not None:
        units.insert(eci_at, {"resource": "eci"})
    policy = unit_policy(*units)
    nodes = {f"n{i}": Node(f"n{i}", {"u": str(i)}) for i in range(n_ecs)}
    nodes["other"] = Node("other", {"u": "none"})
    nodes["vk"] = ECI_NODE
    names = [*nodes, "unknown"]
    placed = draw(
        st.lists(st.tuples(st.sampled_from(names), st.integers(0, 10**6)), min_size=1, max_size=40)
    )
    pods = [
        ns_pod(f"p{k}", node=node, created=T0 + minutes * 60.0)
        for k, (node, minutes) in enumerate(placed)
    ]
    now = T0 + draw(st.integers(0, 10**6 + 20)) * 60.0 + draw(st.sampled_from([0.0, 0.5, 59.0]))
    return policy, pods, nodes, now


@settings(max_examples=300, deadline=None)
@given(_workloads())
def test_every_pod_is_ranked_by_its_band_then_newest_first(
    case: tuple[ResourcePolicy, list[Pod], dict[str, Node], float],
) -> None:
    """The order spelled out pod by pod: beyond max (last unit first), then units last to first
    with pods on no unit's node right after the first ECI unit's (without one, before the last
    unit's), the first unit's pods within max last: 0 while younger than SETTLE, then the settled
    ones; the newest first inside units 1 .. n-1 and among the settled first-unit pods."""
    policy, pods, nodes, now = case
    n = len(policy.units)
    eci = [i for i, u in enumerate(policy.units) if u.resource is NodeKind.ECI]
    costs = desired_costs(policy, pods=pods, nodes=nodes, now=now)
    assert set(costs) == {p.uid for p in pods}
    assert all(-(2**31) <= c < 2**31 for c in costs.values())
    rank_in_unit: dict[str, int] = {}
    for unit in range(n):
        members = sorted(
            (
                p
                for p in pods
                if p.node_name in nodes and policy.unit_of(nodes[p.node_name]) == unit
            ),
            key=lambda p: (p.created, p.name),
        )
        rank_in_unit.update((p.uid, r) for r, p in enumerate(members))

    def band(pod: Pod) -> tuple[int, int, int]:
        node = nodes.get(pod.node_name)
        unit = policy.unit_of(node) if node is not None else None
        if unit is None:
            return (1, -eci[0], 1) if eci else (1, -n, 1)
        limit = policy.units[unit].max
        if limit is not None and rank_in_unit[pod.uid] >= limit:
            return (0, -unit, 0)
        return (1, -unit, 0)

    def settled(pod: Pod) -> bool:
        return now - pod.created >= SETTLE

    for a in pods:
        if band(a) == (1, 0, 0) and not settled(a):
            assert costs[a.uid] == 0
        for b in pods:
            if band(a) < band(b):
                assert costs[a.uid] < costs[b.uid], (a.uid, b.uid)
            elif band(a) != band(b) or band(a)[0] != 1 or band(a)[2]:
                continue
            elif band(a) < (1, 0, 0) and a.created // 60 > b.created // 60:
                assert costs[a.uid] < costs[b.uid], (a.uid, b.uid)  # units 1 .. n-1: the newer
            elif band(a) == (1, 0, 0) and settled(b) and not settled(a):
                assert costs[a.uid] < costs[b.uid], (a.uid, b.uid)  # the first unit: new first
            elif band(a) == (1, 0, 0) and settled(a) and a.created // 60 > b.created // 60:
                assert costs[a.uid] < costs[b.uid], (a.uid, b.uid)  # then the newer settled


def test_deletion_costs_stay_inside_int32_with_the_most_units() -> None:
    units = [{"resource": "ecs", "max": 1, "nodeSelector": {"u": str(i)}} for i in range(15)]
    policy = unit_policy(*units, {"resource": "eci"})
    assert len(policy.units) == MAX_UNITS
    nodes = {f"n{i}": Node(f"n{i}", {"u": str(i)}) for i in range(15)}
    nodes["vk"] = ECI_NODE
    pods = [ns_pod(f"a{i}", node=f"n{i}") for i in range(15)]
    pods += [ns_pod(f"b{i}", node=f"n{i}", created=T0) for i in range(15)]  # beyond max 1
    pods += [ns_pod("e", node="vk"), ns_pod("x", node="elsewhere")]
    costs = desired_costs(policy, pods=pods, nodes=nodes, now=T0 + DAY)
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
    assert set(desired_costs(policy, pods=pods, nodes=nodes, now=T0)) == {"web"}
