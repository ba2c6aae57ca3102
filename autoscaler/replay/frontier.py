"""A sweep's table, its Pareto front of cost against pending p99, and the recommendation.

Rows are plain dicts (one per replay: a cell of the grid on one trace, or a baseline on one trace).
Across traces a configuration is judged by its total cost and its *worst* pending p99, so a
recommendation holds on every trace of the sweep.  The front keeps the configurations no other
configuration beats on both (cost and p99 at or below, one strictly).  The recommendation is the
cheapest configuration on the front within the scenario's pending-p99 target, compared with the
cheapest baseline within the target whose pods all started (a baseline that left pods waiting is
never called cheaper).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "METRICS",
    "Point",
    "aggregate",
    "load_plotting",
    "pareto_front",
    "plot_front",
    "recommendation",
    "summary_markdown",
    "table_csv",
    "table_json",
]

METRICS = (
    "cost",
    "ecs_cost",
    "eci_cost",
    "pending_p50",
    "pending_p95",
    "pending_p99",
    "never_started",
    "pods",
    "eci_pod_hours_share",
    "scaling_actions",
    "peak_nodes",
    "evictions",
    "interruptions",
    "planner_calls",
)


@dataclass(frozen=True, slots=True)
class Point:
    """One configuration (a grid cell or a baseline) over every trace of the sweep."""

    name: str  # the cell's label or the baseline's variant name
    kind: str  # "spillover" | "baseline"
    cost: float  # summed over traces
    p99: float  # the worst pending p99 over traces
    never_started: int
    traces: int
    cell: int = -1


def aggregate(rows: Iterable[Mapping[str, Any]]) -> list[Point]:
    """Points of every configuration that has a row for every trace of the sweep."""
    rows = list(rows)
    traces = {r["trace"] for r in rows}
    groups: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    for r in rows:
        name = r["label"] if r["kind"] == "spillover" else r["variant"]
        groups.setdefault((r["kind"], name, int(r["cell"])), []).append(r)
    points = []
    for (kind, name, cell), members in groups.items():
        if {m["trace"] for m in members} != traces:
            continue  # not finished on every trace (an interrupted sweep)
        points.append(
            Point(
                name=name,
                kind=kind,
                cost=sum(float(m["cost"]) for m in members),
                p99=max(float(m["pending_p99"]) for m in members),
                never_started=sum(int(m["never_started"]) for m in members),
                traces=len(members),
                cell=cell,
            )
        )
    points.sort(key=lambda p: (p.kind != "spillover", p.cell, p.name))
    return points


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both cost and p99, cheapest first."""
    front = [
        p
        for p in points
        if not any(
            q.cost <= p.cost and q.p99 <= p.p99 and (q.cost < p.cost or q.p99 < p.p99)
            for q in points
        )
    ]
    return sorted(front, key=lambda p: (p.cost, p.p99, p.name))


def recommendation(points: Sequence[Point], *, target_p99: float) -> str:
    cells = [p for p in points if p.kind == "spillover"]
    if not cells:
        return "No cell has finished on every trace yet: nothing to recommend."
    front = pareto_front(cells)
    within = [p for p in front if p.p99 <= target_p99 and p.never_started == 0]
    if not within:
        fastest = min(cells, key=lambda p: (p.p99, p.cost))
        return (
            f"No cell meets the pending p99 target of {target_p99:g} s; the fastest is "
            f"{fastest.name} (p99 {fastest.p99:.1f} s, {fastest.cost:,.0f} CNY)."
        )
    best = within[0]
    baselines = [
        p for p in points if p.kind == "baseline" and p.p99 <= target_p99 and p.never_started == 0
    ]
    if baselines:
        ref = min(baselines, key=lambda p: (p.cost, p.name))
        change = best.cost / ref.cost - 1 if ref.cost > 0 else math.inf
        against = f"{change:+.0%} cost against {ref.name}, the cheapest baseline within the target,"
    elif any(p.kind == "baseline" for p in points):
        against = f"{best.cost:,.0f} CNY (no baseline meets the target)"
    else:
        against = f"{best.cost:,.0f} CNY (no baselines in this sweep)"
    return f"{best.name}: {against} at pending p99 {best.p99:.1f} s."


