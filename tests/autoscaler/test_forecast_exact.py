"""The forecast's shortcuts return the bits of the plain numpy formulas they replace (issue 14).

Each reference below is the code the shortcut replaced, kept here: a fit must come out the same
to the last bit (the replay's results are fingerprinted), only cheaper.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.forecast import _LEVELS as _LEVELS
from autoscaler.forecast import DAY, ForecastSettings, fit_forecast, wape
from autoscaler.forecast import _band_level as _band_level
from autoscaler.forecast import _candidates as _candidates
from autoscaler.forecast import _combine as _combine
from autoscaler.forecast import _corrected as _corrected
from autoscaler.forecast import _halving as _halving
from autoscaler.forecast import _profile as _profile
from autoscaler.forecast import _quantile as _quantile
from autoscaler.forecast import _regular as _regular
from autoscaler.forecast import _sorted_quantile as _sorted_quantile
from autoscaler.forecast import _tile as _tile
from autoscaler.forecast import _wape as _wape

SETTINGS = settings(max_examples=150, deadline=None)
FINITE = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)


def _bits(x: object) -> bytes:
    return np.ascontiguousarray(np.asarray(x, np.float64)).tobytes()


# --- references: the replaced code --------------------------------------------------------


def _regular_ref(ts: np.ndarray, values: np.ndarray) -> tuple[float, float, np.ndarray]:
    if np.any(np.diff(ts) < 0):
        raise ValueError("timestamps must be non-decreasing")
    ok = np.isfinite(values)
    if not ok.any():
        raise ValueError("no finite values")
    ts, values = ts[ok], values[ok]
    diffs = np.diff(ts)
    diffs = diffs[diffs > 0]
    step = float(np.median(diffs)) if diffs.size else 60.0
    if step >= 1.0:
        step = float(round(step))
    n = round((ts[-1] - ts[0]) / step) + 1
    grid = ts[0] + step * np.arange(n, dtype=np.float64)
    if n == ts.size and np.allclose(grid, ts, rtol=0.0, atol=step * 1e-6):
        return float(ts[0]), step, values.copy()
    return float(ts[0]), step, np.interp(grid, ts, values)


def _band_level_ref(blocks: list[np.ndarray], quantile: float) -> float:
    if len(blocks) < 3:
        return 0.5 * (1.0 + quantile)
    levels = _LEVELS[_LEVELS < 1.0]
    covered = np.zeros(levels.size)
    for i, block in enumerate(blocks):
        rest = np.sort(np.concatenate(blocks[:i] + blocks[i + 1 :]))
        edges = _sorted_quantile(rest, levels)
        covered += np.searchsorted(np.sort(block), edges, side="right") / block.size
    enough = np.flatnonzero(covered / len(blocks) >= quantile)
    return float(levels[enough[0]]) if enough.size else float(levels[-1])


def _corrected_ref(
    base: object, window: int, half_life: int, clip: float, train: np.ndarray, steps: int
) -> np.ndarray:
    assert callable(base)
    ahead = base(train[:-window], window + steps)
    seen, future = ahead[:window], ahead[window:]
    damping = 0.5 ** (np.arange(steps, dtype=np.float64) / half_life)
    if clip:
        expected = float(np.median(seen))
        ratio = float(np.median(train[-window:])) / expected if expected > 0.0 else 1.0
        return np.asarray(future * (1.0 + (np.clip(ratio, 1.0 / clip, clip) - 1.0) * damping))
    return np.asarray(future + float(np.median(train[-window:] - seen)) * damping)


# --- the shortcuts against them ------------------------------------------------------------


@SETTINGS
@given(
    st.lists(st.floats(0.5, 400.0), min_size=1, max_size=60),
    st.lists(FINITE, min_size=61, max_size=61),
    st.integers(0, 3),
)
def test_regular_is_the_allclose_and_median_formula(
    gaps: list[float], values: list[float], holes: int
) -> None:
    """Regular, jittered and gapped times, some values missing: the same grid and values."""
    ts = np.asarray(1.6e9 + np.concatenate(([0.0], np.cumsum(gaps))), np.float64)
    v = np.array(values[: ts.size])
    v[:holes] = np.nan
    if holes >= v.size:
        return
    for t in (ts, 1.6e9 + 60.0 * np.arange(ts.size, dtype=np.float64)):
        got, want = _regular(t, v), _regular_ref(t, v)
        assert got[:2] == want[:2]
        assert _bits(got[2]) == _bits(want[2])


@SETTINGS
@given(
    st.lists(FINITE, min_size=1, max_size=400),
    st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.5, 0.9, 0.999, 1.0])),
)
def test_quantile_of_sorted_is_numpys(values: list[float], level: float) -> None:
    x = np.array(values)
    x[x == 0.0] = 0.0
    assert _bits(_quantile(np.sort(x), level)) == _bits(np.quantile(x, level))


def test_quantile_with_nan_or_negative_zero_is_numpys() -> None:
    for x in (np.array([1.0, np.nan, 3.0]), np.array([-0.0, 0.0, -0.0, 1.0])):
        for level in (0.0, 0.3, 0.5, 0.7, 1.0):
            assert _bits(_quantile(np.sort(x), level)) == _bits(np.quantile(x, level))


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 120), st.floats(0.5, 0.99), st.integers(0, 2**32 - 1))
def test_band_level_is_the_loop_over_cuts(cuts: int, size: int, q: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    blocks = rng.normal(rng.normal(0.0, 5.0, (cuts, 1)), 10.0, (cuts, size)).round(1)
    assert _band_level(blocks, q) == _band_level_ref(list(blocks), q)


def test_band_level_with_a_nan_is_the_loop_over_cuts() -> None:
    """A NaN residual takes numpy's sort and search (the kernel leaves it): as before."""
    blocks = np.arange(15.0).reshape(3, 5)
    blocks[1, 2] = np.nan
    assert _band_level(blocks, 0.9) == _band_level_ref(list(blocks), 0.9)


