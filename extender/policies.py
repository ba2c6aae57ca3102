"""``ResourcePolicy`` objects from CRD JSON or a YAML file, with errors that name the field.

The documents are ``msgspec`` Structs (``extender.documents``); an error reads
``FILE:LINE: ResourcePolicy NAMESPACE/NAME: spec.units[0].max: problem``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

from .commandline import file_problem
from .documents import DocumentError, convert, yaml_documents
from .model import NodeKind
from .policy import MAX_UNITS, ResourcePolicy, TryNext, Unit
from .selectors import label_selector

__all__ = ["KIND", "PolicyError", "load_policies", "policy_from_dict"]

KIND = "ResourcePolicy"


class PolicyError(DocumentError):
    """An invalid ResourcePolicy; the message names the object and the field."""


# The documents: fields ACK's ResourcePolicy has and Spillover does not use are ignored (no
# forbid_unknown_fields), so an ACK user's file loads; the API server prunes the rest.
class _Doc(msgspec.Struct, rename="camel"):
    pass


class _Metadata(_Doc):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    namespace: Any = None


class _Head(_Doc):
    metadata: _Metadata | None = None
    kind: Any = KIND


class _Unit(_Doc):
    resource: NodeKind
    max: Annotated[int, msgspec.Meta(ge=0)] | None = None
    node_selector: dict[str, str] | None = None


class _Spec(_Doc):
    units: Annotated[list[_Unit], msgspec.Meta(min_length=1)]
    selector: Any = None  # extender.selectors.label_selector, the one selector parser
    when_try_next_units: Any = None  # a value, or ACK's {policy: value}
    ignore_terminating_pods: bool = True


class _Body(_Doc):
    spec: _Spec


def policy_from_dict(
    raw: Mapping[str, Any], *, default_namespace: str = "default"
) -> ResourcePolicy:
    if not isinstance(raw, Mapping):
        raise PolicyError("expected an object", subject=KIND)
    head = convert(raw, _Head, error=PolicyError)
    if head.metadata is None:
        raise PolicyError("is required", "metadata", "name", subject=KIND)
    namespace = str(head.metadata.namespace or default_namespace)
    subject = f"{KIND} {namespace}/{head.metadata.name}"
    if head.kind != KIND:
        raise PolicyError(f"must be {KIND}, not {head.kind!r}", "kind", subject=subject)
    try:
        spec = convert(raw, _Body, error=PolicyError).spec
    except PolicyError as err:
        raise PolicyError(err.problem, *err.segments, subject=subject) from None
    if len(spec.units) > MAX_UNITS:
        # as the CRD's maxItems; pod-deletion-cost (an int32) gives each unit a band of 10^8
        raise PolicyError(f"at most {MAX_UNITS} units", "spec", "units", subject=subject)
    try_next_raw = spec.when_try_next_units or TryNext.LACK_RESOURCE_OR_EXCEED_MAX.value
    if isinstance(try_next_raw, Mapping):  # ACK spells it {policy: ...}
        try_next_raw = try_next_raw.get("policy") or TryNext.LACK_RESOURCE_OR_EXCEED_MAX.value
    try:
        try_next = TryNext(try_next_raw)
    except ValueError:
        allowed = ", ".join(t.value for t in TryNext)
        raise PolicyError(
            f"must be one of {allowed}", "spec", "whenTryNextUnits", subject=subject
        ) from None
    try:
        selector = label_selector(spec.selector, "spec.selector", error=PolicyError)
    except PolicyError as err:
        raise PolicyError(err.problem, subject=subject) from None
    return ResourcePolicy(
        name=head.metadata.name,
        namespace=namespace,
        selector=selector,
        units=tuple(Unit(u.resource, u.max, dict(u.node_selector or {})) for u in spec.units),
        when_try_next=try_next,
        ignore_terminating_pods=spec.ignore_terminating_pods,
    )


def load_policies(path: str | Path) -> tuple[ResourcePolicy, ...]:
    """Every ResourcePolicy in a YAML file (multi-document, or a ``List`` / ``items``)."""
    try:
        documents = yaml_documents(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise PolicyError(file_problem(path, err)) from None
    items: list[tuple[Any, yaml.Node | None]] = []
    for doc, root in documents:
        if doc is None:
            continue
        if isinstance(doc, Mapping) and "items" in doc and doc.get("kind", "List").endswith("List"):
            nodes = _items_nodes(root)
            items.extend(
                (item, nodes[i] if i < len(nodes) else root)
                for i, item in enumerate(doc["items"] or ())
            )
        else:
            items.append((doc, root))
    if not items:
        raise PolicyError(f"{path}: no ResourcePolicy objects")
    policies = []
    for item, node in items:
        try:
            policies.append(policy_from_dict(item))
        except PolicyError as err:
            raise err.located(path, node) from None
    return tuple(policies)


def _items_nodes(root: yaml.Node | None) -> list[yaml.Node]:
    """The nodes of a ``List`` document's ``items`` (for the line of an error)."""
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "items" and isinstance(value, yaml.SequenceNode):
                return list(value.value)
    return []
