"""The autoscaler controller: read the cluster and the groups, plan, apply through a provider.

One pass (:meth:`Controller.run_once`) is cluster-autoscaler's ``RunOnce(now)``:

1. leader check (a Lease; followers do nothing);
2. read the provider's groups (target sizes, instances) with retries;
3. record demand per resource class (``class_demand``), refit each class's forecast now and
   then (a class with too little history, or none ever, has no forecast);
4. ``planner.plan(...)`` -- pure, with consolidation unless the groups YAML's
   ``settings.consolidation`` is off (``PlannerSettings.consolidation`` None); all decisions are
   there, none here;
5. apply: scale-ups as *absolute* targets (``increase_size(target=new_target)``), so a retry or
   a repeated pass never adds a second batch; scale-downs cordon, evict (PDBs answer 429 and
   the node stays), wait until the cache shows the evicted pods gone (``drain_timeout`` at
   most) and delete the named node;
6. rebalance (:func:`autoscaler.rebalance.rebalance`, pure): evict pods on ECI that ECS now has
   room for, at most ``settings.rebalance.per_minute`` a minute (``PlannerSettings.rebalance``:
   the same settings the replay reads from its scenario); their controllers recreate them and the
   extender places the replacements on ECS.  A Job's pod (its ``ownerReferences``) moves only
   while its saving pays for the work its replacement runs again (``eviction.lost_work``, the
   ``spillover.dev/checkpoint-interval`` annotation);
7. write the status ConfigMap (the controller's only memory, see :mod:`autoscaler.status`),
   Events and metrics.

``--dry-run`` runs steps 2-4 and logs what it would do; it writes nothing anywhere, not even the
Lease (a dry-run replica must never take the lease from the one that acts).

Actuation is behind two seams, as in cluster-autoscaler: the ``Provider`` changes the groups and
an ``autoscaler.drain.Drainer`` cordons, evicts and waits (``drain_node``; ``ApiDrainer`` by
default, ``FakeDrainer`` in tests).  Without an API client and no drainer given there is none:
nothing is drained and no node is removed (the scale-down is reported as an error, never done
without eviction).

Reaction time: besides the periodic tick (10 s), the loop wakes when the cluster cache reports a
pending pod it has not planned for yet (:meth:`notify`, the watch's ``on_change`` callback: no
polling).  It then batches, as Karpenter does: the window closes once no new pending pod arrived
for ``batch_idle`` (the burst stopped), or ``batch_window`` after the first one at the latest, so
a burst is planned together and a lone pod waits only ``batch_idle``.  Only the leader reacts to
pods and marks them planned ("seen"): a follower that takes over plans every pod still pending.
Gaining the Lease wakes the loop too, so a new leader acts at once, not at its next tick.

Time is injected: ``clock`` (default ``time.time``: Lease, node and pod timestamps are wall
time) is the ``now`` of every decision; waiting uses the event loop, or an injected ``sleep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from kubernetes_asyncio import client

from extender.kube import BackoffSettings, backoff_delay
from extender.model import NodeKind, Pod
from extender.policy import policy_for
from extender.snapshot import ClusterState

from .actuation import IO_ERRORS, ApiDrainer, list_disruption_budgets
from .consolidation import Consolidation
from .context import PlannerMemo
from .drain import Drainer, drain_node
from .forecast import Forecast, Forecaster, SeasonalForecaster
from .leader import LeaseElector
from .metrics import Metrics
from .nodegroup import AutoscalerConfig, PlannerSettings
from .planner import Plan, group_state, plan
from .predictive import CLASSES, CPU, RefitRule, class_demand_of
from .providers.base import GroupStatus, Provider, ProviderError
from .rebalance import allowed, rebalance
from .state import DisruptionBudget, GroupNode, GroupState
from .status import DemandHistory, Memory, StatusStore

__all__ = [
    "Controller",
    "ControllerSettings",
    "PassResult",
    "Planner",
    "class_demand",
    "demand_of",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Planner(Protocol):
    def __call__(
        self,
        state: ClusterState,
        groups: Sequence[GroupState],
        *,
        forecast: Forecast | Mapping[str, Forecast] | None,
        settings: PlannerSettings,
        now: float,
        unneeded: Mapping[str, float] | None = None,
        pdbs: Sequence[DisruptionBudget] = (),
        consolidation: Consolidation | None = None,
        memo: PlannerMemo | None = None,
    ) -> Plan: ...


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    loop_interval: float = 10.0
    batch_window: float = 0.3  # the longest a burst of new pending pods is batched
    batch_idle: float = 0.1  # the batch closes once no new pending pod came for this long
    dry_run: bool = False
    retries: int = 3  # attempts per provider call, retryable errors only
    backoff: float = 0.5  # first retry delay, doubled per attempt, +-20 % jitter
    backoff_max: float = 8.0
    history_step: float = 60.0
    history_limit: int = 7 * 1440
    forecast_min_history: float = 86_400.0
    forecast_refit: float = 900.0
    wape_window: int = 1440
    status_interval: float = 60.0  # rewrite an unchanged status at most this often
    pod_events: int = 20  # TriggeredScaleUp events per scale-up, at most
    drain_timeout: float = 120.0  # longest wait for evicted pods to leave a node before deleting it
    drain_poll: float = 0.5


@dataclass(frozen=True, slots=True)
class PassResult:
    leader: bool
    plan: Plan | None = None
    scaled_up: Mapping[str, int] = field(default_factory=dict)  # group -> new target
    deleted: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    moved: tuple[str, ...] = ()  # pods evicted from ECI for their replacements to run on ECS


def class_demand(state: ClusterState) -> dict[str, float]:
    """Aggregate demand ECS could hold, per resource class (cpu cores, GPUs), each pod counted by
    ``autoscaler.predictive.class_demand_of``, the rule the replay applies too."""
    milli = dict.fromkeys(CLASSES, 0)
    policies = state.policies
    for pod in state.pending_pods():
        cls, amount = class_demand_of(pod.requests, on=None, policy=None)
        milli[cls] += amount
    for node in state.nodes.values():
        for pod in state.pods_on(node.name):
            if pod.finished:
                continue
            policy = policy_for(policies, pod) if node.kind is NodeKind.ECI else None
            cls, amount = class_demand_of(pod.requests, on=node.kind, policy=policy)
            milli[cls] += amount
    return {cls: m / 1000.0 for cls, m in milli.items()}


def demand_of(state: ClusterState) -> float:
    """The cpu class of :func:`class_demand`, in cores."""
    return class_demand(state)[CPU]


class Controller:
    def __init__(
        self,
        *,
        config: AutoscalerConfig,
        provider: Provider,
        state: ClusterState,
        api: client.ApiClient | None = None,
        drainer: Drainer | None = None,
        status: StatusStore | None = None,
        elector: LeaseElector | None = None,
        metrics: Metrics | None = None,
        settings: ControllerSettings | None = None,
        forecaster: Forecaster | None = None,
        planner: Planner | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.provider = provider
        self.state = state
        self.settings = settings or ControllerSettings()
        self.metrics = metrics or Metrics()
        self._api = api
        # Without an API client and no drainer given there is none: nodes are never removed.
        self._drainer = drainer or (ApiDrainer(api) if api is not None else None)
        self._status = status
        self._elector = elector
        self._forecaster = forecaster or SeasonalForecaster()
        self._plan: Planner = planner or plan
        self._plan_memo = PlannerMemo()  # what the planner keeps between this one's passes
        self._clock = clock or time.time
        self._sleep = sleep or asyncio.sleep
        self._rand = rand
        self._memory: Memory | None = None
        self._forecast: dict[str, Forecast] = {}
        self._fitted_at = -float("inf")
        self._errors: deque[tuple[float, float]] = deque(maxlen=self.settings.wape_window)
        self._seen_pending: set[str] = set()
        self._wake = asyncio.Event()
        self._last_arrival = -math.inf  # event-loop time of the last new pending pod
        self._gained = False
        if elector is not None and elector.on_acquired is None:
            elector.on_acquired = self._lease_gained
        self._saved: tuple[str, float] = ("", -math.inf)
        self._moved_at: deque[float] = deque(maxlen=1000)
        self.last: PassResult | None = None

    # -- the loop -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Pass, wait for the tick or a new pending pod, repeat; until ``stop`` is set."""
        stop = stop or asyncio.Event()
        elector_task = (
            asyncio.create_task(self._elector.run(stop), name="leader-election")
            if self._elector is not None and not self.settings.dry_run
            else None
        )
        try:
            while not stop.is_set():
                try:
                    await self.run_once()
                except Exception:  # a bug or an unexpected API answer: log it, keep serving
                    log.exception("controller pass failed")
                await self.wait_for_trigger(stop)
        finally:
            stop.set()
            if elector_task is not None:
                await elector_task

    def notify(self, kind: str, key: str = "") -> None:
        """The watch's ``on_change``: wake the loop for a pending pod not planned for yet.

        ``key`` is the pod's uid (empty after a relist: look at every pending pod).  Followers
        ignore pods; the leader's next pass plans them.
        """
        if kind != "pods" or not self._leading():
            return
        if key:
            pod = self.state.pods.get(key)
            new = pod is not None and _pending(pod) and key not in self._seen_pending
        else:
            new = any(p.uid not in self._seen_pending for p in self.state.pending_pods())
        if new:
            self._last_arrival = asyncio.get_running_loop().time()
            self._wake.set()

    def _lease_gained(self) -> None:
        self._gained = True
        self._wake.set()

    def _leading(self) -> bool:
        return self._elector is None or self.settings.dry_run or self._elector.is_leader

    async def wait_for_trigger(self, stop: asyncio.Event) -> str:
        """Until the next tick (``"tick"``), new pending pods (``"pending"``, after the batch
        window), leadership gained (``"leader"``) or ``"stop"``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.loop_interval
        stopped = asyncio.ensure_future(stop.wait())
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait(
                {stopped, woken},
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopped.cancel()
            woken.cancel()
        if stop.is_set():
            return "stop"
        if not self._wake.is_set():
            return "tick"
        if self._gained:
            return "leader"
        first = loop.time()
        s = self.settings
        while not stop.is_set():
            close = min(first + s.batch_window, max(first, self._last_arrival) + s.batch_idle)
            if loop.time() >= close:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), close - loop.time())
        return "stop" if stop.is_set() else "pending"

    # -- one pass -----------------------------------------------------------------------------
    async def run_once(self) -> PassResult:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await self._pass()
            outcome = "acted" if result.leader else "follower"
            if result.errors:
                outcome = "partial"
            self.last = result
            return result
        finally:
            self.metrics.loop_duration.labels(outcome).observe(time.perf_counter() - started)

    async def _pass(self) -> PassResult:
        now = self._clock()
        pending = {p.uid for p in self.state.pending_pods()}
        self.metrics.pending_pods.set(len(pending))
        if not await self._lead():
            return PassResult(leader=False)
        # Only the leader marks pods planned: a follower that takes over plans them all.
        self._wake.clear()
        self._gained = False
        self._seen_pending = pending
        if not self.state.synced:
            return PassResult(leader=True, errors=("the cluster cache is not synced yet",))
        memory = await self._recall()
        try:
            await self._retry(self.provider.refresh, group="*", operation="refresh")
            statuses = {
                s.name: s
                for s in await self._retry(self.provider.groups, group="*", operation="groups")
            }
        except ProviderError as err:
            log.error("provider unavailable; skipping this pass", extra={"error": str(err)})
            return PassResult(leader=True, errors=(str(err),))
        for name, status in statuses.items():
            self.metrics.target_size.labels(name).set(status.target)
        self._observe_demand(memory, now)
        forecast = await self._forecast_for(memory, now)
        groups = self._group_states(statuses, memory, now)
        pdbs = await self._disruption_budgets()
        result = self._plan(
            self.state,
            groups,
            forecast=forecast,
            memo=self._plan_memo,
            settings=self.config.settings,
            now=now,
            unneeded=memory.unneeded,
            pdbs=pdbs,
            consolidation=self.config.settings.consolidation,
        )
        for up in result.scale_ups:
            self.metrics.planned.labels(up.group, "up", up.code).inc(up.delta)
        for down in result.scale_downs:
            self.metrics.planned.labels(down.group, "down", down.code).inc()
        memory.unneeded = dict(result.unneeded)  # dry-run keeps it too, in memory only
        if self.settings.dry_run:
            for up in result.scale_ups:
                log.info("dry-run: would scale up", extra=_fields(up))
            for down in result.scale_downs:
                log.info("dry-run: would remove node", extra=_fields(down))
            return PassResult(leader=True, plan=result)
        errors: list[str] = []
        scaled = await self._scale_up(result, memory, now, errors)
        deleted = await self._scale_down(result, memory, now, errors)
        moved: list[str] = []
        if not deleted:  # the cache may still offer a node just drained: wait a pass
            moved = await self._rebalance(groups, pdbs, now)
        await self._save(memory, statuses, result, scaled, deleted, errors, now, moved)
        self.metrics.last_pass.set(now)
        return PassResult(True, result, scaled, tuple(deleted), tuple(errors), tuple(moved))

    async def _lead(self) -> bool:
        # A dry run never contends for the Lease: taking it would stop the real autoscaler.
        if self._elector is None or self.settings.dry_run:
            self.metrics.leader.set(1)
            return True
        leader = await self._elector.step()
        self.metrics.leader.set(1 if leader else 0)
        if not leader:
            self._memory = None  # whoever leads next writes; re-read it when we lead again
        return leader

    def _still_leading(self) -> bool:
        return self._elector is None or self._elector.is_leader

    async def _recall(self) -> Memory:
        if self._memory is None:
            memory: Memory | None = None
            if self._status is not None:
                try:
                    memory = await self._status.load()
                except IO_ERRORS as err:
                    log.warning("status: could not read memory", extra={"error": str(err)})
            memory = memory or Memory()
            s = self.settings
            if (memory.demand.step, memory.demand.limit) != (s.history_step, s.history_limit):
                memory.demand = DemandHistory.from_json(
                    memory.demand.to_json(), step=s.history_step, limit=s.history_limit
                )
            if (memory.gpu_demand.step, memory.gpu_demand.limit) != (
                s.history_step,
                s.history_limit,
            ):
                memory.gpu_demand = DemandHistory.from_json(
                    memory.gpu_demand.to_json(), step=s.history_step, limit=s.history_limit
                )
            self._memory = memory
            self._saved = ("", -math.inf)
        return self._memory

    # -- inputs -------------------------------------------------------------------------------
    def _group_states(
        self, statuses: Mapping[str, GroupStatus], memory: Memory, now: float
    ) -> list[GroupState]:
        registered: dict[str, list[GroupNode]] = {}
        for node in self.state.nodes.values():
            owner = self.provider.node_group(node)
            if owner is not None:
                registered.setdefault(owner, []).append(GroupNode(node.name, node.created))
        states = []
        for group in self.config.groups:
            status = statuses.get(group.name)
            if status is None:
                log.error("provider does not know group", extra={"group": group.name})
                continue
            states.append(
                group_state(
                    group,
                    status,
                    registered=registered.get(group.name, ()),
                    last_scale_up=memory.last_scale_up.get(group.name),
                    last_scale_down=memory.last_scale_down.get(group.name),
                    now=now,
                )
            )
        return states

    def _observe_demand(self, memory: Memory, now: float) -> None:
        history = memory.demand
        previous = history.last()
        demand = class_demand(self.state)
        new_step = False
        for cls, series in memory.histories().items():
            new_step |= series.add(now, demand[cls]) and cls == CPU
        # When a step is complete, score the cpu forecast that was in force for it.
        forecast = self._forecast.get(CPU)
        if not new_step or previous is None or forecast is None or forecast.start > previous[0]:
            return
        point, _ = forecast.at(previous[0])
        self._errors.append((abs(previous[1] - point), abs(previous[1])))
        total = sum(a for _, a in self._errors)
        if total > 0:
            self.metrics.forecast_wape.set(sum(e for e, _ in self._errors) / total)

    async def _forecast_for(self, memory: Memory, now: float) -> dict[str, Forecast] | None:
        rule = RefitRule(self.settings.forecast_refit, self.settings.forecast_min_history)
        if not self._forecast or rule.due(now=now, fitted_at=self._fitted_at):
            reach = rule.reach(self.config.groups, horizon=self.config.settings.forecast_horizon)
            histories = {cls: h.series() for cls, h in memory.histories().items()}
            self._forecast, errors = await asyncio.to_thread(
                rule.refit, histories, forecaster=self._forecaster, reach=reach
            )
            for error in errors:
                log.warning("forecast failed; planning without it", extra={"error": error})
            self._fitted_at = now
        return self._forecast or None

    async def _disruption_budgets(self) -> list[DisruptionBudget]:
        return [] if self._api is None else await list_disruption_budgets(self._api)

    # -- actions ------------------------------------------------------------------------------
    async def _scale_up(
        self, result: Plan, memory: Memory, now: float, errors: list[str]
    ) -> dict[str, int]:
        scaled: dict[str, int] = {}
        for up in result.scale_ups:
            if not self._still_leading():
                errors.append("lost the lease during the pass")
                break
            try:
                target = await self._retry(
                    functools.partial(self.provider.increase_size, up.group, target=up.new_target),
                    group=up.group,
                    operation="increase",
                )
            except ProviderError as err:
                errors.append(str(err))
                await self._event("FailedScaleUp", f"{up.group}: {err}", now, warning=True)
                continue
            scaled[up.group] = target
            memory.last_scale_up[up.group] = now
            self.metrics.applied.labels(up.group, "up", up.code).inc(up.delta)
            log.info("scaled up", extra={**_fields(up), "target": target})
            await self._event(
                "ScaledUpGroup",
                f"{up.group}: target {target} (+{up.delta}) for {len(up.pods)} pods: {up.reason}",
                now,
            )
            await self._pod_events(up.pods, f"pod triggered scale-up: {up.group} -> {target}", now)
        return scaled

    async def _scale_down(
        self, result: Plan, memory: Memory, now: float, errors: list[str]
    ) -> list[str]:
        deleted: list[str] = []
        for down in result.scale_downs:
            if not self._still_leading():
                errors.append("lost the lease during the pass")
                break
            node = self.state.nodes.get(down.node)
            if node is None:
                memory.unneeded.pop(down.node, None)
                continue
            if self._drainer is None:
                errors.append(f"could not drain {down.node}: no API client to evict through")
                continue
            s = self.settings
            drained = await drain_node(
                self._drainer,
                self.state,
                node,
                now=now,
                longest_wait=s.drain_timeout,
                poll=s.drain_poll,
                sleep=self._sleep,
            )
            if not drained.ok:
                log.info(
                    "could not drain; keeping the node",
                    extra={"node": down.node, "reason": drained.reason},
                )
                errors.append(f"could not drain {down.node}")
                continue
            if not drained.cleared:
                log.warning(
                    "evicted pods still on the node after the drain timeout; deleting it",
                    extra={"node": down.node, "timeout": s.drain_timeout},
                )
            try:
                await self._retry(
                    functools.partial(self.provider.delete_nodes, down.group, [node]),
                    group=down.group,
                    operation="delete",
                )
            except ProviderError as err:
                errors.append(str(err))
                await self._drainer.uncordon(self.state.nodes.get(down.node, node))
                await self._event("FailedScaleDown", f"{down.node}: {err}", now, warning=True)
                continue
            deleted.append(down.node)
            memory.unneeded.pop(down.node, None)
            memory.last_scale_down[down.group] = now
            self.metrics.applied.labels(down.group, "down", down.code).inc()
            log.info("removed node", extra=_fields(down))
            await self._event("ScaleDown", f"removed {down.node}: {down.reason}", now)
        return deleted

    async def _rebalance(
        self, groups: Sequence[GroupState], pdbs: Sequence[DisruptionBudget], now: float
    ) -> list[str]:
        """Carry out ``rebalance``'s moves; returns the pods evicted."""
        costs = self.config.settings.rebalance
        if costs is None or self._drainer is None or not self._still_leading():
            return []
        moved: list[str] = []
        limit = allowed(self._moved_at, now=now, per_minute=costs.per_minute)
        decided = rebalance(
            self.state,
            groups,
            costs,
            now=now,
            settings=self.config.settings,
            limit=limit,
            pdbs=pdbs,
            memo=self._plan_memo,
        )
        for note in decided.notes:
            log.info("rebalance: %s", note)
        for move in decided.moves:
            pod = self.state.pods.get(move.uid)
            if pod is None:
                continue
            outcome = await self._drainer.evict(pod)
            self.metrics.moves.labels(outcome).inc()
            if outcome != "evicted":
                continue
            self._moved_at.append(now)
            moved.append(move.pod)
            self.metrics.move_savings.inc(max(move.saving, 0.0))
            log.info("moved pod from ECI", extra={"pod": move.pod, "target": move.target})
            namespace, _, name = move.pod.rpartition("/")
            await self._pod_event(
                "RebalancedToECS",
                f"evicted from {move.source} so that its replacement runs on ECS: {move.reason}",
                now,
                name=name,
                namespace=namespace,
            )
        return moved

    async def _retry(self, call: Callable[[], Awaitable[T]], *, group: str, operation: str) -> T:
        backoff = BackoffSettings(initial=self.settings.backoff, maximum=self.settings.backoff_max)
        for attempt in range(1, self.settings.retries + 1):
            try:
                return await call()
            except ProviderError as err:
                if not err.retryable or attempt == self.settings.retries:
                    self.metrics.provider_errors.labels(group, operation).inc()
                    raise
                log.warning(
                    "provider call failed; retrying",
                    extra={"group": group, "operation": operation, "error": str(err)},
                )
            await self._sleep(backoff_delay(attempt - 1, backoff, rand=self._rand()))
        raise AssertionError("unreachable")

    # -- outputs ------------------------------------------------------------------------------
    async def _event(self, reason: str, message: str, now: float, *, warning: bool = False) -> None:
        if self._status is not None:
            await self._status.event(reason=reason, message=message, now=now, warning=warning)

    async def _pod_events(self, pods: Sequence[str], message: str, now: float) -> None:
        for key in pods[: self.settings.pod_events]:
            namespace, _, name = key.rpartition("/")
            await self._pod_event("TriggeredScaleUp", message, now, name=name, namespace=namespace)

    async def _pod_event(
        self, reason: str, message: str, now: float, *, name: str, namespace: str
    ) -> None:
        """An Event about one pod."""
        if self._status is None:
            return
        await self._status.event(
            reason=reason,
            message=message,
            now=now,
            kind="Pod",
            name=name,
            namespace=namespace or "default",
        )

    async def _save(
        self,
        memory: Memory,
        statuses: Mapping[str, GroupStatus],
        result: Plan,
        scaled: Mapping[str, int],
        deleted: Sequence[str],
        errors: Sequence[str],
        now: float,
        moved: Sequence[str] = (),
    ) -> None:
        if self._status is None:
            return
        summary: dict[str, Any] = {
            "leader": self._elector.identity if self._elector is not None else "",
            "groups": {
                name: {
                    "target": scaled.get(name, s.target),
                    "min": s.min_size,
                    "max": s.max_size,
                    "instances": len(s.instances),
                    "upcoming": s.upcoming,
                }
                for name, s in statuses.items()
            },
            "scaleUps": [_fields(u) for u in result.scale_ups],
            "scaleDowns": [_fields(d) for d in result.scale_downs],
            "deleted": list(deleted),
            "moved": list(moved),
            "unneeded": sorted(result.unneeded),
            "unschedulable": dict(result.unschedulable),
            "notes": list(result.notes),
            "errors": list(errors),
        }
        durable = {k: v for k, v in memory.to_json().items() if k not in ("demand", "gpuDemand")}
        fingerprint = json.dumps([summary, durable], sort_keys=True, default=str)
        last_fingerprint, saved_at = self._saved
        if fingerprint == last_fingerprint and now - saved_at < self.settings.status_interval:
            return  # nothing new but the demand series, which can wait a minute
        try:
            await self._status.save(memory, {"time": now, **summary})
        except IO_ERRORS as err:
            log.warning("status: could not write the ConfigMap", extra={"error": str(err)})
            return
        self._saved = (fingerprint, now)


def _pending(pod: Pod) -> bool:
    """What ``ClusterState.pending_pods`` holds: not bound, not finished."""
    return not pod.node_name and not pod.finished


def _fields(change: Any) -> dict[str, Any]:
    out = {}
    for key in ("group", "delta", "new_target", "node", "reason"):
        if hasattr(change, key):
            out[key] = getattr(change, key)
    if hasattr(change, "pods"):
        out["pods"] = len(change.pods)
    return out
