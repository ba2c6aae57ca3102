"""Replay scenario: node groups, prices, policies and delays, from one YAML file.

::

    seed: 7
    autoscaler:          # the autoscaler's own document (autoscaler.nodegroup): groups + settings
      groups: [...]
      settings: {...}
    policies: [...]      # ResourcePolicy documents (spillover.dev/v1alpha1)
    everyNamespace: false  # true: the policies also select pods of every namespace of the trace
    timing:
      loopPeriod: 10s      # the autoscaler's periodic loop
      reactionDelay: 1s    # a new pending/overflowed pod triggers a pass this much later (null: wait for the loop)
      eciStartDelay: 10s   # an ECI pod starts this long after it is bound ...
      eciStartJitter: 2s   # ... plus a seeded uniform jitter in [0, jitter)
      ecsPodStartDelay: 0s # a pod bound to a ready ECS node starts after this
    forecast: {enabled: true, refit: 6h, history: 168h, step: 5m, passEvery: 1h, minHistory: 1d}
    target: {pendingP99: 15s}
    baselines: {headroom: [0, 1, 2, 4], staticNodes: auto}
    samplePeriod: 5m     # resolution of the time series in the report and plot
    spot: {interruptionsPerHour: 0}   # how often a node of a spot group is reclaimed
    scheduler: {spillover: bin-packing, baselines: stock}   # kube-scheduler's node scores

The autoscaler document's ``settings`` hold the controller's settings, ``rebalance`` and
``consolidation`` included (``autoscaler.nodegroup``): the Spillover variant uses them as
configured, the baselines neither.  ``scheduler`` names the kube-scheduler scoring each side runs
(``autoscaler.replay.scoring``): ``bin-packing`` is the profile Spillover's manifests ship,
``stock`` a KubeSchedulerConfiguration without plugin settings; baselines keep the stock
scheduler unless the scenario says otherwise.

Everything but ``autoscaler.groups`` has a default; ``data/default-scenario.yaml`` is bundled.

``everyNamespace`` (or ``replay --every-namespace``): a recorded cluster's namespaces are not the
scenario's, and a pod no policy selects is unmanaged (ECS only, never ECI).  With it, every
namespace of the trace that no policy names gets a copy of each policy (``policies_for``), so a
recorded trace replays with the bundled scenario's policies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from autoscaler.nodegroup import (
    AutoscalerConfig,
    ConfigError,
    Duration,
    config_from_dict,
    document_types,
)
from extender.documents import FINITE, DocumentError, convert, read_yaml
from extender.policies import PolicyError, policy_from_dict
from extender.policy import ResourcePolicy

from .scoring import BIN_PACKING, PROFILES, STOCK, Scoring

__all__ = [
    "DEFAULT_SCENARIO",
    "ForecastSpec",
    "Scenario",
    "ScenarioError",
    "Timing",
    "load_scenario",
    "policies_for",
    "scenario_from_dict",
]

DEFAULT_SCENARIO = Path(__file__).parent / "data" / "default-scenario.yaml"


class ScenarioError(DocumentError):
    """An invalid scenario file; the message names the field (and the file and line)."""


@dataclass(frozen=True, slots=True)
class Timing:
    loop_period: float = 10.0
    reaction_delay: float | None = 1.0
    eci_start_delay: float = 10.0
    eci_start_jitter: float = 2.0
    ecs_pod_start_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class ForecastSpec:
    enabled: bool = True
    refit: float = 6 * 3600.0
    history: float = 7 * 86_400.0
    step: float = 300.0
    every: float = 3600.0  # a planner pass at least this often while a forecast is in force
    min_history: float = 86_400.0  # no forecast before this much history (the controller's default)


@dataclass(frozen=True, slots=True)
class Scenario:
    autoscaler: AutoscalerConfig
    policies: tuple[ResourcePolicy, ...] = ()
    seed: int = 1
    timing: Timing = field(default_factory=Timing)
    forecast: ForecastSpec = field(default_factory=ForecastSpec)
    pending_target_p99: float = 15.0
    headroom: tuple[int, ...] = (0, 1, 2, 4)
    static_nodes: int | None = None  # None: the mean fluid demand, rounded up
    sample_period: float = 300.0
    autoscaling: bool = True
    name: str = "spillover"
    spot_interruptions_per_hour: float = 0.0  # per node of a spot group, seeded exponential
    every_namespace: bool = False
    scheduler: _SchedulerDoc | None = None
    scoring: Scoring = BIN_PACKING  # kube-scheduler's node scores in the Spillover variant
    baseline_scoring: Scoring = STOCK  # ... in the baselines


def policies_for(
    policies: tuple[ResourcePolicy, ...], namespaces: Iterable[str]
) -> tuple[ResourcePolicy, ...]:
    """``policies`` plus, for each namespace none of them names, a copy of each in it."""
    named = {p.namespace for p in policies}
    extra = [replace(p, namespace=ns) for ns in sorted(set(namespaces) - named) for p in policies]
    return (*policies, *extra)


_NonNegative = Annotated[int, msgspec.Meta(ge=0)]
_TIMING, _FORECAST = Timing(), ForecastSpec()


class _Doc(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    pass


class _TimingDoc(_Doc):
    loop_period: Duration = Duration(_TIMING.loop_period)
    reaction_delay: Duration | None = Duration(1.0)
    eci_start_delay: Duration = Duration(_TIMING.eci_start_delay)
    eci_start_jitter: Duration = Duration(_TIMING.eci_start_jitter)
    ecs_pod_start_delay: Duration = Duration(_TIMING.ecs_pod_start_delay)


class _ForecastDoc(_Doc):
    enabled: bool = _FORECAST.enabled
    refit: Duration = Duration(_FORECAST.refit)
    history: Duration = Duration(_FORECAST.history)
    step: Duration = Duration(_FORECAST.step)
    pass_every: Duration = Duration(_FORECAST.every)
    min_history: Duration = Duration(_FORECAST.min_history)


class _TargetDoc(_Doc):
    pending_p99: Duration = Duration(15.0)


class _BaselinesDoc(_Doc):
    headroom: list[_NonNegative] = msgspec.field(default_factory=lambda: [0, 1, 2, 4])
    static_nodes: Literal["auto"] | _NonNegative = "auto"


class _SpotDoc(_Doc):
    interruptions_per_hour: Annotated[float, msgspec.Meta(ge=0, le=FINITE)] = 0.0


_Profile = Literal["stock", "bin-packing"]  # the keys of scoring.PROFILES


class _SchedulerDoc(_Doc):
    spillover: _Profile = "bin-packing"
    baselines: _Profile = "stock"


class _ScenarioDoc(_Doc):
    autoscaler: Any = None  # checked by autoscaler.nodegroup.config_from_dict
    policies: list[Any] | None = None  # checked by extender.policies.policy_from_dict
    seed: int = 1
    timing: _TimingDoc | None = None
    forecast: _ForecastDoc | None = None
    target: _TargetDoc | None = None
    baselines: _BaselinesDoc | None = None
    sample_period: Duration = Duration(300.0)
    name: Annotated[str, msgspec.Meta(min_length=1)] = "spillover"
    spot: _SpotDoc | None = None
    every_namespace: bool = False
    scheduler: _SchedulerDoc | None = None


def scenario_from_dict(raw: Any) -> Scenario:
    """The scenario in a decoded document; raises :class:`ScenarioError` naming the field."""
    if raw is not None and not isinstance(raw, Mapping):
        raise ScenarioError(f"expected a map, got {type(raw).__name__}", "scenario")
    doc = convert(raw or {}, _ScenarioDoc, error=ScenarioError, dec_hook=document_types)
    try:
        autoscaler = config_from_dict(doc.autoscaler)
    except ConfigError as err:
        raise ScenarioError.of(err, "autoscaler") from None
    policies = []
    for i, p in enumerate(doc.policies or ()):
        try:
            policies.append(policy_from_dict(p))
        except PolicyError as err:
            raise ScenarioError(str(err), "policies", i) from None
    t = doc.timing or _TimingDoc()
    if t.loop_period <= 0:
        raise ScenarioError("must be positive", "timing", "loopPeriod")
    if doc.sample_period <= 0:
        raise ScenarioError("must be positive", "samplePeriod")
    f = doc.forecast or _ForecastDoc()
    b = doc.baselines or _BaselinesDoc()
    sched = doc.scheduler or _SchedulerDoc()
    return Scenario(
        autoscaler=autoscaler,
        policies=tuple(policies),
        seed=doc.seed,
        timing=Timing(
            loop_period=float(t.loop_period),
            reaction_delay=None if t.reaction_delay is None else float(t.reaction_delay),
            eci_start_delay=float(t.eci_start_delay),
            eci_start_jitter=float(t.eci_start_jitter),
            ecs_pod_start_delay=float(t.ecs_pod_start_delay),
        ),
        forecast=ForecastSpec(
            f.enabled,
            float(f.refit),
            float(f.history),
            float(f.step),
            float(f.pass_every),
            float(f.min_history),
        ),
        pending_target_p99=float((doc.target or _TargetDoc()).pending_p99),
        headroom=tuple(b.headroom),
        static_nodes=None if b.static_nodes == "auto" else b.static_nodes,
        sample_period=float(doc.sample_period),
        name=doc.name,
        spot_interruptions_per_hour=float((doc.spot or _SpotDoc()).interruptions_per_hour),
        every_namespace=doc.every_namespace,
        scoring=PROFILES[sched.spillover],
        baseline_scoring=PROFILES[sched.baselines],
    )


def load_scenario(path: str | Path | None = None) -> Scenario:
    """The scenario in ``path``, or the bundled default; errors are ``FILE:LINE: FIELD: problem``."""
    path = DEFAULT_SCENARIO if path is None else Path(path)
    raw, root = read_yaml(path, ScenarioError)
    try:
        return scenario_from_dict(raw)
    except ScenarioError as err:
        raise err.located(path, root) from None
