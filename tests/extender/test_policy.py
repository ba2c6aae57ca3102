"""Table tests of the pure core: quantities, pod requests, policies, decide, deletion cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from extender_helpers import fixture

from extender.deletion_cost import STEP, changed_costs, desired_costs
from extender.model import (
    ModelError,
    Node,
    NodeKind,
    OwnerRef,
    Pod,
    Resources,
    WorkloadKey,
    pod_from_dict,
    pod_requests,
)
from extender.policies import PolicyError, load_policies, policy_from_dict
from extender.policy import MAX_UNITS, ResourcePolicy, TryNext, decide, policy_for, unit_counts
from extender.quantity import QuantityError, milli_value, parse_quantity, value

GiB = 1 << 30
MiB = 1 << 20


# -- quantities -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "milli", "whole"),
    [
        ("500m", 500, 1),
        ("1.5Gi", 1536 * MiB * 1000, 1536 * MiB),
        ("2e3", 2_000_000, 2000),
        ("0.1", 100, 1),
        ("1", 1000, 1),
        ("100Mi", 100 * MiB * 1000, 100 * MiB),
        ("1k", 1_000_000, 1000),
        ("3900m", 3900, 4),
        ("13376580Ki", 13376580 * 1024 * 1000, 13376580 * 1024),
        ("1E-3", 1, 1),
        ("1n", 1, 1),
        (".5", 500, 1),
        (2, 2000, 2),
    ],
)
def test_quantities_parse_like_apimachinery(text: str | int, milli: int, whole: int) -> None:
    assert milli_value(text) == milli
    assert value(text) == whole


@pytest.mark.parametrize(
    "bad", ["", "abc", "1.5Gb", "--1", "1 Gi", "Gi", "1e999", "1.2.3", True, None]
)
def test_bad_quantities_are_refused(bad: Any) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(bad)


# -- pod requests -----------------------------------------------------------------------------
def _spec(**parts: Any) -> dict[str, Any]:
    def container(cpu: str, mem: str, **extra: Any) -> dict[str, Any]:
        return {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}, **extra}

    spec: dict[str, Any] = {"containers": [container(*c) for c in parts.get("containers", [])]}
    if "init" in parts:
        spec["initContainers"] = [
            container(*c[:2], **(c[2] if len(c) > 2 else {})) for c in parts["init"]
        ]
    if "overhead" in parts:
        spec["overhead"] = parts["overhead"]
    return spec


@pytest.mark.parametrize(
    ("spec", "cpu", "memory"),
    [
        (_spec(containers=[("500m", "512Mi")]), 500, 512 * MiB),
        (_spec(containers=[("500m", "512Mi"), ("250m", "1Gi")]), 750, 1536 * MiB),
        (_spec(containers=[("500m", "512Mi")], init=[("100m", "64Mi")]), 500, 512 * MiB),
        (_spec(containers=[("500m", "512Mi")], init=[("2", "64Mi")]), 2000, 512 * MiB),
        # a sidecar (restartable init container) adds to the app containers
        (
            _spec(
                containers=[("500m", "512Mi")], init=[("100m", "64Mi", {"restartPolicy": "Always"})]
            ),
            600,
            576 * MiB,
        ),
        # a regular init container after a sidecar runs alongside it
        (
            _spec(
                containers=[("100m", "64Mi")],
                init=[("100m", "64Mi", {"restartPolicy": "Always"}), ("1", "1Gi")],
            ),
            1100,
            1088 * MiB,
        ),
        (
            _spec(containers=[("500m", "512Mi")], overhead={"cpu": "250m", "memory": "120Mi"}),
            750,
            632 * MiB,
        ),
    ],
)
def test_pod_requests_follow_kube_scheduler(spec: dict[str, Any], cpu: int, memory: int) -> None:
    assert pod_requests(spec) == Resources(cpu, memory, 1)


def test_fixture_web_pod_request_includes_its_init_container_rule() -> None:
    pod = pod_from_dict(fixture("filter-deployment-pod-nodecache.json")["Pod"])
    assert pod.requests == Resources(500, 512 * MiB, 1)
    assert pod.workload == WorkloadKey("shop", "Deployment", "web")


def test_limits_default_requests() -> None:
    spec = {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}
    assert pod_requests(spec) == Resources(1000, GiB, 1)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"metadata": {}}, "metadata.name"),
        ({"metadata": {"name": "p"}, "spec": {"containers": {}}}, "spec.containers"),
        (
            {
                "metadata": {"name": "p"},
                "spec": {"containers": [{"resources": {"requests": {"cpu": "x"}}}]},
            },
            "containers[0]",
        ),
        ({"metadata": {"name": "p"}, "spec": {"priority": "high"}}, "spec.priority"),
    ],
)
def test_bad_pods_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelError, match=field.replace("[", r"\[").replace("]", r"\]")):
        pod_from_dict(raw)


# -- policies ---------------------------------------------------------------------------------
def _policy(*units: dict[str, Any], **spec: Any) -> ResourcePolicy:
    return policy_from_dict(
        {
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "units": list(units), **spec},
        }
    )


ECS_NODE = Node("ecs-1", {"pool": "general"})
ECS_OTHER = Node("ecs-2", {"pool": "gpu"})
ECI_NODE = Node("vk", {"type": "virtual-kubelet"}, kind=NodeKind.ECI)


def _pod(uid: str, *, node: str = "", labels: dict[str, str] | None = None, **kw: Any) -> Pod:
    return Pod(
        uid,
        uid,
        "ns",
        labels or {"app": "a"},
        node_name=node,
        workload=WorkloadKey("ns", "Deployment", "a"),
        **kw,
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"units": []}, "spec.units: must not be empty"),
        (
            {"units": [{"resource": "gpu"}]},
            "spec.units[0].resource: must be one of ecs, eci, not 'gpu'",
        ),
        (
            {"units": [{"resource": "ecs", "max": -1}]},
            "spec.units[0].max: must not be negative",
        ),
        ({"units": [{"resource": "ecs", "max": "3"}]}, "spec.units[0].max: expected int"),
        (
            {"units": [{"resource": "ecs", "nodeSelector": {"a": 1}}]},
            "spec.units[0].nodeSelector.*: expected str, got int",
        ),
        (
            {"units": [{"resource": "eci"}], "whenTryNextUnits": "Sometimes"},
            "spec.whenTryNextUnits: must be one of",
        ),
        (
            {"units": [{"resource": "eci"}], "ignoreTerminatingPods": "yes"},
            "spec.ignoreTerminatingPods: expected bool",
        ),
        (
            {
                "units": [{"resource": "eci"}],
                "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]},
            },
            "matchExpressions[0].operator: must be one of DoesNotExist, Exists, In, NotIn",
        ),
        (
            {
                "units": [{"resource": "eci"}],
                "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
            },
            "matchExpressions[0].values: must be non-empty for In",
        ),
    ],
)
def test_policy_errors_name_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as err:
        policy_from_dict({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    assert "ResourcePolicy ns/p" in str(err.value)
    assert message in str(err.value)


def test_policy_without_name_or_spec() -> None:
    with pytest.raises(PolicyError, match=r"metadata\.name"):
        policy_from_dict({"spec": {}})
    with pytest.raises(PolicyError, match=r"ResourcePolicy default/x: spec: is required"):
        policy_from_dict({"metadata": {"name": "x"}})


def test_load_policies_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "kind: List\nitems:\n- metadata: {name: a}\n  spec: {units: [{resource: eci}], whenTryNextUnits: {policy: ExceedMax}}\n"
    )
    (loaded,) = load_policies(good)
    assert loaded.when_try_next is TryNext.EXCEED_MAX
    bad = tmp_path / "bad.yaml"
    bad.write_text("metadata: {name: a}\nspec: {units: [{resource: ecs, max: x}]}\n")
    with pytest.raises(
        PolicyError,
        match=r"bad\.yaml:2: ResourcePolicy default/a: spec\.units\[0\]\.max: expected int",
    ):
        load_policies(bad)
    listed = tmp_path / "listed.yaml"
    listed.write_text(
        "kind: List\nitems:\n- metadata: {name: a}\n  spec: {units: [{resource: eci}]}\n"
        "- metadata: {name: b}\n  spec:\n    units: [{resource: gpu}]\n"
    )
    with pytest.raises(
        PolicyError, match=r"listed\.yaml:7: ResourcePolicy default/b: spec\.units\[0\]\.resource"
    ):
        load_policies(listed)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [")
    with pytest.raises(PolicyError, match=r"broken\.yaml"):
        load_policies(broken)


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
    assert policy_for([a, b, other], _pod("x")) is b
    assert policy_for([a, other], _pod("x")) is a
    assert policy_for([a], _pod("x", labels={"app": "z"})) is None
    assert policy_for([other], _pod("x")) is None


@pytest.mark.parametrize(
    ("counts", "candidates", "try_next", "unit", "accepted"),
    [
        ([0, 0], [ECS_NODE, ECI_NODE], "LackResourceOrExceedMax", 0, ("ecs-1",)),
        ([2, 0], [ECS_NODE, ECI_NODE], "LackResourceOrExceedMax", 1, ("vk",)),
        ([0, 0], [ECI_NODE], "LackResourceOrExceedMax", 1, ("vk",)),  # lack of room on ECS
        ([0, 0], [ECI_NODE], "ExceedMax", 0, ()),  # waits for ECS
        ([2, 0], [ECI_NODE], "ExceedMax", 1, ("vk",)),
        ([2, 0], [ECS_NODE], "LackResourceOrExceedMax", None, ()),
        ([0, 0], [ECS_OTHER, ECI_NODE], "LackResourceOrExceedMax", 1, ("vk",)),  # wrong pool
    ],
)
def test_decide(
    counts: list[int],
    candidates: list[Node],
    try_next: str,
    unit: int | None,
    accepted: tuple[str, ...],
) -> None:
    policy = _policy(
        {"resource": "ecs", "max": 2, "nodeSelector": {"pool": "general"}},
        {"resource": "eci"},
        whenTryNextUnits=try_next,
    )
    decision = decide(policy, counts=counts, candidates=candidates)
    assert decision.unit == unit
    assert decision.accepted == accepted
    assert set(decision.unresolvable) == {n.name for n in candidates} - set(accepted)
    assert all(why.startswith("policy ns/p") for why in decision.unresolvable.values())


@pytest.mark.parametrize(("ordinal", "unit"), [(0, 0), (1, 0), (2, 1), (7, 1)])
def test_statefulset_ordinals_place_by_index_not_count(ordinal: int, unit: int) -> None:
    policy = _policy({"resource": "ecs", "max": 2}, {"resource": "eci"})
    decision = decide(policy, counts=[0, 0], candidates=[ECS_NODE, ECI_NODE], ordinal=ordinal)
    assert decision.unit == unit


def test_statefulset_ordinal_beyond_every_max_is_refused() -> None:
    policy = _policy({"resource": "ecs", "max": 1})
    decision = decide(policy, counts=[0], candidates=[ECS_NODE], ordinal=1)
    assert decision.unit is None
    assert "ordinal 1" in decision.unresolvable["ecs-1"]


def test_pod_ordinal_from_label_or_name() -> None:
    sts = OwnerRef("StatefulSet", "db")
    assert Pod("u", "db-3", "ns", {"apps.kubernetes.io/pod-index": "4"}, owner=sts).ordinal == 4
    assert Pod("u", "db-3", "ns", owner=sts).ordinal == 3
    assert Pod("u", "db-3", "ns", owner=OwnerRef("ReplicaSet", "db")).ordinal is None


@pytest.mark.parametrize(("ignore", "expected"), [(True, [1, 0]), (False, [2, 0])])
def test_unit_counts_ignore_terminating_pods(ignore: bool, expected: list[int]) -> None:
    policy = _policy({"resource": "ecs"}, {"resource": "eci"}, ignoreTerminatingPods=ignore)
    pods = [
        _pod("a", node="ecs-1"),
        _pod("b", node="ecs-1", terminating=True),
        _pod("c", node="ecs-1", phase="Succeeded"),
        _pod("d"),  # pending: not counted
    ]
    nodes = {"ecs-1": ECS_NODE, "vk": ECI_NODE}
    assert unit_counts(policy, pods=pods, nodes=nodes, reserved={}) == expected


def test_unit_counts_add_reservations_not_yet_bound_and_exclude_the_pod() -> None:
    policy = _policy({"resource": "ecs"}, {"resource": "eci"})
    nodes = {"ecs-1": ECS_NODE, "vk": ECI_NODE}
    pods = [_pod("a", node="ecs-1"), _pod("b", node="vk")]
    reserved = {"a": 0, "r1": 1, "me": 0}  # "a" is already bound: not counted twice
    assert unit_counts(policy, pods=pods, nodes=nodes, reserved=reserved, exclude_uid="me") == [
        1,
        2,
    ]


# -- deletion cost ----------------------------------------------------------------------------
def test_desired_costs_make_eci_and_surplus_pods_go_first() -> None:
    policy = _policy({"resource": "ecs", "max": 1}, {"resource": "eci"})
    nodes = {"ecs-1": ECS_NODE, "vk": ECI_NODE, "ecs-2": ECS_OTHER}
    pods = [
        _pod("old-ecs", node="ecs-1", created=1.0),
        _pod("new-ecs", node="ecs-1", created=2.0),
        _pod("eci", node="vk", created=3.0),
        _pod("nowhere", node="unknown-node"),
        _pod("pending"),
        _pod("gone", node="ecs-1", terminating=True),
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
    current["eci"] = _pod(
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
    policy = _policy(general, {"resource": "eci"})
    pods = [
        _pod("on-ecs", node="ecs-1", created=T0),
        _pod("outside", node="gpu-1", created=T0 + DAY),
        _pod("on-eci", node="vk", created=T0 - DAY),
    ]
    assert policy.unit_of(ECS_OTHER) is None
    assert _deletion_order(policy, pods, nodes) == ["on-eci", "outside", "on-ecs"]


def test_scale_in_removes_the_newest_ecs_pod_first_and_never_rewrites_the_others() -> None:
    policy = _policy({"resource": "ecs", "max": 10}, {"resource": "eci"})
    nodes = {"ecs-1": ECS_NODE, "vk": ECI_NODE}
    pods = [_pod(f"p{i}", node="ecs-1", created=T0 + i * 3600) for i in range(4)]
    assert _deletion_order(policy, pods, nodes) == ["p3", "p2", "p1", "p0"]
    before = desired_costs(policy, pods=pods, nodes=nodes)
    after = desired_costs(policy, pods=pods[1:], nodes=nodes)  # p0 deleted
    assert all(after[uid] == before[uid] for uid in after)
    grown = desired_costs(
        policy, pods=[*pods, _pod("p4", node="ecs-1", created=T0 + DAY)], nodes=nodes
    )
    assert all(grown[uid] == before[uid] for uid in before)


def test_deletion_costs_stay_inside_int32_with_the_most_units() -> None:
    units = [{"resource": "ecs", "max": 1, "nodeSelector": {"u": str(i)}} for i in range(15)]
    policy = _policy(*units, {"resource": "eci"})
    assert len(policy.units) == MAX_UNITS
    nodes = {f"n{i}": Node(f"n{i}", {"u": str(i)}) for i in range(15)}
    nodes["vk"] = ECI_NODE
    pods = [_pod(f"a{i}", node=f"n{i}") for i in range(15)]
    pods += [_pod(f"b{i}", node=f"n{i}", created=T0) for i in range(15)]  # beyond max 1
    pods += [_pod("e", node="vk"), _pod("x", node="elsewhere")]
    costs = desired_costs(policy, pods=pods, nodes=nodes)
    assert all(-(2**31) <= c < 2**31 for c in costs.values())
    with pytest.raises(PolicyError, match="at most 16 units"):
        _policy(*units, {"resource": "eci"}, {"resource": "eci"})


def test_daemonset_and_static_pods_get_no_deletion_cost() -> None:
    policy = _policy({"resource": "ecs"}, {"resource": "eci"})
    nodes = {"ecs-1": ECS_NODE}
    pods = [
        _pod("ds", node="ecs-1", owner=OwnerRef("DaemonSet", "agent")),
        _pod("mirror", node="ecs-1", annotations={"kubernetes.io/config.mirror": "x"}),
        _pod("web", node="ecs-1"),
    ]
    assert set(desired_costs(policy, pods=pods, nodes=nodes)) == {"web"}


# -- full-Node mode: a pod bound to a node the cache does not know yet -------------------------
def test_a_pod_bound_to_an_unknown_node_is_counted_by_its_held_reservation() -> None:
    """Regression: the reservation was dropped when the pod was seen bound, and unit_counts
    skipped the pod because its node was not in the cache: the unit went over its max."""
    from extender.ledger import Ledger

    policy = _policy({"resource": "ecs", "max": 2}, {"resource": "eci"})
    workload = WorkloadKey("ns", "Deployment", "a")
    ledger = Ledger(ttl=30.0)
    ledger.reserve(uid="a", workload=workload, policy=policy.key, unit=0, now=0.0)
    ledger.seen_bound("a", node="ecs-new", node_known=False)
    pods = [_pod("a", node="ecs-new")]
    later = 3600.0  # long after the ttl: held until the node is known
    reserved = ledger.reserved(workload, policy=policy.key, now=later)
    assert reserved == {"a": 0}
    assert unit_counts(policy, pods=pods, nodes={}, reserved=reserved) == [1, 0]
    # the node arrives: the pod counts itself, the reservation goes
    nodes = {"ecs-new": Node("ecs-new")}
    ledger.seen_bound("a", node="ecs-new", node_known=True)
    reserved = ledger.reserved(workload, policy=policy.key, now=later)
    assert reserved == {}
    assert unit_counts(policy, pods=pods, nodes=nodes, reserved=reserved) == [1, 0]


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
    policy = _policy({"resource": "ecs", "max": 2}, {"resource": "eci"})
    decision = decide(policy, counts=[0, 0], candidates=[ECS_NODE, ECI_NODE], ordinal=1)
    assert decision.accepted == ("ecs-1",)
    state.set_ordinal_start(workload, 0)
    assert state.ordinal_starts == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [({"ordinals": {"start": -1}}, "ordinals.start"), ({"ordinals": 5}, "spec.ordinals")],
)
def test_bad_statefulset_ordinals_name_the_field(spec: dict[str, Any], message: str) -> None:
    from extender.model import statefulset_start

    with pytest.raises(ModelError, match=message):
        statefulset_start({"metadata": {"name": "db"}, "spec": spec})


@pytest.mark.parametrize("index", ["²", "١", "1²", "-1", " 1"])
def test_only_ascii_digits_make_an_ordinal(index: str) -> None:
    """Regression: "²" passes ``str.isdigit`` and then ``int`` raised (a 500)."""
    sts = OwnerRef("StatefulSet", "db")
    pod = Pod("u", f"db-{index}", "ns", {"apps.kubernetes.io/pod-index": index}, owner=sts)
    assert pod.ordinal is None
    assert Pod("u", "db-3", "ns", {"apps.kubernetes.io/pod-index": index}, owner=sts).ordinal == 3


def test_daemonset_and_static_pods_match_no_policy() -> None:
    from extender.model import is_daemon_or_static

    everything = policy_from_dict(
        {
            "metadata": {"name": "all", "namespace": "ns"},
            "spec": {"selector": {}, "units": [{"resource": "ecs", "max": 2}]},
        }
    )
    daemon = _pod("ds", owner=OwnerRef("DaemonSet", "agent"))
    mirror = _pod("static", owner=OwnerRef("Node", "ecs-1"))
    annotated = _pod("static2", annotations={"kubernetes.io/config.mirror": "x"})
    for pod in (daemon, mirror, annotated):
        assert is_daemon_or_static(pod)
        assert policy_for([everything], pod) is None
    assert policy_for([everything], _pod("web")) is everything


def test_a_placed_pod_keeps_every_other_field() -> None:
    """``Pod.placed`` (the replay's bind and unbind) copies every field but node and phase."""
    import dataclasses

    from extender.model import OwnerRef, Pod, Resources, Toleration, WorkloadKey

    values: dict[str, object] = {
        "uid": "u",
        "name": "web-3",
        "namespace": "shop",
        "labels": {"app": "web"},
        "annotations": {"a": "b"},
        "requests": Resources(1000, 2**30, 1, 500),
        "owner": OwnerRef("StatefulSet", "web", "x"),
        "node_name": "old",
        "phase": "Running",
        "terminating": True,
        "tolerations": (Toleration(key="k", operator="Exists"),),
        "node_selector": {"pool": "general"},
        "required_affinity": ((("pool", "In", ("general",)),),),
        "priority": 7,
        "scheduler_name": "spillover-scheduler",
        "nominated_node": "n1",
        "created": 12.5,
        "workload": WorkloadKey("shop", "StatefulSet", "web"),
    }
    names = [f.name for f in dataclasses.fields(Pod)]
    assert sorted(values) == sorted(names), "give the new Pod field a value here"
    pod = Pod(**values)  # type: ignore[arg-type]
    moved = pod.placed("n2", "Pending")
    assert moved == dataclasses.replace(pod, node_name="n2", phase="Pending")
