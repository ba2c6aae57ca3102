"""Run a grid of scenarios over traces: one Spillover replay per cell and trace, baselines once.

The work is a list of tasks, each one replay: ``(trace, cell)`` for the Spillover variant of the
cell's scenario, and ``(trace, baseline)`` for every baseline of the grid's base scenario.  Each
task has a key (a hash of the trace's bytes and the options it is read with, the base scenario,
the cell's values and the variant), and every finished task is appended as one JSON line to
``OUT/cells.jsonl`` at once, so that

- Ctrl-C stops the executor and keeps every finished replay (the tables are written from them);
- a rerun with the same ``--out`` runs only the tasks whose key is not in the log; a changed
  trace, scenario or import option changes the keys, so stale rows are never reused.

From the log come ``sweep.csv`` and ``sweep.json`` (a row per replay, in grid order, so every
executor writes the same table), ``summary.md`` (the Pareto front and the recommendation,
``autoscaler.replay.frontier``) and ``pareto.png``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .executors import Executor, PoolExecutor
from .frontier import (
    METRICS,
    aggregate,
    load_plotting,
    plot_front,
    summary_markdown,
    table_csv,
    table_json,
)
from .grid import Cell, Grid, format_value
from .report import (
    NO_BOUND,
    Bound,
    kept_bound,
    result_row,
    used_groups,
    variant_of,
    variants,
)
from .results import Result, Variant
from .scenario import Scenario, scenario_from_dict
from .simulator import simulate
from .trace import IMPORT_DEFAULTS, ImportOptions, Trace, TraceError, detect_format

__all__ = [
    "LOG",
    "SweepOutcome",
    "Task",
    "TraceInput",
    "metrics",
    "plan_tasks",
    "run_sweep",
    "run_task",
    "simulate_variants",
]

LOG = "cells.jsonl"


@dataclass(frozen=True, slots=True)
class TraceInput:
    name: str  # shown in the tables (the file name; the path when two files share a name)
    path: str
    format: str  # jsonl | openb | series
    digest: str  # of the file's bytes, the format and the options it is read with
    options: ImportOptions = IMPORT_DEFAULTS


@dataclass(frozen=True, slots=True)
class Task:
    key: str
    trace: str
    kind: str  # "spillover" | "baseline"
    variant: str
    cell: Cell | None = None


@dataclass(frozen=True, slots=True)
class TraceJob:
    """What every task on one trace needs; shipped to each worker once."""

    trace: Trace
    grid: Grid
    base: Scenario
    used: tuple[str, ...]  # groups of the base fluid bound: where headroom goes


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    rows: list[dict[str, Any]]
    ran: int  # replays run by this invocation
    reused: int  # replays found in the log
    total: int
    interrupted: bool
    paths: Mapping[str, Path]


def trace_inputs(
    paths: Sequence[str], fmt: str, options: ImportOptions = IMPORT_DEFAULTS
) -> list[TraceInput]:
    """The traces at ``paths``; the digest of each covers the ``options`` its format reads with
    (a log row made with other options is not reused)."""
    names = [Path(p).name for p in paths]
    out = []
    for p, name in zip(paths, names, strict=True):
        f = detect_format(p) if fmt == "auto" else fmt
        try:
            data = Path(p).read_bytes()
        except OSError as err:
            raise TraceError(f"{p}: {err.strerror or err}") from None
        digest = hashlib.sha256(data + f.encode()).hexdigest()[:16]
        if options.of_format(f):
            digest = _key(digest, options.of_format(f))
        out.append(TraceInput(name if names.count(name) == 1 else p, p, f, digest, options))
    return out


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def plan_tasks(grid: Grid, traces: Sequence[TraceInput], baselines: Sequence[str]) -> list[Task]:
    """Every replay of the sweep, in table order: per trace, the cells, then the baselines."""
    tasks = []
    cells = grid.cells()
    for t in traces:
        for cell in cells:
            values = [[k, v] for k, v in cell.values]
            tasks.append(
                Task(
                    _key(t.digest, grid.digest, values, "spillover"),
                    t.name,
                    "spillover",
                    "spillover",
                    cell,
                )
            )
        for name in baselines:
            tasks.append(Task(_key(t.digest, grid.digest, name), t.name, "baseline", name))
    return tasks


def metrics(r: Result) -> dict[str, Any]:
    """The sweep's columns of one replay: the report's numbers, spot interruptions apart."""
    row = {k: v for k, v in result_row(r).items() if k in METRICS}
    row["interruptions"] = sum(1 for a in r.actions if a.kind == "interrupted")
    row["scaling_actions"] -= row["interruptions"]
    return row


def describe(task: Task, grid: Grid) -> dict[str, Any]:
    """What a row says about its replay, from the current grid (a log row may be older)."""
    row: dict[str, Any] = {
        "key": task.key,
        "trace": task.trace,
        "kind": task.kind,
        "variant": task.variant,
        "cell": -1 if task.cell is None else task.cell.index,
        "label": task.variant if task.cell is None else task.cell.label_of(grid.varying()),
    }
    for axis, value in task.cell.values if task.cell is not None else ():
        row[axis] = format_value(value)
    return row


def run_task(job: TraceJob, task: Task) -> dict[str, Any]:
    """One replay (in a worker): the task's row, metrics included."""
    if task.cell is not None:
        scenario = job.grid.scenario(task.cell)
        spill = variants(scenario, NO_BOUND)[0]
        headroom = int(task.cell.value("headroom", 0))
        variant = replace(spill, headroom=headroom, headroom_groups=job.used if headroom else ())
    else:
        scenario = job.base
        variant = variant_of(job.trace, scenario, task.variant)
    return describe(task, job.grid) | metrics(simulate(job.trace, scenario, variant))