@SETTINGS
@given(st.integers(2, 9), st.integers(1, 50), st.integers(0, 2**32 - 1))
def test_combine_is_the_median_and_weighted_mean(rows: int, cols: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    preds = rng.gamma(2.0, 10.0, (rows, cols)).round(2)
    names = tuple(f"m{i}" for i in range(rows))
    weights = {names[i]: float(w) for i, w in zip([0, rows - 1], rng.random(2), strict=True)}
    got = _combine(names, preds, weights)
    mean = np.zeros(cols)
    for k, w in weights.items():
        mean += w * preds[names.index(k)]
    assert _bits(got["median"]) == _bits(np.median(np.stack(list(preds)), axis=0))
    assert _bits(got["weighted-mean"]) == _bits(mean / sum(weights.values()))


def test_tile_and_halving_are_their_formulas() -> None:
    profile = np.arange(7.0)
    for steps in (1, 7, 20):
        assert _bits(_tile(profile, steps)) == _bits(profile[np.arange(steps) % 7])
        assert _bits(_halving(steps, 5)) == _bits(0.5 ** (np.arange(steps, dtype=np.float64) / 5))


@pytest.mark.parametrize("clip", [0.0, 2.0])
@pytest.mark.parametrize("scale", [0.1, 0.9, 1.0, 1.3, 5.0])
def test_corrected_is_its_clip_and_median_formula(clip: float, scale: float) -> None:
    """damped-level-profile (clip, ratio inside and outside [1/2, 2]) and week+level (shift)."""
    rng = np.random.default_rng(7)
    day = 48
    train = rng.gamma(3.0, 10.0, 5 * day)
    train[-6:] *= scale
    base = _profile(day, 7, 3)
    got = _corrected(base, 6, day, clip)(train, day + 5)
    assert _bits(got) == _bits(_corrected_ref(base, 6, day, clip, train, day + 5))


def test_wape_given_the_total_is_wape() -> None:
    rng = np.random.default_rng(8)
    actual, predicted = rng.random(50), rng.random(50)
    total = float(np.abs(actual).sum())
    assert _wape(actual, predicted, total) == wape(actual, predicted)
    assert _wape(actual, actual.copy(), total) == 0.0
    assert math.isinf(_wape(np.zeros(3), np.ones(3), 0.0))


def test_backtest_scores_are_each_candidates_own_forecasts() -> None:
    """The backtest writes every candidate's cut forecasts into one array: each score is still
    the WAPE of that candidate fitted on the data before each cut (computed here one by one)."""
    rng = np.random.default_rng(9)
    step = 300.0
    day = round(DAY / step)
    n = 7 * day + 1
    t = np.arange(n) * step
    y = 50 + 20 * np.sin(2 * np.pi * t / DAY) + rng.normal(0.0, 3.0, n)
    fc = fit_forecast(1.6e9 + t, y, horizon=7 * 3600.0)
    s = ForecastSettings()
    origins = [n - day - j * day for j in range(s.cuts)]
    origins = [o for o in origins if o >= 2 * day]
    assert fc.cuts == len(origins)
    actual = np.concatenate([y[o : o + day] for o in origins])
    for name, model in _candidates(min(origins), step, fc.period, s).items():
        joined = np.concatenate([np.maximum(model(y[:o], day), 0.0) for o in origins])
        assert fc.scores[name] == wape(actual, joined)


def test_candidates_are_kept_and_read_only() -> None:
    """Every backtest and refit of one length shares one set of models (pure functions)."""
    s = ForecastSettings()
    models = _candidates(3 * 288, 300.0, "day", s)
    assert _candidates(3 * 288, 300.0, "day", s) is models
    assert _candidates(3 * 288, 300.0, "none", s) is not models
    with pytest.raises(TypeError):
        models["robust-baseline"] = models["seasonal-profile"]  # type: ignore[index]
