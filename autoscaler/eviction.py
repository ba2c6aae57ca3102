"""Which pods an eviction may take, and which ones come back elsewhere when it does.

Scale-down, consolidation and rebalance all evict pods through the Eviction API; they differ in
what they need afterwards.  Emptying a node (``blocker``) needs only that the pod may go: it has a
controller (a bare pod would be lost) and is not annotated
``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``.  Moving a pod from ECI to ECS
(``move_blocker``) also needs its controller to create a replacement, which the extender then
places: ReplicaSets (Deployments), StatefulSets and ReplicationControllers do.  A Job's evicted pod
is replaced too, but counts as a failure against its ``backoffLimit`` and restarts the work from
the beginning, so Jobs are never moved; neither are bare pods, whatever their expected run time.
"""

from __future__ import annotations

from extender.model import Pod

__all__ = ["RECREATING", "SAFE_TO_EVICT", "blocker", "move_blocker"]

SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
RECREATING = frozenset({"ReplicaSet", "StatefulSet", "ReplicationController"})


def blocker(pod: Pod) -> str | None:
    """Why evicting ``pod`` to empty its node is not allowed, or None."""
    if pod.owner is None:
        return "has no controller"
    if pod.annotations.get(SAFE_TO_EVICT, "").lower() == "false":
        return f'is annotated {SAFE_TO_EVICT}: "false"'
    return None


def move_blocker(pod: Pod) -> str | None:
    """Why ``pod`` cannot be moved by evicting it (its replacement placed elsewhere), or None."""
    why = blocker(pod)
    if why is None and pod.owner is not None and pod.owner.kind not in RECREATING:
        why = f"its controller ({pod.owner.kind}) does not recreate it elsewhere"
    return why