def _expected_work(v: Variant) -> tuple[bool, bool, int]:
    """Sorts the variants that take longest first (a rough guess: nothing depends on it)."""
    return (not (v.forecast and v.autoscaling), not v.autoscaling, -v.headroom)


def _replay_part(job: tuple[Trace, Scenario], variant: str | None) -> Result | Bound:
    """One task of ``simulate_variants``: the named variant's replay, or (``None``) the bound."""
    trace, scenario = job
    if variant is None:
        return kept_bound(trace, scenario)
    return simulate(trace, scenario, variant_of(trace, scenario, variant))


def simulate_variants(
    trace: Trace,
    scenario: Scenario,
    *,
    executor: Executor,
    done: Callable[[str], None] | None = None,
) -> tuple[Bound, list[Result]]:
    """The fluid bound and every variant's replay on ``executor``, the results in the order of
    ``report.variants`` (as a serial run); ``done`` gets each variant's name as it ends.

    The replays start longest first (the forecast's, then the autoscaled ones, most spare nodes
    first), so the last to finish is a short one.  Spillover's, the longest, does not depend on
    the bound: it starts at once, and the bound is the next task; the worker that computes it
    keeps it for the baselines it replays next (``report.variant_of``).
    """
    if isinstance(executor, PoolExecutor):
        from autoscaler.kernels import warm_up

        warm_up()  # once, before the workers fork, instead of once in every worker
    table = variants(scenario, NO_BOUND)  # names and kinds: none of them depends on the bound
    order = sorted(range(len(table)), key=lambda i: _expected_work(table[i]))
    parts = [order[0], None, *order[1:]]
    tasks = [("job", None if i is None else table[i].name) for i in parts]
    bound: Bound | None = None
    results: list[Result | None] = [None] * len(table)
    for k, value in executor.map_unordered(_replay_part, tasks, {"job": (trace, scenario)}):
        i = parts[k]
        if i is None:
            bound = value
            continue
        results[i] = value
        if done is not None:
            done(table[i].name)
    out = [r for r in results if r is not None]
    assert bound is not None
    assert len(out) == len(table)
    return bound, out


# -- the log ---------------------------------------------------------------------------------------
def read_log(path: Path) -> dict[str, dict[str, Any]]:
    """Finished rows by key; a torn last line (a kill mid-write) is ignored."""
    done: dict[str, dict[str, Any]] = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return done
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("key"), str):
            done[row["key"]] = row
    return done


