"""``ResourcePolicy`` objects from CRD JSON or a YAML file, with errors that name the field."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .commandline import file_problem
from .model import NodeKind
from .policy import MAX_UNITS, ResourcePolicy, TryNext, Unit
from .selectors import LabelSelector, label_selector

__all__ = ["API_VERSION", "KIND", "PolicyError", "load_policies", "policy_from_dict"]

API_VERSION = "spillover.dev/v1alpha1"
KIND = "ResourcePolicy"


class PolicyError(ValueError):
    """An invalid ResourcePolicy; the message names the object and the field."""


def policy_from_dict(
    raw: Mapping[str, Any], *, default_namespace: str = "default"
) -> ResourcePolicy:
    if not isinstance(raw, Mapping):
        raise PolicyError("ResourcePolicy: expected an object")
    meta = raw.get("metadata") or {}
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise PolicyError("ResourcePolicy: metadata.name is required")
    namespace = meta.get("namespace") or default_namespace
    where = f"ResourcePolicy {namespace}/{meta['name']}"
    if raw.get("kind", KIND) != KIND:
        raise PolicyError(f"{where}: kind must be {KIND}, not {raw.get('kind')!r}")
    spec = raw.get("spec")
    if not isinstance(spec, Mapping):
        raise PolicyError(f"{where}: spec is required")
    units_raw = spec.get("units")
    if not isinstance(units_raw, list) or not units_raw:
        raise PolicyError(f"{where}: spec.units must be a non-empty list")
    if len(units_raw) > MAX_UNITS:
        # as the CRD's maxItems; pod-deletion-cost (an int32) gives each unit a band of 10^8
        raise PolicyError(f"{where}: spec.units: at most {MAX_UNITS} units")
    units = tuple(_unit(u, f"{where}: spec.units[{i}]") for i, u in enumerate(units_raw))
    try_next_raw = spec.get("whenTryNextUnits") or TryNext.LACK_RESOURCE_OR_EXCEED_MAX.value
    if isinstance(try_next_raw, Mapping):  # ACK spells it {policy: ...}
        try_next_raw = try_next_raw.get("policy") or TryNext.LACK_RESOURCE_OR_EXCEED_MAX.value
    try:
        try_next = TryNext(try_next_raw)
    except ValueError:
        allowed = ", ".join(t.value for t in TryNext)
        raise PolicyError(f"{where}: spec.whenTryNextUnits must be one of {allowed}") from None
    ignore = spec.get("ignoreTerminatingPods", True)
    if not isinstance(ignore, bool):
        raise PolicyError(f"{where}: spec.ignoreTerminatingPods must be true or false")
    return ResourcePolicy(
        name=str(meta["name"]),
        namespace=str(namespace),
        selector=_selector(spec.get("selector"), f"{where}: spec.selector"),
        units=units,
        when_try_next=try_next,
        ignore_terminating_pods=ignore,
    )


def load_policies(path: str | Path) -> tuple[ResourcePolicy, ...]:
    """Every ResourcePolicy in a YAML file (multi-document, or a ``List`` / ``items``)."""
    try:
        docs = list(yaml.safe_load_all(Path(path).read_text()))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise PolicyError(file_problem(path, err)) from None
    items: list[Any] = []
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, Mapping) and "items" in doc and doc.get("kind", "List").endswith("List"):
            items.extend(doc["items"] or ())
        else:
            items.append(doc)
    if not items:
        raise PolicyError(f"{path}: no ResourcePolicy objects")
    try:
        return tuple(policy_from_dict(item) for item in items)
    except PolicyError as err:
        raise PolicyError(f"{path}: {err}") from None


def _unit(raw: Any, where: str) -> Unit:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: expected an object")
    resource = raw.get("resource")
    try:
        kind = NodeKind(resource)
    except ValueError:
        raise PolicyError(f"{where}.resource must be ecs or eci, not {resource!r}") from None
    maximum = raw.get("max")
    if maximum is not None and (
        not isinstance(maximum, int) or isinstance(maximum, bool) or maximum < 0
    ):
        raise PolicyError(f"{where}.max must be a non-negative integer, not {maximum!r}")
    selector = raw.get("nodeSelector") or {}
    if not isinstance(selector, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in selector.items()
    ):
        raise PolicyError(f"{where}.nodeSelector must map label names to string values")
    return Unit(kind, maximum, dict(selector))


def _selector(raw: Any, where: str) -> LabelSelector:
    return label_selector(raw, where, error=PolicyError)
