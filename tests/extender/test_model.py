"""``extender.model``: pod requests, pods and StatefulSets from JSON, ordinals, ``Pod.placed``."""

from __future__ import annotations

from typing import Any

import pytest
from extender_helpers import fixture

from extender.model import (
    ModelError,
    OwnerRef,
    Pod,
    Resources,
    WorkloadKey,
    pod_from_dict,
    pod_requests,
)

GiB = 1 << 30
MiB = 1 << 20


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


def test_pod_ordinal_from_label_or_name() -> None:
    sts = OwnerRef("StatefulSet", "db")
    assert Pod("u", "db-3", "ns", {"apps.kubernetes.io/pod-index": "4"}, owner=sts).ordinal == 4
    assert Pod("u", "db-3", "ns", owner=sts).ordinal == 3
    assert Pod("u", "db-3", "ns", owner=OwnerRef("ReplicaSet", "db")).ordinal is None


# -- StatefulSet ordinals ---------------------------------------------------------------------
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
