"""``extender.policies``: ResourcePolicy documents, with errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extender.policies import PolicyError, load_policies, policy_from_dict
from extender.policy import TryNext


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"units": []}, "spec.units must be a non-empty list"),
        ({"units": [{"resource": "gpu"}]}, "spec.units[0].resource must be ecs or eci"),
        (
            {"units": [{"resource": "ecs", "max": -1}]},
            "spec.units[0].max must be a non-negative integer",
        ),
        ({"units": [{"resource": "ecs", "max": "3"}]}, "spec.units[0].max"),
        ({"units": [{"resource": "ecs", "nodeSelector": {"a": 1}}]}, "nodeSelector"),
        (
            {"units": [{"resource": "eci"}], "whenTryNextUnits": "Sometimes"},
            "whenTryNextUnits must be one of",
        ),
        ({"units": [{"resource": "eci"}], "ignoreTerminatingPods": "yes"}, "ignoreTerminatingPods"),
        (
            {
                "units": [{"resource": "eci"}],
                "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]},
            },
            "operator must be one of",
        ),
        (
            {
                "units": [{"resource": "eci"}],
                "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
            },
            "values must be non-empty",
        ),
    ],
)
def test_policy_errors_name_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as err:
        policy_from_dict({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    assert "ResourcePolicy ns/p" in str(err.value)
    assert message in str(err.value)


def test_policy_without_name_or_spec() -> None:
    with pytest.raises(PolicyError, match=r"metadata\.name"):
        policy_from_dict({"spec": {}})
    with pytest.raises(PolicyError, match="spec is required"):
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
