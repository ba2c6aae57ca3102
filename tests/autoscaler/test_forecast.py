import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from autoscaler.forecast import (
    DAY,
    Backtest,
    Forecast,
    Forecaster,
    ForecastSettings,
    SeasonalForecaster,
    StaticForecaster,
    backtest,
    backtest_refit,
    detect_period,
    fit_forecast,
    read_series,
    wape,
)
from autoscaler.forecast import _band_level as _band_level
from autoscaler.forecast import _candidates as _candidates
from autoscaler.forecast import _Choice as _Choice
from autoscaler.forecast import _lift as _lift
from autoscaler.forecast import _margin as _margin
from autoscaler.forecast import _persistence as _persistence
from autoscaler.forecast import _sorted_quantile as _sorted_quantile
from autoscaler.forecast_cli import main, parse_duration
from autoscaler.replay.threads import limit_blas_threads

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
T0 = 1_600_000_000.0
MINUTE = 60.0


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread() -> None:
    limit_blas_threads()  # small least-squares fits: threads only contend on a busy machine


def shared(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"shared data {path} not available")
    return path


def minutes(n: int) -> np.ndarray:
    return T0 + MINUTE * np.arange(n, dtype=np.float64)


# --- accuracy on the shared production series (every series: test_forecast_series.py) -------


@pytest.mark.parametrize(
    ("name", "improvement"),
    [("crane-series-daily.csv", 0.15), ("crane-series-weekly.csv", 0.20)],
)
def test_backtest_beats_seasonal_naive_and_covers(name: str, improvement: float) -> None:
    ts, values = read_series(shared(name))
    bt = backtest(ts, values, holdout=2 * DAY)

    best_naive = min(bt.wape_seasonal_naive_day, bt.wape_seasonal_naive_week)
    assert bt.wape <= (1.0 - improvement) * best_naive
    assert bt.coverage >= 0.85
    assert bt.forecast.point.size == bt.actual.size == 2 * 1440
    assert np.all(bt.forecast.upper >= bt.forecast.point)


def test_weekly_series_has_a_weekly_period() -> None:
    _, values = read_series(shared("crane-series-weekly.csv"))
    assert detect_period(values, step=MINUTE) == "week"


def test_daily_series_is_not_called_weekly_on_two_weeks() -> None:
    _, values = read_series(shared("crane-series-daily.csv"))
    assert detect_period(values, step=MINUTE) == "day"


# --- period detection on synthetic series ----------------------------------------------------


def test_detect_period_synthetic() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(14 * 1440)
    daily = 100 + 50 * np.sin(2 * np.pi * t / 1440) + rng.normal(0, 10, t.size)
    weekend = (t // 1440) % 7 >= 5
    weekly = 100 + 50 * np.sin(2 * np.pi * t / 1440) * (1 + 0.8 * weekend)
    weekly += rng.normal(0, 10, t.size)
    noise = 100 + rng.normal(0, 10, t.size)

    assert detect_period(daily, step=MINUTE) == "day"
    assert detect_period(weekly, step=MINUTE) == "week"
    assert detect_period(noise, step=MINUTE) == "none"
    assert detect_period(daily[:1000], step=MINUTE) == "none"  # less than two days


def test_daily_sine_is_forecast_by_a_seasonal_model() -> None:
    rng = np.random.default_rng(1)
    n = 6 * 1440
    t = np.arange(n + 1440)
    truth = 100 + 50 * np.sin(2 * np.pi * t / 1440)
    values = truth[:n] + rng.normal(0, 10, n)

    fc = fit_forecast(minutes(n), values, horizon=DAY)

    assert fc.period == "day"
    assert fc.model != "robust-baseline"
    assert fc.start == T0 + n * MINUTE
    assert wape(truth[n:], fc.point) < 0.05


# --- model choice by rolling-origin backtest -------------------------------------------------


def _daily(days: int, *, noise: float, seed: int, step: float = MINUTE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(days * DAY / step)) * step
    return np.asarray(100 + 50 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, noise, t.size))


def test_choice_is_scored_on_several_cuts_with_both_seasonal_naives() -> None:
    values = _daily(14, noise=10.0, seed=3)
    fc = fit_forecast(minutes(values.size), values, horizon=DAY)

    assert fc.cuts >= 3
    assert {"seasonal-naive-day", "seasonal-naive-week", "median", "weighted-mean"} <= set(
        fc.scores
    )
    assert fc.backtest_wape == fc.scores[fc.model] == min(fc.scores.values())
    # averaging days beats copying one noisy day
    assert fc.model not in ("seasonal-naive-day", "seasonal-naive-week")
    assert fc.backtest_wape < 0.9 * fc.scores["seasonal-naive-day"]


