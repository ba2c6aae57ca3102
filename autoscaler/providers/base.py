"""The provider seam: one small Protocol, shaped like cluster-autoscaler's CloudProvider/NodeGroup.

The controller and the replay speak only this interface; no cloud SDK or Kubernetes client leaks
past it.  Each method is marked *required* or *optional*, as in cluster-autoscaler's
``cloudprovider`` package: an optional method has a documented fallback the caller relies on.

Sizes are *targets*, not deltas.  ``increase_size(group, target=n)`` means "make the group's
target at least ``n``", so a retry after a timeout or a crash never adds a second batch of nodes:
the controller reads the target back, the planner counts the nodes already on their way, and
calling it again with the same ``n`` is a no-op.  ``delete_nodes`` names the nodes it removes
(never "remove any k"), and lowers the target by as many, so a partly failed delete leaves a group
whose target and instance list the next loop can read and repair.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from extender.model import Node

from ..nodegroup import DEFAULT_GROUP_LABEL

__all__ = [
    "GROUP_LABEL",
    "GroupStatus",
    "Instance",
    "InstanceState",
    "Provider",
    "ProviderError",
    "check_max_size",
]

GROUP_LABEL = DEFAULT_GROUP_LABEL
"""Label naming a node's group (``settings.nodeGroupLabel``), set by the kwok and simulated
providers on the nodes they create."""


class ProviderError(Exception):
    """The provider could not do what was asked (I/O, quota, API error).

    ``retryable`` is false for errors a retry cannot fix (unknown group, invalid argument); the
    controller retries the others with backoff and leaves the rest to the next loop.
    """

    def __init__(self, message: str, *, retryable: bool = True, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


def check_max_size(*, provider: str, group: str, target: int, max_size: int) -> None:
    """A target above the group's max size is an error no retry can fix."""
    if target > max_size:
        raise ProviderError(
            f"{provider}: group {group}: target {target} exceeds max {max_size}",
            retryable=False,
        )


class InstanceState(enum.Enum):
    CREATING = "creating"  # asked for, not yet a Ready node
    RUNNING = "running"
    DELETING = "deleting"


@dataclass(frozen=True, slots=True)
class Instance:
    """One member of a group: ``id`` is the provider's name for it, ``node`` the Node's name
    once it registered (``""`` before)."""

    id: str
    node: str = ""
    state: InstanceState = InstanceState.RUNNING


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """What the provider says about one group right now."""

    name: str
    min_size: int
    max_size: int
    target: int
    instances: tuple[Instance, ...] = ()

    @property
    def upcoming(self) -> int:
        """Nodes the target asks for that are not running yet."""
        running = sum(1 for i in self.instances if i.state is InstanceState.RUNNING)
        return max(0, self.target - running)


@runtime_checkable
class Provider(Protocol):
    """A set of node groups the autoscaler may resize."""

    name: str
    """Short provider name for logs and metrics (``kwok``, ``ess``, ``simulated``)."""

    async def refresh(self) -> None:
        """Optional. Re-read cached state once per loop, before any other call.

        Providers without a cache implement it as a no-op; callers always call it.
        """

    async def groups(self) -> Sequence[GroupStatus]:
        """Required. Every group this provider manages, with its target size and instances."""

    async def target_size(self, group: str) -> int:
        """Required. The group's current target size (ESS desired capacity, kwok node count)."""

    async def increase_size(self, group: str, *, target: int) -> int:
        """Required. Raise the group's target to ``target``; returns the resulting target.

        Idempotent: a target at or below the current one changes nothing.  Raises
        ``ProviderError`` (not retryable) when ``target`` exceeds the group's max size.
        """

    async def delete_nodes(self, group: str, nodes: Sequence[Node]) -> None:
        """Required. Remove these nodes from the group and lower its target by as many.

        Nodes that are already gone are ignored, so a retry after a partial failure finishes
        the job.  The caller has drained them.  Raises ``ProviderError`` when a node is not in
        the group or the group would go below its min size.
        """

    def node_group(self, node: Node) -> str | None:
        """Required. The group a node belongs to, or ``None`` for nodes no group manages."""
