"""``extender.policies``: ResourcePolicy documents, with errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extender.policies import PolicyError, load_policies, policy_from_dict
from extender.policy import TryNext


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"units": []}, "spec.units"),
        ({"units": [{"resource": "gpu"}]}, "spec.units[0].resource"),
        ({"units": [{"resource": "ecs", "max": -1}]}, "spec.units[0].max"),
        ({"units": [{"resource": "ecs", "max": "3"}]}, "spec.units[0].max"),
        ({"units": [{"resource": "ecs", "nodeSelector": {"a": 1}}]}, "spec.units[0].nodeSelector"),
        (
            {"units": [{"resource": "eci"}], "whenTryNextUnits": "Sometimes"},
            "spec.whenTryNextUnits",
        ),
        (
            {"units": [{"resource": "eci"}], "ignoreTerminatingPods": "yes"},
            "spec.ignoreTerminatingPods",
        ),
        (
            {
                "units": [{"resource": "eci"}],
                "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]},
            },
            "matchExpressions[0].operator",
        ),
        (
            {
                "units": [{"resource": "eci"}],
                "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
            },
            "matchExpressions[0].values",
        ),
    ],
    ids=[
        "no-units",
        "unknown-resource",
        "negative-max",
        "string-max",
        "selector-values",
        "try-next",
        "ignore-terminating",
        "selector-operator",
        "in-without-values",
    ],
)
def test_policy_errors_name_the_field(spec: dict[str, Any], field: str) -> None:
    """The policy and the field path are named; the wording after them is free."""
    with pytest.raises(PolicyError) as err:
        policy_from_dict({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    assert str(err.value).startswith("ResourcePolicy ns/p: ")
    assert field in str(err.value)


def test_policy_without_name_or_spec() -> None:
    with pytest.raises(PolicyError, match=r"metadata\.name"):
        policy_from_dict({"spec": {}})
    with pytest.raises(PolicyError, match=r"\bspec\b.*required"):
        policy_from_dict({"metadata": {"name": "x"}})


def test_load_policies_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "kind: List\nitems:\n- metadata: {name: a}\n  spec: {units: [{resource: eci}], whenTryNextUnits: {policy: ExceedMax}}\n"
    )
    (loaded,) = load_policies(good)
    assert loaded.when_try_next is TryNext.EXCEED_MAX
    bad = tmp_path / "bad.yaml"
    bad.write_text("metadata: {name: a}\nspec: {units: [{resource: ecs, max: x}]}\n")
    with pytest.raises(PolicyError, match=r"bad\.yaml.*max"):
        load_policies(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [")
    with pytest.raises(PolicyError, match=r"broken\.yaml"):
        load_policies(broken)