# -- renderings ------------------------------------------------------------------------------------
def _columns(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> list[str]:
    return ["trace", "kind", "variant", "cell", "label", *axes, *METRICS]


def table_csv(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, _columns(rows, axes), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if v is None else v for k, v in r.items()})
    return out.getvalue()


def table_json(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> str:
    cols = _columns(rows, axes)
    return json.dumps([{k: r.get(k) for k in cols} for r in rows], indent=1) + "\n"


def summary_markdown(
    *,
    grid: str,
    scenario: str,
    traces: Sequence[str],
    points: Sequence[Point],
    target_p99: float,
    cells_done: int,
    cells_total: int,
) -> str:
    front = pareto_front([p for p in points if p.kind == "spillover"])
    on_front = {(p.kind, p.name) for p in front}
    lines = [
        f"# Sweep: {grid}",
        "",
        f"Scenario: {scenario}. Traces: {', '.join(traces)}. "
        f"{cells_done} of {cells_total} replays done. "
        "Cost is summed over the traces, pending p99 is the worst trace's; the baselines replay "
        "the base scenario (its prices and shapes).",
        "",
        f"**Recommendation**: {recommendation(points, target_p99=target_p99)}",
        "",
        "## Pareto front (Spillover cells: cost against pending p99)",
        "",
        "| cell | configuration | total CNY | pending p99 s | never started |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| #{p.cell} | {p.name} | {p.cost:,.0f} | {p.p99:.1f} | {p.never_started} |" for p in front
    ]
    lines += [
        "",
        "## Every configuration",
        "",
        "| configuration | kind | total CNY | pending p99 s | never started | on the front |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for p in points:
        mark = "yes" if (p.kind, p.name) in on_front else ""
        lines.append(
            f"| {p.name} | {p.kind} | {p.cost:,.0f} | {p.p99:.1f} | {p.never_started} | {mark} |"
        )
    return "\n".join(lines) + "\n"


def load_plotting() -> None:
    """Import matplotlib (Agg) now: a sweep does it while its last replays finish."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot


def plot_front(points: Sequence[Point], path: str | Path, *, target_p99: float, title: str) -> Path:
    """Every configuration as a point, the front as a line (cells named ``#k``), baselines as x."""
    load_plotting()
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    cells = [p for p in points if p.kind == "spillover"]
    base = [p for p in points if p.kind == "baseline"]
    front = pareto_front(cells)
    shown = front[:8]
    fig, ax = plt.subplots(figsize=(7.5, 4.8 + 0.16 * len(shown)))
    ax.scatter(
        [p.p99 for p in cells], [p.cost for p in cells], s=14, color="tab:gray", label="grid cells"
    )
    ax.plot(
        [p.p99 for p in front],
        [p.cost for p in front],
        "o-",
        color="tab:blue",
        label="Pareto front",
    )
    for p in shown:
        ax.annotate(
            f"#{p.cell}",
            (p.p99, p.cost),
            fontsize=7,
            color="tab:blue",
            xytext=(4, 2),
            textcoords="offset points",
        )
    if base:
        ax.scatter(
            [p.p99 for p in base],
            [p.cost for p in base],
            marker="x",
            color="tab:red",
            label="baselines",
        )
        for p in base:
            ax.annotate(
                p.name,
                (p.p99, p.cost),
                fontsize=6,
                color="tab:red",
                xytext=(4, -8),
                textcoords="offset points",
            )
    ax.axvline(target_p99, color="tab:green", ls="--", lw=0.8, label=f"target p99 {target_p99:g} s")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("pending p99, s (worst trace; log scale above 1 s)")
    ax.set_ylabel("cost, CNY (all traces)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    legend = "\n".join(f"#{p.cell}: {p.name}" for p in shown)
    fig.text(0.01, 0.01, legend, fontsize=7, va="bottom", family="monospace")
    fig.tight_layout(rect=(0, 0.03 + 0.028 * len(shown), 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
