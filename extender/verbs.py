"""The extender's verbs as pure functions over the cluster cache, the ledger and ``now``.

Each verb finds the pod's policy (``extender.policy.policy_for``), counts the workload's pods per
unit (bound pods plus ledger reservations, from the workload index: never a walk over all pods)
and asks ``extender.policy.decide``.  Outcomes are values the app encodes; nothing here knows
HTTP.

Speed: kube-scheduler offers up to every node of the cluster on every call, and a Python loop
over 5,000 names costs about a millisecond.  The offered nodes are therefore grouped by the unit
they belong to once per (unit layout, node generation, offered list) and the grouping is cached
(``Offers``): consecutive pods almost always see the same feasible list.  ``decide`` then runs on
one representative node per group, and its verdict for the representative is the verdict for the
whole group, because ``decide`` looks at nothing but each node's unit.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .ledger import Ledger, Reservation
from .model import (
    Node,
    NodeKind,
    NodeKindSettings,
    Pod,
    PodSpecFacts,
    Taint,
    WorkloadKey,
    is_daemon_or_static,
    node_from_dict,
    pod_from_dict,
)
from .policy import Decision, ResourcePolicy, decide, policy_for, unit_counts
from .snapshot import ClusterState
from .wire import Encodings, NameList, NameLists, decode_pod, decode_pod_parts

__all__ = [
    "FAILURE_POLICIES",
    "NOT_SYNCED_ERROR",
    "Caches",
    "FilterOutcome",
    "Offer",
    "PreemptOutcome",
    "PriorityOutcome",
    "filter_pod",
    "group_offer",
    "preempt",
    "prioritize",
    "record_bind",
    "unknown_node_reason",
]

NOT_SYNCED_ERROR = "spillover cache not synced yet; retrying"
FAILURE_POLICIES = ("pass", "error")

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


def unknown_node_reason(name: str) -> str:
    return f"node {name} is not in the extender's cache yet"


class _Lru(Generic[_K, _V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[_K, _V] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> _V:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class Offer:
    """The offered nodes grouped by the policy unit they belong to (``None``: in no unit)."""

    groups: Mapping[int | None, tuple[str, ...]]
    unknown: tuple[str, ...]
    representatives: tuple[Node, ...]

    def names(self, unit: int | None) -> tuple[str, ...]:
        return self.groups.get(unit, ())


def _layout(policy: ResourcePolicy) -> Hashable:
    """What ``unit_of`` depends on: each unit's resource and node selector, not its max."""
    return tuple((u.resource, tuple(sorted(u.node_selector.items()))) for u in policy.units)


_NO_UNIT = -1
_UNKNOWN = -2


def unit_index(policy: ResourcePolicy, nodes: Mapping[str, Node]) -> dict[str, int]:
    """Node name -> the policy's unit of that node (``-1``: in no unit), for every known node."""
    unit_of = policy.unit_of
    index: dict[str, int] = {}
    for name, node in nodes.items():
        unit = unit_of(node)
        index[name] = _NO_UNIT if unit is None else unit
    return index


def group_indexed(
    index: Mapping[str, int], names: Sequence[str], nodes: Mapping[str, Node]
) -> Offer:
    """``group_offer`` over the cache's nodes, with every node's unit looked up in ``index``
    (``unit_index`` of the same policy layout and nodes): the same ``Offer``, built by C-level
    passes over the names (one lookup pass, one selection pass per distinct unit) instead of a
    Python loop that asks each node's unit."""
    units = list(map(index.get, names, itertools.repeat(_UNKNOWN)))
    groups: dict[int | None, tuple[str, ...]] = {}
    reps: list[Node] = []
    unknown: tuple[str, ...] = ()
    distinct = dict.fromkeys(units)
    for unit in distinct:
        members = (
            tuple(names)
            if len(distinct) == 1
            else tuple(itertools.compress(names, map(unit.__eq__, units)))
        )
        if unit == _UNKNOWN:
            unknown = members
            continue
        groups[None if unit == _NO_UNIT else unit] = members
        reps.append(nodes[members[0]])
    return Offer(groups, unknown, tuple(reps))


