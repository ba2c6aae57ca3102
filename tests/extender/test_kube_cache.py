"""ClusterWatch against the loopback API server: list, follow, relist on 410, reconnect."""

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from kube_emulator import KubeEmulator, make_node, make_pod, make_policy, until
from kubernetes_asyncio import client

from extender.kube import BackoffSettings, ClusterWatch
from extender.ledger import Ledger
from extender.metrics import Metrics
from extender.model import NodeKind, WorkloadKey
from extender.snapshot import ClusterState

pytestmark = pytest.mark.integration

WEB = WorkloadKey("shop", "Deployment", "web")


@dataclass
class Cache:
    watch: ClusterWatch
    state: ClusterState
    ledger: Ledger
    metrics: Metrics
    sleeps: list[float]

    def restarts(self, resource: str, cause: str) -> float:
        labels = {"resource": resource, "cause": cause}
        value = self.metrics.registry.get_sample_value(
            "spillover_extender_watch_restarts_total", labels
        )
        return value or 0.0


@pytest.fixture
async def cache(kube_client: client.ApiClient) -> AsyncIterator[Cache]:
    state = ClusterState(synced=False)
    ledger = Ledger(ttl=3600)
    metrics = Metrics()
    sleeps: list[float] = []

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)
        await asyncio.sleep(0)

    watch = ClusterWatch(
        kube_client,
        state,
        ledger,
        metrics=metrics,
        sleep=fake_sleep,
        rand=lambda: 0.5,  # no jitter
        backoff=BackoffSettings(initial=0.5, maximum=4.0),
    )
    task = asyncio.create_task(watch.run())
    yield Cache(watch, state, ledger, metrics, sleeps)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def synced(cache: Cache) -> None:
    async with asyncio.timeout(10):  # safety net
        await cache.watch.wait_synced()


async def test_lists_every_kind_then_reports_synced(
    kube_api: KubeEmulator, cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="extender.kube")
    kube_api.create(make_node("ecs-1"))
    kube_api.create(make_node("eci-1", eci=True))
    kube_api.create(make_pod("web-1", "shop", owner=("ReplicaSet", "web-5d8f"), node="ecs-1"))
    kube_api.create(make_policy("web", "shop", match_labels={"app": "web"}, ecs_max=2))
    await synced(cache)
    assert cache.state.synced
    assert cache.metrics.registry.get_sample_value("spillover_extender_cache_synced") == 1
    assert cache.state.nodes["eci-1"].kind is NodeKind.ECI
    assert [p.name for p in cache.state.workload_pods(WEB)] == ["web-1"]
    assert [p.key for p in cache.state.policies] == ["shop/web"]
    (log,) = [r for r in caplog.records if r.getMessage() == "synced"]
    assert (log.__dict__["nodes"], log.__dict__["pods"], log.__dict__["policies"]) == (2, 1, 1)


async def test_follows_nodes_and_pods_and_the_ledger(kube_api: KubeEmulator, cache: Cache) -> None:
    kube_api.create(make_node("ecs-1"))
    await synced(cache)
    await kube_api.wait_watching("pods")

    kube_api.create(make_node("ecs-2"))
    await until(lambda: "ecs-2" in cache.state.nodes, what="node added")
    kube_api.delete("nodes", "ecs-1")
    await until(lambda: "ecs-1" not in cache.state.nodes, what="node removed")

    pod = kube_api.create(make_pod("web-1", "shop", owner=("ReplicaSet", "web-5d8f")))
    uid = pod["metadata"]["uid"]
    await until(lambda: uid in cache.state.pods, what="pod seen")
    cache.ledger.reserve(uid=uid, workload=WEB, policy="shop/web", unit=0, now=0.0)
    kube_api.patch("pods", "web-1", {"spec": {"nodeName": "ecs-2"}}, "shop")
    await until(lambda: cache.ledger.get(uid) is None, what="reservation confirmed")
    assert cache.state.pods[uid].node_name == "ecs-2"

    other = kube_api.create(make_pod("web-2", "shop", owner=("ReplicaSet", "web-5d8f")))
    other_uid = other["metadata"]["uid"]
    await until(lambda: other_uid in cache.state.pods, what="second pod seen")
    cache.ledger.reserve(uid=other_uid, workload=WEB, policy="shop/web", unit=1, now=0.0)
    kube_api.delete("pods", "web-2", "shop")
    await until(lambda: cache.ledger.get(other_uid) is None, what="reservation released")
    assert other_uid not in cache.state.pods


