"""Predictive scale-up: pre-provision ECS nodes for forecast demand that lasts, per resource class.

Demand is aggregate and per resource class (what the controller and the replay record: requests
of live pods that may run on ECS, whether they run on ECS, on ECI or wait):

- ``cpu``: requested **CPU cores** of pods without GPUs, held by general groups (no NoSchedule
  or NoExecute taint, no GPU);
- ``gpu``: requested **GPUs** (``gpu_milli / 1000``) of GPU pods, held by groups with GPUs.

Aggregate matters: a thousand 12-minute pods are each too short to be cheaper on ECS, but if they
keep a dozen GPUs busy around the clock those GPUs belong on ECS.  Nodes come whole, so each node
is judged on its own, by break-even: stacked above the class's capacity, the k-th node holds the
slice of demand between ``capacity + (k-1) * per_node`` and ``capacity + k * per_node``; it is
added when what ECI would bill for that slice over the horizon, by the *point* forecast (the
expected demand: an overflow to ECI starts in seconds, so forecast capacity only saves money and
is judged by expected value, not by the upper band), exceeds what the node costs from now until the
end of the horizon (boot included).  ECI's price of a slice is the node's worth of ECI
(``EciPrice.per_hour`` of its allocatable) in proportion.  The expander picks among the groups
that have such nodes.  Pods then find that room as they arrive (the placement policy takes the
first unit with a feasible node).

Demand that new capacity would not take is not stacked against it (``pinned``): a pod running on
ECI counts in its class's demand (the history is the arrivals ECS could have held), but capacity
added to a group takes it only if an eviction can move it there (``eviction.move_blocker``: a
bare pod stays on ECI for the rest of its life; a Job's pod moves, running its work again, when
its share of a node costs less than ECI: ``rebalance``), the group's new node holds it and
its policy's unbounded ECS unit contains that node.  The others are subtracted from the forecast
until their expected end, for the nodes added and for the capacity kept: without that, a bare
8-GPU pod that overflowed while no node had room made the forecast buy and keep an empty GPU node
it could never use, and a 20-core replica two 8-core nodes it did not fit (bench/RESULTS.md,
issue 12).  The expected end is the pod's expected remaining run time (``demand.remaining``), but
at least its age: a pod whose run time is unknown, or that has outlived its estimate, is expected
to run as long again (the median remaining life of a process of age ``a`` is about ``a`` under
the heavy-tailed lifetimes Harchol-Balter and Downey measured, "Exploiting process lifetime
distributions for dynamic load balancing", 1997; on the openb lists the median remaining life
of latency-sensitive tasks is 0.8 to 36 times their age).  A stream of short pods on ECI, each
young, so counts for the few minutes it has left and stays the arrivals new capacity takes.

The same rule, without the boot, keeps capacity: scale-down may not take the class's capacity
below the ``Level`` (``milli``: the nodes, stacked from zero, whose slice still pays over the
horizon).  When the forecast falls the level falls with it and the nodes above it go as any idle
node goes (the unneeded time, or consolidation's ``empty_after``).  A class whose forecast never
rises above zero in the window gets no level at all, and only pods a policy could put on ECS count
as demand (``class_demand_of``): a pod beyond its unit's ``max`` never uses forecast capacity.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from extender.model import Node, NodeKind, Pod, Resources
from extender.policy import ResourcePolicy

from .context import Context, Growth, by_identity, policy_of, vector
from .costs import break_even_fraction
from .demand import remaining
from .eviction import move_blocker
from .expanders import Option, expander_for
from .nodegroup import NodeGroup, PlannerSettings

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
    "paying_nodes",
    "pinned",
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
    pods on ECI count when their placement policy has an ECS unit without ``max`` (short pods
    there are steady demand in aggregate), not otherwise: nothing would ever put them on ECS, or,
    under a ``max``, a pod on ECI may be one beyond it, which ECS capacity would never hold (an
    ECI pod under the max that overflowed for lack of room is moved back by rebalance into room
    that exists).
    """
    cls, amount = demand_class(requests)
    if on is NodeKind.ECI and (policy is None or not _unbounded_ecs(policy)):
        return cls, 0
    return cls, amount