def test_a_week_that_repeats_exactly_is_forecast_as_that_week() -> None:
    rng = np.random.default_rng(4)
    week = 100 + 80 * rng.random(7 * 1440)  # no daily shape at all, only the week repeating
    values = np.tile(week, 2)[: 13 * 1440]
    fc = fit_forecast(minutes(values.size), values, horizon=DAY)

    assert fc.scores["seasonal-naive-week"] == 0.0
    assert fc.backtest_wape == 0.0
    truth = np.tile(week, 3)[13 * 1440 : 14 * 1440]
    assert wape(truth, fc.point) == 0.0


def test_eight_days_and_a_two_day_horizon_still_try_the_week_copy() -> None:
    """A short history: with 8 days and a 2-day horizon, no 2-day cut leaves a week of training,
    so the cuts score one day ahead and the latest leaves 7 days: the week copy competes."""
    rng = np.random.default_rng(7)
    week = 100 + 80 * rng.random(7 * 1440)  # only the week repeating, as in test above
    values = np.tile(week, 2)[: 8 * 1440]
    fc = fit_forecast(minutes(values.size), values, horizon=2 * DAY)

    assert fc.cuts >= 1
    assert fc.scores["seasonal-naive-week"] == 0.0
    truth = np.tile(week, 2)[8 * 1440 : 10 * 1440]
    assert wape(truth, fc.point) == 0.0


