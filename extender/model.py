"""The cluster as the placement policy sees it: resources, pods, nodes and workloads.

Raw Kubernetes JSON (``dict``) enters only through ``pod_from_dict`` / ``node_from_dict``; the
rest of the code speaks these frozen dataclasses.  Pod requests follow kube-scheduler's
``PodRequests``: the larger of (app containers + restartable init containers) and every regular
init container (plus the sidecars started before it), then pod overhead; pod-level
``spec.resources.requests`` win for cpu and memory when set.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .quantity import QuantityError, milli_value, value

__all__ = [
    "GPU_RESOURCE",
    "MIRROR_ANNOTATION",
    "ModelError",
    "Node",
    "NodeKind",
    "NodeKindSettings",
    "OwnerRef",
    "Pod",
    "PodSpecFacts",
    "Resources",
    "Taint",
    "Toleration",
    "WorkloadKey",
    "is_daemon_or_static",
    "node_from_dict",
    "node_kind",
    "parse_resources",
    "pod_from_dict",
    "pod_requests",
    "statefulset_start",
    "workload_of",
]

GPU_RESOURCE = "nvidia.com/gpu"


class ModelError(ValueError):
    """Raw Kubernetes JSON that cannot be understood; the message names the field."""


@dataclass(frozen=True, slots=True)
class Resources:
    """Amounts of the resources Spillover schedules on; GPUs in thousandths (``gpu_milli``)."""

    cpu_milli: int = 0
    memory: int = 0
    pods: int = 0
    gpu_milli: int = 0
    ephemeral_storage: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_milli + other.cpu_milli,
            self.memory + other.memory,
            self.pods + other.pods,
            self.gpu_milli + other.gpu_milli,
            self.ephemeral_storage + other.ephemeral_storage,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_milli - other.cpu_milli,
            self.memory - other.memory,
            self.pods - other.pods,
            self.gpu_milli - other.gpu_milli,
            self.ephemeral_storage - other.ephemeral_storage,
        )

    def max(self, other: Resources) -> Resources:
        return Resources(
            max(self.cpu_milli, other.cpu_milli),
            max(self.memory, other.memory),
            max(self.pods, other.pods),
            max(self.gpu_milli, other.gpu_milli),
            max(self.ephemeral_storage, other.ephemeral_storage),
        )

    def fits_in(self, capacity: Resources) -> bool:
        return (
            self.cpu_milli <= capacity.cpu_milli
            and self.memory <= capacity.memory
            and self.pods <= capacity.pods
            and self.gpu_milli <= capacity.gpu_milli
            and self.ephemeral_storage <= capacity.ephemeral_storage
        )


def parse_resources(raw: Mapping[str, Any] | None, *, where: str) -> Resources:
    """Resources from a ``requests`` / ``allocatable`` map; unknown resource names are ignored."""
    if not raw:
        return Resources()
    if not isinstance(raw, Mapping):
        raise ModelError(f"{where}: expected a map of resource quantities")
    try:
        return Resources(
            cpu_milli=milli_value(raw["cpu"]) if "cpu" in raw else 0,
            memory=value(raw["memory"]) if "memory" in raw else 0,
            pods=value(raw["pods"]) if "pods" in raw else 0,
            gpu_milli=milli_value(raw[GPU_RESOURCE]) if GPU_RESOURCE in raw else 0,
            ephemeral_storage=value(raw["ephemeral-storage"]) if "ephemeral-storage" in raw else 0,
        )
    except QuantityError as err:
        raise ModelError(f"{where}.{_bad_quantity(raw)}: {err}") from None


def _bad_quantity(raw: Mapping[str, Any]) -> str:
    """The name of the first resource whose quantity does not parse (the error path only)."""
    for key in ("cpu", "memory", "pods", GPU_RESOURCE, "ephemeral-storage"):
        try:
            if key in raw:
                value(raw[key])
        except QuantityError:
            return key
    return "?"


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        """``v1.Toleration.ToleratesTaint``: empty effect matches all, empty key with Exists all keys."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.operator in ("Equal", "") and self.value == taint.value


@dataclass(frozen=True, slots=True)
class OwnerRef:
    kind: str
    name: str
    uid: str = ""


