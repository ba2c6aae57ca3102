"""The controller against the API emulator with the kwok provider, in fake time."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from autoscaler_fakes import FakeClock
from kube_emulator import KubeEmulator, make_node
from kubernetes_asyncio import client

from autoscaler.controller import Controller, ControllerSettings, class_demand, demand_of
from autoscaler.drain import FakeDrainer
from autoscaler.forecast import Forecast, StaticForecaster
from autoscaler.leader import LeaseElector, LeaseSettings
from autoscaler.metrics import Metrics
from autoscaler.nodegroup import AutoscalerConfig, MoveCosts, config_from_dict
from autoscaler.planner import Plan, ScaleDown, ScaleUp, plan
from autoscaler.providers.base import GroupStatus, ProviderError
from autoscaler.providers.kwok import KwokProvider
from autoscaler.providers.simulated import SimulatedProvider
from autoscaler.state import GroupState
from autoscaler.status import StatusStore
from extender.model import (
    Node,
    NodeKind,
    OwnerRef,
    Pod,
    Resources,
    node_from_dict,
    pod_from_dict,
)
from extender.policy import ResourcePolicy, Unit
from extender.selectors import LabelSelector
from extender.snapshot import ClusterState

NS = "kube-system"
CONFIG: dict[str, Any] = {
    "groups": [
        {
            "name": "general",
            "instanceType": {"name": "ecs.g7.large", "cpu": "2", "memory": "8Gi", "maxPods": 32},
            "labels": {"pool": "general"},
            "min": 0,
            "max": 5,
            "cooldown": "0s",
            "bootTime": "60s",
        }
    ],
    "settings": {"scaleDownUnneededTime": "10m", "scaleDownDelayAfterAdd": "0s"},
}


def _config() -> AutoscalerConfig:
    return config_from_dict(CONFIG)


def _pod(name: str, cpu: str = "1500m") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "abc"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-abc",
                    "uid": "rs-1",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}},
                }
            ]
        },
        "status": {"phase": "Pending"},
    }


def _sync(kube_api: KubeEmulator, state: ClusterState) -> None:
    """What the watch does, synchronously: the cache equals the API server."""
    state.replace(
        nodes=[node_from_dict(n) for n in kube_api.objects_of("nodes")],
        pods=[pod_from_dict(p) for p in kube_api.objects_of("pods")],
    )


def _with_web_pods(kube_api: KubeEmulator, count: int) -> ClusterState:
    """``count`` pending pods web-0, web-1, ... on the API server, and a cache synced to it."""
    state = ClusterState()
    kube_api.create_all(_pod(f"web-{i}") for i in range(count))
    _sync(kube_api, state)
    return state


async def _no_sleep(_: float) -> None:
    return None


def _settings(config: AutoscalerConfig, **changes: Any) -> AutoscalerConfig:
    return replace(config, settings=replace(config.settings, **changes))


def _controller(
    kube_client: client.ApiClient,
    clock: FakeClock,
    state: ClusterState,
    *,
    identity: str = "",
    dry_run: bool = False,
    provider: Any = None,
    planner: Any = None,
    forecaster: Any = None,
    metrics: Metrics | None = None,
    sleep: Any = None,
) -> Controller:
    config = _config()
    elector = (
        LeaseElector(
            kube_client,
            identity=identity,
            settings=LeaseSettings(namespace=NS, lease_duration=15, renew_deadline=10),
            clock=clock,
        )
        if identity
        else None
    )
    return Controller(
        config=config,
        provider=provider or KwokProvider(kube_client, config.groups),
        state=state,
        api=kube_client,
        status=StatusStore(kube_client, namespace=NS, identity=identity or "solo"),
        elector=elector,
        metrics=metrics,
        settings=ControllerSettings(dry_run=dry_run),
        forecaster=forecaster,
        planner=planner,
        clock=clock,
        sleep=sleep or _no_sleep,
        rand=lambda: 0.5,
    )


def _kwok_nodes(kube_api: KubeEmulator) -> list[str]:
    return sorted(n["metadata"]["name"] for n in kube_api.objects_of("nodes"))


async def _with_kwok_nodes(
    kube_api: KubeEmulator, kube_client: client.ApiClient, count: int
) -> tuple[ClusterState, list[str]]:
    """``count`` kwok nodes of the general group (no pods yet) and an empty cache."""
    await KwokProvider(kube_client, _config().groups).increase_size("general", target=count)
    return ClusterState(), _kwok_nodes(kube_api)


def _memory(kube_api: KubeEmulator) -> dict[str, Any]:
    cm = kube_api.get("configmaps", "spillover-autoscaler-status", NS)
    state: dict[str, Any] = json.loads(cm["data"]["state"])
    return state


@pytest.fixture
def fresh_clock(clock: FakeClock) -> FakeClock:
    # Objects get creationTimestamps from the emulator; start the fake clock beside them.
    clock.now = float(int(time.time()))
    return clock


async def test_pending_pods_add_nodes_and_idle_nodes_go_after_the_unneeded_time(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    clock = fresh_clock
    state = _with_web_pods(kube_api, 3)
    metrics = Metrics()
    controller = _controller(kube_client, clock, state, metrics=metrics)
    # cluster-autoscaler's rule alone: the groups YAML's settings.consolidation off
    controller.config = _settings(controller.config, consolidation=None)

    result = await controller.run_once()
    assert result.leader
    assert result.scaled_up == {"general": 3}
    assert len(_kwok_nodes(kube_api)) == 3
    assert (
        metrics.applied.labels("general", "up", "pending-pods").__getattribute__("_value").get()
        == 3
    )
    events = kube_api.objects_of("events", NS)
    assert [e["reason"] for e in events] == ["ScaledUpGroup"]
    pod_events = kube_api.objects_of("events", "shop")
    assert sorted(e["involvedObject"]["name"] for e in pod_events) == ["web-0", "web-1", "web-2"]
    assert {e["reason"] for e in pod_events} == {"TriggeredScaleUp"}
    assert _memory(kube_api)["lastScaleUp"] == {"general": clock.now}

    # The nodes registered; the pods are still pending (no scheduler here): no second batch.
    clock.advance(10)
    _sync(kube_api, state)
    result = await controller.run_once()
    assert result.scaled_up == {}
    assert len(_kwok_nodes(kube_api)) == 3

    # The pods leave; the nodes become unneeded and stay for the unneeded time.
    for i in range(3):
        kube_api.delete("pods", f"web-{i}", "shop")
    _sync(kube_api, state)
    clock.advance(10)
    result = await controller.run_once()
    assert result.plan is not None
    assert len(result.plan.unneeded) == 3
    assert result.deleted == ()
    since = dict(_memory(kube_api)["unneeded"])
    assert len(since) == 3

    # A restart loses nothing: a new controller reads the unneeded-since times back.
    clock.advance(300)
    restarted = _controller(kube_client, clock, state)
    restarted.config = controller.config
    result = await restarted.run_once()
    assert result.deleted == ()
    assert _memory(kube_api)["unneeded"] == since

    clock.advance(301)
    result = await restarted.run_once()
    assert sorted(result.deleted) == sorted(since)
    assert _kwok_nodes(kube_api) == []
    assert "ScaleDown" in {e["reason"] for e in kube_api.objects_of("events", NS)}


async def test_consolidation_removes_empty_nodes_promptly_and_waits_for_evicted_pods(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    # two kwok nodes: one empty, one with web-0 (1.5 cpu of 2: 75 %, above the threshold).  With
    # consolidation on (the default) the empty node goes 30 s after it became empty, not 10 min;
    # the busy one stays (its pod fits nowhere else).
    state, [empty, busy] = await _with_kwok_nodes(kube_api, kube_client, 2)
    kube_api.create(_on(_pod("web-0"), busy))
    _sync(kube_api, state)
    controller = _controller(kube_client, fresh_clock, state)
    assert (await controller.run_once()).deleted == ()
    fresh_clock.advance(31)
    assert (await controller.run_once()).deleted == (empty,)
    assert _kwok_nodes(kube_api) == [busy]


async def _simulated_node(clock: FakeClock) -> tuple[SimulatedProvider, ClusterState, Node]:
    """One Ready node of the simulated provider (no API server) and a cache that shows it."""
    provider = SimulatedProvider(_config().groups, clock=clock)
    await provider.increase_size("general", target=1)
    clock.advance(60)
    (node,) = provider.nodes(now=clock.now)
    state = ClusterState(nodes=[node])
    return provider, state, node


def _removing(node: Node, *, drainer: FakeDrainer | None, **kw: Any) -> Controller:
    provider, state = kw.pop("provider"), kw.pop("state")
    return Controller(
        config=_config(),
        provider=provider,
        state=state,
        drainer=drainer,
        planner=lambda *a, **k: Plan(scale_downs=(ScaleDown("general", node.name, "test"),)),
        **kw,
    )


def _running(name: str, node: Node) -> Pod:
    return replace(pod_from_dict(_on(_pod(name), node.name)), uid=name)


@pytest.mark.parametrize("polls", [0, 1, 3], ids=["gone-at-once", "one-poll", "three-polls"])
async def test_a_drained_node_is_deleted_only_once_its_evicted_pods_are_gone(
    fresh_clock: FakeClock, polls: int
) -> None:
    provider, state, node = await _simulated_node(fresh_clock)
    state.upsert_pod(_running("web-0", node))
    drainer = FakeDrainer(state, linger=True)  # the watch shows the eviction only later
    waited: list[bool] = []

    async def watch_catches_up(_: float) -> None:
        waited.append(node.name in {n.name for n in provider.nodes(now=fresh_clock.now)})
        if len(waited) == polls:
            state.remove_pod("web-0")

    if polls == 0:
        state.remove_pod("web-0")
        drainer.linger = False
    controller = _removing(
        node,
        drainer=drainer,
        provider=provider,
        state=state,
        clock=fresh_clock,
        sleep=watch_catches_up,
    )
    result = await controller.run_once()
    assert result.deleted == (node.name,)
    assert waited == [True] * polls  # each wait saw the node still there: deleted after
    assert provider.nodes(now=fresh_clock.now) == []
    assert drainer.calls[0] == ("cordon", node.name)


async def test_a_drain_that_outlasts_its_timeout_deletes_the_node_anyway(
    fresh_clock: FakeClock,
) -> None:
    provider, state, node = await _simulated_node(fresh_clock)
    state.upsert_pod(_running("web-0", node))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    controller = _removing(
        node,
        drainer=FakeDrainer(state, linger=True),
        provider=provider,
        state=state,
        clock=fresh_clock,
        sleep=sleep,
        settings=ControllerSettings(drain_timeout=2.0, drain_poll=0.5),
    )
    assert (await controller.run_once()).deleted == (node.name,)
    assert waits == [0.5] * 4


async def test_a_refused_eviction_keeps_the_node_and_uncordons_it(fresh_clock: FakeClock) -> None:
    provider, state, node = await _simulated_node(fresh_clock)
    state.upsert_pod(_running("web-0", node))
    state.upsert_pod(_running("db-0", node))
    drainer = FakeDrainer(state, refuse={"shop/db-0"})
    controller = _removing(
        node, drainer=drainer, provider=provider, state=state, clock=fresh_clock, sleep=_no_sleep
    )
    result = await controller.run_once()
    assert result.deleted == ()
    assert result.errors == (f"could not drain {node.name}",)
    assert [n.name for n in provider.nodes(now=fresh_clock.now)] == [node.name]
    assert drainer.calls[-1] == ("uncordon", node.name)
    assert not state.nodes[node.name].unschedulable


async def test_daemonset_and_mirror_pods_are_not_evicted(fresh_clock: FakeClock) -> None:
    provider, state, node = await _simulated_node(fresh_clock)
    daemon = pod_from_dict(_on(_pod("agent"), node.name))
    daemon = replace(daemon, uid="agent", owner=OwnerRef("DaemonSet", "agent"))
    state.upsert_pod(daemon)
    state.upsert_pod(_running("web-0", node))
    drainer = FakeDrainer(state)
    controller = _removing(
        node, drainer=drainer, provider=provider, state=state, clock=fresh_clock, sleep=_no_sleep
    )
    assert (await controller.run_once()).deleted == (node.name,)
    assert [c for c in drainer.calls if c[0] == "evict"] == [("evict", "shop/web-0")]


async def test_without_an_api_client_no_node_is_removed(fresh_clock: FakeClock) -> None:
    """Regression: without an API client the drain "succeeded" without evicting anything and
    the node was deleted under its pods."""
    provider, state, node = await _simulated_node(fresh_clock)
    state.upsert_pod(_running("web-0", node))
    controller = _removing(node, drainer=None, provider=provider, state=state, clock=fresh_clock)
    result = await controller.run_once()
    assert result.deleted == ()
    assert result.errors == (f"could not drain {node.name}: no API client to evict through",)
    assert [n.name for n in provider.nodes(now=fresh_clock.now)] == [node.name]
    assert "web-0" in state.pods


async def test_dry_run_changes_nothing(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    state = _with_web_pods(kube_api, 2)
    metrics = Metrics()
    controller = _controller(
        kube_client, fresh_clock, state, identity="preview", dry_run=True, metrics=metrics
    )
    result = await controller.run_once()
    assert result.plan is not None
    assert result.plan.scale_ups
    assert result.scaled_up == {}
    assert _kwok_nodes(kube_api) == []
    assert kube_api.objects_of("configmaps") == []
    assert kube_api.objects_of("events") == []
    assert kube_api.objects_of("leases") == []  # never contends with the replica that acts
    assert not kube_api.requests_to("POST", "/api/v1/nodes")
    planned = metrics.registry.get_sample_value(
        "spillover_autoscaler_planned_changes_total",
        {"group": "general", "direction": "up", "reason": "pending-pods"},
    )
    assert planned == 2


def _two_replicas(
    kube_api: KubeEmulator, kube_client: client.ApiClient, clock: FakeClock
) -> tuple[ClusterState, Controller, Controller]:
    """Two pending web pods and two controllers with a Lease each: replica-a, replica-b."""
    state = _with_web_pods(kube_api, 2)
    a = _controller(kube_client, clock, state, identity="replica-a")
    b = _controller(kube_client, clock, state, identity="replica-b")
    return state, a, b


async def test_two_replicas_exactly_one_acts_and_the_other_takes_over(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    clock = fresh_clock
    state, a, b = _two_replicas(kube_api, kube_client, clock)
    results = await asyncio.gather(a.run_once(), b.run_once())
    assert sorted(r.leader for r in results) == [False, True]
    assert len(_kwok_nodes(kube_api)) == 2  # one batch, not two
    follower = b if results[0].leader else a
    assert not (await follower.run_once()).leader  # it has seen the leader's record now

    # The leader dies. Its follower acts once the lease has expired, not before.
    kube_api.create(_pod("web-late"))
    _sync(kube_api, state)
    clock.advance(10)
    assert not (await follower.run_once()).leader
    clock.advance(6)
    taken = await follower.run_once()
    assert taken.leader
    assert taken.scaled_up == {"general": 3}
    assert len(_kwok_nodes(kube_api)) == 3
    assert kube_api.get("leases", "spillover-autoscaler", NS)["spec"]["holderIdentity"] in {
        "replica-a",
        "replica-b",
    }


class _FailsMidway:
    """Delegates to the kwok provider, but the first scale-up stops after one node."""

    def __init__(self, inner: KwokProvider) -> None:
        self.inner = inner
        self.name = "flaky"
        self.failed = False

    async def refresh(self) -> None:
        await self.inner.refresh()

    async def groups(self) -> Sequence[GroupStatus]:
        return await self.inner.groups()

    async def target_size(self, group: str) -> int:
        return await self.inner.target_size(group)

    async def increase_size(self, group: str, *, target: int) -> int:
        if not self.failed:
            self.failed = True
            await self.inner.increase_size(group, target=await self.inner.target_size(group) + 1)
            raise ProviderError("quota exceeded after one node", retryable=False)
        return await self.inner.increase_size(group, target=target)

    async def delete_nodes(self, group: str, nodes: Sequence[Node]) -> None:
        await self.inner.delete_nodes(group, nodes)

    def node_group(self, node: Node) -> str | None:
        return self.inner.node_group(node)


async def test_provider_failure_midway_is_repaired_by_the_next_pass(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    clock = fresh_clock
    state = _with_web_pods(kube_api, 3)
    provider = _FailsMidway(KwokProvider(kube_client, _config().groups))
    controller = _controller(kube_client, clock, state, provider=provider)
    result = await controller.run_once()
    assert result.errors
    assert "quota exceeded" in result.errors[0]
    assert len(_kwok_nodes(kube_api)) == 1
    assert "FailedScaleUp" in {e["reason"] for e in kube_api.objects_of("events", NS)}
    clock.advance(10)
    _sync(kube_api, state)
    result = await controller.run_once()
    assert result.errors == ()
    assert result.scaled_up == {"general": 3}
    assert len(_kwok_nodes(kube_api)) == 3


async def test_retryable_api_errors_are_retried_without_double_apply(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    state = _with_web_pods(kube_api, 3)
    controller = _controller(kube_client, fresh_clock, state)
    kube_api.fail(r"^/api/v1/nodes$", status=500, method="POST", times=2)
    result = await controller.run_once()
    assert result.errors == ()
    assert len(_kwok_nodes(kube_api)) == 3
    assert len(kube_api.requests_to("POST", r"^/api/v1/nodes$")) == 5  # 2 failed + 3 created


async def test_provider_retries_back_off_exponentially(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    state = _with_web_pods(kube_api, 3)
    controller = _controller(kube_client, fresh_clock, state, sleep=sleep)
    kube_api.fail(r"^/api/v1/nodes$", status=500, method="POST", times=2)
    result = await controller.run_once()
    assert result.errors == ()
    # rand 0.5: no jitter; the first retry waits ControllerSettings.backoff, then twice that
    assert slept == [0.5, 1.0]


async def test_forecast_needs_history_and_history_survives_a_restart(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    clock = fresh_clock
    seen: list[dict[str, Forecast] | None] = []

    def recording_plan(state: ClusterState, groups: Sequence[GroupState], **kw: Any) -> Plan:
        seen.append(kw["forecast"])
        return Plan()

    state = ClusterState()
    kube_api.create(_pod("web-0", cpu="2"))
    _sync(kube_api, state)
    assert demand_of(state) == 2.0
    forecaster = StaticForecaster(level=2.0, upper=3.0)
    controller = _controller(
        kube_client, clock, state, planner=recording_plan, forecaster=forecaster
    )
    for _ in range(3):
        await controller.run_once()
        clock.advance(60)
    assert seen == [None, None, None]
    history = _memory(kube_api)["demand"]
    assert history["values"] == [2.0, 2.0, 2.0]

    # A day of history later (restored by a new replica from the ConfigMap), a forecast is used.
    raw = kube_api.get("configmaps", "spillover-autoscaler-status", NS)
    memory = json.loads(raw["data"]["state"])
    memory["demand"]["start"] -= 86_400
    memory["demand"]["offsets"] = [0, *(o + 1440 for o in memory["demand"]["offsets"])]
    memory["demand"]["values"] = [2.0, *memory["demand"]["values"]]
    raw["data"]["state"] = json.dumps(memory)
    kube_api.update(raw)
    restarted = _controller(
        kube_client, clock, state, planner=recording_plan, forecaster=forecaster
    )
    await restarted.run_once()
    assert seen[-1] is not None
    assert seen[-1]["cpu"].model == "static"  # per resource class; no GPU demand, no gpu forecast
    assert "gpu" not in seen[-1]


def _planning_nothing(
    kube_client: client.ApiClient,
    clock: FakeClock,
    state: ClusterState,
    *,
    batch_window: float,
    batch_idle: float = 0.01,
) -> Controller:
    """A leader without a Lease whose planner plans nothing, ticking once an hour."""
    return Controller(
        config=_config(),
        provider=KwokProvider(kube_client, _config().groups),
        state=state,
        settings=ControllerSettings(
            loop_interval=3600, batch_window=batch_window, batch_idle=batch_idle
        ),
        planner=lambda *a, **k: Plan(),
        clock=clock,
    )


async def test_the_loop_reacts_to_a_new_pending_pod_before_the_tick(
    kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    state = ClusterState()
    controller = _planning_nothing(kube_client, fresh_clock, state, batch_window=0.05)
    await controller.run_once()
    stop = asyncio.Event()
    waiter = asyncio.create_task(controller.wait_for_trigger(stop))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    controller.notify("nodes", "n1")  # not a pod: nothing to plan for
    controller.notify("pods", "no-such-uid")
    await asyncio.sleep(0.05)
    assert not waiter.done()
    state.upsert_pod(pod_from_dict(_pod("web-new")))
    controller.notify("pods", next(iter(state.pods)))
    assert await asyncio.wait_for(waiter, timeout=5) == "pending"
    # planned now: the same pod does not wake the loop again, a relist with it neither
    await controller.run_once()
    waiter = asyncio.create_task(controller.wait_for_trigger(stop))
    controller.notify("pods", "")
    controller.notify("pods", next(iter(state.pods)))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    stop.set()
    assert await asyncio.wait_for(waiter, timeout=5) == "stop"


@pytest.mark.parametrize(
    ("window", "idle"),
    [(3600.0, 0.02), (0.02, 3600.0)],  # closes once the burst stops / at the window's end
)
async def test_a_batch_closes_when_the_burst_stops_or_the_window_ends(
    kube_client: client.ApiClient, fresh_clock: FakeClock, window: float, idle: float
) -> None:
    # either bound alone ends the batch: with the other at an hour, only it can have
    state = ClusterState()
    controller = _planning_nothing(
        kube_client, fresh_clock, state, batch_window=window, batch_idle=idle
    )
    stop = asyncio.Event()
    waiter = asyncio.create_task(controller.wait_for_trigger(stop))
    for i in range(5):  # a burst
        raw = _pod(f"web-{i}")
        raw["metadata"]["uid"] = f"uid-{i}"
        state.upsert_pod(pod_from_dict(raw))
        controller.notify("pods", f"uid-{i}")
        await asyncio.sleep(0)
    assert await asyncio.wait_for(waiter, timeout=10) == "pending"


async def test_only_the_leader_marks_pods_seen_and_a_new_leader_acts_at_once(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    clock = fresh_clock
    state, a, b = _two_replicas(kube_api, kube_client, clock)
    assert (await a.run_once()).leader
    assert not (await b.run_once()).leader
    stop = asyncio.Event()
    # a pending pod wakes the leader, never the follower
    kube_api.create(_pod("web-late"))
    _sync(kube_api, state)
    late = next(p.uid for p in state.pods.values() if p.name == "web-late")
    follower_waits = asyncio.create_task(b.wait_for_trigger(stop))
    leader_waits = asyncio.create_task(a.wait_for_trigger(stop))
    b.notify("pods", late)
    a.notify("pods", late)
    assert await asyncio.wait_for(leader_waits, timeout=10) == "pending"
    await asyncio.sleep(0.05)
    assert not follower_waits.done()
    # the leader dies before planning web-late; the Lease expires; the follower's elector
    # takes it (as its background task would) and that wakes its loop at once
    clock.advance(16)
    assert await b._elector.step()  # type: ignore[union-attr]
    assert await asyncio.wait_for(follower_waits, timeout=10) == "leader"
    taken = await b.run_once()
    assert taken.leader
    assert taken.scaled_up == {"general": 3}  # web-late too


async def test_planned_scale_up_uses_absolute_targets(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    """A plan repeated (e.g. a pass after a lost answer) never adds a second batch."""
    state = ClusterState()

    def same_plan(*_: Any, **__: Any) -> Plan:
        return Plan(scale_ups=(ScaleUp("general", 2, 2, ("shop/web-0",), "pending pods"),))

    controller = _controller(kube_client, fresh_clock, state, planner=same_plan)
    for _ in range(3):
        assert (await controller.run_once()).scaled_up == {"general": 2}
    assert len(_kwok_nodes(kube_api)) == 2
    # Created by the first pass, updated by the second (it sees the new instances); the third
    # has nothing new to say and does not write.
    assert len(kube_api.requests_to("POST", "/configmaps$")) == 1
    assert len(kube_api.requests_to("PUT", "/configmaps/")) == 1


def test_real_planner_is_the_default(kube_client: client.ApiClient) -> None:
    controller = Controller(
        config=_config(),
        provider=KwokProvider(kube_client, _config().groups),
        state=ClusterState(),
    )
    assert controller._plan is plan


async def test_forecast_wape_is_measured_on_completed_minutes(
    kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    state = ClusterState()
    state.upsert_pod(pod_from_dict(_pod("web-0", cpu="2")))
    metrics = Metrics()
    controller = Controller(
        config=_config(),
        provider=KwokProvider(kube_client, _config().groups),
        state=state,
        metrics=metrics,
        settings=ControllerSettings(forecast_min_history=0.0),
        forecaster=StaticForecaster(level=1.0, upper=1.5),
        planner=lambda *a, **k: Plan(),
        clock=fresh_clock,
    )
    for _ in range(3):
        await controller.run_once()
        fresh_clock.advance(60)
    # Demand was 2 cores, the forecast said 1: half of the demand was missed.
    assert metrics.registry.get_sample_value("spillover_autoscaler_forecast_wape") == 0.5


async def test_simulated_provider_in_virtual_time_without_an_api(fresh_clock: FakeClock) -> None:
    """The replay's set-up: no API server, the provider's nodes appear after the boot time."""
    config = _config()
    provider = SimulatedProvider(config.groups, clock=fresh_clock)
    state = ClusterState()
    for i in range(3):
        state.upsert_pod(pod_from_dict(_pod(f"web-{i}")))
    controller = Controller(config=config, provider=provider, state=state, clock=fresh_clock)
    assert (await controller.run_once()).scaled_up == {"general": 3}
    assert provider.nodes(now=fresh_clock.now) == []
    fresh_clock.advance(30)
    assert (await controller.run_once()).scaled_up == {}  # booting nodes count as upcoming
    fresh_clock.advance(30)
    for node in provider.nodes(now=fresh_clock.now):
        state.upsert_node(node)
    assert len(state.nodes) == 3
    assert (await controller.run_once()).scaled_up == {}


def _on(pod: dict[str, Any], node: str) -> dict[str, Any]:
    pod["spec"]["nodeName"] = node
    pod["status"]["phase"] = "Running"
    return pod


async def test_scale_down_drains_by_eviction_and_respects_disruption_budgets(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    state, [free, guarded] = await _with_kwok_nodes(kube_api, kube_client, 2)
    kube_api.create(_on(_pod("web-free"), free))
    guarded_pod = _on(_pod("db-0"), guarded)
    guarded_pod["metadata"]["labels"] = {"app": "db"}
    kube_api.create(guarded_pod)
    kube_api.create(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "db"}}},
            "status": {"disruptionsAllowed": 0},
        }
    )
    _sync(kube_api, state)

    def remove_both(*_: Any, **__: Any) -> Plan:
        return Plan(
            scale_downs=(
                ScaleDown("general", free, "underutilized"),
                ScaleDown("general", guarded, "underutilized"),
            )
        )

    controller = _controller(kube_client, fresh_clock, state, planner=remove_both)
    result = await controller.run_once()
    assert result.deleted == (free,)
    assert result.errors == (f"could not drain {guarded}",)
    assert _kwok_nodes(kube_api) == [guarded]
    assert [p["metadata"]["name"] for p in kube_api.objects_of("pods")] == ["db-0"]
    node = kube_api.get("nodes", guarded)
    assert not node["spec"].get("unschedulable")  # uncordoned again
    assert all(t["key"] != "spillover.dev/to-be-deleted" for t in node["spec"].get("taints") or [])


async def test_a_disruption_budget_with_a_null_selector_blocks_nothing(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    """Regression: a PDB with a null selector (policy/v1: selects no pods) was read as the whole
    namespace, which blocked every scale-down there."""
    state = ClusterState()
    provider = KwokProvider(kube_client, _config().groups)
    await provider.increase_size("general", target=1)
    [node] = _kwok_nodes(kube_api)
    kube_api.create(_on(_pod("web-0"), node))
    kube_api.create(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "nothing", "namespace": "shop"},
            "spec": {"selector": None, "maxUnavailable": 0},
            "status": {"disruptionsAllowed": 0},
        }
    )
    _sync(kube_api, state)

    def remove(*_: Any, pdbs: Any = (), **__: Any) -> Plan:
        assert list(pdbs) == []  # the budget selects no pod: the planner never sees it
        return Plan(scale_downs=(ScaleDown("general", node, "underutilized"),))

    controller = _controller(kube_client, fresh_clock, state, planner=remove)
    result = await controller.run_once()
    assert result.deleted == (node,)
    assert result.errors == ()


async def test_a_failing_pass_does_not_stop_the_loop(
    kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    calls: list[int] = []
    stop = asyncio.Event()

    def broken(*_: Any, **__: Any) -> Plan:
        calls.append(1)
        if len(calls) == 2:
            stop.set()
        raise RuntimeError("planner bug")

    controller = Controller(
        config=_config(),
        provider=KwokProvider(kube_client, _config().groups),
        state=ClusterState(),
        settings=ControllerSettings(loop_interval=0.01),
        planner=broken,
        clock=fresh_clock,
    )
    await asyncio.wait_for(controller.run(stop), timeout=10)
    assert len(calls) == 2


def test_class_demand_counts_gpu_pods_in_gpus_and_eci_pods_that_could_run_on_ecs() -> None:
    ecs = Node("ecs-1", allocatable=Resources(96_000, 2**40, 110, 8000))
    eci = Node("vk", allocatable=Resources(10**6, 2**50, 10**4, 10**5), kind=NodeKind.ECI)

    def p(name: str, ns: str, node: str, cpu: int, gpu: int = 0) -> Pod:
        return Pod(
            uid=name,
            name=name,
            namespace=ns,
            requests=Resources(cpu, 2**30, 1, gpu),
            node_name=node,
            phase="Running" if node else "Pending",
        )

    first_ecs = ResourcePolicy(
        "train", "ml", LabelSelector({}), (Unit(NodeKind.ECS), Unit(NodeKind.ECI))
    )
    eci_only = ResourcePolicy("burst", "burst", LabelSelector({}), (Unit(NodeKind.ECI),))
    state = ClusterState(
        nodes=[ecs, eci],
        pods=[
            p("a", "ml", "ecs-1", 8000, 2000),  # gpu: 2 GPUs, its cpu is not general demand
            p("b", "ml", "vk", 4000, 500),  # on ECI, could be on ECS: 0.5 GPU
            p("c", "ml", "", 1500),  # pending: 1.5 cores
            p("d", "ml", "vk", 2000),  # on ECI, could be on ECS: 2 cores
            p("e", "burst", "vk", 3000),  # ECI by policy: not ECS demand
        ],
        policies=[first_ecs, eci_only],
    )
    assert class_demand(state) == {"cpu": 3.5, "gpu": 2.5}
    assert demand_of(state) == 3.5


WEB_ECS_THEN_ECI = ResourcePolicy(
    "web", "shop", LabelSelector({"app": "web"}), (Unit(NodeKind.ECS), Unit(NodeKind.ECI))
)


def _on_eci(name: str) -> dict[str, Any]:
    """A web pod (1.5 cpu, a ReplicaSet's, 2 h left) on the virtual node."""
    pod = _on(_pod(name), "virtual-kubelet")
    pod["metadata"]["annotations"] = {"spillover.dev/expected-duration": "2h"}
    return pod


async def test_rebalance_evicts_pods_that_ecs_now_has_room_for(
    kube_api: KubeEmulator, kube_client: client.ApiClient, fresh_clock: FakeClock
) -> None:
    # one kwok node (2 cpu) holds nothing; web-eci-0/1 (1.5 cpu each, Deployment, 2 h left) run
    # on the virtual node.  Only one fits: it is evicted with an Event; the other stays.
    state, _ = await _with_kwok_nodes(kube_api, kube_client, 1)
    kube_api.create(make_node("virtual-kubelet", eci=True))
    for i in range(2):
        kube_api.create(_on_eci(f"web-eci-{i}"))
    _sync(kube_api, state)
    state.set_policies([WEB_ECS_THEN_ECI])
    metrics = Metrics()
    controller = _controller(kube_client, fresh_clock, state, metrics=metrics)
    result = await controller.run_once()
    # CONFIG's nodes cost nothing, so the pod that does not fit gets a new node; it moves later
    assert result.scaled_up == {"general": 2}
    left = [p["metadata"]["name"] for p in kube_api.objects_of("pods")]
    assert left == ["web-eci-1"]
    assert result.moved == ("shop/web-eci-0",)
    status = json.loads(
        kube_api.get("configmaps", "spillover-autoscaler-status", NS)["data"]["status"]
    )
    assert status["moved"] == ["shop/web-eci-0"]
    events = [e for e in kube_api.objects_of("events") if e["reason"] == "RebalancedToECS"]
    assert [e["involvedObject"]["name"] for e in events] == ["web-eci-0"]
    assert metrics.moves.labels("evicted")._value.get() == 1
    # web-eci-0's replacement is not created here, so the room is free again for web-eci-1: one
    # move a minute lets it go only once the first move is a minute old
    _sync(kube_api, state)
    controller.config = _settings(controller.config, rebalance=MoveCosts(per_minute=1))
    await controller.run_once()
    assert [p["metadata"]["name"] for p in kube_api.objects_of("pods")] == ["web-eci-1"]
    fresh_clock.advance(61)
    drained = await controller.run_once()
    assert len(drained.deleted) == 1  # consolidation took one of the two empty nodes: no move
    assert [p["metadata"]["name"] for p in kube_api.objects_of("pods")] == ["web-eci-1"]
    _sync(kube_api, state)
    await controller.run_once()
    assert kube_api.objects_of("pods") == []


@pytest.mark.parametrize("refused", [False, True], ids=["evicted", "refused"])
async def test_rebalance_moves_go_through_the_drainer(
    fresh_clock: FakeClock, refused: bool
) -> None:
    # one empty simulated node (2 cpu) and web-eci-0 (1.5 cpu, a ReplicaSet's, 2 h left) on
    # ECI: the move is an eviction asked of the drainer; a refused one is no move.
    provider, state, _ = await _simulated_node(fresh_clock)
    state.upsert_node(node_from_dict(make_node("virtual-kubelet", eci=True)))
    state.upsert_pod(replace(pod_from_dict(_on_eci("web-eci-0")), uid="web-eci-0"))
    state.set_policies([WEB_ECS_THEN_ECI])
    drainer = FakeDrainer(state, refuse={"shop/web-eci-0"} if refused else set())
    metrics = Metrics()
    controller = Controller(
        config=_config(),
        provider=provider,
        state=state,
        drainer=drainer,
        clock=fresh_clock,
        sleep=_no_sleep,
        metrics=metrics,
    )
    result = await controller.run_once()
    assert ("evict", "shop/web-eci-0") in drainer.calls
    assert result.moved == (() if refused else ("shop/web-eci-0",))
    assert ("web-eci-0" in state.pods) == refused
    assert metrics.moves.labels("refused" if refused else "evicted")._value.get() == 1
