"""The ESS provider against a local server that answers the requests the real SDK sends."""

from __future__ import annotations

import pytest
from autoscaler_fakes import FakeEss

from autoscaler.providers.base import InstanceState, ProviderError
from autoscaler.providers.ess import EssConfig, EssProvider, instance_id_of
from extender.model import Node


def _provider(ess: FakeEss, **kwargs: object) -> EssProvider:
    config = EssConfig(
        region="cn-hangzhou",
        scaling_groups={"general": "asg-general", "gpu": "asg-gpu"},
        access_key_id="test-ak",
        access_key_secret="test-sk",
        endpoint=f"127.0.0.1:{ess.port}",
        protocol="http",
        read_timeout_ms=2_000,
        **kwargs,  # type: ignore[arg-type]
    )
    return EssProvider(config)


def _node(instance: str) -> Node:
    return Node(name=f"cn-hangzhou.{instance}")


@pytest.fixture
def ess(fake_ess: FakeEss) -> FakeEss:
    fake_ess.add_group("asg-general", min_size=1, max_size=5, desired=2)
    fake_ess.add_group("asg-gpu", min_size=0, max_size=2, desired=0)
    return fake_ess


async def test_refresh_reads_groups_and_instances(ess: FakeEss) -> None:
    provider = _provider(ess)
    await provider.refresh()
    groups = {g.name: g for g in await provider.groups()}
    assert groups["general"].target == 2
    assert (groups["general"].min_size, groups["general"].max_size) == (1, 5)
    assert [i.state for i in groups["general"].instances] == [InstanceState.RUNNING] * 2
    assert groups["gpu"].target == 0
    first = ess.groups["asg-general"].instances[0]
    assert provider.node_group(_node(first)) == "general"
    assert provider.node_group(_node("i-unknown")) is None
    assert provider.node_group(Node(name="worker-1")) is None


async def test_scale_up_sets_desired_capacity_and_is_idempotent(ess: FakeEss) -> None:
    provider = _provider(ess)
    assert await provider.increase_size("general", target=4) == 4
    assert ess.groups["asg-general"].desired == 4
    modify = [p for a, p in ess.calls if a == "ModifyScalingGroup"]
    assert modify == [{"ScalingGroupId": "asg-general", "DesiredCapacity": "4"}]
    # A retry of the same target (or a lower one) changes nothing.
    assert await provider.increase_size("general", target=4) == 4
    assert await provider.increase_size("general", target=3) == 4
    assert ess.actions().count("ModifyScalingGroup") == 1
    assert await provider.target_size("general") == 4
    await provider.refresh()
    status = {g.name: g for g in await provider.groups()}["general"]
    assert status.upcoming == 2


async def test_scale_up_with_adjustment_sends_total_capacity_and_client_token(ess: FakeEss) -> None:
    provider = _provider(ess, scale_up="adjustment")
    await provider.increase_size("gpu", target=2)
    (params,) = [p for a, p in ess.calls if a == "ScaleWithAdjustment"]
    assert params["AdjustmentType"] == "TotalCapacity"
    assert params["AdjustmentValue"] == "2"
    assert params["ClientToken"]
    assert ess.groups["asg-gpu"].desired == 2


async def test_scale_up_beyond_max_is_refused_without_a_call(ess: FakeEss) -> None:
    provider = _provider(ess)
    with pytest.raises(ProviderError, match="exceeds MaxSize 2") as info:
        await provider.increase_size("gpu", target=3)
    assert not info.value.retryable
    assert "ModifyScalingGroup" not in ess.actions()


async def test_scale_down_removes_named_instances(ess: FakeEss) -> None:
    provider = _provider(ess)
    await provider.increase_size("general", target=3)
    victim = ess.groups["asg-general"].instances[1]
    await provider.delete_nodes("general", [_node(victim)])
    (params,) = [p for a, p in ess.calls if a == "RemoveInstances"]
    assert params["InstanceIds.1"] == victim
    assert params["DecreaseDesiredCapacity"].lower() == "true"
    assert params["ScalingGroupId"] == "asg-general"
    assert victim not in ess.groups["asg-general"].instances
    assert ess.groups["asg-general"].desired == 2
    # Deleting it again (a retry after a lost answer) is a no-op.
    await provider.delete_nodes("general", [_node(victim)])
    assert ess.actions().count("RemoveInstances") == 1


async def test_node_maps_to_instance_by_provider_id_or_label() -> None:
    assert instance_id_of(Node(name="cn-hangzhou.i-abc")) == "i-abc"
    labelled = Node(name="node-7", labels={"example.com/instance": "i-xyz"})
    assert instance_id_of(labelled, label="example.com/instance") == "i-xyz"
    assert instance_id_of(Node(name="node-7")) == ""


async def test_scale_down_below_min_is_refused(ess: FakeEss) -> None:
    provider = _provider(ess)
    nodes = [_node(i) for i in ess.groups["asg-general"].instances]
    with pytest.raises(ProviderError, match="below MinSize 1"):
        await provider.delete_nodes("general", nodes)
    assert "RemoveInstances" not in ess.actions()


async def test_errors_surface_with_code_and_retryability(ess: FakeEss) -> None:
    provider = _provider(ess)
    ess.fail("ModifyScalingGroup", status=503, code="ServiceUnavailable")
    with pytest.raises(ProviderError, match="ModifyScalingGroup failed") as info:
        await provider.increase_size("general", target=3)
    assert info.value.retryable
    assert info.value.code == "ServiceUnavailable"
    assert ess.groups["asg-general"].desired == 2  # nothing applied

    ess.fail("RemoveInstances", status=400, code="IncorrectInstanceStatus")
    victim = ess.groups["asg-general"].instances[0]
    with pytest.raises(ProviderError) as info:
        await provider.delete_nodes("general", [_node(victim)])
    assert not info.value.retryable
    assert info.value.code == "IncorrectInstanceStatus"


async def test_unknown_group_and_bad_credentials(ess: FakeEss) -> None:
    provider = _provider(ess)
    with pytest.raises(ProviderError, match="unknown node group 'nope'"):
        await provider.increase_size("nope", target=1)
    ess.access_key_id = "other"
    with pytest.raises(ProviderError, match="DescribeScalingGroups failed") as info:
        await provider.refresh()
    assert info.value.code == "InvalidAccessKeyId.NotFound"


async def test_requests_are_signed_with_the_secret(ess: FakeEss) -> None:
    """The fake checks the SDK's ACS3-HMAC-SHA256 signature: a wrong secret is refused."""
    wrong = EssProvider(
        EssConfig(
            region="cn-hangzhou",
            scaling_groups={"general": "asg-general"},
            access_key_id="test-ak",
            access_key_secret="not-the-secret",
            endpoint=f"127.0.0.1:{ess.port}",
            protocol="http",
        )
    )
    with pytest.raises(ProviderError) as info:
        await wrong.refresh()
    assert info.value.code == "SignatureDoesNotMatch"
    await _provider(ess).refresh()  # the right secret passes the same check
