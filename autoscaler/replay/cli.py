"""``spillover-autoscaler replay`` and ``record``.

``replay TRACE --format auto|jsonl|openb|series --scenario FILE --out DIR [--json] [--quiet]``
replays a trace with Spillover and every baseline and writes ``summary.md``, ``summary.json``,
``actions.jsonl`` (Spillover's scaling actions) and ``replay.png`` to ``DIR``; ``--json`` also
prints the summary and the baseline table to stdout.  A bad input file stops the command with
``file:line: problem`` (exit status 2) before anything is written.  ``--format auto`` (the
default, as in ``sweep``) tells the formats apart by the file's first line
(``trace.detect_format``).  A demand series becomes one Deployment's replica count,
``ceil(value / --per-replica)``; ``--per-replica auto`` (the default) takes the scale from the
series, so that its 99th percentile over time is 50 replicas (``importers``), and says on stderr
what it chose.

``record --out trace.jsonl [--duration 1h] [--kubeconfig FILE]`` writes the trace format from a
live cluster (``autoscaler.replay.record``).  An API server that fails for a while is retried,
not fatal.  Exit status 2 for bad input (kubeconfig, ``--out``), 1 when the recording failed
(one line, nothing written), 0 once the trace is written (at ``--duration`` or on Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from extender.commandline import at_least, fail, plain
from extender.model import ModelError, Resources, parse_resources

from .threads import limit_blas_threads
from .trace import IMPORT_DEFAULTS, INPUT_FORMATS, ImportOptions, Trace, TraceError, detect_format

if TYPE_CHECKING:
    from .report import Comparison

__all__ = [
    "FORMATS",
    "add_import_options",
    "add_parsers",
    "import_options",
    "load_input",
    "load_trace",
    "main",
    "progress_bar",
    "run",
    "write_outputs",
]

FORMATS = ("auto", *INPUT_FORMATS)  # replay's and sweep's --format


def _per_replica(text: str) -> float | Literal["auto"]:
    """``--per-replica``: ``auto`` or a number above 0."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        number: float = at_least(float, 0, above=True)(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{err}, or auto") from None
    return number


def add_import_options(p: argparse.ArgumentParser) -> None:
    """Add the options that say how an openb list or a series is read (``replay``, ``sweep``);
    ``import_options`` reads them back."""
    p.add_argument(
        "--per-replica",
        type=_per_replica,
        default=IMPORT_DEFAULTS.per_replica,
        help="series: demand one replica serves, or auto (default): the series' 99th "
        "percentile over time is 50 replicas",
    )
    p.add_argument(
        "--replica-cpu",
        default=IMPORT_DEFAULTS.replica_cpu,
        help="series: cpu request of one replica",
    )
    p.add_argument(
        "--replica-memory",
        default=IMPORT_DEFAULTS.replica_memory,
        help="series: memory request of one replica",
    )
    p.add_argument(
        "--min-replicas",
        type=at_least(int, 0),
        default=IMPORT_DEFAULTS.min_replicas,
        help="series: fewest replicas",
    )
    p.add_argument(
        "--include-unscheduled", action="store_true", help="openb: replay pods that never ran"
    )
    p.add_argument(
        "--group-by",
        choices=("pod", "shape"),
        default=IMPORT_DEFAULTS.group_by,
        help="openb workloads",
    )
    p.add_argument(
        "--owners",
        choices=("qos", "services", "pod"),  # importers.OPENB_OWNERS (imported lazily)
        default=IMPORT_DEFAULTS.owners,
        help="openb: who recreates a task's pod: qos = LS tasks are single-replica Deployments "
        "(movable at settings.rebalance.restartCost), the others one-pod Jobs (movable, their "
        "work run again); services = LS Deployments, the others bare pods; pod = all bare pods",
    )
    p.add_argument(
        "--expected-duration",
        choices=("history", "none"),
        default=IMPORT_DEFAULTS.expected_duration,
        help="openb: annotate pods with the median run time of finished pods of their shape",
    )


def import_options(args: argparse.Namespace) -> ImportOptions:
    """The options ``add_import_options`` added, as parsed."""
    return ImportOptions(**{f.name: getattr(args, f.name) for f in fields(ImportOptions)})


def add_parsers(subparsers: Any) -> None:
    """Add ``replay`` and ``record`` to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay a trace against Spillover and the baselines",
        description=plain(__doc__),
    )
    p.add_argument("trace", help="trace file (see --format)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="input format (auto: by the file's first line)",
    )
    p.add_argument("--scenario", default="", help="scenario YAML (default: the bundled one)")
    p.add_argument("--out", default="replay-out", help="output directory")
    p.add_argument("--json", action="store_true", help="print the summary as JSON to stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no messages")
    p.add_argument(
        "--workers",
        type=at_least(int, 0),
        default=0,
        help="processes replaying the variants side by side (0: every CPU; 1: this process)",
    )
    p.add_argument(
        "--every-namespace",
        action="store_true",
        help="apply the scenario's policies to every namespace of the trace (everyNamespace)",
    )
    add_import_options(p)
    p.set_defaults(func=run)
    r: argparse.ArgumentParser = subparsers.add_parser(
        "record",
        help="record a live cluster's pod, workload and node events as a trace",
        description=plain(__doc__),
    )
    r.add_argument("--out", required=True, help="trace file to write (JSON lines)")
    r.add_argument("--kubeconfig", default="", help="kubeconfig (default: in-cluster, ~/.kube)")
    r.add_argument(
        "--duration", type=at_least(float, 0), default=0.0, help="seconds to record (0: until ^C)"
    )
    r.add_argument("--namespace", default="", help="only this namespace (default: all)")
    r.set_defaults(func=run)


def load_input(args: argparse.Namespace) -> Trace:
    """The trace of ``replay``'s arguments."""
    return load_trace(args.trace, args.format, import_options(args))