def _unbounded_ecs(policy: ResourcePolicy) -> bool:
    return any(u.resource is NodeKind.ECS and u.max is None for u in policy.units)


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
    """Forecast demand of one class that belongs on ECS, and the groups for it.

    ``milli``: the capacity scale-down keeps (whole nodes whose slice pays, see the module
    docstring); ``after_boot``: the point forecast over the horizon after the longest boot, in
    milli-units, which ``pre_provision`` stacks new nodes against, less ``pinned[i][j]`` at its
    step ``j`` for the group ``groups[i]`` (``pinned``: the demand of pods on ECI that nodes
    added to the group would not take, at each step)."""

    cls: str
    groups: tuple[int, ...]
    milli: float
    after_boot: tuple[float, ...] = ()
    pinned: tuple[tuple[float, ...], ...] = ()

    @property
    def dim(self) -> int:
        return DIM[self.cls]

    def describe(self, milli: float) -> str:
        return f"{milli / 1000:.2f} {_UNIT[self.cls]}"


def paying_nodes(
    demand: Sequence[float],
    *,
    base: float,
    per_node: float,
    node_cost: float,
    slice_value: float,
    limit: int,
) -> int:
    """How many nodes of ``per_node`` milli-units, stacked above ``base``, each pay for
    themselves: the k-th holds ``clip(demand - base - (k-1) * per_node, 0, per_node)`` at each
    step, worth ``slice_value`` (CNY for a full node's slice over the window) times its mean
    share of a full slice; it pays when that is more than ``node_cost``.  At most ``limit``.

    The answer is the first node that does not pay, found by bisection: each node's share is
    computed exactly as a scan from the bottom would (same terms, same order of addition), and
    it never grows with the node's height (every term is monotone in ``lo`` and float addition
    is monotone in each argument), so "pays" holds for a prefix of the nodes and bisection
    finds the same node as the scan in log2(limit) sums instead of up to ``limit``.

    A pure function of its arguments, called again and again with the same ones (passes between
    two forecast steps see the same window): the last answers are kept in ``_PAID`` (arguments
    that compare equal give the same answer: the sums only add and compare floats, and 0.0 and
    -0.0 add the same).

    Of finite numbers, only the demand above ``base`` is summed: a step at or below a node's
    bottom ``lo`` (>= ``base``) holds 0.0 or -0.0 of it, which leaves the sum as it is (the sum
    is never -0.0: it starts as ``0 + `` the first term, and no term is below zero); a step
    above holds ``min(d - lo, per_node)``, the same float.  With a NaN or an infinity (where
    ``d - lo`` may be NaN), every step is summed as defined."""
    if per_node <= 0 or not demand or limit <= 0:
        return 0
    key = (tuple(demand), base, per_node, node_cost, slice_value, limit)
    found = _PAID.get(key)
    if found is not None:
        return found
    n = len(demand)
    if math.isfinite(base) and math.isfinite(per_node) and all(map(math.isfinite, demand)):
        above = [d for d in demand if d > base]

        def pays(k: int) -> bool:
            lo = base + k * per_node
            held = sum([min(d - lo, per_node) for d in above if d > lo]) / n
            return held / per_node * slice_value > node_cost

    else:

        def pays(k: int) -> bool:
            lo = base + k * per_node
            held = sum([min(max(d - lo, 0.0), per_node) for d in demand]) / n
            return held / per_node * slice_value > node_cost

    first, last = 0, limit  # the answer is in [first, last]
    while first < last:
        mid = (first + last) // 2
        if pays(mid):
            first = mid + 1
        else:
            last = mid
    if len(_PAID) >= 1024:
        _PAID.clear()
    _PAID[key] = first
    return first


