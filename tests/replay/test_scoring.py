"""kube-scheduler's resource scores as the replay models them, by hand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.replay.scoring import BIN_PACKING, GPU, STOCK, Scoring, score

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


def _score_reference(
    s: Scoring, *, free: tuple[int, int, int], alloc: tuple[int, int, int], req: Req
) -> int:
    """``score`` as first written, resource by resource: the reference the fast one must match."""
    after = {
        "cpu": (alloc[0] - free[0] + req[0], alloc[0], True),
        "memory": (alloc[1] - free[1] + req[1], alloc[1], True),
        GPU: (alloc[2] - free[2] + req[2], alloc[2], req[2] > 0),
    }
    total = weight_sum = 0
    for name, weight in s.weights:
        used, cap, counted = after[name]
        if not counted or cap <= 0:
            continue
        used = min(used, cap)
        total += weight * (
            used * 100 // cap if s.strategy == "MostAllocated" else (cap - used) * 100 // cap
        )
        weight_sum += weight
    fit = total // weight_sum if weight_sum else 0
    if not s.balanced:
        return fit
    fractions = [min(u / c, 1.0) for u, c, _ in (after["cpu"], after["memory"]) if c > 0]
    std = abs(fractions[0] - fractions[1]) / 2 if len(fractions) == 2 else 0.0
    return fit + int((1 - std) * 100)


Req = tuple[int, int, int]
_AMOUNT = st.integers(0, 400 * GIB)
_SCORINGS = st.builds(
    Scoring,
    strategy=st.sampled_from(["MostAllocated", "LeastAllocated"]),
    weights=st.lists(
        st.tuples(st.sampled_from(["cpu", "memory", GPU]), st.integers(1, 5)), max_size=3
    ).map(tuple),
    balanced=st.booleans(),
)


@settings(max_examples=500, deadline=None)
@given(
    s=st.one_of(st.sampled_from([STOCK, BIN_PACKING]), _SCORINGS),
    alloc=st.tuples(_AMOUNT, _AMOUNT, _AMOUNT),
    used=st.tuples(_AMOUNT, _AMOUNT, _AMOUNT),
    req=st.tuples(_AMOUNT, _AMOUNT, _AMOUNT),
)
def test_score_is_the_reference_computation(s: Scoring, alloc: Req, used: Req, req: Req) -> None:
    free = (alloc[0] - used[0], alloc[1] - used[1], alloc[2] - used[2])  # may be overcommitted
    assert score(s, free=free, alloc=alloc, req=req) == _score_reference(
        s, free=free, alloc=alloc, req=req
    )


def test_an_unknown_resource_fails_as_it_did() -> None:
    odd = Scoring("MostAllocated", (("cpu", 1), ("ephemeral-storage", 1)), balanced=False)
    with pytest.raises(KeyError, match="ephemeral-storage"):
        score(odd, free=ALLOC, alloc=ALLOC, req=(1, 1, 0))
