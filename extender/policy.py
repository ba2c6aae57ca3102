"""The placement policy: the one copy of keep-N-on-ECS / overflow-to-ECI, shared by every driver.

``decide`` is a pure function of the policy, how many of the workload's pods each unit already
holds (bound pods plus reservations), and the candidate nodes kube-scheduler offered.  It walks the
units in order and takes the first one that is below its ``max`` and has a candidate node in this
call (``LackResourceOrExceedMax``), or the first one below its ``max`` whether or not it has a
candidate (``ExceedMax``: never overflow for lack of room; the pod waits).  StatefulSet pods are
placed by ordinal instead of by count: ordinal ``i`` belongs to the unit whose cumulative ``max``
first exceeds ``i``, so StatefulSet scale-in (highest ordinal first) is shrink-ECI-first by
construction.  Every node that is not accepted gets a reason; policy refusals are
*unresolvable* (preempting pods there would not help).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .model import Node, NodeKind, Pod, is_daemon_or_static
from .selectors import LabelSelector

__all__ = [
    "MAX_UNITS",
    "Decision",
    "ResourcePolicy",
    "TryNext",
    "Unit",
    "decide",
    "policy_for",
    "unit_counts",
]


MAX_UNITS = 16
"""As the CRD's ``maxItems``."""


class TryNext(enum.Enum):
    LACK_RESOURCE_OR_EXCEED_MAX = "LackResourceOrExceedMax"
    EXCEED_MAX = "ExceedMax"


@dataclass(frozen=True, slots=True)
class Unit:
    """One ordered place a workload may use: ECS nodes (optionally narrowed by labels) or ECI."""

    resource: NodeKind
    max: int | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)

    def contains(self, node: Node) -> bool:
        if node.kind is not self.resource:
            return False
        selector = self.node_selector
        if not selector:  # most units: no labels to match (asked ~50 times per planner pass)
            return True
        labels = node.labels
        return all(labels.get(k) == v for k, v in selector.items())

    def describe(self, index: int) -> str:
        return f"unit {index} ({self.resource.value})"


@dataclass(frozen=True, slots=True)
class ResourcePolicy:
    name: str
    namespace: str
    selector: LabelSelector
    units: tuple[Unit, ...]
    when_try_next: TryNext = TryNext.LACK_RESOURCE_OR_EXCEED_MAX
    ignore_terminating_pods: bool = True

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def has_eci(self) -> bool:
        """Some ECI unit can hold a pod (``max: 0`` holds none)."""
        return any(u.resource is NodeKind.ECI and u.max != 0 for u in self.units)

    @property
    def has_ecs(self) -> bool:
        """Some ECS unit can hold a pod (``max: 0`` holds none)."""
        return any(u.resource is NodeKind.ECS and u.max != 0 for u in self.units)

    def selects(self, pod: Pod) -> bool:
        return pod.namespace == self.namespace and self.selector.matches(pod.labels)

    def unit_of(self, node: Node) -> int | None:
        """The first unit the node belongs to, or ``None``."""
        for i, unit in enumerate(self.units):
            if unit.contains(node):
                return i
        return None

    def counts(self, pod: Pod) -> bool:
        """Whether a live pod of the workload takes a slot of its unit."""
        if pod.finished:
            return False
        return not (pod.terminating and self.ignore_terminating_pods)


