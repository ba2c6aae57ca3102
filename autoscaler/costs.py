"""The ECS-versus-ECI cost model (DESIGN §6): prices are configuration, arithmetic lives here.

ECI bills a running pod per vCPU-second and GiB-second (and per whole GPU: ECI does not share
GPUs); ECS bills a node per hour whether it is busy or not.  For steady demand (the forecast) ECS is
cheaper when the demand lasts longer than ``node_price / eci_price`` of the window: for the default
2 vCPU / 8 GiB prices 0.353 / 0.529 ≈ 2/3, 16 hours a day, as the product documentation says.

For one pod running on ECI with ``R`` seconds left, moving it to a *new* node pays only when ECI's
bill for the time it keeps running after the node is up (``R - boot``, whole GPUs) is more than the
node time it really uses: the node is paid from now until ``linger`` (the scale-down unneeded
time) after its last pod ends, and shared only with the pods the packing really puts on it.  A
lone 1 cpu / 2 GiB pod with 2 h left on a 2 vCPU / 8 GiB node: ECI 0.2205 CNY/h * 119 min =
0.437 CNY, the node 0.353 CNY/h * (1 + 120 + 10) min = 0.771 CNY: it stays on ECI.

A pod whose controller starts its work again (a Job's: ``eviction.lost_work``) runs longer on
ECS than it would have left on ECI: the ``redo`` seconds it had already run, paid at its share
of the node.  Moving it into room an existing node already pays for saves ECI's bill for the
time it has left, less the restart cost, less that re-run (``move_saving``); onto a new node,
the node runs the re-run too (``ecs_cheaper``, ``new_node_pays``).  A 1-GPU Job pod 2 h into a
4 h run, moved into a free GPU of an 8-GPU node at 64 CNY/h: ECI would bill 12 * 2 = 24 CNY,
the re-run costs 64 / 8 * 2 = 16 CNY, so the move saves 24 - 0.1 - 16 = 7.9 CNY; 3 h in, 12 -
0.1 - 24 < 0: it stays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from extender.model import Resources

__all__ = [
    "GIB",
    "EciPrice",
    "break_even_fraction",
    "eci_cost",
    "eci_costs",
    "ecs_cheaper",
    "move_saving",
    "new_node_pays",
    "new_node_seconds",
    "node_share",
    "share_of",
]

GIB = 2**30
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EciPrice:
    """ECI list prices in CNY (China mainland defaults)."""

    vcpu_second: float = 0.000049
    gib_second: float = 0.00000613
    gpu_hour: float = 12.0

    def per_hour(self, requests: Resources) -> float:
        """What ECI charges per hour for a pod with these requests (whole GPUs)."""
        return float(self.per_hour_of(requests.cpu_milli, requests.memory, requests.gpu_milli))

    def per_hour_of(self, cpu_milli: Any, memory: Any, gpu_milli: Any) -> Any:
        """The one ECI price formula, on numbers or numpy arrays of millicores, bytes, GPU-milli."""
        cpu = cpu_milli / 1000 * self.vcpu_second * 3600
        mem = memory / GIB * self.gib_second * 3600
        ceil = np.ceil if isinstance(gpu_milli, np.ndarray) else math.ceil  # math: 20x faster
        return cpu + mem + ceil(gpu_milli / 1000) * self.gpu_hour


def node_share(requests: Resources, capacity: Resources) -> float:
    """The largest fraction of one node the pod takes over cpu, memory and GPU (1.0 if it does not fit)."""
    return share_of(requests.cpu_milli, requests.memory, requests.gpu_milli, capacity)


def share_of(cpu_milli: int, memory: int, gpu_milli: int, capacity: Resources) -> float:
    """:func:`node_share` of requests given as numbers (the replay's billing, per bind).

    The largest of ``want / have`` over cpu, memory and GPU, in that order, of the dimensions
    requested (``inf`` where the node has none); written out, not looped over pairs built per
    call (the planner and the billing ask it ~200,000 times a replay)."""
    share = 0.0
    if cpu_milli > 0:
        have = capacity.cpu_milli
        share = cpu_milli / have if have > 0 else math.inf
    if memory > 0:
        have = capacity.memory
        part = memory / have if have > 0 else math.inf
        if part > share:
            share = part
    if gpu_milli > 0:
        have = capacity.gpu_milli
        part = gpu_milli / have if have > 0 else math.inf
        if part > share:
            share = part
    return share


def break_even_fraction(*, price_per_hour: float, capacity: Resources, eci: EciPrice) -> float:
    """The fraction of a window a node's worth of pods must run for ECS to be cheaper than ECI."""
    eci_hour = eci.per_hour(capacity)
    if eci_hour <= 0:
        return math.inf
    return price_per_hour / eci_hour


def eci_cost(requests: Resources, *, eci: EciPrice, seconds: float) -> float:
    """What ECI charges for ``seconds`` of a pod with these requests (whole GPUs)."""
    return eci.per_hour(requests) * max(seconds, 0.0) / 3600


def eci_costs(per_hour: FloatArray, seconds: FloatArray) -> FloatArray:
    """``eci_cost`` of many pods at once, from their prices per hour (``EciPrice.per_hour_of``):
    element by element the same float operations."""
    out: FloatArray = per_hour * np.maximum(seconds, 0.0) / 3600
    return out


def new_node_seconds(*, boot: float, runs: float, linger: float) -> float:
    """How long a node added now is paid for: it boots, runs its pods, then stays ``linger``
    (the scale-down unneeded time) before it is removed."""
    return boot + max(runs, 0.0) + linger


def ecs_cheaper(
    requests: Resources,
    *,
    price_per_hour: float,
    capacity: Resources,
    eci: EciPrice,
    remaining: float,
    boot: float,
    linger: float,
    redo: float = 0.0,
) -> bool:
    """Whether a pod running on ECI for ``remaining`` more seconds could be cheaper on a new ECS
    node, if other pods filled the rest of the node (its share of the node's paid time against
    ECI's bill for the time it keeps running after the node is up).  ``redo``: the work it
    would run again once moved there (``eviction.lost_work`` after the boot).  A first filter:
    ``new_node_pays`` judges the node the packing really builds."""
    share = node_share(requests, capacity)
    if not math.isfinite(share) or share > 1.0 or remaining <= boot:
        return False
    runs = remaining + max(redo, 0.0)
    ecs = share * price_per_hour * new_node_seconds(boot=boot, runs=runs, linger=linger)
    return ecs / 3600 < eci_cost(requests, eci=eci, seconds=remaining - boot)


def new_node_pays(
    pods: Sequence[tuple[Resources, float]],
    *,
    price_per_hour: float,
    eci: EciPrice,
    boot: float,
    linger: float,
    redo: Sequence[float] = (),
    freed: Sequence[tuple[float, float]] = (),
    drain_wait: float = 0.0,
    restarts: float = 0.0,
) -> bool:
    """Whether moving ``pods`` (requests, remaining seconds) from ECI onto one new node saves
    money: ECI's bill for the time each keeps running once the node is up, against the node's
    price for all the time it is paid (``new_node_seconds`` of the longest pod, its ``redo``
    included: per pod, in order, the work it would run again; none when empty).  Scale-up
    passes each pod's expected run cut to the shortest of them (``scaleup._unpaid``).

    ``freed``: existing nodes whose pods the new node also takes, so that they can go
    (``consolidation.absorbable``), each as (price per hour, seconds it would still be paid
    for: its pods' longest expected run).  Each goes ``drain_wait`` after the new node is up
    (the scale-down unneeded time) and is saved from then until the new node's paid time ends
    or its pods would have ended; ``restarts``: the restart cost of the pods it takes."""
    if not pods:
        return False
    saved = sum(eci_cost(r, eci=eci, seconds=left - boot) for r, left in pods)
    again = list(redo) or [0.0] * len(pods)
    runs = max(left + max(r, 0.0) for (_, left), r in zip(pods, again, strict=True))
    paid = new_node_seconds(boot=boot, runs=runs, linger=linger)
    shed = sum(p * max(min(paid, life) - boot - drain_wait, 0.0) for p, life in freed) / 3600
    return price_per_hour * paid / 3600 < saved + shed - restarts


def move_saving(
    requests: Resources,
    *,
    eci: EciPrice,
    remaining: float,
    restart: float,
    redo: float = 0.0,
    ecs_per_hour: float = 0.0,
) -> float:
    """What moving a pod from ECI into room an ECS node already pays for saves (CNY): ECI's
    bill for the ``remaining`` seconds it would still run there, less the ``restart`` cost, less
    the ``redo`` seconds of work it runs again at ``ecs_per_hour`` (its share of the node's
    price).  The one rule rebalance moves pods by; a move happens only when this is above 0."""
    return (
        eci_cost(requests, eci=eci, seconds=remaining)
        - restart
        - ecs_per_hour * max(redo, 0.0) / 3600
    )
