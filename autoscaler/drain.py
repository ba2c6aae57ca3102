"""Scale-down actuation: cordon a node, evict its pods, wait until they are gone (pure core).

As cluster-autoscaler separates its actuator from the planning loop, the controller decides and
a :class:`Drainer` acts: ``cordon`` (unschedulable plus the ``spillover.dev/to-be-deleted``
taint, so that nothing new lands there), ``evict`` (through the Eviction API, so that
PodDisruptionBudgets are honoured by the API server: a refusal is an answer, not an error) and
``uncordon`` when the node stays after all.  :func:`drain_node` is the sequence, the same for
every drainer: cordon; evict every pod but DaemonSet, mirror and finished pods; on the first
refusal uncordon and keep the node; else wait until the cluster cache no longer shows the
evicted pods on the node (their controllers then place the replacements elsewhere) before the
controller asks the provider to delete it.

Two drainers: ``autoscaler.actuation.ApiDrainer`` (the Kubernetes API) and :class:`FakeDrainer`
(in memory, over a ``ClusterState``: what the controller's tests use).  There is no drainer that does nothing: a controller without one cannot remove nodes
(``drain_node`` is not called and the scale-down is reported as an error).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from extender.model import Node, Pod, is_daemon_or_static
from extender.snapshot import ClusterState

__all__ = [
    "DELETION_TAINT",
    "Cordon",
    "Drained",
    "Drainer",
    "Eviction",
    "FakeDrainer",
    "cordon_spec",
    "drain_node",
    "stays",
    "uncordon_spec",
]

DELETION_TAINT = "spillover.dev/to-be-deleted"

Eviction = Literal["evicted", "gone", "refused"]
"""``evicted``: the API server accepted the eviction; ``gone``: the pod no longer exists (404);
``refused``: a PodDisruptionBudget (429) or any other error said no."""

Cordon = Literal["cordoned", "gone", "failed"]
"""``gone``: the node no longer exists (404), so there is nothing to drain."""


class Drainer(Protocol):
    async def cordon(self, node: Node, *, now: float) -> Cordon: ...

    async def uncordon(self, node: Node) -> None:
        """Best effort: undo ``cordon`` (errors are logged, never raised)."""

    async def evict(self, pod: Pod) -> Eviction: ...


@dataclass(frozen=True, slots=True)
class Drained:
    """What :func:`drain_node` did.  ``ok``: the node may be deleted; ``cleared``: the evicted
    pods left the cache before the timeout (if not the node is deleted anyway, with a warning)."""

    ok: bool
    evicted: tuple[str, ...] = ()  # pod uids
    cleared: bool = True
    reason: str = ""  # why not ok: "cordon failed", "eviction refused: ns/name"


def stays(pod: Pod) -> bool:
    """Pods a drain leaves alone: DaemonSet pods, mirror pods, finished pods."""
    return pod.finished or is_daemon_or_static(pod)


def _taints(node: Node) -> list[dict[str, str]]:
    return [
        {"key": t.key, "value": t.value, "effect": t.effect}
        for t in node.taints
        if t.key != DELETION_TAINT
    ]


def cordon_spec(node: Node, *, now: float) -> dict[str, Any]:
    """The node ``spec`` patch that cordons it and marks it for deletion since ``now``."""
    taint = {"key": DELETION_TAINT, "value": str(int(now)), "effect": "NoSchedule"}
    return {"unschedulable": True, "taints": [*_taints(node), taint]}


def uncordon_spec(node: Node) -> dict[str, Any]:
    """The node ``spec`` patch that undoes :func:`cordon_spec`."""
    return {"unschedulable": False, "taints": _taints(node)}


async def drain_node(
    drainer: Drainer,
    state: ClusterState,
    node: Node,
    *,
    now: float,
    longest_wait: float,
    poll: float,
    sleep: Callable[[float], Awaitable[None]],
) -> Drained:
    """Cordon ``node``, evict its pods, wait until ``state`` shows them gone (see the module)."""
    cordoned = await drainer.cordon(node, now=now)
    if cordoned == "gone":
        return Drained(ok=True)
    if cordoned == "failed":
        return Drained(ok=False, reason="cordon failed")
    evicted: list[str] = []
    for pod in list(state.pods_on(node.name)):
        if stays(pod):
            continue
        if await drainer.evict(pod) == "refused":
            await drainer.uncordon(state.nodes.get(node.name, node))
            return Drained(ok=False, evicted=tuple(evicted), reason=f"eviction refused: {pod.key}")
        evicted.append(pod.uid)
    cleared = await _gone(
        state, node.name, evicted, longest_wait=longest_wait, poll=poll, sleep=sleep
    )
    return Drained(ok=True, evicted=tuple(evicted), cleared=cleared)


async def _gone(
    state: ClusterState,
    node: str,
    evicted: Iterable[str],
    *,
    longest_wait: float,
    poll: float,
    sleep: Callable[[float], Awaitable[None]],
) -> bool:
    """Wait until the cache no longer shows the evicted pods on ``node``, polling every ``poll``
    up to ``longest_wait``; whether they left."""
    uids = tuple(evicted)
    for _ in range(max(1, math.ceil(longest_wait / poll))):
        pods = state.pods
        if not any(uid in pods and pods[uid].node_name == node for uid in uids):
            return True
        await sleep(poll)
    return False


@dataclass
class FakeDrainer:
    """A :class:`Drainer` in memory over ``state``, as the API server and the watch would act.

    ``cordon`` marks the node unschedulable in ``state``; ``evict`` removes the pod from
    ``state`` at once, unless ``linger`` (then it stays until the test removes it: a slow
    watch), and answers ``refused`` for the pods named (``namespace/name``) in ``refuse`` (a
    PodDisruptionBudget) or when ``refuse_all``.  ``calls`` lists what was asked, in order:
    ``("cordon", node)``, ``("evict", pod key)``, ``("uncordon", node)``.
    """

    state: ClusterState
    refuse: set[str] = field(default_factory=set)
    refuse_all: bool = False
    linger: bool = False
    fail_cordon: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def cordon(self, node: Node, *, now: float) -> Cordon:
        self.calls.append(("cordon", node.name))
        current = self.state.nodes.get(node.name)
        if current is None:
            return "gone"
        if node.name in self.fail_cordon:
            return "failed"
        self.state.upsert_node(_replace_node(current, unschedulable=True))
        return "cordoned"

    async def uncordon(self, node: Node) -> None:
        self.calls.append(("uncordon", node.name))
        current = self.state.nodes.get(node.name)
        if current is not None:
            self.state.upsert_node(_replace_node(current, unschedulable=False))

    async def evict(self, pod: Pod) -> Eviction:
        self.calls.append(("evict", pod.key))
        if pod.uid not in self.state.pods:
            return "gone"
        if self.refuse_all or pod.key in self.refuse:
            return "refused"
        if not self.linger:
            self.state.remove_pod(pod.uid)
        return "evicted"


def _replace_node(node: Node, *, unschedulable: bool) -> Node:
    return dataclasses.replace(node, unschedulable=unschedulable)