async def test_relists_after_410_gone(kube_api: KubeEmulator, cache: Cache) -> None:
    kube_api.create(make_pod("a", "shop"))
    await synced(cache)
    await kube_api.wait_watching("pods")
    lists_before = len(kube_api.requests_to("GET", "^/api/v1/pods$"))
    assert kube_api.expire_watches("pods") == 1
    await until(lambda: cache.restarts("pods", "expired") == 1, what="expired restart")
    kube_api.create(make_pod("b", "shop"))
    await until(lambda: len(cache.state.pods) == 2, what="pod after relist")
    relists = [
        r
        for r in kube_api.requests_to("GET", "^/api/v1/pods$")[lists_before:]
        if "watch" not in r.params
    ]
    assert len(relists) == 1
    assert cache.restarts("pods", "error") == 0


async def test_relist_releases_pods_deleted_while_disconnected(
    kube_api: KubeEmulator, cache: Cache
) -> None:
    pod = kube_api.create(make_pod("a", "shop"))
    uid = pod["metadata"]["uid"]
    await synced(cache)
    await kube_api.wait_watching("pods")
    cache.ledger.reserve(uid=uid, workload=WEB, policy="shop/web", unit=0, now=0.0)
    kube_api.compact()
    kube_api.fail("^/api/v1/pods$", status=500, times=1, method="GET")  # the next watch
    kube_api.drop_watches("pods")
    kube_api.delete("pods", "a", "shop")
    kube_api.compact()  # the deletion event is gone: only a relist can notice
    await until(lambda: uid not in cache.state.pods, what="relisted without the pod")
    assert cache.ledger.get(uid) is None


async def test_reconnects_with_backoff_after_server_errors(
    kube_api: KubeEmulator, cache: Cache
) -> None:
    kube_api.fail("^/api/v1/nodes$", status=500, times=3)
    kube_api.create(make_node("ecs-1"))
    await synced(cache)
    assert "ecs-1" in cache.state.nodes
    assert cache.restarts("nodes", "error") == 3
    # a server that answers 5xx is up: the wait is capped at busy_maximum (1 s)
    assert cache.sleeps == [0.5, 1.0, 1.0]


async def test_the_service_retries_a_refused_list_until_its_role_is_fixed(
    kube_api: KubeEmulator, cache: Cache
) -> None:
    """Only ``record`` stops on a 403 (``ListWatch(stop_when_denied=True)``); the extender's
    cache backs off and retries, unready, so it recovers once someone fixes its RBAC."""
    kube_api.fail("^/api/v1/nodes$", status=403, times=3, watch=False)
    kube_api.create(make_node("ecs-1"))
    await synced(cache)
    assert "ecs-1" in cache.state.nodes
    assert cache.restarts("nodes", "error") == 3
    assert cache.sleeps == [0.5, 1.0, 2.0]  # the full backoff: a 403 is not a busy server


async def test_a_starting_server_answering_429_is_retried_within_a_second(
    kube_api: KubeEmulator, cache: Cache
) -> None:
    """Regression: a 429 "storage is (re)initializing" during the server's start set a 28.8 s
    wait (the delay had doubled through the outage)."""
    message = "storage is (re)initializing"
    kube_api.fail("^/api/v1/pods$", status=429, times=8, message=message)
    await synced(cache)
    assert cache.restarts("pods", "error") == 8
    assert cache.sleeps[:2] == [0.5, 1.0]
    assert max(cache.sleeps) == 1.0


async def test_the_backoff_is_reset_by_any_successful_request(
    kube_api: KubeEmulator, cache: Cache
) -> None:
    """Regression: the delay was reset only when a watch stream ended cleanly, so a list that
    succeeded between failing watches did not count."""
    kube_api.fail("^/api/v1/nodes$", status=503, times=3, watch=False)  # the list, 3 times
    kube_api.fail("^/api/v1/nodes$", status=503, times=1, watch=True)  # then its watch once
    await synced(cache)
    await kube_api.wait_watching("nodes")
    assert cache.restarts("nodes", "error") == 4
    assert cache.sleeps == [0.5, 1.0, 1.0, 0.5]  # the successful list reset it


async def test_connection_errors_back_off_to_the_maximum_then_reset(
    kube_api: KubeEmulator, cache: Cache
) -> None:
    await synced(cache)
    await kube_api.wait_watching("nodes")
    kube_api.stop()
    await until(lambda: cache.restarts("nodes", "error") >= 5, what="five failed reconnects")
    kube_api.start()
    async with asyncio.timeout(10):  # safety net
        await kube_api.wait_watching(None, count=4)  # nodes, pods, statefulsets, policies
    node_sleeps = cache.sleeps[:5]
    assert max(node_sleeps) <= 4.0  # BackoffSettings(maximum=4.0) of the fixture
    failures = cache.restarts("nodes", "error")  # more than 5 when the loop was quick
    kube_api.drop_watches("nodes")
    await until(lambda: cache.restarts("nodes", "error") > failures, what="one more failure")
    assert cache.sleeps[-1] == 0.5  # reset by the reconnect


