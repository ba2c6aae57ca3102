"""Forecast benchmark: every shared series against seasonal-naive, coverage, fit+predict time.

Run: ``.venv/bin/python bench/autoscaler_forecast.py [--no-append] [--holt-winters] [--shifts 1,2]
[--refit 6]``.
For each series in ``../shared/data`` (the two crane-series-*.csv and crane/*.csv), holding out
the last 2 days, prints the period and model chosen, the WAPE of our forecast and of
seasonal-naive (same time yesterday / last week), the ratio to the better seasonal-naive chosen
in hindsight, the p90 coverage of the upper band, and the time of one backtest (fit on all but
the last two days plus a two-day forecast). Then the same ratio and coverage with the two
held-out days moved ``--shifts`` days earlier (the series truncated there; left out where under
three days of training would remain): a change that helps one holdout only does not generalise.
``--shifts 1,2,3,4,5,6,7,8`` gives the wider check (94 holdouts) with one line pooling them all.
``--refit 6`` (hours, at most 24) adds the same holdout at the end forecast as the replay forecasts
it: refitted every 6 hours, each fit scored until the next, against seasonal-naive with the same
information (``autoscaler.forecast.backtest_refit``).
Then the geometric mean of the ratios and the time of one ``fit_forecast`` on 14 days of
one-minute data with a one-day horizon (target: <= 200 ms).
Appends a dated section to ``bench/RESULTS.md``.

``--holt-winters`` adds statsmodels Holt-Winters (additive damped trend and season, on
15-minute means: statsmodels needs one state per seasonal step) as a yardstick; it is not part of
the product.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

# bench/autoscaler.py (another benchmark) would shadow the package when run as a script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from autoscaler.forecast import (  # noqa: E402
    DAY,
    backtest,
    backtest_moved,
    backtest_refit,
    fit_forecast,
    read_series,
    wape,
)
from autoscaler.replay.threads import limit_blas_threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
HOLDOUT = 2 * DAY
BIN = 15  # minutes per Holt-Winters step


def series() -> list[Path]:
    return [
        DATA / "crane-series-daily.csv",
        DATA / "crane-series-weekly.csv",
        *sorted((DATA / "crane").glob("*.csv"), key=lambda p: int(p.stem.removeprefix("input"))),
    ]


def holt_winters(train: np.ndarray, steps: int, season: int, per_bin: int) -> np.ndarray:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    m = train.size // per_bin
    y = train[train.size - m * per_bin :].reshape(m, per_bin).mean(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter
        model = ExponentialSmoothing(
            y,
            trend="add",
            damped_trend=True,
            seasonal="add",
            seasonal_periods=season // per_bin,
            initialization_method="estimated",
        ).fit()
        coarse = np.asarray(model.forecast(-(-steps // per_bin)))
    out: np.ndarray = np.maximum(np.repeat(coarse, per_bin)[:steps], 0.0)
    return out


def geometric_mean(ratios: list[float]) -> float:
    return math.exp(float(np.mean(np.log(ratios)))) if ratios else math.nan


SHORT = 10.0  # days of training before the held-out two under which a history is short


def pooled(ratios: list[float], coverages: list[float], trained: list[float]) -> str:
    """One line on every holdout scored: the geometric mean of the ratios (over those with a
    finite one: a ratio is infinite where a seasonal-naive was exact and the forecast not), how
    many were more than 10% worse than the better seasonal-naive, how many infinite; the same
    mean over the short histories (``trained``, days before each holdout, under ``SHORT``); the
    mean p90 coverage and how many holdouts it put in 85-95%."""
    finite = [r for r in ratios if math.isfinite(r)]
    short = [r for r, d in zip(ratios, trained, strict=True) if d < SHORT and math.isfinite(r)]
    return (
        f"All {len(ratios)} holdouts above (at the end and moved): geometric mean of the ratios "
        f"{geometric_mean(finite):.3f}; more than 10% worse than the better seasonal-naive: "
        f"{sum(r > 1.1 for r in ratios)}; a seasonal-naive exact (WAPE 0) and ours not: "
        f"{len(ratios) - len(finite)} (left out of the mean); the {len(short)} with under "
        f"{SHORT:g} days of history before the held-out two (finite): {geometric_mean(short):.3f}. "
        "p90 coverage: "
        f"{100 * statistics.mean(coverages):.1f}% pooled, "
        f"{100 * statistics.median(coverages):.1f}% median; in 85-95%: "
        f"{sum(0.85 <= c <= 0.95 for c in coverages)} holdouts."
    )


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
    parser.add_argument("--holt-winters", action="store_true", help="add the statsmodels yardstick")
    parser.add_argument(
        "--shifts",
        default="1,2",
        help="also hold out the two days ending this many days earlier (comma-separated; '' for none)",
    )
    parser.add_argument(
        "--refit",
        default="",
        help="also forecast the holdout refitted every this many hours (comma-separated)",
    )
    args = parser.parse_args(argv)
    refits = [float(x) for x in args.refit.split(",") if x.strip()]
    shifts = [int(x) for x in args.shifts.split(",") if x.strip()]
    limit_blas_threads()

    header = (
        "| series | days | step | period | model | WAPE ours | seasonal-naive day "
        "| seasonal-naive week | ratio to the better naive | p90 coverage | backtest cuts "
        "| fit+predict ms |"
    )
    if args.holt_winters:
        header += " Holt-Winters day | Holt-Winters week |"
    rows = [header, "|" + " --- |" * (header.count("|") - 1)]
    ratios, coverages = [], []
    moved: dict[int, list[tuple[float, float] | None]] = {k: [] for k in shifts}
    trained: dict[int, list[float]] = {k: [] for k in [0, *shifts]}  # days before each holdout
    for path in series():
        ts, values = read_series(path)
        t0 = time.perf_counter()
        bt = backtest(ts, values, holdout=HOLDOUT)
        ms = 1000.0 * (time.perf_counter() - t0)
        fc = bt.forecast
        ratio = bt.ratio
        ratios.append(ratio)
        for k in shifts:
            early = backtest_moved(ts, values, days=k, holdout=HOLDOUT)
            moved[k].append(None if early is None else (early.ratio, early.coverage))
        coverages.append(bt.coverage)
        days = (ts[-1] - ts[0] + fc.step) / DAY
        for k in trained:
            trained[k].append(days - k - HOLDOUT / DAY)
        row = (
            f"| {path.name} | {days:.1f} | {fc.step:g} s | {fc.period} | {fc.model} "
            f"| {bt.wape:.4f} | {bt.wape_seasonal_naive_day:.4f} "
            f"| {bt.wape_seasonal_naive_week:.4f} | {ratio:.3f} | {100 * bt.coverage:.1f}% "
            f"| {fc.cuts} | {ms:.0f} |"
        )
        if args.holt_winters:
            train = values[: values.size - bt.actual.size]
            per_bin = round(BIN * 60 / fc.step)
            day = round(DAY / fc.step)
            hw = [
                wape(bt.actual, holt_winters(train, bt.actual.size, season, per_bin))
                if train.size >= 2 * season
                else math.nan
                for season in (day, 7 * day)
            ]
            row += f" {hw[0]:.4f} | {hw[1]:.4f} |"
        rows.append(row)
    geomean = geometric_mean(ratios)
    if shifts:
        head = (
            "| series | ratio, holdout at the end | coverage | "
            + " | ".join(f"ratio, {k} day{'s' * (k > 1)} earlier | coverage" for k in shifts)
            + " | mean coverage, all holdouts"
        )
        lines = [head + " |", "|" + " --- |" * (head.count("|"))]
        for i, path in enumerate(series()):
            cells = [
                "n/a | n/a" if cell is None else f"{cell[0]:.3f} | {100 * cell[1]:.1f}%"
                for cell in (moved[k][i] for k in shifts)
            ]
            mine = [coverages[i]] + [cell[1] for k in shifts if (cell := moved[k][i]) is not None]
            lines.append(
                f"| {path.name} | {ratios[i]:.3f} | {100 * coverages[i]:.1f}% | "
                + " | ".join(cells)
                + f" | {100 * statistics.mean(mine):.1f}% |"
            )
        scored = {k: [cell for cell in moved[k] if cell is not None] for k in shifts}
        means = [
            f"{geometric_mean([r for r, _ in scored[k] if math.isfinite(r)]):.3f} | "
            f"{100 * statistics.median(c for _, c in scored[k]):.1f}% (median)"
            for k in shifts
        ]
        everywhere = coverages + [c for k in shifts for _, c in scored[k]]
        lines.append(
            f"| geometric mean (finite) | {geomean:.3f} | "
            f"{100 * statistics.median(coverages):.1f}% (median) | "
            + " | ".join(means)
            + f" | {100 * statistics.mean(everywhere):.1f}% (pooled) |"
        )
        rows += [
            "",
            *lines,
            "",
            pooled(
                ratios + [r for k in shifts for r, _ in scored[k]],
                everywhere,
                trained[0]
                + [
                    d
                    for k in shifts
                    for d, cell in zip(trained[k], moved[k], strict=True)
                    if cell is not None
                ],
            ),
        ]
    if refits:
        head = "| series | ratio, one origin | " + " | ".join(
            f"ratio, refitted every {h:g} h | coverage | model (most fits)" for h in refits
        )
        lines = [head + " |", "|" + " --- |" * head.count("|")]
        again: dict[float, list[float]] = {h: [] for h in refits}
        for i, path in enumerate(series()):
            ts, values = read_series(path)
            cells = []
            for h in refits:
                bt = backtest_refit(ts, values, every=h * 3600.0, holdout=HOLDOUT)
                again[h].append(bt.ratio)
                cells.append(f"{bt.ratio:.3f} | {100 * bt.coverage:.1f}% | {bt.forecast.model}")
            lines.append(f"| {path.name} | {ratios[i]:.3f} | " + " | ".join(cells) + " |")
        lines.append(
            f"| geometric mean | {geomean:.3f} | "
            + " | ".join(f"{geometric_mean(again[h]):.3f} | |" for h in refits)
            + " |"
        )
        rows += ["", *lines]
    ts, values = read_series(DATA / "crane-series-daily.csv")
    n14 = 14 * 1440
    median_ms, best_ms = time_fit(ts[-n14:], values[-n14:])
    table = "\n".join(rows)
    summary = (
        f"Geometric mean of the ratios: {geomean:.3f} (target <= 0.8); series no worse than the "
        f"better seasonal-naive: {sum(r <= 1.0 for r in ratios)} of {len(ratios)}, within 1%: "
        f"{sum(r <= 1.01 for r in ratios)}. fit+predict, 14 days of one-minute data, one-day "
        f"horizon: {median_ms:.0f} ms median, {best_ms:.0f} ms best of 7 (target <= 200 ms). "
        f"Median p90 coverage: {100 * statistics.median(coverages):.1f}% (target 85-95%)."
    )
    print(table)
    print()
    print(summary)

    if not args.no_append:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        section = (
            f"\n## Autoscaler forecast — {stamp}\n\n"
            f"`bench/autoscaler_forecast.py` on {platform.machine()}, Python "
            f"{platform.python_version()}, one BLAS thread, 2 cores shared with other jobs "
            f"(load average {load} at the end of the run: a loaded machine). Last 2 days held "
            "out; WAPE = sum |error| / sum actual; ratio = ours / the better seasonal-naive "
            "chosen in hindsight; fit+predict = one backtest (fit on all but the last two days, "
            f"forecast two days).\n\n{table}\n\n{summary}\n"
        )
        results = ROOT / "bench" / "RESULTS.md"
        with results.open("a") as f:
            f.write(section)
        print(f"appended to {results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
