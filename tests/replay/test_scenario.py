"""Scenario files: typed checks whose errors name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_paths import paths, replaced

from autoscaler.replay.scenario import (
    DEFAULT_SCENARIO,
    ScenarioError,
    load_scenario,
    scenario_from_dict,
)

GROUPS = """\
autoscaler:
  groups:
    - name: small
      instanceType: {cpu: "2", memory: 8Gi}
      max: 3
"""


def test_the_bundled_scenario_loads() -> None:
    scenario = load_scenario()
    assert scenario == load_scenario(DEFAULT_SCENARIO)
    assert scenario.autoscaler.groups
    assert scenario.timing.loop_period > 0


def test_defaults_fill_every_optional_section() -> None:
    scenario = scenario_from_dict(
        {
            "autoscaler": {
                "groups": [{"name": "a", "instanceType": {"cpu": "2", "memory": "8Gi"}, "max": 1}]
            },
            "timing": {"reactionDelay": None},
        }
    )
    assert scenario.timing.reaction_delay is None
    assert scenario.timing.loop_period == 10.0
    assert (scenario.headroom, scenario.static_nodes, scenario.sample_period) == (
        (0, 1, 2, 4),
        None,
        300.0,
    )
    assert scenario.forecast.every == 3600.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("timing:\n  loopPeriod: 0s\n", ":7: timing.loopPeriod: must be positive"),
        ("timing:\n  eciStartDelay: soon\n", ":7: timing.eciStartDelay: expected a duration"),
        ("timing:\n  colour: red\n", ":7: timing.colour: unknown field (known: loopPeriod, "),
        (
            "baselines: {staticNodes: many}\n",
            ":6: baselines.staticNodes: must be one of auto, int, not 'many'",
        ),
        ("baselines: {headroom: [1, -1]}\n", ":6: baselines.headroom[1]: must not be negative"),
        (
            "spot: {interruptionsPerHour: .inf}\n",
            ":6: spot.interruptionsPerHour: expected a finite",
        ),
        ("forecast: {enabled: maybe}\n", ":6: forecast.enabled: expected bool, got str"),
        ("seed: 1.5\n", ":6: seed: expected int, got float"),
        ("policies: [{kind: ResourcePolicy}]\n", ":6: policies[0]: ResourcePolicy: metadata.name"),
        ("samplePeriod: 0\n", ":6: samplePeriod: must be positive"),
        ("scheduler: {spillover: MostAllocated}\n", ":6: scheduler.spillover: must be one of"),
        ("scheduler:\n  plugins: []\n", ":7: scheduler.plugins: unknown field (known: spillover"),
        ("scheduler: [stock]\n", ":6: scheduler: expected object | null, got array"),
        (
            "  settings:\n    rebalance: {perMinute: -1}\n",
            ":7: autoscaler.settings.rebalance.perMinute: must not be negative",
        ),
        (
            "  settings:\n    consolidation:\n      emptyAfter: soon\n",
            ":8: autoscaler.settings.consolidation.emptyAfter: expected a duration",
        ),
    ],
    ids=[
        "loop-0",
        "duration",
        "unknown",
        "static",
        "headroom",
        "inf",
        "bool",
        "seed",
        "policy",
        "sample",
        "scheduler-profile",
        "scheduler-unknown",
        "scheduler-type",
        "rebalance-range",
        "consolidation-duration",
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(GROUPS + extra)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}{message}"), str(err.value)
    assert "\n" not in str(err.value)


def test_the_scheduler_profiles_are_the_scoring_modules() -> None:
    from typing import get_args

    from autoscaler.replay.scenario import _Profile
    from autoscaler.replay.scoring import PROFILES

    assert sorted(get_args(_Profile)) == sorted(PROFILES)


def test_group_errors_point_into_the_autoscaler_document(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(GROUPS.replace("max: 3", "max: 3\n      min: 4"))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value) == f"{path}:6: autoscaler.groups[0].min: 4 is greater than max 3"


def test_a_document_that_is_not_a_map() -> None:
    with pytest.raises(ScenarioError, match=r"^scenario: expected a map, got list$"):
        scenario_from_dict([1])


BUNDLED = yaml.safe_load(DEFAULT_SCENARIO.read_text())
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=5,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(paths(BUNDLED)[1:]), junk=JUNK)
def test_any_value_anywhere_is_a_scenario_or_one_line_error(
    where: tuple[Any, ...], junk: object
) -> None:
    error: ScenarioError | None = None
    try:
        scenario_from_dict(replaced(BUNDLED, where, junk))
    except ScenarioError as err:  # nothing else: no TypeError, KeyError, AttributeError
        error = err
    if error is not None:
        assert "\n" not in str(error)
        assert error.segments, str(error)  # and it names the field
