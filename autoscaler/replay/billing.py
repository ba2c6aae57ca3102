"""What a replay pays, and why: ECS nodes from request to removal, ECI pods from start to end.

Prices come from ``autoscaler.costs`` (``EciPrice.per_hour`` is the one ECI formula of the
project: per vCPU-second, GiB-second and whole GPU) and from each node group's price per hour.
Every CNY is put in exactly one bucket of :class:`~autoscaler.replay.results.CostSplit`:

- **ECS busy**: a node's price times the share of it its pods request (``costs.share_of``:
  the largest of cpu, memory and GPU, at most 1);
- **ECS idle, fragmentation**: the rest of a node that hosts pods;
- **ECS idle, booting**: from the request until the node is Ready;
- **ECS idle, pre-provisioned**: Ready but no pod has run on it yet (forecast capacity ahead of
  demand, or spare nodes held by placeholder pods);
- **ECS idle, waiting for scale-down**: empty again after hosting pods, until removed;
- **ECI burst** and **ECI long stay**: ECI pods that ran less than, or at least, ``LONG_STAY``
  (one hour: a pod that stays on ECI for hours is the money ECS capacity would have saved);
- **lost work**: what a Job's pod paid to run again the work an eviction lost
  (``autoscaler.eviction.lost_work``; a service replica loses none): the first seconds of its
  replacement's run, on ECI at its ECI price, on ECS at its share of the node's price (moved out
  of ECS busy);
- **restarts**: every pod evicted (scale-down, consolidation, a reclaimed node) or moved back
  from ECI (rebalance) pays ``restart`` CNY, the scenario's ``settings.rebalance.restartCost``:
  the price rebalance weighs a move against, billed to every variant alike.

The ``TOP_IDLE`` nodes that cost most before their first pod are named (:meth:`Billing.idle_nodes`),
so capacity bought long ahead of demand shows at a glance.  The cumulative cost curve of the
report comes from the same intervals (:meth:`Billing.curve`).
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import numpy.typing as npt

from autoscaler.costs import GIB, EciPrice, share_of
from extender.model import Resources

from .results import CostSplit, IdleNode

__all__ = ["LONG_STAY", "TOP_IDLE", "Billing"]

LONG_STAY = 3600.0
TOP_IDLE = 5


class _Meter:
    """One ECS node's bill: price, allocatable, what its real pods request, since when."""

    __slots__ = (
        "cap",
        "cpu",
        "ever",
        "gpu",
        "group",
        "idle",
        "idle_from",
        "idle_to",
        "mem",
        "n",
        "price",
        "ready",
        "requested",
        "since",
    )

    def __init__(self, price_per_hour: float, cap: Resources, since: float) -> None:
        self.price = price_per_hour / 3600
        self.cap = cap
        self.requested = self.since = since
        self.ready = False
        self.ever = False
        self.cpu = self.mem = self.gpu = self.n = 0
        self.idle = 0.0  # CNY paid while pre-provisioned (Ready, no pod yet)
        self.idle_from = self.idle_to = since