def group_offer(
    policy: ResourcePolicy,
    names: Iterable[str],
    *,
    nodes: Mapping[str, Node],
    offered: Mapping[str, Node] | None = None,
) -> Offer:
    """Group offered names by unit; the cache's node wins over an offered Node object.  The
    names' units are looked up once each and grouped by ``group_indexed``, as the cache's
    memoised path groups them."""
    names = tuple(names)
    found: dict[str, Node] = {}
    index: dict[str, int] = {}
    unit_of = policy.unit_of
    for name in names:
        if name in found:
            continue
        node = nodes.get(name)
        if node is None and offered is not None:
            node = offered.get(name)
        if node is not None:
            unit = unit_of(node)
            found[name] = node
            index[name] = _NO_UNIT if unit is None else unit
    return group_indexed(index, names, found)


@dataclass(slots=True)
class Caches:
    """Every memo table of one extender app, in one place; every one is bounded.

    The app makes one (``extender.app``) and hands it to each verb.  A table never needs to be
    cleared by hand: its key changes when what it was computed from changes.

    ==============  =================================  ========================================
    table           key                                valid while / bound
    ==============  =================================  ========================================
    ``offers``      (policy's unit layout, node        the key holds the node generation and the
                    generation, offered ``NameList``)  list's identity; LRU of 32
    ``nodes``       (node name, resourceVersion)       a new version is a new key; LRU of 20,000
    ``pods``        pod uid                            a hit needs the very same body (``==``);
                                                       LRU of 1,024
    ``pod_bodies``  the Pod's exact JSON bytes         bytes are the key; LRU of 256
    ``pod_specs``   a Pod's exact ``spec`` JSON bytes  bytes are the key (only specs that parsed
                                                       without error); LRU of 256
    ``decisions``   pod uid                            filter's decision, reused by prioritize
                                                       for the same ``Pod`` on the same node
                                                       generation; LRU of 256
    policy index    ``state.policies`` (identity)      rebuilt when the cache's policy tuple is
                    then (namespace, labels)           replaced; matches cleared at 65,536
    ECI taints      node generation                    recomputed on a new generation
    unit indexes    node generation, then the policy's  node name -> unit, rebuilt on a new
                    unit layout                        generation; at most 64 layouts
    ``encodings``   identity of a tuple ``offers``     the entry keeps the tuple, so its id is
                    handed out (``wire.Encodings``)    never reused; FIFO of 64 lists/templates/
                                                       scores and 64 reason maps
    ``names``       the bytes of an offered list       the last 16 spellings
                    (``wire.NameLists``)
    ==============  =================================  ========================================
    """

    kind_settings: NodeKindSettings = field(default_factory=NodeKindSettings)
    offers: _Lru[Hashable, Offer] = field(default_factory=lambda: _Lru(32))
    nodes: _Lru[tuple[str, str], Node] = field(default_factory=lambda: _Lru(20_000))
    pods: _Lru[str, tuple[Mapping[str, object], Pod]] = field(default_factory=lambda: _Lru(1_024))
    pod_bodies: _Lru[bytes, Pod] = field(default_factory=lambda: _Lru(256))
    pod_specs: _Lru[bytes, PodSpecFacts] = field(default_factory=lambda: _Lru(256))
    decisions: _Lru[str, tuple[Pod, int, Decision]] = field(default_factory=lambda: _Lru(256))
    encodings: Encodings = field(default_factory=Encodings)
    names: NameLists = field(default_factory=NameLists)
    _policies: tuple[ResourcePolicy, ...] | None = None
    _by_namespace: dict[str, tuple[ResourcePolicy, ...]] = field(default_factory=dict)
    _matches: dict[Hashable, ResourcePolicy | None] = field(default_factory=dict)
    _eci_taints: tuple[int, tuple[Taint, ...]] = (-1, ())
    _unit_indexes: tuple[int, dict[Hashable, dict[str, int]]] = field(
        default_factory=lambda: (-1, {})
    )

    def eci_taints(self, state: ClusterState) -> tuple[Taint, ...]:
        """The distinct taints with the ECI taint key on the cache's ECI nodes (per generation)."""
        generation, taints = self._eci_taints
        if generation != state.generation:
            key = self.kind_settings.eci_taint_key
            found = {
                t
                for node in state.nodes.values()
                if node.kind is NodeKind.ECI
                for t in node.taints
                if t.key == key
            }
            taints = tuple(sorted(found, key=lambda t: (t.value, t.effect)))
            self._eci_taints = (state.generation, taints)
        return taints

    def policy(self, state: ClusterState, pod: Pod) -> ResourcePolicy | None:
        """``policy_for`` over only the pod's namespace (the index follows ``state.policies``)."""
        if state.policies is not self._policies:
            by_namespace: dict[str, list[ResourcePolicy]] = {}
            for p in state.policies:
                by_namespace.setdefault(p.namespace, []).append(p)
            self._by_namespace = {ns: tuple(ps) for ns, ps in by_namespace.items()}
            self._policies = state.policies
            self._matches.clear()
        if is_daemon_or_static(pod):  # not keyed by its labels: decided before the memo
            return None
        # The replicas of a workload share their labels: match each label set once.
        key = (pod.namespace, frozenset(pod.labels.items()))
        if key in self._matches:
            return self._matches[key]
        if len(self._matches) >= 65_536:
            self._matches.clear()
        found = self._matches[key] = policy_for(self._by_namespace.get(pod.namespace, ()), pod)
        return found

    def pod(self, raw: Mapping[str, object]) -> Pod:
        """``pod_from_dict`` memoised per UID while the body stays the same: filter then
        prioritize share it.  A different body under a known UID (new labels, or an invalid
        body) is parsed again, so it gets its own decision or its own 400."""
        meta = raw.get("metadata")
        uid = meta.get("uid") if isinstance(meta, Mapping) else None
        if not isinstance(uid, str) or not uid:
            return pod_from_dict(raw)
        cached = self.pods.get(uid)
        if cached is not None and cached[0] == raw:
            return cached[1]
        pod = pod_from_dict(raw)
        self.pods.put(uid, (raw, pod))
        return pod

    def node(self, load: Callable[[], Mapping[str, object]], *, name: str, version: str) -> Node:
        """``node_from_dict(load())`` memoised per (name, resourceVersion): ``load`` runs on a miss."""
        if not version:
            return node_from_dict(load(), self.kind_settings)
        cached = self.nodes.get((name, version))
        if cached is None:
            cached = self.nodes.put((name, version), node_from_dict(load(), self.kind_settings))
        return cached

    def offer(self, policy: ResourcePolicy, *, state: ClusterState, names: NameList) -> Offer:
        """The grouping of one offered name list, memoised per (unit layout, node generation).
        A list not seen before is grouped through the layout's unit index (``group_indexed``):
        kube-scheduler offers a new list, in a new order, on most calls."""
        layout = _layout(policy)
        key = (layout, state.generation, names)
        offer = self.offers.get(key)
        if offer is None:
            index = self._unit_index(layout, policy, state)
            offer = self.offers.put(key, group_indexed(index, names.names, state.nodes))
        return offer

    def _unit_index(
        self, layout: Hashable, policy: ResourcePolicy, state: ClusterState
    ) -> dict[str, int]:
        """``unit_index`` per unit layout, rebuilt on a new node generation."""
        generation, indexes = self._unit_indexes
        if generation != state.generation:
            indexes = {}
            self._unit_indexes = (state.generation, indexes)
        index = indexes.get(layout)
        if index is None:
            if len(indexes) >= 64:
                indexes.clear()
            index = indexes[layout] = unit_index(policy, state.nodes)
        return index

    def pod_json(self, raw: bytes) -> Pod:
        """``pod_from_dict`` of a Pod still in JSON, memoised by its exact bytes: on a hit
        (prioritize after filter, same body) it is not even decoded; a changed body is another
        key, so it gets its own decision or its own 400 (as with ``pod``)."""
        cached = self.pod_bodies.get(raw)
        if cached is None:
            cached = self.pod_bodies.put(raw, self._pod_from_json(raw))
        return cached

    def _pod_from_json(self, raw: bytes) -> Pod:
        """A new replica of a known template (its ``spec`` bytes seen before) costs only its
        metadata and status: the spec's facts are reused (``pod_specs``).  Anything else is
        decoded in full, as before, so the Pod and any error are the same."""
        parts = decode_pod_parts(raw)
        if parts is None:
            return pod_from_dict(decode_pod(raw))
        spec = bytes(parts.spec)
        facts = self.pod_specs.get(spec)
        if facts is None:  # decoded in full: UTF-8 and every field checked
            pod = pod_from_dict(decode_pod(raw))
            self.pod_specs.put(spec, PodSpecFacts.of(pod))
            return pod
        return pod_from_dict({"metadata": parts.metadata, "status": parts.status}, spec=facts)

    def remember(self, pod: Pod, generation: int, decision: Decision) -> None:
        """Filter's decision for ``pod``, reused by prioritize in the same scheduling cycle."""
        self.decisions.put(pod.uid, (pod, generation, decision))

    def recall(self, pod: Pod, generation: int) -> Decision | None:
        """The decision filter made for this very Pod (same body) on the same nodes, if any."""
        hit = self.decisions.get(pod.uid)
        if hit is None or hit[0] is not pod or hit[1] != generation:
            return None
        return hit[2]


