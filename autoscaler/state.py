"""The groups and disruption budgets as the planner and its passes read them.

These types sit below ``planner`` and its passes (``context``, ``scaledown``, ``rebalance``) so
that each can name them without importing the planner, which imports the passes: no import
cycle, not even one hidden behind ``TYPE_CHECKING``.  ``planner`` re-exports them as part of its
public interface; ``planner.group_state`` builds a ``GroupState`` from a provider's view.
``DisruptionBudget`` is ``extender.disruption``'s (beside the model, with its one parser),
named here for the passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from extender.disruption import DisruptionBudget

from .nodegroup import NodeGroup

__all__ = ["DisruptionBudget", "GroupNode", "GroupState"]


@dataclass(frozen=True, slots=True)
class GroupNode:
    """A node the provider says belongs to the group (it may not have registered yet)."""

    name: str
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class GroupState:
    """A node group as the provider sees it now."""

    group: NodeGroup
    target_size: int
    nodes: tuple[GroupNode, ...] = ()
    last_scale_up: float | None = None
    last_scale_down: float | None = None

    def last_any(self) -> float:
        ups = -math.inf if self.last_scale_up is None else self.last_scale_up
        downs = -math.inf if self.last_scale_down is None else self.last_scale_down
        return max(ups, downs)

    def in_cooldown(self, now: float) -> bool:
        return now - self.last_any() < self.group.cooldown
