"""Shrink-ECI-first for Deployments and ReplicaSets through ``pod-deletion-cost``.

A ReplicaSet scaling in deletes pods with the lowest ``controller.kubernetes.io/pod-deletion-cost``
first (an int32; a pod without the annotation costs 0).  Bands of ``STEP`` (10^8), first deleted
first:

1. pods beyond their unit's ``max`` (the newest ones, when a policy's max was lowered), the last
   unit's first: ``-STEP * n - (unit + 1)``;
2. the pods of units ``1 .. n-1`` in reverse unit order, so ECI (a later unit) before ECS: unit
   ``i`` costs ``-STEP * i`` plus an age bonus, so that inside such a unit the newest pod goes
   first (``age_bonus``: ``STEP // 2 - 1`` minus the minutes from 2020-01-01 to the pod's
   creation).  The bonus depends on the pod alone, so neither a scale-up nor a scale-in rewrites
   the other pods' annotations; pods created in the same minute tie and the ReplicaSet
   controller's own order decides between them;
3. pods on nodes in no unit: right after the pods of the *first* ECI unit ``e``, before any unit
   that precedes it (``-STEP * e + STEP // 2``; above the first unit's pods when the first unit is
   ECI).  They are not where the policy wants them, but the promise is "ECI first", so no ECI pod
   outlives them.  Without an ECI unit they go right before the last unit
   (``STEP // 2 - STEP * n``);
4. the first unit's pods within its ``max``, last: 0 while a pod is younger than ``SETTLE`` (no
   annotation at all), then ``age_bonus`` (0 .. ``STEP // 2 - 1``), written once.  So the young
   pods go first, among themselves in the ReplicaSet controller's own order
   (``ActivePodsWithRanks``: pods on nodes crowded with their siblings first, then the newest),
   and the settled ones newest first, which empties the newest nodes (the ones a scale-up added)
   instead of spreading the survivors over every node: in the replay of the crane series the
   controller's own order alone costs Spillover 3-7 % more (bench/RESULTS.md).  ``SETTLE``
   keeps these writes off a burst of new pods, when the scheduler needs the API server, and
   spares the pods that live only minutes.

So the first pod that overflows needs one write (its own), a first-unit pod at most one, never
while it is new, and until a written value reaches the API the pod costs 0 like a young
first-unit pod: the reconciler writes the lowest costs first, which keeps that window short for
the pods that must go first.  A pod that carries another value (of an earlier scheme, or
written before it moved) is rewritten once, as any pod whose value differs.

At most 16 units (``extender.policy.MAX_UNITS``, the CRD's ``maxItems``) keep every cost inside
an int32.  ``desired_costs`` is pure; the reconciler writes only the annotations whose value
changes (an absent annotation is 0).  DaemonSet and static pods never get one
(``extender.model.is_daemon_or_static``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .model import Node, NodeKind, Pod, is_daemon_or_static
from .policy import ResourcePolicy

__all__ = ["ANNOTATION", "EPOCH", "SETTLE", "STEP", "age_bonus", "changed_costs", "desired_costs"]

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
STEP = 10**8
EPOCH = 1_577_836_800.0  # 2020-01-01T00:00:00Z in Unix seconds
SETTLE = 600.0  # seconds a first-unit pod stays unannotated


def age_bonus(created: float, *, epoch: float = EPOCH) -> int:
    """Older pods more: ``STEP // 2 - 1`` for a pod created before ``epoch`` (2020-01-01 on the
    pods' clock), 1 less per minute."""
    minutes = int(max(0.0, created - epoch) // 60)
    return max(0, STEP // 2 - 1 - minutes)


def desired_costs(
    policy: ResourcePolicy,
    *,
    pods: Iterable[Pod],
    nodes: Mapping[str, Node],
    now: float,
    epoch: float = EPOCH,
) -> dict[str, int]:
    """Pod UID -> deletion cost for the bound, live pods of one workload (0: no annotation), at
    ``now`` on the pods' clock (Unix seconds in a cluster; a replay passes its own ``now`` and
    the ``epoch`` that puts its clock after 2020)."""
    by_unit: dict[int, list[Pod]] = {}
    costs: dict[str, int] = {}
    n = len(policy.units)
    first_eci = next((i for i, u in enumerate(policy.units) if u.resource is NodeKind.ECI), None)
    nowhere = STEP // 2 - (STEP * n if first_eci is None else STEP * first_eci)
    for pod in pods:
        if not pod.node_name or pod.finished or pod.terminating or is_daemon_or_static(pod):
            continue
        node = nodes.get(pod.node_name)
        unit = policy.unit_of(node) if node is not None else None
        if unit is None:
            costs[pod.uid] = nowhere
        else:
            by_unit.setdefault(unit, []).append(pod)
    for unit, members in by_unit.items():
        members.sort(key=lambda p: (p.created, p.name))
        limit = policy.units[unit].max
        for rank, pod in enumerate(members):
            if limit is not None and rank >= limit:
                costs[pod.uid] = -STEP * n - (unit + 1)
            elif unit == 0:
                settled = pod.created > 0 and now - pod.created >= SETTLE
                costs[pod.uid] = age_bonus(pod.created, epoch=epoch) if settled else 0
            else:
                costs[pod.uid] = -STEP * unit + age_bonus(pod.created, epoch=epoch)
    return costs


def _current(pod: Pod) -> str:
    """The pod's annotation as the ReplicaSet controller reads it: absent is ``"0"``."""
    return pod.annotations.get(ANNOTATION, "0")


def changed_costs(desired: Mapping[str, int], pods: Mapping[str, Pod]) -> dict[str, int]:
    """Only the pods whose annotation differs from what is wanted."""
    changed = {}
    for uid, cost in desired.items():
        pod = pods.get(uid)
        if pod is not None and _current(pod) != str(cost):
            changed[uid] = cost
    return changed
