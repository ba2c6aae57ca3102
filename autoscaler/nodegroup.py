"""Node groups (ESS scaling groups) and the planner settings, loaded from YAML or a ConfigMap.

One document configures the autoscaler::

    groups:
      - name: general-4c16g
        instanceType: {name: ecs.g7.xlarge, cpu: "4", memory: 16Gi, gpu: 0, maxPods: 110}
        labels: {pool: general}
        taints: [{key: dedicated, value: batch, effect: NoSchedule}]
        pricePerHour: 0.706
        spot: false
        min: 0
        max: 10
        desired: 0
        cooldown: 300s
        bootTime: 60s
        removalPolicy: OldestInstance      # or NewestInstance
    settings:                              # optional; every key optional
      scaleDownUtilizationThreshold: 0.5
      scaleDownUnneededTime: 10m
      scaleDownDelayAfterAdd: 10m
      maxNodesPerLoop: 100
      expander: least-waste                # least-waste | price | priority | cost
      priorities: {10: ["gpu-.*"], 1: [".*"]}   # priority expander: priority -> name regexes
      eciPrice: {vcpuSecond: 0.000049, gibSecond: 0.00000613, gpuHour: 12}
      forecastHorizon: 1h
      nodeGroupLabel: spillover.dev/node-group
      daemonSetOverhead: {cpu: 100m, memory: 128Mi}   # what DaemonSets take on every new node
      rebalance: {restartCost: 0.1, perMinute: 10}    # moves ECI -> ECS; perMinute 0: never
      consolidation: {enabled: true, emptyAfter: 30s, replace: true}   # false: CA's rule only

A ConfigMap carries the same document under the key ``groups.yaml``.  The instance type's cpu,
memory, GPU and max pods are taken as the new node's allocatable (set them to the allocatable your
nodes really report).  ``rebalance`` and ``consolidation`` are the settings of
``autoscaler.rebalance`` and ``autoscaler.consolidation``: the controller reads them here (its
``--rebalance-*`` / ``--consolidat*`` flags override them) and the replay reads them from the
scenario's ``autoscaler`` document, which is this document.  Every mistake raises :class:`ConfigError` whose message names the field
(``groups[2].min: ...``) so the autoscaler refuses to start with one clear message.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from extender.commandline import file_problem
from extender.model import Node, NodeKind, Resources, Taint
from extender.quantity import QuantityError, milli_value, value

from .costs import EciPrice

__all__ = [
    "CONFIGMAP_KEY",
    "DEFAULT_GROUP_LABEL",
    "EXPANDERS",
    "AutoscalerConfig",
    "ConfigError",
    "Consolidation",
    "InstanceType",
    "MoveCosts",
    "NodeGroup",
    "PlannerSettings",
    "RemovalPolicy",
    "config_from_dict",
    "groups_from_configmap",
    "load_config",
    "parse_duration",
]

CONFIGMAP_KEY = "groups.yaml"
DEFAULT_GROUP_LABEL = "spillover.dev/node-group"
EXPANDERS = ("least-waste", "price", "priority", "cost")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|[smhdw])")
_UNITS = {"w": 604_800.0, "d": 86_400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class ConfigError(ValueError):
    """Invalid autoscaler configuration; the message names the field."""


class RemovalPolicy(enum.Enum):
    OLDEST_INSTANCE = "OldestInstance"
    NEWEST_INSTANCE = "NewestInstance"


@dataclass(frozen=True, slots=True)
class InstanceType:
    name: str
    cpu_milli: int
    memory: int
    gpu_milli: int = 0
    max_pods: int = 110

    @property
    def capacity(self) -> Resources:
        return Resources(
            cpu_milli=self.cpu_milli,
            memory=self.memory,
            pods=self.max_pods,
            gpu_milli=self.gpu_milli,
        )


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """An ESS scaling group: identical ECS nodes, sized between ``min_size`` and ``max_size``."""

    name: str
    instance_type: InstanceType
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    price_per_hour: float = 0.0
    spot: bool = False
    min_size: int = 0
    max_size: int = 0
    desired: int = 0
    cooldown: float = 300.0
    boot_time: float = 60.0
    removal_policy: RemovalPolicy = RemovalPolicy.OLDEST_INSTANCE

    def template(self, *, overhead: Resources | None = None) -> Node:
        """What a new node of this group looks like to the scheduler, DaemonSets subtracted."""
        capacity = self.instance_type.capacity - (overhead or Resources())
        return Node(
            name=f"{self.name}-template",
            labels=self.labels,
            taints=self.taints,
            allocatable=capacity,
            kind=NodeKind.ECS,
        )


@dataclass(frozen=True, slots=True)
class MoveCosts:
    """Rebalance (``autoscaler.rebalance``): what a move costs (CNY, against the saving: cold
    caches, lost work, a replica short while it restarts) and how many may happen per minute."""

    restart: float = 0.1
    per_minute: int = 10


@dataclass(frozen=True, slots=True)
class Consolidation:
    """Consolidation (``autoscaler.consolidation``) on top of cluster-autoscaler's rule."""

    empty_after: float = 30.0  # seconds an empty node stays
    replace: bool = True  # replace a node by a cheaper group's node its pods fit on


