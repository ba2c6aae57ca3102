"""What every planner pass reads: the cluster, the groups and their new-node templates, once.

A ``Context`` is built once per ``planner.plan`` call and shared by the demand, scale-up,
predictive and scale-down passes.  It maps nodes to groups (by the provider's member list, then
by the node-group label), counts registered and upcoming nodes, and caches what is expensive to
recompute per pod: pod classes (pods that match nodes the same way) and, per class, policy unit
and node list, which nodes they may use.  Nothing in it changes after construction except those
caches, so the passes may run in any order over it.  What is kept from one pass to the next is
in ``PlannerMemo``, whose docstring lists every memo table of the planner and its rule.

``Growth`` is what scale-up and the predictive pass add to one group; the planner turns it into
a ``ScaleUp``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar, cast

import numpy as np
import numpy.typing as npt

from extender.model import Node, NodeKind, Pod, Resources, is_daemon_or_static
from extender.policy import Decision, ResourcePolicy, decide, policy_for
from extender.selectors import can_hold, why_not_held
from extender.snapshot import ClusterState

from .eviction import blocker
from .nodegroup import NodeGroup, PlannerSettings
from .state import GroupState

__all__ = [
    "Context",
    "Growth",
    "IntArray",
    "PlannerMemo",
    "PodClass",
    "Usage",
    "by_identity",
    "fmt_time",
    "policy_of",
    "vector",
]

IntArray = npt.NDArray[np.int64]
_P = ParamSpec("_P")
_R = TypeVar("_R")


def by_identity(size: int) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Keep a pure function's answers per tuple of argument *objects* (by identity).

    For functions of immutable objects that the planner asks about pass after pass (the same
    pods, the same ``ClusterState.policies`` tuple, the same group and settings objects): the
    same objects have the same answer, and looking them up by ``id`` costs nothing like hashing
    their values.  An entry holds its argument objects, so none of their ids can be reused
    while it exists: an equal key is the same objects.  Positional arguments only.  The table
    is cleared when it reaches ``size`` entries.

    A function of exactly one or two required positional parameters is called through a
    wrapper of that many parameters, keyed by the ``id`` (or the pair of them) without packing
    ``*args`` (most calls: a hit there costs a third of the general wrapper's)."""

    def memoise(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        table: dict[object, tuple[tuple[object, ...], _R]] = {}
        call: Callable[..., _R] = fn

        def computed(key: object, args: tuple[object, ...]) -> _R:
            found = call(*args)
            if len(table) >= size:
                table.clear()
            table[key] = (args, found)
            return found

        def kept_one(a: object, /) -> _R:
            hit = table.get(id(a))
            return computed(id(a), (a,)) if hit is None else hit[1]

        def kept_two(a: object, b: object, /) -> _R:
            key = (id(a), id(b))
            hit = table.get(key)
            return computed(key, (a, b)) if hit is None else hit[1]

        def kept(*args: object, **kwargs: object) -> _R:
            if kwargs:
                raise TypeError(f"{fn.__name__}: positional arguments only")
            key = tuple(map(id, args))
            hit = table.get(key)
            return computed(key, args) if hit is None else hit[1]

        wrappers: dict[int, Callable[..., _R]] = {1: kept_one, 2: kept_two}
        wrapper = wrappers.get(_positional_arity(fn), kept)
        return cast("Callable[_P, _R]", functools.wraps(fn)(wrapper))

    return memoise


def _positional_arity(fn: Callable[..., object]) -> int:
    """How many parameters ``fn`` takes if they are all required positional ones, else -1."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins)
        return -1
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if all(p.kind in positional and p.default is inspect.Parameter.empty for p in params):
        return len(params)
    return -1


@dataclass(slots=True)
class PodClass:
    """Pods that match nodes the same way (node selector, required affinity, tolerations).

    ``pod``: the first of them seen (what the class's answers are computed from: they read
    only those three fields); ``offered``: the nodes a placement decision is offered for them
    (``demand.collect``): the templates of the groups they may use, then ``eci_nodes``.
    ``new_groups``, ``decided`` and ``rows`` keep ``Context.new_node_groups``',
    ``Context.decide``'s and ``Context.node_elig``'s answers for the class (its table lives as
    long as its templates and ECI nodes: ``PlannerMemo.pod_classes``)."""

    pod: Pod
    groups: list[bool]
    group_why: list[str]
    eci_nodes: list[Node]
    offered: list[Node] = field(default_factory=list)
    new_groups: dict[tuple[int, int], tuple[ResourcePolicy | None, tuple[int, ...]]] = field(
        default_factory=dict
    )
    decided: dict[tuple[int, tuple[int, ...], int | None], tuple[ResourcePolicy, Decision]] = field(
        default_factory=dict
    )
    rows: dict[
        tuple[int, ...], tuple[ResourcePolicy | None, tuple[Node, ...], npt.NDArray[np.bool_]]
    ] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    """Live (not finished) pods on one node and the sum of their requests.

    ``movable``: those pods but DaemonSet and static pods (what emptying the node must move);
    ``blocked``: some of them can never be evicted (``eviction.blocker``, a fact of the pod
    alone), so the node cannot be emptied whatever the time (scale-down asks every pass)."""

    pods: list[Pod]
    cpu_milli: int
    memory: int
    gpu_milli: int
    movable: list[Pod]
    blocked: bool


@dataclass(slots=True)
class Growth:
    """Nodes to add to one group in this pass: how many, for which pods, why.

    ``code`` is the machine-readable reason of the first contribution, which leads ``reasons``.
    """

    delta: int = 0
    pods: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    code: str = ""

    def add(self, nodes: int, *, pods: Sequence[str], reason: str, code: str) -> None:
        self.delta += nodes
        self.pods.extend(pods)
        self.reasons.append(reason)
        self.code = self.code or code


class Context:
    """One pass's view; the per-node :class:`Usage` is kept in ``memo.usage`` if it has one."""

    def __init__(
        self,
        state: ClusterState,
        groups: Sequence[GroupState],
        settings: PlannerSettings,
        *,
        memo: PlannerMemo | None = None,
    ) -> None:
        """``memo``: the planner's tables kept between passes (see ``PlannerMemo``)."""
        self.state = state
        self.groups = list(groups)
        self.settings = settings
        self.templates, self.cap, self._cap_rows = (memo or _SHARED).templates(
            [gs.group for gs in self.groups], settings.daemonset_overhead
        )
        members = memo.members(state, self.groups, settings) if memo is not None else None
        if members is None:
            members = _Members(state, self.groups, settings.node_group_label)
            if memo is not None:
                memo.keep_members(state, self.groups, settings, members)
        self._members = members
        self.node_group = members.node_group
        self.registered = members.registered
        self.eci_nodes = members.eci_nodes
        self.ecs_nodes = members.ecs_nodes
        table = memo.pod_classes(self.templates, self.eci_nodes) if memo is not None else _Classes()
        self.classes = table.classes
        self._class_index = table.index
        self._node_elig: dict[tuple[str, int, str, int], npt.NDArray[np.bool_]] = {}
        self._elig_nodes: dict[str, tuple[Sequence[Node], tuple[str, ...]]] = {}
        self.memo = memo
        kept = memo.usage if memo is not None else None
        self._usage: MutableMapping[str, Usage] = {} if kept is None else kept

    def usage(self, node: str) -> Usage:
        """The live pods on ``node`` and their summed requests (scale-up and -down both ask).

        Computed once per pass, or once per change when the memo keeps a usage table
        (``PlannerMemo.usage``, whose keeper drops a node's entry whenever a pod binds to it or
        leaves it), so passes that follow an unrelated change reuse the rest.
        """
        found = self._usage.get(node)
        if found is None:
            pods = []
            cpu = memory = gpu = 0
            for pod in self.state.pods_on(node):
                if not pod.finished:
                    pods.append(pod)
                    r = pod.requests
                    cpu += r.cpu_milli
                    memory += r.memory
                    gpu += r.gpu_milli
            movable = [p for p in pods if not is_daemon_or_static(p)]
            blocked = any(blocker(p) is not None for p in movable)
            found = self._usage[node] = Usage(pods, cpu, memory, gpu, movable, blocked)
        return found

    def upcoming(self, g: int) -> int:
        return max(0, self.groups[g].target_size - self.registered[g])

    def class_of(self, pod: Pod) -> int:
        key = _signature(pod)
        found = self._class_index.get(key)
        if found is not None:
            return found
        why = [why_not_held(pod, template) for template in self.templates]
        ok = [not reason for reason in why]
        eci = [n for n in self.eci_nodes if can_hold(pod, n)]
        offered = [t for t, fits in zip(self.templates, ok, strict=True) if fits] + eci
        self.classes.append(PodClass(pod, ok, why, eci, offered))
        self._class_index[key] = len(self.classes) - 1
        return len(self.classes) - 1

    def new_node_groups(
        self, cls: int, policy: ResourcePolicy | None, unit: int
    ) -> tuple[int, ...]:
        """The groups whose new nodes pods of class ``cls`` may use, within ``policy``'s
        ``unit`` (any group the class may use without a policy)."""
        c = self.classes[cls]
        key = (id(policy), unit)
        found = c.new_groups.get(key)
        if found is None:  # the entry holds the policy: its id is not reused while it exists
            unit_obj = policy.units[unit] if policy is not None else None
            found = c.new_groups[key] = (
                policy,
                tuple(
                    g
                    for g, t in enumerate(self.templates)
                    if c.groups[g] and (unit_obj is None or unit_obj.contains(t))
                ),
            )
        return found[1]

    def decide(
        self, cls: int, policy: ResourcePolicy, counts: Sequence[int], ordinal: int | None
    ) -> Decision:
        """``extender.policy.decide`` for a pod of class ``cls`` offered the class's
        ``offered`` nodes, kept per (policy object, counts, ordinal): a pure function of them
        (the policy is frozen, the offered nodes are the class's own)."""
        c = self.classes[cls]
        key = (id(policy), tuple(counts), ordinal)
        found = c.decided.get(key)
        if found is None:
            if len(c.decided) >= _DECIDED:
                c.decided.clear()
            decision = decide(policy, counts=counts, candidates=c.offered, ordinal=ordinal)
            found = c.decided[key] = (policy, decision)
        return found[1]

    def node_elig(
        self,
        cls: int,
        policy: ResourcePolicy | None,
        unit: int,
        nodes: Sequence[Node],
        *,
        purpose: str,
    ) -> npt.NDArray[np.bool_]:
        """Which of ``nodes`` a pod class may use (within the policy's unit, if any).

        Rows are kept per ``purpose`` for one node list at a time: a call with another list
        (other names or another order, as the two drains of a scale-down pass have) drops the
        rows of that purpose, so a row is never read against nodes it was not made for."""
        held = self._elig_nodes.get(purpose)
        if held is None or held[0] is not nodes:
            names = tuple(n.name for n in nodes)
            if held is not None and held[1] != names:
                for stale in [key for key in self._node_elig if key[0] == purpose]:
                    del self._node_elig[stale]
            self._elig_nodes[purpose] = (nodes, names)
        key = (purpose, cls, policy.key if policy else "", unit)
        found = self._node_elig.get(key)
        if found is not None:
            return found
        c = self.classes[cls]
        # across passes, per class: the same node objects in the same order have the same row
        # (the entry holds them and the policy, so none of their ids is reused meanwhile)
        kept_key = (id(policy), unit, *map(id, nodes))
        kept = c.rows.get(kept_key)
        if kept is None:
            unit_obj = policy.units[unit] if policy is not None and unit >= 0 else None
            row = np.array(
                [can_hold(c.pod, n) and (unit_obj is None or unit_obj.contains(n)) for n in nodes],
                np.bool_,
            )
            row.flags.writeable = False
            if len(c.rows) >= _ROWS:
                c.rows.clear()
            kept = c.rows[kept_key] = (policy, tuple(nodes), row)
        out = self._node_elig[key] = kept[2]
        return out

    def capacity_milli(
        self, groups: Iterable[int], dim: int, added: Mapping[int, Growth] | None = None
    ) -> int:
        """Allocatable of ``groups`` in one dimension (0 cpu, 1 memory, 2 gpu, 3 pods):
        registered nodes, upcoming nodes and ``added``."""
        registered = self._members.capacity(self.state)
        total = 0
        for g in set(groups):
            nodes_ = self.upcoming(g) + (added[g].delta if added and g in added else 0)
            total += registered[g][dim] + nodes_ * self._cap_rows[g][dim]
        return total


class _Members:
    """Which group each node belongs to (the provider's member list, then the node-group
    label), the registered nodes per group, the ECI nodes, the ready schedulable ECS nodes and
    (when first asked) the registered capacity per group: what ``Context`` reads of the nodes
    and groups alone.  Never changed once built (the passes only read it)."""

    __slots__ = ("_capacity", "eci_nodes", "ecs_nodes", "node_group", "registered")

    def __init__(self, state: ClusterState, groups: Sequence[GroupState], label: str) -> None:
        index = {gs.group.name: g for g, gs in enumerate(groups)}
        self.node_group: dict[str, int] = {}
        for g, gs in enumerate(groups):
            for member in gs.nodes:
                self.node_group[member.name] = g
        for node in state.nodes.values():
            if node.kind is NodeKind.ECS and node.name not in self.node_group:
                g_label = index.get(node.labels.get(label, ""))
                if g_label is not None:
                    self.node_group[node.name] = g_label
        self.registered = [0] * len(groups)
        for name, g in self.node_group.items():
            if name in state.nodes:
                self.registered[g] += 1
        self.eci_nodes = [n for n in state.nodes.values() if n.kind is NodeKind.ECI]
        self.ecs_nodes = [
            n
            for n in state.nodes.values()
            if n.kind is NodeKind.ECS and n.ready and not n.unschedulable
        ]
        self._capacity: list[list[int]] | None = None

    def capacity(self, state: ClusterState) -> list[list[int]]:
        """Allocatable per group of its registered ECS nodes, as rows (cpu, memory, gpu, pods)."""
        registered = self._capacity
        if registered is None:
            registered = [[0, 0, 0, 0] for _ in self.registered]
            nodes = state.nodes
            for name, g in self.node_group.items():
                node = nodes.get(name)
                if node is not None and node.kind is NodeKind.ECS:
                    a, row = node.allocatable, registered[g]
                    row[0] += a.cpu_milli
                    row[1] += a.memory
                    row[2] += a.gpu_milli
                    row[3] += a.pods
            self._capacity = registered
        return registered


class _Classes:
    """Pod classes over one list of new-node templates and ECI nodes (``Context.class_of``):
    the classes in the order first seen and their index by signature (``_signature``)."""

    __slots__ = ("classes", "index")

    def __init__(self) -> None:
        self.classes: list[PodClass] = []
        self.index: dict[int, int] = {}


_DECIDED = 4096  # decisions kept per pod class (``Context.decide``); cleared when reached
_ROWS = 256  # eligibility rows kept per pod class (``Context.node_elig``); cleared when reached
_TemplateKey = tuple[tuple[int, ...], int]
_Templates = tuple[list[Node], IntArray, list[tuple[int, int, int, int]]]


class PlannerMemo:
    """Every memo table of one planner, with the rule that keeps each one true.

    One per planner: the controller and each replay's autoscaler hold one for all their passes
    (``plan`` and ``rebalance`` take it as ``memo``); a call without one uses the module's.

    Kept between passes, here:

    - ``templates``: the new-node templates of a list of groups with an overhead, and their
      allocatable as an array and as rows.  The same groups are planned pass after pass (the
      replay reuses the objects), so the key is the identity of the group objects and of the
      overhead; an entry holds them, so their ids cannot be reused while it exists.  Groups and
      resources are frozen: a hit is exactly what a miss computes.  Cleared at 256 entries.
    - ``usage`` (only if given; ``None`` otherwise): each node's live pods and summed requests
      (``Context.usage``).  Rule: whoever passes the table drops a node's entry whenever a pod
      binds to that node or leaves it (deleted, finished, evicted, moved, its node removed) and
      when the node comes or goes.  The replay's scheduler keeps it so (every change of a pod's
      node goes through its ``bind``/``unbind``/``node_ready``/``remove_node``, whatever moved
      the pod: placement by score, rebalance, consolidation, scale-down; its audit compares
      every kept entry with a fresh computation).  The controller's memo has no usage table:
      its cluster changes under it between passes, so usage is computed afresh each pass.

    - ``members`` (``members``/``keep_members``): what ``Context`` reads of the nodes and
      groups alone (``_Members``: each node's group, registered counts, the ECI and the ready
      ECS nodes, registered capacity), kept for the same state object at the same node
      ``generation`` (bumped by every node added, removed or changed; pods do not change it)
      and the same ``GroupState`` objects (frozen; the replay reuses them while unchanged).
      A node written again equal keeps the generation: the entry holds an equal node.
    - ``pod_classes``: the pod classes (``Context.class_of``) over one list of templates (the
      list ``templates`` keeps) and ECI node objects, with each class's answers
      (``Context.new_node_groups``, ``Context.decide``): a class is a function of its
      signature, the templates and the ECI nodes (all frozen; the key is their identity, and
      an entry holds them).  Cleared at ``size`` tables.
    - ``answers`` (``recall``/``keep``): a pass's answer by name with the ``ClusterState`` and
      the ``key`` it was computed from; ``recall`` gives it back only for the same state object
      at the same ``revision`` (no pod, node, policy or ordinal start written since) and an
      equal key, which must hold every other input (the caller's rule; ``skips`` counts the
      passes answered so, by name).  ``rebalance`` keeps its last answer that moved nothing
      (and checks again the pods whose worth depends on the time); ``demand.collect`` the
      workloads' unit counts (key: none) and the pods on ECI it judges (``demand._movable``;
      key: the time, horizon and ``outlived``), so the planner's and rebalance's collects of
      one pass find them once (parts of a pass, not passes: not counted in ``skips``);
      ``scaleup.free_capacity`` the ECS nodes' free rows (key: the nodes), which scale-up's and
      rebalance's of one pass, and passes in which nothing moved, share.
      ``recall_key`` gives an answer back for an equal key alone, whatever the state: the key then holds the part of
      the cluster the answer reads (scale-down's which busy nodes' pods fit elsewhere,
      ``scaledown._busy_drain``: the ECS nodes, their usage and the pods to move).

    Kept in their modules instead, for every planner: pure functions of immutable objects, by
    identity (``by_identity``, each entry holding its objects): ``policy_of`` and
    ``_signature`` here, ``predictive._on_eci``, ``predictive._groups_by_class``,
    ``predictive._points`` and ``_milli``, ``demand._expected``; by value: ``predictive.paying_nodes``'s answers,
    ``nodegroup._text_seconds`` and ``forecast._day_profile`` (by the bytes it reads).

    Per pass, on the ``Context`` (built by each ``plan`` call and dropped with it, so nothing to
    invalidate): pod classes (without a memo), eligible nodes
    per (class, policy, unit, purpose), each node's usage (unless ``usage`` keeps it), the
    registered capacity per group.
    """

    __slots__ = ("_answers", "_classes", "_members", "_size", "_templates", "skips", "usage")

    def __init__(self, size: int = 256, *, usage: MutableMapping[str, Usage] | None = None) -> None:
        self._size = size
        self.usage = usage
        self._templates: dict[_TemplateKey, tuple[Any, _Templates]] = {}
        self._answers: dict[str, tuple[ClusterState, int, tuple[Any, ...], Any]] = {}
        self.skips: dict[str, int] = {}
        self._members: tuple[ClusterState, int, tuple[GroupState, ...], str, _Members] | None = None
        self._classes: dict[tuple[int, ...], tuple[tuple[object, ...], _Classes]] = {}

    def pod_classes(self, templates: list[Node], eci_nodes: Sequence[Node]) -> _Classes:
        """The pod classes kept for this templates list object and these ECI node objects."""
        key = (id(templates), *map(id, eci_nodes))
        hit = self._classes.get(key)
        if hit is not None:
            return hit[1]
        if len(self._classes) >= self._size:
            self._classes.clear()
        table = _Classes()
        self._classes[key] = ((templates, *eci_nodes), table)
        return table

    def members(
        self, state: ClusterState, groups: Sequence[GroupState], settings: PlannerSettings
    ) -> _Members | None:
        """The ``_Members`` kept for this state object at its node ``generation``, the same
        group state objects and node-group label, or None."""
        kept = self._members
        if (
            kept is None
            or kept[0] is not state
            or kept[1] != state.generation
            or kept[3] != settings.node_group_label
            or len(kept[2]) != len(groups)
            or any(a is not b for a, b in zip(kept[2], groups, strict=True))
        ):
            return None
        return kept[4]

    def keep_members(
        self,
        state: ClusterState,
        groups: Sequence[GroupState],
        settings: PlannerSettings,
        members: _Members,
    ) -> None:
        self._members = (state, state.generation, tuple(groups), settings.node_group_label, members)

    def recall(self, name: str, state: ClusterState, key: tuple[Any, ...]) -> Any:
        """The answer kept as ``name`` for this state at its revision and an equal key, or None."""
        found = self._answers.get(name)
        if found is None or found[0] is not state or found[1] != state.revision:
            return None
        return found[3] if found[2] == key else None

    def recall_key(self, name: str, key: tuple[Any, ...]) -> Any:
        """The answer kept as ``name`` for an equal key, whatever the state: for answers whose
        key holds every input itself (the parts of the cluster they read), not the state."""
        found = self._answers.get(name)
        return found[3] if found is not None and found[2] == key else None

    def keep(self, name: str, state: ClusterState, key: tuple[Any, ...], answer: Any) -> None:
        self._answers[name] = (state, state.revision, key, answer)

    def skipped(self, name: str) -> None:
        """Count one pass answered from ``recall`` (tests and audits read ``skips``)."""
        self.skips[name] = self.skips.get(name, 0) + 1

    def templates(self, groups: Sequence[NodeGroup], overhead: Resources) -> _Templates:
        key = (tuple(map(id, groups)), id(overhead))
        hit = self._templates.get(key)
        if hit is not None:
            return hit[1]
        templates = [g.template(overhead=overhead) for g in groups]
        rows = [vector(t.allocatable) for t in templates]
        cap = np.array(rows, np.int64).reshape(len(rows), 4)
        cap.flags.writeable = False
        if len(self._templates) >= self._size:
            self._templates.clear()
        self._templates[key] = ((tuple(groups), overhead), (templates, cap, rows))
        return templates, cap, rows


_SHARED = PlannerMemo()


@by_identity(65536)
def _signature(pod: Pod) -> int:
    """A number per (node selector, required affinity, tolerations) value: what makes a pod
    class (``Context.class_of``).  Kept per pod object (pods are frozen), so a pass does not
    build and hash the tuple again for each pod it asks about (the numbers stay)."""
    key = (
        tuple(pod.node_selector.items()) if pod.node_selector else (),
        pod.required_affinity,
        pod.tolerations,
    )
    return _SIGNATURES.setdefault(key, len(_SIGNATURES))


_SIGNATURES: dict[tuple[Any, ...], int] = {}


def policy_of(policies: Sequence[ResourcePolicy], pod: Pod) -> ResourcePolicy | None:
    """``extender.policy.policy_for``, kept per (policies, pod) pair of objects.

    The passes ask it for the same pods pass after pass.  ``ClusterState.policies`` is a tuple
    of frozen policies, replaced (never changed) on every write, and pods are frozen: the same
    pair of objects has the same answer (``by_identity``).  Other sequences (a list can
    change) are not kept."""
    if type(policies) is not tuple:
        return policy_for(policies, pod)
    return _policy_of(policies, pod)


_policy_of = by_identity(65536)(policy_for)


def vector(r: Resources) -> tuple[int, int, int, int]:
    return (r.cpu_milli, r.memory, r.gpu_milli, r.pods)


def fmt_time(t: float) -> str:
    return f"t={t:.0f}"
