"""The numba kernels agree with their plain-Python references on random clusters.

CI runs this file twice: compiled, and with ``NUMBA_DISABLE_JIT=1`` (the kernels as Python).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler import kernels, kernels_ref

GIB = 2**30
SETTINGS = settings(max_examples=150, deadline=None)


def _pods(rng: np.random.Generator, count: int) -> np.ndarray:
    """Requests drawn from a few sizes, as replicas are, with some GPU pods."""
    cpu = rng.choice([100, 250, 500, 1000, 2000, 3500], count)
    mem = rng.choice([1, 2, 4, 8], count) * GIB // 2
    gpu = rng.choice([0, 0, 0, 500, 1000], count)
    return np.stack([cpu, mem, gpu, np.ones(count, np.int64)], axis=1).astype(np.int64)


def _caps(rng: np.random.Generator, count: int) -> np.ndarray:
    cpu = rng.choice([2000, 4000, 8000], count)
    return np.stack(
        [
            cpu,
            cpu * 4 * GIB // 1000,
            rng.choice([0, 1000, 4000], count),
            rng.choice([3, 8, 110], count),
        ],
        axis=1,
    ).astype(np.int64)


def _order(req: np.ndarray) -> np.ndarray:
    return np.lexsort((-req[:, 1], -req[:, 0], -req[:, 2])).astype(np.int64)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), pods=st.integers(0, 60), groups=st.integers(1, 5))
def test_ffd_and_options_agree(seed: int, pods: int, groups: int) -> None:
    rng = np.random.default_rng(seed)
    req, cap = _pods(rng, pods), _caps(rng, groups)
    elig = rng.random((groups, pods)) < 0.8
    max_nodes = rng.integers(0, 12, groups)
    args = {"order": _order(req), "cap": cap, "elig": elig, "max_nodes": max_nodes}
    used, assign = kernels.ffd(req, **args)
    ref_used, ref_assign = kernels_ref.ffd(req, **args)
    np.testing.assert_array_equal(used, ref_used)
    np.testing.assert_array_equal(assign, ref_assign)
    assert (used <= max_nodes).all()
    for g in range(groups):  # never over capacity, only eligible pods
        for n in range(int(used[g])):
            on = assign[g] == n
            assert (req[on].sum(axis=0) <= cap[g]).all()
        assert not (assign[g][~elig[g]] >= 0).any()
    price, eci = rng.random(groups), rng.random(pods)
    scores = kernels.option_matrix(
        req, assign=assign, used=used, cap=cap, price=price, eci_cost=eci, hours=1.5
    )
    ref = kernels_ref.option_matrix(
        req, assign=assign, used=used, cap=cap, price=price, eci_cost=eci, hours=1.5
    )
    np.testing.assert_allclose(scores, ref, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), pods=st.integers(0, 60), nodes=st.integers(0, 12))
def test_fit_existing_agrees(seed: int, pods: int, nodes: int) -> None:
    rng = np.random.default_rng(seed)
    req = _pods(rng, pods)
    free = _caps(rng, nodes) - _pods(rng, nodes) * rng.integers(0, 3, (nodes, 1))
    classes = int(rng.integers(1, 4))
    args = {
        "order": _order(req),
        "free": free,
        "pod_class": rng.integers(0, classes, pods),
        "elig": rng.random((classes, nodes)) < 0.7,
    }
    np.testing.assert_array_equal(
        kernels.fit_existing(req, **args), kernels_ref.fit_existing(req, **args)
    )


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), nodes=st.integers(1, 10), groups=st.integers(1, 3))
def test_drain_agrees(seed: int, nodes: int, groups: int) -> None:
    rng = np.random.default_rng(seed)
    candidates = rng.permutation(nodes)[: int(rng.integers(0, nodes + 1))].astype(np.int64)
    per = rng.integers(0, 5, candidates.size)
    starts = np.concatenate([[0], np.cumsum(per)]).astype(np.int64)
    total = int(starts[-1])
    req = _pods(rng, total)
    free = _caps(rng, nodes) - _pods(rng, nodes) * rng.integers(0, 2, (nodes, 1))
    classes, budgets = int(rng.integers(1, 3)), int(rng.integers(0, 3))
    args = {
        "pod_class": rng.integers(0, classes, total),
        "pod_pdb": rng.integers(-1, budgets, total),
        "cand_start": starts,
        "cand_node": candidates,
        "cand_group": rng.integers(0, groups, candidates.size),
        "group_budget": rng.integers(0, 4, groups),
        "pdb_budget": rng.integers(0, 4, budgets),
        "free": free,
        "elig": rng.random((classes, nodes)) < 0.8,
    }
    status, dest = kernels.drain(req, **args)
    ref_status, ref_dest = kernels_ref.drain(req, **args)
    np.testing.assert_array_equal(status, ref_status)
    np.testing.assert_array_equal(dest, ref_dest)
    removed = set(candidates[status == kernels.DRAIN_REMOVED].tolist())
    assert not removed & set(dest[dest >= 0].tolist())  # nothing lands on a removed node


def test_ffd_hand_example() -> None:
    """Ten 1-cpu/2Gi pods on 4-cpu/16Gi nodes take three nodes: 4 + 4 + 2."""
    req = np.tile([1000, 2 * GIB, 0, 1], (10, 1))
    used, assign = kernels.ffd(
        req,
        order=np.arange(10),
        cap=[[4000, 16 * GIB, 0, 110]],
        elig=np.ones((1, 10), bool),
        max_nodes=[10],
    )
    assert used.tolist() == [3]
    assert np.bincount(assign[0]).tolist() == [4, 4, 2]


def test_ffd_respects_max_nodes_and_max_pods() -> None:
    req = np.tile([100, GIB, 0, 1], (10, 1))
    used, assign = kernels.ffd(
        req,
        order=np.arange(10),
        cap=[[4000, 16 * GIB, 0, 3]],
        elig=np.ones((1, 10), bool),
        max_nodes=[2],
    )
    assert used.tolist() == [2]
    assert (assign[0] >= 0).sum() == 6


def test_wrappers_check_shapes() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        kernels.ffd(
            np.zeros((2, 4)),
            order=[0, 1],
            cap=np.zeros((1, 4)),
            elig=np.ones((2, 2)),
            max_nodes=[1],
        )
    with pytest.raises(ValueError, match="dimensions"):
        kernels.fit_existing(
            np.zeros(4), order=[0], free=np.zeros((1, 4)), pod_class=[0], elig=[[1]]
        )


# In a fresh process: earlier tests of this run may have compiled the kernels already.
_COLD_AFTER_WARM_UP = """
from numba.core.registry import CPUDispatcher
from autoscaler import forecast_kernels, kernels
kernels.warm_up()
# The wrappers' kernels (*_kernel); the helpers they call are compiled into them, and a kernel
# loaded from numba's cache lists no signature for its helpers.
found = {
    f"{module.__name__}.{name}": value
    for module in (kernels, forecast_kernels)
    for name, value in vars(module).items()
    if isinstance(value, CPUDispatcher) and name.endswith("_kernel")
}
assert "autoscaler.forecast_kernels._median_kernel" in found or not found, sorted(found)
print(len(found), *[name for name, kernel in found.items() if not kernel.signatures])
"""


def test_warm_up_compiles_every_kernel_the_forecasts_too() -> None:
    kernels_ref.warm_up()
    done = subprocess.run(
        [sys.executable, "-c", _COLD_AFTER_WARM_UP], capture_output=True, text=True, check=True
    )
    count, *cold = done.stdout.split()
    if count == "0":
        pytest.skip("NUMBA_DISABLE_JIT: the kernels are plain Python, nothing to compile")
    assert cold == [], "warm_up left these kernels to compile on first use"
