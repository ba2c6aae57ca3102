"""``autoscaler.replay.report``: the fluid bound's choice of group uses the scheduler's rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from autoscaler.replay.report import _cheapest
from extender.model import Resources

from .conftest import SMALL_GROUP, small_scenario

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def group(name: str, price: float, *, gpu: str = "0", taints: Sequence[Any] = ()) -> dict[str, Any]:
    return {
        **SMALL_GROUP,
        "name": name,
        "instanceType": {"cpu": "8", "memory": "32Gi", "gpu": gpu, "maxPods": 110},
        "labels": {"spillover.dev/node-group": name},
        "pricePerHour": price,
        "taints": list(taints),
    }


CPU = Resources(cpu_milli=1000, memory=2**30, pods=1)
GPU = Resources(cpu_milli=1000, memory=2**30, pods=1, gpu_milli=1000)


@pytest.mark.parametrize(
    ("groups", "requests", "chosen"),
    [
        ([group("cheap-gpu", 1.0, gpu="1", taints=[GPU_TAINT]), group("cpu", 5.0)], CPU, "cpu"),
        (
            [group("cheap-gpu", 1.0, gpu="1", taints=[GPU_TAINT]), group("cpu", 5.0)],
            GPU,
            "cheap-gpu",
        ),
        (
            [
                group(
                    "gpu-dedicated",
                    1.0,
                    gpu="1",
                    taints=[GPU_TAINT, {"key": "team", "value": "ml"}],
                ),
                group("gpu", 9.0, gpu="1", taints=[GPU_TAINT]),
            ],
            GPU,
            "gpu",
        ),
        (
            [
                group("evicting", 1.0, taints=[{"key": "spot", "effect": "NoExecute"}]),
                group("cpu", 5.0),
            ],
            CPU,
            "cpu",
        ),
        ([group("soft", 1.0, taints=[{"key": "x", "effect": "PreferNoSchedule"}])], CPU, "soft"),
    ],
    ids=[
        "cpu-pod-avoids-gpu-taint",
        "gpu-pod-tolerates-gpu-taint",
        "gpu-pod-blocked-by-another-taint",
        "no-execute-blocks",
        "prefer-no-schedule-does-not",
    ],
)
def test_cheapest_group_follows_the_schedulers_taint_rule(
    groups: list[dict[str, Any]], requests: Resources, chosen: str
) -> None:
    scenario = small_scenario(
        autoscaler={"groups": groups, "settings": {"scaleDownUnneededTime": "100s"}}
    )
    assert _cheapest(requests, scenario)[0] == chosen