@dataclass(frozen=True, slots=True, order=True)
class WorkloadKey:
    """The top controller of a pod: ``Deployment``, ``StatefulSet``, ``Job``, ``ReplicaSet`` or ``Pod``."""

    namespace: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


class NodeKind(enum.Enum):
    ECS = "ecs"
    ECI = "eci"


@dataclass(frozen=True, slots=True)
class NodeKindSettings:
    """How an ECI virtual node is recognised: a label or a taint key (both configurable)."""

    eci_label_key: str = "type"
    eci_label_value: str = "virtual-kubelet"
    eci_taint_key: str = "virtual-kubelet.io/provider"


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    allocatable: Resources = Resources()
    kind: NodeKind = NodeKind.ECS
    unschedulable: bool = False
    ready: bool = True
    created: float = 0.0
    provider_id: str = ""


@dataclass(frozen=True, slots=True)
class Pod:
    uid: str
    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    requests: Resources = Resources(pods=1)
    owner: OwnerRef | None = None
    node_name: str = ""
    phase: str = "Pending"
    terminating: bool = False
    tolerations: tuple[Toleration, ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    required_affinity: tuple[tuple[tuple[str, str, tuple[str, ...]], ...], ...] = ()
    priority: int = 0
    scheduler_name: str = "default-scheduler"
    nominated_node: str = ""
    created: float = 0.0
    workload: WorkloadKey | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def ordinal(self) -> int | None:
        """The StatefulSet ordinal, from ``apps.kubernetes.io/pod-index`` or the name suffix."""
        if self.owner is None or self.owner.kind != "StatefulSet":
            return None
        index = self.labels.get("apps.kubernetes.io/pod-index")
        if index is not None and _is_ascii_number(index):
            return int(index)
        prefix = self.owner.name + "-"
        suffix = self.name[len(prefix) :] if self.name.startswith(prefix) else ""
        return int(suffix) if _is_ascii_number(suffix) else None

    def placed(self, node_name: str, phase: str) -> Pod:
        """This pod bound to ``node_name`` (``""``: unbound) in ``phase``; every other field kept.

        ``dataclasses.replace`` without its per-field overhead (the replay moves pods millions of
        times).  A field added to ``Pod`` must be added here too; a test checks every field.
        """
        return Pod(
            uid=self.uid,
            name=self.name,
            namespace=self.namespace,
            labels=self.labels,
            annotations=self.annotations,
            requests=self.requests,
            owner=self.owner,
            node_name=node_name,
            phase=phase,
            terminating=self.terminating,
            tolerations=self.tolerations,
            node_selector=self.node_selector,
            required_affinity=self.required_affinity,
            priority=self.priority,
            scheduler_name=self.scheduler_name,
            nominated_node=self.nominated_node,
            created=self.created,
            workload=self.workload,
        )


@dataclass(frozen=True, slots=True)
class PodSpecFacts:
    """What ``pod_from_dict`` reads from a Pod's ``spec``: a function of the spec alone (the
    pod's name appears only in error messages), so the replicas of one template share it and
    the extender memoises it by the spec's exact JSON bytes (``extender.verbs.Caches``)."""

    requests: Resources
    node_name: str
    tolerations: tuple[Toleration, ...]
    node_selector: Mapping[str, str]
    required_affinity: tuple[tuple[tuple[str, str, tuple[str, ...]], ...], ...]
    priority: int
    scheduler_name: str

    @classmethod
    def of(cls, pod: Pod) -> PodSpecFacts:
        return cls(
            pod.requests,
            pod.node_name,
            pod.tolerations,
            pod.node_selector,
            pod.required_affinity,
            pod.priority,
            pod.scheduler_name,
        )


def _is_ascii_number(text: str) -> bool:
    """Kubernetes writes ordinals in ASCII; ``str.isdigit`` also takes "²", which ``int`` refuses."""
    return text.isascii() and text.isdigit()


MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_PER_NODE_OWNERS = frozenset({"DaemonSet", "Node"})


def is_daemon_or_static(pod: Pod) -> bool:
    """A DaemonSet pod, or a static pod (its mirror pod, owned by the Node): bound to its node.

    Such pods go where their node is, whatever a policy's selector says: the extender, the
    webhook, the deletion-cost reconciler and the autoscaler all leave them alone.
    """
    owner = pod.owner
    if owner is not None and owner.kind in _PER_NODE_OWNERS:
        return True
    return MIRROR_ANNOTATION in pod.annotations


def node_kind(
    labels: Mapping[str, str], taints: Sequence[Taint], settings: NodeKindSettings
) -> NodeKind:
    if labels.get(settings.eci_label_key) == settings.eci_label_value:
        return NodeKind.ECI
    if any(t.key == settings.eci_taint_key for t in taints):
        return NodeKind.ECI
    return NodeKind.ECS


def workload_of(
    namespace: str, name: str, owner: OwnerRef | None, labels: Mapping[str, str]
) -> WorkloadKey:
    """The pod's workload through its controller reference, without an API call.

    A ReplicaSet named ``<deployment>-<pod-template-hash>`` (the hash is also the pod's
    ``pod-template-hash`` label) belongs to that Deployment.
    """
    if owner is None:
        return WorkloadKey(namespace, "Pod", name)
    if owner.kind == "ReplicaSet":
        template_hash = labels.get("pod-template-hash", "")
        suffix = "-" + template_hash
        if template_hash and owner.name.endswith(suffix) and len(owner.name) > len(suffix):
            return WorkloadKey(namespace, "Deployment", owner.name[: -len(suffix)])
    return WorkloadKey(namespace, owner.kind, owner.name)


def pod_requests(spec: Mapping[str, Any], *, where: str = "pod") -> Resources:
    """kube-scheduler's effective pod request (``resourcehelper.PodRequests``), with one pod slot.

    Summed as plain (cpu, memory, gpu, ephemeral storage) tuples, one ``Resources`` at the end:
    the extender parses a new pod on every filter.  A container's ``pods`` request never counts
    (the pod takes one slot)."""
    total = _ZERO
    for i, c in enumerate(_list(spec.get("containers"), f"{where}.spec.containers")):
        total = _add(total, _amounts(_container_requests(c, f"{where}.spec.containers[{i}]")))
    sidecars = _ZERO
    init_max = _ZERO
    for i, raw in enumerate(_list(spec.get("initContainers"), f"{where}.spec.initContainers")):
        c = _map(raw, f"{where}.spec.initContainers[{i}]")
        req = _amounts(_container_requests(c, f"{where}.spec.initContainers[{i}]"))
        if c.get("restartPolicy") == "Always":
            sidecars = _add(sidecars, req)
            init_max = _max(init_max, sidecars)
        else:
            init_max = _max(init_max, _add(sidecars, req))
    cpu, memory, gpu, storage = _max(_add(total, sidecars), init_max)
    pod_level = spec.get("resources")
    if isinstance(pod_level, Mapping) and pod_level.get("requests"):
        level = parse_resources(pod_level["requests"], where=f"{where}.spec.resources.requests")
        cpu, memory = level.cpu_milli or cpu, level.memory or memory
    overhead = parse_resources(spec.get("overhead"), where=f"{where}.spec.overhead")
    return Resources(
        cpu + overhead.cpu_milli,
        memory + overhead.memory,
        1,
        gpu + overhead.gpu_milli,
        storage + overhead.ephemeral_storage,
    )


_Amounts = tuple[int, int, int, int]
_ZERO: _Amounts = (0, 0, 0, 0)


def _amounts(r: Resources) -> _Amounts:
    return r.cpu_milli, r.memory, r.gpu_milli, r.ephemeral_storage


def _add(a: _Amounts, b: _Amounts) -> _Amounts:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]


