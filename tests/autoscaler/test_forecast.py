import json
import math
from pathlib import Path

import numpy as np
import pytest

from autoscaler.forecast import (
    DAY,
    Forecaster,
    SeasonalForecaster,
    StaticForecaster,
    backtest,
    detect_period,
    fit_forecast,
    read_series,
    wape,
)
from autoscaler.forecast_cli import main, parse_duration

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
T0 = 1_600_000_000.0
MINUTE = 60.0


def shared(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"shared data {path} not available")
    return path


def minutes(n: int) -> np.ndarray:
    return T0 + MINUTE * np.arange(n, dtype=np.float64)


# --- accuracy on the shared production series (targets from the issue) -----------------------


@pytest.mark.parametrize(
    ("name", "improvement"),
    [("crane-series-daily.csv", 0.20), ("crane-series-weekly.csv", 0.10)],
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
    assert fc.model == "robust-baseline"
    assert fc.point.size == 360
    assert np.all(np.isfinite(fc.point))
    assert np.all(fc.point >= 0.0)
    assert np.all(fc.upper >= fc.point)
    # flat at the recent level, not an extrapolated trend
    assert np.ptp(fc.point) == 0.0
    recent = values[-120:]
    assert recent.min() - 1.0 <= fc.point[0] <= recent.max() + 1.0


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
        ("", r"line 1: empty file"),
        ("time,value\n0,1\n", r"line 1: missing column\(s\) ts"),
        ("ts\n0\n", r"line 1: missing column\(s\) value"),
        ("ts,value\n0,1\n60,abc\n", r"line 3: value 'abc' is not a number"),
        ("ts,value\nnoon,1\n", r"line 2: ts 'noon' is not a number"),
        ("ts,value\n0,1\n60,nan\n", r"line 3: value 'nan' is not finite"),
        ("ts,value\n0,1\n120,1\n60,1\n", r"line 4: time goes backwards"),
        ("ts,value\n0,1\n60\n", r"line 3: expected 2 fields"),
        ("ts,value\n", r"no data rows"),
    ],
)
def test_read_series_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_series(path)
    assert str(path) in str(info.value)


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
    with pytest.raises(Exception, match="invalid duration"):
        parse_duration("2 days")


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared("crane-series-daily.csv")
    assert main([str(path), "--horizon", "1d", "--backtest", "2d", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    for key in ("period", "model", "coverage", "forecast", "upper"):
        assert key in report
    assert len(report["forecast"]) == len(report["upper"]) == 1440
    assert report["wape"] < min(
        report["wape_seasonal_naive_day"], report["wape_seasonal_naive_week"]
    )
    assert report["coverage"] >= 0.85
    assert all(u >= p >= 0 for p, u in zip(report["forecast"], report["upper"], strict=True))


def test_cli_text_without_backtest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.csv"
    path.write_text("ts,value\n" + "".join(f"{60 * i},{i % 7}\n" for i in range(300)))
    assert main([str(path), "--horizon", "30m"]) == 0
    out = capsys.readouterr().out
    assert "period   none" in out
    assert "model    robust-baseline" in out
    assert len(out.strip().splitlines()) == 5 + 30


def test_cli_reports_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("ts,value\n0,1\n60,x\n")
    assert main([str(path), "--horizon", "1h", "--json"]) == 2
    assert "line 3" in capsys.readouterr().err


def test_cli_refuses_a_horizon_beyond_a_year(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("ts,value\n" + "".join(f"{60 * i},{i % 7}\n" for i in range(300)))
    assert main([str(path), "--horizon", "2400000h"]) == 2  # 100,000 days, checked before fitting
    err = capsys.readouterr().err
    assert err.strip() == "error: --horizon: 100,000 days is more than 366 days"
