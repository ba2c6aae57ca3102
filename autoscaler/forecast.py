"""Demand forecasting: candidate models chosen by a rolling-origin backtest, a calibrated upper band.

The forecaster is pure (numpy, scipy and the numba kernels of :mod:`autoscaler.forecast_kernels`)
and works on one series.

1. The series is put on a regular grid at its median step (gaps interpolated; a 15-second series
   stays at 15 seconds) and its period detected (:func:`detect_period`): ``day``, ``week`` (a
   daily cycle inside a weekly one: the days of the week keep their levels or their spreads
   from one week to the next, which takes two full weeks to tell) or ``none``.
2. Candidate models, each a function ``(train, steps) -> point``:

   - ``seasonal-naive-day`` and ``seasonal-naive-week``: the last day (week) repeated. Always
     candidates when the history allows, so the forecast can never be worse than them in its own
     backtest.
   - ``weekly-profile``: the mean of the last (up to four) weeks. With one week of history it
     is ``seasonal-naive-week`` (and wins the tie); with two it averages one week's noise out.
   - ``seasonal-naive-week+level``: last week's copy shifted by how far the last hour came out
     from it (median difference), the shift halving every six hours ahead: a weekly series
     whose level moved since last week.
   - ``robust-baseline``: the median of the recent window, flat. Never extrapolates a trend.
   - ``robust-3-days``: the median of the last three days, flat: the level of a series that is
     noise and bursts around a steady level, which a half-day burst cannot move (a one-day
     median can).
   - ``seasonal-profile``: the per-minute-of-day median of the last seven days, smoothed over a
     quarter of an hour. The median ignores a one-off spike day. (A three-day median lost to
     it in hindsight on every shared series where it won a backtest: too noisy to keep.)
   - ``level-profile``: the seven-day profile rescaled to the level of the last hours, which
     follows level shifts and trends without extrapolating them.
   - ``damped-level-profile``: the seven-day profile fitted without the last three hours,
     rescaled by how those hours came out against it (ratio of medians, within [1/2, 2]), the
     rescaling halving every day ahead: follows a level that climbs from day to day.
   - ``day-type`` (eight days or more): each day ahead copies the latest days of its own kind (the
     days are split into, say, working days and weekends by their level; the kind of a day is
     that of the same day last week).
   - ``fourier+trend``: daily (and, on weekly series, ridge-damped weekly) harmonics, intercept
     and linear trend fitted by weighted least squares (normal equations, ``scipy.linalg``) on
     five-minute means, recent days weighted more.
   - combinations: ``median`` (the per-step median of all of the above) and ``weighted-mean``
     (the three best in the backtest, weighted by the inverse of their WAPE; its own backtest
     score is a little optimistic, since the weights come from the same cuts, so a combination
     is chosen only when it beats the best single candidate by 2%).
3. Each candidate is scored by WAPE pooled over several cut points (rolling origin, one day
   apart): fitted on the data before a cut, scored on the ``horizon`` after it (at least a day).
   Every cut leaves at least a week of training data when the series has one (so that
   ``seasonal-naive-week`` competes), else at least two days. With less than a week and a day
   of history before the latest cut, the cuts score one day ahead instead of the whole horizon:
   each then leaves a day more of training, so the weekly candidates compete on more cuts (on
   nine days of history, two cuts instead of one; on eight, one instead of none). The
   candidate with the lowest WAPE wins (a combination only by the margin above); a tie goes to
   the simpler (earlier) model. Since the seasonal-naive forecasts are candidates on the same
   cuts, the chosen model never lost to them in its own backtest.
   Re-anchoring (:func:`_persistence`): on a series with a period, unless the model follows
   the level itself (level-profile, damped-level-profile, week+level, alone or in a
   combination), the backtest measures how much of a level deviation persists: at every hour
   of every cut, the log ratio of actual to forecast over the hour before against the same
   over the next 0-6 hours and 6-24 hours, least-squares slope within [0, 1]. The forecast is
   then multiplied by how the last hour came out against the model (fitted without it),
   raised to that share at each lead, if that beats the model in its own backtest. A level
   shift that stays is followed; noise and bursts that revert (share near 0) are not.
4. The winner is refitted on all the data. The upper band is the point forecast plus a quantile
   of the winner's backtest residuals (split-conformal), so its coverage is calibrated on errors
   the model really made, not padded. The steps of one cut share its level shift or spike, so
   the cut, not the step, is the unit of calibration: the quantile's level is the lowest at
   which the residuals of all cuts but one cover, on average over the cut left out, 90% of it
   (:func:`_band_level`); with fewer than three cuts, 95%. The plain 90% quantile pooled over
   the steps covered 87% of 94 holdouts (the bench's ``--shifts 1,...,8``), this 90%; neither can
   cover 85-95% of every holdout, since a holdout either shares its cuts' level shifts or not
   (bench/RESULTS.md, issue 9, sixth pass). The planner sizes ECS by the point forecast; the
   band is reported, not spent.

Forecasts are clipped at zero: demand is never negative. Whether a forecast may scale in is the
planner's decision, not this module's.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.linalg.lapack

from autoscaler import forecast_kernels

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
    "backtest_moved",
    "backtest_refit",
    "detect_period",
    "fit_forecast",
    "read_series",
    "seasonal_naive",
    "wape",
]

FloatArray = npt.NDArray[np.float64]

DAY = 86_400.0
WEEK = 7 * DAY


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    fourier_day_harmonics: int = 24
    fourier_week_harmonics: int = 14
    fit_resolution: float = 300.0  # seconds per bin of the least-squares fit
    half_life: float = WEEK  # weight of an observation halves every half_life seconds back
    profile_days: int = 7  # seasonal-profile: the median of at most this many days
    profile_weeks: int = 4  # weekly-profile: the mean of at most this many weeks
    smooth: float = 900.0  # profiles are smoothed by a moving mean this wide (seconds)
    level_window: float = 6 * 3600.0  # level-profile: rescaled to the level of this last window
    baseline_window: float = 2 * 3600.0  # the robust baseline's median window
    robust_days: int = 3  # robust-3-days: the median of at most this many days
    damped_window: float = 3 * 3600.0  # damped-level-profile: the level of this last window...
    damped_half_life: float = DAY  # ...its correction halves every half-life ahead
    shift_window: float = 3600.0  # seasonal-naive-week+level: the shift over this last window...
    shift_half_life: float = 6 * 3600.0  # ...halves every half-life ahead
    level_clip: float = 2.0  # damped-level-profile: the level ratio stays within [1/c, c]
    cuts: int = 5  # rolling-origin cut points of the backtest, one day apart
    min_train: float = 2 * DAY  # no cut leaves less training data than this (when it can)
    day_acf: float = 0.3  # detrended autocorrelation at one day needed for "day"
    week_p_value: float = 0.01  # see detect_period
    week_ridge: float = 0.1  # ridge penalty on weekly harmonics, relative to the total weight
    type_gap: float = 0.08  # day-type: relative-level gap that separates two kinds of day
    anchor_window: float = 3600.0  # re-anchoring: the level of this last window...
    anchor_every: float = 3600.0  # ...measured in backtest every this often...
    # ...persists per span of lead between these (seconds ahead; one edge: no re-anchoring).
    # Past a day the forecast is the model's own: no cut of two days holds a day after an hour
    # and a day more, so a share past a day would never be measured.
    anchor_leads: tuple[float, ...] = (0.0, 6 * 3600.0, DAY)


@dataclass(frozen=True, slots=True)
class Forecast:
    start: float  # unix seconds of the first forecast step
    step: float  # seconds per step
    point: FloatArray  # point forecast, one per step
    upper: FloatArray  # upper quantile, one per step
    quantile: float
    period: str  # "day" | "week" | "none"
    model: str  # the candidate that won the rolling-origin backtest
    # The backtest behind the choice: every candidate's WAPE pooled over the same `cuts` cut
    # points (the seasonal-naive ones included); empty when the history was too short for one.
    scores: dict[str, float] = field(default_factory=dict)
    cuts: int = 0
    weights: dict[str, float] = field(default_factory=dict)  # weighted-mean's members
    # Re-anchoring (seasonal series): the last hour's level over the model's; the share of it
    # that persisted in the backtest, as (from, to, share) per span of lead (seconds ahead;
    # empty when the point forecast is the model's own); the re-anchored backtest WAPE.
    anchor: float = 1.0
    persistence: tuple[tuple[float, float, float], ...] = ()
    anchored_wape: float = math.nan

    @property
    def backtest_wape(self) -> float:
        """The chosen model's pooled backtest WAPE (nan without a backtest)."""
        return self.scores.get(self.model, math.nan)

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

    @property
    def ratio(self) -> float:
        """WAPE over the better seasonal-naive's, chosen in hindsight (issue 9's yardstick).

        1.0 when they are equal (also both zero: a series that repeats last week exactly,
        forecast as that week); ``inf`` when a seasonal-naive is exact and the forecast is not.
        The week's is nan, and left out, on histories shorter than a week; nan without either.
        """
        naive = [self.wape_seasonal_naive_day, self.wape_seasonal_naive_week]
        best = min((w for w in naive if not math.isnan(w)), default=math.nan)
        if math.isnan(best):
            return math.nan
        if self.wape == best:
            return 1.0
        return self.wape / best if best > 0.0 else math.inf


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
    return _wape(a, p, float(np.abs(a).sum()))


