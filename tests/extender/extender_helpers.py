"""Builders shared by the extender tests: fixture bodies, clusters, pods and the TestClient app."""

from __future__ import annotations

import copy
import json
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from extender.app import create_app
from extender.ledger import Ledger
from extender.model import Node, NodeKind, Pod, Resources, Taint, node_from_dict, pod_from_dict
from extender.policies import policy_from_dict
from extender.policy import ResourcePolicy
from extender.settings import Settings
from extender.snapshot import ClusterState

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette nags about httpx vs httpx2; httpx is what we have
    from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared/fixtures/kube-scheduler"
if not FIXTURES.is_dir():
    FIXTURES = REPO / "extender/data/fixtures"
ECS = ("cn-hangzhou.192.168.0.11", "cn-hangzhou.192.168.0.12", "cn-hangzhou.192.168.0.13")
VIRTUAL = "virtual-kubelet-cn-hangzhou-i"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def fixture_files() -> list[Path]:
    return sorted(FIXTURES.glob("*.json"))


def fixture_nodes() -> list[Node]:
    items = fixture("filter-deployment-pod-fullnodes.json")["Nodes"]["items"]
    return [node_from_dict(item) for item in items]


def policy(name: str, app: str, *units: dict[str, Any], **spec: Any) -> ResourcePolicy:
    return policy_from_dict(
        {
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": app}}, "units": list(units), **spec},
        }
    )


def shop_policies(web_max: int = 2, db_max: int = 1) -> list[ResourcePolicy]:
    return [
        policy("web", "web", {"resource": "ecs", "max": web_max}, {"resource": "eci"}),
        policy("db", "db", {"resource": "ecs", "max": db_max}, {"resource": "eci"}),
    ]


def shop_state(**kwargs: Any) -> ClusterState:
    return ClusterState(nodes=fixture_nodes(), policies=shop_policies(**kwargs))


def web_pod_dict(i: int, *, uid: str | None = None) -> dict[str, Any]:
    """Replica ``i`` of the fixture's web Deployment (fresh UID per replica)."""
    pod: dict[str, Any] = copy.deepcopy(fixture("filter-deployment-pod-nodecache.json")["Pod"])
    pod["metadata"]["name"] = f"web-7645bdbd5c-r{i:03d}"
    pod["metadata"]["uid"] = uid or f"00000000-0000-0000-0000-{i:012d}"
    return pod


def admission_review(pod: Any, **request: Any) -> dict[str, Any]:
    """An AdmissionReview v1 creating ``pod`` in namespace shop; ``request`` overrides fields."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "req-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "shop",
            "object": pod,
            **request,
        },
    }


def bound(pod: dict[str, Any], node: str) -> Pod:
    raw = copy.deepcopy(pod)
    raw["spec"]["nodeName"] = node
    raw["status"] = {"phase": "Running"}
    return pod_from_dict(raw)


def big_cluster(n: int) -> list[Node]:
    """``n - 1`` ECS nodes and one virtual node."""
    nodes = [
        Node(f"ecs-{i:05d}", {"pool": "general"}, (), Resources(4000, 16 << 30, 110))
        for i in range(n - 1)
    ]
    nodes.append(
        Node(
            "virtual-node",
            {"type": "virtual-kubelet"},
            (Taint("virtual-kubelet.io/provider", "alibabacloud", "NoSchedule"),),
            Resources(10**7, 1 << 50, 20000),
            NodeKind.ECI,
        )
    )
    return nodes


def client(
    state: ClusterState,
    ledger: Ledger | None = None,
    settings: Settings | None = None,
    **kwargs: Any,
) -> TestClient:
    app = create_app(
        state=state,
        ledger=Ledger() if ledger is None else ledger,
        settings=settings or Settings(),
        **kwargs,
    )
    return TestClient(app, raise_server_exceptions=False)


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> Counter[str]:
    """``owner.name`` replaced (for the test) by a wrapper that counts its calls under ``name``."""
    calls: Counter[str] = Counter()
    function = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return function(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls
