"""Shrink-ECI-first for Deployments and ReplicaSets through ``pod-deletion-cost``.

A ReplicaSet scaling in deletes pods with the lowest ``controller.kubernetes.io/pod-deletion-cost``
first.  Pods in earlier units get higher costs; inside a unit, the pods beyond its ``max`` (the
newest ones, when a policy's max was lowered) get negative costs so they go before anything else.
Pods on nodes in no unit get 0.  ``desired_costs`` is pure; the reconciler writes only the
annotations whose value changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .model import Node, Pod
from .policy import ResourcePolicy

__all__ = ["ANNOTATION", "STEP", "changed_costs", "desired_costs"]

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
STEP = 100


def desired_costs(
    policy: ResourcePolicy, *, pods: Iterable[Pod], nodes: Mapping[str, Node]
) -> dict[str, int]:
    """Pod UID -> deletion cost for the bound, live pods of one workload."""
    by_unit: dict[int, list[Pod]] = {}
    costs: dict[str, int] = {}
    for pod in pods:
        if not pod.node_name or pod.finished or pod.terminating:
            continue
        node = nodes.get(pod.node_name)
        unit = policy.unit_of(node) if node is not None else None
        if unit is None:
            costs[pod.uid] = 0
        else:
            by_unit.setdefault(unit, []).append(pod)
    n = len(policy.units)
    for unit, members in by_unit.items():
        members.sort(key=lambda p: (p.created, p.name))
        limit = policy.units[unit].max
        for rank, pod in enumerate(members):
            if limit is not None and rank >= limit:
                costs[pod.uid] = -STEP * (unit + 1)
            else:
                costs[pod.uid] = STEP * (n - unit)
    return costs


def changed_costs(desired: Mapping[str, int], pods: Mapping[str, Pod]) -> dict[str, int]:
    """Only the pods whose annotation differs from what is wanted."""
    changed = {}
    for uid, cost in desired.items():
        pod = pods.get(uid)
        if pod is not None and pod.annotations.get(ANNOTATION) != str(cost):
            changed[uid] = cost
    return changed
