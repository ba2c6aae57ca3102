"""Predictive scale-up: pre-provision ECS nodes for forecast demand that lasts, per resource class.

Demand is aggregate and per resource class (what the controller and the replay record: requests
of live pods that may run on ECS, whether they run on ECS, on ECI or wait):

- ``cpu``: requested **CPU cores** of pods without GPUs, held by general groups (no NoSchedule
  or NoExecute taint, no GPU);
- ``gpu``: requested **GPUs** (``gpu_milli / 1000``) of GPU pods, held by groups with GPUs.

Aggregate matters: a thousand 12-minute pods are each too short to be cheaper on ECS, but if they
keep a dozen GPUs busy around the clock those GPUs belong on ECS.  For each class with a
forecast, ECS should hold the part that lasts: over the next boot time + horizon, the level that
the upper quantile stays above for at least the break-even fraction of the window
(``autoscaler.costs``; about 2/3 with the default general-purpose prices).  Capacity of the
class's groups short of that level is added to one of them (the expander picks).  Pods then find
that room as they arrive (the placement policy takes the first unit with a feasible node), so no
pod is ever moved.  A forecast never removes a node; it only keeps scale-down from taking the
class's capacity below its level.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from extender.model import NodeKind, Resources
from extender.policy import ResourcePolicy

from .context import Context, Growth
from .costs import break_even_fraction
from .expanders import Option, expander_for
from .nodegroup import NodeGroup

if TYPE_CHECKING:
    from .forecast import Forecast, Forecaster

__all__ = [
    "CLASSES",
    "CPU",
    "GPU",
    "PREDICTIVE",
    "Level",
    "RefitRule",
    "by_class",
    "class_demand_of",
    "demand_class",
    "forecast_levels",
    "group_class",
    "pre_provision",
]

PREDICTIVE = "predictive"
CPU = "cpu"
GPU = "gpu"
CLASSES = (CPU, GPU)
DIM = {CPU: 0, GPU: 2}  # column of the class in the planner's (cpu, memory, gpu, pods) vectors
_UNIT = {CPU: "cores", GPU: "GPUs"}
_GROUPS = {CPU: "general-purpose node group (untainted, no GPU)", GPU: "node group with GPUs"}


def group_class(group: NodeGroup) -> str | None:
    """The class whose demand ``group`` holds: ``gpu`` with GPUs, ``cpu`` if general, else none."""
    if group.instance_type.gpu_milli > 0:
        return GPU
    hard = any(t.effect in ("NoSchedule", "NoExecute") for t in group.taints)
    return None if hard else CPU


def demand_class(requests: Resources) -> tuple[str, int]:
    """A pod's class and its demand in milli-units of that class (millicores or GPU-milli)."""
    if requests.gpu_milli > 0:
        return GPU, requests.gpu_milli
    return CPU, requests.cpu_milli


def class_demand_of(
    requests: Resources, *, on: NodeKind | None, policy: ResourcePolicy | None
) -> tuple[str, int]:
    """A live pod's part of its class's demand, in milli-units (the controller and the replay).

    ``on``: where it runs (``None``: waiting for a node).  Pods waiting and pods on ECS count;
    pods on ECI count when their placement policy has an ECS unit (short pods there are steady
    demand in aggregate), not otherwise (nothing would ever put them on ECS).
    """
    cls, amount = demand_class(requests)
    if on is NodeKind.ECI and (policy is None or not policy.has_ecs):
        return cls, 0
    return cls, amount