@dataclass(frozen=True, slots=True)
class PlannerSettings:
    scale_down_utilization_threshold: float = 0.5
    scale_down_unneeded_time: float = 600.0
    scale_down_delay_after_add: float = 600.0
    max_nodes_per_loop: int = 100
    expander: str = "least-waste"
    priorities: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    eci_price: EciPrice = field(default_factory=EciPrice)
    forecast_horizon: float = 3600.0
    node_group_label: str = DEFAULT_GROUP_LABEL
    daemonset_overhead: Resources = field(default_factory=Resources)
    rebalance: MoveCosts | None = field(default_factory=MoveCosts)  # None: never move pods
    consolidation: Consolidation | None = field(default_factory=Consolidation)  # None: CA's rule


@dataclass(frozen=True, slots=True)
class AutoscalerConfig:
    groups: tuple[NodeGroup, ...]
    settings: PlannerSettings = field(default_factory=PlannerSettings)

    def group(self, name: str) -> NodeGroup | None:
        return next((g for g in self.groups if g.name == name), None)


def parse_duration(raw: Any, where: str) -> float:
    """Seconds from a number or a Go duration (``300s``, ``10m``, ``1h30m``), also in days and
    weeks (``2d``, ``1w``, ``1d12h``): the one duration grammar of every file and flag."""
    if isinstance(raw, bool):
        raise ConfigError(f"{where}: expected a duration like 300s or 10m, got {raw!r}")
    if isinstance(raw, int | float):
        seconds = float(raw)
    elif isinstance(raw, str) and raw and _DURATION.sub("", raw.strip()) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(raw.strip()))
    else:
        raise ConfigError(f"{where}: expected a duration like 300s or 10m, got {raw!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{where}: must be a non-negative duration, got {raw!r}")
    return seconds


def load_config(path: str | Path) -> AutoscalerConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(file_problem(path, err)) from None
    try:
        return config_from_dict(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def groups_from_configmap(data: Mapping[str, str]) -> AutoscalerConfig:
    """The configuration from a ConfigMap's ``data``: the YAML document under ``groups.yaml``."""
    text = data.get(CONFIGMAP_KEY)
    if not isinstance(text, str):
        raise ConfigError(f"ConfigMap data: key {CONFIGMAP_KEY!r} is missing")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"ConfigMap data[{CONFIGMAP_KEY!r}]: {err}") from None
    return config_from_dict(raw)


