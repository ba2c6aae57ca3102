"""Replay throughput and results: the Alibaba lists as published, and a synthetic 1,000,000 events.

Targets (issues 4 and 8): the default Alibaba list in <= 5 s end to end (import + the Spillover
replay), and 1,000,000 pod events in <= 60 s on one core.  Every published openb list in
``../shared/data/openb/`` is imported and replayed with the default scenario (Spillover and every
baseline: the verdict and where the money went); a list that cannot be replayed (multigpu50 has
no times) gets its one-line reason.  Prints tables; never asserts on time.

    .venv/bin/python bench/replay.py [--events 1000000] [--skip-synthetic] [--skip-published]

Without flags (issue 14's table): ``--command`` times the whole ``spillover-autoscaler replay``
command on the default Alibaba list, serial (``--workers 1``) and with the variants in parallel
(the default), best and median of ``--runs``, the builds alternating run by run after one untimed
run each (``--no-serial``: without the serial row); ``--before BIN`` also times another build's
command (e.g. the main checkout's) as the "before"; ``--sweep`` runs a 24-replay sweep (6 cells x the 4
openb files with time columns) with 1 and 2 workers and on a local Ray (when installed: Ray's
overhead against the 2-worker pool), and checks the three tables are the same.  ``--throughput``
runs the older tables (events per CPU second, every published list, 1,000,000 events).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/autoscaler.py (another benchmark) would shadow the package when run as a script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from autoscaler.replay.demo import data_file  # noqa: E402
from autoscaler.replay.importers import import_openb  # noqa: E402
from autoscaler.replay.report import compare, fluid_bound, variants  # noqa: E402
from autoscaler.replay.scenario import Scenario, load_scenario  # noqa: E402
from autoscaler.replay.simulator import Result, simulate  # noqa: E402
from autoscaler.replay.threads import limit_blas_threads  # noqa: E402
from autoscaler.replay.trace import (  # noqa: E402
    Event,
    PodCreated,
    PodDeleted,
    Template,
    Trace,
    TraceError,
    TraceHeader,
    read_trace,
    write_trace,
)
from extender.model import Resources, WorkloadKey  # noqa: E402


def synthetic(events: int, *, seed: int = 1, rate: float = 10.0, life: float = 60.0) -> Trace:
    """``events`` pod events: Poisson arrivals (``rate``/s), exponential lives (mean ``life`` s),
    three cpu shapes (one Deployment each), managed by the default scenario's ``series`` policy
    (ECS, then ECI)."""
    rng = random.Random(seed)
    shapes = [
        Template(Resources(500, 2**30, 1), {"app": "synthetic"}),
        Template(Resources(1000, 2 * 2**30, 1), {"app": "synthetic"}),
        Template(Resources(2000, 8 * 2**30, 1), {"app": "synthetic"}),
    ]
    pending: list[tuple[float, int, Event]] = []
    t = 0.0
    for i in range(events // 2):
        t += rng.expovariate(rate)
        uid = f"s{i}"
        k = rng.randrange(len(shapes))
        wl = WorkloadKey("series", "Deployment", f"synthetic-{k}")
        pending.append((t, 2 * i, PodCreated(t, uid, wl, uid, shapes[k])))
        end = t + rng.expovariate(1 / life)
        pending.append((end, 2 * i + 1, PodDeleted(end, uid)))
    pending.sort(key=lambda e: (e[0], e[1]))
    return Trace(TraceHeader(source="synthetic"), [e for _, _, e in pending])


def replay_spillover(trace: Trace, scenario: Scenario) -> Result:
    """The Spillover variant's replay (the variants are sized from the trace's fluid bound)."""
    return simulate(trace, scenario, variants(scenario, fluid_bound(trace, scenario))[0])


class Timer:
    """Wall and CPU seconds of a block (the CPU time is what a loaded machine does not inflate)."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def row(name: str, events: int, t: Timer, target: str, extra: str = "") -> str:
    return (
        f"| {name} | {events:,} | {t.wall:.2f} | {t.cpu:.2f} | {events / t.cpu:,.0f} "
        f"| {target} | {extra} |"
    )


