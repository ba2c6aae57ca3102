"""Demand forecasting: seasonality plus level/trend, chosen by backtest, with a conformal upper bound.

The forecaster is pure (numpy and scipy only) and works on one regularly sampled series.

1. The series is put on a regular grid (gaps interpolated) and its period detected (see
   :func:`detect_period`): ``day``, ``week`` (a week that repeats beyond its daily profile) or
   ``none``.
2. Candidate models, each a function ``(train, steps) -> point``:

   - ``robust-baseline``: the median of the recent window, flat. Never extrapolates a trend, so
     it is the safe answer for series without a period, with level shifts, or near zero.
   - ``seasonal-profile``: the mean of the last few aligned periods (with one period, this is
     seasonal-naive). Averaging removes most of the noise that makes seasonal-naive poor, and
     keeps sharp edges that harmonics blur.
   - ``fourier+trend``: daily (and, on weekly series, ridge-damped weekly) harmonics, intercept
     and linear trend fitted by weighted least squares (``scipy.linalg.lstsq``) on five-minute
     means, recent days weighted more.

   The period is a structural prior: on a weekly series only models that can represent a week
   compete with the baseline.
3. Like Crane's DSP predictor, the model is chosen by an inner backtest on the training data
   only: each candidate is fitted on the training data minus its last ``horizon`` (at least a
   day, at most a third of the data) and scored by WAPE on that tail. A candidate must beat the robust baseline by ``min_gain`` to be chosen.
4. The winner is refitted on all the data. The upper quantile is the point forecast plus the
   empirical quantile of the winner's inner-backtest residuals (split-conformal style), so its
   coverage is calibrated on errors the model really makes at that horizon.

Forecasts are clipped at zero: demand is never negative. Whether a forecast may scale in is the
planner's decision, not this module's.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.ndimage

__all__ = [
    "DAY",
    "WEEK",
    "Backtest",
    "Forecast",
    "ForecastSettings",
    "Forecaster",
    "SeasonalForecaster",
    "StaticForecaster",
    "backtest",
    "detect_period",
    "fit_forecast",
    "read_series",
    "seasonal_naive",
    "wape",
]

FloatArray = npt.NDArray[np.float64]

DAY = 86_400.0
WEEK = 7 * DAY
_PERIODS = {"day": DAY, "week": WEEK}


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    fourier_day_harmonics: int = 24
    fourier_week_harmonics: int = 14
    fit_resolution: float = 300.0  # seconds per bin of the least-squares fit
    half_life: float = WEEK  # weight of an observation halves every half_life seconds back
    profile_periods: int = 4  # at most this many past periods are averaged
    baseline_window: float = 2 * 3600.0  # the robust baseline's median window
    min_gain: float = 0.05  # relative WAPE improvement needed to leave the robust baseline
    day_acf: float = 0.3  # detrended autocorrelation at one day needed for "day"
    week_ratio: float = 1.15  # see detect_period
    week_ridge: float = 0.1  # ridge penalty on weekly harmonics, relative to the total weight


@dataclass(frozen=True, slots=True)
class Forecast:
    start: float  # unix seconds of the first forecast step
    step: float  # seconds per step
    point: FloatArray  # point forecast, one per step
    upper: FloatArray  # upper quantile, one per step
    quantile: float
    period: str  # "day" | "week" | "none"
    model: str  # the candidate that won the inner backtest

    @property
    def times(self) -> FloatArray:
        return self.start + self.step * np.arange(self.point.size, dtype=np.float64)

    def at(self, t: float) -> tuple[float, float]:
        """Point and upper forecast at time ``t`` (clamped to the forecast's range)."""
        i = int(np.clip(round((t - self.start) / self.step), 0, self.point.size - 1))
        return float(self.point[i]), float(self.upper[i])


@dataclass(frozen=True, slots=True)
class Backtest:
    forecast: Forecast  # fitted on the data before the holdout
    actual: FloatArray  # held-out values, aligned with forecast.point
    wape: float
    wape_seasonal_naive_day: float  # nan when there is less than a day of history
    wape_seasonal_naive_week: float  # nan when there is less than a week of history
    coverage: float  # fraction of held-out values at or below forecast.upper


class Forecaster(Protocol):
    """The planner's seam: fit on history, then predict ``horizon`` seconds ahead."""

    def fit(self, ts: FloatArray, values: FloatArray) -> Forecaster: ...

    def predict(self, *, horizon: float) -> Forecast: ...


@dataclass(frozen=True, slots=True)
class SeasonalForecaster:
    """The production :class:`Forecaster`: ``fit`` returns a fitted copy."""

    quantile: float = 0.9
    settings: ForecastSettings = field(default_factory=ForecastSettings)
    ts: FloatArray | None = None
    values: FloatArray | None = None

    def fit(self, ts: FloatArray, values: FloatArray) -> SeasonalForecaster:
        return replace(self, ts=np.asarray(ts, np.float64), values=np.asarray(values, np.float64))

    def predict(self, *, horizon: float) -> Forecast:
        if self.ts is None or self.values is None:
            raise RuntimeError("predict() before fit()")
        return fit_forecast(
            self.ts, self.values, horizon=horizon, quantile=self.quantile, settings=self.settings
        )


@dataclass(frozen=True, slots=True)
class StaticForecaster:
    """In-tree fake for tests: a constant forecast starting right after the last sample."""

    level: float
    upper: float
    step: float = 60.0
    start: float = 0.0

    def fit(self, ts: FloatArray, values: FloatArray) -> StaticForecaster:
        start = float(ts[-1]) + self.step if len(ts) else self.start
        return replace(self, start=start)

    def predict(self, *, horizon: float) -> Forecast:
        n = max(1, math.ceil(horizon / self.step))
        return Forecast(
            start=self.start,
            step=self.step,
            point=np.full(n, self.level),
            upper=np.full(n, self.upper),
            quantile=0.9,
            period="none",
            model="static",
        )


# --- scoring ---------------------------------------------------------------------------------


def wape(actual: npt.ArrayLike, predicted: npt.ArrayLike) -> float:
    """Weighted absolute percentage error: sum |actual - predicted| / sum |actual|.

    Unlike MAPE it stays finite on series that touch zero. No error at all is 0.0 (also on
    empty input); errors against an all-zero actual are ``inf``.
    """
    a = np.asarray(actual, np.float64)
    p = np.asarray(predicted, np.float64)
    if a.shape != p.shape:
        raise ValueError(f"actual has shape {a.shape}, predicted {p.shape}")
    error = float(np.abs(a - p).sum())
    if error == 0.0:
        return 0.0
    total = float(np.abs(a).sum())
    return error / total if total > 0.0 else math.inf


def seasonal_naive(train: FloatArray, steps: int, period_steps: int) -> FloatArray:
    """The last ``period_steps`` of ``train`` repeated over ``steps``."""
    last = train[-period_steps:]
    return np.asarray(last[np.arange(steps) % period_steps], np.float64)


# --- input -----------------------------------------------------------------------------------


def read_series(path: str | Path) -> tuple[FloatArray, FloatArray]:
    """Read a ``ts,value`` CSV (header required; ts in unix seconds, non-decreasing)."""
    ts: list[float] = []
    values: list[float] = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: line 1: empty file, expected a 'ts,value' header")
        names = [h.strip().lower() for h in header]
        missing = [c for c in ("ts", "value") if c not in names]
        if missing:
            raise ValueError(
                f"{path}: line 1: missing column(s) {', '.join(missing)} in header {header!r}"
            )
        its, ival = names.index("ts"), names.index("value")
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) <= max(its, ival):
                raise ValueError(f"{path}: line {line}: expected {len(names)} fields, got {row!r}")
            t = _number(row[its], path=path, line=line, column="ts")
            v = _number(row[ival], path=path, line=line, column="value")
            if ts and t < ts[-1]:
                raise ValueError(
                    f"{path}: line {line}: time goes backwards ({t:g} after {ts[-1]:g})"
                )
            ts.append(t)
            values.append(v)
    if not ts:
        raise ValueError(f"{path}: no data rows")
    return np.asarray(ts, np.float64), np.asarray(values, np.float64)


