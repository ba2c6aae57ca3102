"""What-if grids: axes of scenario changes, every combination a cell.

::

    scenario: my-scenario.yaml     # optional, relative to the grid file (default: the bundled one)
    baselines: true                # optional: also replay the baselines once per trace
    axes:                          # every axis optional, none empty; cells = the product of them
      policy_max: [null, 3, 5]     # max of the first ECS unit of every policy (null: unlimited)
      headroom: [0, 1]             # spare nodes (placeholder pods) per group the trace uses
      node_groups:                 # changes to named groups, in the scenario's own keys
        - {}
        - {general-8c32g: {instanceType: {cpu: "16", memory: 64Gi}, pricePerHour: 2.824}}
      eci_price: [1.0, 0.8]        # a factor on the scenario's ECI prices, or
                                   # {vcpuSecond: ..., gibSecond: ..., gpuHour: ...}
      boot_time: [60s, 3m]         # every group's boot time
      eci_start_delay: [10s, 30s]
      ecs_pod_start_delay: [0s]
      forecast: [true, false]
      spot_price: [0.3, 0.5]       # the share of pricePerHour that spot groups pay
      spot_interruption_rate: [0, 0.05]   # interruptions per spot node-hour

A cell is a patch on the scenario *document*: the patched document goes through
``scenario_from_dict``, the one validation of scenarios, so a value the scenario refuses is refused
here too, with the grid's field path.  Bad grids raise :class:`GridError` whose message is one
line: ``GRID.yaml:LINE: FIELD: problem`` (or ``GRID.yaml: FIELD: problem`` when no line is known).
Structure and types are checked by ``msgspec.convert`` into Structs that forbid unknown fields
(``extender.documents``); the field of an error (``axes.eci_price[0]``) is mapped to its line.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

from extender.commandline import file_problem
from extender.documents import DocumentError, convert, read_yaml, yaml_document

from .scenario import DEFAULT_SCENARIO, Scenario, ScenarioError, scenario_from_dict

__all__ = [
    "AXES",
    "Cell",
    "Grid",
    "GridError",
    "cells",
    "load_grid",
    "parse_grid",
]

_Duration = str | float
_NonEmpty = msgspec.Meta(min_length=1)
_NonNegative = msgspec.Meta(ge=0)


class EciPriceSpec(msgspec.Struct, forbid_unknown_fields=True, rename="camel", omit_defaults=True):
    vcpu_second: Annotated[float, _NonNegative] | None = None
    gib_second: Annotated[float, _NonNegative] | None = None
    gpu_hour: Annotated[float, _NonNegative] | None = None


class Axes(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    policy_max: Annotated[list[Annotated[int, _NonNegative] | None], _NonEmpty] | None = None
    headroom: Annotated[list[Annotated[int, _NonNegative]], _NonEmpty] | None = None
    node_groups: Annotated[list[dict[str, dict[str, Any]]], _NonEmpty] | None = None
    eci_price: Annotated[list[Annotated[float, _NonNegative] | EciPriceSpec], _NonEmpty] | None = (
        None
    )
    boot_time: Annotated[list[_Duration], _NonEmpty] | None = None
    eci_start_delay: Annotated[list[_Duration], _NonEmpty] | None = None
    ecs_pod_start_delay: Annotated[list[_Duration], _NonEmpty] | None = None
    forecast: Annotated[list[bool], _NonEmpty] | None = None
    spot_price: Annotated[list[Annotated[float, msgspec.Meta(gt=0, le=1)]], _NonEmpty] | None = None
    spot_interruption_rate: Annotated[list[Annotated[float, _NonNegative]], _NonEmpty] | None = None


class GridSpec(msgspec.Struct, forbid_unknown_fields=True):
    axes: Axes
    scenario: str = ""
    baselines: bool = True


AXES = tuple(f.name for f in msgspec.structs.fields(Axes))


class GridError(DocumentError):
    """A bad grid; the message is one line naming the file, the line if known and the field."""


@dataclass(frozen=True, slots=True)
class Cell:
    """One combination of axis values (only the axes the grid has), in grid order."""

    index: int
    values: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        return self.label_of([k for k, _ in self.values])

    def label_of(self, axes: Sequence[str]) -> str:
        """The values of ``axes`` only (a grid names its cells by the axes that vary)."""
        shown = [(k, v) for k, v in self.values if k in axes]
        return ", ".join(f"{k}={format_value(v)}" for k, v in shown) or "as configured"

    def value(self, axis: str, default: Any = None) -> Any:
        return next((v for k, v in self.values if k == axis), default)


@dataclass(frozen=True, slots=True)
class Grid:
    path: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]  # the axes the grid has, in file order
    base: Mapping[str, Any]  # the scenario document the cells patch
    scenario_name: str  # where the scenario came from (for people)
    digest: str  # of the base scenario document: part of every cell's key
    baselines: bool = True  # replay the base scenario's baselines once per trace

    def cells(self) -> list[Cell]:
        return cells(self.axes)

    def scenario(self, cell: Cell) -> Scenario:
        """The cell's scenario; the grid was validated, so this does not fail."""
        return scenario_from_dict(patched(self.base, cell.values))

    def varying(self) -> tuple[str, ...]:
        return tuple(name for name, values in self.axes if len(values) > 1)


