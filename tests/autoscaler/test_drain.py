"""``autoscaler.drain``: the drain sequence over the in-memory drainer, and the cordon patches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from autoscaler.drain import (
    DELETION_TAINT,
    Drained,
    FakeDrainer,
    cordon_spec,
    drain_node,
    uncordon_spec,
)
from extender.model import Node, OwnerRef, Pod, Taint
from extender.snapshot import ClusterState

NODE = Node("n1", taints=(Taint("gpu", "yes", "NoSchedule"),))


def pod(name: str, *, owner: str = "ReplicaSet", phase: str = "Running") -> Pod:
    return Pod(
        uid=name,
        name=name,
        namespace="shop",
        node_name=NODE.name,
        phase=phase,
        owner=OwnerRef(owner, "x"),
    )


def cluster(*pods: Pod) -> ClusterState:
    return ClusterState(nodes=[NODE], pods=pods)


async def no_sleep(_: float) -> None:
    return None


async def drain(
    drainer: FakeDrainer,
    *,
    sleep: Callable[[float], Awaitable[None]] = no_sleep,
    wait: float = 1.0,
) -> Drained:
    return await drain_node(
        drainer, drainer.state, NODE, now=1000.0, longest_wait=wait, poll=0.5, sleep=sleep
    )


async def test_cordons_then_evicts_what_may_go_and_waits_for_it() -> None:
    drainer = FakeDrainer(
        cluster(pod("web-0"), pod("agent", owner="DaemonSet"), pod("done", phase="Succeeded"))
    )
    drained = await drain(drainer)
    assert (drained.ok, drained.evicted, drained.cleared) == (True, ("web-0",), True)
    assert drainer.calls == [("cordon", "n1"), ("evict", "shop/web-0")]
    assert drainer.state.nodes["n1"].unschedulable


async def test_a_refusal_uncordons_and_keeps_the_node() -> None:
    drainer = FakeDrainer(cluster(pod("a"), pod("b"), pod("c")), refuse={"shop/b"})
    drained = await drain(drainer)
    assert (drained.ok, drained.evicted, drained.reason) == (
        False,
        ("a",),
        "eviction refused: shop/b",
    )
    assert drainer.calls[-1] == ("uncordon", "n1")
    assert ("evict", "shop/c") not in drainer.calls
    assert not drainer.state.nodes["n1"].unschedulable


@pytest.mark.parametrize(
    ("state", "fail", "ok", "reason"),
    [
        (ClusterState(), set(), True, ""),
        (cluster(pod("a")), {"n1"}, False, "cordon failed"),
    ],
    ids=["node-gone", "cordon-failed"],
)
async def test_cordon_outcomes(state: ClusterState, fail: set[str], ok: bool, reason: str) -> None:
    drainer = FakeDrainer(state, fail_cordon=fail)
    drained = await drain(drainer)
    assert (drained.ok, drained.reason, drained.evicted) == (ok, reason, ())
    assert drainer.calls == [("cordon", "n1")]


async def test_waits_until_the_evicted_pods_leave_the_cache() -> None:
    drainer = FakeDrainer(cluster(pod("a")), linger=True)
    polls: list[float] = []

    async def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 2:
            drainer.state.remove_pod("a")

    drained = await drain(drainer, sleep=sleep, wait=10.0)
    assert (drained.ok, drained.cleared) == (True, True)
    assert polls == [0.5, 0.5]


async def test_stops_waiting_after_the_longest_wait() -> None:
    drainer = FakeDrainer(cluster(pod("a")), linger=True)
    polls: list[float] = []

    async def sleep(seconds: float) -> None:
        polls.append(seconds)

    drained = await drain(drainer, sleep=sleep, wait=2.0)
    assert (drained.ok, drained.cleared) == (True, False)
    assert polls == [0.5] * 4


def test_cordon_spec_adds_the_deletion_taint_once_and_uncordon_removes_it() -> None:
    marked = Node("n1", taints=(*NODE.taints, Taint(DELETION_TAINT, "5", "NoSchedule")))
    spec = cordon_spec(marked, now=1234.9)
    assert spec == {
        "unschedulable": True,
        "taints": [
            {"key": "gpu", "value": "yes", "effect": "NoSchedule"},
            {"key": DELETION_TAINT, "value": "1234", "effect": "NoSchedule"},
        ],
    }
    assert uncordon_spec(marked) == {
        "unschedulable": False,
        "taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}],
    }