def _number(text: str, *, path: str | Path, line: int, column: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"{path}: line {line}: {column} {text!r} is not a number") from None
    if not math.isfinite(x):
        raise ValueError(f"{path}: line {line}: {column} {text!r} is not finite")
    return x


def _regular(ts: FloatArray, values: FloatArray) -> tuple[float, float, FloatArray]:
    """(start, step, values on a regular grid): the median step; gaps interpolated."""
    ts = np.asarray(ts, np.float64)
    values = np.asarray(values, np.float64)
    if ts.ndim != 1 or ts.shape != values.shape or ts.size < 2:
        raise ValueError("need two equally long 1-d arrays with at least two samples")
    if np.any(np.diff(ts) < 0):
        raise ValueError("timestamps must be non-decreasing")
    ok = np.isfinite(values)
    if not ok.any():
        raise ValueError("no finite values")
    ts, values = ts[ok], values[ok]
    diffs = np.diff(ts)
    diffs = diffs[diffs > 0]
    step = float(np.median(diffs)) if diffs.size else 60.0
    n = round((ts[-1] - ts[0]) / step) + 1
    grid = ts[0] + step * np.arange(n, dtype=np.float64)
    if n == ts.size and np.allclose(grid, ts, rtol=0.0, atol=step * 1e-6):
        return float(ts[0]), step, values.copy()
    return float(ts[0]), step, np.interp(grid, ts, values)


