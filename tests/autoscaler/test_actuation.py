"""``autoscaler.actuation`` against the API emulator: the API drainer and the PDB list."""

from __future__ import annotations

import pytest
from kube_emulator import KubeEmulator, make_node, make_pdb, make_pod
from kubernetes_asyncio import client

from autoscaler.actuation import ApiDrainer, list_disruption_budgets
from autoscaler.drain import DELETION_TAINT, drain_node
from extender.disruption import DisruptionBudget
from extender.model import node_from_dict, pod_from_dict
from extender.selectors import LabelSelector
from extender.snapshot import ClusterState

pytestmark = pytest.mark.integration


def cache(kube_api: KubeEmulator) -> ClusterState:
    return ClusterState(
        nodes=[node_from_dict(n) for n in kube_api.objects_of("nodes")],
        pods=[pod_from_dict(p) for p in kube_api.objects_of("pods")],
    )


async def test_drains_through_the_api_and_a_budget_refuses(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    kube_api.create(make_node("n1"))
    kube_api.create(make_pod("web-0", "shop", node="n1", app="web"))
    kube_api.create(make_pod("db-0", "shop", node="n1", app="db"))
    kube_api.create(make_pdb("db", "shop", match_labels={"app": "db"}, allowed=0))
    state = cache(kube_api)
    drainer = ApiDrainer(kube_client)

    async def watch(_: float) -> None:
        state.replace(pods=cache(kube_api).pods.values())

    drained = await drain_node(
        drainer, state, state.nodes["n1"], now=5.0, longest_wait=1.0, poll=0.5, sleep=watch
    )
    assert not drained.ok
    assert drained.reason == "eviction refused: shop/db-0"
    node = kube_api.get("nodes", "n1")
    assert not node["spec"].get("unschedulable")  # cordoned, then uncordoned
    assert all(t["key"] != DELETION_TAINT for t in node["spec"].get("taints") or [])
    assert len(kube_api.requests_to("PATCH", "/nodes/n1$")) == 2


async def test_cordon_marks_the_node_and_eviction_answers(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    kube_api.create(make_node("n1"))
    kube_api.create(make_pod("web-0", "shop", node="n1"))
    state = cache(kube_api)
    drainer = ApiDrainer(kube_client)
    assert await drainer.cordon(state.nodes["n1"], now=7.0) == "cordoned"
    spec = kube_api.get("nodes", "n1")["spec"]
    assert spec["unschedulable"] is True
    assert {"key": DELETION_TAINT, "value": "7", "effect": "NoSchedule"} in spec["taints"]
    (pod,) = state.pods.values()
    assert await drainer.evict(pod) == "evicted"
    assert kube_api.objects_of("pods") == []
    assert await drainer.evict(pod) == "gone"  # 404
    kube_api.delete("nodes", "n1")
    assert await drainer.cordon(state.nodes["n1"], now=8.0) == "gone"


async def test_lists_disruption_budgets_through_the_one_parser(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    kube_api.create(make_pdb("db", "shop", match_labels={"app": "db"}, allowed=2))
    assert await list_disruption_budgets(kube_client) == [
        DisruptionBudget("shop", LabelSelector({"app": "db"}), 2, "db")
    ]