def _atomic_write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_tables(
    rows: Sequence[Mapping[str, Any]],
    *,
    grid: Grid,
    traces: Sequence[TraceInput],
    target_p99: float,
    total: int,
    out: Path,
) -> dict[str, Path]:
    axes = [name for name, _ in grid.axes]
    points = aggregate(rows)
    paths = {
        "csv": out / "sweep.csv",
        "json": out / "sweep.json",
        "markdown": out / "summary.md",
        "plot": out / "pareto.png",
    }
    _atomic_write(paths["csv"], table_csv(rows, axes))
    _atomic_write(paths["json"], table_json(rows, axes))
    _atomic_write(
        paths["markdown"],
        summary_markdown(
            grid=Path(grid.path).name,
            scenario=grid.scenario_name,
            traces=[t.name for t in traces],
            points=points,
            target_p99=target_p99,
            cells_done=len(rows),
            cells_total=total,
        ),
    )
    tmp = out / ".pareto.tmp.png"
    plot_front(points, tmp, target_p99=target_p99, title=f"{Path(grid.path).name}: cost vs p99")
    os.chmod(tmp, 0o644)
    os.replace(tmp, paths["plot"])
    return paths


def run_sweep(
    grid: Grid,
    traces: Sequence[TraceInput],
    *,
    out: Path,
    executor: Executor,
    load: Callable[[str, str, ImportOptions], Trace],
    progress: bool = False,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> SweepOutcome:
    """Run what the log in ``out`` does not have yet; write the tables (also when interrupted).

    ``load(path, format, options)`` reads a trace: the command passes ``replay.cli.load_trace``
    (the replay's own reading), which this module cannot import (the command sits above it).
    """
    base = scenario_from_dict(dict(grid.base))
    loaded = {t.name: load(t.path, t.format, t.options) for t in traces}
    # How a file was read is part of its key, not only its bytes: the options asked for are in
    # its digest (trace_inputs), and what the importer made of them (the scale of
    # --per-replica auto) in its notes.
    traces = [replace(t, digest=_key(t.digest, loaded[t.name].header.notes)) for t in traces]
    # kept: forked workers inherit the table, so their baselines (``report.variant_of``) find
    # the bound of these same trace and scenario objects instead of computing it again
    bounds = {name: kept_bound(trace, base) for name, trace in loaded.items()}
    baselines = [v.name for v in variants(base, NO_BOUND)[1:]] if grid.baselines else []
    tasks = plan_tasks(grid, traces, baselines)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / LOG
    done = read_log(log_path)
    # Longest traces first (a replay's time grows with its trace), so the workers finish
    # together; the executor keeps each worker on one trace while it can (its fits stay warm).
    events = {name: len(trace.events) for name, trace in loaded.items()}
    todo = sorted((t for t in tasks if t.key not in done), key=lambda t: -events[t.trace])
    reused = len(tasks) - len(todo)
    shared = {
        name: TraceJob(trace, grid, base, used_groups(base, bounds[name]))
        for name, trace in loaded.items()
    }
    if todo and isinstance(executor, PoolExecutor):
        from autoscaler.kernels import warm_up

        warm_up()  # once, before the workers fork, instead of once in every worker
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), initial=reused, unit="replay", file=sys.stderr, leave=False)
    interrupted = False
    ran = 0
    try:
        with log_path.open("a+") as log:
            if log.tell() > 0:
                log.seek(log.tell() - 1)
                if log.read(1) != "\n":
                    log.write("\n")  # end a torn last line: it stays unreadable, alone
            for i, row in executor.map_unordered(run_task, [(t.trace, t) for t in todo], shared):
                assert row["key"] == todo[i].key
                log.write(json.dumps(row, sort_keys=True) + "\n")
                log.flush()
                done[row["key"]] = row
                ran += 1
                if ran == len(todo) - executor.workers + 1 and executor.workers > 1:
                    load_plotting()  # a worker has nothing left to start: use its core
                if bar is not None:
                    bar.update(1)
                if on_row is not None:
                    on_row(row)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        executor.close()
        if bar is not None:
            bar.close()
    # Metrics from the log, descriptions from this grid (an axis may have grown since).
    rows = [{**done[t.key], **describe(t, grid)} for t in tasks if t.key in done]
    paths = write_tables(
        rows,
        grid=grid,
        traces=traces,
        target_p99=base.pending_target_p99,
        total=len(tasks),
        out=out,
    )
    paths = {"log": log_path, **paths}
    return SweepOutcome(rows, ran, reused, len(tasks), interrupted, paths)
