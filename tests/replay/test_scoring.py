"""kube-scheduler's resource scores as the replay models them, by hand."""

from __future__ import annotations

import pytest

from autoscaler.replay.scoring import BIN_PACKING, STOCK, score

GIB = 2**30
ALLOC = (96_000, 384 * GIB, 8000)  # a gpu-8x node


def test_bin_packing_prefers_the_busier_node_gpus_included() -> None:
    pod = (6000, 12 * GIB, 460)  # a shared GPU
    # busy: 48 cores, 192 GiB, 4.5 GPUs requested; after the pod: cpu 54/96 -> 56, memory
    # 204/384 -> 53, gpu 4.96/8 -> 62; (56 + 53 + 62) // 3 = 57
    busy = (48_000, 192 * GIB, 3500)
    assert score(BIN_PACKING, free=busy, alloc=ALLOC, req=pod) == 57
    # empty: 6/96 -> 6, 12/384 -> 3, 0.46/8 -> 5: 14 // 3 = 4
    assert score(BIN_PACKING, free=ALLOC, alloc=ALLOC, req=pod) == 4
    # a CPU-only pod: the GPU is not counted (the pod does not request it): (56 + 53) // 2 = 54
    assert score(BIN_PACKING, free=busy, alloc=ALLOC, req=(6000, 12 * GIB, 0)) == 54


def test_stock_spreads_and_balances() -> None:
    pod = (6000, 12 * GIB, 460)
    busy = (48_000, 192 * GIB, 3500)
    # LeastAllocated over cpu and memory: (96-54)*100//96 = 43, (384-204)*100//384 = 46 -> 44;
    # balanced: fractions 0.5625 and 0.53125, std 0.015625: int(98.4375) = 98; total 142
    assert score(STOCK, free=busy, alloc=ALLOC, req=pod) == 142
    # empty: 93 and 96 -> 94; fractions 0.0625 and 0.03125: std 0.015625 -> 98; total 192
    assert score(STOCK, free=ALLOC, alloc=ALLOC, req=pod) == 192


def test_an_overcommitted_resource_scores_at_its_bound() -> None:
    # requests above allocatable count as allocatable: MostAllocated 100 each; LeastAllocated 0
    # each, and BalancedAllocation sees 1.0 and 1.0 (std 0): 100
    full = (0, 0, 0)
    assert score(BIN_PACKING, free=full, alloc=ALLOC, req=(1000, GIB, 1000)) == 100
    assert score(STOCK, free=full, alloc=ALLOC, req=(1000, GIB, 1000)) == 100


def test_the_scenario_names_each_side_s_profile() -> None:
    from autoscaler.replay.report import fluid_bound, variants
    from autoscaler.replay.scenario import ScenarioError, load_scenario, scenario_from_dict
    from autoscaler.replay.trace import Trace, TraceHeader

    default = load_scenario()
    assert (default.scoring, default.baseline_scoring) == (BIN_PACKING, STOCK)
    trace = Trace(TraceHeader(), [])
    by_name = {v.name: v.scoring for v in variants(default, fluid_bound(trace, default))}
    assert by_name.pop("spillover") == BIN_PACKING
    assert set(by_name.values()) == {STOCK}  # every baseline: reactive, all-ECI, static-N
    doc = {"autoscaler": {"groups": [{"name": "g", "instanceType": {"cpu": 2, "memory": "8Gi"}}]}}
    both = scenario_from_dict({**doc, "scheduler": {"spillover": "stock", "baselines": "stock"}})
    assert (both.scoring, both.baseline_scoring) == (STOCK, STOCK)
    with pytest.raises(
        ScenarioError, match=r"^scheduler\.spillover: must be one of bin-packing, stock"
    ):
        scenario_from_dict({**doc, "scheduler": {"spillover": "MostAllocated"}})
    with pytest.raises(ScenarioError, match=r"^scheduler\.plugins: unknown field"):
        scenario_from_dict({**doc, "scheduler": {"plugins": []}})
