"""Predictive scale-up: pre-provision ECS nodes for forecast demand that lasts.

The forecast is cluster-wide ECS demand in **requested CPU cores** (what the controller records:
cpu requests of pods on ECS plus ECS demand that is pending).  ECS should hold the part of it that
lasts: over the next boot time + horizon, the level that the upper quantile stays above for at
least the break-even fraction of the window (about 2/3 with the default prices).  Capacity short of
that level is added to a general group (no NoSchedule taint, no GPU).  A forecast never removes a
node; it only keeps scale-down from going below that level (the planner passes the level on as
the scale-down floor).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .context import Context, Growth
from .costs import GIB, break_even_fraction
from .expanders import Option, expander_for

if TYPE_CHECKING:
    from .forecast import Forecast

__all__ = ["PREDICTIVE", "forecast_level", "pre_provision"]

PREDICTIVE = "predictive"


def _general(ctx: Context, g: int) -> bool:
    group = ctx.groups[g].group
    hard = any(t.effect in ("NoSchedule", "NoExecute") for t in group.taints)
    return not hard and group.instance_type.gpu_milli == 0


def forecast_level(ctx: Context, forecast: Forecast, now: float, notes: list[str]) -> float:
    """Cores of forecast demand that last long enough to belong on ECS (0 when none)."""
    general = [g for g in range(len(ctx.groups)) if _general(ctx, g)]
    if not general:
        notes.append("forecast ignored: no general-purpose node group (untainted, no GPU)")
        return 0.0
    eci = ctx.settings.eci_price
    fraction = min(
        break_even_fraction(
            price_per_hour=ctx.groups[g].group.price_per_hour,
            capacity=ctx.templates[g].allocatable,
            eci=eci,
        )
        for g in general
    )
    boot = max(ctx.groups[g].group.boot_time for g in general)
    end = now + boot + ctx.settings.forecast_horizon
    times = forecast.start + forecast.step * np.arange(forecast.upper.size, dtype=np.float64)
    window = forecast.upper[(times >= now - forecast.step) & (times <= end)]
    if window.size == 0:
        notes.append("forecast ignored: it does not cover the next boot time + horizon")
        return 0.0
    if fraction >= 1.0:
        notes.append("forecast: ECS is never cheaper than ECI at these prices")
        return 0.0
    level = float(np.quantile(window, 1.0 - fraction))
    notes.append(
        f"forecast: the {forecast.quantile:.0%} upper bound stays at or above {level:.2f} cores "
        f"for {fraction:.0%} of the next {(end - now) / 60:.0f} min (break-even share), "
        "so that much belongs on ECS"
    )
    return max(level, 0.0)


def pre_provision(
    ctx: Context,
    level: float,
    added: dict[int, Growth],
    *,
    now: float,
    notes: list[str],
) -> None:
    capacity = ctx.ecs_capacity_milli(added)
    deficit = level * 1000 - capacity
    if deficit <= 0:
        return
    loop_left = ctx.settings.max_nodes_per_loop - sum(a.delta for a in added.values())
    eci = ctx.settings.eci_price
    hours = ctx.settings.forecast_horizon / 3600
    options = []
    for g, gs in enumerate(ctx.groups):
        if not _general(ctx, g) or gs.in_cooldown(now):
            continue
        grown = added[g].delta if g in added else 0
        room = min(gs.group.max_size - gs.target_size - grown, loop_left)
        cap = ctx.templates[g].allocatable
        if room <= 0 or cap.cpu_milli <= 0:
            continue
        nodes = min(room, math.ceil(deficit / cap.cpu_milli))
        covered = min(deficit, nodes * cap.cpu_milli)
        waste = 1.0 - covered / (nodes * cap.cpu_milli)
        memory = covered / cap.cpu_milli * cap.memory  # in the group's cpu:memory ratio
        eci_hour = covered / 1000 * eci.vcpu_second * 3600 + memory / GIB * eci.gib_second * 3600
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
            f"forecast wants {deficit / 1000:.2f} more ECS cores but no general group can grow now"
        )
        return
    option, why = choice
    g = next(i for i, gs in enumerate(ctx.groups) if gs.group is option.group)
    reason = (
        f"forecast: pre-provision {option.nodes} node(s) for {deficit / 1000:.2f} cores of lasting "
        f"demand above ECS capacity {capacity / 1000:.2f} cores; {why}"
    )
    added.setdefault(g, Growth()).add(option.nodes, pods=(), reason=reason, code=PREDICTIVE)
