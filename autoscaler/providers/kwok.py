"""Node groups of fake Node objects, created and deleted through the Kubernetes API.

This is how kind clusters and cluster-autoscaler's own test suites simulate node groups: with
KWOK running, a Node annotated ``kwok.x-k8s.io/node: fake`` is adopted and kept Ready; without it
(the API emulator in tests), the Node is created with a Ready status of its own (the API server
accepts a Node's status on create, as kubelet registers that way).

The API server is the only state: a group's target size is the number of its Nodes (those with
the group label and not being deleted), so a restart or a failed batch leaves a size the next
loop reads back.  Node names are ``<group>-<random>`` so two controllers never collide.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from extender.model import GPU_RESOURCE, Node, Resources

from ..nodegroup import NodeGroup
from .base import (
    GROUP_LABEL,
    GroupStatus,
    Instance,
    InstanceState,
    ProviderError,
    check_max_size,
)

__all__ = ["KWOK_ANNOTATION", "KwokProvider", "node_manifest"]

KWOK_ANNOTATION = "kwok.x-k8s.io/node"


def _quantities(r: Resources) -> dict[str, str]:
    out = {"cpu": f"{r.cpu_milli}m", "memory": str(r.memory), "pods": str(r.pods)}
    if r.gpu_milli:
        gpu = r.gpu_milli
        out[GPU_RESOURCE] = str(gpu // 1000) if gpu % 1000 == 0 else f"{gpu}m"
    return out


def node_manifest(group: NodeGroup, name: str, *, label: str = GROUP_LABEL) -> dict[str, Any]:
    """The Node object a kwok group member is created as."""
    capacity = _quantities(group.instance_type.capacity)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                **group.labels,
                label: group.name,
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": group.instance_type.name or group.name,
            },
            "annotations": {KWOK_ANNOTATION: "fake"},
        },
        "spec": {
            "providerID": f"kwok://{name}",
            "taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in group.taints],
        },
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "phase": "Running",
        },
    }


class KwokProvider:
    name = "kwok"

    def __init__(
        self, api: client.ApiClient, groups: Sequence[NodeGroup], *, label: str = GROUP_LABEL
    ) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._groups = {g.name: g for g in groups}
        self._label = label
        self._members: dict[str, list[Mapping[str, Any]]] = {g: [] for g in self._groups}

    async def refresh(self) -> None:
        members: dict[str, list[Mapping[str, Any]]] = {g: [] for g in self._groups}
        try:
            listed = await self._core.list_node(label_selector=self._label)
            body = self._api.sanitize_for_serialization(listed)
        except (ApiException, OSError, TimeoutError) as err:
            raise _error("list nodes", err) from err
        for raw in body.get("items") or ():
            meta = raw.get("metadata") or {}
            group = (meta.get("labels") or {}).get(self._label)
            if group in members:
                members[group].append(raw)
        self._members = members

    async def groups(self) -> Sequence[GroupStatus]:
        await self.refresh()
        return [self._status(name) for name in self._groups]

    async def target_size(self, group: str) -> int:
        self._group(group)
        await self.refresh()
        return self._status(group).target

    async def increase_size(self, group: str, *, target: int) -> int:
        spec = self._group(group)
        await self.refresh()
        current = self._status(group).target
        if target <= current:
            return current
        check_max_size(provider="kwok", group=group, target=target, max_size=spec.max_size)
        for _ in range(target - current):
            name = f"{group}-{secrets.token_hex(3)}"
            try:
                await self._core.create_node(node_manifest(spec, name, label=self._label))  # type: ignore[arg-type]
            except (ApiException, OSError, TimeoutError) as err:
                raise _error(f"create node {name}", err) from err
        return target

    async def delete_nodes(self, group: str, nodes: Sequence[Node]) -> None:
        spec = self._group(group)
        await self.refresh()
        members = {_name(raw) for raw in self._live(group)}
        victims = [n.name for n in nodes if n.name in members]
        for node in nodes:
            if node.name not in members and node.labels.get(self._label) not in (None, group):
                raise ProviderError(
                    f"kwok: node {node.name} is not in group {group}", retryable=False
                )
        if len(members) - len(victims) < spec.min_size:
            raise ProviderError(
                f"kwok: removing {len(victims)} from {group} would go below min {spec.min_size}",
                retryable=False,
            )
        for name in victims:
            try:
                await self._core.delete_node(name)
            except ApiException as err:
                if err.status != 404:
                    raise _error(f"delete node {name}", err) from err
            except (OSError, TimeoutError) as err:
                raise _error(f"delete node {name}", err) from err

    def node_group(self, node: Node) -> str | None:
        group = node.labels.get(self._label)
        return group if group in self._groups else None

    def _group(self, name: str) -> NodeGroup:
        try:
            return self._groups[name]
        except KeyError:
            raise ProviderError(f"kwok: unknown node group {name!r}", retryable=False) from None

    def _live(self, group: str) -> list[Mapping[str, Any]]:
        return [
            raw
            for raw in self._members.get(group, ())
            if not (raw.get("metadata") or {}).get("deletionTimestamp")
        ]

    def _status(self, group: str) -> GroupStatus:
        spec = self._groups[group]
        instances = tuple(
            Instance(id=_name(raw), node=_name(raw), state=InstanceState.RUNNING)
            for raw in self._live(group)
        )
        return GroupStatus(group, spec.min_size, spec.max_size, len(instances), instances)


def _name(raw: Mapping[str, Any]) -> str:
    return str((raw.get("metadata") or {}).get("name") or "")


def _error(what: str, err: BaseException) -> ProviderError:
    if isinstance(err, ApiException):
        status = err.status or 0
        retryable = status >= 500 or status in (409, 429) or status == 0
        return ProviderError(f"kwok: {what}: {status} {err.reason}", retryable=retryable)
    return ProviderError(f"kwok: {what}: {err!r}", retryable=True)