def _max(a: _Amounts, b: _Amounts) -> _Amounts:
    return max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def pod_from_dict(raw: Mapping[str, Any], *, spec: PodSpecFacts | None = None) -> Pod:
    """A ``Pod`` from its Kubernetes JSON; raises ``ModelError`` naming the bad field.

    ``spec``: the facts this function read from an equal ``spec`` before (``raw["spec"]`` is
    then not read): the same ``Pod``, the spec's work skipped."""
    if not isinstance(raw, Mapping):
        raise ModelError("Pod: expected a JSON object")
    meta = _map(raw.get("metadata"), "Pod.metadata")
    spec_raw = _map(raw.get("spec"), "Pod.spec") if spec is None else {}
    status = _map(raw.get("status"), "Pod.status")
    name = _str(meta.get("name"), "Pod.metadata.name")
    namespace = _str(meta.get("namespace") or "default", "Pod.metadata.namespace")
    where = f"Pod {namespace}/{name}"
    labels = _str_map(meta.get("labels"), f"{where}: metadata.labels")
    owner = _controller(meta.get("ownerReferences"), where)
    # the checks run in this order (the first bad field is the one named), annotations between
    # the spec's priority and its requests
    head = _spec_head(spec_raw, where) if spec is None else ((), 0)
    annotations = _str_map(meta.get("annotations"), f"{where}: metadata.annotations")
    if spec is None:
        spec = _spec_facts(spec_raw, where, *head)
    return Pod(
        uid=str(meta.get("uid") or f"{namespace}/{name}"),
        name=name,
        namespace=namespace,
        labels=labels,
        annotations=annotations,
        requests=spec.requests,
        owner=owner,
        node_name=spec.node_name,
        phase=str(status.get("phase") or "Pending"),
        terminating=meta.get("deletionTimestamp") is not None,
        tolerations=spec.tolerations,
        node_selector=spec.node_selector,
        required_affinity=spec.required_affinity,
        priority=spec.priority,
        scheduler_name=spec.scheduler_name,
        nominated_node=str(status.get("nominatedNodeName") or ""),
        created=_timestamp(meta.get("creationTimestamp")),
        workload=workload_of(namespace, name, owner, labels),
    )


