"""``make demo``: replay the Alibaba GPU trace and a crane demand series with the default scenario.

Reads ``../shared/data/`` next to the project when it is there, else the copies bundled in
``autoscaler/replay/data/``; writes ``summary.md``, ``summary.json``, ``actions.jsonl`` and
``replay.png`` per trace under ``--out`` (default ``replay-out/``) and prints where they are.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from extender.model import Resources

from .threads import limit_blas_threads
from .trace import Trace

__all__ = ["data_file", "main"]

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = Path(__file__).parent / "data"
REPLICA = Resources(cpu_milli=2000, memory=8 * 2**30, pods=1)
PER_REPLICA = (
    20.0  # demand units one 2 vCPU / 8 GiB replica serves (series peak ~940: ~47 replicas)
)


def data_file(name: str) -> Path:
    """``../shared/data/NAME`` if present, else the bundled copy."""
    shared = ROOT.parent / "shared" / "data" / name
    return shared if shared.is_file() else BUNDLED / name


def main(argv: list[str] | None = None) -> int:
    from .cli import progress_bar, write_outputs
    from .importers import import_openb, import_series
    from .report import compare, fluid_bound, variants
    from .scenario import load_scenario

    parser = argparse.ArgumentParser(prog="python -m autoscaler.replay.demo")
    parser.add_argument("--out", default="replay-out")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    limit_blas_threads()
    scenario = load_scenario()
    openb = data_file("alibaba-openb-pods.csv")
    crane = data_file("crane-series-daily.csv")
    inputs: list[tuple[str, Path, Callable[[], Trace]]] = [
        ("alibaba-openb", openb, lambda: import_openb(openb)),
        (
            "crane-daily",
            crane,
            lambda: import_series(crane, per_replica=PER_REPLICA, requests=REPLICA),
        ),
    ]
    out = Path(args.out)
    written = []
    for name, path, load in inputs:
        started = time.perf_counter()
        trace = load()
        n = len(variants(scenario, fluid_bound(trace, scenario)))
        tick, bar = progress_bar(len(trace.events) * n, args.quiet)
        try:
            comparison = compare(trace, scenario, name=f"{name} ({path.name})", progress=tick)
        finally:
            if bar is not None:
                bar.close()
        paths = write_outputs(comparison, out / name)
        written.append((name, paths, time.perf_counter() - started))
        if not args.quiet:
            print(paths["markdown"].read_text())
    print("Replay outputs:")
    for name, paths, seconds in written:
        print(f"  {name} ({seconds:.1f} s):")
        for kind, path in paths.items():
            print(f"    {kind:>8}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
