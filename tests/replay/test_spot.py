"""Spot interruptions: seeded per node, pods evicted and placed again, the autoscaler reacts."""

from __future__ import annotations

import random
from typing import Any

from autoscaler.replay.report import fluid_bound, variants
from autoscaler.replay.scenario import Scenario
from autoscaler.replay.simulator import Result, simulate
from autoscaler.replay.trace import ReplicasChanged, Template, Trace, TraceHeader
from extender.model import Resources, WorkloadKey

from .conftest import ECI_PRICE, SMALL_GROUP, small_scenario

WEB = WorkloadKey("shop", "Deployment", "web")
ONE = Template(Resources(1000, 2**30, 1, 0), {"app": "web"})
HOURS = 10


def _trace() -> Trace:
    events = [ReplicasChanged(0.0, WEB, 3, ONE), ReplicasChanged(HOURS * 3600.0, WEB, 3)]
    return Trace(TraceHeader(), events)


def _run(variant: str, *, spot: bool, rate: float) -> Result:
    base = small_scenario()
    settings: dict[str, Any] = {
        "scaleDownUtilizationThreshold": 0.5,
        "scaleDownUnneededTime": "100s",
        "scaleDownDelayAfterAdd": "0s",
        "eciPrice": ECI_PRICE,
    }
    scenario: Scenario = small_scenario(
        spot={"interruptionsPerHour": rate},
        autoscaler={"groups": [{**SMALL_GROUP, "spot": spot}], "settings": settings},
    )
    assert scenario.autoscaler.settings == base.autoscaler.settings
    trace = _trace()
    chosen = {v.name: v for v in variants(scenario, fluid_bound(trace, scenario))}[variant]
    return simulate(trace, scenario, chosen, audit=True)


def test_spot_nodes_are_reclaimed_at_seeded_times_and_replaced() -> None:
    r = _run("reactive-ecs", spot=True, rate=0.5)
    reclaimed = [a for a in r.actions if a.kind == "interrupted"]
    assert len(reclaimed) >= 2
    # Each reclaim comes at the node's own seeded draw after it became Ready (boot 60 s after
    # the scale-up at t=10 that created the first two nodes), whatever else the run does.
    ups = [a for a in r.actions if a.kind == "scale-up"]
    assert (ups[0].t, ups[0].nodes) == (10.0, 2)
    draws = [70.0 + random.Random(f"3/spot/small-{i:05d}").expovariate(0.5 / 3600) for i in (1, 2)]
    assert reclaimed[0].t == min(draws)
    # The evicted pod waits for a new node (all ECS): the autoscaler scaled up again.
    assert len(ups) > 1
    assert r.evictions >= len(reclaimed)
    assert r.pending.max() >= 60.0


def test_no_rate_or_no_spot_group_means_no_reclaim() -> None:
    plain = _run("reactive-ecs", spot=False, rate=0.5)
    zero = _run("reactive-ecs", spot=True, rate=0.0)
    assert not [a for a in plain.actions if a.kind == "interrupted"]
    assert plain.actions == zero.actions
    assert plain.cost == zero.cost
    again = _run("reactive-ecs", spot=True, rate=0.5)
    assert again.actions == _run("reactive-ecs", spot=True, rate=0.5).actions
    assert [a for a in again.actions if a.kind == "interrupted"]
