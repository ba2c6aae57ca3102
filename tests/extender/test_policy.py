"""``extender.policy``: which policy a pod has, ``decide``, unit counts, StatefulSet ordinals."""

from __future__ import annotations

import pytest
from pure_helpers import ECI_NODE, ECS_NODE, ECS_OTHER, ns_pod, unit_policy

from extender.model import (
    Node,
    OwnerRef,
    Pod,
    WorkloadKey,
)
from extender.policies import policy_from_dict
from extender.policy import decide, policy_for, unit_counts


def test_policy_for_matches_namespace_and_labels_first_by_name() -> None:
    a = policy_from_dict(
        {
            "metadata": {"name": "b", "namespace": "ns"},
            "spec": {"units": [{"resource": "eci"}], "selector": {"matchLabels": {"app": "a"}}},
        }
    )
    b = policy_from_dict(
        {
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {
                "units": [{"resource": "eci"}],
                "selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            },
        }
    )
    other = policy_from_dict(
        {"metadata": {"name": "a", "namespace": "other"}, "spec": {"units": [{"resource": "eci"}]}}
    )
    assert policy_for([a, b, other], ns_pod("x")) is b
    assert policy_for([a, other], ns_pod("x")) is a
    assert policy_for([a], ns_pod("x", labels={"app": "z"})) is None
    assert policy_for([other], ns_pod("x")) is None


@pytest.mark.parametrize(
    ("counts", "candidates", "try_next", "unit", "accepted", "no_room"),
    [
        ([0, 0], [ECS_NODE, ECI_NODE], "LackResourceOrExceedMax", 0, ("ecs-1",), False),
        ([2, 0], [ECS_NODE, ECI_NODE], "LackResourceOrExceedMax", 1, ("vk",), False),  # max
        ([0, 0], [ECI_NODE], "LackResourceOrExceedMax", 1, ("vk",), True),  # lack of room on ECS
        ([0, 0], [ECI_NODE], "ExceedMax", 0, (), False),  # waits for ECS
        ([2, 0], [ECI_NODE], "ExceedMax", 1, ("vk",), False),
        ([2, 0], [ECS_NODE], "LackResourceOrExceedMax", None, (), False),
        ([0, 0], [ECS_OTHER, ECI_NODE], "LackResourceOrExceedMax", 1, ("vk",), True),  # pool
    ],
)
def test_decide(
    counts: list[int],
    candidates: list[Node],
    try_next: str,
    unit: int | None,
    accepted: tuple[str, ...],
    no_room: bool,
) -> None:
    policy = unit_policy(
        {"resource": "ecs", "max": 2, "nodeSelector": {"pool": "general"}},
        {"resource": "eci"},
        whenTryNextUnits=try_next,
    )
    decision = decide(policy, counts=counts, candidates=candidates)
    assert decision.unit == unit
    assert decision.accepted == accepted
    assert decision.no_room is no_room  # passed over a unit under its max that had no room
    assert set(decision.unresolvable) == {n.name for n in candidates} - set(accepted)
    assert all(why.startswith("policy ns/p") for why in decision.unresolvable.values())


@pytest.mark.parametrize(("ordinal", "unit"), [(0, 0), (1, 0), (2, 1), (7, 1)])
def test_statefulset_ordinals_place_by_index_not_count(ordinal: int, unit: int) -> None:
    policy = unit_policy({"resource": "ecs", "max": 2}, {"resource": "eci"})
    decision = decide(policy, counts=[0, 0], candidates=[ECS_NODE, ECI_NODE], ordinal=ordinal)
    assert decision.unit == unit


def test_statefulset_ordinal_beyond_every_max_is_refused() -> None:
    policy = unit_policy({"resource": "ecs", "max": 1})
    decision = decide(policy, counts=[0], candidates=[ECS_NODE], ordinal=1)
    assert decision.unit is None
    assert "ordinal 1" in decision.unresolvable["ecs-1"]


@pytest.mark.parametrize(("ignore", "expected"), [(True, [1, 0]), (False, [2, 0])])
def test_unit_counts_ignore_terminating_pods(ignore: bool, expected: list[int]) -> None:
    policy = unit_policy({"resource": "ecs"}, {"resource": "eci"}, ignoreTerminatingPods=ignore)
    pods = [
        ns_pod("a", node="ecs-1"),
        ns_pod("b", node="ecs-1", terminating=True),
        ns_pod("c", node="ecs-1", phase="Succeeded"),
        ns_pod("d"),  # pending: not counted
    ]
    nodes = {"ecs-1": ECS_NODE, "vk": ECI_NODE}
    assert unit_counts(policy, pods=pods, nodes=nodes, reserved={}) == expected


def test_unit_counts_add_reservations_not_yet_bound_and_exclude_the_pod() -> None:
    policy = unit_policy({"resource": "ecs"}, {"resource": "eci"})
    nodes = {"ecs-1": ECS_NODE, "vk": ECI_NODE}
    pods = [ns_pod("a", node="ecs-1"), ns_pod("b", node="vk")]
    reserved = {"a": 0, "r1": 1, "me": 0}  # "a" is already bound: not counted twice
    assert unit_counts(policy, pods=pods, nodes=nodes, reserved=reserved, exclude_uid="me") == [
        1,
        2,
    ]


# -- StatefulSet spec.ordinals.start ---------------------------------------------------------
def test_ordinals_count_from_the_statefulsets_start() -> None:
    from extender.model import statefulset_start
    from extender.snapshot import ClusterState

    raw = {"metadata": {"name": "db", "namespace": "ns"}, "spec": {"ordinals": {"start": 5}}}
    workload, start = statefulset_start(raw)
    assert (workload, start) == (WorkloadKey("ns", "StatefulSet", "db"), 5)
    sts = OwnerRef("StatefulSet", "db")
    pod = Pod("u", "db-6", "ns", owner=sts, workload=workload)
    state = ClusterState()
    assert state.ordinal(pod) == 6
    state.set_ordinal_start(workload, start)
    assert state.ordinal(pod) == 1
    policy = unit_policy({"resource": "ecs", "max": 2}, {"resource": "eci"})
    decision = decide(policy, counts=[0, 0], candidates=[ECS_NODE, ECI_NODE], ordinal=1)
    assert decision.accepted == ("ecs-1",)
    state.set_ordinal_start(workload, 0)
    assert state.ordinal_starts == {}


def test_daemonset_and_static_pods_match_no_policy() -> None:
    from extender.model import is_daemon_or_static

    everything = policy_from_dict(
        {
            "metadata": {"name": "all", "namespace": "ns"},
            "spec": {"selector": {}, "units": [{"resource": "ecs", "max": 2}]},
        }
    )
    daemon = ns_pod("ds", owner=OwnerRef("DaemonSet", "agent"))
    mirror = ns_pod("static", owner=OwnerRef("Node", "ecs-1"))
    annotated = ns_pod("static2", annotations={"kubernetes.io/config.mirror": "x"})
    for pod in (daemon, mirror, annotated):
        assert is_daemon_or_static(pod)
        assert policy_for([everything], pod) is None
    assert policy_for([everything], ns_pod("web")) is everything
