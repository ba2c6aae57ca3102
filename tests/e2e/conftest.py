"""End-to-end fixtures: a cluster with Spillover deployed, driven through `kubectl`.

Where the cluster comes from, first match wins:
- `E2E_KUBECONFIG=<file>`: any cluster. Spillover is applied from `E2E_OVERLAY`
  (default `manifests/overlays/kind`) unless `E2E_SKIP_DEPLOY=1` says it is already there.
  The cluster needs KWOK (for the virtual node and the kwok node groups) and a scheduler
  registered with the extender, as `make kind-up` sets up.
- `kind` on PATH and a Docker engine that answers `docker info`: a fresh kind cluster from
  `manifests/kind/cluster.yaml` through pytest-kind's `KindCluster`, the image built and loaded,
  KWOK installed from its release manifests, deleted at the end unless `E2E_KEEP_CLUSTER=1`.
- Neither: every test skips with the reason. Collection never needs a cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_support import Kubectl

REPO = Path(__file__).resolve().parents[2]
KWOK_RELEASE = "https://github.com/kubernetes-sigs/kwok/releases/download/v0.6.1"
IMAGE = "spillover:dev"


def unavailable_reason() -> str | None:
    """Why no cluster can be had here, or None when one can."""
    if os.environ.get("E2E_KUBECONFIG"):
        return None
    if shutil.which("kind") is None:
        return "e2e needs a cluster: set E2E_KUBECONFIG, or install kind (not on PATH)"
    if shutil.which("docker") is None:
        return "e2e needs a cluster: set E2E_KUBECONFIG, or install Docker for kind"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"e2e needs a cluster: `docker info` failed ({e}); or set E2E_KUBECONFIG"
    if info.returncode != 0:
        return "e2e needs a cluster: no Docker engine answers `docker info`; or set E2E_KUBECONFIG"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


def _deploy(kubectl: Kubectl, overlay: Path) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(overlay))
    kubectl("wait", "--for=condition=Established", "crd/resourcepolicies.spillover.dev")
    for namespace, workload in [
        ("spillover-system", "deployment/spillover-extender"),
        ("spillover-system", "deployment/spillover-autoscaler"),
        ("kube-system", "daemonset/spillover-scheduler-extender"),
    ]:
        kubectl("-n", namespace, "rollout", "status", workload, "--timeout=300s", check=False)
    kubectl("-n", "spillover-system", "rollout", "status", "deployment/spillover-extender")


def _kind_cluster(tmp: Path) -> Iterator[Path]:
    from pytest_kind import KindCluster  # imported late: only this path needs pykube

    config = yaml.safe_load((REPO / "manifests/kind/cluster.yaml").read_text())
    for node in config["nodes"]:
        for mount in node.get("extraMounts", []):
            mount["hostPath"] = str(REPO / mount["hostPath"])
    config_file = tmp / "kind-cluster.yaml"
    config_file.write_text(yaml.safe_dump(config))
    subprocess.run(["docker", "build", "-t", IMAGE, str(REPO)], check=True)
    cluster = KindCluster("spillover-e2e")
    cluster.create(config_file=config_file)
    try:
        cluster.load_docker_image(IMAGE)
        kubectl = Kubectl(cluster.kubeconfig_path)
        kubectl("apply", "-f", f"{KWOK_RELEASE}/kwok.yaml")
        kubectl("apply", "-f", f"{KWOK_RELEASE}/stage-fast.yaml")
        kubectl("-n", "kube-system", "rollout", "status", "deployment/kwok-controller")
        yield cluster.kubeconfig_path
    finally:
        if not os.environ.get("E2E_KEEP_CLUSTER"):
            cluster.delete()


@pytest.fixture(scope="session")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    overlay = REPO / os.environ.get("E2E_OVERLAY", "manifests/overlays/kind")
    if os.environ.get("E2E_KUBECONFIG"):
        client = Kubectl(Path(os.environ["E2E_KUBECONFIG"]))
        if not os.environ.get("E2E_SKIP_DEPLOY"):
            _deploy(client, overlay)
        yield client
        return
    for kubeconfig in _kind_cluster(tmp_path_factory.mktemp("kind")):
        client = Kubectl(kubeconfig)
        _deploy(client, overlay)
        yield client


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = "e2e-" + request.node.name.removeprefix("test_").replace("_", "-")[:50]
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)
