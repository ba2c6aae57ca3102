"""PodDisruptionBudgets reduced to what eviction needs, parsed from the API's JSON (pure).

The one parser of ``policy/v1`` PodDisruptionBudgets: the controller reads the cluster's through
it and the planner, scale-down and rebalance see the result.  A budget says which pods (a label
selector within its namespace) and how many of them may be disrupted now
(``status.disruptionsAllowed``, which the disruption controller keeps current).  A null selector
selects no pods in ``policy/v1`` (an empty one selects all), so such a budget is no budget at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import ModelError, Pod
from .selectors import LabelSelector, label_selector

__all__ = ["DisruptionBudget", "budget_from_dict", "budgets_from_list"]


@dataclass(frozen=True, slots=True)
class DisruptionBudget:
    """A PodDisruptionBudget reduced to what eviction needs: which pods, how many may go now."""

    namespace: str
    selector: LabelSelector
    disruptions_allowed: int
    name: str = ""

    def covers(self, pod: Pod) -> bool:
        return pod.namespace == self.namespace and self.selector.matches(pod.labels)


def budget_from_dict(raw: Mapping[str, Any]) -> DisruptionBudget | None:
    """One PodDisruptionBudget; None when it selects no pod (a null selector).  A malformed one
    raises ``ModelError`` naming it and the field."""
    if not isinstance(raw, Mapping):
        raise ModelError("PodDisruptionBudget: expected an object")
    meta, spec, status = (_object(raw, key) for key in ("metadata", "spec", "status"))
    namespace = str(meta.get("namespace") or "default")
    name = str(meta.get("name") or "")
    where = f"PodDisruptionBudget {namespace}/{name}"
    selector = spec.get("selector")
    if selector is None:
        return None
    allowed = status.get("disruptionsAllowed") or 0
    if isinstance(allowed, bool) or not isinstance(allowed, int):
        raise ModelError(f"{where}: status.disruptionsAllowed must be an integer")
    return DisruptionBudget(
        namespace=namespace,
        selector=label_selector(selector, f"{where}: spec.selector"),
        disruptions_allowed=allowed,
        name=name,
    )


def budgets_from_list(
    items: Iterable[Mapping[str, Any]],
) -> tuple[list[DisruptionBudget], list[str]]:
    """The budgets of a list's ``items``, and one message per item skipped as malformed."""
    budgets: list[DisruptionBudget] = []
    problems: list[str] = []
    for raw in items:
        try:
            budget = budget_from_dict(raw)
        except ModelError as err:
            problems.append(str(err))
            continue
        if budget is not None:
            budgets.append(budget)
    return budgets, problems


def _object(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}
