"""DeletionCostReconciler against the loopback API server, with a fake clock and sleep."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kube_emulator import KubeEmulator, make_node, make_pod, make_policy, until
from kubernetes_asyncio import client

from extender.deletion_cost import ANNOTATION, SETTLE, STEP, age_bonus
from extender.kube import ClusterWatch, DeletionCostReconciler
from extender.ledger import Ledger
from extender.metrics import Metrics
from extender.snapshot import ClusterState

pytestmark = pytest.mark.integration

PATCHES = r"^/api/v1/namespaces/shop/pods/[^/]+$"


@dataclass
class FakeTime:
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)  # let the loop run, as a real sleep would


@dataclass
class World:
    state: ClusterState
    metrics: Metrics
    time: FakeTime

    def reconciler(self, api: client.ApiClient, **kwargs: Any) -> DeletionCostReconciler:
        return DeletionCostReconciler(
            api,
            self.state,
            metrics=self.metrics,
            clock=self.time.clock,
            sleep=self.time.sleep,
            **kwargs,
        )

    def patches(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "spillover_extender_deletion_cost_patches_total", {"outcome": outcome}
        )
        return value or 0.0


@pytest.fixture
async def world(kube_api: KubeEmulator, kube_client: client.ApiClient) -> AsyncIterator[World]:
    kube_api.create(make_node("ecs-1"))
    kube_api.create(make_node("ecs-2"))
    kube_api.create(make_node("eci-1", eci=True))
    kube_api.create(make_policy("web", "shop", match_labels={"app": "web"}, ecs_max=2))
    rs = ("ReplicaSet", "web-5d8f")
    for name, node in [("web-a", "ecs-1"), ("web-b", "ecs-2"), ("web-c", "ecs-1")]:
        kube_api.create(make_pod(name, "shop", owner=rs, node=node, app="web"))
    for name in ("web-d", "web-e"):
        kube_api.create(make_pod(name, "shop", owner=rs, node="eci-1", app="web"))
    kube_api.create(make_pod("web-pending", "shop", owner=rs, app="web"))
    kube_api.create(make_pod("db-0", "shop", owner=("StatefulSet", "db"), node="ecs-1", app="web"))
    kube_api.create(make_pod("bare", "shop", node="ecs-2", app="web"))
    kube_api.create(make_pod("other", "shop", owner=("ReplicaSet", "x-1"), node="ecs-1"))
    # per-node pods with the workload's labels: a policy never manages them
    kube_api.create(
        make_pod("agent-x1", "shop", owner=("DaemonSet", "agent"), node="ecs-1", app="web")
    )
    mirror = make_pod("static-ecs-2", "shop", owner=("Node", "ecs-2"), node="ecs-2", app="web")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    kube_api.create(mirror)

    state = ClusterState(synced=False)
    metrics = Metrics()
    watch = ClusterWatch(kube_client, state, Ledger(), metrics=metrics)
    task = asyncio.create_task(watch.run())
    async with asyncio.timeout(10):  # safety net
        await watch.wait_synced()
    yield World(state, metrics, FakeTime())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def annotations(kube_api: KubeEmulator) -> dict[str, str | None]:
    return {
        p["metadata"]["name"]: (p["metadata"].get("annotations") or {}).get(ANNOTATION)
        for p in kube_api.objects_of("pods", "shop")
    }


async def test_writes_costs_ecs_within_max_over_eci_over_beyond_max(
    kube_api: KubeEmulator, kube_client: client.ApiClient, world: World
) -> None:
    written = await world.reconciler(kube_client).reconcile_once()
    assert written == 3

    def cost(band: int, name: str) -> str:
        [pod] = [p for p in world.state.pods.values() if p.name == name]
        return str(band * STEP + age_bonus(pod.created))

    assert annotations(kube_api) == {
        "web-a": None,  # ECS, the first unit, within max 2: new: cost 0, not written yet
        "web-b": None,
        "web-c": str(-2 * STEP - 1),  # ECS beyond max: deleted first
        "web-d": cost(-1, "web-d"),  # ECI
        "web-e": cost(-1, "web-e"),
        "web-pending": None,  # not bound
        "db-0": None,  # StatefulSet: ordinal order already shrinks ECI first
        "bare": None,  # bare pod: no ReplicaSet deletes it
        "other": None,  # no policy
        "agent-x1": None,  # DaemonSet pod
        "static-ecs-2": None,  # mirror pod of a static pod
    }
    assert world.patches("written") == 3
    # the lowest cost first: the pods a scale-in must take first are written first
    names = [r.url.path.rsplit("/", 1)[1] for r in kube_api.requests_to("PATCH", PATCHES)]
    assert (names[0], sorted(names[1:])) == ("web-c", ["web-d", "web-e"])


async def test_does_not_patch_again_when_nothing_changed(
    kube_api: KubeEmulator, kube_client: client.ApiClient, world: World
) -> None:
    reconciler = world.reconciler(kube_client)
    await reconciler.reconcile_once()
    patches = len(kube_api.requests_to("PATCH", PATCHES))
    assert patches == 3
    # before the watch shows the annotations: still no second write
    assert await reconciler.reconcile_once() == 0
    await until(
        lambda: all(
            ANNOTATION in p.annotations for p in world.state.pods.values() if p.name in _WRITTEN
        ),
        what="annotations in the cache",
    )
    assert await reconciler.reconcile_once() == 0
    assert len(kube_api.requests_to("PATCH", PATCHES)) == patches


async def test_patches_only_what_changed(
    kube_api: KubeEmulator, kube_client: client.ApiClient, world: World
) -> None:
    reconciler = world.reconciler(kube_client)
    await reconciler.reconcile_once()
    await until(lambda: _annotated(world) == 3, what="annotations in the cache")
    kube_api.delete("pods", "web-a", "shop")  # web-c moves within max
    await until(lambda: len(list(world.state.pods_on("ecs-1"))) == 4, what="deletion seen")
    before = len(kube_api.requests_to("PATCH", PATCHES))
    assert await reconciler.reconcile_once() == 1
    [patch] = kube_api.requests_to("PATCH", PATCHES)[before:]
    assert patch.url.path.endswith("/web-c")
    assert annotations(kube_api)["web-c"] == "0"  # was beyond max: within it on the first unit now


async def test_values_of_the_earlier_scheme_are_rewritten_once_the_first_unit_last(
    kube_api: KubeEmulator, kube_client: client.ApiClient, world: World
) -> None:
    """Before 0 was the first unit's cost, every pod had a positive band (ECI 1e8 + bonus, ECS
    2e8 + bonus): an upgrade rewrites them, the pods a scale-in must take first before the rest."""
    for name, old in [("web-a", 2 * STEP + 7), ("web-b", 0), ("web-d", STEP + 7)]:
        kube_api.patch("pods", name, {"metadata": {"annotations": {ANNOTATION: str(old)}}}, "shop")
    await until(lambda: _annotated(world) == 3, what="old values in the cache")
    assert await world.reconciler(kube_client).reconcile_once() == 4  # web-b's "0" is right
    names = [r.url.path.rsplit("/", 1)[1] for r in kube_api.requests_to("PATCH", PATCHES)]
    assert (names[0], sorted(names[1:3]), names[3:]) == ("web-c", ["web-d", "web-e"], ["web-a"])
    assert annotations(kube_api)["web-a"] == "0"


async def test_rate_limited_through_the_token_bucket(
    kube_api: KubeEmulator, kube_client: client.ApiClient, world: World
) -> None:
    reconciler = world.reconciler(kube_client, max_patches_per_second=2.0, burst=1)
    assert await reconciler.reconcile_once() == 3
    assert world.time.sleeps == [0.5, 0.5]  # 1 from the burst, then 2 per second


async def test_errors_are_counted_and_retried_next_pass(
    kube_api: KubeEmulator, kube_client: client.ApiClient, world: World
) -> None:
    kube_api.fail(PATCHES, status=500, times=2, method="PATCH")
    reconciler = world.reconciler(kube_client)
    assert await reconciler.reconcile_once() == 1
    assert world.patches("error") == 2
    assert await reconciler.reconcile_once() == 2
    assert None not in {v for k, v in annotations(kube_api).items() if k in _WRITTEN}


async def test_run_waits_for_the_interval_between_passes(
    kube_api: KubeEmulator, kube_client: client.ApiClient, world: World
) -> None:
    reconciler = world.reconciler(kube_client, interval=7.0)
    task = asyncio.create_task(reconciler.run())
    await until(lambda: len(world.time.sleeps) >= 2, what="two passes")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert world.time.sleeps[:2] == [7.0, 7.0]
    assert world.patches("written") == 3


_WRITTEN = {"web-c", "web-d", "web-e"}  # the pods not on the first unit within its max


async def test_first_unit_pods_are_written_once_they_have_settled(
    kube_api: KubeEmulator, kube_client: client.ApiClient, world: World
) -> None:
    """A first-unit pod stays unannotated while it is new (a burst of new pods costs the API
    server no write for them), then gets its age bonus, once, after every other pod."""
    newest = max(p.created for p in world.state.pods.values())
    young = world.reconciler(kube_client, wall=lambda: newest + SETTLE - 1.0)
    assert await young.reconcile_once() == 3
    await until(lambda: _annotated(world) == 3, what="annotations in the cache")
    settled = world.reconciler(kube_client, wall=lambda: newest + SETTLE)
    assert await settled.reconcile_once() == 2
    names = [r.url.path.rsplit("/", 1)[1] for r in kube_api.requests_to("PATCH", PATCHES)]
    assert sorted(names[3:]) == ["web-a", "web-b"]
    pods = {p.name: p for p in world.state.pods.values()}
    got = annotations(kube_api)
    assert {n: got[n] for n in ("web-a", "web-b")} == {
        n: str(age_bonus(pods[n].created)) for n in ("web-a", "web-b")
    }
    await until(lambda: _annotated(world) == 5, what="settled annotations in the cache")
    assert await settled.reconcile_once() == 0


def _annotated(world: World) -> int:
    return sum(1 for p in world.state.pods.values() if ANNOTATION in p.annotations)


async def test_scale_in_order_is_eci_then_nodes_in_no_unit_then_ecs(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    """Regression: pods on nodes in no unit got 0, below ECI's cost, so a ReplicaSet scale-in
    removed them before the ECI pods."""
    kube_api.create(make_node("ecs-1", pool="general"))
    kube_api.create(make_node("gpu-1", pool="gpu"))  # in no unit of the policy
    kube_api.create(make_node("eci-1", eci=True))
    web = make_policy("web", "shop", match_labels={"app": "web"}, ecs_max=5)
    web["spec"]["units"][0]["nodeSelector"] = {"pool": "general"}
    kube_api.create(web)
    rs = ("ReplicaSet", "web-5d8f")
    stamps = {
        "web-old": ("ecs-1", "2026-01-01T00:00:00Z"),
        "web-new": ("ecs-1", "2026-01-02T00:00:00Z"),
        "web-gpu": ("gpu-1", "2026-01-03T00:00:00Z"),
        "web-eci": ("eci-1", "2025-12-01T00:00:00Z"),
    }
    for name, (node, created) in stamps.items():
        pod = make_pod(name, "shop", owner=rs, node=node, app="web")
        pod["metadata"]["creationTimestamp"] = created  # the emulator keeps a given one
        kube_api.create(pod)
    state = ClusterState(synced=False)
    watch = ClusterWatch(kube_client, state, Ledger(), metrics=Metrics())
    task = asyncio.create_task(watch.run())
    try:
        async with asyncio.timeout(10):  # safety net
            await watch.wait_synced()
        world = World(state, Metrics(), FakeTime())
        # created in January: the ECS pods have settled, so they are written too, after the rest
        assert await world.reconciler(kube_client).reconcile_once() == 4
        costs = {k: int(v or 0) for k, v in annotations(kube_api).items()}  # absent: 0
        # a ReplicaSet deletes the lowest cost first: ECI, the node in no unit, the newest ECS pod
        order = ["web-eci", "web-gpu", "web-new", "web-old"]
        assert sorted(costs, key=costs.__getitem__) == order
        assert costs["web-gpu"] < 0 < costs["web-new"] < costs["web-old"] < STEP // 2
        names = [r.url.path.rsplit("/", 1)[1] for r in kube_api.requests_to("PATCH", PATCHES)]
        assert names == order  # written lowest first
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