def config_from_dict(raw: Any) -> AutoscalerConfig:
    doc = _map(raw, "config")
    _known(doc, ("groups", "settings"), "config")
    items = doc.get("groups")
    if not isinstance(items, list) or not items:
        raise ConfigError("groups: expected a non-empty list of node groups")
    groups = tuple(_group(item, f"groups[{i}]") for i, item in enumerate(items))
    seen: set[str] = set()
    for i, group in enumerate(groups):
        if group.name in seen:
            raise ConfigError(f"groups[{i}].name: duplicate node group {group.name!r}")
        seen.add(group.name)
    settings = _settings(doc.get("settings"), "settings")
    return AutoscalerConfig(groups, settings)


_GROUP_KEYS = (
    "name",
    "instanceType",
    "labels",
    "taints",
    "pricePerHour",
    "spot",
    "min",
    "max",
    "desired",
    "cooldown",
    "bootTime",
    "removalPolicy",
)


def _group(raw: Any, where: str) -> NodeGroup:
    doc = _map(raw, where)
    _known(doc, _GROUP_KEYS, where)
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: expected a non-empty string")
    instance = _instance_type(doc.get("instanceType"), f"{where}.instanceType")
    labels = doc.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise ConfigError(f"{where}.labels: expected a map of strings")
    taints = []
    for j, t in enumerate(_list(doc.get("taints"), f"{where}.taints")):
        tw = f"{where}.taints[{j}]"
        tdoc = _map(t, tw)
        _known(tdoc, ("key", "value", "effect"), tw)
        if not isinstance(tdoc.get("key"), str) or not tdoc["key"]:
            raise ConfigError(f"{tw}.key: expected a non-empty string")
        effect = tdoc.get("effect", "NoSchedule")
        if effect not in _EFFECTS:
            raise ConfigError(f"{tw}.effect: must be one of {', '.join(_EFFECTS)}, not {effect!r}")
        taints.append(Taint(tdoc["key"], str(tdoc.get("value") or ""), effect))
    price = doc.get("pricePerHour", 0.0)
    if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price):
        raise ConfigError(f"{where}.pricePerHour: expected a number, got {price!r}")
    if price < 0:
        raise ConfigError(f"{where}.pricePerHour: must not be negative, got {price}")
    spot = doc.get("spot", False)
    if not isinstance(spot, bool):
        raise ConfigError(f"{where}.spot: expected true or false, got {spot!r}")
    min_size = _int(doc.get("min", 0), f"{where}.min")
    max_size = _int(doc.get("max", 0), f"{where}.max")
    desired = _int(doc.get("desired", min_size), f"{where}.desired")
    if min_size > max_size:
        raise ConfigError(f"{where}.min: {min_size} is greater than max {max_size}")
    if not min_size <= desired <= max_size:
        raise ConfigError(f"{where}.desired: {desired} is outside [min {min_size}, max {max_size}]")
    policy = doc.get("removalPolicy", RemovalPolicy.OLDEST_INSTANCE.value)
    try:
        removal = RemovalPolicy(policy)
    except ValueError:
        names = ", ".join(p.value for p in RemovalPolicy)
        raise ConfigError(
            f"{where}.removalPolicy: must be one of {names}, not {policy!r}"
        ) from None
    return NodeGroup(
        name=name,
        instance_type=instance,
        labels={str(k): str(v) for k, v in labels.items()},
        taints=tuple(taints),
        price_per_hour=float(price),
        spot=spot,
        min_size=min_size,
        max_size=max_size,
        desired=desired,
        cooldown=parse_duration(doc.get("cooldown", 300), f"{where}.cooldown"),
        boot_time=parse_duration(doc.get("bootTime", 60), f"{where}.bootTime"),
        removal_policy=removal,
    )


