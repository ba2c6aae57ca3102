"""``spillover-autoscaler forecast SERIES.csv --horizon 1d --backtest 2d [--json]``.

Forecasts ``--horizon`` past the end of the series and says which model it chose and why: the
WAPE of every candidate in the rolling-origin backtest, the two seasonal-naive forecasts among
them, on the same cut points; on a seasonal series whose backtest shows that a level shift
persists, how the forecast was re-anchored to the last hour (``anchor``). With ``--backtest 2d`` it also holds out the last two days, fits on
what comes before and scores that forecast (and seasonal-naive) on them. ``--json`` prints the
same report as one JSON object; the text output is that object, formatted.
``autoscaler.cli`` mounts it through :func:`add_parser` and :func:`run`; ``main`` lets it run on
its own as ``python -m autoscaler.forecast_cli``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from autoscaler import nodegroup
from autoscaler.forecast import Backtest, Forecast, backtest, fit_forecast, read_series
from extender.commandline import Parser, fail, file_problem, plain, run_main

__all__ = ["MAX_HORIZON", "add_parser", "main", "parse_duration", "report", "run", "text"]

Report = dict[str, Any]


def parse_duration(text: str) -> float:
    """Seconds in ``30m``, ``6h``, ``1d``, ``1w``, ``1h30m`` (the groups file's grammar,
    ``nodegroup.parse_duration``; case and blanks ignored); must be positive."""
    try:
        seconds = nodegroup.parse_duration("".join(text.lower().split()), "duration")
    except nodegroup.ConfigError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use numbers with s, m, h, d, w (e.g. 6h, 2d, 1h30m)"
        ) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} must be positive")
    return seconds


MAX_HORIZON = 366 * 86_400.0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``forecast`` subcommand to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "forecast",
        help="backtest and forecast a demand series",
        description=plain(__doc__),
    )
    _arguments(p)
    p.set_defaults(func=run)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("series", help="CSV file with a 'ts,value' header, ts in unix seconds")
    p.add_argument("--horizon", type=parse_duration, default=86_400.0, help="e.g. 6h, 1d")
    p.add_argument(
        "--backtest",
        type=parse_duration,
        default=None,
        help="hold out this much of the end of the series and score the forecast on it",
    )
    p.add_argument("--quantile", type=float, default=0.9, help="upper quantile (default 0.9)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _finite(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def report(series: str, fc: Forecast, holdout: Backtest | None, seconds: float | None) -> Report:
    """The command's output as one JSON-ready dict; the text output prints exactly this."""
    scores = fc.scores
    return {
        "series": series,
        "period": fc.period,
        "model": fc.model,
        "members": {k: round(w, 6) for k, w in fc.weights.items()},
        "quantile": fc.quantile,
        "backtest": {
            "cuts": fc.cuts,
            "wape": _finite(fc.backtest_wape),
            "wape_seasonal_naive_day": _finite(scores.get("seasonal-naive-day", math.nan)),
            "wape_seasonal_naive_week": _finite(scores.get("seasonal-naive-week", math.nan)),
            "candidates": {k: _finite(v) for k, v in sorted(scores.items(), key=lambda kv: kv[1])},
        },
        "anchor": None
        if not fc.persistence
        else {
            "ratio": round(fc.anchor, 6),
            "backtest_wape": _finite(fc.anchored_wape),
            "persistence": [
                {"from": lo, "to": hi, "share": round(share, 6)} for lo, hi, share in fc.persistence
            ],
        },
        "holdout": None
        if holdout is None
        else {
            "seconds": seconds,
            "model": holdout.forecast.model,
            "wape": _finite(holdout.wape),
            "wape_seasonal_naive_day": _finite(holdout.wape_seasonal_naive_day),
            "wape_seasonal_naive_week": _finite(holdout.wape_seasonal_naive_week),
            "coverage": round(holdout.coverage, 6),
        },
        "start": fc.start,
        "step": fc.step,
        "forecast": [round(float(x), 6) for x in fc.point],
        "upper": [round(float(x), 6) for x in fc.upper],
    }


