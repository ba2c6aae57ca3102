"""Label selectors, node selectors and taints, matched the way kube-scheduler matches them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .model import Node, Pod, Taint, Toleration

__all__ = [
    "LabelSelector",
    "Requirement",
    "fits_node_selector",
    "tolerates_taints",
    "untolerated_taint",
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