def format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, separators=(",", ":")) if value else "base"
    return str(value)


def cells(axes: Sequence[tuple[str, Sequence[Any]]]) -> list[Cell]:
    names = [name for name, _ in axes]
    product = itertools.product(*(values for _, values in axes))
    return [Cell(i, tuple(zip(names, combo, strict=True))) for i, combo in enumerate(product)]


# -- the patch of one cell -------------------------------------------------------------------------
def _first_ecs_unit(policy: Mapping[str, Any]) -> dict[str, Any] | None:
    spec = policy.get("spec")
    units = spec.get("units") if isinstance(spec, Mapping) else None
    for unit in units if isinstance(units, list) else ():
        if isinstance(unit, dict) and unit.get("resource", "ecs") == "ecs":
            return unit
    return None


def _merge(into: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _groups(doc: dict[str, Any]) -> list[dict[str, Any]]:
    auto = doc.setdefault("autoscaler", {})
    groups = auto.get("groups") if isinstance(auto, dict) else None
    return [g for g in groups if isinstance(g, dict)] if isinstance(groups, list) else []


def patched(base: Mapping[str, Any], values: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """The scenario document with the cell's values applied (node groups before spot prices)."""
    doc = copy.deepcopy(dict(base))
    order = sorted(values, key=lambda kv: kv[0] == "spot_price")
    for axis, value in order:
        if axis == "policy_max":
            for policy in doc.get("policies") or []:
                unit = _first_ecs_unit(policy) if isinstance(policy, Mapping) else None
                if unit is not None:
                    unit["max"] = value
        elif axis == "node_groups":
            by_name = {g.get("name"): g for g in _groups(doc)}
            for name, change in value.items():
                _merge(by_name[name], change)
        elif axis == "eci_price":
            settings = doc.setdefault("autoscaler", {}).setdefault("settings", {})
            base_price = _eci_price(base)
            if isinstance(value, Mapping):
                price = {**base_price, **value}
            else:
                price = {k: v * value for k, v in base_price.items()}
            settings["eciPrice"] = price
        elif axis == "boot_time":
            for group in _groups(doc):
                group["bootTime"] = value
        elif axis in ("eci_start_delay", "ecs_pod_start_delay"):
            key = "eciStartDelay" if axis == "eci_start_delay" else "ecsPodStartDelay"
            doc.setdefault("timing", {})[key] = value
        elif axis == "forecast":
            doc.setdefault("forecast", {})["enabled"] = value
        elif axis == "spot_price":
            for group in _groups(doc):
                if group.get("spot") is True:
                    group["pricePerHour"] = float(group.get("pricePerHour", 0.0)) * value
        elif axis == "spot_interruption_rate":
            doc.setdefault("spot", {})["interruptionsPerHour"] = value
        # headroom is a property of the variant, not of the scenario document
    return doc


def _eci_price(base: Mapping[str, Any]) -> dict[str, float]:
    price = scenario_from_dict(copy.deepcopy(dict(base))).autoscaler.settings.eci_price
    return {
        "vcpuSecond": price.vcpu_second,
        "gibSecond": price.gib_second,
        "gpuHour": price.gpu_hour,
    }


# -- loading and errors ----------------------------------------------------------------------------
def _load_base(spec: GridSpec, grid_path: Path) -> tuple[dict[str, Any], str]:
    if not spec.scenario:
        return yaml.safe_load(DEFAULT_SCENARIO.read_text()), "the bundled scenario"
    path = Path(spec.scenario)
    if not path.is_absolute():
        path = grid_path.parent / path
    try:
        doc, root = read_yaml(path, ScenarioError)
    except ScenarioError as err:
        raise GridError(f"cannot read {err}", "scenario") from None
    if not isinstance(doc, dict):
        raise GridError(f"{path}: expected a scenario document", "scenario")
    try:
        scenario_from_dict(copy.deepcopy(doc))
    except ScenarioError as err:
        raise GridError(str(err.located(path, root)), "scenario") from None
    return doc, str(path)


def _check_values(axis: str, values: Sequence[Any], base: Mapping[str, Any]) -> None:
    """Every single value patched onto the base must make a valid scenario."""
    group_docs = _groups(copy.deepcopy(dict(base)))
    names = [g.get("name") for g in group_docs]
    for i, value in enumerate(values):
        if axis == "node_groups":
            for name in value:
                if name not in names:
                    raise GridError(
                        f"no node group of that name in the scenario (groups: {', '.join(map(str, names))})",
                        "axes",
                        axis,
                        i,
                        name,
                    )
        if axis in ("boot_time", "eci_start_delay", "ecs_pod_start_delay") and isinstance(
            value, bool
        ):
            raise GridError("expected a duration like 60s or 3m", "axes", axis, i)
        try:
            scenario_from_dict(patched(base, [(axis, value)]))
        except ScenarioError as err:
            raise GridError(f"makes the scenario invalid: {err}", "axes", axis, i) from None


def parse_grid(text: str, *, path: str = "GRID.yaml") -> Grid:
    """The grid in ``text`` (the contents of ``path``); raises :class:`GridError`."""
    try:
        raw, root = yaml_document(text)
    except yaml.YAMLError as err:
        raise GridError(file_problem(path, err)) from None
    try:
        if not isinstance(raw, dict):
            raise GridError("expected a map with axes (and optionally scenario)", "grid")
        spec = convert(raw, GridSpec, error=GridError)
        base, scenario_name = _load_base(spec, Path(path))
        axes: list[tuple[str, tuple[Any, ...]]] = []
        ordered = [k for k in raw.get("axes") or {} if k in AXES]
        for name in ordered:
            values = getattr(spec.axes, name)
            if name == "eci_price":
                values = [
                    msgspec.to_builtins(v) if isinstance(v, EciPriceSpec) else v for v in values
                ]
            _check_values(name, values, base)
            axes.append((name, tuple(values)))
        if not axes:
            raise GridError("no axis: give at least one (" + ", ".join(AXES) + ")", "axes")
        names = dict(axes)
        if "spot_price" in names or "spot_interruption_rate" in names:
            spot = any(g.get("spot") is True for g in _groups(copy.deepcopy(base))) or any(
                any(change.get("spot") is True for change in v.values())
                for v in names.get("node_groups", ())
            )
            if not spot:
                axis = "spot_price" if "spot_price" in names else "spot_interruption_rate"
                raise GridError(
                    "no node group is spot (set spot: true on a group in the scenario or in "
                    "node_groups)",
                    "axes",
                    axis,
                )
    except GridError as err:
        raise err.located(path, root) from None
    digest = hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()
    return Grid(path, tuple(axes), base, scenario_name, digest[:16], spec.baselines)


def load_grid(path: str | Path) -> Grid:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise GridError(file_problem(path, err)) from None
    return parse_grid(text, path=str(path))
