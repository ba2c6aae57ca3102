"""The autoscaler's part of the replay: when a pass runs, what it sees, what it changes.

Timing, as the controller behaves: a pass at most once per loop period when something changed,
``timing.reactionDelay`` after a pod becomes pending (``None``: the next loop, as
cluster-autoscaler), when a scale-down timer or a cooldown is due, and every
``forecast.passEvery`` while a forecast is in force.  What a pass sees and decides is the
controller's own code: demand per resource class sampled every ``forecast.step`` by
``predictive.class_demand_of`` (kept by the scheduler), forecasts refitted by
``predictive.RefitRule``, groups built by ``planner.group_state`` (clamped to the provider), and
``planner.plan`` (with ``autoscaler.consolidation`` when the variant asks for it).  Its
scale-ups and scale-downs go through the ``simulated`` provider.  After them, when the variant
moves pods back, ``rebalance.rebalance`` -- the controller's function, with the controller's rate
limit (``rebalance.allowed``) -- picks pods on ECI to evict; the scheduler places each again, as
the extender places the replacement its controller creates.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import numpy.typing as npt

import autoscaler.planner as planner
import autoscaler.rebalance as moving
from autoscaler import predictive
from autoscaler.consolidation import Consolidation
from autoscaler.context import PlannerMemo
from autoscaler.forecast import Forecast, SeasonalForecaster
from autoscaler.nodegroup import NodeGroup
from autoscaler.providers.base import ProviderError
from autoscaler.providers.simulated import SimulatedProvider
from autoscaler.rebalance import MoveCosts
from autoscaler.state import GroupNode, GroupState

from .billing import Billing
from .fits import shared_fits
from .results import Action
from .scenario import Scenario
from .scheduler import Clock, Scheduler

__all__ = ["Autoscaler"]


class Autoscaler:
    """Plans passes in virtual time and applies them; ``push(t)`` schedules a wake-up."""

    def __init__(
        self,
        *,
        clock: Clock,
        scenario: Scenario,
        groups: Mapping[str, NodeGroup],
        provider: SimulatedProvider,
        scheduler: Scheduler,
        billing: Billing,
        enabled: bool,
        predictive_on: bool,
        reaction_delay: float | None,
        consolidation: Consolidation | None = None,
        rebalance: MoveCosts | None = None,
        push_plan: Callable[[float], None],
        push_ready: Callable[[float], None],
        audit: bool = False,
    ) -> None:
        """``audit``: check every plan and rebalance answer against one computed without the
        memo (``PlannerMemo``)."""
        self.clock = clock
        self.scenario = scenario
        self.settings = scenario.autoscaler.settings
        self.groups = groups
        self.provider = provider
        self.scheduler = scheduler
        self.billing = billing
        self.enabled = enabled and bool(groups)
        self.predictive = predictive_on and self.enabled
        self.reaction_delay = reaction_delay
        self.consolidation = consolidation
        self.rebalance = rebalance
        self.moved_at: list[float] = []
        self.audit = audit
        # What the planner keeps between this replay's passes, with the usage table the
        # scheduler keeps true (``PlannerMemo.usage``).
        self.memo = PlannerMemo(usage=scheduler.usage)
        self.push_plan = push_plan
        self.push_ready = push_ready
        self.plan_at = math.inf
        self.unneeded: dict[str, float] = {}
        self.last_up: dict[str, float] = {}
        self.last_down: dict[str, float] = {}
        self.actions: list[Action] = []
        self.planner_calls = 0
        self.forecast_fits = 0
        spec = scenario.forecast
        self.rule = predictive.RefitRule(spec.refit, spec.min_history)
        self.forecaster = shared_fits(SeasonalForecaster())  # a fit repeated across replays: once
        self.fitted_at = -math.inf
        self.fc: dict[str, Forecast] = {}
        # The demand history, bounded by the forecast's history window.
        self.history = _History(predictive.CLASSES, keep=max(2, int(spec.history / spec.step) + 1))
        self.next_sample = 0.0 if self.predictive else math.inf
        self._states: dict[str, tuple[object, int, float | None, float | None, GroupState]] = {}

    # -- timing -------------------------------------------------------------------------------------
    def tick(self) -> float:
        period = self.scenario.timing.loop_period
        return (math.floor(self.clock.now / period) + 1) * period

    def request(self, react: bool) -> None:
        """Ask for a pass: after the reaction delay (``react``), else at the next loop."""
        if not self.enabled:
            return
        now = self.clock.now
        if react and self.reaction_delay is not None:
            self.at(now + self.reaction_delay)
        else:
            self.at(self.tick())

    def at(self, t: float) -> None:
        """A pass at ``t`` unless one is asked for earlier."""
        if self.enabled and t < self.plan_at:
            self.plan_at = t
            self.push_plan(t)

    def due(self, t: float) -> bool:
        """Whether the wake-up at ``t`` is the pass still asked for (later asks replace it)."""
        if t != self.plan_at:
            return False
        self.plan_at = math.inf
        return True

    def sample(self, t: float) -> None:
        """Record class demand at every forecast step up to ``t`` (the controller's history)."""
        if not self.predictive or t < self.next_sample:
            return
        step = self.scenario.forecast.step
        demand = self.scheduler.demand
        history = self.history
        while self.next_sample <= t:
            history.add(self.next_sample, demand)
            self.next_sample += step
        history.trim()

    # -- one pass -----------------------------------------------------------------------------------
    def _group_states(self) -> list[GroupState]:
        """``planner.group_state`` of every group; the last one is reused while its inputs stay
        the same object (the provider's status), the same members and the same scale times."""
        now = self.clock.now
        states = []
        members = self.scheduler.members_changed
        requested = self.billing.requested
        for name, group in self.groups.items():
            status = self.provider.status(name, now=now)
            up, down = self.last_up.get(name), self.last_down.get(name)
            hit = self._states.get(name)
            if hit is not None and hit[0] is status and hit[1:4] == (members, up, down):
                states.append(hit[4])
                continue
            registered = [
                GroupNode(n.name, requested[n.name]) for n in self.scheduler.by_group.get(name, ())
            ]
            state = planner.group_state(
                group,
                status,
                registered=registered,
                requested=requested,
                last_scale_up=up,
                last_scale_down=down,
                now=now,
            )
            states.append(state)
            # Every instance is billed from its request on, so ``now`` (the creation time of
            # an instance asked for outside the replay) never shows in the state: it keeps.
            if all(m.name in requested for m in state.nodes):
                self._states[name] = (status, members, up, down, state)
        return states

    def _refit(self) -> None:
        now = self.clock.now
        self.fitted_at = now
        histories = self.history.window()
        reach = self.rule.reach(self.groups.values(), horizon=self.settings.forecast_horizon)
        self.fc, _ = self.rule.refit(histories, forecaster=self.forecaster, reach=reach)
        self.forecast_fits += len(self.fc)

    def run(self) -> None:
        now = self.clock.now
        if self.predictive and self.rule.due(now=now, fitted_at=self.fitted_at):
            self._refit()
        self.planner_calls += 1
        groups = self._group_states()
        plan = functools.partial(
            planner.plan,
            self.scheduler.state,
            groups,
            forecast=self.fc or None,
            settings=self.settings,
            now=now,
            unneeded=self.unneeded,
            consolidation=self.consolidation,
        )
        result = plan(memo=self.memo)
        if self.audit:  # what the memo kept (usage, answers by state revision) is true
            fresh = plan()
            if fresh != result:
                raise AssertionError(f"t={now}: plan from the memo {result}, fresh {fresh}")
        self.unneeded = dict(result.unneeded)
        for up in result.scale_ups:
            before = {s.name for s in self.provider.nodes(now=math.inf)}
            try:
                self.provider.set_target(up.group, up.new_target, now=now)
            except ProviderError as err:  # the planner respects max sizes; report, go on
                self.actions.append(Action(now, up.group, "refused", 0, str(err)))
                continue
            group = self.groups[up.group]
            template = group.template(overhead=self.settings.daemonset_overhead)
            added = [n for n in self.provider.nodes(now=math.inf) if n.name not in before]
            for node in added:
                self.billing.node_requested(
                    node.name,
                    price_per_hour=group.price_per_hour,
                    allocatable=template.allocatable,
                    now=now,
                )
            if added:
                self.push_ready(now + group.boot_time)
                self.last_up[up.group] = now
                self.actions.append(Action(now, up.group, "scale-up", len(added), up.reason))
        downs: dict[str, list[str]] = {}
        for down in result.scale_downs:
            if down.node in self.scheduler.nodes:
                downs.setdefault(down.group, []).append(down.node)
                self.actions.append(Action(now, down.group, "scale-down", 1, down.reason))
        for group_name, names in downs.items():
            self.provider.remove(group_name, names, now=now)
            for name in names:
                self.scheduler.remove_node(name)
            self.last_down[group_name] = now
        self._move_back(groups)
        self._next(result)

    def _move_back(self, groups: list[GroupState]) -> None:
        """The controller's rebalance step: the same pure function, moves through the scheduler."""
        costs = self.rebalance
        if costs is None:
            return
        now = self.clock.now
        recent = [t for t in self.moved_at if now - t < 60.0]
        self.moved_at = recent
        if self.scheduler.n_eci_movable == 0:
            # rebalance moves only pods on ECI that an eviction can move
            # (``eviction.move_blocker``): with none there, the pass provably moves nothing
            # (on the openb lists, whose pods are bare, never one).
            return
        limit = moving.allowed(recent, now=now, per_minute=costs.per_minute)
        decided = moving.rebalance(
            self.scheduler.state,
            groups,  # as the pass saw them: membership is what rebalance reads
            costs,
            now=now,
            settings=self.settings,
            limit=limit,
            memo=self.memo,
        )
        if self.audit:
            fresh = moving.rebalance(
                self.scheduler.state, groups, costs, now=now, settings=self.settings, limit=limit
            )
            if fresh != decided:
                raise AssertionError(f"t={now}: rebalance from the memo {decided}, fresh {fresh}")
        for move in decided.moves:
            if self.scheduler.move(move.uid):
                self.moved_at.append(now)
        if len(decided.moves) and len(recent) + len(decided.moves) >= costs.per_minute:
            self.at(max(now + 60.0, self.tick()))  # the rate limit holds the rest a minute

    def _next(self, result: planner.Plan) -> None:
        """Come back when something the planner waits for is due."""
        now = self.clock.now
        # Unneeded nodes whose time is already up but that stayed (their pods cannot move) wait
        # for the next change instead of a pass every loop.
        waits = {self.settings.scale_down_unneeded_time}
        if self.consolidation is not None:
            waits.add(self.consolidation.empty_after)
        due = [s + w for s in self.unneeded.values() for w in waits if s + w > now]
        if due:
            self.at(max(min(due), self.tick()))
        # Pods still pending for ECS capacity that is not on its way: look again next loop if
        # this pass acted, else once a group's cooldown ends (a pass with nothing new to see
        # would decide the same; any change in the cluster asks for a pass anyway).
        pending = self.scheduler.pending.values()
        waiting = any(rec.pod.key not in result.unschedulable for rec in pending)
        if waiting and self.provider.next_ready(now=now) is None:
            if result.scale_ups or result.scale_downs:
                self.at(self.tick())
            else:
                ends = [
                    self.last_up[g] + self.groups[g].cooldown
                    for g in self.last_up
                    if self.last_up[g] + self.groups[g].cooldown > now
                ]
                if ends:
                    self.at(max(min(ends), self.tick()))
        if self.fc:
            # Pre-provisioning needs passes even when nothing happens.
            self.at(now + self.scenario.forecast.every)


class _History:
    """The demand history a refit reads: the sample times and each class's demand (in units,
    not milli), in numpy buffers, so that a refit gets arrays without converting lists.  The
    oldest samples are dropped once there are more than twice ``keep`` (after the samples of a
    ``sample`` call); ``window`` gives the last ``keep`` (fewer while there are fewer)."""

    __slots__ = ("keep", "n", "t", "v")

    def __init__(self, classes: Iterable[str], *, keep: int) -> None:
        self.keep = keep
        self.n = 0
        size = 2 * keep + 1
        self.t: npt.NDArray[np.float64] = np.empty(size)
        self.v = {cls: np.empty(size) for cls in classes}

    def add(self, t: float, demand: Mapping[str, int]) -> None:
        """One sample at ``t`` of ``demand`` (milli per class)."""
        n = self.n
        if n == len(self.t):  # many steps in one ``sample`` call: room for as many again
            self.t = np.concatenate((self.t, np.empty(n)))
            self.v = {cls: np.concatenate((v, np.empty(n))) for cls, v in self.v.items()}
        self.t[n] = t
        for cls, v in self.v.items():
            v[n] = demand[cls] / 1000
        self.n = n + 1

    def trim(self) -> None:
        """Keep the last ``keep`` samples once there are more than twice as many."""
        n, keep = self.n, self.keep
        if n > 2 * keep:
            self.t[:keep] = self.t[n - keep : n]
            for v in self.v.values():
                v[:keep] = v[n - keep : n]
            self.n = keep

    def window(self) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
        """Per class, (times, values) of the last ``keep`` samples: copies (the buffers are
        written again), the times one array for every class."""
        first = max(0, self.n - self.keep)
        ts = self.t[first : self.n].copy()
        return {cls: (ts, v[first : self.n].copy()) for cls, v in self.v.items()}
