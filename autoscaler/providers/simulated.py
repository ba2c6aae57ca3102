"""An in-memory provider in virtual time, for the replay and the tests.

Nothing here reads a clock of its own: the synchronous methods take ``now`` (the replay's virtual
time), and the async :class:`~autoscaler.providers.base.Provider` methods read the injected
``clock``.  A node asked for at ``t`` appears Ready at ``t + group.boot_time``; before that it is
an upcoming instance (``InstanceState.CREATING``) and not in :meth:`nodes`.  Every change is
appended to :attr:`actions` so the replay can report it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from extender.model import Node, Resources

from ..nodegroup import NodeGroup
from .base import (
    GROUP_LABEL,
    GroupStatus,
    Instance,
    InstanceState,
    ProviderError,
    check_max_size,
)

__all__ = ["SimulatedAction", "SimulatedNode", "SimulatedProvider"]


@dataclass(frozen=True, slots=True)
class SimulatedNode:
    node: Node
    group: str
    requested: float
    ready_at: float


@dataclass(frozen=True, slots=True)
class SimulatedAction:
    time: float
    group: str
    kind: str  # "increase" | "delete"
    target: int
    nodes: tuple[str, ...]


class SimulatedProvider:
    name = "simulated"

    def __init__(
        self,
        groups: Iterable[NodeGroup],
        *,
        clock: Callable[[], float] | None = None,
        label: str = GROUP_LABEL,
        overhead: Resources | None = None,
        initial: bool = True,
    ) -> None:
        """``initial``: start every group with ``desired`` nodes, Ready since time 0."""
        self._groups = {g.name: g for g in groups}
        self._clock = clock or (lambda: 0.0)
        self._label = label
        self._overhead = overhead or Resources()
        self._nodes: dict[str, SimulatedNode] = {}
        self._serial = 0
        # status() per group, with the membership version and the span of ``now`` it holds for
        # (no member turns Ready inside it): the replay asks every pass, mostly for the same.
        self._version = 0
        self._status: dict[str, tuple[int, float, float, GroupStatus]] = {}
        self.actions: list[SimulatedAction] = []
        if initial:
            for group in self._groups.values():
                for _ in range(group.desired):
                    self._add(group, requested=0.0, ready_at=0.0)

    # -- virtual-time API (the replay) ---------------------------------------------------------
    def nodes(self, *, now: float) -> list[Node]:
        """The nodes that exist (are Ready) at ``now``."""
        return [s.node for s in self._nodes.values() if s.ready_at <= now]

    def next_ready(self, *, now: float) -> float | None:
        """When the next upcoming node becomes Ready, for the replay's event queue."""
        upcoming = [s.ready_at for s in self._nodes.values() if s.ready_at > now]
        return min(upcoming, default=None)

    def status(self, group: str, *, now: float) -> GroupStatus:
        spec = self._group(group)
        hit = self._status.get(group)
        if hit is not None and hit[0] == self._version and hit[1] <= now < hit[2]:
            return hit[3]
        members = [s for s in self._nodes.values() if s.group == group]
        instances = tuple(
            Instance(
                id=s.node.name,
                node=s.node.name if s.ready_at <= now else "",
                state=InstanceState.RUNNING if s.ready_at <= now else InstanceState.CREATING,
            )
            for s in members
        )
        out = GroupStatus(group, spec.min_size, spec.max_size, len(members), instances)
        since = max((s.ready_at for s in members if s.ready_at <= now), default=-math.inf)
        until = min((s.ready_at for s in members if s.ready_at > now), default=math.inf)
        self._status[group] = (self._version, since, until, out)
        return out

    def set_target(self, group: str, target: int, *, now: float) -> int:
        """Raise the target to ``target`` (never lowers it); returns the resulting target."""
        spec = self._group(group)
        current = sum(1 for s in self._nodes.values() if s.group == group)
        if target <= current:
            return current
        check_max_size(provider="simulated", group=group, target=target, max_size=spec.max_size)
        added = tuple(
            self._add(spec, requested=now, ready_at=now + spec.boot_time).node.name
            for _ in range(target - current)
        )
        self.actions.append(SimulatedAction(now, group, "increase", target, added))
        return target

    def remove(self, group: str, names: Sequence[str], *, now: float) -> None:
        """Remove named nodes; names already gone are ignored."""
        spec = self._group(group)
        victims = [n for n in names if n in self._nodes]
        for name in victims:
            if self._nodes[name].group != group:
                raise ProviderError(
                    f"simulated: node {name} is not in group {group}", retryable=False
                )
        current = sum(1 for s in self._nodes.values() if s.group == group)
        if current - len(victims) < spec.min_size:
            raise ProviderError(
                f"simulated: removing {len(victims)} from {group} would go below min "
                f"{spec.min_size}",
                retryable=False,
            )
        for name in victims:
            del self._nodes[name]
        self._version += bool(victims)
        if victims:
            self.actions.append(
                SimulatedAction(now, group, "delete", current - len(victims), tuple(victims))
            )

    # -- the Provider protocol -----------------------------------------------------------------
    async def refresh(self) -> None:
        return None

    async def groups(self) -> Sequence[GroupStatus]:
        now = self._clock()
        return [self.status(name, now=now) for name in self._groups]

    async def target_size(self, group: str) -> int:
        return self.status(group, now=self._clock()).target

    async def increase_size(self, group: str, *, target: int) -> int:
        return self.set_target(group, target, now=self._clock())

    async def delete_nodes(self, group: str, nodes: Sequence[Node]) -> None:
        self.remove(group, [n.name for n in nodes], now=self._clock())

    def node_group(self, node: Node) -> str | None:
        member = self._nodes.get(node.name)
        return member.group if member is not None else None

    # -- helpers -------------------------------------------------------------------------------
    def _group(self, name: str) -> NodeGroup:
        try:
            return self._groups[name]
        except KeyError:
            raise ProviderError(
                f"simulated: unknown node group {name!r}", retryable=False
            ) from None

    def _add(self, group: NodeGroup, *, requested: float, ready_at: float) -> SimulatedNode:
        self._serial += 1
        name = f"{group.name}-{self._serial:05d}"
        template = group.template(overhead=self._overhead)
        node = replace(
            template,
            name=name,
            labels={**template.labels, self._label: group.name},
            created=ready_at,
        )
        member = SimulatedNode(node, group.name, requested, ready_at)
        self._nodes[name] = member
        self._version += 1
        return member
