"""Which node kube-scheduler picks among those that fit: its resource scores, as configured.

The extender decides the *unit* (ECS or ECI, which pool); among the unit's nodes that fit,
kube-scheduler's score plugins pick one, and how they pick decides how tightly GPU-sharing pods
are packed (fragmentation: the ATC'23 "Beware of Fragmentation" problem).  The replay models the
two profiles that matter here, from kube-scheduler's source (``noderesources`` plugins, v1.3x):

- **stock** (``STOCK``): what a KubeSchedulerConfiguration without ``pluginConfig`` runs:
  ``NodeResourcesFit`` with ``LeastAllocated`` over cpu and memory (weight 1 each), plus
  ``NodeResourcesBalancedAllocation`` (cpu, memory): pods are *spread*.
- **bin-packing** (``BIN_PACKING``): the profile Spillover's manifests ship
  (``manifests/overlays/*/scheduler-config.yaml``, ``manifests/kind/scheduler-config.yaml``):
  ``NodeResourcesFit`` with ``MostAllocated`` over cpu, memory and ``nvidia.com/gpu`` (weight 1
  each), ``NodeResourcesBalancedAllocation`` disabled, as cluster-autoscaler and Karpenter users
  configure it.  ``from_profile`` reads a profile of such a file, and a test checks that every
  shipped file configures exactly ``BIN_PACKING``.

A resource's score is ``requested * 100 // allocatable`` (MostAllocated) or
``(allocatable - requested) * 100 // allocatable`` (LeastAllocated), ``requested`` including the
pod; an extended resource (the GPU) counts only when the pod requests it, a resource the node
does not have not at all; the plugin's score is the weighted sum divided by the sum of the
weights, integer division.  BalancedAllocation scores ``(1 - std) * 100`` of the cpu and memory
fractions.  The other default plugins score every candidate alike in a replay (no images,
affinities, topology spread or PreferNoSchedule taints), and so does the extender within the
unit it chose.  Ties: kube-scheduler picks one of the best at random; the replay takes the first
in its order (cheapest group first, then the oldest node), deterministic.  Not modelled:
kube-scheduler counts a pod that requests no cpu or memory as 100m / 200 MiB in scores (one pod
of the default openb list asks for no memory).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BIN_PACKING", "PROFILES", "STOCK", "Scoring", "from_profile", "score"]

GPU = "nvidia.com/gpu"


@dataclass(frozen=True, slots=True)
class Scoring:
    """A kube-scheduler profile's resource scoring."""

    strategy: str  # "MostAllocated" | "LeastAllocated"
    weights: tuple[tuple[str, int], ...]  # (resource, weight) of NodeResourcesFit
    balanced: bool  # NodeResourcesBalancedAllocation enabled (cpu, memory; weight 1)
    # ``weights`` as (index in score's tuples, weight), worked out once: ``score`` runs for every
    # node that fits every pod the replay places
    terms: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {"cpu": 0, "memory": 1, GPU: 2}
        object.__setattr__(self, "terms", tuple((index.get(n, -1), w) for n, w in self.weights))


STOCK = Scoring("LeastAllocated", (("cpu", 1), ("memory", 1)), balanced=True)
BIN_PACKING = Scoring("MostAllocated", (("cpu", 1), ("memory", 1), (GPU, 1)), balanced=False)
PROFILES = {"stock": STOCK, "bin-packing": BIN_PACKING}


def score(
    s: Scoring,
    *,
    free: tuple[int, int, int],
    alloc: tuple[int, int, int],
    req: tuple[int, int, int],
) -> int:
    """The node's total resource score for a pod (cpu millicores, memory bytes, GPU-milli)."""
    most = s.strategy == "MostAllocated"
    total = weight_sum = 0
    for i, weight in s.terms:
        if i < 0:
            raise KeyError(next(n for n, _ in s.weights if n not in ("cpu", "memory", GPU)))
        cap = alloc[i]
        if cap <= 0 or (i == 2 and req[2] <= 0):  # GPU: counted only when the pod requests it
            continue
        used = min(alloc[i] - free[i] + req[i], cap)
        total += weight * (used * 100 // cap if most else (cap - used) * 100 // cap)
        weight_sum += weight
    fit = total // weight_sum if weight_sum else 0
    if not s.balanced:
        return fit
    cpu, mem = alloc[0], alloc[1]
    if cpu > 0 and mem > 0:
        a = min((cpu - free[0] + req[0]) / cpu, 1.0)
        b = min((mem - free[1] + req[1]) / mem, 1.0)
        std = abs(a - b) / 2
    else:
        std = 0.0
    return fit + int((1 - std) * 100)


def from_profile(profile: Mapping[str, Any]) -> Scoring:
    """The resource scoring of one ``profiles[]`` entry of a KubeSchedulerConfiguration."""
    strategy, weights = "LeastAllocated", STOCK.weights
    for entry in profile.get("pluginConfig") or ():
        if entry.get("name") != "NodeResourcesFit":
            continue
        scoring = (entry.get("args") or {}).get("scoringStrategy") or {}
        strategy = scoring.get("type", strategy)
        resources = scoring.get("resources")
        if resources:
            weights = tuple((r["name"], int(r.get("weight", 1))) for r in resources)
    disabled = (((profile.get("plugins") or {}).get("score") or {}).get("disabled")) or ()
    balanced = not any(p.get("name") in ("NodeResourcesBalancedAllocation", "*") for p in disabled)
    return Scoring(strategy, weights, balanced)