class Decision:
    """Where the policy puts one pod: a unit, the offered nodes in it, and why others were refused.

    ``no_room``: a unit before the chosen one was passed over only because none of its offered
    nodes could take the pod (it was under its ``max``), so the pod goes further down the list
    for lack of room, not because the policy caps the unit.

    ``reason`` and ``unresolvable`` are put in words when first read, from the facts ``decide``
    kept (most callers in the autoscaler read neither).  Immutable; equal when every field
    (words included) is."""

    __slots__ = ("_facts", "_words", "accepted", "no_room", "unit")

    def __init__(
        self,
        unit: int | None,
        accepted: tuple[str, ...],
        no_room: bool,
        facts: _Facts,
    ) -> None:
        self.unit = unit
        self.accepted = accepted
        self.no_room = no_room
        self._facts = facts
        self._words: tuple[str, Mapping[str, str]] | None = None

    @property
    def reason(self) -> str:
        return (self._words or self._say())[0]

    @property
    def unresolvable(self) -> Mapping[str, str]:
        return (self._words or self._say())[1]

    @property
    def placed(self) -> bool:
        return self.unit is not None and bool(self.accepted)

    def _fields(self) -> tuple[object, ...]:
        return (self.unit, self.accepted, self.unresolvable, self.reason, self.no_room)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # its words hold a dict: unhashable, as before

    def __repr__(self) -> str:
        unit, accepted, unresolvable, reason, no_room = self._fields()
        return (
            f"Decision(unit={unit!r}, accepted={accepted!r}, unresolvable={unresolvable!r}, "
            f"reason={reason!r}, no_room={no_room!r})"
        )

    def _say(self) -> tuple[str, Mapping[str, str]]:
        policy, candidates, unit_of, skipped, ordinal = self._facts
        chosen = self.unit
        where = f"policy {policy.key}"
        said = []
        for i, at_max, used in skipped:
            unit = policy.units[i]
            if ordinal is not None:
                usage = f"ordinal {ordinal}"
            else:
                usage = f"{used}/{'∞' if unit.max is None else unit.max} used"
            if at_max:
                said.append(f"{unit.describe(i)} is at its max ({usage})")
            else:
                said.append(f"{unit.describe(i)} has no feasible node in this call ({usage})")
        if chosen is None:
            why = f"{where}: no unit can take the pod: " + "; ".join(said)
            words: tuple[str, Mapping[str, str]] = (why, {n.name: why for n in candidates})
            self._words = words
            return words
        target = policy.units[chosen].describe(chosen)
        if self.accepted:
            reason = f"{where}: {target}" + (" after " + "; ".join(said) if said else "")
        else:
            reason = (
                f"{where}: waits for {target} (whenTryNextUnits=ExceedMax), none of its nodes "
                "is feasible in this call"
            )
        unresolvable: dict[str, str] = {}
        for node, index in zip(candidates, unit_of, strict=True):
            if index == chosen:
                continue
            if index is None:
                unresolvable[node.name] = f"{where}: node is in none of the policy's units"
            else:
                other = policy.units[index].describe(index)
                unresolvable[node.name] = f"{where}: pod belongs on {target}, not {other}"
        words = (reason, unresolvable)
        self._words = words
        return words


# What ``Decision`` puts in words: the policy, the candidates and each one's unit, the units
# passed over in order as (index, at its max, its count then), and the ordinal.
_Facts = tuple[
    "ResourcePolicy",
    tuple[Node, ...],
    list[int | None],
    list[tuple[int, bool, int]],
    int | None,
]


def policy_for(policies: Iterable[ResourcePolicy], pod: Pod) -> ResourcePolicy | None:
    """The policy that manages a pod: of several matches, the first by namespace/name (stable).

    DaemonSet and static pods are never managed: they belong on their own node.
    """
    if is_daemon_or_static(pod):
        return None
    best: ResourcePolicy | None = None
    for policy in policies:
        if policy.selects(pod) and (best is None or policy.key < best.key):
            best = policy
    return best


def unit_counts(
    policy: ResourcePolicy,
    *,
    pods: Iterable[Pod],
    nodes: Mapping[str, Node],
    reserved: Mapping[str, int],
    exclude_uid: str = "",
) -> list[int]:
    """Pods per unit: bound live pods plus reservations (pod UID -> unit) not yet seen bound.

    A pod bound to a node the cache does not know yet is counted by its reservation (if it has
    one): its unit cannot be told from the node.
    """
    counts = [0] * len(policy.units)
    bound: set[str] = set()
    for pod in pods:
        if pod.uid == exclude_uid or not pod.node_name:
            continue
        if not policy.counts(pod):
            bound.add(pod.uid)
            continue
        node = nodes.get(pod.node_name)
        if node is None:
            continue
        bound.add(pod.uid)
        unit = policy.unit_of(node)
        if unit is not None:
            counts[unit] += 1
    for uid, unit in reserved.items():
        if uid != exclude_uid and uid not in bound and 0 <= unit < len(counts):
            counts[unit] += 1
    return counts


def decide(
    policy: ResourcePolicy,
    *,
    counts: Sequence[int],
    candidates: Sequence[Node],
    ordinal: int | None = None,
) -> Decision:
    """Choose the unit for one pod among the offered candidate nodes."""
    unit_of = [policy.unit_of(node) for node in candidates]
    chosen: int | None = None
    skipped: list[tuple[int, bool, int]] = []  # put in words by ``Decision`` when read
    no_room = False
    limit = 0
    unlimited = False
    for i, unit in enumerate(policy.units):
        if unit.max is None:
            unlimited = True
        else:
            limit += unit.max
        if ordinal is not None:
            under_max = unlimited or ordinal < limit
        else:
            under_max = unit.max is None or counts[i] < unit.max
        if not under_max:
            skipped.append((i, True, counts[i] if ordinal is None else 0))
            continue
        if i in unit_of or policy.when_try_next is TryNext.EXCEED_MAX:
            chosen = i
            break
        skipped.append((i, False, counts[i] if ordinal is None else 0))
        no_room = True
    offered = tuple(candidates)
    facts = (policy, offered, unit_of, skipped, ordinal)
    if chosen is None:
        return Decision(None, (), False, facts)
    accepted = tuple(n.name for n, u in zip(offered, unit_of, strict=True) if u == chosen)
    return Decision(chosen, accepted, no_room, facts)
