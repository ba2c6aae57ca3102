"""Forecast benchmark: accuracy against baselines on the shared series, and fit+predict time.

Run: ``.venv/bin/python bench/autoscaler_forecast.py [--no-append]``. For the daily and the
weekly series, holding out the last 2 days, prints WAPE of our forecast, of seasonal-naive
(same minute yesterday / last week) and of statsmodels Holt-Winters, the p90 coverage, and
the time of one ``fit_forecast`` on 14 days of one-minute data (target: <= 200 ms). Appends
a dated section to ``bench/RESULTS.md``.

Holt-Winters (additive trend and season) is fitted on 15-minute means, because statsmodels
needs one state per seasonal step (1,440 a day at one-minute resolution); its forecast is
held constant within each 15 minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from autoscaler.forecast import DAY, backtest, fit_forecast, read_series, wape

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SERIES = {"daily": "crane-series-daily.csv", "weekly": "crane-series-weekly.csv"}
HOLDOUT = 2 * DAY
BIN = 15  # minutes per Holt-Winters step


def holt_winters(train: np.ndarray, steps: int, season_minutes: int) -> np.ndarray:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    m = train.size // BIN
    y = train[train.size - m * BIN :].reshape(m, BIN).mean(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter
        model = ExponentialSmoothing(
            y,
            trend="add",
            damped_trend=True,
            seasonal="add",
            seasonal_periods=season_minutes // BIN,
            initialization_method="estimated",
        ).fit()
        coarse = np.asarray(model.forecast(-(-steps // BIN)))
    out: np.ndarray = np.maximum(np.repeat(coarse, BIN)[:steps], 0.0)
    return out


def time_fit(ts: np.ndarray, values: np.ndarray, repeats: int = 7) -> tuple[float, float]:
    """Median and best wall time (ms) of fit_forecast with a one-day horizon."""
    fit_forecast(ts, values, horizon=DAY)  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit_forecast(ts, values, horizon=DAY)
        runs.append(1000.0 * (time.perf_counter() - t0))
    return statistics.median(runs), min(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args(argv)

    header = (
        "| series | period | model | WAPE ours | seasonal-naive day | seasonal-naive week "
        "| Holt-Winters day | Holt-Winters week | ours vs best naive | p90 coverage "
        "| fit+predict 14 d (median / best) |"
    )
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for label, name in SERIES.items():
        ts, values = read_series(DATA / name)
        bt = backtest(ts, values, holdout=HOLDOUT)
        hold = bt.actual.size
        train = values[: values.size - hold]
        hw_day = wape(bt.actual, holt_winters(train, hold, 1440))
        hw_week = wape(bt.actual, holt_winters(train, hold, 7 * 1440))
        best_naive = min(bt.wape_seasonal_naive_day, bt.wape_seasonal_naive_week)
        n14 = 14 * 1440
        median_ms, best_ms = time_fit(ts[-n14:], values[-n14:])
        rows.append(
            f"| {label} | {bt.forecast.period} | {bt.forecast.model} | {bt.wape:.4f} "
            f"| {bt.wape_seasonal_naive_day:.4f} | {bt.wape_seasonal_naive_week:.4f} "
            f"| {hw_day:.4f} | {hw_week:.4f} | {100 * (bt.wape / best_naive - 1):+.1f}% "
            f"| {100 * bt.coverage:.1f}% | {median_ms:.1f} / {best_ms:.1f} ms |"
        )
    table = "\n".join(rows)
    print(table)

    if not args.no_append:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        section = (
            f"\n## Autoscaler forecast — {stamp}\n\n"
            f"`bench/autoscaler_forecast.py` on {platform.machine()}, Python "
            f"{platform.python_version()}. Last 2 days held out; WAPE = sum |error| / sum "
            "actual. Targets: ours at least 20% (daily) / 10% (weekly) below the better "
            "seasonal-naive, p90 coverage >= 85%, fit+predict <= 200 ms on 14 days of "
            "one-minute data. Holt-Winters: statsmodels, additive damped trend and season, "
            f"on {BIN}-minute means.\n\n{table}\n"
        )
        results = ROOT / "bench" / "RESULTS.md"
        if not results.exists():
            results.write_text("# Benchmark results\n")
        with results.open("a") as f:
            f.write(section)
        print(f"appended to {results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
