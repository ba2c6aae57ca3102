"""The forecaster on every shared production series, the last two days held out (issue 9).

The yardstick on each series is the better of the two seasonal-naive forecasts (same time
yesterday, same time last week), chosen in hindsight on the held-out days: the forecast must not
be worse than it. TOLERANCE allows one percent on one series only, input6, whose held-out days
are dominated by a one-off spike that no forecast sees coming (every candidate scores 0.96-0.99
WAPE, the week copy 0.9655, ours 0.9662). input15, whose last week repeats the week before, is
forecast as that week exactly (ratio 1.0).

KNOWN_SHORT lists the series where the forecast loses today, each with the reason; those tests
are strict xfails, so they fail as soon as the forecaster passes them. The same for the geometric
mean's target of 0.8: GEOMEAN_NOW guards the level reached, the target is a strict xfail.

The guards sit a thousandth above the levels measured, with the holdout at the end and moved one
and two days earlier: a change may not buy the end's target with a worse mean a day or two back
(issue 9; bench/RESULTS.md, "fifth pass", shows the candidates that would; the sixth pass judges
every change on all 94 holdouts of the bench's --shifts 1,...,8).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pytest

from autoscaler.forecast import (
    DAY,
    Backtest,
    backtest,
    backtest_moved,
    backtest_refit,
    read_series,
)
from autoscaler.replay.threads import limit_blas_threads

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SERIES = [
    "crane-series-daily.csv",
    "crane-series-weekly.csv",
    *sorted(f"crane/{p.name}" for p in (DATA / "crane").glob("*.csv")),
]
T = TypeVar("T")
Series = npt.NDArray[np.float64]
TOLERANCE = {"crane/input6.csv": 0.01}
GEOMEAN_NOW = 0.8033  # measured 0.8023 (bench/RESULTS.md, sixth pass)
KNOWN_SHORT = {
    "crane/input0.csv": (
        "8 days (4 cut points one day ahead on 2-5 days of training) whose level climbs 10-15% "
        "into the held-out days after falling over the weekend before; the damped-level-profile "
        "wins every backtest and follows the first held-out day best, but its correction fades "
        "on the second (ratio 1.08); copying yesterday is still closer over both. Models that "
        "let the last level persist score 0.61-0.64 here but 0.83-0.91 and 0.99-1.02 with the "
        "holdout a day and two days earlier (0.778 and 0.890 today), and input0's backtest "
        "prefers them or not by a few percent depending on their window: not fixable without "
        "tuning to this file. Re-anchoring its damped-level-profile by the persistence its "
        "backtest measures reached 1.035, but counts the last hours twice (bench/RESULTS.md, "
        "fifth and sixth passes). A level-shift test on whole days (the last day's level against "
        "the earlier days', t test) does not call its last day a shift (p 0.22); one on its hours "
        "does, and on the two holdouts before as well, where the level did not stay (seventh pass)"
    ),
}
# The same check with the two held-out days moved 1 and 2 days earlier (the series truncated
# there): a change that helps the official holdout only shows here. Levels reached, as guards.
MOVED_NOW = {1: 0.7824, 2: 0.9979}  # measured 0.7814 and 0.9970 (bench/RESULTS.md)
# The upper band's coverage is checked on the 94 holdouts of the bench's --shifts 1,...,8 (the
# end and 1 to 8 days earlier where three days of training remain): pooled, and per series over
# its own holdouts. A holdout either shares its cuts' level shifts and spikes or not, so one
# holdout's coverage is 40-100% whatever the band (bench/RESULTS.md, issue 9, sixth pass); a
# series' mean over its holdouts is what a calibrated band can put in 85-95%. Four series cannot,
# each with the level measured as its guard:
SHIFTS = range(1, 9)
COVERAGE_SHORT = {
    "crane-series-daily.csv": (
        0.835,  # measured 0.840
        "four of nine holdouts (2, 3, 6 and 7 days earlier) open on a level its cuts never saw "
        "(40-76% covered), the other five are calmer than its cuts (97-100%)",
    ),
    "crane/input0.csv": (
        0.795,  # measured 0.798
        "8 days: four holdouts, each calibrated on one to four cuts one day ahead, and its level "
        "climbs into the held-out days (52% a day earlier)",
    ),
    "crane/input6.csv": (
        0.845,  # measured 0.849
        "one-off spikes: a holdout with one is 64-72% covered, one without 96-100%",
    ),
}
# input15 repeats last week exactly: the residuals are zero, the band is the forecast, and it
# covers every step it forecasts exactly (0.979: one holdout, 6 days earlier, did not repeat).
COVERAGE_ABOVE = {"crane/input15.csv": 1.0}


def _every_series(run: Callable[[Series, Series], T]) -> dict[str, T]:
    """``run(ts, values)`` on every shared series (skipped without the shared data)."""
    if not (DATA / "crane").is_dir():
        pytest.skip(f"shared data {DATA} not available")
    limit_blas_threads()
    return {name: run(*read_series(DATA / name)) for name in SERIES}


def _each_series(short: dict[str, str]) -> list[Any]:
    """Every series as a test parameter, a strict xfail with its reason where ``short`` says."""
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=short[name]))
        if name in short
        else name
        for name in SERIES
    ]


def _assert_no_worse_than_the_better_seasonal_naive(name: str, bt: Backtest) -> None:
    assert bt.actual.size == bt.forecast.point.size == round(2 * DAY / bt.forecast.step)
    assert bt.ratio <= 1.0 + TOLERANCE.get(name, 0.0)


@pytest.fixture(scope="module")
def results() -> dict[str, Backtest]:
    return _every_series(lambda ts, values: backtest(ts, values, holdout=2 * DAY))


@pytest.fixture(scope="module")
def moved() -> dict[int, dict[str, Backtest]]:
    out: dict[int, dict[str, Backtest]] = {}
    for days in SHIFTS:
        found = _every_series(
            lambda ts, values: backtest_moved(ts, values, days=days, holdout=2 * DAY)  # noqa: B023
        )
        out[days] = {name: bt for name, bt in found.items() if bt is not None}
    return out


# The tests above forecast the two held-out days from one origin, as the issue asks; the
# controller refits every 15 minutes and reaches an hour or two, the replay refits every 6 hours
# and reaches about 7. So the same holdout again, refitted every 6 hours as the replay does, each
# fit scored until the next, against seasonal-naive with the same information (the value a day
# and a week before each held-out step: on the second day, yesterday is the first held-out day).
# This adds to the check and replaces none of it. Level reached, as a guard:
REFIT = 6 * 3600.0
REFIT_NOW = 0.8040  # measured 0.8030 (bench/RESULTS.md, seventh pass)
REFIT_SHORT = {
    "crane/input8.csv": (
        "an evening drop (to a tenth of the day's level) whose hour moves from day to day, "
        "19-22 h: refitted every 6 hours, the weekly profile (the same weekday of the two weeks "
        "before, averaged) spreads it, and yesterday's copy, which on the second day is the first "
        "held-out day, is closer (ratio 1.29; 0.991 from one origin, where yesterday is two days "
        "old on the second day)"
    ),
}


@pytest.fixture(scope="module")
def refitted() -> dict[str, Backtest]:
    return _every_series(
        lambda ts, values: backtest_refit(ts, values, every=REFIT, holdout=2 * DAY)
    )


@pytest.mark.parametrize("name", _each_series(REFIT_SHORT))
def test_refitted_as_the_replay_refits_no_worse_than_the_better_seasonal_naive(
    name: str, refitted: dict[str, Backtest]
) -> None:
    _assert_no_worse_than_the_better_seasonal_naive(name, refitted[name])


def test_refitted_geometric_mean_holds_its_level(refitted: dict[str, Backtest]) -> None:
    ratios = [bt.ratio for bt in refitted.values()]
    assert len(ratios) == 11
    assert math.exp(float(np.mean(np.log(ratios)))) <= REFIT_NOW


def test_every_shared_series_is_covered(results: dict[str, Backtest]) -> None:
    assert len(results) == 11


@pytest.mark.parametrize("name", _each_series(KNOWN_SHORT))
def test_no_worse_than_the_better_seasonal_naive(name: str, results: dict[str, Backtest]) -> None:
    _assert_no_worse_than_the_better_seasonal_naive(name, results[name])


def test_the_week_copy_is_forecast_as_that_week(results: dict[str, Backtest]) -> None:
    bt = results["crane/input15.csv"]
    assert bt.forecast.step == 15.0
    assert bt.wape == bt.wape_seasonal_naive_week < 1e-4


def test_geometric_mean_of_ratios_holds_its_level(results: dict[str, Backtest]) -> None:
    ratios = [bt.ratio for bt in results.values()]
    assert math.exp(float(np.mean(np.log(ratios)))) <= GEOMEAN_NOW


@pytest.mark.parametrize("days", sorted(MOVED_NOW))
def test_geometric_mean_with_the_holdout_moved_earlier_holds_its_level(
    days: int, moved: dict[int, dict[str, Backtest]]
) -> None:
    ratios = [bt.ratio for bt in moved[days].values()]
    assert len(ratios) == 11
    assert math.exp(float(np.mean(np.log(ratios)))) <= MOVED_NOW[days]


@pytest.mark.xfail(
    strict=True,
    reason=(
        "issue 9's target; 0.8023 today. input6 (spike) and input15 (an exact week copy) cannot "
        "go below 1.0, so the other nine need 0.76 on average; input0 (1.08) and input4 (0.86: "
        "a flat level with random bursts) are furthest from it. Fixing input0 alone would reach "
        "it (0.797), which no general change does (see input0's reason; the sixth pass's "
        "re-anchoring moves the end by +0.0002 and the 94 holdouts from 0.912 to 0.909)"
    ),
)
def test_geometric_mean_of_ratios_target(results: dict[str, Backtest]) -> None:
    ratios = [bt.ratio for bt in results.values()]
    assert math.exp(float(np.mean(np.log(ratios)))) <= 0.8


def test_chosen_model_never_lost_to_seasonal_naive_in_its_backtest(
    results: dict[str, Backtest],
) -> None:
    for name, bt in results.items():
        fc = bt.forecast
        naive = [v for k, v in fc.scores.items() if k.startswith("seasonal-naive")]
        assert fc.cuts >= 2, name
        assert naive, name
        assert fc.backtest_wape <= min(naive), name


def test_a_combination_is_chosen_only_when_it_beats_every_single_model_by_2_percent(
    results: dict[str, Backtest],
) -> None:
    combinations = {"median", "weighted-mean"}
    for name, bt in results.items():
        fc = bt.forecast
        single = min(v for k, v in fc.scores.items() if k not in combinations)
        if fc.model in combinations:
            assert fc.backtest_wape <= 0.98 * single, name
        else:
            assert fc.backtest_wape == single, name


def test_upper_band_coverage_is_calibrated(
    results: dict[str, Backtest], moved: dict[int, dict[str, Backtest]]
) -> None:
    everywhere = [results, *moved.values()]
    coverage = [bt.coverage for holdouts in everywhere for bt in holdouts.values()]
    assert len(coverage) == 94
    assert 0.85 <= float(np.mean(coverage)) <= 0.95
    for name in SERIES:
        mine = float(np.mean([h[name].coverage for h in everywhere if name in h]))
        low, why = COVERAGE_SHORT.get(name, (0.85, "calibrated"))
        assert low <= mine <= COVERAGE_ABOVE.get(name, 0.95), (name, mine, why)
    for bt in results.values():
        assert np.all(bt.forecast.upper >= bt.forecast.point)
        assert np.all(bt.forecast.point >= 0.0)
