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
scenario's ``autoscaler`` document, which is this document.  The document is checked by
``msgspec`` Structs (``extender.documents``); every mistake raises :class:`ConfigError` whose
message names the field (``groups[2].min: ...``), and the file and line when read from a file, so
the autoscaler refuses to start with one clear message.
"""

from __future__ import annotations

import enum
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import msgspec
import yaml

from extender.documents import FINITE, DocumentError, Segments, convert, read_yaml
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
    "Duration",
    "InstanceType",
    "MilliQuantity",
    "MoveCosts",
    "NodeGroup",
    "PlannerSettings",
    "Quantity",
    "RemovalPolicy",
    "annotation_seconds",
    "config_from_dict",
    "document_types",
    "groups_from_configmap",
    "load_config",
    "parse_duration",
]

CONFIGMAP_KEY = "groups.yaml"
DEFAULT_GROUP_LABEL = "spillover.dev/node-group"
Expander = Literal["least-waste", "price", "priority", "cost"]
EXPANDERS: tuple[str, ...] = get_args(Expander)
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|[smhdw])")
_UNITS = {"w": 604_800.0, "d": 86_400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class ConfigError(DocumentError):
    """Invalid autoscaler configuration; the message names the field (and the file and line)."""


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


class Duration(float):
    """Seconds, written as a number or a Go duration in a document (see :func:`parse_duration`)."""


class MilliQuantity(int):
    """A Kubernetes quantity in thousandths (cpu, GPUs): ``500m``, ``4``."""


class Quantity(int):
    """A Kubernetes quantity in units (bytes): ``16Gi``, ``1.5e9``."""


def _seconds(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"expected a duration like 300s or 10m, got {raw!r}")
    if isinstance(raw, int | float):
        seconds = float(raw)
    elif isinstance(raw, str):
        return _text_seconds(raw)
    else:
        raise ValueError(f"expected a duration like 300s or 10m, got {raw!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must be a non-negative duration, got {raw!r}")
    return seconds


@functools.lru_cache(maxsize=1024)
def _text_seconds(raw: str) -> float:
    """``_seconds`` of a string: a pure function of it, asked again and again for the same few
    annotations (``spillover.dev/expected-duration``, once per pod per pass), so kept (a
    string that fails raises each time: ``lru_cache`` keeps no exceptions)."""
    if raw and _DURATION.sub("", raw.strip()) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(raw.strip()))
    else:
        raise ValueError(f"expected a duration like 300s or 10m, got {raw!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must be a non-negative duration, got {raw!r}")
    return seconds


def parse_duration(raw: Any, where: str) -> float:
    """Seconds from a number or a Go duration (``300s``, ``10m``, ``1h30m``), also in days and
    weeks (``2d``, ``1w``, ``1d12h``): the one duration grammar of every file and flag."""
    try:
        return _seconds(raw)
    except ValueError as err:
        raise ConfigError(str(err), where) from None


_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?")


def annotation_seconds(raw: str) -> float | None:
    """Seconds from a duration annotation: a number of seconds (``3600``) or ``parse_duration``'s
    grammar (``8h``); None when it is neither (an annotation is not a file: no error)."""
    try:
        return max(float(raw), 0.0) if _NUMBER.fullmatch(raw) else parse_duration(raw, "")
    except ValueError:
        return None


def document_types(kind: type, raw: Any) -> Any:
    """The ``dec_hook`` of documents that use :class:`Duration` and the quantities."""
    if kind is Duration:
        return Duration(_seconds(raw))
    if kind is MilliQuantity or kind is Quantity:
        try:
            amount = milli_value(raw) if kind is MilliQuantity else value(raw)
        except QuantityError as err:
            raise ValueError(str(err)) from None
        if amount < 0:
            raise ValueError(f"must not be negative, got {raw!r}")
        return kind(amount)
    raise NotImplementedError(kind)


# -- the document ------------------------------------------------------------------------------
_NonNegative = Annotated[int, msgspec.Meta(ge=0)]
_Positive = Annotated[int, msgspec.Meta(ge=1)]
_Price = Annotated[float, msgspec.Meta(ge=0, le=FINITE)]
_Name = Annotated[str, msgspec.Meta(min_length=1)]


class _Doc(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    pass


class _InstanceTypeDoc(_Doc):
    cpu: MilliQuantity
    memory: Quantity
    name: Any = ""
    gpu: MilliQuantity = MilliQuantity(0)
    max_pods: _Positive = 110


class _TaintDoc(_Doc):
    key: _Name
    value: Any = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class _GroupDoc(_Doc):
    name: _Name
    instance_type: _InstanceTypeDoc
    labels: dict[Any, Any] | None = None
    taints: list[_TaintDoc] | None = None
    price_per_hour: _Price = 0.0
    spot: bool = False
    min: _NonNegative = 0
    max: _NonNegative = 0
    desired: _NonNegative | None = None
    cooldown: Duration = Duration(300)
    boot_time: Duration = Duration(60)
    removal_policy: RemovalPolicy = RemovalPolicy.OLDEST_INSTANCE


_DEFAULT = PlannerSettings()


class _EciPriceDoc(_Doc):
    vcpu_second: _Price = _DEFAULT.eci_price.vcpu_second
    gib_second: _Price = _DEFAULT.eci_price.gib_second
    gpu_hour: _Price = _DEFAULT.eci_price.gpu_hour


class _OverheadDoc(_Doc):
    cpu: MilliQuantity = MilliQuantity(0)
    memory: Quantity = Quantity(0)
    pods: _NonNegative = 0


_MOVES = MoveCosts()
_CONSOLIDATION = Consolidation()


class _RebalanceDoc(_Doc):
    restart_cost: _Price = _MOVES.restart
    per_minute: _NonNegative = _MOVES.per_minute


class _ConsolidationDoc(_Doc):
    enabled: bool = True
    empty_after: Duration = Duration(_CONSOLIDATION.empty_after)
    replace: bool = _CONSOLIDATION.replace


class _SettingsDoc(_Doc):
    scale_down_utilization_threshold: Annotated[float, msgspec.Meta(ge=0, le=1)] = (
        _DEFAULT.scale_down_utilization_threshold
    )
    scale_down_unneeded_time: Duration = Duration(_DEFAULT.scale_down_unneeded_time)
    scale_down_delay_after_add: Duration = Duration(_DEFAULT.scale_down_delay_after_add)
    max_nodes_per_loop: _Positive = _DEFAULT.max_nodes_per_loop
    expander: Expander = "least-waste"
    priorities: dict[Any, list[Any] | str | None] | None = None
    eci_price: _EciPriceDoc | None = None
    forecast_horizon: Duration = Duration(_DEFAULT.forecast_horizon)
    node_group_label: _Name = DEFAULT_GROUP_LABEL
    daemon_set_overhead: _OverheadDoc | None = None
    rebalance: _RebalanceDoc | bool | None = None  # false: never move pods
    consolidation: _ConsolidationDoc | bool | None = None  # false: CA's rule only


class _ConfigDoc(_Doc):
    groups: Annotated[list[_GroupDoc], msgspec.Meta(min_length=1)]
    settings: _SettingsDoc | None = None


def load_config(path: str | Path) -> AutoscalerConfig:
    """The configuration in ``path``; errors are ``FILE:LINE: FIELD: problem``."""
    raw, root = read_yaml(path, ConfigError)
    try:
        return config_from_dict(raw)
    except ConfigError as err:
        raise err.located(path, root) from None


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
    """The configuration from a decoded document; raises :class:`ConfigError` naming the field."""
    if raw is None or raw == {}:
        raise ConfigError("expected a non-empty list of node groups", "groups")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a map, got {type(raw).__name__}", "config")
    doc = convert(raw, _ConfigDoc, error=ConfigError, dec_hook=document_types)
    groups = tuple(_group(g, ("groups", i)) for i, g in enumerate(doc.groups))
    seen: set[str] = set()
    for i, group in enumerate(groups):
        if group.name in seen:
            raise ConfigError(f"duplicate node group {group.name!r}", "groups", i, "name")
        seen.add(group.name)
    return AutoscalerConfig(groups, _settings(doc.settings or _SettingsDoc(), ("settings",)))


def _group(doc: _GroupDoc, at: Segments) -> NodeGroup:
    it = doc.instance_type
    for key, amount in (("cpu", it.cpu), ("memory", it.memory)):
        if amount <= 0:
            raise ConfigError("must be positive", *at, "instanceType", key)
    desired = doc.min if doc.desired is None else doc.desired
    if doc.min > doc.max:
        raise ConfigError(f"{doc.min} is greater than max {doc.max}", *at, "min")
    if not doc.min <= desired <= doc.max:
        raise ConfigError(f"{desired} is outside [min {doc.min}, max {doc.max}]", *at, "desired")
    return NodeGroup(
        name=doc.name,
        instance_type=InstanceType(str(it.name or ""), it.cpu, it.memory, it.gpu, it.max_pods),
        labels={str(k): str(v) for k, v in (doc.labels or {}).items()},
        taints=tuple(Taint(t.key, str(t.value or ""), t.effect) for t in doc.taints or ()),
        price_per_hour=float(doc.price_per_hour),
        spot=doc.spot,
        min_size=doc.min,
        max_size=doc.max,
        desired=desired,
        cooldown=float(doc.cooldown),
        boot_time=float(doc.boot_time),
        removal_policy=doc.removal_policy,
    )


def _settings(doc: _SettingsDoc, at: Segments) -> PlannerSettings:
    priorities: dict[int, tuple[str, ...]] = {}
    for key, patterns in (doc.priorities or {}).items():
        where = (*at, f"priorities[{key!r}]")
        try:
            level = int(key)
        except (TypeError, ValueError):
            raise ConfigError("priority must be an integer", *where) from None
        names = [patterns] if isinstance(patterns, str) else patterns or []
        for pattern in names:
            try:
                re.compile(str(pattern))
            except re.error as err:
                raise ConfigError(f"bad regular expression {pattern!r}: {err}", *where) from None
        priorities[level] = tuple(str(p) for p in names)
    eci = doc.eci_price or _EciPriceDoc()
    overhead = doc.daemon_set_overhead or _OverheadDoc()
    return PlannerSettings(
        scale_down_utilization_threshold=float(doc.scale_down_utilization_threshold),
        scale_down_unneeded_time=float(doc.scale_down_unneeded_time),
        scale_down_delay_after_add=float(doc.scale_down_delay_after_add),
        max_nodes_per_loop=doc.max_nodes_per_loop,
        expander=doc.expander,
        priorities=priorities,
        eci_price=EciPrice(eci.vcpu_second, eci.gib_second, eci.gpu_hour),
        forecast_horizon=float(doc.forecast_horizon),
        node_group_label=doc.node_group_label,
        daemonset_overhead=Resources(
            cpu_milli=int(overhead.cpu), memory=int(overhead.memory), pods=overhead.pods
        ),
        rebalance=_rebalance(doc.rebalance, at),
        consolidation=_consolidation(doc.consolidation, at),
    )


def _off(doc: object, *where: str | int) -> bool:
    """``false``: the feature is off; ``true`` says nothing a map would not, so it is refused."""
    if doc is True:
        raise ConfigError("expected a map of settings or false, got true", *where)
    return doc is False


def _rebalance(doc: _RebalanceDoc | bool | None, at: Segments) -> MoveCosts | None:
    """``false`` or ``perMinute: 0``: pods are never moved back from ECI."""
    if _off(doc, *at, "rebalance") or isinstance(doc, bool):
        return None
    doc = doc or _RebalanceDoc()
    return MoveCosts(float(doc.restart_cost), doc.per_minute) if doc.per_minute > 0 else None


def _consolidation(doc: _ConsolidationDoc | bool | None, at: Segments) -> Consolidation | None:
    """``false`` or ``enabled: false``: nodes go by cluster-autoscaler's utilization rule only."""
    if _off(doc, *at, "consolidation") or isinstance(doc, bool):
        return None
    doc = doc or _ConsolidationDoc()
    if not doc.enabled:
        return None
    return Consolidation(empty_after=float(doc.empty_after), replace=doc.replace)
