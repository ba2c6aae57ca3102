from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoscaler.replay.scenario import Scenario, scenario_from_dict

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BUNDLED = Path(__file__).resolve().parents[2] / "autoscaler" / "replay" / "data"


def data(name: str) -> Path:
    shared = SHARED / name
    return shared if shared.is_file() else BUNDLED / name


SMALL_GROUP: dict[str, Any] = {
    "name": "small",
    "instanceType": {"cpu": "2", "memory": "8Gi", "maxPods": 110},
    "labels": {"spillover.dev/node-group": "small"},
    "pricePerHour": 3.6,
    "min": 0,
    "max": 10,
    "cooldown": "0s",
    "bootTime": "60s",
}
"""The group of ``small_scenario``, reused by richer scenarios (shared: never mutate it)."""
ECI_PRICE: dict[str, Any] = {"vcpuSecond": 0.000049, "gibSecond": 0.00000613, "gpuHour": 12}


def small_scenario(**overrides: Any) -> Scenario:
    """One 2 cpu / 8 GiB group at 3.6 CNY/h (0.001 CNY/s), 60 s boot, no jitter, no forecast."""
    doc: dict[str, Any] = {
        "seed": 3,
        "autoscaler": {
            "groups": [SMALL_GROUP],
            "settings": {
                "scaleDownUtilizationThreshold": 0.5,
                "scaleDownUnneededTime": "100s",
                "scaleDownDelayAfterAdd": "0s",
                "eciPrice": ECI_PRICE,
            },
        },
        "policies": [
            {
                "apiVersion": "spillover.dev/v1alpha1",
                "kind": "ResourcePolicy",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"selector": {}, "units": [{"resource": "ecs"}, {"resource": "eci"}]},
            }
        ],
        "timing": {
            "loopPeriod": "10s",
            "reactionDelay": "1s",
            "eciStartDelay": "10s",
            "eciStartJitter": "0s",
        },
        "forecast": {"enabled": False},
        "baselines": {"headroom": [0, 1], "staticNodes": 1},
        "samplePeriod": "60s",
    }
    for key, value in overrides.items():
        doc[key] = value
    return scenario_from_dict(doc)


@pytest.fixture
def scenario() -> Scenario:
    return small_scenario()