def published(scenario: Scenario) -> None:
    """Every published openb list: import + Spillover, then the whole report and its verdict."""
    folder = data_file("alibaba-openb-pods.csv").parent / "openb"
    print()
    print(
        "| openb list | events | import + Spillover wall / CPU s | whole report wall / CPU s "
        "| Spillover CNY | never started | cheapest comparable baseline | dominates "
        "| ECS idle share |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |")
    for path in sorted(folder.glob("openb_pod_list_*.csv")):
        with Timer() as one:
            try:
                trace = import_openb(path)
            except TraceError as err:
                print(f"| {path.name} | - | - | - | - | - | not replayable: {err} | - | - |")
                continue
            r = replay_spillover(trace, scenario)
        with Timer() as whole:
            c = compare(trace, scenario, name=path.name)
        fair = [b for b in c.results[1:] if b.never_started <= r.never_started]
        best = min(fair, key=lambda b: b.cost, default=None)
        best_text = f"{best.name} {best.cost:,.0f}" if best is not None else "-"
        ecs = r.split.ecs_busy + r.split.ecs_idle
        idle = f"{r.split.ecs_idle / ecs:.0%}" if ecs else "-"
        print(
            f"| {path.name} | {len(trace.events):,} | {one.wall:.2f} / {one.cpu:.2f} "
            f"| {whole.wall:.2f} / {whole.cpu:.2f} | {r.cost:,.0f} | {r.never_started} "
            f"| {best_text} | {c.dominates} | {idle} |",
            flush=True,
        )


SWEEP_GRID = """\
# 6 cells: ECI at list price, 20% and 40% off; the forecast on and off
baselines: false
axes:
  eci_price: [1.0, 0.8, 0.6]
  forecast: [true, false]
"""
OPENB = (
    "alibaba-openb-pods.csv",
    "openb/openb_pod_list_cpu200.csv",
    "openb/openb_pod_list_gpushare80.csv",
    "openb/openb_pod_list_gpuspec33.csv",
)