@dataclass(frozen=True, slots=True)
class RefitRule:
    """When each class's forecast is refitted, on how much history, and how far it reaches.

    One rule for the controller and the replay: refit every ``every`` seconds; a class with less
    than ``min_history`` seconds of history, or a GPU class that never had demand, gets no
    forecast; a forecast reaches until the next refit plus the longest boot time plus the
    planner's ``forecast_horizon`` (it is in force that long).
    """

    every: float
    min_history: float

    def due(self, *, now: float, fitted_at: float) -> bool:
        return now - fitted_at >= self.every

    def reach(self, groups: Iterable[NodeGroup], *, horizon: float) -> float:
        boot = max((g.boot_time for g in groups), default=0.0)
        return self.every + boot + horizon

    def refit(
        self,
        histories: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]],
        *,
        forecaster: Forecaster,
        reach: float,
    ) -> tuple[dict[str, Forecast], list[str]]:
        """Forecasts per class from ``(ts, values)`` histories, and the errors of classes that failed."""
        out: dict[str, Forecast] = {}
        errors: list[str] = []
        for cls, (ts_raw, values_raw) in histories.items():
            ts = np.asarray(ts_raw, np.float64)
            values = np.asarray(values_raw, np.float64)
            if ts.size == 0 or ts[-1] - ts[0] < self.min_history:
                continue
            if cls != CPU and float(values.max()) <= 0:
                continue  # no demand of this class ever: nothing to pre-provision
            try:
                out[cls] = forecaster.fit(ts, values).predict(horizon=reach)
            except (ValueError, np.linalg.LinAlgError) as err:
                errors.append(f"{cls}: {err}")
        return out, errors


def by_class(forecast: Forecast | Mapping[str, Forecast] | None) -> dict[str, Forecast]:
    """Forecasts per class; a bare ``Forecast`` is the ``cpu`` class (what it used to mean)."""
    if forecast is None:
        return {}
    if isinstance(forecast, Mapping):
        return dict(forecast)
    return {CPU: forecast}


@dataclass(frozen=True, slots=True)
class Level:
    """Forecast demand of one class that belongs on ECS, in milli-units, and the groups for it."""

    cls: str
    groups: tuple[int, ...]
    milli: float

    @property
    def dim(self) -> int:
        return DIM[self.cls]

    def describe(self, milli: float) -> str:
        return f"{milli / 1000:.2f} {_UNIT[self.cls]}"


def forecast_levels(
    ctx: Context, forecasts: Mapping[str, Forecast], *, now: float, notes: list[str]
) -> list[Level]:
    """Per class with a forecast, the level that lasts long enough to belong on ECS."""
    levels = []
    for cls, forecast in forecasts.items():
        if cls not in DIM:
            notes.append(f"forecast of unknown class {cls!r} ignored")
            continue
        level = _level(ctx, cls, forecast, now=now, notes=notes)
        if level is not None:
            levels.append(level)
    return levels


def _level(
    ctx: Context, cls: str, forecast: Forecast, *, now: float, notes: list[str]
) -> Level | None:
    groups = tuple(g for g, gs in enumerate(ctx.groups) if group_class(gs.group) == cls)
    if not groups:
        notes.append(f"{cls} forecast ignored: no {_GROUPS[cls]}")
        return None
    eci = ctx.settings.eci_price
    fraction = min(
        break_even_fraction(
            price_per_hour=ctx.groups[g].group.price_per_hour,
            capacity=ctx.templates[g].allocatable,
            eci=eci,
        )
        for g in groups
    )
    boot = max(ctx.groups[g].group.boot_time for g in groups)
    end = now + boot + ctx.settings.forecast_horizon
    window = _window(forecast, now - forecast.step, end)
    if window.size == 0:
        notes.append(f"{cls} forecast ignored: it does not cover the next boot time + horizon")
        return None
    if fraction >= 1.0:
        notes.append(f"{cls} forecast: ECS is never cheaper than ECI at these prices")
        return None
    value = max(_quantile(window, 1.0 - fraction), 0.0)
    level = Level(cls, groups, value * 1000)
    notes.append(
        f"forecast: the {forecast.quantile:.0%} upper bound stays at or above "
        f"{level.describe(level.milli)} for {fraction:.0%} of the next {(end - now) / 60:.0f} min "
        "(break-even share), so that much belongs on ECS"
    )
    return level