def pinned(
    ctx: Context, cls: str, groups: Sequence[int], *, now: float
) -> list[list[tuple[float, float]]]:
    """Per group of ``groups``: ``(until, milli)`` of each pod running on ECI whose class demand
    (``class_demand_of``) nodes added to that group would not take (module docstring), until its
    expected end: its expected remaining run time (``demand.remaining``), but at least its age
    (module docstring).  Pods that take the group's nodes are not listed."""
    out: list[list[tuple[float, float]]] = [[] for _ in groups]
    policies = ctx.state.policies
    if not policies:
        return out
    cap = ctx.cap
    horizon = ctx.settings.forecast_horizon
    # per (pod class, policy): the groups of ``groups`` an unbounded ECS unit gives the class
    unbounded: dict[tuple[int, int], set[int]] = {}
    for node in ctx.eci_nodes:
        for pod in ctx.state.pods_on(node.name):
            if pod.finished or pod.terminating:
                continue
            mine, amount, policy, stuck = _on_eci(policies, pod)
            if mine != cls or amount <= 0 or policy is None:
                continue  # policy None: not demand at all (class_demand_of)
            r = pod.requests
            age = now - pod.created if pod.created > 0 else 0.0
            until = now + max(remaining(pod, now=now, horizon=horizon), age)
            if until <= now:
                continue
            if stuck:  # no group's nodes take it
                for held in out:
                    held.append((until, float(amount)))
                continue
            c = ctx.class_of(pod)
            given = unbounded.get((c, id(policy)))
            if given is None:
                given = unbounded[c, id(policy)] = {
                    g
                    for g in groups
                    if ctx.classes[c].groups[g]
                    and any(
                        u.resource is NodeKind.ECS
                        and u.max is None
                        and u.contains(ctx.templates[g])
                        for u in policy.units
                    )
                }
            for i, g in enumerate(groups):
                takes = (
                    g in given
                    and r.cpu_milli <= cap[g, 0]
                    and r.memory <= cap[g, 1]
                    and r.gpu_milli <= cap[g, 2]
                )
                if not takes:
                    out[i].append((until, float(amount)))
    return out


@by_identity(65536)
def _on_eci(
    policies: tuple[ResourcePolicy, ...], pod: Pod
) -> tuple[str, int, ResourcePolicy | None, bool]:
    """What ``pinned`` reads of a pod on ECI that does not depend on the time: its class and
    demand (``demand_class``), its policy if that has an unbounded ECS unit (else None: the pod
    is no demand), and whether an eviction cannot move it (``eviction.move_blocker``).  Kept per
    (policies, pod) pair of objects, both immutable (``context.policy_of``)."""
    mine, amount = demand_class(pod.requests)
    policy = policy_of(policies, pod)
    return (
        mine,
        amount,
        policy if policy is not None and _unbounded_ecs(policy) else None,
        move_blocker(pod) is not None,
    )


def _profile(pods: Sequence[tuple[float, float]], times: Sequence[float]) -> tuple[float, ...]:
    """The summed milli of ``pods`` (``(until, milli)``) still running at each of ``times``."""
    if not pods:  # most groups of most passes: the sums of nothing
        return (0,) * len(times)
    return tuple(sum(m for until, m in pods if until > t) for t in times)


_PAID: dict[tuple[tuple[float, ...], float, float, float, float, int], int] = {}


def forecast_levels(
    ctx: Context, forecasts: Mapping[str, Forecast], *, now: float, notes: list[str]
) -> list[Level]:
    """Per class with a forecast, the capacity that pays on ECS and the demand to stack against."""
    levels = []
    for cls, forecast in forecasts.items():
        if cls not in DIM:
            notes.append(f"forecast of unknown class {cls!r} ignored")
            continue
        level = _level(ctx, cls, forecast, now=now, notes=notes)
        if level is not None:
            levels.append(level)
    return levels


def _slice_value(settings: PlannerSettings, template: Node, hours: float) -> float:
    """What ECI bills over ``hours`` for one node of a group's worth (its ``template``)."""
    return float(settings.eci_price.per_hour(template.allocatable)) * hours


@dataclass(frozen=True, slots=True)
class _ClassGroups:
    """What ``_level`` reads of one class's groups: a function of the group objects, their
    templates and the settings only (``_groups_by_class``)."""

    groups: tuple[int, ...]
    fraction: float  # the lowest break-even fraction among them
    boot: float  # the longest boot time
    g: int  # the group of the finest granularity
    per_node: float
    node_cost: float  # what one node of ``g`` costs over the horizon
    slice_value: float  # what ECI bills for one node of ``g``'s worth over the horizon


def _class_groups(ctx: Context, cls: str) -> _ClassGroups:
    """``_ClassGroups`` of ``cls`` in ``ctx``: the planner plans the same groups pass after pass."""
    return _groups_by_class(ctx.settings, *(gs.group for gs in ctx.groups))[cls]


