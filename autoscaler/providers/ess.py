"""Alibaba Cloud ESS scaling groups through the official ``alibabacloud-ess20220222`` SDK.

Optional extra (``pip install spillover[ess]``): the SDK is imported when the provider is built,
so the rest of the autoscaler runs without it.

- Target size is the group's ``DesiredCapacity``: ``ModifyScalingGroup(DesiredCapacity=n)``
  (default), or ``ScaleWithAdjustment(AdjustmentType=TotalCapacity, AdjustmentValue=n)`` with a
  ``ClientToken`` derived from (group, from, to) so a retried call is deduplicated by ESS too.
  Both are absolute, never "+k", so a retry cannot double a scale-up.
- Scale-down removes *named* instances: ``RemoveInstances(InstanceIds=..., DecreaseDesiredCapacity=
  true)``, at most 20 per call as the API allows.
- A Node maps to its ECS instance through ``spec.providerID`` (``<region>.<instance-id>``, as ACK
  sets it), else a label (``instance_label``), else a node name of the form ``<region>.i-...`` or
  ``i-...``.
- ``refresh`` reads every group with ``DescribeScalingGroups`` and its instances with
  ``DescribeScalingInstances`` (paged); the other reads answer from that snapshot, the writes
  re-read the group first.

SDK errors become ``ProviderError``: 4xx are not retryable except throttling, 5xx and connection
errors are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from extender.model import Node

from .base import GroupStatus, Instance, InstanceState, ProviderError

__all__ = ["EssConfig", "EssProvider", "instance_id_of"]

_REMOVE_BATCH = 20
_PAGE_SIZE = 50
_RETRYABLE_CODES = frozenset(
    {"Throttling", "Throttling.User", "ServiceUnavailable", "InternalError"}
)
_STATES = {
    "InService": InstanceState.RUNNING,
    "Protected": InstanceState.RUNNING,
    "Standby": InstanceState.RUNNING,
    "Pending": InstanceState.CREATING,
    "Pending:Wait": InstanceState.CREATING,
}


@dataclass(frozen=True, slots=True)
class EssConfig:
    region: str
    scaling_groups: Mapping[str, str]  # node-group name -> ESS ScalingGroupId
    access_key_id: str = ""
    access_key_secret: str = ""
    security_token: str = ""
    endpoint: str = ""  # default: the SDK's regional endpoint
    protocol: str = "https"
    instance_label: str = ""
    scale_up: str = (
        "desired"  # "desired" (ModifyScalingGroup) or "adjustment" (ScaleWithAdjustment)
    )
    read_timeout_ms: int = 10_000


def instance_id_of(node: Node, *, label: str = "") -> str:
    """The ECS instance id behind a node, or ``""``."""
    provider_id = node.provider_id
    if provider_id:
        return provider_id.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
    if label and node.labels.get(label):
        return node.labels[label]
    tail = node.name.rsplit(".", 1)[-1]
    return tail if tail.startswith("i-") else ""


class EssProvider:
    name = "ess"

    def __init__(self, config: EssConfig, *, client: Any = None) -> None:
        from alibabacloud_ess20220222 import models
        from alibabacloud_ess20220222.client import Client
        from alibabacloud_tea_openapi.utils_models import Config

        if config.scale_up not in ("desired", "adjustment"):
            raise ValueError(
                f"ess: scale_up must be desired or adjustment, not {config.scale_up!r}"
            )
        self._config = config
        self._models = models
        if client is None:
            sdk_config = Config(
                access_key_id=config.access_key_id or None,
                access_key_secret=config.access_key_secret or None,
                security_token=config.security_token or None,
                region_id=config.region,
                protocol=config.protocol,
                read_timeout=config.read_timeout_ms,
                connect_timeout=min(config.read_timeout_ms, 5_000),
            )
            if config.endpoint:
                sdk_config.endpoint = config.endpoint
            if not (config.access_key_id and config.access_key_secret):
                # The SDK's default chain: environment, RRSA/OIDC (ACK), profile, ECS RAM role.
                from alibabacloud_credentials.client import (
                    Client as Credentials,
                )

                sdk_config.credential = Credentials()
            client = Client(sdk_config)
        self._client = client
        self._groups: dict[str, GroupStatus] = {}
        self._group_of_instance: dict[str, str] = {}

    # -- reads ------------------------------------------------------------------------------------
    async def refresh(self) -> None:
        groups: dict[str, GroupStatus] = {}
        owner: dict[str, str] = {}
        for name in self._config.scaling_groups:
            status = await self._read_group(name)
            groups[name] = status
            owner.update({i.id: name for i in status.instances})
        self._groups, self._group_of_instance = groups, owner

    async def groups(self) -> Sequence[GroupStatus]:
        if not self._groups:
            await self.refresh()
        return list(self._groups.values())

    async def target_size(self, group: str) -> int:
        status = self._groups.get(group) or await self._read_group(group)
        return status.target

    def node_group(self, node: Node) -> str | None:
        instance = instance_id_of(node, label=self._config.instance_label)
        return self._group_of_instance.get(instance) if instance else None

    # -- writes -----------------------------------------------------------------------------------
    async def increase_size(self, group: str, *, target: int) -> int:
        current = await self._describe_group(group)
        desired = _desired(current)
        if target <= desired:
            return desired
        if target > int(current.get("MaxSize") or 0):
            raise ProviderError(
                f"ess: group {group}: target {target} exceeds MaxSize {current.get('MaxSize')}",
                retryable=False,
            )
        group_id = self._group_id(group)
        m = self._models
        if self._config.scale_up == "desired":
            await self._call(
                "ModifyScalingGroup",
                self._client.modify_scaling_group_async,
                m.ModifyScalingGroupRequest(scaling_group_id=group_id, desired_capacity=target),
            )
        else:
            token = hashlib.sha256(f"{group_id}:{desired}:{target}".encode()).hexdigest()[:32]
            await self._call(
                "ScaleWithAdjustment",
                self._client.scale_with_adjustment_async,
                m.ScaleWithAdjustmentRequest(
                    scaling_group_id=group_id,
                    adjustment_type="TotalCapacity",
                    adjustment_value=target,
                    client_token=token,
                ),
            )
        return target

    async def delete_nodes(self, group: str, nodes: Sequence[Node]) -> None:
        status = await self._read_group(group)
        members = {i.id for i in status.instances}
        ids: list[str] = []
        for node in nodes:
            instance = instance_id_of(node, label=self._config.instance_label)
            if not instance:
                raise ProviderError(
                    f"ess: node {node.name} has no instance id (providerID or label)",
                    retryable=False,
                )
            if instance in members:
                ids.append(instance)
            elif self._group_of_instance.get(instance, group) != group:
                raise ProviderError(
                    f"ess: node {node.name} is not in group {group}", retryable=False
                )
        if not ids:
            return
        if status.target - len(ids) < status.min_size:
            raise ProviderError(
                f"ess: removing {len(ids)} from {group} would go below MinSize {status.min_size}",
                retryable=False,
            )
        m = self._models
        for start in range(0, len(ids), _REMOVE_BATCH):
            await self._call(
                "RemoveInstances",
                self._client.remove_instances_async,
                m.RemoveInstancesRequest(
                    region_id=self._config.region,
                    scaling_group_id=self._group_id(group),
                    instance_ids=ids[start : start + _REMOVE_BATCH],
                    decrease_desired_capacity=True,
                ),
            )

    # -- helpers ----------------------------------------------------------------------------------
    def _group_id(self, group: str) -> str:
        try:
            return self._config.scaling_groups[group]
        except KeyError:
            raise ProviderError(f"ess: unknown node group {group!r}", retryable=False) from None

    async def _describe_group(self, group: str) -> Mapping[str, Any]:
        group_id = self._group_id(group)
        body = await self._call(
            "DescribeScalingGroups",
            self._client.describe_scaling_groups_async,
            self._models.DescribeScalingGroupsRequest(
                region_id=self._config.region, scaling_group_ids=[group_id]
            ),
        )
        for raw in body.get("ScalingGroups") or ():
            if raw.get("ScalingGroupId") == group_id:
                return dict(raw)
        raise ProviderError(f"ess: scaling group {group_id} ({group}) not found", retryable=False)

    async def _read_group(self, group: str) -> GroupStatus:
        raw = await self._describe_group(group)
        instances: list[Instance] = []
        page = 1
        while True:
            body = await self._call(
                "DescribeScalingInstances",
                self._client.describe_scaling_instances_async,
                self._models.DescribeScalingInstancesRequest(
                    region_id=self._config.region,
                    scaling_group_id=self._group_id(group),
                    page_number=page,
                    page_size=_PAGE_SIZE,
                ),
            )
            batch = body.get("ScalingInstances") or []
            for item in batch:
                state = _STATES.get(str(item.get("LifecycleState")), InstanceState.DELETING)
                instances.append(Instance(id=str(item.get("InstanceId")), state=state))
            total = int(body.get("TotalCount") or 0)
            if not batch or len(instances) >= total:
                break
            page += 1
        return GroupStatus(
            name=group,
            min_size=int(raw.get("MinSize") or 0),
            max_size=int(raw.get("MaxSize") or 0),
            target=_desired(raw),
            instances=tuple(instances),
        )

    async def _call(
        self, action: str, method: Callable[[Any], Awaitable[Any]], request: Any
    ) -> Mapping[str, Any]:
        try:
            response = await method(request)
        except Exception as err:  # the SDK raises several unrelated exception trees
            raise _provider_error(action, err) from err
        body = response.body.to_map() if response.body is not None else {}
        return body if isinstance(body, Mapping) else {}


def _desired(raw: Mapping[str, Any]) -> int:
    desired = raw.get("DesiredCapacity")
    if desired is None:
        desired = raw.get("TotalCapacity") or 0
    return int(desired)


def _provider_error(action: str, err: Exception) -> ProviderError:
    code = str(getattr(err, "code", "") or "")
    status = getattr(err, "status_code", None) or getattr(err, "statusCode", None)
    message = str(getattr(err, "message", "") or err)
    retryable = (
        not isinstance(status, int) or status >= 500 or status == 429 or code in _RETRYABLE_CODES
    )
    return ProviderError(f"ess: {action} failed: {message}", retryable=retryable, code=code)
