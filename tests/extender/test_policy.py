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
from extender.policy import ResourcePolicy, TryNext, decide, policy_for, unit_counts
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
        ({"units": []}, "spec.units must be a non-empty list"),
        ({"units": [{"resource": "gpu"}]}, "spec.units[0].resource must be ecs or eci"),
        (
            {"units": [{"resource": "ecs", "max": -1}]},
            "spec.units[0].max must be a non-negative integer",
        ),
        ({"units": [{"resource": "ecs", "max": "3"}]}, "spec.units[0].max"),
        ({"units": [{"resource": "ecs", "nodeSelector": {"a": 1}}]}, "nodeSelector"),
        (
            {"units": [{"resource": "eci"}], "whenTryNextUnits": "Sometimes"},
            "whenTryNextUnits must be one of",
        ),
        ({"units": [{"resource": "eci"}], "ignoreTerminatingPods": "yes"}, "ignoreTerminatingPods"),
        (
            {
                "units": [{"resource": "eci"}],
                "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]},
            },
            "operator must be one of",
        ),
        (
            {
                "units": [{"resource": "eci"}],
                "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
            },
            "values must be non-empty",
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
    with pytest.raises(PolicyError, match="spec is required"):
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
    with pytest.raises(PolicyError, match=r"bad\.yaml.*max"):
        load_policies(bad)
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
    assert costs == {"old-ecs": 2 * STEP, "new-ecs": -STEP, "eci": STEP, "nowhere": 0}
    current = {p.uid: p for p in pods}
    current["eci"] = _pod(
        "eci", node="vk", annotations={"controller.kubernetes.io/pod-deletion-cost": str(STEP)}
    )
    assert changed_costs(costs, current) == {"old-ecs": 2 * STEP, "new-ecs": -STEP, "nowhere": 0}


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