@by_identity(256)
def _groups_by_class(settings: PlannerSettings, *spec: NodeGroup) -> dict[str, _ClassGroups]:
    """``_ClassGroups`` of every class, kept by the identity of the settings and group objects
    (frozen; the templates are made from them, as ``Context``'s are)."""
    templates = [group.template(overhead=settings.daemonset_overhead) for group in spec]
    caps = [vector(t.allocatable) for t in templates]
    out = {}
    for cls, dim in DIM.items():
        groups = tuple(g for g, group in enumerate(spec) if group_class(group) == cls)
        fraction = math.inf
        boot = per_node = node_cost = slice_value = 0.0
        g = -1
        if groups:
            fraction = min(
                break_even_fraction(
                    price_per_hour=spec[i].price_per_hour,
                    capacity=templates[i].allocatable,
                    eci=settings.eci_price,
                )
                for i in groups
            )
            boot = max(spec[i].boot_time for i in groups)
            hours = settings.forecast_horizon / 3600
            # the finest granularity among the class's groups: what one node more or less changes
            g = min(groups, key=lambda i: (caps[i][dim] or math.inf, i))
            per_node = float(caps[g][dim])
            node_cost = spec[g].price_per_hour * hours
            slice_value = _slice_value(settings, templates[g], hours)
        out[cls] = _ClassGroups(groups, fraction, boot, g, per_node, node_cost, slice_value)
    return out


def _level(
    ctx: Context, cls: str, forecast: Forecast, *, now: float, notes: list[str]
) -> Level | None:
    cg = _class_groups(ctx, cls)
    groups = cg.groups
    if not groups:
        notes.append(f"{cls} forecast ignored: no {_GROUPS[cls]}")
        return None
    if cg.fraction >= 1.0:
        notes.append(f"{cls} forecast: ECS is never cheaper than ECI at these prices")
        return None
    boot = cg.boot
    horizon = ctx.settings.forecast_horizon
    # the point forecast at the steps whose time is within the windows (each found once)
    now_steps = _steps(forecast, now - forecast.step, now + horizon)
    boot_steps = _steps(forecast, now + boot, now + boot + horizon)
    now_window, after_boot = _window(forecast, now_steps), _window(forecast, boot_steps)
    if not now_window or not after_boot:
        notes.append(f"{cls} forecast ignored: it does not cover the next boot time + horizon")
        return None
    if _none_above_zero(forecast, now_steps, now_window, boot_steps, after_boot):
        return None  # no demand of this class in the window: nothing to hold or to add
    stuck = pinned(ctx, cls, groups, now=now)
    level_of = functools.partial(
        _level_of,
        ctx,
        cls,
        forecast,
        cg,
        (now_steps, now_window),
        (boot_steps, after_boot),
        stuck,
        now=now,
    )
    memo = ctx.memo
    if memo is None or any(stuck) or type(now_steps) is not slice or type(boot_steps) is not slice:
        return level_of(notes=notes)
    # Nothing pinned: the level is a function of the forecast, the two windows' steps and the
    # class's groups and settings (``cg``) alone; passes between two forecast steps see the same.
    # The key holds the forecast and ``cg`` (so their ids are not reused) after their ids.
    key = (
        id(forecast),
        id(cg),
        now_steps.start,
        now_steps.stop,
        boot_steps.start,
        boot_steps.stop,
        forecast,
        cg,
    )
    hit = memo.recall_key(_LEVEL + cls, key)
    if hit is not None:
        memo.skipped(_LEVEL + cls)
        notes.extend(hit[1])
        level: Level | None = hit[0]
        return level
    said: list[str] = []
    level = level_of(notes=said)
    memo.keep(_LEVEL + cls, ctx.state, key, (level, tuple(said)))
    notes.extend(said)
    return level


_LEVEL = "forecast level: "  # its answers' names on the planner's memo, with the class