async def test_resumes_after_dropped_and_closed_streams(
    kube_api: KubeEmulator, cache: Cache
) -> None:
    await synced(cache)
    await kube_api.wait_watching("nodes")
    kube_api.drop_watches("nodes")
    await until(lambda: cache.restarts("nodes", "error") == 1, what="error restart")
    kube_api.create(make_node("after-drop"))
    await until(lambda: "after-drop" in cache.state.nodes, what="node after drop")

    await kube_api.wait_watching("nodes")
    lists_before = len(kube_api.requests_to("GET", "^/api/v1/nodes$"))
    kube_api.close_watches("nodes")
    await until(lambda: cache.restarts("nodes", "closed") == 1, what="closed restart")
    kube_api.create(make_node("after-close"))
    await until(lambda: "after-close" in cache.state.nodes, what="node after close")
    # resumed from the last resourceVersion: a watch request, not a relist
    resumed = kube_api.requests_to("GET", "^/api/v1/nodes$")[lists_before:]
    assert resumed
    assert all(r.params.get("watch") and r.params.get("resourceVersion") for r in resumed)


async def test_invalid_objects_are_skipped_and_logged(
    kube_api: KubeEmulator, cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="extender.kube")
    broken = make_policy("broken", "shop", match_labels={"app": "x"}, ecs_max=1)
    broken["spec"]["units"] = []
    kube_api.create(broken)
    kube_api.create(make_policy("web", "shop", match_labels={"app": "web"}, ecs_max=1))
    bad_pod = make_pod("bad", "shop")
    bad_pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "lots"
    kube_api.create(bad_pod)
    await synced(cache)
    assert [p.key for p in cache.state.policies] == ["shop/web"]
    assert not cache.state.pods
    assert "ResourcePolicy shop/broken: spec.units" in caplog.text

    # a later invalid edit keeps the last valid version; the watch keeps going
    await kube_api.wait_watching("resourcepolicies")
    kube_api.patch("resourcepolicies", "web", {"spec": {"units": [{"resource": "gpu"}]}}, "shop")
    kube_api.create(make_pod("good", "shop"))
    await until(lambda: len(cache.state.pods) == 1, what="good pod after bad policy")
    assert [p.units[0].max for p in cache.state.policies] == [1]
    kube_api.delete("resourcepolicies", "web", "shop")
    await until(lambda: not cache.state.policies, what="policy removed")


async def test_policies_from_a_file_are_not_replaced_by_the_crd(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    """``--policies FILE`` with a watch: nodes and pods come from the API, policies stay as given."""
    from extender.policies import policy_from_dict

    kube_api.create(make_node("ecs-1"))
    kube_api.create(make_policy("crd", "shop", match_labels={"app": "web"}, ecs_max=5))
    state = ClusterState(synced=False)
    state.set_policies([policy_from_dict(make_policy("file", "shop", match_labels={}, ecs_max=1))])
    watch = ClusterWatch(kube_client, state, Ledger(), metrics=Metrics(), watch_policies=False)
    task = asyncio.create_task(watch.run())
    try:
        async with asyncio.timeout(10):  # safety net
            await watch.wait_synced()
        assert "ecs-1" in state.nodes
        assert [p.key for p in state.policies] == ["shop/file"]
        assert kube_api.requests_to("GET", "resourcepolicies") == []
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_watch_down_past_the_staleness_unsyncs_until_it_has_relisted(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    """Regression: ``state.synced`` was set once and never cleared when the watches failed."""
    kube_api.create(make_node("ecs-1"))
    state, metrics = ClusterState(synced=False), Metrics()
    clock = [0.0]

    async def sleep(delay: float) -> None:  # virtual time: each wait moves the clock
        clock[0] += delay
        await asyncio.sleep(0)

    watch = ClusterWatch(
        kube_client,
        state,
        Ledger(),
        metrics=metrics,
        clock=lambda: clock[0],
        sleep=sleep,
        rand=lambda: 0.5,
        staleness=10.0,
    )
    task = asyncio.create_task(watch.run())
    try:
        async with asyncio.timeout(10):  # safety net
            await watch.wait_synced()
        await kube_api.wait_watching(None, count=4)
        kube_api.fail("^/api/v1/nodes$", status=503, times=10**6)  # only nodes: pods stay fresh
        kube_api.drop_watches("nodes")
        await until(lambda: not state.synced, what="the cache no longer trusted")
        assert clock[0] >= 10.0  # not before the staleness
        assert metrics.registry.get_sample_value("spillover_extender_cache_synced") == 0
        lists = len(kube_api.requests_to("GET", "^/api/v1/nodes$"))
        kube_api._faults.clear()
        await until(lambda: state.synced, what="synced again")
        again = [r for r in kube_api.requests_to("GET", "^/api/v1/nodes$")[lists:]]
        assert "watch" not in again[0].params  # a relist, not a resumed watch
        assert metrics.registry.get_sample_value("spillover_extender_cache_synced") == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
