"""Label selectors, node selectors and taints, matched the way kube-scheduler matches them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import ModelError, Node, Pod, Taint, Toleration

__all__ = [
    "LabelSelector",
    "Requirement",
    "can_hold",
    "fits_node_selector",
    "label_selector",
    "tolerates_taints",
    "untolerated_taint",
    "why_not_held",
]


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` entry: ``In``, ``NotIn``, ``Exists``, ``DoesNotExist`` (``Gt``/``Lt`` for nodes)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        op = self.operator
        if op == "In":
            return present and labels[self.key] in self.values
        if op == "NotIn":
            return not present or labels[self.key] not in self.values
        if op == "Exists":
            return present
        if op == "DoesNotExist":
            return not present
        if op in ("Gt", "Lt") and present and len(self.values) == 1:
            try:
                have, want = int(labels[self.key]), int(self.values[0])
            except ValueError:
                return False
            return have > want if op == "Gt" else have < want
        return False


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """``metav1.LabelSelector``; the empty selector matches everything."""

    match_labels: Mapping[str, str]
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, wanted in self.match_labels.items():
            if labels.get(key) != wanted:
                return False
        return all(r.matches(labels) for r in self.match_expressions)


SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def label_selector(raw: Any, where: str, *, error: type[ValueError] = ModelError) -> LabelSelector:
    """A ``metav1.LabelSelector`` from JSON (None: the empty selector, which matches all);
    ``error(message)`` names ``where`` and the field when it is malformed."""
    if raw is None:
        return LabelSelector({})
    if not isinstance(raw, Mapping):
        raise error(f"{where}: expected an object")
    labels = raw.get("matchLabels") or {}
    if not isinstance(labels, Mapping):
        raise error(f"{where}.matchLabels must be a map")
    exprs_raw: Sequence[Any] = raw.get("matchExpressions") or []
    if not isinstance(exprs_raw, list):
        raise error(f"{where}.matchExpressions must be a list")
    exprs = []
    for i, e in enumerate(exprs_raw):
        if not isinstance(e, Mapping) or not isinstance(e.get("key"), str):
            raise error(f"{where}.matchExpressions[{i}].key is required")
        op = e.get("operator")
        if op not in SELECTOR_OPERATORS:
            raise error(
                f"{where}.matchExpressions[{i}].operator must be one of "
                + ", ".join(SELECTOR_OPERATORS)
            )
        values = tuple(str(v) for v in (e.get("values") or ()))
        if op in ("In", "NotIn") and not values:
            raise error(f"{where}.matchExpressions[{i}].values must be non-empty for {op}")
        exprs.append(Requirement(e["key"], op, values))
    return LabelSelector({str(k): str(v) for k, v in labels.items()}, tuple(exprs))


def fits_node_selector(pod: Pod, node: Node) -> bool:
    """``spec.nodeSelector`` and required node affinity (terms ORed, expressions ANDed)."""
    labels = node.labels
    for key, wanted in pod.node_selector.items():
        if labels.get(key) != wanted:
            return False
    if not pod.required_affinity:
        return True
    return any(
        all(Requirement(k, op, vals).matches(labels) for k, op, vals in term)
        for term in pod.required_affinity
    )


def untolerated_taint(tolerations: Sequence[Toleration], taints: Sequence[Taint]) -> Taint | None:
    """The first NoSchedule/NoExecute taint no toleration tolerates (PreferNoSchedule never blocks)."""
    for taint in taints:
        if taint.effect == "PreferNoSchedule":
            continue
        if not any(t.tolerates(taint) for t in tolerations):
            return taint
    return None


def tolerates_taints(tolerations: Sequence[Toleration], taints: Sequence[Taint]) -> bool:
    return untolerated_taint(tolerations, taints) is None


def why_not_held(pod: Pod, node: Node) -> str:
    """Why ``node`` (a node, or a node group's template) cannot hold ``pod`` by its labels and
    taints ("" when it can): the one rule of "which group can hold this pod" for the planner,
    the replay's scheduler and its report.  Resources are each caller's own question."""
    if not fits_node_selector(pod, node):
        return "node selector / required affinity does not match the group's labels"
    taint = untolerated_taint(pod.tolerations, node.taints)
    if taint is not None:
        return f"untolerated taint {taint.key}={taint.value}:{taint.effect}"
    return ""


def can_hold(pod: Pod, node: Node) -> bool:
    """``why_not_held(pod, node) == ""``, without building the message."""
    return fits_node_selector(pod, node) and untolerated_taint(pod.tolerations, node.taints) is None