def _wape(actual: FloatArray, predicted: FloatArray, total: float) -> float:
    """:func:`wape` of float64 arrays of one shape, given ``sum |actual|`` (a backtest scores
    every candidate against one actual)."""
    return _relative(float(np.abs(actual - predicted).sum()), total)


def _relative(error: float, total: float) -> float:
    if error == 0.0:
        return 0.0
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
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a spreadsheet's BOM too
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (byte {err.start}: {err.reason})"
        ) from None
    with io.StringIO(text, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}:1: empty file, expected a 'ts,value' header")
        names = [h.strip().lower() for h in header]
        missing = [c for c in ("ts", "value") if c not in names]
        if missing:
            raise ValueError(
                f"{path}:1: missing column(s) {', '.join(missing)} in header {header!r}"
            )
        its, ival = names.index("ts"), names.index("value")
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) <= max(its, ival):
                raise ValueError(f"{path}:{line}: expected {len(names)} fields, got {row!r}")
            t = _number(row[its], path=path, line=line, column="ts")
            v = _number(row[ival], path=path, line=line, column="value")
            if ts and t < ts[-1]:
                raise ValueError(f"{path}:{line}: time goes backwards ({t:g} after {ts[-1]:g})")
            ts.append(t)
            values.append(v)
    if not ts:
        raise ValueError(f"{path}: no data rows")
    return np.asarray(ts, np.float64), np.asarray(values, np.float64)


def _number(text: str, *, path: str | Path, line: int, column: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"{path}:{line}: {column} {text!r} is not a number") from None
    if not math.isfinite(x):
        raise ValueError(f"{path}:{line}: {column} {text!r} is not finite")
    return x