def time_command(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the command and its workers) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def bench_command(before: str, runs: int, *, serial: bool = True) -> None:
    """The whole ``replay`` command on the default Alibaba list (import, 7 replays, outputs).

    The builds alternate run by run (before, this build serial, this build in parallel, then
    again), after one untimed run of each (numba's cache, the page cache), so that every row
    sees the same minutes of a shared machine's load."""
    trace = str(data_file("alibaba-openb-pods.csv"))
    me = str(Path(sys.executable).with_name("spillover-autoscaler"))
    out = tempfile.mkdtemp(prefix="bench-replay-")
    rows = [("this build, --workers 1 (serial)", [me, "--workers", "1"])] if serial else []
    rows.append(("this build, variants in parallel (default)", [me]))
    if before:
        rows.insert(0, (f"before: {before}", [before]))
    argvs = [
        [exe, "replay", trace, "--format", "openb", "--quiet", "--out", out, *flags]
        for _, (exe, *flags) in rows
    ]
    for argv in argvs:
        time_command(argv)  # untimed
    times: list[list[tuple[float, float]]] = [[] for _ in rows]
    loads: list[list[float]] = [[] for _ in rows]
    for _ in range(runs):
        for i, argv in enumerate(argvs):
            loads[i].append(os.getloadavg()[0])
            times[i].append(time_command(argv))
    print(
        "| replay command, default Alibaba list | runs | best s | median s | CPU s (best run) "
        "| CPU s best / median | load before (min-max) | target |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for (name, _), got, load in zip(rows, times, loads, strict=True):
        walls = sorted(got)
        cpus = sorted(c for _, c in got)
        print(
            f"| {name} | {runs} | {walls[0][0]:.2f} | {walls[len(walls) // 2][0]:.2f} "
            f"| {walls[0][1]:.2f} | {cpus[0]:.2f} / {cpus[len(cpus) // 2]:.2f} "
            f"| {min(load):.1f}-{max(load):.1f} | <= 5 s |"
        )


def _cpu() -> float:
    """CPU seconds of this process and of its children that have ended (the pool's workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bench_sweep() -> None:
    """24 Spillover replays (6 cells x 4 openb files) with 1 and 2 workers and on local Ray."""
    import importlib.util

    from autoscaler.replay.cli import load_trace
    from autoscaler.replay.executors import Executor, PoolExecutor, RayExecutor, SerialExecutor
    from autoscaler.replay.grid import parse_grid
    from autoscaler.replay.sweep import run_sweep, trace_inputs

    traces = [str(data_file(n)) for n in OPENB if data_file(n).is_file()]
    grid = parse_grid(SWEEP_GRID, path="bench-grid.yaml")
    inputs = trace_inputs(traces, "openb")
    runs: list[tuple[str, Executor | None]] = [("pool, 1 worker", SerialExecutor())]
    runs.append(("pool, 2 workers", PoolExecutor(2)))
    tables = {}
    pool = 0.0
    print(f"sweep: {len(grid.cells())} cells x {len(traces)} traces, baselines off")
    print("| executor | replays | seconds | CPU s | speedup vs 1 worker | notes |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    one = 0.0
    for name, executor in [*runs, ("ray (local, 2 CPUs)", None)]:
        note = ""
        if executor is None:
            if importlib.util.find_spec("ray") is None:
                print(f"| {name} | | | | | not run: ray is not installed (spillover[sweep]) |")
                continue
            start = time.perf_counter()
            executor = RayExecutor("local", num_cpus=2)
            note = f"ray.init {time.perf_counter() - start:.1f} s (included)"
        else:
            start = time.perf_counter()
        cpu = _cpu()
        load = os.getloadavg()[0]
        out = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
        outcome = run_sweep(grid, inputs, out=out, executor=executor, load=load_trace)
        seconds = time.perf_counter() - start
        # Ray's workers are not this process's children: their CPU time is not counted.
        cpu_text = "-" if isinstance(executor, RayExecutor) else f"{_cpu() - cpu:.1f}"
        one = one or seconds
        tables[name] = (out / "sweep.csv").read_text()
        same = (
            "same table as 1 worker"
            if tables[name] == next(iter(tables.values()))
            else "TABLE DIFFERS"
        )
        if name == "pool, 2 workers":
            pool = seconds
        elif isinstance(executor, RayExecutor) and pool:
            note += f"; {seconds - pool:+.1f} s against the 2-worker pool"
        note = "; ".join(x for x in (same, f"load before {load:.1f}", note) if x)
        print(
            f"| {name} | {outcome.ran} | {seconds:.1f} | {cpu_text} | {one / seconds:.2f}x "
            f"| {note} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-published", action="store_true")
    parser.add_argument("--skip-reports", action="store_true", help="no whole-report row")
    parser.add_argument("--command", action="store_true", help="time the whole replay command")
    parser.add_argument("--before", default="", help="another build's spillover-autoscaler")
    parser.add_argument("--runs", type=int, default=3, help="--command: runs of each")
    parser.add_argument(
        "--no-serial", action="store_true", help="--command: leave out the serial row"
    )
    parser.add_argument("--sweep", action="store_true", help="the 24-replay sweep")
    parser.add_argument(
        "--throughput", action="store_true", help="events/s of the replay itself (issues 4, 8)"
    )
    args = parser.parse_args()
    limit_blas_threads()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if not (args.command or args.sweep or args.throughput):
        args.command = args.sweep = True  # issue 14's table
    if args.command:
        bench_command(args.before, args.runs, serial=not args.no_serial)
    if args.sweep:
        bench_sweep()
    if not args.throughput:
        return
    scenario = load_scenario()
    print("| run | events | wall s | CPU s | events/CPU s | target | notes |")
    print("| --- | ---: | ---: | ---: | ---: | --- | --- |")
    for attempt in range(3):  # the first run includes loading the numba kernels' cache
        with Timer() as t:
            trace = import_openb(data_file("alibaba-openb-pods.csv"))
            r = replay_spillover(trace, scenario)
        print(
            row(
                f"Alibaba openb: import + Spillover replay (run {attempt + 1})",
                len(trace.events),
                t,
                "<= 5 s",
                f"{r.planner_calls:,} planner passes, {r.decide_calls:,} decisions",
            ),
            flush=True,
        )
    if not args.skip_reports:
        with Timer() as t:
            c = compare(trace, scenario)
        print(
            row(
                f"Alibaba openb: Spillover + {len(c.results) - 1} baselines + bound",
                len(trace.events) * len(c.results),
                t,
                "(whole report)",
            ),
            flush=True,
        )
    if not args.skip_published:
        published(scenario)
    if args.skip_synthetic:
        return
    with Timer() as made:
        big = synthetic(args.events)
    path = Path("/tmp/spillover-bench-synthetic.jsonl")
    with Timer() as io:
        write_trace(path, big)
        big = read_trace(path)
    path.unlink()
    with Timer() as t:
        r = replay_spillover(big, scenario)
    print(
        row(
            "synthetic: Spillover replay",
            len(big.events),
            t,
            "<= 60 s",
            f"{r.planner_calls:,} planner passes; peak {r.peak_nodes} nodes; "
            f"generate {made.wall:.1f} s, write+read JSONL {io.wall:.1f} s",
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
