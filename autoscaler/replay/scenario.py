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

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from autoscaler.nodegroup import AutoscalerConfig, ConfigError, config_from_dict, parse_duration
from extender.commandline import file_problem
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


class ScenarioError(ValueError):
    """An invalid scenario file; the message names the field."""


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
    scoring: Scoring = BIN_PACKING  # kube-scheduler's node scores in the Spillover variant
    baseline_scoring: Scoring = STOCK  # ... in the baselines


def policies_for(
    policies: tuple[ResourcePolicy, ...], namespaces: Iterable[str]
) -> tuple[ResourcePolicy, ...]:
    """``policies`` plus, for each namespace none of them names, a copy of each in it."""
    named = {p.namespace for p in policies}
    extra = [replace(p, namespace=ns) for ns in sorted(set(namespaces) - named) for p in policies]
    return (*policies, *extra)


def _map(raw: Any, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: expected a map, got {type(raw).__name__}")
    return raw


def _known(doc: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in doc:
        if key not in keys:
            raise ScenarioError(f"{where}.{key}: unknown field (known: {', '.join(keys)})")


def _duration(doc: Mapping[str, Any], key: str, default: float, where: str) -> float:
    try:
        return parse_duration(doc.get(key, default), f"{where}.{key}")
    except ConfigError as err:
        raise ScenarioError(str(err)) from None


def scenario_from_dict(raw: Any) -> Scenario:
    doc = _map(raw, "scenario")
    _known(
        doc,
        (
            "seed",
            "autoscaler",
            "policies",
            "timing",
            "forecast",
            "target",
            "baselines",
            "samplePeriod",
            "name",
            "spot",
            "everyNamespace",
            "scheduler",
        ),
        "scenario",
    )
    try:
        autoscaler = config_from_dict(doc.get("autoscaler"))
    except ConfigError as err:
        raise ScenarioError(f"autoscaler.{err}") from None
    policies = []
    raw_policies = doc.get("policies") or []
    if not isinstance(raw_policies, list):
        raise ScenarioError("policies: expected a list of ResourcePolicy documents")
    for i, p in enumerate(raw_policies):
        try:
            policies.append(policy_from_dict(p))
        except PolicyError as err:
            raise ScenarioError(f"policies[{i}]: {err}") from None
    seed = doc.get("seed", 1)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ScenarioError("seed: expected an integer")
    t = _map(doc.get("timing"), "timing")
    _known(
        t,
        ("loopPeriod", "reactionDelay", "eciStartDelay", "eciStartJitter", "ecsPodStartDelay"),
        "timing",
    )
    d = Timing()
    reaction = (
        None
        if "reactionDelay" in t and t["reactionDelay"] is None
        else _duration(t, "reactionDelay", 1.0, "timing")
    )
    timing = Timing(
        loop_period=_duration(t, "loopPeriod", d.loop_period, "timing"),
        reaction_delay=reaction,
        eci_start_delay=_duration(t, "eciStartDelay", d.eci_start_delay, "timing"),
        eci_start_jitter=_duration(t, "eciStartJitter", d.eci_start_jitter, "timing"),
        ecs_pod_start_delay=_duration(t, "ecsPodStartDelay", d.ecs_pod_start_delay, "timing"),
    )
    if timing.loop_period <= 0:
        raise ScenarioError("timing.loopPeriod: must be positive")
    f = _map(doc.get("forecast"), "forecast")
    _known(f, ("enabled", "refit", "history", "step", "passEvery", "minHistory"), "forecast")
    fd = ForecastSpec()
    enabled = f.get("enabled", fd.enabled)
    if not isinstance(enabled, bool):
        raise ScenarioError("forecast.enabled: expected true or false")
    forecast = ForecastSpec(
        enabled,
        _duration(f, "refit", fd.refit, "forecast"),
        _duration(f, "history", fd.history, "forecast"),
        _duration(f, "step", fd.step, "forecast"),
        _duration(f, "passEvery", fd.every, "forecast"),
        _duration(f, "minHistory", fd.min_history, "forecast"),
    )
    target = _map(doc.get("target"), "target")
    _known(target, ("pendingP99",), "target")
    b = _map(doc.get("baselines"), "baselines")
    _known(b, ("headroom", "staticNodes"), "baselines")
    headroom = b.get("headroom", [0, 1, 2, 4])
    if not isinstance(headroom, list) or not all(isinstance(h, int) and h >= 0 for h in headroom):
        raise ScenarioError("baselines.headroom: expected a list of non-negative integers")
    static = b.get("staticNodes", "auto")
    if static != "auto" and (not isinstance(static, int) or isinstance(static, bool) or static < 0):
        raise ScenarioError("baselines.staticNodes: expected 'auto' or a non-negative integer")
    every_namespace = doc.get("everyNamespace", False)
    if not isinstance(every_namespace, bool):
        raise ScenarioError("everyNamespace: expected true or false")
    name = doc.get("name", "spillover")
    if not isinstance(name, str) or not name:
        raise ScenarioError("name: expected a non-empty string")
    spot = _map(doc.get("spot"), "spot")
    _known(spot, ("interruptionsPerHour",), "spot")
    rate = spot.get("interruptionsPerHour", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < math.inf:
        raise ScenarioError("spot.interruptionsPerHour: expected a non-negative number")
    sched = _map(doc.get("scheduler"), "scheduler")
    _known(sched, ("spillover", "baselines"), "scheduler")
    profiles = {}
    for key, default in (("spillover", "bin-packing"), ("baselines", "stock")):
        chosen = sched.get(key, default)
        if chosen not in PROFILES:
            raise ScenarioError(
                f"scheduler.{key}: expected one of {', '.join(PROFILES)}, got {chosen!r}"
            )
        profiles[key] = PROFILES[chosen]
    scenario = Scenario(
        autoscaler=autoscaler,
        policies=tuple(policies),
        seed=seed,
        timing=timing,
        forecast=forecast,
        pending_target_p99=_duration(target, "pendingP99", 15.0, "target"),
        headroom=tuple(headroom),
        static_nodes=None if static == "auto" else int(static),
        sample_period=_duration(doc, "samplePeriod", 300.0, "scenario"),
        name=name,
        spot_interruptions_per_hour=float(rate),
        every_namespace=every_namespace,
        scoring=profiles["spillover"],
        baseline_scoring=profiles["baselines"],
    )
    if scenario.sample_period <= 0:
        raise ScenarioError("scenario.samplePeriod: must be positive")
    return scenario


def load_scenario(path: str | Path | None = None) -> Scenario:
    """The scenario in ``path``, or the bundled default."""
    path = DEFAULT_SCENARIO if path is None else Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ScenarioError(file_problem(path, err)) from None
    try:
        return scenario_from_dict(raw)
    except ScenarioError as err:
        raise ScenarioError(f"{path}: {err}") from None
