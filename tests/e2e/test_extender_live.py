"""The extender as a local process against a real cluster (opt-in: ``E2E_KUBECONFIG``).

Unlike ``test_e2e_spillover.py`` (Spillover deployed inside the cluster), this module runs
``spillover-extender serve --kubeconfig $E2E_KUBECONFIG --port $E2E_EXTENDER_PORT`` on this
machine and lets the cluster's kube-scheduler call it.  It needs:

- ``E2E_KUBECONFIG``: the cluster; every test skips with this reason when it is unset.
- The ResourcePolicy CRD applied (``kubectl apply -k manifests/crds`` or the full overlay); the
  tests skip when it is missing.  At least one ECS node and one virtual (ECI) node, e.g. the KWOK
  virtual node of ``manifests/kind/``; the overflow tests skip without a virtual node.
- kube-scheduler configured to reach this process, e.g. in its KubeSchedulerConfiguration::

      extenders:
        - urlPrefix: http://<this machine, as seen from the scheduler>:<E2E_EXTENDER_PORT>
          filterVerb: filter
          prioritizeVerb: prioritize
          weight: 1
          nodeCacheCapable: true
          ignorable: false
      percentageOfNodesToScore: 100

  For kind, that address is the Docker network gateway of the kind network (``docker network
  inspect kind``, usually 172.18.0.1) or ``host.docker.internal`` where Docker provides it, and
  the scheduler manifest is ``/etc/kubernetes/manifests/kube-scheduler.yaml`` in the control
  plane container.  ``E2E_EXTENDER_PORT`` defaults to 8888; ``E2E_EXTENDER_HOST`` (the address
  to listen on) to 0.0.0.0.  Do not run this alongside an in-cluster extender registered with
  the same scheduler.

Pods created here tolerate the virtual node's taint themselves, because the admission webhook
(which would add the toleration) needs TLS and is not registered for a local process.  Timeouts
below are safety nets for a slow cluster, never assertions on speed.
"""

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from extender.deletion_cost import ANNOTATION
from extender.kube import load_kube_config

KUBECONFIG = os.environ.get("E2E_KUBECONFIG", "")
PORT = int(os.environ.get("E2E_EXTENDER_PORT", "8888"))
HOST = os.environ.get("E2E_EXTENDER_HOST", "0.0.0.0")
ECI_TAINT = "virtual-kubelet.io/provider"
ECI_LABEL = ("type", "virtual-kubelet")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not KUBECONFIG,
        reason="set E2E_KUBECONFIG to a cluster whose kube-scheduler calls this machine's "
        "extender (see this module's docstring)",
    ),
]