def _level_of(
    ctx: Context,
    cls: str,
    forecast: Forecast,
    cg: _ClassGroups,
    now_at: tuple[_Steps, list[float]],
    boot_at: tuple[_Steps, list[float]],
    stuck: list[list[tuple[float, float]]],
    *,
    now: float,
    notes: list[str],
) -> Level | None:
    """``_level``'s answer from the windows (their steps and point forecasts: ``_window``)
    and what is pinned on ECI."""
    groups = cg.groups
    horizon = ctx.settings.forecast_horizon
    (now_steps, now_window), (boot_steps, after_boot) = now_at, boot_at
    g = cg.g
    per_node = cg.per_node
    if any(stuck):
        now_times = _times(forecast, now_steps)
        boot_times = _times(forecast, boot_steps)
    else:  # most passes: nothing on ECI that new nodes would not take
        now_times, boot_times = [now] * len(now_window), [now] * len(after_boot)
    mine = stuck[groups.index(g)]
    held = _profile(mine, now_times)
    if mine or type(now_steps) is not slice:
        demand = [max(v * 1000 - h, 0.0) for v, h in zip(now_window, held, strict=True)]
    else:  # most passes: nothing held on ECI, the forecast's steps listed once (``_milli``)
        demand = _milli(forecast)[0][now_steps]
    if type(boot_steps) is slice:
        ahead = tuple(_milli(forecast)[1][boot_steps])
    else:
        ahead = tuple(max(v, 0.0) * 1000 for v in after_boot)
    pinned_ahead = tuple(_profile(p, boot_times) for p in stuck)
    if max(demand) <= 0 and all(
        d <= h for p in pinned_ahead for d, h in zip(ahead, p, strict=True)
    ):
        notes.append(
            f"forecast: all {cls} demand is pods on ECI that ECS capacity would not take "
            f"({max(held) / 1000:.2f} {_UNIT[cls]}): nothing to hold or to add"
        )
        return None
    keep = paying_nodes(
        demand,
        base=0.0,
        per_node=per_node,
        node_cost=cg.node_cost,
        slice_value=cg.slice_value,
        limit=math.ceil(max(demand) / per_node) if per_node > 0 else 0,
    )
    level = Level(cls, groups, keep * per_node, ahead, pinned_ahead)
    notes.append(
        f"forecast: {keep} {ctx.groups[g].group.name} node(s) of {cls} demand pay for themselves "
        f"over the next {horizon / 60:.0f} min (point forecast up to "
        f"{level.describe(max(demand))}"
        + (f" besides {level.describe(max(held))} on ECI that would not move" if any(held) else "")
        + f"), so ECS keeps {level.describe(level.milli)}"
    )
    return level


_Steps = slice | npt.NDArray[np.bool_]  # the steps of a window (``_steps``)


def _window(forecast: Forecast, steps: _Steps) -> list[float]:
    """``forecast.point[steps].tolist()``; a slice of the forecast's points listed once."""
    if isinstance(steps, slice):
        return _points(forecast)[0][steps]
    out: list[float] = forecast.point[steps].tolist()
    return out


def _none_above_zero(
    forecast: Forecast, a: _Steps, a_points: list[float], b: _Steps, b_points: list[float]
) -> bool:
    """``float(max(forecast.point[a].max(), forecast.point[b].max())) <= 0`` of two non-empty
    windows and their points (``_window``): over the listed floats unless the forecast has a
    NaN (numpy's maximum propagates it, Python's ``max`` depends on where it is; the two may
    differ only in the sign of a zero maximum, which ``<= 0`` does not see)."""
    if _points(forecast)[1]:
        return float(max(forecast.point[a].max(), forecast.point[b].max())) <= 0
    return max(max(a_points), max(b_points)) <= 0


@by_identity(64)
def _points(forecast: Forecast) -> tuple[list[float], bool]:
    """A forecast's point forecast as floats and whether one is NaN, kept per forecast object
    (frozen; the planner reads the windows of the same forecast pass after pass until a
    refit)."""
    points: list[float] = forecast.point.tolist()
    return points, any(math.isnan(v) for v in points)


@by_identity(64)
def _milli(forecast: Forecast) -> tuple[list[float], list[float]]:
    """Per step of a forecast, in milli-units: the demand ``_level_of`` stacks nodes on with
    nothing held on ECI (``max(v * 1000 - 0, 0.0)``, the same floats as with a held profile of
    zeros) and the demand after the boot (``max(v, 0.0) * 1000``); kept per forecast object,
    as ``_points``."""
    points = _points(forecast)[0]
    return [max(v * 1000 - 0, 0.0) for v in points], [max(v, 0.0) * 1000 for v in points]