# --- period detection ------------------------------------------------------------------------


def _acf(x: FloatArray, lag: int) -> float:
    if lag <= 0 or lag >= x.size - 1:
        return 0.0
    a, b = x[:-lag] - x[:-lag].mean(), x[lag:] - x[lag:].mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / den if den > 0.0 else 0.0


def _coarse(values: FloatArray, factor: int) -> FloatArray:
    if factor <= 1:
        return values
    m = values.size // factor
    return np.asarray(values[values.size - m * factor :].reshape(m, factor).mean(axis=1))


def detect_period(
    values: npt.ArrayLike, *, step: float, settings: ForecastSettings | None = None
) -> str:
    """``"day"``, ``"week"`` or ``"none"`` for a regularly sampled series.

    Works on ten-minute means. ``day``: the series, minus its one-day moving average (which
    removes level shifts and trends that correlate at any lag), correlates with itself a day
    later. ``week``: over the last two weeks, the same time last week predicts the other week
    nearly as well as the mean daily profile of that week does. Without weekly structure the
    seven-day mean wins clearly (by ~30% at any noise level), so a ratio close to one means
    the week repeats in ways the daily profile misses.
    """
    s = settings or ForecastSettings()
    v = np.asarray(values, np.float64)
    factor = max(1, round(600.0 / step))
    c = _coarse(v, factor)
    day = round(DAY / (step * factor))
    if day < 2 or c.size < 2 * day:
        return "none"
    detrended = c - scipy.ndimage.uniform_filter1d(c, day, mode="nearest")
    if _acf(detrended, day) < s.day_acf:
        return "none"
    week = 7 * day
    if c.size < 2 * week:
        return "day"
    x = c[c.size - 2 * week :].reshape(2, week)
    x = x - x.mean(axis=1, keepdims=True)
    same_time_last_week = 2.0 * float(np.abs(x[1] - x[0]).sum())
    daily_profile = 0.0
    for a, b in ((0, 1), (1, 0)):
        profile = x[a].reshape(7, day).mean(axis=0)
        daily_profile += float(np.abs(x[b] - np.tile(profile, 7)).sum())
    if daily_profile > 0.0 and same_time_last_week / daily_profile < s.week_ratio:
        return "week"
    return "day"


# --- candidate models ------------------------------------------------------------------------

Model = Callable[[FloatArray, int], FloatArray]


def _robust_baseline(step: float, s: ForecastSettings) -> Model:
    window = max(1, round(s.baseline_window / step))

    def predict(train: FloatArray, steps: int) -> FloatArray:
        return np.full(steps, float(np.median(train[-window:])))

    return predict