def load_trace(path: str, fmt: str, options: ImportOptions = IMPORT_DEFAULTS) -> Trace:
    """The trace as ``replay PATH --format FMT`` reads it with ``options`` (the one reader of
    ``replay`` and ``sweep``)."""
    from .importers import import_openb, import_series
    from .trace import read_trace

    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "openb":
        return import_openb(path, **options.of_format(fmt))
    if fmt == "series":
        try:
            requests = parse_resources(
                {"cpu": options.replica_cpu, "memory": options.replica_memory},
                where="--replica-*",
            )
        except ModelError as err:
            raise TraceError(f"error: {err}") from None
        return import_series(
            path,
            per_replica=options.per_replica,
            requests=Resources(requests.cpu_milli, requests.memory, 1),
            min_replicas=options.min_replicas,
        )
    return read_trace(path)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; reports are for sharing, like the plot
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(comparison: Comparison, out: Path) -> dict[str, Path]:
    from .plot import plot_comparison
    from .report import closing_note, summary_json, summary_markdown

    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / "summary.md",
        "json": out / "summary.json",
        "actions": out / "actions.jsonl",
        "plot": out / "replay.png",
    }
    summary = summary_json(comparison)
    summary["closing_note"] = closing_note(comparison)
    _atomic_write(paths["json"], (json.dumps(summary, indent=2) + "\n").encode())
    _atomic_write(
        paths["markdown"],
        summary_markdown(comparison, closing=summary["closing_note"]).encode(),
    )
    actions = "".join(
        json.dumps(
            {"t": a.t, "group": a.group, "kind": a.kind, "nodes": a.nodes, "reason": a.reason}
        )
        + "\n"
        for a in comparison.spillover.actions
    )
    _atomic_write(paths["actions"], actions.encode())
    tmp_plot = out / ".replay.png.tmp.png"
    plot_comparison(comparison, tmp_plot)
    os.chmod(tmp_plot, 0o644)
    os.replace(tmp_plot, paths["plot"])
    return paths


def progress_bar(
    total: int, quiet: bool, *, stream: TextIO | None = None
) -> tuple[Callable[[str, int], None] | None, Any]:
    """A tqdm bar on ``stream`` (stderr); none when quiet or when it is not a terminal (logs)."""
    stream = sys.stderr if stream is None else stream
    if quiet or not stream.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="ev", delay=2.0, file=stream, leave=False)

    def tick(variant: str, n: int) -> None:
        bar.set_description(variant, refresh=False)
        bar.update(n)

    return tick, bar


def run_replay(args: argparse.Namespace) -> int:
    from .executors import PoolExecutor, default_workers
    from .report import NO_BOUND, Bound, compare, summary_json, unmatched_note, variants
    from .results import Result
    from .scenario import Scenario, ScenarioError, load_scenario
    from .sweep import simulate_variants

    limit_blas_threads()
    try:
        scenario = load_scenario(args.scenario or None)
        trace = load_input(args)
    except (TraceError, ScenarioError) as err:
        return fail(err)
    if args.every_namespace:
        scenario = replace(scenario, every_namespace=True)
    n_variants = len(variants(scenario, NO_BOUND))  # how many does not depend on the bound
    workers = min(args.workers or default_workers(), n_variants)
    run_variants = None
    if workers > 1:
        # The variants in parallel (the same results as one after the other); the bar counts them.
        tick, bar = progress_bar(n_variants, args.quiet)

        def run_variants(t: Trace, s: Scenario) -> tuple[Bound, list[Result]]:
            return simulate_variants(t, s, executor=PoolExecutor(workers), done=variant_done)

        finished = 0

        def variant_done(name: str) -> None:
            nonlocal finished
            finished += 1
            if tick is not None:
                tick(name, 1)
            if finished == n_variants - workers + 1:
                # A worker has nothing left to start: load the plotting library on its core
                # while the last replays finish, instead of after them.
                from . import plot  # noqa: F401
    else:
        tick, bar = progress_bar(len(trace.events) * n_variants, args.quiet)
    try:
        comparison = compare(
            trace,
            scenario,
            name=Path(args.trace).name,
            progress=None if workers > 1 else tick,
            run_variants=run_variants,
        )
    except ValueError as err:  # inconsistent trace content found while replaying
        return fail(f"{args.trace}: {err}")
    finally:
        if bar is not None:
            bar.close()
    note = unmatched_note(comparison.spillover)
    if note:
        print(f"warning: {args.trace}: {note}", file=sys.stderr)
    paths = write_outputs(comparison, Path(args.out))
    if trace.header.source.startswith("series:") and not args.quiet:
        # the scale a series was read at, once it replayed (an error stays the only line)
        print(f"{args.trace}: {trace.header.notes}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary_json(comparison), indent=2))
    elif not args.quiet:
        print(Path(paths["markdown"]).read_text())
        for kind, path in paths.items():
            print(f"{kind:>8}: {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "command", "replay") == "record" or not hasattr(args, "trace"):
        from .record import record_main

        return record_main(args)
    return run_replay(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spillover-replay")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
