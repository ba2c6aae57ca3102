"""The ECS-versus-ECI cost model (DESIGN §6): prices are configuration, arithmetic lives here.

ECI bills a running pod per vCPU-second and GiB-second (and per whole GPU: ECI does not share
GPUs); ECS bills a node per hour whether it is busy or not.  A pod that takes a fraction ``s`` of a
node (its largest share over cpu, memory and GPU) is cheaper on ECS over a window of ``H`` seconds
when ``s * node_price * H`` is below what ECI charges for the time the pod really runs in that
window.  For the default 2 vCPU / 8 GiB prices the break-even is 0.353 / 0.529 ≈ 2/3 of the window:
16 hours a day, as the product documentation says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from extender.model import Resources

__all__ = [
    "GIB",
    "EciPrice",
    "break_even_fraction",
    "ecs_cheaper",
    "node_share",
    "share_of",
]

GIB = 2**30


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
    """:func:`node_share` of requests given as numbers (the replay's billing, per bind)."""
    share = 0.0
    for want, have in (
        (cpu_milli, capacity.cpu_milli),
        (memory, capacity.memory),
        (gpu_milli, capacity.gpu_milli),
    ):
        if want > 0:
            part = want / have if have > 0 else math.inf
            if part > share:
                share = part
    return share


def break_even_fraction(*, price_per_hour: float, capacity: Resources, eci: EciPrice) -> float:
    """The fraction of a window a node's worth of pods must run for ECS to be cheaper than ECI."""
    eci_hour = eci.per_hour(capacity)
    if eci_hour <= 0:
        return math.inf
    return price_per_hour / eci_hour


def ecs_cheaper(
    requests: Resources,
    *,
    price_per_hour: float,
    capacity: Resources,
    eci: EciPrice,
    duration: float,
    horizon: float,
) -> bool:
    """Whether the pod's share of an ECS node over ``horizon`` costs less than ECI for its run time."""
    share = node_share(requests, capacity)
    if not math.isfinite(share) or share > 1.0 or horizon <= 0:
        return False
    ecs = share * price_per_hour * horizon / 3600
    runs = min(max(duration, 0.0), horizon)
    return ecs < eci.per_hour(requests) * runs / 3600
