"""The in-memory cluster the request handlers read: nodes by name, pods by UID, and indices.

``ClusterState`` is a store, like an informer's indexer.  The watch (``extender.kube``) or a static
file is the only writer; request handlers only read it.  Everything runs on one asyncio event loop
and a handler never awaits while it reads, so a handler always sees a consistent state without
copying the cluster per event.  Indices keep every read proportional to what it asks for: pods
of one workload, pods on one node, the pending pods.

StatefulSets are kept only for ``spec.ordinals.start`` (when not 0): the policy places a
StatefulSet pod by its ordinal relative to the start (``ordinal``), so a StatefulSet that
starts at 5 keeps replicas 5 .. 5+N-1 on the first unit.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .commandline import file_problem
from .model import (
    ModelError,
    Node,
    NodeKindSettings,
    Pod,
    WorkloadKey,
    node_from_dict,
    pod_from_dict,
    statefulset_start,
)
from .policies import policy_from_dict
from .policy import ResourcePolicy

__all__ = ["ClusterState", "load_cluster"]


class ClusterState:
    def __init__(
        self,
        *,
        nodes: Iterable[Node] = (),
        pods: Iterable[Pod] = (),
        policies: Iterable[ResourcePolicy] = (),
        synced: bool = True,
    ) -> None:
        self.nodes: dict[str, Node] = {}
        self.pods: dict[str, Pod] = {}
        self.policies: tuple[ResourcePolicy, ...] = ()
        self.synced = synced
        self.ordinal_starts: dict[WorkloadKey, int] = {}
        """StatefulSet -> ``spec.ordinals.start``, only those that do not start at 0."""
        self.generation = 0
        """Bumped whenever a node is added, removed or changed: readers may cache per-node facts."""
        self.revision = 0
        """Bumped by every write (pods, nodes, policies, ordinal starts): a reader that saw the
        same revision of the same state saw the same cluster (``autoscaler.rebalance`` keeps its
        last empty answer by it)."""
        self._by_workload: dict[WorkloadKey, dict[str, Pod]] = defaultdict(dict)
        self._by_node: dict[str, dict[str, Pod]] = defaultdict(dict)
        self._pending: dict[str, Pod] = {}
        self.replace(nodes=nodes, pods=pods, policies=policies)

    # -- writers (the watch) -------------------------------------------------------------------
    def replace(
        self,
        *,
        nodes: Iterable[Node] | None = None,
        pods: Iterable[Pod] | None = None,
        policies: Iterable[ResourcePolicy] | None = None,
    ) -> None:
        """Replace whole kinds at once, as a relist does."""
        self.revision += 1
        if nodes is not None:
            self.nodes = {n.name: n for n in nodes}
            self.generation += 1
        if pods is not None:
            self.pods = {}
            self._by_workload.clear()
            self._by_node.clear()
            self._pending.clear()
            for pod in pods:
                self.upsert_pod(pod)
        if policies is not None:
            self.set_policies(policies)

    def set_ordinal_start(self, workload: WorkloadKey, start: int) -> None:
        self.revision += 1
        if start:
            self.ordinal_starts[workload] = start
        else:
            self.ordinal_starts.pop(workload, None)

    def set_policies(self, policies: Iterable[ResourcePolicy]) -> None:
        self.revision += 1
        self.policies = tuple(sorted(policies, key=lambda p: p.key))

    def upsert_policy(self, policy: ResourcePolicy) -> None:
        others = [p for p in self.policies if p.key != policy.key]
        self.set_policies([*others, policy])

    def remove_policy(self, key: str) -> None:
        self.set_policies(p for p in self.policies if p.key != key)

    def upsert_node(self, node: Node) -> None:
        self.revision += 1
        if self.nodes.get(node.name) != node:
            self.generation += 1
        self.nodes[node.name] = node

    def remove_node(self, name: str) -> None:
        self.revision += 1
        if self.nodes.pop(name, None) is not None:
            self.generation += 1

    def upsert_pod(self, pod: Pod) -> Pod | None:
        """Store a pod; returns the previous version."""
        self.revision += 1
        old = self.remove_pod(pod.uid)
        self.pods[pod.uid] = pod
        if pod.workload is not None:
            self._by_workload[pod.workload][pod.uid] = pod
        if pod.node_name:
            self._by_node[pod.node_name][pod.uid] = pod
        elif not pod.finished:
            self._pending[pod.uid] = pod
        return old

    def remove_pod(self, uid: str) -> Pod | None:
        self.revision += 1
        old = self.pods.pop(uid, None)
        if old is None:
            return None
        if old.workload is not None:
            members = self._by_workload.get(old.workload)
            if members is not None:
                members.pop(uid, None)
                if not members:
                    del self._by_workload[old.workload]
        if old.node_name:
            on_node = self._by_node.get(old.node_name)
            if on_node is not None:
                on_node.pop(uid, None)
                if not on_node:
                    del self._by_node[old.node_name]
        self._pending.pop(uid, None)
        return old

    # -- readers (the handlers) ----------------------------------------------------------------
    def workload_pods(self, workload: WorkloadKey) -> Iterable[Pod]:
        return self._by_workload.get(workload, {}).values()

    def pods_on(self, node_name: str) -> Iterable[Pod]:
        return self._by_node.get(node_name, {}).values()

    def pending_pods(self) -> Iterable[Pod]:
        return self._pending.values()

    def ordinal(self, pod: Pod) -> int | None:
        """The StatefulSet pod's ordinal counted from its StatefulSet's ``ordinals.start``."""
        ordinal = pod.ordinal
        if ordinal is None or not self.ordinal_starts or pod.workload is None:
            return ordinal
        return max(0, ordinal - self.ordinal_starts.get(pod.workload, 0))


_LISTS = ("nodes", "pods", "policies")


def load_cluster(
    path: str | Path, *, kind_settings: NodeKindSettings | None = None
) -> ClusterState:
    """A static cluster from YAML (or JSON, ``.json``): documents (or ``items``) of kind Node,
    Pod, ResourcePolicy and StatefulSet."""
    try:
        text = Path(path).read_text()
        if str(path).endswith(".json"):  # large generated clusters: JSON parses 50x faster
            docs = [json.loads(text)]
        else:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            docs = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ModelError(file_problem(path, err)) from None
    objects: list[Mapping[str, Any]] = []
    for doc in docs:
        if not isinstance(doc, Mapping):
            raise ModelError(f"{path}: every document must be an object")
        if isinstance(doc.get("items"), list):
            objects.extend(doc["items"])
        elif "kind" in doc:
            objects.append(doc)
        else:
            unknown = sorted(str(k) for k in doc if k not in _LISTS)
            if unknown:
                raise ModelError(
                    f"{path}: {unknown[0]}: not a cluster file (expected Kubernetes objects "
                    "with a kind, an items list, or nodes/pods/policies lists)"
                )
            for key in _LISTS:
                if not isinstance(doc.get(key) or [], list):
                    raise ModelError(f"{path}: {key}: expected a list of objects")
                objects.extend(doc.get(key) or ())
    if not objects:
        raise ModelError(f"{path}: no Node, Pod, ResourcePolicy or StatefulSet objects")
    nodes, pods, policies = [], [], []
    starts: list[tuple[WorkloadKey, int]] = []
    for i, obj in enumerate(objects):
        kind = obj.get("kind") if isinstance(obj, Mapping) else None
        try:
            if kind == "Node":
                nodes.append(node_from_dict(obj, kind_settings))
            elif kind == "Pod":
                pods.append(pod_from_dict(obj))
            elif kind == "ResourcePolicy":
                policies.append(policy_from_dict(obj))
            elif kind == "StatefulSet":
                starts.append(statefulset_start(obj))
            else:
                raise ModelError(
                    f"object {i}: kind must be Node, Pod, ResourcePolicy or StatefulSet, "
                    f"not {kind!r}"
                )
        except ValueError as err:
            raise ModelError(f"{path}: {err}") from None
    state = ClusterState(nodes=nodes, pods=pods, policies=policies)
    for workload, start in starts:
        state.set_ordinal_start(workload, start)
    return state
