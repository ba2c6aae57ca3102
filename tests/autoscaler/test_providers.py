"""The simulated provider in virtual time, and the kwok provider against the API emulator."""

from __future__ import annotations

from typing import Any

import pytest
from autoscaler_fakes import FakeClock
from kube_emulator import KubeEmulator
from kubernetes_asyncio import client

from autoscaler.nodegroup import InstanceType, NodeGroup
from autoscaler.providers.base import GROUP_LABEL, InstanceState, Provider, ProviderError
from autoscaler.providers.kwok import KWOK_ANNOTATION, KwokProvider
from autoscaler.providers.simulated import SimulatedProvider
from extender.model import Node, Resources, Taint, node_from_dict

GIB = 1024**3


def _group(name: str = "general", **kwargs: Any) -> NodeGroup:
    defaults: dict[str, Any] = {
        "instance_type": InstanceType("ecs.g7.large", 2000, 8 * GIB, 0, 32),
        "labels": {"pool": name},
        "taints": (Taint("dedicated", name, "NoSchedule"),),
        "min_size": 0,
        "max_size": 3,
        "boot_time": 60.0,
    }
    return NodeGroup(name=name, **{**defaults, **kwargs})


def test_providers_satisfy_the_protocol(kube_client: client.ApiClient) -> None:
    assert isinstance(SimulatedProvider([_group()]), Provider)
    assert isinstance(KwokProvider(kube_client, [_group()]), Provider)


async def test_simulated_nodes_become_ready_after_boot_time(clock: FakeClock) -> None:
    provider = SimulatedProvider([_group()], clock=clock)
    t0 = clock.now
    assert await provider.increase_size("general", target=2) == 2
    (status,) = await provider.groups()
    assert status.target == 2
    assert status.upcoming == 2
    assert {i.state for i in status.instances} == {InstanceState.CREATING}
    assert provider.nodes(now=t0) == []
    assert provider.next_ready(now=t0) == t0 + 60.0
    clock.advance(60.0)
    nodes = provider.nodes(now=clock.now)
    assert len(nodes) == 2
    node = nodes[0]
    assert node.labels == {"pool": "general", GROUP_LABEL: "general"}
    assert node.taints == (Taint("dedicated", "general", "NoSchedule"),)
    assert node.allocatable == Resources(2000, 8 * GIB, 32, 0, 0)
    assert provider.node_group(node) == "general"
    assert provider.node_group(Node(name="other")) is None
    assert (await provider.groups())[0].upcoming == 0


async def test_simulated_sizes_are_idempotent_and_bounded(clock: FakeClock) -> None:
    provider = SimulatedProvider([_group(min_size=1, desired=1)], clock=clock)
    assert await provider.target_size("general") == 1
    assert provider.nodes(now=clock.now)[0].name.startswith("general-")
    await provider.increase_size("general", target=2)
    await provider.increase_size("general", target=2)  # a retry adds nothing
    assert await provider.target_size("general") == 2
    with pytest.raises(ProviderError, match="exceeds max 3") as info:
        await provider.increase_size("general", target=4)
    assert not info.value.retryable
    clock.advance(120)
    first, second = provider.nodes(now=clock.now)
    await provider.delete_nodes("general", [second])
    await provider.delete_nodes("general", [second])  # already gone: ignored
    with pytest.raises(ProviderError, match="below min 1"):
        await provider.delete_nodes("general", [first])
    assert [a.kind for a in provider.actions] == ["increase", "delete"]
    with pytest.raises(ProviderError, match="unknown node group"):
        await provider.increase_size("nope", target=1)


async def test_kwok_creates_and_deletes_fake_nodes(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    gpu = _group(
        "gpu", instance_type=InstanceType("ecs.gn7", 96_000, 384 * GIB, 8000, 64), max_size=2
    )
    provider = KwokProvider(kube_client, [_group(), gpu])
    kube_api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "static-1"}})
    assert [g.target for g in await provider.groups()] == [0, 0]
    assert await provider.increase_size("general", target=2) == 2
    assert await provider.increase_size("general", target=2) == 2  # idempotent
    assert await provider.increase_size("gpu", target=1) == 1
    raws = [n for n in kube_api.objects_of("nodes") if n["metadata"]["name"] != "static-1"]
    assert len(raws) == 3
    nodes = {n.name: n for n in (node_from_dict(raw) for raw in raws)}
    general = [n for n in nodes.values() if n.labels[GROUP_LABEL] == "general"]
    assert all(n.ready for n in general)
    assert general[0].allocatable == Resources(2000, 8 * GIB, 32, 0, 0)
    assert general[0].taints == (Taint("dedicated", "general", "NoSchedule"),)
    assert general[0].labels["pool"] == "general"
    (gpu_node,) = [n for n in nodes.values() if n.labels[GROUP_LABEL] == "gpu"]
    assert gpu_node.allocatable.gpu_milli == 8000
    assert all(raw["metadata"]["annotations"][KWOK_ANNOTATION] == "fake" for raw in raws)
    assert provider.node_group(general[0]) == "general"
    assert provider.node_group(node_from_dict(kube_api.get("nodes", "static-1"))) is None

    await provider.delete_nodes("general", [general[0]])
    await provider.delete_nodes("general", [general[0]])  # gone already: no error, no call
    assert await provider.target_size("general") == 1
    assert {n["metadata"]["name"] for n in kube_api.objects_of("nodes")} == {
        "static-1",
        general[1].name,
        gpu_node.name,
    }


async def test_kwok_failure_midway_leaves_a_readable_size(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    provider = KwokProvider(kube_client, [_group()])
    await provider.increase_size("general", target=1)
    kube_api.fail(r"^/api/v1/nodes$", status=500, method="POST")
    with pytest.raises(ProviderError, match="create node") as info:
        await provider.increase_size("general", target=3)
    assert info.value.retryable
    assert await provider.target_size("general") == 1  # what the next loop reads and repairs
    assert await provider.increase_size("general", target=3) == 3
    assert len(kube_api.objects_of("nodes")) == 3
    with pytest.raises(ProviderError, match="exceeds max 3"):
        await provider.increase_size("general", target=4)


def test_simulated_status_follows_boots_and_removals_between_repeated_asks() -> None:
    # status() is kept between asks: it must change exactly when a node turns Ready, is added
    # or is removed, and hold for any time in between (also asked earlier again).
    provider = SimulatedProvider([_group(min_size=1, desired=1, boot_time=60.0)])
    provider.set_target("general", 2, now=100.0)
    states = [
        tuple(i.state for i in provider.status("general", now=t).instances)
        for t in (100.0, 159.0, 160.0, 500.0, 159.0)
    ]
    running, creating = InstanceState.RUNNING, InstanceState.CREATING
    assert states == [(running, creating)] * 2 + [(running, running)] * 2 + [(running, creating)]
    first = provider.nodes(now=0.0)[0].name
    provider.remove("general", [provider.nodes(now=500.0)[1].name], now=500.0)
    after = provider.status("general", now=500.0)
    assert (after.target, [i.id for i in after.instances]) == (1, [first])
    provider.set_target("general", 2, now=500.0)
    assert provider.status("general", now=500.0).instances[1].state is creating