def _times(forecast: Forecast, steps: slice | npt.NDArray[np.bool_]) -> list[float]:
    """The times of ``steps`` of ``forecast`` (``start + step * i``; ``_steps``)."""
    start, step = forecast.start, forecast.step
    if isinstance(steps, slice):  # the same float operations as the array's, one by one
        return [float(start + step * float(i)) for i in range(steps.start, steps.stop)]
    times = start + step * np.arange(forecast.upper.size, dtype=np.float64)
    return [float(t) for t in times[steps]]


def _steps(forecast: Forecast, lo: float, hi: float) -> slice | npt.NDArray[np.bool_]:
    """The steps of ``forecast`` whose time ``start + step * i`` is within [lo, hi].

    The steps are found by arithmetic, then checked with the exact expression the mask
    ``lo <= forecast.times <= hi`` evaluates, so the slice is the mask's, without the arrays."""
    start, step, n = forecast.start, forecast.step, forecast.upper.size
    if not (step > 0 and math.isfinite(start) and math.isfinite(lo) and math.isfinite(hi)):
        times = start + step * np.arange(n, dtype=np.float64)
        return (times >= lo) & (times <= hi)
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
    return slice(first, max(first, last + 1))


def pre_provision(
    ctx: Context,
    level: Level,
    added: dict[int, Growth],
    *,
    now: float,
    notes: list[str],
) -> None:
    """Add the nodes that pay for themselves above the class's capacity (module docstring)."""
    dim = level.dim
    capacity = ctx.capacity_milli(level.groups, dim, added)
    none = (0.0,) * len(level.after_boot)
    stuck = level.pinned or (none,) * len(level.groups)
    if not level.after_boot or max(level.after_boot) - min(min(p) for p in stuck) <= capacity:
        return
    loop_left = ctx.settings.max_nodes_per_loop - sum(a.delta for a in added.values())
    hours = ctx.settings.forecast_horizon / 3600
    options = []
    can_grow = False
    for g, held_on_eci in zip(level.groups, stuck, strict=True):
        gs = ctx.groups[g]
        if gs.in_cooldown(now):
            continue
        grown = added[g].delta if g in added else 0
        room = min(gs.group.max_size - gs.target_size - grown, loop_left)
        per_node = float(ctx.cap[g, dim])
        if room <= 0 or per_node <= 0:
            continue
        can_grow = True
        paid = (gs.group.boot_time + ctx.settings.forecast_horizon) / 3600
        takes = [max(d - h, 0.0) for d, h in zip(level.after_boot, held_on_eci, strict=True)]
        nodes = paying_nodes(
            takes,
            base=capacity,
            per_node=per_node,
            node_cost=gs.group.price_per_hour * paid,
            slice_value=_slice_value(ctx.settings, ctx.templates[g], hours),
            limit=room,
        )
        if nodes == 0:
            continue
        held = [min(max(d - capacity, 0.0), nodes * per_node) for d in takes]
        covered = sum(held) / len(held)
        waste = 1.0 - covered / (nodes * per_node)
        options.append(
            Option(
                gs.group,
                nodes,
                0,
                waste,
                waste,
                nodes * gs.group.price_per_hour * paid,
                covered / per_node * _slice_value(ctx.settings, ctx.templates[g], hours),
            )
        )
    choice = expander_for(ctx.settings).choose(options)
    if choice is None:
        if can_grow:
            notes.append(
                f"forecast: no new {_GROUPS[level.cls]} node would pay for itself above ECS "
                f"capacity {level.describe(capacity)}"
            )
        else:
            notes.append(f"forecast wants more on ECS but no {_GROUPS[level.cls]} can grow now")
        return
    option, why = choice
    g = next(i for i, gs in enumerate(ctx.groups) if gs.group is option.group)
    held_on_eci = stuck[level.groups.index(g)]
    top = max(d - h for d, h in zip(level.after_boot, held_on_eci, strict=True))
    reason = (
        f"forecast: pre-provision {option.nodes} node(s), each paying for itself, for "
        f"{level.describe(top - capacity)} of expected demand above ECS capacity "
        f"{level.describe(capacity)}"
        + (
            f" (besides up to {level.describe(max(held_on_eci))} on ECI that would not move)"
            if any(held_on_eci)
            else ""
        )
        + f"; {why}"
    )
    added.setdefault(g, Growth()).add(option.nodes, pods=(), reason=reason, code=PREDICTIVE)