def _spec_head(spec: Mapping[str, Any], where: str) -> tuple[tuple[Toleration, ...], int]:
    tolerations = tuple(
        Toleration(
            key=str(t.get("key") or ""),
            operator=str(t.get("operator") or "Equal"),
            value=str(t.get("value") or ""),
            effect=str(t.get("effect") or ""),
        )
        for t in _maps(spec.get("tolerations"), f"{where}: spec.tolerations")
    )
    priority = spec.get("priority") or 0
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ModelError(f"{where}: spec.priority must be an integer")
    return tolerations, priority


def _spec_facts(
    spec: Mapping[str, Any], where: str, tolerations: tuple[Toleration, ...], priority: int
) -> PodSpecFacts:
    return PodSpecFacts(
        requests=pod_requests(spec, where=where),
        node_name=str(spec.get("nodeName") or ""),
        tolerations=tolerations,
        node_selector=_str_map(spec.get("nodeSelector"), f"{where}: spec.nodeSelector"),
        required_affinity=_required_affinity(spec.get("affinity"), where),
        priority=priority,
        scheduler_name=str(spec.get("schedulerName") or "default-scheduler"),
    )


def statefulset_start(raw: Mapping[str, Any]) -> tuple[WorkloadKey, int]:
    """A StatefulSet's workload and its first ordinal (``spec.ordinals.start``, default 0)."""
    if not isinstance(raw, Mapping):
        raise ModelError("StatefulSet: expected a JSON object")
    meta = _map(raw.get("metadata"), "StatefulSet.metadata")
    name = _str(meta.get("name"), "StatefulSet.metadata.name")
    namespace = _str(meta.get("namespace") or "default", "StatefulSet.metadata.namespace")
    spec = _map(raw.get("spec"), f"StatefulSet {namespace}/{name}: spec")
    ordinals = _map(spec.get("ordinals"), f"StatefulSet {namespace}/{name}: spec.ordinals")
    start = ordinals.get("start") or 0
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise ModelError(
            f"StatefulSet {namespace}/{name}: spec.ordinals.start must be a non-negative integer"
        )
    return WorkloadKey(namespace, "StatefulSet", name), start


