"""Which pods an eviction may take, which ones come back elsewhere, and what work they lose.

Scale-down, consolidation and rebalance all evict pods through the Eviction API; they differ in
what they need afterwards.  Emptying a node (``blocker``) needs only that the pod may go: it has a
controller (a bare pod would be lost) and is not annotated
``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``; scale-down also leaves a Job's pod
whose lost work would cost more than a restart (``drain_blocker``, below).  Moving a pod from ECI to ECS
(``move_blocker``) also needs its controller to create a replacement, which the extender then
places: ReplicaSets (Deployments), StatefulSets, ReplicationControllers and Jobs do.  Bare pods
never move, whatever their expected run time.

A replacement does not always carry on where its pod stopped (``lost_work``).  A service
replica (ReplicaSet, StatefulSet, ReplicationController) has no progress to lose: its
replacement costs a restart (``MoveCosts.restart``).  A Job's replacement starts its work again:
everything since the pod started is lost, unless the pod says how often it checkpoints
(annotation ``spillover.dev/checkpoint-interval``, a duration such as ``15m`` or ``600``; ``0``:
it keeps all its progress), in which case only the work since its last checkpoint is lost.  The
price of running that work again is what ``costs.move_saving`` deducts from a move's saving, so
a Job's pod moves early in its life (just after the ECS room appeared) and not late.

The caveat for Jobs (live clusters): the Job controller recreates a pod evicted through the
Eviction API (``Job.spec.podReplacementPolicy`` decides whether it waits for the old pod to be
gone), but the evicted pod counts as a failure against ``backoffLimit`` unless the Job has a
``podFailurePolicy`` rule that ignores the ``DisruptionTarget`` condition (Kubernetes 1.26+); a
Job with ``backoffLimit: 0`` and no such rule fails on its first move.  Annotate such Jobs' pods
``safe-to-evict: "false"``, which keeps them where they are.  Operators that are not Jobs
(training operators, Argo) are not known here: their pods' owners are not in ``RECREATING``, so
they do not move.
"""

from __future__ import annotations

import math

from extender.model import Pod

from .nodegroup import annotation_seconds

__all__ = [
    "CHECKPOINT_INTERVAL",
    "PROGRESS_LOSING",
    "RECREATING",
    "SAFE_TO_EVICT",
    "blocker",
    "checkpoint_interval",
    "drain_blocker",
    "drain_clear_until",
    "loses_progress",
    "lost_work",
    "move_blocker",
]

SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
CHECKPOINT_INTERVAL = "spillover.dev/checkpoint-interval"
PROGRESS_LOSING = frozenset({"Job"})  # controllers whose replacement starts its work again
RECREATING = frozenset({"ReplicaSet", "StatefulSet", "ReplicationController", *PROGRESS_LOSING})


def blocker(pod: Pod) -> str | None:
    """Why evicting ``pod`` to empty its node is not allowed, or None."""
    if pod.owner is None:
        return "has no controller"
    if pod.annotations.get(SAFE_TO_EVICT, "").lower() == "false":
        return f'is annotated {SAFE_TO_EVICT}: "false"'
    return None


def drain_blocker(pod: Pod, *, now: float, share_per_hour: float, restart: float) -> str | None:
    """Why scale-down may not evict ``pod`` to empty its node now: ``blocker``'s reasons, or a
    Job's pod whose lost work (``lost_work`` since its creation), at ``share_per_hour`` (its
    share of its node's price), would cost more than a ``restart``.  Scale-down does not weigh
    what removing the node saves, so it takes no work it would throw away: the node waits for
    the pod's end (a pod just started, just past a checkpoint, or checkpointing always goes)."""
    why = blocker(pod)
    if why is None:
        lost = lost_work(pod, ran=now - pod.created)
        price = lost * share_per_hour / 3600
        if price > restart:
            why = (
                f"would lose {lost / 60:.0f} min of its Job's work ({price:.2f} CNY at its share "
                f"of the node, more than a {restart:g} CNY restart)"
            )
    return why


def drain_clear_until(pod: Pod, *, share_per_hour: float, restart: float) -> float:
    """A time up to which ``drain_blocker`` lets ``pod`` go: at every ``now`` at or before it,
    ``drain_blocker(pod, now=now, share_per_hour=..., restart=...)`` is None (``-inf``: none
    known, ``inf``: never blocked).  Scale-down asks each pass whether a node's pods may go;
    before this time it need not ask about the pod again.

    A pod whose lost work is always 0 (not a Job's, or checkpointing always) costs 0, never more
    than a non-negative restart.  A Job's pod without checkpoints loses all it ran, which only
    grows with ``now``, and so does its price at a positive share (rounding keeps the order of
    floats): the time found (the price's crossing of the restart, a little before, checked with
    ``drain_blocker`` itself, else the pod's creation, when it has run nothing) holds for every
    earlier time too.  A pod ``blocker`` refuses, or with checkpoints (its lost work falls at
    each one), gets ``-inf``; the answer is never NaN."""
    if blocker(pod) is not None or not restart >= 0:
        return -math.inf
    every = checkpoint_interval(pod) if loses_progress(pod) else 0.0
    if every <= 0 or not share_per_hour > 0 or math.isinf(restart):
        return math.inf
    if not math.isinf(every):
        return -math.inf
    crossing = pod.created + restart * 3600 / share_per_hour * (1 - 1e-9)
    if math.isnan(crossing):
        return -math.inf
    if drain_blocker(pod, now=crossing, share_per_hour=share_per_hour, restart=restart) is None:
        return crossing
    return pod.created


def move_blocker(pod: Pod) -> str | None:
    """Why ``pod`` cannot be moved by evicting it (its replacement placed elsewhere), or None."""
    why = blocker(pod)
    if why is None and pod.owner is not None and pod.owner.kind not in RECREATING:
        why = f"its controller ({pod.owner.kind}) does not recreate it elsewhere"
    return why


def loses_progress(pod: Pod) -> bool:
    """Whether ``pod``'s replacement would start its work again (its controller is a Job)."""
    return pod.owner is not None and pod.owner.kind in PROGRESS_LOSING


def checkpoint_interval(pod: Pod) -> float:
    """Seconds between ``pod``'s checkpoints: ``inf`` without the annotation (or with a bad one:
    nothing is assumed kept), 0 when it keeps all its progress."""
    raw = pod.annotations.get(CHECKPOINT_INTERVAL)
    every = None if raw is None else annotation_seconds(raw)
    return math.inf if every is None else every


def lost_work(pod: Pod, *, ran: float) -> float:
    """Seconds of work ``pod`` loses if evicted after running ``ran`` seconds: 0 for a service
    replica (``loses_progress`` false), else what it ran since its last checkpoint (all of it
    without ``spillover.dev/checkpoint-interval``)."""
    if ran <= 0 or not loses_progress(pod):
        return 0.0
    every = checkpoint_interval(pod)
    if every <= 0:
        return 0.0
    return ran if math.isinf(every) else ran % every