@dataclass(frozen=True, slots=True)
class FilterOutcome:
    """A filter answer.  ``passed`` means: hand the offered nodes back unchanged."""

    passed: bool
    accepted: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)
    unresolvable: tuple[tuple[tuple[str, ...], str], ...] = ()
    """Groups of refused node names, each group with the one reason its nodes share."""
    error: str = ""
    unit: str = "unmanaged"
    reason: str = "unmanaged"
    detail: str = ""

    def unresolvable_map(self) -> dict[str, str]:
        return {name: why for names, why in self.unresolvable for name in names}


@dataclass(frozen=True, slots=True)
class PriorityOutcome:
    """Every host in ``hosts`` gets ``score``; hosts not listed score nothing."""

    hosts: tuple[str, ...] = ()
    score: int = 10
    unit: str = "unmanaged"

    @property
    def scores(self) -> dict[str, int]:
        return dict.fromkeys(self.hosts, self.score)


@dataclass(frozen=True, slots=True)
class PreemptOutcome:
    """Candidate nodes kept, each with its victims' UIDs and PDB violations."""

    kept: Mapping[str, tuple[tuple[str, ...], int]]
    dropped: Mapping[str, str] = field(default_factory=dict)


def _counts(
    policy: ResourcePolicy,
    pod: Pod,
    *,
    state: ClusterState,
    ledger: Ledger,
    now: float,
    workload: WorkloadKey,
    without: frozenset[str] = frozenset(),
) -> list[int]:
    pods: Iterable[Pod] = state.workload_pods(workload)
    if without:
        pods = [p for p in pods if p.uid not in without]
    reserved = ledger.reserved(workload, policy=policy.key, now=now)
    if without:
        reserved = {uid: u for uid, u in reserved.items() if uid not in without}
    return unit_counts(policy, pods=pods, nodes=state.nodes, reserved=reserved, exclude_uid=pod.uid)