def _window(forecast: Forecast, lo: float, hi: float) -> npt.NDArray[np.float64]:
    """``forecast.upper`` at the steps whose time ``start + step * i`` is within [lo, hi].

    The steps are found by arithmetic, then checked with the exact expression the mask
    ``lo <= forecast.times <= hi`` evaluates, so the slice is the mask's, without the arrays."""
    start, step, n = forecast.start, forecast.step, forecast.upper.size
    if not (step > 0 and math.isfinite(start) and math.isfinite(lo) and math.isfinite(hi)):
        times = start + step * np.arange(n, dtype=np.float64)
        return forecast.upper[(times >= lo) & (times <= hi)]
    first = min(max(math.ceil((lo - start) / step), 0), n)
    while first > 0 and start + step * (first - 1) >= lo:
        first -= 1
    while first < n and start + step * first < lo:
        first += 1
    last = min(max(math.floor((hi - start) / step), -1), n - 1)
    while last + 1 < n and start + step * (last + 1) <= hi:
        last += 1
    while last >= 0 and start + step * last > hi:
        last -= 1
    return forecast.upper[first : max(first, last + 1)]


def _quantile(values: npt.NDArray[np.float64], q: float) -> float:
    """``np.quantile(values, q)`` (method "linear", bit for bit) without its per-call overhead,
    which dominated the planner pass on windows of a few dozen steps."""
    if np.isnan(values).any():
        return float(np.quantile(values, q))
    xs: list[float] = sorted(values.tolist())
    n = len(xs)
    v = (n - 1) * q
    if v >= n - 1:
        return xs[-1]
    if v < 0:
        return xs[0]
    below = math.floor(v)
    a, b = xs[below], xs[below + 1]
    t = v - below
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t  # numpy's _lerp


def pre_provision(
    ctx: Context,
    level: Level,
    added: dict[int, Growth],
    *,
    now: float,
    notes: list[str],
) -> None:
    dim = level.dim
    capacity = ctx.capacity_milli(level.groups, dim, added)
    deficit = level.milli - capacity
    if deficit <= 0:
        return
    loop_left = ctx.settings.max_nodes_per_loop - sum(a.delta for a in added.values())
    eci = ctx.settings.eci_price
    hours = ctx.settings.forecast_horizon / 3600
    options = []
    for g in level.groups:
        gs = ctx.groups[g]
        if gs.in_cooldown(now):
            continue
        grown = added[g].delta if g in added else 0
        room = min(gs.group.max_size - gs.target_size - grown, loop_left)
        cap = ctx.templates[g].allocatable
        per_node = int(ctx.cap[g, dim])
        if room <= 0 or per_node <= 0:
            continue
        nodes = min(room, math.ceil(deficit / per_node))
        covered = min(deficit, nodes * per_node)
        waste = 1.0 - covered / (nodes * per_node)
        # what ECI charges for that much demand, other resources in the node's ratio
        eci_hour = covered / per_node * eci.per_hour(cap)
        options.append(
            Option(
                gs.group,
                nodes,
                0,
                waste,
                waste,
                nodes * gs.group.price_per_hour * hours,
                eci_hour * hours,
            )
        )
    choice = expander_for(ctx.settings).choose(options)
    if choice is None:
        notes.append(
            f"forecast wants {level.describe(deficit)} more on ECS but no "
            f"{_GROUPS[level.cls]} can grow now"
        )
        return
    option, why = choice
    g = next(i for i, gs in enumerate(ctx.groups) if gs.group is option.group)
    reason = (
        f"forecast: pre-provision {option.nodes} node(s) for {level.describe(deficit)} of lasting "
        f"demand above ECS capacity {level.describe(capacity)}; {why}"
    )
    added.setdefault(g, Growth()).add(option.nodes, pods=(), reason=reason, code=PREDICTIVE)