def run(args: argparse.Namespace) -> int:
    try:
        ts, values = read_series(args.series)
    except (OSError, UnicodeDecodeError) as e:
        return fail(file_problem(args.series, e))
    except ValueError as e:
        return fail(e)
    if not 0.0 < args.quantile < 1.0:
        return fail(f"error: --quantile: must be in (0, 1), got {args.quantile}")
    if args.horizon > MAX_HORIZON:
        # Checked before fitting: the forecast holds one value per step of the horizon.
        return fail(
            f"error: --horizon: {args.horizon / 86_400:,.0f} days is more than "
            f"{MAX_HORIZON / 86_400:.0f} days"
        )
    try:
        bt = (
            backtest(ts, values, holdout=args.backtest, quantile=args.quantile)
            if args.backtest is not None
            else None
        )
        fc = fit_forecast(ts, values, horizon=args.horizon, quantile=args.quantile)
    except ValueError as e:
        return fail(f"{args.series}: {e}")
    r = report(str(args.series), fc, bt, args.backtest)
    print(json.dumps(r) if args.json else text(r))
    return 0


def text(r: Report) -> str:
    """The report as text: the same numbers as the JSON, as percentages with two decimals."""

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100.0 * x:.2f}%"

    b = r["backtest"]
    members = ", ".join(f"{k} {w:.3g}" for k, w in r["members"].items())
    lines = [
        f"series   {r['series']}",
        f"period   {r['period']}",
        f"model    {r['model']}" + (f" ({members})" if members else ""),
    ]
    if b["cuts"]:
        lines += [
            f"backtest {b['cuts']} cut point{'s' if b['cuts'] > 1 else ''}, WAPE of each "
            "candidate (the lowest is the model)",
            *(f"  {name:<26} {pct(w)}" for name, w in b["candidates"].items()),
            f"  model WAPE                 {pct(b['wape'])}",
            f"  seasonal-naive (day)       {pct(b['wape_seasonal_naive_day'])}",
            f"  seasonal-naive (week)      {pct(b['wape_seasonal_naive_week'])}",
        ]
    else:
        lines.append("backtest none (history too short)")
    a = r["anchor"]
    if a is not None:
        spans = ", ".join(
            f"{p['share']:.3f} from {_span(p['from'])} to {_span(p['to'])}"
            for p in a["persistence"]
        )
        lines += [
            f"anchor   the last hour at {a['ratio']:.4f} times the model's level; the share that "
            f"persisted in the backtest: {spans}",
            f"  re-anchored WAPE           {pct(a['backtest_wape'])}",
        ]
    h = r["holdout"]
    if h is not None:
        lines += [
            f"holdout  last {h['seconds']:g}s, fitted on the data before it: model {h['model']}",
            f"  WAPE forecast              {pct(h['wape'])}",
            f"  seasonal-naive (day)       {pct(h['wape_seasonal_naive_day'])}",
            f"  seasonal-naive (week)      {pct(h['wape_seasonal_naive_week'])}",
            f"  p{100 * r['quantile']:g} coverage               {pct(h['coverage'])}",
        ]
    lines.append(f"forecast ({len(r['forecast'])} steps of {r['step']:g}s from {r['start']:.0f})")
    lines.append("ts,point,upper")
    for i, (p, u) in enumerate(zip(r["forecast"], r["upper"], strict=True)):
        lines.append(f"{r['start'] + i * r['step']:.0f},{p:.3f},{u:.3f}")
    return "\n".join(lines)


def _span(seconds: float) -> str:
    return f"{seconds / 3600:g}h"


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="spillover-autoscaler forecast", description=plain(__doc__))
    _arguments(parser)
    return run_main(lambda: run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
