"""``extender.snapshot``: the cache's store and its indices, and static cluster files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pure_helpers import ECS_NODE, ns_pod, unit_policy

from extender.model import ModelError, Node, WorkloadKey
from extender.snapshot import ClusterState, load_cluster

WORKLOAD = WorkloadKey("ns", "Deployment", "a")


def uids(pods: object) -> set[str]:
    return {p.uid for p in pods}  # type: ignore[attr-defined]


def test_indices_follow_every_change_of_a_pod() -> None:
    state = ClusterState(nodes=[ECS_NODE])
    state.upsert_pod(ns_pod("a"))
    assert (uids(state.pending_pods()), uids(state.pods_on("ecs-1"))) == ({"a"}, set())
    state.upsert_pod(ns_pod("a", node="ecs-1", phase="Running"))  # bound
    assert (uids(state.pending_pods()), uids(state.pods_on("ecs-1"))) == (set(), {"a"})
    state.upsert_pod(ns_pod("a", node="ecs-2", phase="Running"))  # moved (a new binding)
    assert (uids(state.pods_on("ecs-1")), uids(state.pods_on("ecs-2"))) == (set(), {"a"})
    assert uids(state.workload_pods(WORKLOAD)) == {"a"}
    state.upsert_pod(ns_pod("b", phase="Succeeded"))  # finished: never pending
    assert uids(state.pending_pods()) == set()
    assert state.remove_pod("a") is not None
    assert state.remove_pod("a") is None
    assert uids(state.workload_pods(WORKLOAD)) == {"b"}
    assert uids(state.pods_on("ecs-2")) == set()


@pytest.mark.parametrize(
    ("change", "bumps"),
    [
        (lambda s: s.upsert_node(ECS_NODE), False),  # the same node again
        (lambda s: s.upsert_node(replace(ECS_NODE, unschedulable=True)), True),
        (lambda s: s.upsert_node(Node("ecs-9")), True),
        (lambda s: s.remove_node("ecs-1"), True),
        (lambda s: s.remove_node("nope"), False),
        (lambda s: s.upsert_pod(ns_pod("p", node="ecs-1")), False),
        (lambda s: s.replace(nodes=[ECS_NODE]), True),
    ],
    ids=["same-node", "changed-node", "new-node", "removed-node", "unknown-node", "pod", "relist"],
)
def test_generation_counts_node_changes_only(change: object, bumps: bool) -> None:
    state = ClusterState(nodes=[ECS_NODE])
    before = state.generation
    change(state)  # type: ignore[operator]
    assert (state.generation != before) is bumps


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.upsert_node(replace(ECS_NODE, unschedulable=True)),
        lambda s: s.remove_node("ecs-1"),
        lambda s: s.upsert_pod(ns_pod("p", node="ecs-1")),
        lambda s: s.remove_pod("a"),
        lambda s: s.set_policies([unit_policy({"resource": "eci"})]),
        lambda s: s.set_ordinal_start(WORKLOAD, 3),
        lambda s: s.replace(pods=[]),
    ],
    ids=["node", "removed-node", "pod", "removed-pod", "policies", "ordinal-start", "relist"],
)
def test_revision_counts_every_write(change: object) -> None:
    state = ClusterState(nodes=[ECS_NODE], pods=[ns_pod("a")])
    before = state.revision
    change(state)  # type: ignore[operator]
    assert state.revision > before


def test_policies_are_kept_sorted_by_key_and_replaced_by_key() -> None:
    state = ClusterState()
    b = replace(unit_policy({"resource": "eci"}), name="b")
    a = replace(unit_policy({"resource": "eci"}), name="a")
    state.set_policies([b, a])
    assert [p.key for p in state.policies] == ["ns/a", "ns/b"]
    newer = replace(a, ignore_terminating_pods=not a.ignore_terminating_pods)
    state.upsert_policy(newer)
    assert state.policies == (newer, b)
    state.remove_policy("ns/b")
    assert list(state.policies) == [newer]  # a new read: mypy keeps the narrowed length


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no Node, Pod, ResourcePolicy or StatefulSet objects"),
        ("- a\n", "every document must be an object"),
        ("groups: []\n", "groups: not a cluster file"),
        ("nodes: {a: 1}\n", "nodes: expected a list of objects"),
        ("kind: Deployment\nmetadata: {name: x}\n", "object 0: kind must be"),
        ("kind: Pod\nmetadata: {}\n", "metadata.name"),
        ("a: [\n", ""),
    ],
    ids=["empty", "not-object", "groups-file", "nodes-map", "other-kind", "bad-pod", "bad-yaml"],
)
def test_a_bad_cluster_file_is_named_with_its_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    with pytest.raises(ModelError) as err:
        load_cluster(path)
    assert str(err.value).startswith(f"{path}")
    assert problem in str(err.value)


def test_a_cluster_file_holds_nodes_pods_policies_and_statefulset_starts(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "nodes: [{kind: Node, metadata: {name: n1}}]\n"
        "pods: [{kind: Pod, metadata: {name: p, namespace: ns, uid: u}, spec: {nodeName: n1}}]\n"
        "---\n"
        "kind: StatefulSet\nmetadata: {name: db, namespace: ns}\nspec: {ordinals: {start: 3}}\n"
    )
    state = load_cluster(path)
    assert list(state.nodes) == ["n1"]
    assert uids(state.pods_on("n1")) == {"u"}
    assert state.ordinal_starts == {WorkloadKey("ns", "StatefulSet", "db"): 3}