def _workload(pod: Pod) -> WorkloadKey:
    return pod.workload or WorkloadKey(pod.namespace, "Pod", pod.name)


def _unit_label(policy: ResourcePolicy, unit: int | None) -> str:
    return "none" if unit is None else policy.units[unit].resource.value


def _reason_label(decision: Decision) -> str:
    if decision.unit is None:
        return "no_unit"
    if not decision.accepted:
        return "waiting"
    return "first_unit" if decision.unit == 0 else "overflow"


def _decide(
    policy: ResourcePolicy, pod: Pod, offer: Offer, counts: Sequence[int], *, ordinal: int | None
) -> tuple[Decision, tuple[str, ...], tuple[tuple[tuple[str, ...], str], ...]]:
    """``decide`` on one node per group, expanded back to every offered name."""
    decision = decide(policy, counts=counts, candidates=offer.representatives, ordinal=ordinal)
    accepted = offer.names(decision.unit) if decision.accepted else ()
    refused = []
    for rep in offer.representatives:
        why = decision.unresolvable.get(rep.name)
        if why is not None:
            refused.append((offer.names(policy.unit_of(rep)), why))
    return decision, accepted, tuple(refused)


def filter_pod(
    *,
    state: ClusterState,
    ledger: Ledger,
    caches: Caches,
    pod: Pod,
    offer: Callable[[ResourcePolicy], Offer],
    now: float,
    failure_policy: str = "error",
    reserve: bool = True,
) -> FilterOutcome:
    """The filter verb.  ``offer`` groups the offered nodes for a policy (called only if managed)."""
    if not state.synced:
        if failure_policy == "pass":
            return FilterOutcome(True, reason="not_synced", unit="none", detail=NOT_SYNCED_ERROR)
        return FilterOutcome(
            False, error=NOT_SYNCED_ERROR, reason="not_synced", unit="none", detail=NOT_SYNCED_ERROR
        )
    policy = caches.policy(state, pod)
    if policy is None:
        return FilterOutcome(True)
    grouped = offer(policy)
    failed = {name: unknown_node_reason(name) for name in grouped.unknown}
    if not grouped.representatives:
        return FilterOutcome(
            False,
            failed=failed,
            unit="none",
            reason="no_known_nodes",
            detail=f"policy {policy.key}: none of the offered nodes is in the cache yet",
        )
    workload = _workload(pod)
    counts = _counts(policy, pod, state=state, ledger=ledger, now=now, workload=workload)
    decision, accepted, refused = _decide(policy, pod, grouped, counts, ordinal=state.ordinal(pod))
    caches.remember(pod, state.generation, decision)
    if reserve and decision.placed and decision.unit is not None:
        ledger.reserve(
            uid=pod.uid, workload=workload, policy=policy.key, unit=decision.unit, now=now
        )
    return FilterOutcome(
        False,
        accepted=accepted,
        failed=failed,
        unresolvable=refused,
        unit=_unit_label(policy, decision.unit if decision.accepted else None),
        reason=_reason_label(decision),
        detail=decision.reason,
    )


