"""``spillover-autoscaler forecast SERIES.csv --horizon 1d --backtest 2d [--json]``.

Backtests the forecaster on the last ``--backtest`` of the series (fitted on what comes before,
compared with seasonal-naive), then forecasts ``--horizon`` past the end of the whole series.
``autoscaler.cli`` mounts it through :func:`add_parser` and :func:`run`; ``main`` lets it run on
its own as ``python -m autoscaler.forecast_cli``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from typing import Any

from autoscaler.forecast import backtest, fit_forecast, read_series

__all__ = ["MAX_HORIZON", "add_parser", "main", "parse_duration", "run"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``30m``, ``6h``, ``1d``, ``2d``, ``1w`` (also ``90s``, ``1.5d``)."""
    m = _DURATION.match(text.lower())
    if m is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number and one of s, m, h, d, w (e.g. 6h, 2d)"
        )
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} must be positive")
    return seconds


MAX_HORIZON = 366 * 86_400.0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``forecast`` subcommand to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "forecast",
        help="backtest and forecast a demand series",
        description=__doc__.splitlines()[0] if __doc__ else None,
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
    return x if math.isfinite(x) else None


def run(args: argparse.Namespace) -> int:
    try:
        ts, values = read_series(args.series)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not 0.0 < args.quantile < 1.0:
        print(f"error: --quantile must be in (0, 1), got {args.quantile}", file=sys.stderr)
        return 2
    if args.horizon > MAX_HORIZON:
        # Checked before fitting: the forecast holds one value per step of the horizon.
        print(
            f"error: --horizon: {args.horizon / 86_400:,.0f} days is more than "
            f"{MAX_HORIZON / 86_400:.0f} days",
            file=sys.stderr,
        )
        return 2
    try:
        bt = (
            backtest(ts, values, holdout=args.backtest, quantile=args.quantile)
            if args.backtest is not None
            else None
        )
        fc = fit_forecast(ts, values, horizon=args.horizon, quantile=args.quantile)
    except ValueError as e:
        print(f"error: {args.series}: {e}", file=sys.stderr)
        return 2

    report: dict[str, Any] = {
        "series": str(args.series),
        "period": fc.period,
        "model": fc.model,
        "quantile": fc.quantile,
        "backtest_model": bt.forecast.model if bt else None,
        "wape": _finite(bt.wape) if bt else None,
        "wape_seasonal_naive_day": _finite(bt.wape_seasonal_naive_day) if bt else None,
        "wape_seasonal_naive_week": _finite(bt.wape_seasonal_naive_week) if bt else None,
        "coverage": bt.coverage if bt else None,
        "start": fc.start,
        "step": fc.step,
        "forecast": [round(float(x), 6) for x in fc.point],
        "upper": [round(float(x), 6) for x in fc.upper],
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(_text(report))
    return 0


def _text(r: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100.0 * x:.2f}%"

    lines = [
        f"series   {r['series']}",
        f"period   {r['period']}",
        f"model    {r['model']}",
    ]
    if r["backtest_model"] is not None:
        lines += [
            f"backtest model {r['backtest_model']}",
            f"  WAPE forecast                  {pct(r['wape'])}",
            f"  WAPE seasonal-naive (day)      {pct(r['wape_seasonal_naive_day'])}",
            f"  WAPE seasonal-naive (week)     {pct(r['wape_seasonal_naive_week'])}",
            f"  p{100 * r['quantile']:g} coverage                  {pct(r['coverage'])}",
        ]
    lines.append(f"forecast ({len(r['forecast'])} steps of {r['step']:g}s from {r['start']:.0f})")
    lines.append("ts,point,upper")
    for i, (p, u) in enumerate(zip(r["forecast"], r["upper"], strict=True)):
        lines.append(f"{r['start'] + i * r['step']:.0f},{p:.3f},{u:.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spillover-autoscaler forecast")
    _arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
