"""``extender.disruption``: PodDisruptionBudgets from the API's JSON."""

from __future__ import annotations

from typing import Any

import pytest

from extender.disruption import DisruptionBudget, budget_from_dict, budgets_from_list
from extender.model import ModelError, Pod
from extender.selectors import LabelSelector, Requirement


def pdb(selector: Any, allowed: Any = 1, namespace: str | None = "shop") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web"}
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "metadata": meta,
        "spec": {"selector": selector},
        "status": {"disruptionsAllowed": allowed},
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            pdb({"matchLabels": {"app": "web"}}),
            DisruptionBudget("shop", LabelSelector({"app": "web"}), 1, "web"),
        ),
        (pdb({}, allowed=0), DisruptionBudget("shop", LabelSelector({}), 0, "web")),
        (
            pdb({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}),
            DisruptionBudget(
                "shop", LabelSelector({}, (Requirement("tier", "In", ("db",)),)), 1, "web"
            ),
        ),
        (
            pdb({}, allowed=None, namespace=None),
            DisruptionBudget("default", LabelSelector({}), 0, "web"),
        ),
        (pdb(None), None),
        ({"metadata": {"name": "web"}}, None),
    ],
    ids=["labels", "empty-selects-all", "expressions", "defaults", "null-selects-none", "no-spec"],
)
def test_budget_from_dict(raw: dict[str, Any], expected: DisruptionBudget | None) -> None:
    assert budget_from_dict(raw) == expected


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (pdb({"matchLabels": ["app"]}), "spec.selector.matchLabels"),
        (pdb({"matchExpressions": [{"key": "a", "operator": "Near"}]}), "operator"),
        (pdb({"matchExpressions": [{"key": "a", "operator": "In"}]}), "values"),
        (pdb({}, allowed="1"), "status.disruptionsAllowed"),
        (pdb({}, allowed=True), "status.disruptionsAllowed"),
    ],
    ids=["labels-not-a-map", "bad-operator", "in-without-values", "allowed-string", "allowed-bool"],
)
def test_a_malformed_budget_names_it_and_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelError, match=r"PodDisruptionBudget shop/web: ") as caught:
        budget_from_dict(raw)
    assert field in str(caught.value)


def test_a_list_skips_malformed_and_selectorless_budgets() -> None:
    budgets, problems = budgets_from_list([pdb({}), pdb(None), pdb({}, allowed="x")])
    assert budgets == [DisruptionBudget("shop", LabelSelector({}), 1, "web")]
    assert len(problems) == 1


@pytest.mark.parametrize(
    ("namespace", "labels", "covered"),
    [
        ("shop", {"app": "web"}, True),
        ("shop", {"app": "db"}, False),
        ("other", {"app": "web"}, False),
    ],
    ids=["match", "other-labels", "other-namespace"],
)
def test_covers(namespace: str, labels: dict[str, str], covered: bool) -> None:
    budget = DisruptionBudget("shop", LabelSelector({"app": "web"}), 1)
    pod = Pod(uid="u", name="p", namespace=namespace, labels=labels)
    assert budget.covers(pod) is covered