def prioritize(
    *,
    state: ClusterState,
    ledger: Ledger,
    caches: Caches,
    pod: Pod,
    offer: Callable[[ResourcePolicy], Offer],
    now: float,
) -> PriorityOutcome:
    """Score 10 for the nodes of the unit the policy chooses, nothing (not 0) for the others.

    Nothing at all when every offered node is in that unit: a uniform score ranks nothing.
    """
    if not state.synced:
        return PriorityOutcome(unit="none")
    policy = caches.policy(state, pod)
    if policy is None:
        return PriorityOutcome()
    grouped = offer(policy)
    if not grouped.representatives:
        return PriorityOutcome(unit="none")
    # Filter's answer is one unit's nodes, and kube-scheduler offers prioritize just those: every
    # offered node would get the same score, a constant that changes no ranking, so the answer
    # is empty (no thousands of names to encode and send) and filter's decision, made moments
    # ago for this very Pod body, names the unit.  Anything else is decided afresh.
    single = len(grouped.groups) == 1 and not grouped.unknown
    decision = caches.recall(pod, state.generation) if single else None
    if decision is None:
        workload = _workload(pod)
        counts = _counts(policy, pod, state=state, ledger=ledger, now=now, workload=workload)
        decision = decide(
            policy, counts=counts, candidates=grouped.representatives, ordinal=state.ordinal(pod)
        )
    accepted = grouped.names(decision.unit) if decision.accepted and not single else ()
    return PriorityOutcome(
        accepted,
        unit=_unit_label(policy, decision.unit if decision.accepted else None),
    )


def preempt(
    *,
    state: ClusterState,
    ledger: Ledger,
    caches: Caches,
    pod: Pod,
    candidates: Mapping[str, tuple[tuple[str, ...], int]],
    now: float,
) -> PreemptOutcome:
    """Keep the candidates whose victims' removal lets the policy put the preemptor there.

    For each candidate node: the workload's own victims on that node are taken out of the counts
    (and the ledger), then the policy decides over that node alone; the node is kept only if the
    policy accepts it.  Unmanaged pods, or an unsynced cache, keep every candidate.
    """
    if not state.synced:
        return PreemptOutcome(dict(candidates))
    policy = caches.policy(state, pod)
    if policy is None:
        return PreemptOutcome(dict(candidates))
    workload = _workload(pod)
    kept: dict[str, tuple[tuple[str, ...], int]] = {}
    dropped: dict[str, str] = {}
    for name, (victims, violations) in candidates.items():
        node = state.nodes.get(name)
        if node is None:
            dropped[name] = unknown_node_reason(name)
            continue
        own = frozenset(
            uid
            for uid in victims
            if (victim := state.pods.get(uid)) is not None and victim.workload == workload
        )
        counts = _counts(
            policy, pod, state=state, ledger=ledger, now=now, workload=workload, without=own
        )
        decision = decide(policy, counts=counts, candidates=(node,), ordinal=state.ordinal(pod))
        if decision.accepted:
            kept[name] = (victims, violations)
        else:
            dropped[name] = decision.unresolvable.get(name, decision.reason)
    return PreemptOutcome(kept, dropped)


def record_bind(*, ledger: Ledger, uid: str, node: str, now: float) -> Reservation | None:
    """After a successful bind, pin the pod's reservation to the exact node (if it has one)."""
    current = ledger.get(uid)
    if current is None:
        return None
    return ledger.reserve(
        uid=uid,
        workload=current.workload,
        policy=current.policy,
        unit=current.unit,
        now=now,
        node=node,
    )