@pytest.fixture(scope="module")
def extender(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``spillover-extender serve`` as a child process; yields its base URL once ready."""
    log_path = tmp_path_factory.mktemp("extender") / "extender.log"
    executable = shutil.which("spillover-extender")
    command = (
        [executable]
        if executable
        else [sys.executable, "-c", "from extender.cli import main; main()"]
    )
    command += ["serve", "--kubeconfig", KUBECONFIG, "--port", str(PORT), "--host", HOST]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{PORT}"
    try:
        _wait_ready(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 120  # safety net: listing a big cluster takes a while
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"extender exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    pytest.fail(f"extender never became ready:\n{log_path.read_text()}")


@pytest.fixture
async def api() -> AsyncIterator[client.ApiClient]:
    api_client = await load_kube_config(KUBECONFIG)
    async with api_client:
        yield api_client


@pytest.fixture
async def namespace(api: client.ApiClient) -> AsyncIterator[str]:
    name = f"spillover-live-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": name}})
    yield name
    await core.delete_namespace(name)


async def _eventually(check: Any, *, what: str) -> Any:
    last = None
    try:
        async with asyncio.timeout(300):  # safety net for a slow cluster only
            for _poll in itertools.count():
                last = await check()
                if last:
                    return last
                await asyncio.sleep(2)
    except TimeoutError:
        pass
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")


async def _node_kinds(api: client.ApiClient) -> dict[str, str]:
    nodes = (await client.CoreV1Api(api).list_node()).items
    kinds = {}
    for node in nodes:
        labels = node.metadata.labels or {}
        taints = node.spec.taints or []
        eci = labels.get(ECI_LABEL[0]) == ECI_LABEL[1] or any(t.key == ECI_TAINT for t in taints)
        kinds[node.metadata.name] = "eci" if eci else "ecs"
    return kinds


async def _require_crd_and_eci(api: client.ApiClient) -> dict[str, str]:
    try:
        await client.CustomObjectsApi(api).list_cluster_custom_object(
            "spillover.dev", "v1alpha1", "resourcepolicies"
        )
    except client.ApiException as err:
        if err.status == 404:
            pytest.skip("the ResourcePolicy CRD is not installed (kubectl apply -k manifests/crds)")
        raise
    kinds = await _node_kinds(api)
    if "eci" not in kinds.values() or "ecs" not in kinds.values():
        pytest.skip(f"needs an ECS node and a virtual ECI node; the cluster has {kinds}")
    return kinds


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "pause",
                            "image": "registry.k8s.io/pause:3.9",
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ],
                    "tolerations": [{"key": ECI_TAINT, "operator": "Exists"}],
                },
            },
        },
    }


async def _bound_pods(api: client.ApiClient, namespace: str, app: str) -> list[Any]:
    pods = await client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}")
    return [p for p in pods.items if p.metadata.deletion_timestamp is None]


def test_extender_serves_and_syncs(extender: str) -> None:
    with urllib.request.urlopen(f"{extender}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert "spillover_extender_cache_synced 1.0" in metrics


async def test_overflow_after_n_then_shrink_eci_first(
    extender: str, api: client.ApiClient, namespace: str
) -> None:
    kinds = await _require_crd_and_eci(api)
    policy = {
        "apiVersion": "spillover.dev/v1alpha1",
        "kind": "ResourcePolicy",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "units": [{"resource": "ecs", "max": 2}, {"resource": "eci"}],
        },
    }
    await client.CustomObjectsApi(api).create_namespaced_custom_object(
        "spillover.dev", "v1alpha1", namespace, "resourcepolicies", policy
    )
    await asyncio.sleep(2)  # let the extender's watch see the policy before pods arrive
    apps = client.AppsV1Api(api)
    await apps.create_namespaced_deployment(namespace, _deployment("web", 5))

    async def placed() -> list[str] | None:
        pods = await _bound_pods(api, namespace, "web")
        nodes = [p.spec.node_name for p in pods if p.spec.node_name]
        return [kinds.get(n, "?") for n in nodes] if len(nodes) == 5 else None

    placement = await _eventually(placed, what="5 replicas bound")
    assert sorted(placement) == ["eci", "eci", "eci", "ecs", "ecs"]

    async def costs_written() -> dict[str, str | None] | None:
        pods = await _bound_pods(api, namespace, "web")
        costs = {
            kinds[p.spec.node_name] + "/" + p.metadata.name: (p.metadata.annotations or {}).get(
                ANNOTATION
            )
            for p in pods
        }
        eci_written = all(v is not None for k, v in costs.items() if k.startswith("eci/"))
        return costs if eci_written else None

    costs = await _eventually(costs_written, what="pod-deletion-cost on every ECI replica")
    # the first unit's pods, new (younger than deletion_cost.SETTLE), have no annotation:
    # absent is 0, above every ECI pod's cost
    ecs_costs = [int(v or 0) for k, v in costs.items() if k.startswith("ecs/")]
    eci_costs = [int(v or 0) for k, v in costs.items() if k.startswith("eci/")]
    assert max(eci_costs) < 0 == min(ecs_costs) == max(ecs_costs)

    async def all_ready() -> bool:
        pods = await _bound_pods(api, namespace, "web")
        return len(pods) == 5 and all(
            any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
            for p in pods
        )

    await _eventually(all_ready, what="5 ready replicas (ReplicaSets delete unready pods first)")
    await apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 2}})

    async def shrunk() -> list[str] | None:
        pods = await _bound_pods(api, namespace, "web")
        return [kinds[p.spec.node_name] for p in pods] if len(pods) == 2 else None

    assert await _eventually(shrunk, what="scale-in to 2") == ["ecs", "ecs"]