class Billing:
    """Accumulates costs as the simulator binds, unbinds, adds and removes."""

    def __init__(self, eci: EciPrice, *, restart: float = 0.0) -> None:
        self.eci = eci
        self.restart = restart
        self.split = dict.fromkeys(CostSplit.names(), 0.0)
        self._meters: dict[str, _Meter] = {}
        self.requested: dict[str, float] = {}  # node -> when it was asked for, while billed
        self.node_seconds: dict[str, float] = {}
        self.eci_vcpu_s = self.eci_gib_s = self.eci_gpu_s = 0.0
        self._intervals: list[tuple[float, float, float]] = []  # start, end, CNY/s
        self._rates: dict[Resources, float] = {}
        self._idle: list[tuple[float, str, IdleNode]] = []  # the costliest pre-provisioned nodes
        self.lost_on_ecs = 0.0  # of split["lost_work"]: paid on ECS nodes

    # -- ECS ------------------------------------------------------------------------------------
    def node_requested(
        self, name: str, *, price_per_hour: float, allocatable: Resources, now: float
    ) -> None:
        self._meters[name] = _Meter(price_per_hour, allocatable, now)
        self.requested[name] = now

    def billed_nodes(self) -> list[str]:
        return list(self._meters)

    def node_ready(self, name: str, *, now: float) -> None:
        meter = self._meters[name]
        self._close(meter, now)
        meter.ready = True

    def pod_on_node(self, name: str, requests: Resources, delta: int, *, now: float) -> None:
        """A real pod (not a placeholder) starts (``+1``) or stops (``-1``) taking room on a node."""
        meter = self._meters[name]
        self._close(meter, now)
        meter.cpu += delta * requests.cpu_milli
        meter.mem += delta * requests.memory
        meter.gpu += delta * requests.gpu_milli
        meter.n += delta
        meter.ever = True

    def node_removed(self, name: str, group: str, *, now: float) -> None:
        meter = self._meters.pop(name)
        del self.requested[name]
        self._close(meter, now)
        self.node_seconds[group] = self.node_seconds.get(group, 0.0) + now - meter.requested
        self._intervals.append((meter.requested, now, meter.price))
        if meter.idle > 0:
            item = (
                meter.idle,
                name,
                IdleNode(name, group, meter.idle_from, meter.idle_to, meter.idle),
            )
            if len(self._idle) < TOP_IDLE:
                heapq.heappush(self._idle, item)
            else:
                heapq.heappushpop(self._idle, item)

    def _close(self, meter: _Meter, now: float) -> None:
        dt = now - meter.since
        meter.since = now
        if dt <= 0:
            return
        cost = dt * meter.price
        split = self.split
        if not meter.ready:
            split["ecs_booting"] += cost
        elif meter.n == 0:
            split["ecs_scale_down_wait" if meter.ever else "ecs_pre_provisioned"] += cost
            if not meter.ever:
                if not meter.idle:
                    meter.idle_from = now - dt
                meter.idle += cost
                meter.idle_to = now
        else:
            share = share_of(meter.cpu, meter.mem, meter.gpu, meter.cap)
            if share > 1.0:
                share = 1.0
            split["ecs_busy"] += cost * share
            split["ecs_fragmentation"] += cost * (1.0 - share)

    # -- ECI ------------------------------------------------------------------------------------
    def eci_pod(
        self, requests: Resources, *, started: float, ended: float, redo: float = 0.0
    ) -> None:
        """An ECI pod that ran from ``started`` to ``ended``, the first ``redo`` seconds of
        which ran again work an eviction lost."""
        ran = ended - started
        if ran <= 0:
            return
        rate = self._rates.get(requests)
        if rate is None:
            rate = self._rates[requests] = self.eci.per_hour(requests) / 3600
        self.eci_vcpu_s += requests.cpu_milli / 1000 * ran
        self.eci_gib_s += requests.memory / GIB * ran
        self.eci_gpu_s += math.ceil(requests.gpu_milli / 1000) * ran
        self.split["eci_long_stay" if ran >= LONG_STAY else "eci_burst"] += rate * (ran - redo)
        self.split["lost_work"] += rate * redo
        self._intervals.append((started, ended, rate))

    def redone_on_node(self, name: str, requests: Resources, seconds: float) -> None:
        """A pod just left node ``name``: ``seconds`` of its run there were work run again (call
        after ``pod_on_node(..., -1)``); its share of the node for that time moves from ECS busy
        to lost work."""
        meter = self._meters[name]
        share = min(
            share_of(requests.cpu_milli, requests.memory, requests.gpu_milli, meter.cap), 1.0
        )
        cost = meter.price * share * seconds
        self.split["ecs_busy"] -= cost
        self.split["lost_work"] += cost
        self.lost_on_ecs += cost

    def restarted(self) -> None:
        """A pod was evicted or moved: its replacement starts over."""
        self.split["restarts"] += self.restart

    # -- the end --------------------------------------------------------------------------------
    def result(self) -> CostSplit:
        return CostSplit(**self.split)

    def idle_nodes(self) -> tuple[IdleNode, ...]:
        """The nodes that cost most before their first pod, costliest first."""
        return tuple(item[2] for item in sorted(self._idle, reverse=True))

    def curve(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Cumulative cost at times ``t`` (call after every node and pod is closed)."""
        if not self._intervals:
            return np.zeros_like(t)
        # The cost rate is piecewise constant, so cumulative cost is piecewise linear between
        # the interval ends: integrate at the breakpoints, interpolate at the samples.
        arr = np.asarray(self._intervals, np.float64)
        times = np.concatenate([arr[:, 0], arr[:, 1]])
        deltas = np.concatenate([arr[:, 2], -arr[:, 2]])
        order = np.argsort(times, kind="stable")
        times, deltas = times[order], deltas[order]
        rate = np.cumsum(deltas)
        spent = np.concatenate([[0.0], np.cumsum(rate[:-1] * np.diff(times))])
        result: npt.NDArray[np.float64] = np.interp(t, times, spent, left=0.0)
        return result