def node_from_dict(raw: Mapping[str, Any], settings: NodeKindSettings | None = None) -> Node:
    """A ``Node`` from its Kubernetes JSON; raises ``ModelError`` naming the bad field."""
    if not isinstance(raw, Mapping):
        raise ModelError("Node: expected a JSON object")
    meta = _map(raw.get("metadata"), "Node.metadata")
    spec = _map(raw.get("spec"), "Node.spec")
    status = _map(raw.get("status"), "Node.status")
    name = _str(meta.get("name"), "Node.metadata.name")
    where = f"Node {name}"
    labels = _str_map(meta.get("labels"), f"{where}: metadata.labels")
    taints = tuple(
        Taint(str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
        for t in _maps(spec.get("taints"), f"{where}: spec.taints")
    )
    conditions = _maps(status.get("conditions"), f"{where}: status.conditions")
    ready = all(c.get("status") == "True" for c in conditions if c.get("type") == "Ready")
    allocatable = status.get("allocatable") or status.get("capacity")
    return Node(
        name=name,
        labels=labels,
        taints=taints,
        allocatable=parse_resources(allocatable, where=f"{where}: status.allocatable"),
        kind=node_kind(labels, taints, settings or NodeKindSettings()),
        unschedulable=bool(spec.get("unschedulable")),
        ready=ready,
        created=_timestamp(meta.get("creationTimestamp")),
        provider_id=str(spec.get("providerID") or ""),
    )


def _container_requests(container: Any, where: str) -> Resources:
    c = _map(container, where)
    resources = _map(c.get("resources"), f"{where}.resources")
    # kube-apiserver defaults requests to limits; kube-scheduler sees the defaulted object.
    requests = dict(_map(resources.get("limits"), f"{where}.resources.limits"))
    requests.update(_map(resources.get("requests"), f"{where}.resources.requests"))
    return parse_resources(requests, where=f"{where}.resources.requests")


def _controller(raw: Any, where: str) -> OwnerRef | None:
    refs = _list(raw, f"{where}: metadata.ownerReferences")
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("controller"):
            return OwnerRef(
                str(ref.get("kind") or ""), str(ref.get("name") or ""), str(ref.get("uid") or "")
            )
    for ref in refs:
        if isinstance(ref, Mapping):
            return OwnerRef(
                str(ref.get("kind") or ""), str(ref.get("name") or ""), str(ref.get("uid") or "")
            )
    return None


def _required_affinity(
    raw: Any, where: str
) -> tuple[tuple[tuple[str, str, tuple[str, ...]], ...], ...]:
    affinity = _map(raw, f"{where}: spec.affinity")
    node_affinity = _map(affinity.get("nodeAffinity"), f"{where}: spec.affinity.nodeAffinity")
    required = _map(
        node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"),
        f"{where}: requiredDuringSchedulingIgnoredDuringExecution",
    )
    terms = []
    for term in _list(required.get("nodeSelectorTerms"), f"{where}: nodeSelectorTerms"):
        exprs = tuple(
            (
                str(e.get("key") or ""),
                str(e.get("operator") or ""),
                tuple(str(v) for v in _list(e.get("values"), f"{where}: matchExpressions.values")),
            )
            for e in _maps(
                _map(term, f"{where}: nodeSelectorTerm").get("matchExpressions"),
                f"{where}: nodeSelectorTerms.matchExpressions",
            )
        )
        terms.append(exprs)
    return tuple(terms)


def _timestamp(raw: Any) -> float:
    if not isinstance(raw, str) or not raw:
        return 0.0
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _map(raw: Any, where: str) -> Mapping[str, Any]:
    if type(raw) is dict:  # decoded JSON: skip the slower ABC check
        return raw
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ModelError(f"{where}: expected an object, got {type(raw).__name__}")
    return raw


def _list(raw: Any, where: str) -> Sequence[Any]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ModelError(f"{where}: expected a list, got {type(raw).__name__}")
    return raw


def _maps(raw: Any, where: str) -> list[Mapping[str, Any]]:
    """A list of objects (tolerations, taints, conditions); each item must be an object."""
    return [_map(item, f"{where}[{i}]") for i, item in enumerate(_list(raw, where))]


def _str(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise ModelError(f"{where}: expected a non-empty string")
    return raw


def _str_map(raw: Any, where: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in _map(raw, where).items()}