def test_weekends_are_forecast_from_weekends() -> None:
    """Day inside week: five working days, two weekend days at a third of the level."""
    rng = np.random.default_rng(5)
    n = 19 * 1440  # days 5, 6, 12, 13 are weekends, and so are the two days ahead
    t = np.arange(n + 2 * 1440)
    weekend = (t // 1440) % 7 >= 5
    truth = (100 + 50 * np.sin(2 * np.pi * t / 1440)) * np.where(weekend, 0.3, 1.0)
    values = truth[:n] + rng.normal(0, 5, n)
    fc = fit_forecast(minutes(n), values, horizon=2 * DAY)

    assert detect_period(values, step=MINUTE) == "week"
    assert fc.period == "week"
    yesterday = np.tile(values[-1440:], 2)  # a working day
    assert wape(truth[n:], fc.point) < 0.1
    assert wape(truth[n:], yesterday) > 1.0


def test_a_spike_day_does_not_move_the_forecast() -> None:
    values = _daily(10, noise=5.0, seed=6)
    clean = values.copy()
    values[8 * 1440 : 9 * 1440] *= 2.0  # one day at twice its usual level, the day before last
    fc = fit_forecast(minutes(values.size), values, horizon=DAY)
    t = np.arange(10 * 1440, 11 * 1440)
    truth = 100 + 50 * np.sin(2 * np.pi * t / 1440)

    assert fc.model != "seasonal-naive-day"
    assert wape(truth, fc.point) < 0.06
    assert wape(clean[-1440:], fc.point) < 0.1


def test_a_climbing_level_is_followed_by_the_damped_level_profile() -> None:
    rng = np.random.default_rng(11)
    t = np.arange(8 * 1440)
    truth = 100 * 1.06 ** (t / 1440) * (1 + 0.6 * np.sin(2 * np.pi * t / 1440))  # +6% a day
    values = truth + rng.normal(0, 3, t.size)
    n = 7 * 1440
    fc = fit_forecast(minutes(n), values[:n], horizon=DAY)

    # the seven-day median profile lags the climb by three days; rescaled, it does not
    assert fc.scores["damped-level-profile"] < 0.5 * fc.scores["seasonal-profile"]
    assert fc.model == "damped-level-profile"
    assert wape(truth[n:], fc.point) < 0.9 * wape(truth[n:], values[n - 1440 : n])


def test_week_copy_shifted_by_the_last_hour_and_damped() -> None:
    rng = np.random.default_rng(12)
    t = np.arange(15 * 1440)
    week = np.where((t // 1440) % 7 >= 5, 0.5, 1.0) * (1 + 0.5 * np.sin(2 * np.pi * t / 1440))
    values = 100 * week + rng.normal(0, 1, t.size)
    values[-180:] += 40.0  # the last three hours 40 above last week
    model = _candidates(values.size, 60.0, "week", ForecastSettings())["seasonal-naive-week+level"]
    point = model(values, 2 * 1440)
    copy = values[-7 * 1440 :][: 2 * 1440]

    assert np.median(point[:60] - copy[:60]) == pytest.approx(40.0, abs=2.0)
    # halved every six hours: a quarter left after twelve, under 1% after two days
    assert np.median(point[720:780] - copy[720:780]) == pytest.approx(10.0, abs=2.0)
    assert np.abs(point[-60:] - copy[-60:]).max() < 0.01 * 40.0


def test_fifteen_second_steps_with_jitter_are_resampled() -> None:
    rng = np.random.default_rng(7)
    n = 4 * 5760  # four days of 15 s steps
    ts = T0 + 15.0 * np.arange(n) + rng.uniform(-2.0, 2.0, n)
    values = 100 + 50 * np.sin(2 * np.pi * (ts - T0) / DAY) + rng.normal(0, 5, n)
    fc = fit_forecast(ts, values, horizon=3600.0)

    assert fc.step == pytest.approx(15.0, abs=0.01)
    assert fc.point.size == 240
    assert fc.period == "day"
    truth = 100 + 50 * np.sin(2 * np.pi * (fc.times - T0) / DAY)
    assert wape(truth, fc.point) < 0.05


def test_flat_series_is_forecast_flat_with_no_band() -> None:
    values = np.full(5 * 1440, 42.0)
    fc = fit_forecast(minutes(values.size), values, horizon=DAY)
    assert np.all(fc.point == 42.0)
    assert np.all(fc.upper == 42.0)
    assert fc.backtest_wape == 0.0


def test_upper_band_is_calibrated_not_padded() -> None:
    values = _daily(16, noise=10.0, seed=8)
    bt = backtest(minutes(values.size), values, holdout=2 * DAY)
    assert 0.85 <= bt.coverage <= 0.95
    # the band is about the noise's own 90% quantile wide (1.28 sigma), not a multiple of it
    assert float(np.median(bt.forecast.upper - bt.forecast.point)) < 2.0 * 1.28 * 10.0


# --- production-shaped series fall back to the robust baseline ------------------------------


def _series(kind: str) -> np.ndarray:
    rng = np.random.default_rng(2)
    n = 6 * 1440
    i = np.arange(n)
    if kind == "no-period":
        return 100 + rng.normal(0, 10, n)
    if kind == "level-shift":
        return np.where(i < n - 1440, 100.0, 300.0) + rng.normal(0, 10, n)
    if kind == "near-zero":
        return rng.poisson(0.3, n).astype(np.float64)
    if kind == "all-zero":
        return np.zeros(n)
    if kind == "random-walk":
        return np.abs(np.cumsum(rng.normal(0, 1, n)))
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["no-period", "level-shift", "near-zero", "all-zero", "random-walk"]
)
def test_unseasonal_series_use_robust_baseline(kind: str) -> None:
    values = _series(kind)
    fc = fit_forecast(minutes(values.size), values, horizon=6 * 3600.0)

    assert fc.period == "none"
    # the median of the last two hours, or of the last three days (less noisy when it holds)
    assert fc.model in {"robust-baseline", "robust-3-days"}
    assert fc.point.size == 360
    assert np.all(np.isfinite(fc.point))
    assert np.all(fc.point >= 0.0)
    assert np.all(fc.upper >= fc.point)
    # flat at the recent level, not an extrapolated trend
    assert np.ptp(fc.point) == 0.0
    recent = values[-120:]
    assert recent.min() - 1.0 <= fc.point[0] <= recent.max() + 1.0


def test_a_half_day_burst_on_a_flat_series_does_not_lift_the_forecast() -> None:
    rng = np.random.default_rng(13)
    values = 100 + rng.normal(0, 20, 8 * 1440)
    values[-1080:-440] = 300 + rng.normal(0, 20, 640)  # 10 h at 3x, ending 7 h before the end
    fc = fit_forecast(minutes(values.size), values, horizon=DAY)

    # a one-day median is chosen (the burst spoils every cut alike) and sits at 126; the
    # three-day median at 104
    assert abs(float(np.median(fc.point)) - 100.0) < 8.0


def test_level_shift_follows_the_new_level() -> None:
    values = _series("level-shift")
    fc = fit_forecast(minutes(values.size), values, horizon=3600.0)
    assert 280.0 <= fc.point[0] <= 320.0


def test_forecast_is_never_negative_on_a_falling_trend() -> None:
    n = 6 * 1440
    t = np.arange(n)
    values = np.maximum(0.0, 60 + 50 * np.sin(2 * np.pi * t / 1440) - 0.005 * t)
    fc = fit_forecast(minutes(n), values, horizon=2 * DAY)
    assert np.all(fc.point >= 0.0)
    assert np.all(fc.upper >= fc.point)


def test_gaps_are_interpolated_onto_the_grid() -> None:
    n = 3 * 1440
    ts = minutes(n)
    values = 100 + 50 * np.sin(2 * np.pi * np.arange(n) / 1440)
    keep = np.ones(n, dtype=bool)
    keep[1000:1100] = False
    fc = fit_forecast(ts[keep], values[keep], horizon=1800.0)
    assert fc.step == MINUTE
    assert fc.start == ts[-1] + MINUTE
    assert fc.point.size == 30


def test_fit_forecast_rejects_bad_arguments() -> None:
    ts, values = minutes(100), np.ones(100)
    with pytest.raises(ValueError, match="quantile"):
        fit_forecast(ts, values, horizon=60.0, quantile=1.5)
    with pytest.raises(ValueError, match="horizon"):
        fit_forecast(ts, values, horizon=0.0)
    with pytest.raises(ValueError, match="non-decreasing"):
        fit_forecast(ts[::-1], values, horizon=60.0)


# --- wape ------------------------------------------------------------------------------------


def test_wape() -> None:
    assert wape([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.0
    assert wape([10.0, 10.0], [12.0, 7.0]) == pytest.approx(5.0 / 20.0)
    assert wape([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert wape([], []) == 0.0
    assert math.isinf(wape([0.0, 0.0], [1.0, 0.0]))
    # touching zero is fine, unlike MAPE
    assert wape([0.0, 4.0], [1.0, 4.0]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="shape"):
        wape([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    ("ours", "day", "week", "expected"),
    [
        (0.08, 0.10, math.nan, 0.8),  # under a week of history: the day's only
        (0.10, 0.20, 0.05, 2.0),  # the better of the two, chosen in hindsight
        (0.0, 0.03, 0.0, 1.0),  # a week copied exactly, forecast as that week
        (0.01, 0.03, 0.0, math.inf),  # ... and not
        (0.05, math.nan, math.nan, math.nan),  # no seasonal-naive to compare with
    ],
)
def test_backtest_ratio_to_the_better_seasonal_naive(
    ours: float, day: float, week: float, expected: float
) -> None:
    fc = Forecast(
        start=0.0,
        step=MINUTE,
        point=np.zeros(1),
        upper=np.zeros(1),
        quantile=0.9,
        period="none",
        model="static",
    )
    bt = Backtest(
        forecast=fc,
        actual=np.zeros(1),
        wape=ours,
        wape_seasonal_naive_day=day,
        wape_seasonal_naive_week=week,
        coverage=1.0,
    )
    assert bt.ratio == pytest.approx(expected, nan_ok=True)


# --- read_series -----------------------------------------------------------------------------


def test_read_series(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("ts,value\n0,1.5\n60,2\n\n120,3e0\n")
    ts, values = read_series(path)
    assert ts.tolist() == [0.0, 60.0, 120.0]
    assert values.tolist() == [1.5, 2.0, 3.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r":1: empty file"),
        ("time,value\n0,1\n", r":1: missing column\(s\) ts"),
        ("ts\n0\n", r":1: missing column\(s\) value"),
        ("ts,value\n0,1\n60,abc\n", r":3: value 'abc' is not a number"),
        ("ts,value\nnoon,1\n", r":2: ts 'noon' is not a number"),
        ("ts,value\n0,1\n60,nan\n", r":3: value 'nan' is not finite"),
        ("ts,value\n0,1\n120,1\n60,1\n", r":4: time goes backwards"),
        ("ts,value\n0,1\n60\n", r":3: expected 2 fields"),
        ("ts,value\n", r": no data rows"),
        (b"ts,value\r\n0,1\r\n60,\xff\r\n", r":3: not UTF-8 text \(byte 18: invalid start byte\)"),
    ],
)
def test_read_series_errors_name_file_and_line(
    tmp_path: Path, text: str | bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=message) as info:
        read_series(path)
    assert re.match(re.escape(str(path)) + message, str(info.value)), str(info.value)


# --- the Forecaster seam ---------------------------------------------------------------------


def test_forecasters_fit_and_predict() -> None:
    ts, values = minutes(3 * 1440), np.full(3 * 1440, 5.0)
    forecasters: list[Forecaster] = [SeasonalForecaster(), StaticForecaster(level=2.0, upper=3.0)]
    for forecaster in forecasters:
        fc = forecaster.fit(ts, values).predict(horizon=600.0)
        assert fc.point.size == 10
        assert fc.start == ts[-1] + MINUTE
        assert np.all(fc.upper >= fc.point)
    assert SeasonalForecaster().fit(ts, values).predict(horizon=60.0).at(T0) == (5.0, 5.0)
    with pytest.raises(RuntimeError):
        SeasonalForecaster().predict(horizon=60.0)


# --- CLI -------------------------------------------------------------------------------------


def test_parse_duration() -> None:
    assert parse_duration("30m") == 1800.0
    assert parse_duration("6h") == 21_600.0
    assert parse_duration("2d") == 172_800.0
    assert parse_duration("1w") == 604_800.0
    assert parse_duration("1h30m") == 5400.0  # the groups file's grammar
    with pytest.raises(Exception, match="invalid duration"):
        parse_duration("2 days")


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared("crane-series-daily.csv")
    assert main([str(path), "--horizon", "1d", "--backtest", "2d", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert len(report["forecast"]) == len(report["upper"]) == 1440
    assert all(u >= p >= 0 for p, u in zip(report["forecast"], report["upper"], strict=True))
    # the model is the backtest's winner, scored on the same cuts as seasonal-naive
    b = report["backtest"]
    assert b["cuts"] >= 3
    assert b["wape"] == b["candidates"][report["model"]] == min(b["candidates"].values())
    assert b["wape"] <= min(b["wape_seasonal_naive_day"], b["wape_seasonal_naive_week"])
    assert b["wape_seasonal_naive_day"] == b["candidates"]["seasonal-naive-day"]
    assert b["wape_seasonal_naive_week"] == b["candidates"]["seasonal-naive-week"]
    h = report["holdout"]
    assert h["seconds"] == 2 * DAY
    assert h["wape"] < min(h["wape_seasonal_naive_day"], h["wape_seasonal_naive_week"])
    assert h["coverage"] >= 0.85


def _percent(line: str) -> float | None:
    word = line.split()[-1]
    return None if word == "n/a" else float(word.rstrip("%")) / 100.0


def test_cli_text_says_what_the_json_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    step = 300.0
    values = _daily(16, noise=10.0, seed=9, step=step)
    path = tmp_path / "s.csv"
    path.write_text(
        "ts,value\n" + "".join(f"{T0 + step * i:.0f},{v}\n" for i, v in enumerate(values))
    )
    argv = [str(path), "--horizon", "2h", "--backtest", "2d"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()

    def value(prefix: str, after: int = 0) -> float | None:
        starts = [i for i, line in enumerate(lines) if line.strip().startswith(prefix)]
        return _percent(lines[next(i for i in starts if i >= after)])

    assert lines[1].split() == ["period", report["period"]]
    assert lines[2].split()[:2] == ["model", report["model"]]
    b, h = report["backtest"], report["holdout"]
    assert lines[3].split()[1] == str(b["cuts"])
    for name, wape_ in b["candidates"].items():
        assert value(name) == pytest.approx(wape_, abs=5e-5)
    assert value("model WAPE") == pytest.approx(b["wape"], abs=5e-5)
    holdout = next(i for i, line in enumerate(lines) if line.startswith("holdout"))
    assert lines[holdout].split()[-1] == h["model"]
    assert value("WAPE forecast", holdout) == pytest.approx(h["wape"], abs=5e-5)
    assert value("seasonal-naive (day)", holdout) == pytest.approx(
        h["wape_seasonal_naive_day"], abs=5e-5
    )
    assert value("seasonal-naive (week)", holdout) == pytest.approx(
        h["wape_seasonal_naive_week"], abs=5e-5
    )
    assert value("p90 coverage", holdout) == pytest.approx(h["coverage"], abs=5e-5)
    rows = lines[-len(report["forecast"]) :]
    assert [float(r.split(",")[1]) for r in rows] == pytest.approx(report["forecast"], abs=5e-4)


def test_cli_text_without_backtest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.csv"
    path.write_text("ts,value\n" + "".join(f"{60 * i},{i % 7}\n" for i in range(300)))
    assert main([str(path), "--horizon", "30m"]) == 0
    out = capsys.readouterr().out
    assert "period   none" in out
    assert "model    robust-baseline" in out
    assert "holdout" not in out
    assert len(out.strip().splitlines()) == 10 + 30


def test_cli_reports_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("ts,value\n0,1\n60,x\n")
    assert main([str(path), "--horizon", "1h", "--json"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: value 'x' is not a number" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_refuses_a_horizon_beyond_a_year(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("ts,value\n" + "".join(f"{60 * i},{i % 7}\n" for i in range(300)))
    assert main([str(path), "--horizon", "2400000h"]) == 2  # 100,000 days, checked before fitting
    err = capsys.readouterr().err
    assert err.strip() == "error: --horizon: 100,000 days is more than 366 days"


def test_fourier_shares_its_normal_equations_between_fits_of_one_length() -> None:
    # The Gram matrix depends on the number of bins only: a second series of the same length
    # reuses it and must forecast exactly what a fit with a fresh cache forecasts.
    from autoscaler import forecast

    step = 300.0
    t = np.arange(3 * 288) * step
    first = 10 + 3 * np.sin(2 * np.pi * t / 86_400)
    second = 5 + np.cos(2 * np.pi * t / 43_200) + 0.01 * t / 3600
    model = _candidates(first.size, step, "day", ForecastSettings())["fourier+trend"]
    forecast._normal.cache_clear()
    fresh = model(second, 12)
    model(first, 12)
    hits = forecast._normal.cache_info().hits
    assert np.array_equal(model(second, 12), fresh)
    assert forecast._normal.cache_info().hits == hits + 1
    xw, chol = forecast._normal(first.size, step, 24, 0, ForecastSettings().half_life, 0.1)
    assert not xw.flags.writeable
    assert not chol.flags.writeable


# --- the upper band's calibration (split-conformal over cut points) -------------------------


def _loo_coverage(blocks: list[np.ndarray], level: float) -> float:
    """Mean over the cuts of how much of each the other cuts' ``level`` quantile covers."""
    covered = []
    for i, block in enumerate(blocks):
        rest = np.concatenate(blocks[:i] + blocks[i + 1 :])
        covered.append(float(np.mean(block <= np.quantile(rest, level))))
    return float(np.mean(covered))


def test_sorted_quantile_is_numpys() -> None:
    x = np.sort(np.random.default_rng(3).exponential(size=101))
    levels = np.array([0.0, 0.1, 0.5, 0.9, 0.995, 1.0])
    assert np.allclose(_sorted_quantile(x, levels), np.quantile(x, levels))


def test_band_level_on_alike_cuts_is_the_quantile() -> None:
    rng = np.random.default_rng(4)
    residuals = rng.normal(0.0, 10.0, 5 * 1440)
    level = _band_level(residuals.reshape(5, -1), 0.9)
    assert 0.88 <= level <= 0.92
    # the band is the noise's 90% quantile (1.28 sigma), not padded
    assert 0.9 * 12.8 <= _margin(residuals, 5, 0.9) <= 1.1 * 12.8


def test_band_level_rises_with_cuts_that_differ_and_is_the_lowest_that_covers() -> None:
    rng = np.random.default_rng(5)
    # one cut opens on a level shift (errors 20 above the others'), as production series do
    blocks = [rng.normal(shift, 10.0, 1440) for shift in (0.0, 0.0, 20.0, 0.0, 0.0)]
    level = _band_level(np.stack(blocks), 0.9)
    assert level > 0.92  # the pooled 90% quantile would cover the shifted cut too little
    assert _loo_coverage(blocks, level) >= 0.9
    assert _loo_coverage(blocks, level - 0.001) < 0.9
    pooled = float(np.quantile(np.concatenate(blocks), 0.9))
    assert _margin(np.concatenate(blocks), 5, 0.9) > pooled


def test_band_level_with_too_few_cuts_is_halfway_to_one() -> None:
    rng = np.random.default_rng(6)
    for cuts in (1, 2):
        blocks = rng.normal(size=cuts * 100).reshape(cuts, -1)
        assert _band_level(blocks, 0.9) == pytest.approx(0.95)
        assert _band_level(blocks, 0.5) == pytest.approx(0.75)


def test_band_of_exact_backtests_is_the_forecast() -> None:
    assert _margin(np.zeros(3 * 1440), 3, 0.9) == 0.0
    assert _margin(np.zeros(0), 0, 0.9) == 0.0


# --- re-anchoring to the last hour (seasonal series, by the persistence the backtest shows) ---


def test_persistence_of_level_steps_is_near_one_and_of_bursts_near_zero() -> None:
    rng = np.random.default_rng(12)
    n = 4 * 1440
    fitted = 100 * (1 + 0.5 * np.sin(2 * np.pi * np.arange(n) / 1440))
    # a level that steps every 12 hours and stays: what the last hour shows, the next hours keep
    steps = np.repeat(np.exp(rng.normal(0.0, 0.2, n // 720)), 720)
    shares = _persistence(fitted * steps, fitted, 2, step=MINUTE, s=ForecastSettings())
    assert shares[0] > 0.8
    # one-hour bursts at random: what the last hour shows is gone within the hour (a share
    # remains: an hour that caught the start of a burst sees the rest of it)
    bursts = np.zeros(n)
    for start in rng.choice(n - 60, size=16, replace=False):
        bursts[start : start + 60] = 1.0
    shares = _persistence(fitted * (1 + 0.5 * bursts), fitted, 2, step=MINUTE, s=ForecastSettings())
    assert max(shares) < 0.3


def test_a_refitted_backtest_gives_the_yardstick_what_the_fits_knew() -> None:
    # a daily cycle whose level doubles for the two held-out days: refitted every 6 hours, the
    # second day's "same time yesterday" is the first held-out day (exact), so seasonal-naive
    # misses only the first day (a quarter of the total); from one origin it misses both (half)
    day = np.tile(100 + 50 * np.sin(2 * np.pi * np.arange(1440) / 1440), 5)
    day[-2 * 1440 :] *= 2.0
    ts = minutes(day.size)
    refitted = backtest_refit(ts, day, every=6 * 3600.0, holdout=2 * DAY)
    once = backtest(ts, day, holdout=2 * DAY)
    assert refitted.wape_seasonal_naive_day == pytest.approx(0.25)
    assert once.wape_seasonal_naive_day == pytest.approx(0.5)
    assert refitted.actual.size == refitted.forecast.point.size == refitted.forecast.upper.size
    assert refitted.forecast.start == ts[-2 * 1440]
    with pytest.raises(ValueError, match="refit every"):
        backtest_refit(ts, day, every=2 * DAY)


def test_persistence_needs_pairs() -> None:
    fitted = np.full(120, 10.0)
    assert _persistence(2 * fitted, fitted, 1, step=MINUTE, s=ForecastSettings()) == (0.0, 0.0)


def test_the_last_hour_lifts_the_forecast_by_the_share_that_persists() -> None:
    values = np.tile(100 + 50 * np.sin(2 * np.pi * np.arange(1440) / 1440), 3)
    values[-60:] *= 1.2  # the last hour 20% above the same hour yesterday
    choice = _Choice(
        "seasonal-naive-day", {}, np.zeros(0), {}, 0, ("seasonal-naive-day",), (1.0, 0.5)
    )
    lift = _lift(values, 2 * 1440, choice, step=MINUTE, period="day", s=ForecastSettings())
    assert lift[:360] == pytest.approx(1.2)
    assert lift[360:1440] == pytest.approx(1.2**0.5)
    assert np.all(lift[1440:] == 1.0)  # past the last lead, the model's own forecast


def test_models_that_follow_the_level_are_not_reanchored() -> None:
    # a level that steps every 12 hours, the last step two hours before the end: the
    # level-profile follows it already, and re-anchoring it again would count it twice
    rng = np.random.default_rng(1)
    t = np.arange(10 * 1440)
    level = np.exp(np.cumsum(np.where(t % 720 == 600, rng.normal(0, 0.15, t.size), 0.0)))
    values = 100 * level * (1 + 0.5 * np.sin(2 * np.pi * t / 1440)) + rng.normal(0, 2, t.size)
    fc = fit_forecast(minutes(values.size), values, horizon=6 * 3600)
    assert fc.model == "level-profile"
    assert fc.persistence == ()
    assert fc.anchor == 1.0


def test_cli_reports_the_reanchoring_in_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared("crane-series-weekly.csv")
    assert main([str(path), "--horizon", "1d", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main([str(path), "--horizon", "1d"]) == 0
    lines = capsys.readouterr().out.splitlines()
    anchor = report["anchor"]
    assert anchor is not None  # weekly-profile, whose backtest shows the level persisting
    assert anchor["backtest_wape"] < report["backtest"]["wape"]
    line = next(line for line in lines if line.startswith("anchor"))
    assert f"at {anchor['ratio']:.4f} times" in line
    for span in anchor["persistence"]:
        assert (
            f"{span['share']:.3f} from {span['from'] / 3600:g}h to {span['to'] / 3600:g}h" in line
        )
    assert _percent(next(x for x in lines if "re-anchored WAPE" in x)) == pytest.approx(
        anchor["backtest_wape"], abs=5e-5
    )


def test_the_backtests_median_is_numpys_to_the_bit() -> None:
    # forecast._median takes the same order statistics as np.median and adds the middle two
    # as its mean does (from +0.0: a -0.0 median comes out 0.0), NaN included: every backtest
    # score and forecast depends on it
    from autoscaler.forecast import _median

    rng = np.random.default_rng(7)
    special = np.array([0.0, -0.0, 1.5, -1.5, 2.0, np.nan, np.inf, -np.inf, 1e-300, -1e300])
    for i in range(3000):
        n = int(rng.integers(1, 30))
        if i % 2:
            a = rng.choice(special, size=n)
        else:
            a = rng.normal(size=n) * 10.0 ** int(rng.integers(-5, 5))
        if i % 5 == 0:
            a = a[::2]  # a strided view
        with np.errstate(invalid="ignore"):
            want = float(np.median(a))
        got = _median(a)
        assert (math.isnan(got) and math.isnan(want)) or (
            got == want and math.copysign(1.0, got) == math.copysign(1.0, want)
        ), (a.tolist(), want, got)


def test_a_kept_day_profile_is_the_profile_of_the_same_data() -> None:
    # seasonal-profile and level-profile share one profile per cut, kept by the bytes of the
    # days it reads: equal data gives the kept array, other data its own profile
    from autoscaler.forecast import _day_profile, _days, _smooth

    rng = np.random.default_rng(3)
    day = 12
    train = rng.normal(size=5 * day)
    first = _day_profile(train, day, 3, 2)
    assert np.array_equal(first, _smooth(np.median(_days(train, day, 3), axis=0), 2))
    assert _day_profile(train.copy(), day, 3, 2) is first
    assert not first.flags.writeable
    changed = train.copy()
    changed[-1] += 1.0
    other = _day_profile(changed, day, 3, 2)
    assert np.array_equal(other, _smooth(np.median(_days(changed, day, 3), axis=0), 2))
    assert not np.array_equal(other, first)


def test_the_fourier_solve_is_scipys_cho_solve_to_the_bit() -> None:
    import scipy.linalg

    from autoscaler.forecast import _cho_solve

    rng = np.random.default_rng(5)
    for n in (1, 7, 70):
        a = rng.normal(size=(n + 3, n))
        chol, _ = scipy.linalg.cho_factor(a.T @ a + np.eye(n), lower=False, check_finite=False)
        b = rng.normal(size=n)
        want = scipy.linalg.cho_solve((chol, False), b, check_finite=False)
        got = _cho_solve(chol, b)
        assert got.tobytes() == want.tobytes()
        assert got.shape == want.shape
        assert _cho_solve(chol, b).tobytes() == want.tobytes()  # b was left as it was


def test_the_column_medians_are_numpys_to_the_bit() -> None:
    # forecast._column_medians (the day profiles, the median combination) partitions and
    # averages the middle rows as np.median(rows, axis=0) does, NaN columns included
    from autoscaler.forecast import _column_medians

    rng = np.random.default_rng(11)
    special = np.array([0.0, -0.0, 1.5, -1.5, 2.0, np.nan, np.inf, -np.inf, 1e-300, -1e300])
    for i in range(2000):
        shape = (int(rng.integers(1, 12)), int(rng.integers(1, 20)))
        if i % 2:
            a = rng.choice(special, size=shape)
        else:
            a = rng.normal(size=shape) * 10.0 ** int(rng.integers(-5, 5))
        if i % 5 == 0:
            a = a[:, ::2]  # a strided view
        with np.errstate(invalid="ignore"):
            want = np.median(a, axis=0)
            got = _column_medians(a)
        assert got.tobytes() == want.tobytes(), (a.tolist(), want, got)
