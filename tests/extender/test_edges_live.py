"""The edges that need the watch: the extender's app and its ``ClusterWatch`` served by uvicorn
in the test's event loop, the cluster in the API emulator, requests over kept-alive HTTP.

Full-Node mode while the node watch lags, StatefulSet ``spec.ordinals.start``, and API outages:
a stopped API server, a watch down past ``--watch-staleness``, a restart that answers 429 first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import uvicorn
from kube_emulator import KubeEmulator, make_node, make_pod, make_policy, until
from kubernetes_asyncio import client

from extender.app import create_app
from extender.demo import free_port
from extender.kube import BackoffSettings, ClusterWatch
from extender.ledger import Ledger
from extender.metrics import Metrics
from extender.settings import Settings
from extender.snapshot import ClusterState
from extender.verbs import NOT_SYNCED_ERROR

pytestmark = pytest.mark.integration

FAST = BackoffSettings(initial=0.02, maximum=0.1, busy_maximum=0.05)
KINDS = ("nodes", "pods", "statefulsets", "resourcepolicies")
LIST_PATHS = {
    "nodes": "^/api/v1/nodes$",
    "pods": "^/api/v1/pods$",
    "statefulsets": "^/apis/apps/v1/statefulsets$",
    "resourcepolicies": "^/apis/spillover.dev/v1alpha1/resourcepolicies$",
}


@dataclass
class Live:
    http: aiohttp.ClientSession
    url: str
    state: ClusterState
    ledger: Ledger

    async def post(self, verb: str, body: dict[str, Any]) -> Any:
        async with self.http.post(f"{self.url}/{verb}", json=body) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def ready(self) -> int:
        async with self.http.get(f"{self.url}/readyz") as response:
            return response.status


@contextlib.asynccontextmanager
async def live(
    api: client.ApiClient, *, staleness: float = 60.0, failure_policy: str = "error"
) -> AsyncIterator[Live]:
    state, ledger, metrics = ClusterState(synced=False), Ledger(), Metrics()
    watch = ClusterWatch(api, state, ledger, metrics=metrics, staleness=staleness, backoff=FAST)
    settings = Settings(failure_policy=failure_policy)
    app = create_app(
        state=state, ledger=ledger, settings=settings, background=[watch.run], metrics=metrics
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(20):  # safety net
            await until(lambda: server.started, what="uvicorn started")
            await watch.wait_synced()
        async with aiohttp.ClientSession() as http:
            yield Live(http, f"http://127.0.0.1:{port}", state, ledger)
    finally:
        server.should_exit = True
        await task


def _web(i: int) -> dict[str, Any]:
    return make_pod(f"web-5d8f-{i}", "shop", owner=("ReplicaSet", "web-5d8f"), app="web")


# -- full-Node mode -----------------------------------------------------------------------------
async def test_full_node_mode_keeps_the_max_while_the_node_watch_lags(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    """Regression: with ECS max 2, five pods in a row went to an ECS node the cache did not
    know yet: each reservation was dropped when its pod was seen bound there."""
    kube_api.create(make_node("vk", eci=True))
    kube_api.create(make_policy("web", "shop", match_labels={"app": "web"}, ecs_max=2))
    async with live(kube_client) as ext:
        await kube_api.wait_watching("nodes")
        kube_api.fail(LIST_PATHS["nodes"], status=503, times=10**6)  # the node watch lags
        kube_api.drop_watches("nodes")
        await until(lambda: kube_api.watch_count("nodes") == 0, what="node watch cut")
        new = kube_api.create(make_node("ecs-new"))
        offered = {"items": [new, kube_api.get("nodes", "vk")]}
        placed = []
        for i in range(5):
            pod = kube_api.create(_web(i))
            answer = await ext.post("filter", {"Pod": pod, "Nodes": offered})
            node = answer["Nodes"]["items"][0]["metadata"]["name"]
            placed.append(node)
            kube_api.patch("pods", pod["metadata"]["name"], {"spec": {"nodeName": node}}, "shop")
            uid: str = pod["metadata"]["uid"]

            def bound(uid: str = uid) -> bool:
                return ext.state.pods[uid].node_name != ""

            await until(bound, what="bound")
        assert "ecs-new" not in ext.state.nodes
        assert placed == ["ecs-new", "ecs-new", "vk", "vk", "vk"]
        # once the node is known the pods count themselves and the held reservations go
        kube_api._faults.clear()
        await until(lambda: "ecs-new" in ext.state.nodes, what="node seen")
        await until(lambda: len(ext.ledger) == 0, what="reservations dropped")
        pod = kube_api.create(_web(5))
        answer = await ext.post("filter", {"Pod": pod, "Nodes": offered})
        assert [n["metadata"]["name"] for n in answer["Nodes"]["items"]] == ["vk"]


# -- StatefulSet spec.ordinals.start ------------------------------------------------------------
def _statefulset(name: str, start: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"replicas": 3, "ordinals": {"start": start}, "serviceName": name},
    }


async def test_statefulset_ordinals_count_from_the_start(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    """Regression: a StatefulSet starting at 5 put its first N replicas on ECI (5 >= N)."""
    kube_api.create(make_node("ecs-1"))
    kube_api.create(make_node("vk", eci=True))
    kube_api.create(make_policy("db", "shop", match_labels={"app": "db"}, ecs_max=2))
    kube_api.create(_statefulset("db", 5))
    async with live(kube_client) as ext:
        placed = []
        for ordinal in (5, 6, 7):
            pod = make_pod(f"db-{ordinal}", "shop", owner=("StatefulSet", "db"), app="db")
            pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] = str(ordinal)
            pod = kube_api.create(pod)
            answer = await ext.post("filter", {"Pod": pod, "NodeNames": ["ecs-1", "vk"]})
            placed.extend(answer["NodeNames"])
        assert placed == ["ecs-1", "ecs-1", "vk"]
        # the start moves with the StatefulSet
        await kube_api.wait_watching("statefulsets")
        kube_api.patch("statefulsets", "db", {"spec": {"ordinals": {"start": 6}}}, "shop")
        await until(lambda: set(ext.state.ordinal_starts.values()) == {6}, what="start 6")
        pod = kube_api.get("pods", "db-7", "shop")
        answer = await ext.post("filter", {"Pod": pod, "NodeNames": ["ecs-1", "vk"]})
        assert answer["NodeNames"] == ["ecs-1"]


# -- API outages --------------------------------------------------------------------------------
def _lists_since(kube_api: KubeEmulator, marks: dict[str, int]) -> set[str]:
    """The kinds listed (not watched) since ``marks`` (request counts per kind)."""
    listed = set()
    for kind, path in LIST_PATHS.items():
        requests = kube_api.requests_to("GET", path)[marks[kind] :]
        if any("watch" not in r.params for r in requests):
            listed.add(kind)
    return listed


def _marks(kube_api: KubeEmulator) -> dict[str, int]:
    return {kind: len(kube_api.requests_to("GET", path)) for kind, path in LIST_PATHS.items()}


@pytest.mark.parametrize("failure_policy", ["error", "pass"])
async def test_a_stopped_api_server_makes_the_extender_unready_until_every_watch_relisted(
    kube_api: KubeEmulator, kube_client: client.ApiClient, failure_policy: str
) -> None:
    """Regression: /readyz stayed 200 through an outage and /filter answered from a cache
    growing stale; after the restart the watches waited out a doubled backoff."""
    kube_api.create(make_node("ecs-1"))
    kube_api.create(make_node("vk", eci=True))
    kube_api.create(make_policy("web", "shop", match_labels={"app": "web"}, ecs_max=2))
    body = {"Pod": _web(0), "NodeNames": ["ecs-1", "vk"]}
    async with live(kube_client, staleness=0.3, failure_policy=failure_policy) as ext:
        assert await ext.ready() == 200
        assert (await ext.post("filter", body))["NodeNames"] == ["ecs-1"]

        kube_api.stop()
        await until(lambda: not ext.state.synced, what="unsynced after the staleness")
        assert await ext.ready() == 503
        answer = await ext.post("filter", body)
        if failure_policy == "error":
            assert answer["Error"] == NOT_SYNCED_ERROR
        else:
            assert answer["NodeNames"] == ["ecs-1", "vk"]  # everything passes

        # the restarted server first answers 429 "storage is (re)initializing"
        marks = _marks(kube_api)
        kube_api.fail("^/api", status=429, times=12, message="storage is (re)initializing")
        kube_api.start()
        await until(lambda: ext.state.synced, what="synced again")
        assert _lists_since(kube_api, marks) == set(KINDS)  # every watch relisted
        assert await ext.ready() == 200
        assert (await ext.post("filter", body))["NodeNames"] == ["ecs-1"]


async def test_one_watch_down_past_the_staleness_is_enough_to_be_unready(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    """The ResourcePolicy watch alone down: unready, and ready only once it has relisted."""
    kube_api.create(make_node("ecs-1"))
    async with live(kube_client, staleness=0.3) as ext:
        await kube_api.wait_watching("resourcepolicies")
        kube_api.fail(LIST_PATHS["resourcepolicies"], status=500, times=10**6)
        kube_api.drop_watches("resourcepolicies")
        await until(lambda: not ext.state.synced, what="unsynced")
        assert await ext.ready() == 503
        marks = _marks(kube_api)
        kube_api._faults.clear()
        await until(lambda: ext.state.synced, what="synced again")
        assert "resourcepolicies" in _lists_since(kube_api, marks)
        assert await ext.ready() == 200