def _regular(ts: FloatArray, values: FloatArray) -> tuple[float, float, FloatArray]:
    """(start, step, values on a regular grid): the median step (whole seconds), the values
    interpolated onto it, so gaps, jitter and irregular steps all become one value a step."""
    ts = np.asarray(ts, np.float64)
    values = np.asarray(values, np.float64)
    if ts.ndim != 1 or ts.shape != values.shape or ts.size < 2:
        raise ValueError("need two equally long 1-d arrays with at least two samples")
    diffs = np.diff(ts)
    if (diffs < 0).any():
        raise ValueError("timestamps must be non-decreasing")
    ok = np.isfinite(values)
    if not ok.all():
        if not ok.any():
            raise ValueError("no finite values")
        ts, values = ts[ok], values[ok]
        diffs = np.diff(ts)
    diffs = diffs[diffs > 0]
    step = _median(diffs) if diffs.size else 60.0
    if step >= 1.0:
        step = float(round(step))  # jittered 15 s samples are a 15 s series, not a 14.99 s one
    n = round((ts[-1] - ts[0]) / step) + 1
    grid = ts[0] + step * np.arange(n, dtype=np.float64)
    # np.allclose(grid, ts, rtol=0.0, atol=step * 1e-6) without its wrappers (the same test on
    # these finite times)
    if n == ts.size and bool((np.abs(grid - ts) <= step * 1e-6).all()):
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
    later. ``week`` (a daily cycle inside a weekly one): over the full weeks at the end of the
    series, the mean or the spread (standard deviation) of each day of the week, relative to its
    week, correlates with the same day's in the week before, significantly (one-sided p below
    ``week_p_value``, shared by the two tests). With two weeks that is seven pairs, and it takes
    a correlation of about 0.9: a daily series whose level wanders is not called weekly on two
    weeks of history, a clearly weekly one is (weekends at another level, or another amplitude).
    """
    s = settings or ForecastSettings()
    v = np.asarray(values, np.float64)
    factor = max(1, round(600.0 / step))
    c = _coarse(v, factor)
    day = round(DAY / (step * factor))
    if day < 2 or c.size < 2 * day:
        return "none"
    detrended = c - forecast_kernels.moving_mean(c, day, wrap=False)
    if _acf(detrended, day) < s.day_acf:
        return "none"
    weeks = c.size // (7 * day)
    if weeks < 2:
        return "day"
    days = c[c.size - weeks * 7 * day :].reshape(weeks, 7, day)
    for feature in (days.mean(axis=2), days.std(axis=2)):
        relative = feature - feature.mean(axis=1, keepdims=True)
        before, after = relative[:-1].ravel(), relative[1:].ravel()
        if np.ptp(before) == 0.0 or np.ptp(after) == 0.0:
            continue
        from scipy.stats import pearsonr  # 0.4 s to import: loaded when first needed

        p_value = float(pearsonr(before, after, alternative="greater").pvalue)
        if p_value < s.week_p_value / 2:  # two tests
            return "week"
    return "day"


# --- candidate models ------------------------------------------------------------------------

Model = Callable[[FloatArray, int], FloatArray]


@functools.lru_cache(maxsize=64)
def _cycle(steps: int, size: int) -> npt.NDArray[np.intp]:
    """``np.arange(steps) % size``, kept: every cut and fit asks for the same few. Read-only."""
    out = np.arange(steps) % size
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=64)
def _halving(steps: int, half_life: int) -> FloatArray:
    """``0.5 ** (i / half_life)`` for ``i < steps``, kept as :func:`_cycle` is. Read-only."""
    out: FloatArray = 0.5 ** (np.arange(steps, dtype=np.float64) / half_life)
    out.setflags(write=False)
    return out


def _tile(profile: FloatArray, steps: int) -> FloatArray:
    return np.asarray(profile[_cycle(steps, profile.size)], np.float64)


def _smooth(profile: FloatArray, width: int) -> FloatArray:
    if width < 2:
        return profile
    return forecast_kernels.moving_mean(profile, width, wrap=True)


def _days(train: FloatArray, day: int, most: int) -> FloatArray:
    """The last ``most`` whole days before the end of ``train``, one per row."""
    m = min(most, train.size // day)
    return train[train.size - m * day :].reshape(m, day)


def _seasonal_naive(period_steps: int) -> Model:
    def predict(train: FloatArray, steps: int) -> FloatArray:
        return seasonal_naive(train, steps, period_steps)

    return predict


def _median(values: FloatArray) -> float:
    """``float(np.median(values))`` of a non-empty 1-d float array, without its wrappers (most
    of its time on the short windows of the backtests): a numba selection
    (:func:`autoscaler.forecast_kernels.median`), or on an array holding a NaN or a -0.0 the
    same order statistics from ``np.partition`` with the same ``kth``, the middle two added and
    halved as ``np.mean`` does (its sum starts at +0.0, so -0.0 comes out 0.0; halved), and NaN
    when the array holds one, as its NaN check gives."""
    n = values.size
    if n == 0 or values.ndim != 1 or values.dtype != np.float64:
        return float(np.median(values))
    found = forecast_kernels.median(values)
    if not math.isnan(found):
        return found
    h = n // 2
    if n % 2:
        part = np.partition(values, [h, -1])
        out = float(0.0 + part[h])
    else:
        part = np.partition(values, [h - 1, h, -1])
        out = (0.0 + float(part[h - 1]) + float(part[h])) / 2
    return math.nan if math.isnan(part[-1]) else out


def _column_medians(rows: FloatArray) -> FloatArray:
    """``np.median(rows, axis=0)`` of a 2-d float64 array with at least one row, without its
    wrappers (the day profiles and the backtests' median combination, thousands a replay): a
    numba kernel (:func:`autoscaler.forecast_kernels.column_medians`), or where a column holds a
    NaN or a -0.0 the same ``np.partition`` along the rows with the same ``kth``, the middle row
    or two summed by ``np.add.reduce`` and divided by their count as ``np.mean`` does, and NaN
    where a column holds one, as its NaN check gives."""
    n = rows.shape[0] if rows.ndim == 2 else 0
    if n == 0 or rows.dtype != np.float64:
        return np.asarray(np.median(rows, axis=0))
    found = forecast_kernels.column_medians(rows)
    if found is not None:
        return found
    h = n // 2
    if n % 2:
        part = np.partition(rows, [h, -1], axis=0)
        middle = part[h : h + 1]
    else:
        part = np.partition(rows, [h - 1, h, -1], axis=0)
        middle = part[h - 1 : h + 1]
    out: FloatArray = np.true_divide(np.add.reduce(middle, axis=0), middle.shape[0])
    last = part[-1]
    nan = np.isnan(last)
    if nan.any():
        np.copyto(out, last, where=nan)
    return out


def _robust_baseline(step: float, s: ForecastSettings) -> Model:
    window = max(1, round(s.baseline_window / step))

    def predict(train: FloatArray, steps: int) -> FloatArray:
        return np.full(steps, _median(train[-window:]))

    return predict


def _robust_days(window: int) -> Model:
    def predict(train: FloatArray, steps: int) -> FloatArray:
        return np.full(steps, _median(train[-window:]))

    return predict


def _corrected(base: Model, window: int, half_life: int, clip: float = 0.0) -> Model:
    """``base`` fitted on ``train`` but its last ``window`` steps, then corrected by how far
    those steps came out from what it forecast for them (medians): multiplied by the ratio (kept
    within [1/clip, clip]) when ``clip``, else shifted by the median difference. The correction
    halves every ``half_life`` steps ahead: a level change is followed, not extrapolated for
    ever. The caller offers it only when ``base`` can be fitted without the last ``window``."""

    def predict(train: FloatArray, steps: int) -> FloatArray:
        ahead = base(train[:-window], window + steps)
        seen, future = ahead[:window], ahead[window:]
        damping = _halving(steps, half_life)
        if clip:
            expected = _median(seen)
            ratio = _median(train[-window:]) / expected if expected > 0.0 else 1.0
            # np.clip(ratio, 1 / clip, clip) of a float (NaN stays NaN)
            ratio = min(max(ratio, 1.0 / clip), clip)
            return np.asarray(future * (1.0 + (ratio - 1.0) * damping))
        return np.asarray(future + _median(train[-window:] - seen) * damping)

    return predict


_PROFILES: dict[tuple[bytes, int, int, int], FloatArray] = {}


def _day_profile(train: FloatArray, day: int, days: int, width: int) -> FloatArray:
    """The per-step-of-day median of the last ``days`` days of ``train``, smoothed over
    ``width`` steps (seasonal-profile's and level-profile's, which each cut of a backtest asks
    for twice on the same data).  Kept by the bytes of the days it reads (an equal key is equal
    data), a few at a time; read-only, since it is shared."""
    recent = _days(train, day, days)
    key = (recent.tobytes(), day, days, width)
    found = _PROFILES.get(key)
    if found is None:
        found = _smooth(_column_medians(recent), width)
        found.setflags(write=False)
        if len(_PROFILES) >= 4:
            _PROFILES.clear()
        _PROFILES[key] = found
    return found


def _profile(day: int, days: int, width: int) -> Model:
    def predict(train: FloatArray, steps: int) -> FloatArray:
        return _tile(_day_profile(train, day, days, width), steps)

    return predict


def _weekly_profile(week: int, weeks: int) -> Model:
    def predict(train: FloatArray, steps: int) -> FloatArray:
        return _tile(_days(train, week, weeks).mean(axis=0), steps)

    return predict


def _level_profile(day: int, days: int, width: int, window: int) -> Model:
    def predict(train: FloatArray, steps: int) -> FloatArray:
        profile = _day_profile(train, day, days, width)
        expected = float(profile[-window:].sum())
        factor = float(train[-window:].sum()) / expected if expected > 0.0 else 1.0
        return _tile(profile * factor, steps)

    return predict


def _day_kinds(levels: FloatArray, gap: float) -> npt.NDArray[np.int64]:
    """0 or 1 per day: two kinds of day when their levels, relative to the median of the week
    around them, split at a gap of at least ``gap``; else one kind."""
    m = levels.size
    lo = np.clip(np.arange(m) - 3, 0, max(0, m - 7))
    week = np.array([np.median(levels[i : i + 7]) for i in lo])
    rel = np.divide(levels, week, out=np.ones(m), where=week > 0.0)
    ordered = np.sort(rel)
    gaps = np.diff(ordered)
    if gaps.size == 0 or float(gaps.max()) < gap:
        return np.zeros(m, np.int64)
    kinds: npt.NDArray[np.int64] = (rel > ordered[int(np.argmax(gaps))]).astype(np.int64)
    return kinds


def _day_type(day: int, width: int, s: ForecastSettings) -> Model:
    def predict(train: FloatArray, steps: int) -> FloatArray:
        days = _days(train, day, train.size // day)
        m = days.shape[0]
        kinds = _day_kinds(days.mean(axis=1), s.type_gap)
        ahead = -(-steps // day)
        out = np.empty(ahead * day)
        for j in range(ahead):
            same_weekday = m + j - 7 * (j // 7 + 1)
            kind = kinds[same_weekday] if same_weekday >= 0 else kinds[-1]
            latest = np.flatnonzero(kinds == kind)[-2:]
            out[j * day : (j + 1) * day] = _smooth(days[latest].mean(axis=0), width)
        return out[:steps]

    return predict


@functools.lru_cache(maxsize=8)
def _harmonics(rows: int, spacing: float, first: float, day: int, week: int) -> FloatArray:
    """Columns 1, t / WEEK, ``day`` daily and ``week`` weekly harmonics (cos, sin; weekly ones
    that are multiples of 7 left out: they are daily) at t = first + spacing * i, i < rows.

    Cached, and sized in powers of two so that one design serves every cut point and refit:
    the fit's rows are the last rows of a past design (its time runs up to the fit's end), the
    forecast's the first rows of a future one. Read-only, since it is shared.
    """
    t = first + spacing * np.arange(rows, dtype=np.float64)
    cols = [np.ones((rows, 1)), (t / WEEK)[:, None]]
    for period, count in ((DAY, day), (WEEK, week)):
        if count:
            # cos and sin of k 2 pi t / period as powers of one complex exponential: a cumulative
            # product instead of 2 * count trigonometric evaluations
            z = np.exp((2j * np.pi / period) * t)
            powers = np.cumprod(np.broadcast_to(z[:, None], (rows, count)), axis=1)
            keep = [period == DAY or k % 7 != 0 for k in range(1, count + 1)]
            cols += [powers.real[:, keep], powers.imag[:, keep]]
    out = np.hstack(cols)
    out.setflags(write=False)
    return out


def _bucket(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


@functools.lru_cache(maxsize=16)
def _normal(
    m: int, spacing: float, day: int, week: int, half_life: float, ridge: float
) -> tuple[FloatArray, FloatArray]:
    """The weighted design ``x * w`` and the (upper) Cholesky factor of the regularised Gram
    matrix of a fit on ``m`` bins.

    Both depend on the number of bins only, never on the values: every cut and refit with the
    same length shares one (a refit's cuts repeat the previous refit's lengths once the history
    window is full), and only ``xw.T @ y`` and the triangular solves are left per fit (the
    factorization and solves ``solve(assume_a="pos")`` runs, LAPACK's ``potrf`` and ``potrs``).  Read-only, since
    they are shared.
    """
    rows = _bucket(m)
    # time in seconds relative to the end of the training data, at bin centres
    x = _harmonics(rows, spacing, -(rows - 0.5) * spacing, day, week)[-m:]
    t = -(m - 0.5 - np.arange(m, dtype=np.float64)) * spacing
    w = 0.5 ** (-t / half_life)
    # Normal equations: the columns are near-orthogonal harmonics, so they are well
    # conditioned, and a 70-column Gram matrix is ten times faster than an SVD or QR.
    xw = x * w[:, None]
    gram = xw.T @ x
    diagonal = np.diag_indices_from(gram)
    gram[diagonal] += 1e-9 * float(np.trace(gram)) / gram.shape[0]
    if week:
        # Ridge on the weekly harmonics: with one or two weeks of history they would
        # otherwise fit one week's noise as if it repeated.
        n_day = 2 + 2 * day
        gram[n_day:, n_day:][np.diag_indices(gram.shape[0] - n_day)] += ridge * float(w @ w)
    factor, _ = scipy.linalg.cho_factor(gram, lower=False, check_finite=False)
    xw.setflags(write=False)
    factor.setflags(write=False)
    return xw, factor


def _cho_solve(chol: FloatArray, b: FloatArray) -> FloatArray:
    """``scipy.linalg.cho_solve((chol, False), b, check_finite=False)`` of float64 arrays: the
    LAPACK routine it calls (``dpotrs``, upper factor, ``b`` copied), without its wrappers (a
    few thousand small solves a replay)."""
    x, info = scipy.linalg.lapack.dpotrs(chol, b, lower=0, overwrite_b=False)
    if info != 0:
        raise ValueError(f"illegal value in {-info}th argument of internal potrs")
    return np.asarray(x, np.float64)


def _fourier(step: float, s: ForecastSettings, *, weekly: bool) -> Model:
    factor = max(1, round(s.fit_resolution / step))
    spacing = factor * step  # seconds per bin of the fit
    week = s.fourier_week_harmonics if weekly else 0

    def predict(train: FloatArray, steps: int) -> FloatArray:
        y = _coarse(train, factor)
        xw, chol = _normal(
            y.size, spacing, s.fourier_day_harmonics, week, s.half_life, s.week_ridge
        )
        beta = _cho_solve(chol, xw.T @ y)
        ahead = _harmonics(_bucket(steps), step, 0.0, s.fourier_day_harmonics, week)[:steps]
        return np.asarray(ahead @ beta)

    return predict


@functools.lru_cache(maxsize=64)
def _candidates(n: int, step: float, period: str, s: ForecastSettings) -> Mapping[str, Model]:
    """The models that can be fitted on ``n`` samples, simplest first (ties go to the first).

    The seasonal-naive forecasts are always among them when the history holds a day (a week).
    Kept, read-only: the models are pure functions of their arguments, and every backtest and
    refit of one length asks for the same.
    """
    models: dict[str, Model] = {"robust-baseline": _robust_baseline(step, s)}
    day = round(DAY / step)
    if day < 2 or n < day:
        return MappingProxyType(models)
    models["seasonal-naive-day"] = _seasonal_naive(day)
    if n >= 7 * day:
        # Listed first, so that it wins the tie: with one week of history it is
        # seasonal-naive-week, with more it averages out one week's noise.
        models["weekly-profile"] = _weekly_profile(7 * day, s.profile_weeks)
        models["seasonal-naive-week"] = _seasonal_naive(7 * day)
    shift = max(1, min(day, round(s.shift_window / step)))
    if n >= 7 * day + shift:
        half_life = max(1, round(s.shift_half_life / step))
        models["seasonal-naive-week+level"] = _corrected(_seasonal_naive(7 * day), shift, half_life)
    models[f"robust-{s.robust_days}-days"] = _robust_days(s.robust_days * day)
    width = round(s.smooth / step)
    models["seasonal-profile"] = _profile(day, s.profile_days, width)
    window = max(1, min(day, round(s.level_window / step)))
    models["level-profile"] = _level_profile(day, s.profile_days, width, window)
    damped = max(1, min(day // 2, round(s.damped_window / step)))
    if n >= day + damped:
        models["damped-level-profile"] = _corrected(
            _profile(day, s.profile_days, width),
            damped,
            max(1, round(s.damped_half_life / step)),
            s.level_clip,
        )
    if n >= 8 * day:
        models["day-type"] = _day_type(day, width, s)
    if n >= 2 * day:
        models["fourier+trend"] = _fourier(step, s, weekly=period == "week" and n >= 7 * day)
    return MappingProxyType(models)


# --- fitting ---------------------------------------------------------------------------------

_TOP = 3  # members of the weighted-mean combination
# Candidates rescaled or shifted to the level of their last hours: never re-anchored again.
_FOLLOW_THE_LEVEL = frozenset(
    {"level-profile", "damped-level-profile", "seasonal-naive-week+level"}
)
# A combination is chosen only when its backtest WAPE is this much (relatively) below the best
# single candidate's: the weighted mean's weights come from the very cuts that score it.
_COMBINATION_MARGIN = 0.02


@dataclass(frozen=True, slots=True)
class _Choice:
    model: str
    scores: dict[str, float]
    residuals: FloatArray  # actual - point of the chosen model over the cuts
    weights: dict[str, float]  # the weighted-mean's members and weights
    cuts: int
    candidates: tuple[str, ...]  # the models scored (the median combines exactly these)
    persistence: tuple[float, ...] = ()  # re-anchoring, per lead (empty: none), see _persistence
    anchored_wape: float = math.nan  # the re-anchored forecast's backtest WAPE


def _origins(n: int, hold: int, day: int, s: ForecastSettings) -> list[int]:
    """Cut points, latest first, one day apart; each leaves a week of training data when the
    series allows (so seasonal-naive-week competes on every cut), else ``min_train``."""
    week, least = 7 * day, max(1, round(s.min_train * day / DAY))
    earliest = week if n - hold >= week else least
    origins = [n - hold - j * day for j in range(s.cuts)]
    return [o for o in origins if o >= earliest] or [n - hold]


def _combine(
    names: tuple[str, ...], preds: FloatArray, weights: dict[str, float]
) -> dict[str, FloatArray]:
    """The combinations of the forecasts ``preds`` (one row per name)."""
    out = {"median": _column_medians(preds)}
    if weights:
        mean = np.zeros_like(out["median"])
        for k, w in weights.items():
            mean += w * preds[names.index(k)]
        out["weighted-mean"] = mean / sum(weights.values())
    return out


def _choose(y: FloatArray, *, step: float, steps: int, period: str, s: ForecastSettings) -> _Choice:
    """Score every candidate on the same rolling-origin cuts and pick the lowest pooled WAPE."""
    day = max(1, round(DAY / step))
    hold = min(max(steps, day), y.size // 3)
    if hold > day and y.size - hold < 8 * day:
        # Short history: cuts that score the horizon's first day only leave a day more of
        # training each, so that more of them hold a week (seasonal-naive-week and the weekly
        # profile compete on more than one cut) or, under a week, at least two days.
        hold = day
    if hold == 0:
        return _Choice("robust-baseline", {}, np.zeros(0), {}, 0, ("robust-baseline",))
    origins = _origins(y.size, hold, day, s)
    models = _candidates(min(origins), step, period, s)
    names = tuple(models)
    # one row per candidate: its forecasts of the cuts, joined in the order of the origins
    preds = np.empty((len(names), len(origins) * hold))
    actual = np.concatenate([y[o : o + hold] for o in origins])
    for j, o in enumerate(origins):
        train = y[:o]
        for i, model in enumerate(models.values()):
            preds[i, j * hold : (j + 1) * hold] = model(train, hold)
    np.maximum(preds, 0.0, out=preds)
    joined = dict(zip(names, preds, strict=True))
    total = float(np.abs(actual).sum())
    # every candidate's error in one call: a row's sum along the row is the pairwise sum of
    # a 1-d array's, so each is wape's
    errors = np.abs(actual - preds).sum(axis=1)
    scores = {name: _relative(float(e), total) for name, e in zip(names, errors, strict=True)}
    weights: dict[str, float] = {}
    if len(joined) > 2:
        best: list[str] = []
        for k in sorted(scores, key=lambda k: scores[k]):
            # a candidate that forecast the same as a better one (weekly-profile on one week
            # of history is seasonal-naive-week) would only count that forecast twice
            if len(best) < _TOP and not any(np.array_equal(joined[k], joined[b]) for b in best):
                best.append(k)
        inverse = {k: 1.0 / max(scores[k], 1e-6) for k in best}
        weights = {k: w / sum(inverse.values()) for k, w in inverse.items()}
        for name, p in _combine(names, preds, weights).items():
            joined[name] = p
            scores[name] = _wape(actual, p, total)
    chosen = min(scores, key=lambda k: scores[k])  # first of equals: the simplest
    single = min(models, key=lambda k: scores[k])
    if chosen not in models and scores[chosen] > (1.0 - _COMBINATION_MARGIN) * scores[single]:
        chosen = single  # a combination's own score is optimistic: it must win clearly
    choice = _Choice(chosen, scores, actual - joined[chosen], weights, len(origins), names)
    members = {chosen} | set(
        weights if chosen == "weighted-mean" else models if chosen == "median" else ()
    )
    if period == "none" or members & _FOLLOW_THE_LEVEL:
        # Flat models of recent windows are their own anchor, and the last hour of a series
        # without a daily cycle is a burst as often as a level. A model that follows the level
        # itself, alone or in a combination, would count the last hour twice.
        return choice
    persistence = _persistence(actual, joined[chosen], len(origins), step=step, s=s)
    if not any(persistence):
        return choice
    anchored = replace(choice, persistence=persistence)
    lifts = [_lift(y[:o], hold, anchored, step=step, period=period, s=s) for o in origins]
    point = joined[chosen] * np.concatenate(lifts)
    score = _wape(actual, point, total)
    if not score < scores[chosen]:
        return choice  # re-anchoring did not beat the model in its own backtest
    return replace(anchored, residuals=actual - point, anchored_wape=score)


def _model_of(
    model: str,
    candidates: tuple[str, ...],
    weights: dict[str, float],
    n: int,
    *,
    step: float,
    period: str,
    s: ForecastSettings,
) -> Model | None:
    """The chosen model, fitted on ``n`` samples (a combination: of the candidates the backtest
    scored, not of any that more history adds); ``None`` when ``n`` is too short for it."""
    models = _candidates(n, step, period, s)
    if model in models:
        return models[model]
    if model not in ("median", "weighted-mean") or not set(candidates) <= set(models):
        return None

    def predict(train: FloatArray, steps: int) -> FloatArray:
        preds = np.stack([np.maximum(models[k](train, steps), 0.0) for k in candidates])
        return _combine(candidates, preds, weights)[model]

    return predict


def _predict(
    y: FloatArray, steps: int, choice: _Choice, *, step: float, period: str, s: ForecastSettings
) -> FloatArray:
    model = _model_of(
        choice.model, choice.candidates, choice.weights, y.size, step=step, period=period, s=s
    )
    assert model is not None  # the full history fits whatever its cuts fitted
    point = np.maximum(model(y, steps), 0.0)
    if choice.persistence:
        point = point * _lift(y, steps, choice, step=step, period=period, s=s)
    return point


def _lead_exponents(
    persistence: tuple[float, ...], steps: int, step: float, s: ForecastSettings
) -> FloatArray:
    """Per step ahead, the share of the level ratio that persists (0 past the last lead)."""
    lead = step * np.arange(steps, dtype=np.float64)
    out = np.zeros(steps)
    for (lo, hi), beta in zip(itertools.pairwise(s.anchor_leads), persistence, strict=True):
        out[(lead >= lo) & (lead < hi)] = beta
    return out


def _ratio(actual: FloatArray, forecast: FloatArray, clip: float) -> float:
    """Median actual over median forecast, within [1/clip, clip]; 1 without a forecast level."""
    expected = float(np.median(forecast))
    if expected <= 0.0:
        return 1.0
    return float(np.clip(float(np.median(actual)) / expected, 1.0 / clip, clip))


def _anchor_ratio(
    y: FloatArray, choice: _Choice, *, step: float, period: str, s: ForecastSettings
) -> float:
    """How the last ``anchor_window`` of ``y`` came out against the chosen model fitted without
    it (:func:`_ratio`); 1 when ``y`` holds less than a day and that window.

    The fit without the window keeps the length of ``y``: the hour before the series starts is
    filled with the same hour a day later. Otherwise a history of whole days or weeks would be
    fitted on one day (week) fewer than the refit, and the ratio would measure the last hour
    against another model (the weekly profile of two weeks against last week's copy)."""
    window = max(1, round(s.anchor_window / step))
    day = max(1, round(DAY / step))
    model = _model_of(
        choice.model, choice.candidates, choice.weights, y.size, step=step, period=period, s=s
    )
    if model is None or y.size < day + window:
        return 1.0
    train = np.concatenate((y[day - window : day], y[:-window]))
    return _ratio(y[-window:], np.maximum(model(train, window), 0.0), s.level_clip)


def _lift(
    y: FloatArray, steps: int, choice: _Choice, *, step: float, period: str, s: ForecastSettings
) -> FloatArray:
    """The re-anchoring factor per step ahead: the last hour's ratio (:func:`_anchor_ratio`)
    raised to the share of it that persisted in the backtest at that lead (:func:`_persistence`)."""
    ratio = _anchor_ratio(y, choice, step=step, period=period, s=s)
    return np.asarray(ratio ** _lead_exponents(choice.persistence, steps, step, s))


_PAIRS = 10  # fewest (level then, level after) pairs that estimate a persistence


def _persistence(
    actual: FloatArray, fitted: FloatArray, cuts: int, *, step: float, s: ForecastSettings
) -> tuple[float, ...]:
    """How much of a level deviation persists, per lead of ``anchor_leads``, from the backtest.

    In every cut's block, at every ``anchor_every``: x, the log of the ratio (:func:`_ratio`,
    unclipped) of the actual to the chosen model's forecast over the last ``anchor_window``; y,
    the log of the ratio of their sums over each lead's span after it. The persistence is the
    least-squares slope of y on x through the origin, within [0, 1]: 1 when a level shift stays,
    0 when it fades before that lead (or the blocks hold fewer than ten pairs). A series whose
    deviations are noise, or whose level reverts, gets 0 and keeps its model's forecast."""
    window = max(1, round(s.anchor_window / step))
    every = max(1, round(s.anchor_every / step))
    edges = [round(lead / step) for lead in s.anchor_leads]
    blocks = list(zip(np.split(actual, cuts), np.split(fitted, cuts), strict=True))
    out = []
    for lo, hi in itertools.pairwise(edges):
        xs: list[float] = []
        ys: list[float] = []
        for a, f in blocks:
            anchors = np.arange(window, a.size - hi + 1, every)
            if anchors.size == 0:
                continue
            pre = anchors[:, None] - window + np.arange(window)
            a_pre, f_pre = np.median(a[pre], axis=1), np.median(f[pre], axis=1)
            ca, cf = np.concatenate(([0.0], np.cumsum(a))), np.concatenate(([0.0], np.cumsum(f)))
            a_post, f_post = (
                ca[anchors + hi] - ca[anchors + lo],
                cf[anchors + hi] - cf[anchors + lo],
            )
            ok = (a_pre > 0) & (f_pre > 0) & (a_post > 0) & (f_post > 0)
            xs += np.log(a_pre[ok] / f_pre[ok]).tolist()
            ys += np.log(a_post[ok] / f_post[ok]).tolist()
        x, y = np.asarray(xs), np.asarray(ys)
        sxx = float(x @ x)
        out.append(
            float(np.clip(float(x @ y) / sxx, 0.0, 1.0)) if x.size >= _PAIRS and sxx > 0 else 0.0
        )
    return tuple(out)


_LEVELS = np.linspace(0.5, 0.999, 500)  # the quantile levels the band's calibration tries
_LEVELS = _LEVELS[_LEVELS < 1.0]
_LOO_CUTS = 3  # fewest cut points that calibrate the level by leaving one out


def _sorted_quantile(ordered: FloatArray, levels: FloatArray) -> FloatArray:
    """``np.quantile(x, levels)`` (linear interpolation) of ``x`` already sorted, along the last
    axis (each row of a 2-d ``ordered`` is one ``x``: one row of quantiles each)."""
    size = ordered.shape[-1]
    position = levels * (size - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, size - 1)
    low = ordered[..., below]
    return np.asarray(low + (position - below) * (ordered[..., above] - low))


def _quantile(ordered: FloatArray, level: float) -> float:
    """``float(np.quantile(x, level))`` (linear) of a float ``level`` and ``x`` sorted, without
    its wrappers: its virtual index, neighbours (the same order statistics: its partition and a
    sort agree on them, but for the sign of a zero, so an ``x`` holding -0.0 goes through
    ``np.quantile``), weight and ``_lerp``, in the same float operations."""
    n = ordered.size
    if n == 0 or bool(((ordered == 0.0) & np.signbit(ordered)).any()):
        return float(np.quantile(ordered, level))
    virtual = (n - 1) * level
    if math.isnan(virtual) or virtual >= n - 1:
        below = above = -1
    elif virtual < 0:
        below = above = 0
    else:
        below = math.floor(virtual)
        above = below + 1
    a, b = float(ordered[below]), float(ordered[above])
    gamma = virtual - below
    diff = b - a
    out = b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma
    return math.nan if math.isnan(ordered[-1]) else out


def _band_level(blocks: FloatArray, quantile: float) -> float:
    """The quantile level of the pooled backtest residuals that makes the band cover
    ``quantile`` of a cut it has not seen: leave each cut out in turn, take the residuals'
    quantile at a level over the other cuts, count how much of the left-out cut falls at or
    below it, and return the lowest level whose mean over the cuts reaches ``quantile``.

    Split-conformal over cuts rather than over steps: the steps of one cut share its level
    shift or its spike, so a quantile pooled over all steps covers about ``quantile`` of a cut
    like the average one, less of a cut that differs, and the cuts differ. The more they do,
    the higher the level. With fewer than three cuts there is nothing to leave out, and the level
    is halfway between ``quantile`` and 1 (0.95 for p90): how far the next cut differs is
    unknown.

    ``blocks`` holds one cut a row."""
    cuts = blocks.shape[0]
    if cuts < _LOO_CUTS:
        return 0.5 * (1.0 + quantile)
    ordered = np.sort(blocks, axis=1)
    rest = np.sort(blocks[_others(cuts)].reshape(cuts, -1), axis=1)  # row i: all cuts but i
    if np.isnan(rest[:, -1]).any():
        covered = _loo_coverage(ordered, rest)
    else:
        covered = forecast_kernels.loo_coverage(ordered, rest, _LEVELS)
    enough = np.flatnonzero(covered / cuts >= quantile)
    return float(_LEVELS[enough[0]]) if enough.size else float(_LEVELS[-1])


def _loo_coverage(ordered: FloatArray, rest: FloatArray) -> FloatArray:
    """:func:`autoscaler.forecast_kernels.loo_coverage` by numpy (:func:`_sorted_quantile` of
    every row in one call, the coverages summed cut by cut): residuals that hold a NaN take it,
    since ``np.searchsorted`` places one."""
    cuts, size = ordered.shape
    edges = _sorted_quantile(rest, _LEVELS)
    covered = np.zeros(_LEVELS.size)
    for i in range(cuts):
        covered += np.searchsorted(ordered[i], edges[i], side="right") / size
    return covered


@functools.lru_cache(maxsize=8)
def _others(cuts: int) -> npt.NDArray[np.intp]:
    """Row ``i``: the indices of every cut but ``i``, in order (read-only)."""
    out = np.array([[j for j in range(cuts) if j != i] for i in range(cuts)], np.intp)
    out.setflags(write=False)
    return out


def _margin(residuals: FloatArray, cuts: int, quantile: float) -> float:
    """The upper band's margin over the point forecast: the backtest residuals (actual minus
    the chosen model's forecast, one block of equal length per cut) at the level
    :func:`_band_level` calibrates. 0 without a backtest."""
    if residuals.size == 0:
        return 0.0
    level = _band_level(residuals.reshape(max(1, cuts), -1), quantile)
    return _quantile(np.sort(residuals), level)


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
    choice = _choose(y, step=step, steps=steps, period=period, s=s)
    point = np.maximum(_predict(y, steps, choice, step=step, period=period, s=s), 0.0)
    margin = _margin(choice.residuals, choice.cuts, quantile)
    upper = point + max(margin, 0.0)
    return Forecast(
        start=start + step * y.size,
        step=step,
        point=point,
        upper=upper,
        quantile=quantile,
        period=period,
        model=choice.model,
        scores=choice.scores,
        cuts=choice.cuts,
        weights=choice.weights if choice.model == "weighted-mean" else {},
        anchor=_anchor_ratio(y, choice, step=step, period=period, s=s)
        if choice.persistence
        else 1.0,
        persistence=tuple(
            (lo, hi, share)
            for (lo, hi), share in zip(
                itertools.pairwise(s.anchor_leads), choice.persistence, strict=False
            )
        ),
        anchored_wape=choice.anchored_wape,
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


def backtest_moved(
    ts: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    days: int,
    holdout: float = 2 * DAY,
    min_train: float = 3 * DAY,
) -> Backtest | None:
    """:func:`backtest` with the holdout moved ``days`` earlier: the series truncated ``days``
    days before its end. ``None`` where less than ``min_train`` of training data would remain.

    The benchmark's and the tests' check that a change does not fit one holdout only (issue 9:
    the end and 1 to 8 days earlier, 94 holdouts on the shared series)."""
    t, v = np.asarray(ts, np.float64), np.asarray(values, np.float64)
    keep = t <= t[-1] - days * DAY
    step = float(np.median(np.diff(t))) if t.size > 1 else 0.0
    if not keep.any() or t[keep][-1] - t[0] < holdout + min_train - step:
        return None
    return backtest(t[keep], v[keep], holdout=holdout)


def backtest_refit(
    ts: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    every: float,
    holdout: float = 2 * DAY,
    quantile: float = 0.9,
    settings: ForecastSettings | None = None,
) -> Backtest:
    """The last ``holdout`` seconds forecast as the controller and the replay forecast them:
    refitted every ``every`` seconds (at most a day) on all the data before, each fit forecasting
    until the next. :func:`backtest` forecasts the whole holdout from its start; a live
    forecast never reaches that far (the controller refits every 15 minutes and reaches an hour
    or two, the replay every 6 hours and reaches about 7).

    The yardsticks get the same information: seasonal-naive is the value a day (a week) before
    each held-out step, known at the fit before it. The returned forecast is the fits' points and
    bands joined; its model is the one chosen most often, its scores and cuts the last fit's."""
    if not 0.0 < every <= DAY:
        raise ValueError(f"refit every {every:g}s: must be in (0, 1 day]")
    start, step, y = _regular(np.asarray(ts, np.float64), np.asarray(values, np.float64))
    hold, per = round(holdout / step), max(1, round(every / step))
    if hold <= 0 or hold >= y.size - 1:
        raise ValueError(f"holdout {holdout:g}s leaves no training or no test data")
    first = y.size - hold
    fits = []
    for o in range(first, y.size, per):
        grid = start + step * np.arange(o, dtype=np.float64)
        n = min(per, y.size - o)
        fits.append(
            (n, fit_forecast(grid, y[:o], horizon=n * step, quantile=quantile, settings=settings))
        )
    point = np.concatenate([fc.point[:n] for n, fc in fits])
    upper = np.concatenate([fc.upper[:n] for n, fc in fits])
    test = y[first:]
    models = [fc.model for _, fc in fits]
    last = fits[-1][1]
    joined = replace(
        last,
        start=start + step * first,
        point=point,
        upper=upper,
        model=max(models, key=models.count),
    )

    def naive(period: float) -> float:
        p = round(period / step)
        return wape(test, y[first - p : y.size - p]) if first >= p else math.nan

    return Backtest(
        forecast=joined,
        actual=test,
        wape=wape(test, point),
        wape_seasonal_naive_day=naive(DAY),
        wape_seasonal_naive_week=naive(WEEK),
        coverage=float(np.mean(test <= upper)),
    )
