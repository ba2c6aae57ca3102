"""The forecast's numba kernels return numpy's and scipy's bits (their references).

Like test_kernels.py, meant to pass compiled and with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler import forecast_kernels
from autoscaler.forecast import _LEVELS as _LEVELS
from autoscaler.forecast import _column_medians as _column_medians
from autoscaler.forecast import _loo_coverage as _loo_coverage
from autoscaler.forecast import _median as _median
from autoscaler.forecast import _others as _others

SETTINGS = settings(max_examples=200, deadline=None)

# demand-like values: a few levels (ties, zeros) or any finite float of a wide range
VALUES = st.one_of(
    st.sampled_from([0.0, 1.0, 2.5, 3.0, 1e-9, 7e6]),
    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
)


def _bits(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, np.float64).tobytes()


@SETTINGS
@given(st.integers(1, 9), st.integers(1, 40), st.data())
def test_column_medians_are_numpys(rows: int, cols: int, data: st.DataObject) -> None:
    x = np.array(data.draw(st.lists(VALUES, min_size=rows * cols, max_size=rows * cols)))
    x = np.where(x == 0.0, 0.0, x).reshape(rows, cols)  # no -0.0: that one is numpy's
    found = forecast_kernels.column_medians(x)
    assert found is not None
    assert _bits(found) == _bits(np.median(x, axis=0))
    # a transposed (non-contiguous) view, as the profiles' day rows may be
    found = forecast_kernels.column_medians(x.T.copy().T)
    assert found is not None
    assert _bits(found) == _bits(np.median(x, axis=0))


@SETTINGS
@given(st.lists(VALUES, min_size=1, max_size=300))
def test_median_is_numpys(values: list[float]) -> None:
    x = np.array(values)
    x[x == 0.0] = 0.0
    assert _bits(np.array(forecast_kernels.median(x))) == _bits(np.array(float(np.median(x))))
    assert _bits(np.array(forecast_kernels.median(x[::-1]))) == _bits(np.median(x))


def test_median_of_many_ties_and_sorted_runs() -> None:
    rng = np.random.default_rng(1)
    for x in (
        np.full(2016, 300.0),  # the steps of a regular series
        np.sort(rng.normal(size=865)),
        np.sort(rng.normal(size=864))[::-1].copy(),
        rng.choice([0.0, 1.0, 2.0], 1001),
    ):
        assert forecast_kernels.median(x) == float(np.median(x))


@pytest.mark.parametrize("bad", [np.nan, -0.0])
def test_a_nan_or_negative_zero_is_left_to_numpy(bad: float) -> None:
    """Where the bits depend on more than the value, the kernels say so, and the forecast's
    medians take numpy's way: the same result as np.median still."""
    rows = np.array([[1.0, 0.0, 2.0], [bad, 0.0, 3.0], [4.0, 0.0, 1.0]])
    assert forecast_kernels.column_medians(rows) is None
    np.testing.assert_array_equal(_column_medians(rows), np.median(rows, axis=0))
    assert np.isnan(forecast_kernels.median(rows[:, 0]))
    np.testing.assert_array_equal(_median(rows[:, 0]), np.median(rows[:, 0]))
    zeros = np.array([0.0, -0.0, -0.0, 0.0])
    assert _bits(np.array(_median(zeros))) == _bits(np.array(float(np.median(zeros))))


@SETTINGS
@given(
    st.lists(VALUES, min_size=1, max_size=200),
    st.integers(1, 150),
    st.booleans(),
)
def test_moving_mean_is_scipys_uniform_filter1d(values: list[float], size: int, wrap: bool) -> None:
    x = np.array(values)
    mode = "wrap" if wrap else "nearest"
    expected = scipy.ndimage.uniform_filter1d(x, size, mode=mode)
    assert _bits(forecast_kernels.moving_mean(x, size, wrap=wrap)) == _bits(expected)


def test_moving_mean_of_profiles_and_ten_minute_series() -> None:
    """The two sizes the forecast uses: a day profile smoothed over a quarter of an hour (wrap)
    and detect_period's one-day moving average of ten-minute means (nearest)."""
    rng = np.random.default_rng(2)
    profile = rng.gamma(2.0, 30.0, 288)
    series = rng.gamma(2.0, 30.0, 1008)
    assert _bits(forecast_kernels.moving_mean(profile, 3, wrap=True)) == _bits(
        scipy.ndimage.uniform_filter1d(profile, 3, mode="wrap")
    )
    assert _bits(forecast_kernels.moving_mean(series, 144, wrap=False)) == _bits(
        scipy.ndimage.uniform_filter1d(series, 144, mode="nearest")
    )


def test_wrappers_check_their_input() -> None:
    with pytest.raises(ValueError, match="column_medians"):
        forecast_kernels.column_medians(np.ones(3))
    with pytest.raises(ValueError, match="median"):
        forecast_kernels.median(np.ones(0))
    with pytest.raises(ValueError, match="moving_mean"):
        forecast_kernels.moving_mean(np.ones(3), 0, wrap=True)
    forecast_kernels.warm_up()


@SETTINGS
@given(st.integers(3, 6), st.integers(1, 80), st.integers(0, 2**32 - 1), st.booleans())
def test_loo_coverage_is_numpys_quantile_and_search(
    cuts: int, size: int, seed: int, ties: bool
) -> None:
    """The kernel against the numpy computation it replaces (forecast._loo_coverage; the whole
    band level is pinned to the loop over cuts in test_forecast_exact.py): the same sums."""
    rng = np.random.default_rng(seed)
    blocks = rng.normal(rng.normal(0.0, 5.0, (cuts, 1)), 10.0, (cuts, size))
    if ties:
        blocks = blocks.round(0)  # residuals of exact forecasts: many equal values, zeros
    ordered = np.sort(blocks, axis=1)
    rest = np.sort(blocks[_others(cuts)].reshape(cuts, -1), axis=1)
    found = forecast_kernels.loo_coverage(ordered, rest, _LEVELS)
    assert _bits(found) == _bits(_loo_coverage(ordered, rest))


def test_loo_coverage_checks_its_input() -> None:
    with pytest.raises(ValueError, match="loo_coverage"):
        forecast_kernels.loo_coverage(np.ones((3, 2)), np.ones((2, 4)), _LEVELS)
