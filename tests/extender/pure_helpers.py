"""Pure builders shared by the table tests of the extender's core (no app, no HTTP)."""

from __future__ import annotations

from typing import Any

from extender.model import Node, NodeKind, Pod, WorkloadKey
from extender.policies import policy_from_dict
from extender.policy import ResourcePolicy

__all__ = ["ECI_NODE", "ECS_NODE", "ECS_OTHER", "ns_pod", "unit_policy"]


def unit_policy(*units: dict[str, Any], **spec: Any) -> ResourcePolicy:
    """Policy ``ns/p`` over pods labelled ``app: a``, with ``units`` and more of its spec."""
    return policy_from_dict(
        {
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "units": list(units), **spec},
        }
    )


ECS_NODE = Node("ecs-1", {"pool": "general"})
ECS_OTHER = Node("ecs-2", {"pool": "gpu"})
ECI_NODE = Node("vk", {"type": "virtual-kubelet"}, kind=NodeKind.ECI)


def ns_pod(uid: str, *, node: str = "", labels: dict[str, str] | None = None, **kw: Any) -> Pod:
    """A replica of Deployment ``ns/a`` named and keyed ``uid`` (on ``node`` when given)."""
    return Pod(
        uid,
        uid,
        "ns",
        labels or {"app": "a"},
        node_name=node,
        workload=WorkloadKey("ns", "Deployment", "a"),
        **kw,
    )