def _instance_type(raw: Any, where: str) -> InstanceType:
    doc = _map(raw, where)
    _known(doc, ("name", "cpu", "memory", "gpu", "maxPods"), where)
    for key in ("cpu", "memory"):
        if key not in doc:
            raise ConfigError(f"{where}.{key}: is required")
    cpu = _quantity(doc["cpu"], f"{where}.cpu", milli=True)
    memory = _quantity(doc["memory"], f"{where}.memory", milli=False)
    gpu = _quantity(doc.get("gpu", 0), f"{where}.gpu", milli=True)
    max_pods = _int(doc.get("maxPods", 110), f"{where}.maxPods")
    if cpu <= 0:
        raise ConfigError(f"{where}.cpu: must be positive")
    if memory <= 0:
        raise ConfigError(f"{where}.memory: must be positive")
    if max_pods <= 0:
        raise ConfigError(f"{where}.maxPods: must be positive")
    return InstanceType(str(doc.get("name") or ""), cpu, memory, gpu, max_pods)


_SETTINGS_KEYS = (
    "scaleDownUtilizationThreshold",
    "scaleDownUnneededTime",
    "scaleDownDelayAfterAdd",
    "maxNodesPerLoop",
    "expander",
    "priorities",
    "eciPrice",
    "forecastHorizon",
    "nodeGroupLabel",
    "daemonSetOverhead",
    "rebalance",
    "consolidation",
)


def _settings(raw: Any, where: str) -> PlannerSettings:
    if raw is None:
        return PlannerSettings()
    doc = _map(raw, where)
    _known(doc, _SETTINGS_KEYS, where)
    default = PlannerSettings()
    threshold = doc.get("scaleDownUtilizationThreshold", default.scale_down_utilization_threshold)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(f"{where}.scaleDownUtilizationThreshold: expected a number")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"{where}.scaleDownUtilizationThreshold: must be within [0, 1]")
    per_loop = _int(
        doc.get("maxNodesPerLoop", default.max_nodes_per_loop), f"{where}.maxNodesPerLoop"
    )
    if per_loop <= 0:
        raise ConfigError(f"{where}.maxNodesPerLoop: must be positive")
    expander = doc.get("expander", default.expander)
    if expander not in EXPANDERS:
        raise ConfigError(
            f"{where}.expander: must be one of {', '.join(EXPANDERS)}, not {expander!r}"
        )
    priorities: dict[int, tuple[str, ...]] = {}
    pdoc = _map(doc.get("priorities"), f"{where}.priorities")
    for key, patterns in pdoc.items():
        pw = f"{where}.priorities[{key!r}]"
        try:
            level = int(key)
        except (TypeError, ValueError):
            raise ConfigError(f"{pw}: priority must be an integer") from None
        names = [patterns] if isinstance(patterns, str) else _list(patterns, pw)
        for pattern in names:
            try:
                re.compile(str(pattern))
            except re.error as err:
                raise ConfigError(f"{pw}: bad regular expression {pattern!r}: {err}") from None
        priorities[level] = tuple(str(p) for p in names)
    eci = _eci_price(doc.get("eciPrice"), f"{where}.eciPrice")
    label = doc.get("nodeGroupLabel", default.node_group_label)
    if not isinstance(label, str) or not label:
        raise ConfigError(f"{where}.nodeGroupLabel: expected a non-empty string")
    odoc = _map(doc.get("daemonSetOverhead"), f"{where}.daemonSetOverhead")
    _known(odoc, ("cpu", "memory", "pods"), f"{where}.daemonSetOverhead")
    overhead = Resources(
        cpu_milli=_quantity(odoc.get("cpu", 0), f"{where}.daemonSetOverhead.cpu", milli=True),
        memory=_quantity(odoc.get("memory", 0), f"{where}.daemonSetOverhead.memory", milli=False),
        pods=_int(odoc.get("pods", 0), f"{where}.daemonSetOverhead.pods"),
    )
    return PlannerSettings(
        scale_down_utilization_threshold=float(threshold),
        scale_down_unneeded_time=parse_duration(
            doc.get("scaleDownUnneededTime", default.scale_down_unneeded_time),
            f"{where}.scaleDownUnneededTime",
        ),
        scale_down_delay_after_add=parse_duration(
            doc.get("scaleDownDelayAfterAdd", default.scale_down_delay_after_add),
            f"{where}.scaleDownDelayAfterAdd",
        ),
        max_nodes_per_loop=per_loop,
        expander=expander,
        priorities=priorities,
        eci_price=eci,
        forecast_horizon=parse_duration(
            doc.get("forecastHorizon", default.forecast_horizon), f"{where}.forecastHorizon"
        ),
        node_group_label=label,
        daemonset_overhead=overhead,
        rebalance=_rebalance(doc.get("rebalance", {}), f"{where}.rebalance"),
        consolidation=_consolidation(doc.get("consolidation", {}), f"{where}.consolidation"),
    )


