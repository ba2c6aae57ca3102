"""RBAC grants each component exactly what its code uses; workloads are hardened and wired to
the code's ports and paths; the webhook cannot block the control plane."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from manifests_support import (
    AUTOSCALER_PORT,
    AUTOSCALER_ROUTES,
    MANIFESTS,
    find,
    flag,
    kustomizations,
    pod_spec,
    render,
)

from extender.app import ROUTES
from extender.settings import DEFAULT_PORT

Grants = dict[tuple[str, str], set[str]]

# What extender/kube.py calls: list+watch cache, deletion-cost patch, optional bind.
EXTENDER_USES: Grants = {
    ("", "nodes"): {"get", "list", "watch"},
    ("", "pods"): {"get", "list", "watch", "patch"},
    ("", "pods/binding"): {"create"},
    ("apps", "statefulsets"): {"get", "list", "watch"},
    ("spillover.dev", "resourcepolicies"): {"get", "list", "watch"},
}
# What the autoscaler controller and its kwok provider call (cluster-wide).
AUTOSCALER_USES: Grants = {
    ("", "nodes"): {"get", "list", "watch", "create", "delete", "patch"},
    ("", "pods"): {"list", "watch"},
    ("", "pods/eviction"): {"create"},
    ("policy", "poddisruptionbudgets"): {"list", "watch"},
    ("apps", "statefulsets"): {"list", "watch"},
    ("spillover.dev", "resourcepolicies"): {"list", "watch"},
    ("", "events"): {"create"},
}
# In its own namespace: leader election and the groups/status ConfigMaps.
AUTOSCALER_NAMESPACED_USES: Grants = {
    ("coordination.k8s.io", "leases"): {"get", "create", "update"},
    ("", "configmaps"): {"get", "list", "watch", "create", "update", "patch"},
}
OUR_CONTAINERS = {"extender", "autoscaler"}


def _grants(objects: tuple[dict[str, Any], ...], account: str, *, kind: str) -> Grants:
    """Verbs the ServiceAccount `account` gets from bindings of `kind` (ClusterRoleBinding or
    RoleBinding) to roles defined in `objects`."""
    grants: Grants = defaultdict(set)
    role_kind = "ClusterRole" if kind == "ClusterRoleBinding" else "Role"
    for binding in (o for o in objects if o["kind"] == kind):
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == account for s in binding["subjects"]
        ):
            continue
        roles = [
            o
            for o in objects
            if o["kind"] == binding["roleRef"]["kind"] == role_kind
            and o["metadata"]["name"] == binding["roleRef"]["name"]
        ]
        for role in roles:
            for rule in role["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        grants[(group, resource)] |= set(rule["verbs"])
    return dict(grants)


BASE = render(MANIFESTS / "base")


def test_extender_rbac_is_exactly_what_the_code_uses() -> None:
    assert _grants(BASE, "spillover-extender", kind="ClusterRoleBinding") == EXTENDER_USES
    assert _grants(BASE, "spillover-extender", kind="RoleBinding") == {}


def test_autoscaler_rbac_is_exactly_what_the_code_uses() -> None:
    assert _grants(BASE, "spillover-autoscaler", kind="ClusterRoleBinding") == AUTOSCALER_USES
    assert _grants(BASE, "spillover-autoscaler", kind="RoleBinding") == AUTOSCALER_NAMESPACED_USES


@pytest.mark.parametrize("directory", kustomizations(), ids=lambda d: str(d.relative_to(MANIFESTS)))
def test_no_wildcards_anywhere(directory: Path) -> None:
    for role in (o for o in render(directory) if o["kind"] in ("Role", "ClusterRole")):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: {field} *"


def test_second_scheduler_has_the_upstream_scheduler_roles() -> None:
    objects = render(MANIFESTS / "overlays/second-scheduler")
    refs = {
        (b["kind"], b["roleRef"]["kind"], b["roleRef"]["name"], b["metadata"].get("namespace"))
        for b in objects
        if b["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and any(s["name"] == "spillover-scheduler" for s in b["subjects"])
    }
    assert ("ClusterRoleBinding", "ClusterRole", "system:kube-scheduler", None) in refs
    assert ("ClusterRoleBinding", "ClusterRole", "system:volume-scheduler", None) in refs
    assert (
        "RoleBinding",
        "Role",
        "extension-apiserver-authentication-reader",
        "kube-system",
    ) in refs
    # The sidecar extender shares the ServiceAccount: it needs the extender's role too.
    assert ("ClusterRoleBinding", "ClusterRole", "spillover-extender", None) in refs
    lease = _grants(objects, "spillover-scheduler", kind="RoleBinding")
    assert lease[("coordination.k8s.io", "leases")] >= {"get", "create", "update"}


def _our_containers(objects: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    containers = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "DaemonSet"):
            spec = pod_spec(obj)
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                if c["name"] in OUR_CONTAINERS or c["name"] == "kube-scheduler":
                    containers.append({**c, "_pod": spec})
    return containers


@pytest.mark.parametrize("directory", kustomizations(), ids=lambda d: str(d.relative_to(MANIFESTS)))
def test_containers_are_hardened(directory: Path) -> None:
    for container in _our_containers(render(directory)):
        pod = container["_pod"]
        sc = container["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert set(container["resources"]) == {"requests", "limits"}
        assert container.get("readinessProbe")
        assert container.get("livenessProbe")
        if container["name"] in OUR_CONTAINERS:
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts  # the only writable place besides the numba cache


def _probe_paths(container: dict[str, Any]) -> set[str]:
    paths = set()
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        spec = container.get(probe, {})
        if "httpGet" in spec:
            paths.add(spec["httpGet"]["path"])
        if "exec" in spec:
            script = spec["exec"]["command"][-1]
            paths.add("/" + script.split("/")[-1].split("'")[0])
    return paths


def test_extender_webhook_service_and_tls_line_up() -> None:
    deployment = find(BASE, "Deployment", "spillover-extender")
    (container,) = pod_spec(deployment)["containers"]
    args = container["args"]
    port = int(flag(args, "port") or DEFAULT_PORT)
    assert port == 8443
    assert flag(args, "tls-cert")
    assert flag(args, "tls-key")
    assert _probe_paths(container) <= set(ROUTES)
    secret_volumes = [v for v in pod_spec(deployment)["volumes"] if "secret" in v]
    assert [v["secret"]["secretName"] for v in secret_volumes] == ["spillover-extender-tls"]

    service = find(BASE, "Service", "spillover-extender")
    (service_port,) = service["spec"]["ports"]
    (container_port,) = [p for p in container["ports"] if p["name"] == service_port["targetPort"]]
    assert container_port["containerPort"] == port

    webhook = find(BASE, "MutatingWebhookConfiguration", "spillover-extender")
    (hook,) = webhook["webhooks"]
    client = hook["clientConfig"]["service"]
    assert (client["name"], client["namespace"]) == ("spillover-extender", "spillover-system")
    assert client["port"] == service_port["port"]
    assert client["path"] == "/mutate"
    assert client["path"] in ROUTES
    assert hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert 1 <= hook["timeoutSeconds"] <= 10
    excluded = {
        value
        for expr in hook["namespaceSelector"]["matchExpressions"]
        if expr["key"] == "kubernetes.io/metadata.name" and expr["operator"] == "NotIn"
        for value in expr["values"]
    }
    assert {"kube-system", "spillover-system"} <= excluded
    assert hook["objectSelector"]["matchExpressions"]


@pytest.mark.parametrize(
    ("overlay", "kind", "name"),
    [
        ("overlays/second-scheduler", "Deployment", "spillover-scheduler"),
        ("overlays/default-scheduler", "DaemonSet", "spillover-scheduler-extender"),
        ("overlays/kind", "DaemonSet", "spillover-scheduler-extender"),
    ],
)
def test_scheduler_side_extender_listens_where_the_scheduler_calls(
    overlay: str, kind: str, name: str
) -> None:
    objects = render(MANIFESTS / overlay)
    spec = pod_spec(find(objects, kind, name))
    (extender,) = [
        c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == "extender"
    ]
    assert flag(extender["args"], "host") == "127.0.0.1"
    assert int(flag(extender["args"], "port") or DEFAULT_PORT) == DEFAULT_PORT
    assert flag(extender["args"], "tls-cert") is None  # plain HTTP on loopback
    assert _probe_paths(extender) <= set(ROUTES)


def test_second_scheduler_pod_runs_the_official_scheduler_with_its_config() -> None:
    objects = render(MANIFESTS / "overlays/second-scheduler")
    spec = pod_spec(find(objects, "Deployment", "spillover-scheduler"))
    (scheduler,) = spec["containers"]
    assert scheduler["image"] == "registry.k8s.io/kube-scheduler:v1.36.2"
    config_path = flag(scheduler["command"], "config")
    (mount,) = scheduler["volumeMounts"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    config_map = find(objects, "ConfigMap", volume["configMap"]["name"])
    assert config_path == f"{mount['mountPath']}/scheduler-config.yaml"
    assert "schedulerName: spillover-scheduler" in config_map["data"]["scheduler-config.yaml"]
    (sidecar,) = spec["initContainers"]
    assert sidecar["restartPolicy"] == "Always"


def test_autoscaler_deployment() -> None:
    deployment = find(BASE, "Deployment", "spillover-autoscaler")
    assert deployment["spec"]["replicas"] == 2
    (container,) = pod_spec(deployment)["containers"]
    assert container["command"] == ["spillover-autoscaler"]
    assert container["args"][0] == "run"
    assert int(flag(container["args"], "port") or AUTOSCALER_PORT) == AUTOSCALER_PORT
    assert _probe_paths(container) <= set(AUTOSCALER_ROUTES)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NUMBA_CACHE_DIR"] == "/var/cache/numba"
    assert "/var/cache/numba" in {m["mountPath"] for m in container["volumeMounts"]}
    pdb = find(BASE, "PodDisruptionBudget", "spillover-autoscaler")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_kind_overlay_uses_kwok_and_the_local_image() -> None:
    objects = render(MANIFESTS / "overlays/kind")
    (container,) = pod_spec(find(objects, "Deployment", "spillover-autoscaler"))["containers"]
    assert flag(container["args"], "provider") == "kwok"
    assert container["image"] == "spillover:dev"
    node = find(objects, "Node", "virtual-kubelet-cn-hangzhou-i")
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["metadata"]["labels"]["type"] == "virtual-kubelet"
    assert node["spec"]["taints"] == [
        {"key": "virtual-kubelet.io/provider", "value": "alibabacloud", "effect": "NoSchedule"}
    ]
    assert node["status"]["capacity"] == {
        "cpu": "10000",
        "memory": "40Ti",
        "pods": "20000",
        "ephemeral-storage": "40Ti",
    }
    groups = find(objects, "ConfigMap", "spillover-node-groups")["data"]["groups.yaml"]
    import yaml

    parsed = yaml.safe_load(groups)["groups"]
    assert [g["name"] for g in parsed] == ["kwok-small", "kwok-large"]
    for group in parsed:
        assert set(group) >= {"name", "instanceType", "labels", "taints", "min", "max", "desired"}
        assert set(group["instanceType"]) == {"name", "cpu", "memory", "gpu", "maxPods"}


@pytest.mark.parametrize("directory", kustomizations(), ids=lambda d: str(d.relative_to(MANIFESTS)))
def test_extender_args_are_accepted_by_the_cli(directory: Path, tmp_path: Path) -> None:
    cli = pytest.importorskip("extender.cli", reason="extender.cli not in this checkout")
    # TLS files live in the mounted Secret: stand-ins here, so the CLI's file checks pass.
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).write_text("stand-in")
    for container in _our_containers(render(directory)):
        if container["command"] != ["spillover-extender"]:
            continue
        args = [a.replace("/etc/spillover/tls", str(tmp_path)) for a in container["args"]]
        settings = cli.parse_settings(args, environ={})
        assert settings.port in (DEFAULT_PORT, 8443)
