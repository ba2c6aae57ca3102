"""``spillover-autoscaler sweep GRID.yaml TRACE... --out DIR``: what-if grids over traces.

    spillover-autoscaler sweep grid.yaml ../shared/data/alibaba-openb-pods.csv --out sweep-out

Every cell of the grid (``autoscaler.replay.grid``) is replayed on every trace with the Spillover
variant; the baselines run once per trace on the grid's base scenario.  Writes ``sweep.csv``,
``sweep.json``, ``summary.md`` (the Pareto front of cost against pending p99 and a
recommendation) and ``pareto.png`` to ``--out``, plus ``cells.jsonl``, the log that lets a rerun
skip finished replays.  Traces are read as ``replay`` reads them, with the same options
(``--per-replica`` and the other series options, ``--owners`` and the other openb options);
replays read with other options are not reused.  Replays run in a local process pool (``--workers``, default: the CPUs
this process may use), or as Ray tasks with ``--ray-address ADDRESS`` (or ``RAY_ADDRESS``;
``local`` starts Ray here); Ray is the extra ``pip install 'spillover[sweep]'``.

A progress bar runs on a terminal only.  Ctrl-C stops cleanly: finished replays stay in the log and
in the tables, and the same command continues (exit status 130).  A bad grid or trace stops with
one line naming the file, the line and the field (exit status 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from extender.commandline import fail, plain

from .replay.cli import FORMATS, add_import_options

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sweep",
        help="replay a grid of scenario changes over traces: Pareto front and recommendation",
        description=plain(__doc__),
    )
    p.add_argument("grid", help="grid YAML (axes of scenario changes)")
    p.add_argument("traces", nargs="+", metavar="TRACE", help="trace files")
    p.add_argument("--out", required=True, help="output directory (a rerun resumes it)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="trace format (auto: by each file's first line)",
    )
    p.add_argument("--workers", type=int, default=0, help="local processes (0: every CPU)")
    p.add_argument(
        "--ray-address",
        default=os.environ.get("RAY_ADDRESS", ""),
        help="run on Ray at this address ('local': start one here); default $RAY_ADDRESS",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    add_import_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from .replay.cli import import_options, load_trace
    from .replay.executors import ExecutorError, default_workers, make_executor
    from .replay.grid import GridError, load_grid
    from .replay.sweep import run_sweep, trace_inputs
    from .replay.threads import limit_blas_threads
    from .replay.trace import TraceError

    limit_blas_threads()
    try:
        grid = load_grid(args.grid)
        traces = trace_inputs(args.traces, args.format, import_options(args))
    except (GridError, TraceError) as err:
        return fail(err)
    if args.workers < 0:
        return fail(f"error: --workers: must be 0 (every CPU) or more, not {args.workers}")
    workers = args.workers or default_workers()
    try:
        executor = make_executor(workers=workers, ray_address=args.ray_address)
    except ExecutorError as err:
        return fail(f"error: {err}")
    try:
        outcome = run_sweep(
            grid,
            traces,
            out=Path(args.out),
            executor=executor,
            load=load_trace,
            progress=not args.quiet and sys.stderr.isatty(),
        )
    except (TraceError, ValueError) as err:
        return fail(err)
    if outcome.interrupted:
        print(
            f"interrupted: {len(outcome.rows)} of {outcome.total} replays done and kept in "
            f"{outcome.paths['log']}; run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    if not args.quiet:
        print(outcome.paths["markdown"].read_text())
        print(f"{outcome.ran} replays run, {outcome.reused} reused from {outcome.paths['log']}")
        for kind, path in outcome.paths.items():
            print(f"{kind:>8}: {path}")
    return 0
