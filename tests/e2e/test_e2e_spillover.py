"""Spillover on a real cluster: overflow after N, overflow when ECS is full, shrink-ECI-first,
and the autoscaler adding and removing a kwok node.

The ECS nodes are the real workers labelled `pool=general`; the ECI virtual node and the
autoscaler's nodes are KWOK fakes (see manifests/kind/). Workload pods carry no toleration for
the virtual node: the webhook must add it, so these tests cover the webhook too.
"""

from __future__ import annotations

from typing import Any

from e2e_support import Kubectl, eventually

PAUSE = "registry.k8s.io/pause:3.10"
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}


def policy(namespace: str, app: str, units: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "spillover.dev/v1alpha1",
        "kind": "ResourcePolicy",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": app}}, "units": units, **spec},
    }


def deployment(
    namespace: str, app: str, *, replicas: int, cpu: str = "10m", tolerations: Any = ()
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "tolerations": list(tolerations),
                    "containers": [
                        {
                            "name": "pause",
                            "image": PAUSE,
                            "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}},
                        }
                    ],
                },
            },
        },
    }


def placement(kubectl: Kubectl, namespace: str, app: str) -> dict[str, list[str]] | None:
    """Pod names by unit ("ecs" / "eci"), or None while a pod is not bound yet."""
    pods = kubectl.pods(namespace, f"app={app}")
    if any(not p["spec"].get("nodeName") for p in pods):
        return None
    virtual = kubectl.virtual_nodes()
    by_unit: dict[str, list[str]] = {"ecs": [], "eci": []}
    for pod in pods:
        unit = "eci" if pod["spec"]["nodeName"] in virtual else "ecs"
        by_unit[unit].append(pod["metadata"]["name"])
    return by_unit


def settled(kubectl: Kubectl, namespace: str, app: str, replicas: int) -> Any:
    def check() -> dict[str, list[str]] | None:
        by_unit = placement(kubectl, namespace, app)
        if by_unit is None or len(by_unit["ecs"]) + len(by_unit["eci"]) != replicas:
            return None
        return by_unit

    return eventually(check, what=f"{replicas} pods of {namespace}/{app} bound")


def test_first_three_replicas_on_ecs_the_rest_on_eci(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(
        policy(
            namespace,
            "web",
            [
                {"resource": "ecs", "max": 3, "nodeSelector": {"pool": "general"}},
                {"resource": "eci"},
            ],
        )
    )
    kubectl.apply(deployment(namespace, "web", replicas=1))
    settled(kubectl, namespace, "web", 1)

    kubectl("-n", namespace, "scale", "deployment/web", "--replicas=8")
    by_unit = settled(kubectl, namespace, "web", 8)

    assert len(by_unit["ecs"]) == 3
    assert len(by_unit["eci"]) == 5


def _free_cpu_millis(kubectl: Kubectl) -> dict[str, int]:
    """Allocatable minus requested CPU of every pool=general node."""
    free = {}
    pods = kubectl.get("pods", "--all-namespaces")["items"]
    for node in kubectl.get("nodes", "-l", "pool=general")["items"]:
        name = node["metadata"]["name"]
        allocatable = _millis(node["status"]["allocatable"]["cpu"])
        requested = sum(
            _millis(c.get("resources", {}).get("requests", {}).get("cpu", "0"))
            for p in pods
            if p["spec"].get("nodeName") == name
            and p["status"].get("phase") not in ("Succeeded", "Failed")
            for c in p["spec"]["containers"]
        )
        free[name] = allocatable - requested
    return free


def _millis(cpu: str) -> int:
    return int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)


def test_overflow_to_eci_when_ecs_is_full(kubectl: Kubectl, namespace: str) -> None:
    free = _free_cpu_millis(kubectl)
    assert free, "the cluster has no pool=general (ECS) nodes"
    request = int(min(free.values()) * 0.9)
    ecs_capacity = sum(f // request for f in free.values())
    replicas = ecs_capacity + 2
    kubectl.apply(
        policy(
            namespace,
            "fill",
            [{"resource": "ecs", "nodeSelector": {"pool": "general"}}, {"resource": "eci"}],
        )
    )
    kubectl.apply(deployment(namespace, "fill", replicas=replicas, cpu=f"{request}m"))

    by_unit = settled(kubectl, namespace, "fill", replicas)

    assert len(by_unit["ecs"]) == ecs_capacity
    assert len(by_unit["eci"]) == 2


def test_scale_in_removes_eci_pods_first(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(
        policy(
            namespace,
            "api",
            [
                {"resource": "ecs", "max": 3, "nodeSelector": {"pool": "general"}},
                {"resource": "eci"},
            ],
        )
    )
    kubectl.apply(deployment(namespace, "api", replicas=8))
    by_unit = settled(kubectl, namespace, "api", 8)
    cost_key = "controller.kubernetes.io/pod-deletion-cost"

    def costs_written() -> bool:
        pods = {p["metadata"]["name"]: p for p in kubectl.pods(namespace, "app=api")}
        cost = {
            n: int(p["metadata"].get("annotations", {}).get(cost_key, "0")) for n, p in pods.items()
        }
        return min(cost[n] for n in by_unit["ecs"]) > max(cost[n] for n in by_unit["eci"])

    eventually(costs_written, what="pod-deletion-cost: ECS pods above ECI pods")

    kubectl("-n", namespace, "scale", "deployment/api", "--replicas=2")
    after = settled(kubectl, namespace, "api", 2)

    assert after["eci"] == []
    assert set(after["ecs"]) <= set(by_unit["ecs"])


def test_autoscaler_adds_a_kwok_node_and_removes_it_when_unneeded(
    kubectl: Kubectl, namespace: str
) -> None:
    group_nodes = ("nodes", "-l", "pool=kwok-small")
    assert kubectl.get(*group_nodes)["items"] == [], "start with an empty kwok-small group"
    # ExceedMax: never overflow for lack of room, so the pods wait for ECS capacity.
    kubectl.apply(
        policy(
            namespace,
            "burst",
            [{"resource": "ecs", "nodeSelector": {"pool": "kwok-small"}}, {"resource": "eci"}],
            whenTryNextUnits="ExceedMax",
        )
    )
    kubectl.apply(
        deployment(namespace, "burst", replicas=3, cpu="500m", tolerations=[KWOK_TOLERATION])
    )

    eventually(lambda: kubectl.get(*group_nodes)["items"], timeout=120, what="a kwok-small node")
    by_unit = settled(kubectl, namespace, "burst", 3)
    assert by_unit["eci"] == []

    kubectl("-n", namespace, "delete", "deployment/burst", "--wait=true")
    eventually(
        lambda: kubectl.get(*group_nodes)["items"] == [],
        timeout=300,
        interval=5,
        what="the unneeded kwok-small node removed",
    )
