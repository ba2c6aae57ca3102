"""Expanders: small strategies that pick one scale-up option, as in cluster-autoscaler.

An :class:`Option` is what one node group would do with the pods still waiting: how many new
nodes, how many pods they take, how much of the new capacity is wasted, and what the nodes cost
over the forecast horizon compared with running the same pods on ECI.  Every expander breaks
ties the same way (least waste, then more pods, then cheaper, then name) so plans are stable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .nodegroup import NodeGroup, PlannerSettings

__all__ = [
    "CostExpander",
    "Expander",
    "LeastWasteExpander",
    "Option",
    "PriceExpander",
    "PriorityExpander",
    "expander_for",
]


@dataclass(frozen=True, slots=True)
class Option:
    group: NodeGroup
    nodes: int
    pods: int
    cpu_waste: float
    memory_waste: float
    node_cost: float  # CNY for the new nodes over the horizon
    eci_cost: float  # CNY for the same pods on ECI over the horizon (their expected run time)

    @property
    def waste(self) -> float:
        return (self.cpu_waste + self.memory_waste) / 2

    def tie_break(self) -> tuple[float, int, float, str]:
        return (round(self.waste, 9), -self.pods, self.node_cost, self.group.name)


class Expander(Protocol):
    @property
    def name(self) -> str: ...

    def choose(self, options: Sequence[Option]) -> tuple[Option, str] | None:
        """The option to take and why, or ``None`` when there is none."""
        ...


def _waste_text(option: Option) -> str:
    return f"wastes {option.cpu_waste:.0%} cpu / {option.memory_waste:.0%} memory"


@dataclass(frozen=True, slots=True)
class LeastWasteExpander:
    name: str = "least-waste"

    def choose(self, options: Sequence[Option]) -> tuple[Option, str] | None:
        if not options:
            return None
        best = min(options, key=Option.tie_break)
        return best, f"least-waste: {_waste_text(best)}"


@dataclass(frozen=True, slots=True)
class PriceExpander:
    name: str = "price"

    def choose(self, options: Sequence[Option]) -> tuple[Option, str] | None:
        usable = [o for o in options if o.pods > 0] or list(options)
        if not usable:
            return None
        best = min(usable, key=lambda o: (round(o.node_cost / max(o.pods, 1), 9), o.tie_break()))
        per_pod = best.node_cost / max(best.pods, 1)
        return best, f"price: {per_pod:.4f} CNY per pod over the horizon, {_waste_text(best)}"


@dataclass(frozen=True, slots=True)
class PriorityExpander:
    """Highest priority first; ``priorities`` maps a priority to group-name regexes."""

    priorities: Mapping[int, tuple[str, ...]]
    name: str = "priority"

    def priority(self, group: str) -> int | None:
        best: int | None = None
        for level, patterns in self.priorities.items():
            if any(re.fullmatch(p, group) for p in patterns) and (best is None or level > best):
                best = level
        return best

    def choose(self, options: Sequence[Option]) -> tuple[Option, str] | None:
        ranked = [(self.priority(o.group.name), o) for o in options]
        listed = [(p, o) for p, o in ranked if p is not None]
        if not listed:
            fallback = LeastWasteExpander().choose(options)
            if fallback is None:
                return None
            return fallback[0], "priority: no group has a priority; " + fallback[1]
        top = max(p for p, _ in listed)
        best = min((o for p, o in listed if p == top), key=Option.tie_break)
        return best, f"priority: highest priority {top}, {_waste_text(best)}"


@dataclass(frozen=True, slots=True)
class CostExpander:
    """The lowest net cost per pod: ECS node-hours minus what the pods would cost on ECI."""

    name: str = "cost"

    def choose(self, options: Sequence[Option]) -> tuple[Option, str] | None:
        if not options:
            return None
        best = min(
            options,
            key=lambda o: (round((o.node_cost - o.eci_cost) / max(o.pods, 1), 9), o.tie_break()),
        )
        verdict = "cheaper" if best.node_cost < best.eci_cost else "not cheaper"
        return best, (
            f"cost: {best.nodes} node(s) cost {best.node_cost:.3f} CNY over the horizon, "
            f"{verdict} than {best.eci_cost:.3f} CNY on ECI"
        )


def expander_for(settings: PlannerSettings) -> Expander:
    if settings.expander == "price":
        return PriceExpander()
    if settings.expander == "priority":
        return PriorityExpander(settings.priorities)
    if settings.expander == "cost":
        return CostExpander()
    return LeastWasteExpander()