def _rebalance(raw: Any, where: str) -> MoveCosts | None:
    """``false`` or ``perMinute: 0``: pods are never moved back from ECI."""
    if raw is False:
        return None
    doc = _map(raw, where)
    _known(doc, ("restartCost", "perMinute"), where)
    default = MoveCosts()
    restart = doc.get("restartCost", default.restart)
    if (
        isinstance(restart, bool)
        or not isinstance(restart, int | float)
        or not math.isfinite(restart)
        or restart < 0
    ):
        raise ConfigError(f"{where}.restartCost: expected a non-negative number, got {restart!r}")
    per_minute = _int(doc.get("perMinute", default.per_minute), f"{where}.perMinute")
    return MoveCosts(float(restart), per_minute) if per_minute > 0 else None


def _consolidation(raw: Any, where: str) -> Consolidation | None:
    """``false`` or ``enabled: false``: nodes go by cluster-autoscaler's utilization rule only."""
    if raw is False:
        return None
    doc = _map(raw, where)
    _known(doc, ("enabled", "emptyAfter", "replace"), where)
    default = Consolidation()
    enabled, replace = doc.get("enabled", True), doc.get("replace", default.replace)
    for key, flag in (("enabled", enabled), ("replace", replace)):
        if not isinstance(flag, bool):
            raise ConfigError(f"{where}.{key}: expected true or false, got {flag!r}")
    if not enabled:
        return None
    after = parse_duration(doc.get("emptyAfter", default.empty_after), f"{where}.emptyAfter")
    return Consolidation(empty_after=after, replace=replace)


def _eci_price(raw: Any, where: str) -> EciPrice:
    doc = _map(raw, where)
    _known(doc, ("vcpuSecond", "gibSecond", "gpuHour"), where)
    default = EciPrice()
    values: dict[str, float] = {}
    for key, fallback in (
        ("vcpuSecond", default.vcpu_second),
        ("gibSecond", default.gib_second),
        ("gpuHour", default.gpu_hour),
    ):
        price = doc.get(key, fallback)
        if (
            isinstance(price, bool)
            or not isinstance(price, int | float)
            or not math.isfinite(price)
        ):
            raise ConfigError(f"{where}.{key}: expected a number, got {price!r}")
        if price < 0:
            raise ConfigError(f"{where}.{key}: must not be negative, got {price}")
        values[key] = float(price)
    return EciPrice(values["vcpuSecond"], values["gibSecond"], values["gpuHour"])


def _quantity(raw: Any, where: str, *, milli: bool) -> int:
    try:
        amount = milli_value(raw) if milli else value(raw)
    except QuantityError as err:
        raise ConfigError(f"{where}: {err}") from None
    if amount < 0:
        raise ConfigError(f"{where}: must not be negative, got {raw!r}")
    return amount


def _int(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConfigError(f"{where}: expected an integer, got {raw!r}")
    if raw < 0:
        raise ConfigError(f"{where}: must not be negative, got {raw}")
    return raw


def _map(raw: Any, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a map, got {type(raw).__name__}")
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list, got {type(raw).__name__}")
    return raw


def _known(doc: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in doc:
        if key not in keys:
            raise ConfigError(f"{where}.{key}: unknown field (known: {', '.join(keys)})")