def _profile(period_steps: int, s: ForecastSettings) -> Model:
    def predict(train: FloatArray, steps: int) -> FloatArray:
        m = min(s.profile_periods, train.size // period_steps)
        blocks = train[train.size - m * period_steps :].reshape(m, period_steps)
        return np.asarray(blocks.mean(axis=0)[np.arange(steps) % period_steps])

    return predict


def _fourier(step: float, s: ForecastSettings, *, weekly: bool) -> Model:
    factor = max(1, round(s.fit_resolution / step))

    def design(t: FloatArray, span: float) -> tuple[FloatArray, int]:
        cols = [np.ones_like(t), t / span]
        for k in range(1, s.fourier_day_harmonics + 1):
            a = (2.0 * np.pi * k / DAY) * t
            cols += [np.cos(a), np.sin(a)]
        n_day = len(cols)
        if weekly:
            for k in range(1, s.fourier_week_harmonics + 1):
                if k % 7:  # multiples of 7 are daily harmonics already
                    a = (2.0 * np.pi * k / WEEK) * t
                    cols += [np.cos(a), np.sin(a)]
        return np.stack(cols, axis=1), n_day

    def predict(train: FloatArray, steps: int) -> FloatArray:
        y = _coarse(train, factor)
        offset = train.size - y.size * factor  # samples dropped at the start by _coarse
        # seconds relative to the end of the training data, at bin centres
        t_fit = (offset + (np.arange(y.size, dtype=np.float64) + 0.5) * factor - train.size) * step
        span = float(train.size * step)
        w = np.sqrt(0.5 ** (-t_fit / s.half_life))
        x, n_day = design(t_fit, span)
        a, b = x * w[:, None], y * w
        n_week = x.shape[1] - n_day
        if n_week:
            # Ridge on the weekly harmonics: with one or two weeks of history they would
            # otherwise fit one week's noise as if it repeated.
            ridge = np.zeros((n_week, x.shape[1]))
            ridge[:, n_day:] = np.eye(n_week) * math.sqrt(s.week_ridge * float(w @ w))
            a, b = np.vstack([a, ridge]), np.concatenate([b, np.zeros(n_week)])
        beta = scipy.linalg.lstsq(a, b, lapack_driver="gelsy", check_finite=False)[0]
        x_new, _ = design(np.arange(steps, dtype=np.float64) * step, span)
        return np.asarray(x_new @ beta)

    return predict


def _candidates(n: int, step: float, period: str, s: ForecastSettings) -> dict[str, Model]:
    """The models worth trying on ``n`` samples of a series with this period.

    The period is a structural prior: on a weekly series only models that can represent a week
    compete. An inner backtest on less than two weeks cannot show that weekly structure pays
    off, and would otherwise always prefer a daily model.
    """
    models: dict[str, Model] = {"robust-baseline": _robust_baseline(step, s)}
    if period == "none":
        return models
    p = round(_PERIODS[period] / step)
    if n >= p:
        models["seasonal-profile"] = _profile(p, s)
    if n >= 2 * round(DAY / step):
        models["fourier+trend"] = _fourier(step, s, weekly=period == "week" and n >= p)
    return models


# --- fitting ---------------------------------------------------------------------------------


def fit_forecast(
    ts: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    horizon: float,
    quantile: float = 0.9,
    settings: ForecastSettings | None = None,
) -> Forecast:
    """Forecast ``horizon`` seconds past the last sample, one value per input step."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if horizon <= 0:
        raise ValueError(f"horizon must be positive, got {horizon}")
    s = settings or ForecastSettings()
    start, step, y = _regular(np.asarray(ts, np.float64), np.asarray(values, np.float64))
    steps = max(1, math.ceil(horizon / step - 1e-9))
    period = detect_period(y, step=step, settings=s)

    # Inner backtest on the tail of the training data; never looks past the last sample. At
    # least a day of it, so that a short horizon still chooses (and calibrates) on a full cycle.
    hold = min(max(steps, round(DAY / step)), y.size // 3)
    inner_train, inner_test = y[: y.size - hold], y[y.size - hold :]
    models = _candidates(inner_train.size, step, period, s)
    errors: dict[str, tuple[float, FloatArray]] = {}
    for name, model in models.items():
        if hold == 0:
            break
        guess = np.maximum(model(inner_train, hold), 0.0)
        errors[name] = (wape(inner_test, guess), inner_test - guess)
    best = "robust-baseline"
    if errors:
        base = errors[best][0]
        challenger = min(errors, key=lambda k: errors[k][0])
        if errors[challenger][0] < base * (1.0 - s.min_gain):
            best = challenger

    full_models = _candidates(y.size, step, period, s)
    point = np.maximum(full_models[best](y, steps), 0.0)
    margin = float(np.quantile(errors[best][1], quantile)) if errors else 0.0
    upper = np.maximum(point + max(margin, 0.0), point)
    return Forecast(
        start=start + step * y.size,
        step=step,
        point=point,
        upper=upper,
        quantile=quantile,
        period=period,
        model=best,
    )


def backtest(
    ts: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    holdout: float,
    horizon: float | None = None,
    quantile: float = 0.9,
    settings: ForecastSettings | None = None,
) -> Backtest:
    """Fit on everything but the last ``holdout`` seconds and score on them.

    Also scores seasonal-naive (the last day, or the last week, of the training data repeated),
    the baselines the forecast must beat.
    """
    start, step, y = _regular(np.asarray(ts, np.float64), np.asarray(values, np.float64))
    hold = round(holdout / step)
    if hold <= 0 or hold >= y.size - 1:
        raise ValueError(f"holdout {holdout:g}s leaves no training or no test data")
    train, test = y[: y.size - hold], y[y.size - hold :]
    steps = hold if horizon is None else min(hold, max(1, math.ceil(horizon / step - 1e-9)))
    test = test[:steps]
    grid = start + step * np.arange(train.size, dtype=np.float64)
    fc = fit_forecast(grid, train, horizon=steps * step, quantile=quantile, settings=settings)

    def naive(period: float) -> float:
        p = round(period / step)
        return wape(test, seasonal_naive(train, steps, p)) if train.size >= p else math.nan

    return Backtest(
        forecast=fc,
        actual=test,
        wape=wape(test, fc.point),
        wape_seasonal_naive_day=naive(DAY),
        wape_seasonal_naive_week=naive(WEEK),
        coverage=float(np.mean(test <= fc.upper)),
    )
