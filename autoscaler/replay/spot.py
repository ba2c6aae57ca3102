"""Spot interruptions: when the cloud takes back a node of a spot group.

Each Ready node of a group with ``spot: true`` is reclaimed after an exponentially distributed
time with the scenario's rate (``spot.interruptionsPerHour``, per node).  The draw is seeded by
the scenario's seed and the node's name, so it does not depend on the order of other random draws
(ECI start jitter) or on which other nodes exist: the same node is reclaimed at the same time in
every variant and on every executor.  A reclaimed node is removed from its group as a scale-down
would (its pods are evicted and placed again; the autoscaler reacts); a node whose group is at its
minimum size is not reclaimed, because the provider cannot go below it (ESS would replace the
instance at once, which this model leaves out).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from autoscaler.nodegroup import NodeGroup

__all__ = ["SpotReclaims"]


class SpotReclaims:
    def __init__(self, *, groups: Mapping[str, NodeGroup], rate_per_hour: float, seed: int) -> None:
        self.spot = {name for name, g in groups.items() if g.spot}
        self.rate = rate_per_hour / 3600.0
        self.seed = seed
        self.due: dict[int, str] = {}  # event sequence number -> node name

    def reclaim_at(self, node: str, group: str, *, now: float) -> float | None:
        """When ``node`` (just Ready) is reclaimed, or None (not spot, or a zero rate)."""
        if self.rate <= 0 or group not in self.spot:
            return None
        return now + random.Random(f"{self.seed}/spot/{node}").expovariate(self.rate)
