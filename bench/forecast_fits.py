"""CPU time of the forecast fits of one replay variant, and a digest of every fit's result.

Run: ``PYTHONPATH=. .venv/bin/python bench/forecast_fits.py [--variant spillover] [--trace FILE]
[--record FILE | --calls FILE] [--rounds 3] [--save FILE | --check FILE]``.

Replays the variant on the trace (default: the default Alibaba list) once, recording the arguments
of every ``fit_forecast`` call (the autoscaler's refits; the replay fits through
``replay.fits.SharedFits``, so each distinct history once), or reads them from ``--calls``
(written by ``--record``), so that two builds time the very same fits. Then it fits them all
``--rounds`` times and prints the process CPU seconds of each round and the best, and a digest of
every field of every ``Forecast`` (floats by their bits): a speed change of the forecaster must
leave the digest unchanged (``--save`` a run of main, ``--check`` yours; exit 1 on a difference).

The recording replaces ``autoscaler.forecast.fit_forecast`` for the one replay (the replay builds
its forecaster itself); the timed fits call the real one.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import pickle
import sys
import time
from pathlib import Path
from typing import Any

# bench/autoscaler.py would shadow the package: drop this folder from the path, as every bench does
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np  # noqa: E402

from autoscaler import forecast  # noqa: E402
from autoscaler.replay.threads import limit_blas_threads  # noqa: E402

Call = tuple[np.ndarray, np.ndarray, float, float, Any]


def record(variant: str, trace_path: str) -> list[Call]:
    from autoscaler.replay.cli import load_trace
    from autoscaler.replay.report import fluid_bound, variants
    from autoscaler.replay.scenario import load_scenario
    from autoscaler.replay.simulator import simulate

    calls: list[Call] = []
    real = forecast.fit_forecast

    def recording(ts: Any, values: Any, **kw: Any) -> forecast.Forecast:
        calls.append(
            (
                np.array(ts, np.float64),
                np.array(values, np.float64),
                kw["horizon"],
                kw.get("quantile", 0.9),
                kw.get("settings"),
            )
        )
        return real(ts, values, **kw)

    scenario = load_scenario(None)
    trace = load_trace(trace_path, "openb")
    chosen = [v for v in variants(scenario, fluid_bound(trace, scenario)) if v.name == variant]
    if not chosen:
        raise SystemExit(f"no variant {variant!r}")
    forecast.fit_forecast = recording
    try:
        simulate(trace, scenario, chosen[0])
    finally:
        forecast.fit_forecast = real
    return calls


def digest(fc: forecast.Forecast) -> str:
    """Every field of ``fc``, floats by their bits."""
    h = hashlib.blake2b(digest_size=16)
    scores, weights = sorted(fc.scores), sorted(fc.weights)
    h.update(repr((fc.period, fc.model, fc.cuts, fc.persistence, scores, weights)).encode())
    floats = [fc.start, fc.step, fc.quantile, fc.anchor, fc.anchored_wape]
    floats += [fc.scores[k] for k in scores] + [fc.weights[k] for k in weights]
    h.update(np.array(floats, np.float64).tobytes())
    h.update(fc.point.tobytes())
    h.update(fc.upper.tobytes())
    return h.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--variant", default="spillover")
    parser.add_argument("--trace", default=None, help="openb pod list (default: the Alibaba one)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--record", metavar="FILE", help="also write the recorded fits here")
    source.add_argument("--calls", metavar="FILE", help="read the fits --record wrote")
    parser.add_argument("--rounds", type=int, default=3)
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--save", metavar="FILE", help="write the digest")
    out.add_argument("--check", metavar="FILE", help="compare the digest with a saved one")
    args = parser.parse_args()
    limit_blas_threads()
    if args.calls:
        calls: list[Call] = pickle.loads(Path(args.calls).read_bytes())
    else:
        from autoscaler.replay.demo import data_file

        trace = args.trace or str(data_file("alibaba-openb-pods.csv"))
        calls = record(args.variant, trace)
        if args.record:
            Path(args.record).write_bytes(pickle.dumps(calls))

    def fit(call: Call) -> forecast.Forecast:
        ts, values, horizon, quantile, settings = call
        return forecast.fit_forecast(
            ts, values, horizon=horizon, quantile=quantile, settings=settings
        )

    fit(calls[0])  # imports, kernels loaded
    best = math.inf
    results: list[forecast.Forecast] = []
    for r in range(args.rounds):
        started = time.process_time()
        results = [fit(c) for c in calls]
        cpu = time.process_time() - started
        best = min(best, cpu)
        print(f"round {r}: {cpu:.3f} CPU s", flush=True)
    total = hashlib.blake2b(digest_size=16)
    for fc in results:
        total.update(digest(fc).encode())
    print(f"{len(calls)} fits, best {best:.3f} CPU s ({1e3 * best / len(calls):.2f} ms a fit)")
    print(f"digest {total.hexdigest()}")
    if args.save:
        Path(args.save).write_text(total.hexdigest() + "\n")
    if args.check:
        saved = Path(args.check).read_text().strip()
        if saved != total.hexdigest():
            print(f"DIFFERENT from {args.check}: {saved}")
            return 1
        print(f"same as {args.check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
