"""Node-group configuration: the fixed YAML shape, the ConfigMap form, errors that name the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.costs import (
    EciPrice,
    break_even_fraction,
    ecs_cheaper,
    move_saving,
    new_node_pays,
)
from autoscaler.nodegroup import (
    ConfigError,
    Consolidation,
    MoveCosts,
    RemovalPolicy,
    config_from_dict,
    groups_from_configmap,
    load_config,
    parse_duration,
)
from extender.model import NodeKind, Resources, Taint

DATA = Path(__file__).parents[2] / "autoscaler" / "data"
GIB = 2**30

GROUP: dict[str, Any] = {
    "name": "general",
    "instanceType": {
        "name": "ecs.g7.xlarge",
        "cpu": "4",
        "memory": "16Gi",
        "gpu": 0,
        "maxPods": 110,
    },
    "labels": {"pool": "general"},
    "taints": [{"key": "dedicated", "value": "web", "effect": "NoSchedule"}],
    "pricePerHour": 0.706,
    "spot": False,
    "min": 0,
    "max": 10,
    "desired": 0,
    "cooldown": "300s",
    "bootTime": "60s",
    "removalPolicy": "OldestInstance",
}


def _doc(**changes: Any) -> dict[str, Any]:
    group = copy.deepcopy(GROUP)
    group.update(changes)
    return {
        "groups": [
            copy.deepcopy(GROUP),
            copy.deepcopy(GROUP) | {"name": "b"},
            group | {"name": "c"},
        ]
    }


def test_the_documented_shape_loads() -> None:
    config = config_from_dict({"groups": [GROUP]})
    (group,) = config.groups
    assert group.name == "general"
    assert group.instance_type.cpu_milli == 4000
    assert group.instance_type.memory == 16 * GIB
    assert group.instance_type.capacity == Resources(4000, 16 * GIB, 110, 0)
    assert group.labels == {"pool": "general"}
    assert group.taints == (Taint("dedicated", "web", "NoSchedule"),)
    assert (group.min_size, group.max_size, group.desired) == (0, 10, 0)
    assert (group.cooldown, group.boot_time) == (300.0, 60.0)
    assert group.removal_policy is RemovalPolicy.OLDEST_INSTANCE
    template = group.template(overhead=Resources(100, GIB, 1))
    assert template.kind is NodeKind.ECS
    assert template.allocatable == Resources(3900, 15 * GIB, 109, 0)
    assert config.settings.expander == "least-waste"


def test_settings_load() -> None:
    config = config_from_dict(
        {
            "groups": [GROUP],
            "settings": {
                "scaleDownUtilizationThreshold": 0.6,
                "scaleDownUnneededTime": "5m",
                "scaleDownDelayAfterAdd": "1h30m",
                "maxNodesPerLoop": 7,
                "expander": "priority",
                "priorities": {10: ["gpu-.*"], "1": ".*"},
                "eciPrice": {"vcpuSecond": 0.0001, "gibSecond": 0.00001, "gpuHour": 10},
                "forecastHorizon": "2h",
                "daemonSetOverhead": {"cpu": "100m", "memory": "128Mi"},
            },
        }
    )
    s = config.settings
    assert s.scale_down_utilization_threshold == 0.6
    assert (s.scale_down_unneeded_time, s.scale_down_delay_after_add) == (300.0, 5400.0)
    assert s.max_nodes_per_loop == 7
    assert s.priorities == {10: ("gpu-.*",), 1: (".*",)}
    assert s.eci_price == EciPrice(0.0001, 0.00001, 10.0)
    assert s.forecast_horizon == 7200.0
    assert s.daemonset_overhead == Resources(100, 128 * 2**20, 0)
    # not given: rebalance and consolidation on, at their defaults
    assert s.rebalance == MoveCosts(0.1, 10)
    assert s.consolidation == Consolidation(30.0, True)


@pytest.mark.parametrize(
    ("settings", "moves", "merged"),
    [
        (
            {"rebalance": {"restartCost": 3}, "consolidation": {"emptyAfter": "2m"}},
            MoveCosts(3.0, 10),
            Consolidation(120.0, True),
        ),
        ({"rebalance": {"perMinute": 0}, "consolidation": {"enabled": False}}, None, None),
        ({"rebalance": False, "consolidation": False}, None, None),
        ({"consolidation": {"replace": False}}, MoveCosts(), Consolidation(30.0, False)),
    ],
)
def test_rebalance_and_consolidation_settings(
    settings: dict[str, Any], moves: MoveCosts | None, merged: Consolidation | None
) -> None:
    s = config_from_dict({"groups": [GROUP], "settings": settings}).settings
    assert (s.rebalance, s.consolidation) == (moves, merged)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"min": 5, "max": 2}, "groups[2].min"),
        ({"pricePerHour": -1}, "groups[2].pricePerHour"),
        ({"removalPolicy": "Random"}, "groups[2].removalPolicy"),
        ({"instanceType": {"cpu": "four", "memory": "16Gi"}}, "groups[2].instanceType.cpu"),
        ({"instanceType": {"cpu": "4", "memory": "16Gb"}}, "groups[2].instanceType.memory"),
        ({"instanceType": {"cpu": "4"}}, "groups[2].instanceType.memory"),
        (
            {"instanceType": {"cpu": "4", "memory": "1Gi", "cores": 2}},
            "groups[2].instanceType.cores",
        ),
        ({"colour": "blue"}, "groups[2].colour"),
        ({"desired": 11}, "groups[2].desired"),
        ({"max": "ten"}, "groups[2].max"),
        ({"cooldown": "5 minutes"}, "groups[2].cooldown"),
        ({"bootTime": -3}, "groups[2].bootTime"),
        ({"spot": "yes"}, "groups[2].spot"),
        ({"taints": [{"key": "a", "effect": "Never"}]}, "groups[2].taints[0].effect"),
        ({"name": "b"}, "groups[2].name"),
    ],
)
def test_errors_name_the_field(changes: dict[str, Any], field: str) -> None:
    doc = _doc(**changes)
    if changes == {"name": "b"}:
        doc["groups"][2]["name"] = "b"
    with pytest.raises(ConfigError) as err:
        config_from_dict(doc)
    assert str(err.value).startswith(field + ":"), str(err.value)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"expander": "random"}, "settings.expander"),
        ({"scaleDownUtilizationThreshold": 1.5}, "settings.scaleDownUtilizationThreshold"),
        ({"maxNodesPerLoop": 0}, "settings.maxNodesPerLoop"),
        ({"eciPrice": {"vcpuSecond": -1}}, "settings.eciPrice.vcpuSecond"),
        ({"eciPrice": {"cpu": 1}}, "settings.eciPrice.cpu"),
        ({"priorities": {"high": [".*"]}}, "settings.priorities['high']"),
        ({"priorities": {1: ["("]}}, "settings.priorities[1]"),
        ({"forecastHorizon": "soon"}, "settings.forecastHorizon"),
        ({"verbose": True}, "settings.verbose"),
        ({"rebalance": {"restartCost": -1}}, "settings.rebalance.restartCost"),
        ({"rebalance": {"restartCost": "1 CNY"}}, "settings.rebalance.restartCost"),
        ({"rebalance": {"perMinute": 1.5}}, "settings.rebalance.perMinute"),
        ({"rebalance": {"every": 1}}, "settings.rebalance.every"),
        ({"rebalance": True}, "settings.rebalance"),
        ({"rebalance": {"perMinute": -1}}, "settings.rebalance.perMinute"),
        ({"rebalance": {"restartCost": float("inf")}}, "settings.rebalance.restartCost"),
        ({"rebalance": [1]}, "settings.rebalance"),
        ({"consolidation": True}, "settings.consolidation"),
        ({"consolidation": {"emptyAfter": -1}}, "settings.consolidation.emptyAfter"),
        ({"consolidation": {"every": "1m"}}, "settings.consolidation.every"),
        ({"consolidation": {"enabled": "yes"}}, "settings.consolidation.enabled"),
        ({"consolidation": {"emptyAfter": "soon"}}, "settings.consolidation.emptyAfter"),
        ({"consolidation": {"replace": 1}}, "settings.consolidation.replace"),
    ],
)
def test_settings_errors_name_the_field(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"groups": [GROUP], "settings": settings})
    assert str(err.value).startswith(field + ":"), str(err.value)


def test_document_errors() -> None:
    with pytest.raises(ConfigError, match=r"^groups:"):
        config_from_dict({"groups": []})
    with pytest.raises(ConfigError, match=r"^nodes: unknown field \(known: groups, settings\)"):
        config_from_dict({"groups": [GROUP], "nodes": []})
    with pytest.raises(ConfigError, match=r"^config:"):
        config_from_dict(["groups"])


def test_configmap() -> None:
    config = groups_from_configmap({"groups.yaml": yaml.safe_dump({"groups": [GROUP]})})
    assert [g.name for g in config.groups] == ["general"]
    with pytest.raises(ConfigError, match=r"groups\.yaml"):
        groups_from_configmap({"other": ""})
    with pytest.raises(ConfigError, match=r"groups\[0\]\.min"):
        groups_from_configmap({"groups.yaml": yaml.safe_dump({"groups": [GROUP | {"min": 20}]})})


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "groups.yaml"
    text = yaml.safe_dump({"groups": [GROUP | {"max": -1}]})
    path.write_text(text)
    line = text.splitlines().index("  max: -1") + 1
    with pytest.raises(
        ConfigError, match=rf"groups\.yaml:{line}: groups\[0\]\.max: must not be negative$"
    ):
        load_config(path)
    path.write_text(text.replace("  max: -1", "  max: 10\n  colour: blue"))
    with pytest.raises(
        ConfigError, match=rf"groups\.yaml:{line + 1}: groups\[0\]\.colour: unknown"
    ):
        load_config(path)


def test_default_groups_follow_the_cost_model() -> None:
    config = load_config(DATA / "default-groups.yaml")
    by_name = {g.name: g for g in config.groups}
    for group in config.groups:
        it = group.instance_type
        if it.gpu_milli == 0:  # 0.353 CNY/h per 2 vCPU / 8 GiB, linear
            assert group.price_per_hour == pytest.approx(0.353 * it.cpu_milli / 2000)
            assert it.memory == it.cpu_milli // 1000 * 4 * GIB
    gpu = by_name["gpu-8x"]
    assert gpu.instance_type.capacity == Resources(96_000, 384 * GIB, 110, 8000)
    assert gpu.price_per_hour == 64.0
    # ECS is cheaper than ECI for pods running more than about 16 hours a day
    small = by_name["general-2c8g"]
    fraction = break_even_fraction(
        price_per_hour=small.price_per_hour, capacity=small.instance_type.capacity, eci=EciPrice()
    )
    assert fraction * 24 == pytest.approx(16, abs=0.1)


def test_ecs_cheaper_break_even() -> None:
    # 2 cpu / 8 GiB pod alone on a 2 cpu / 8 GiB node (0.353 CNY/h; ECI 0.52934 CNY/h), 60 s boot,
    # 10 min linger: cheaper when 0.353 * (60 + R + 600) < 0.52934 * (R - 60), i.e. R > 1501 s
    pod = Resources(2000, 8 * GIB, 1)
    node = Resources(2000, 8 * GIB, 110)
    args: dict[str, Any] = {
        "price_per_hour": 0.353,
        "capacity": node,
        "eci": EciPrice(),
        "boot": 60.0,
        "linger": 600.0,
    }
    assert ecs_cheaper(pod, remaining=26 * 60.0, **args)
    assert not ecs_cheaper(pod, remaining=24 * 60.0, **args)
    assert not ecs_cheaper(Resources(4000, 8 * GIB, 1), remaining=1e9, **args)  # does not fit
    # a Job's pod that would run again 60 s of lost work: the node runs 60 s longer,
    # 0.353 * (60 + 1560 + 60 + 600) s = 0.22357 > ECI's 0.52934 * 1500 s = 0.22056: stays
    assert not ecs_cheaper(pod, remaining=26 * 60.0, redo=60.0, **args)
    assert ecs_cheaper(pod, remaining=26 * 60.0, redo=0.0, **args)


def test_a_new_node_pays_with_whole_gpus_on_eci() -> None:
    # half-GPU pods (100m, 1 GiB) with 1 h left; ECI bills a whole GPU: 12 + 0.01764 + 0.02207 =
    # 12.0397 CNY/h each, for 1 h - 180 s boot = 0.95 h.  The 8-GPU node: 64 * (180 + 3600 + 600)
    # s = 77.87 CNY.  Eight pods: 8 * 12.0397 * 0.95 = 91.50 > 77.87 (moves; at half a GPU
    # each it would be 45.9 and stay); six pods: 68.63 < 77.87 (stay).
    half = Resources(100, GIB, 1, 500)
    args: dict[str, Any] = {
        "price_per_hour": 64.0,
        "eci": EciPrice(),
        "boot": 180.0,
        "linger": 600.0,
    }
    assert EciPrice().per_hour(half) == pytest.approx(12.0397, abs=1e-4)
    assert new_node_pays([(half, 3600.0)] * 8, **args)
    assert not new_node_pays([(half, 3600.0)] * 6, **args)
    assert not new_node_pays([], **args)
    # Job pods that would run again lost work: the node runs as long as the longest re-run.
    # 600 s more for one of them: 64 * (180 + 3600 + 600 + 600) s = 88.53 < 91.50 (moves);
    # 900 s: 93.87 > 91.50 (stays)
    assert new_node_pays([(half, 3600.0)] * 8, redo=[600.0] + [0.0] * 7, **args)
    assert not new_node_pays([(half, 3600.0)] * 8, redo=[0.0] * 7 + [900.0], **args)


def test_a_new_node_pays_with_the_nodes_it_lets_go() -> None:
    # A 20-cpu / 64 GiB replica with 1 h left: ECI 4.940352 CNY/h * 3540 s = 4.85801; a 32-cpu
    # node at 5.648 CNY/h (60 s boot, 600 s linger) is paid 4260 s: 6.68347.  An 8-cpu node at
    # 1.412 whose pods it takes goes 600 s after the boot and would be paid until its pods end
    # (3600 s): saved 1.412 * (3600 - 660) s = 1.15313; two, less two 0.1 restarts: 6.96427 >
    # 6.68347.  If the second node's pods end at 700 s it saves only 1.412 * 40 s = 0.01569:
    # 5.82683 < 6.68347.  Its pods outliving the new node count to its paid end: 4260 s.
    big = Resources(20000, 64 * GIB, 1, 0)
    args: dict[str, Any] = {
        "price_per_hour": 5.648,
        "eci": EciPrice(),
        "boot": 60.0,
        "linger": 600.0,
        "drain_wait": 600.0,
        "restarts": 0.2,
    }
    assert not new_node_pays([(big, 3600.0)], **{**args, "restarts": 0.0})
    assert new_node_pays([(big, 3600.0)], freed=[(1.412, 3600.0)] * 2, **args)
    assert not new_node_pays([(big, 3600.0)], freed=[(1.412, 3600.0), (1.412, 700.0)], **args)
    # one node whose pods run a day: 1.412 * (4260 - 660) s = 1.412 - 0.1 -> 6.17001 < 6.68347
    assert not new_node_pays([(big, 3600.0)], freed=[(1.412, 86400.0)], **{**args, "restarts": 0.1})


def test_a_moves_saving_pays_for_the_work_run_again() -> None:
    # A 1-GPU pod (12 CNY/h on ECI) moved into a free GPU of an 8-GPU node at 64 CNY/h: its share
    # is 8 CNY/h.  A service replica with 2 h left saves 24 - 0.1 = 23.9 CNY; a Job's pod 2 h
    # into its 4 h runs those 2 h again: 24 - 0.1 - 16 = 7.9 CNY; 3 h into it, 1 h left:
    # 12 - 0.1 - 24 = -12.1 (it stays)
    gpu = Resources(0, 0, 1, 1000)
    args: dict[str, Any] = {"eci": EciPrice(), "restart": 0.1, "ecs_per_hour": 8.0}
    assert move_saving(gpu, remaining=7200.0, **args) == pytest.approx(23.9)
    assert move_saving(gpu, remaining=7200.0, redo=7200.0, **args) == pytest.approx(7.9)
    assert move_saving(gpu, remaining=3600.0, redo=10_800.0, **args) == pytest.approx(-12.1)


def test_durations() -> None:
    assert parse_duration("1h30m", "x") == 5400.0
    assert parse_duration("250ms", "x") == 0.25
    assert parse_duration("1d12h", "x") == 129_600.0  # one grammar: days and weeks too
    assert parse_duration("1w", "x") == 604_800.0
    assert parse_duration(45, "x") == 45.0
    with pytest.raises(ConfigError, match=r"^x:"):
        parse_duration("10 m", "x")


def test_a_duration_string_parses_the_same_every_time_and_a_bad_one_always_fails() -> None:
    from autoscaler.nodegroup import ConfigError, parse_duration

    for _ in range(2):  # the second time from the kept answers
        assert parse_duration("1h30m", "x") == 5400.0
        assert parse_duration("2d", "x") == 2 * 86400.0
        assert parse_duration(90, "x") == 90.0
        with pytest.raises(ConfigError, match="x"):
            parse_duration("soon", "x")
