"""Replay throughput and results: the Alibaba lists as published, and a synthetic 1,000,000 events.

Targets (issues 4 and 8): the default Alibaba list in <= 5 s end to end (import + the Spillover
replay), and 1,000,000 pod events in <= 60 s on one core.  Every published openb list in
``../shared/data/openb/`` is imported and replayed with the default scenario (Spillover and every
baseline: the verdict and where the money went); a list that cannot be replayed (multigpu50 has
no times) gets its one-line reason.  Prints tables; never asserts on time.

    .venv/bin/python bench/replay.py [--events 1000000] [--skip-synthetic] [--skip-published]
"""

from __future__ import annotations

import argparse
import random
import sys
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-published", action="store_true")
    parser.add_argument("--skip-reports", action="store_true", help="no whole-report row")
    args = parser.parse_args()
    limit_blas_threads()
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
