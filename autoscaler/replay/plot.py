"""The replay's PNG (matplotlib, Agg): Spillover's run over time, and every variant's money.

Panels: requested vs ECS vCPU; requested vs ECS GPUs (when the trace has GPU pods; its own
panel, so the two never share an axis); pods on ECS and on ECI as separate lines on a symlog
scale (a handful of ECS pods stays visible beside thousands on ECI); ECS nodes; each variant's
cumulative cost relative to all-ECI's (curves of similar totals no longer hide each other);
and each variant's cost split (``autoscaler.replay.billing``) as stacked bars.  The title names
the trace file, never its directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from .report import Comparison
from .results import CostSplit

__all__ = ["plot_comparison"]

_DIRECTORIES = re.compile(r"/?(?:[^\s/()]+/)+")  # "/a/b/x.csv" -> "x.csv" in the title

_SPLIT_COLORS = {
    "ecs_busy": "tab:orange",
    "ecs_fragmentation": "navajowhite",
    "ecs_booting": "khaki",
    "ecs_pre_provisioned": "tab:red",
    "ecs_scale_down_wait": "lightcoral",
    "eci_burst": "tab:green",
    "eci_long_stay": "darkgreen",
    "lost_work": "tab:purple",
    "restarts": "tab:gray",
}


def plot_comparison(c: Comparison, path: str | Path) -> Path:
    """Write the plot of Spillover's run and the variants' costs to ``path``."""
    s = c.spillover
    tl = s.timeline
    hours = tl.t / 3600
    gpu = bool(tl.demand_gpu.any() or tl.ecs_gpu.any())
    rows = 6 if gpu else 5
    fig = plt.figure(figsize=(11, 3 * rows + 0.5))
    grid = fig.add_gridspec(rows, 1)
    first = fig.add_subplot(grid[0])
    axes = [first] + [fig.add_subplot(grid[i], sharex=first) for i in range(1, rows - 1)]
    title = _DIRECTORIES.sub("", c.trace)
    ax = axes[0]
    ax.plot(hours, tl.demand_cpu, label="requested vCPU (live pods)", color="tab:blue", lw=0.8)
    ax.step(hours, tl.ecs_cpu, where="post", label="ECS vCPU", color="tab:orange", lw=0.8)
    ax.set_ylabel("vCPU")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{title}: {s.name}")
    k = 1
    if gpu:
        ax = axes[k]
        ax.plot(hours, tl.demand_gpu, label="requested GPUs", color="tab:purple", lw=0.8, ls="--")
        ax.step(hours, tl.ecs_gpu, where="post", label="ECS GPUs", color="tab:red", lw=0.8)
        ax.set_ylabel("GPUs")
        ax.legend(loc="upper left", fontsize=8)
        k += 1
    ax = axes[k]
    ax.plot(hours, tl.ecs_pods, label="pods on ECS", color="tab:orange", lw=0.8)
    ax.plot(hours, tl.eci_pods, label="pods on ECI", color="tab:green", lw=0.8)
    ax.plot(hours, tl.pending_pods, label="pending pods", color="black", lw=0.6)
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylabel("pods (symlog)")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[k + 1]
    ax.step(hours, tl.ecs_nodes, where="post", color="tab:orange", lw=0.8, label="ECS nodes")
    ax.set_ylabel("nodes")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[k + 2]
    eci = next((r for r in c.results if r.name == "all-eci"), None)
    if eci is not None and eci.cost > 0:
        base = eci.timeline.cost
        for r in c.results:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(base > 0, r.timeline.cost / base, np.nan)
            main = r is s
            ax.plot(
                r.timeline.t / 3600,
                ratio,
                label=r.name,
                lw=2.0 if main else 0.8,
                alpha=1.0 if main else 0.8,
            )
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.set_ylim(0, 3)  # the first hours' ratios are large and say little
        ax.set_ylabel("cumulative cost / all-ECI's")
    else:
        for r in c.results:
            ax.plot(r.timeline.t / 3600, r.timeline.cost, label=r.name, lw=0.8)
        ax.set_ylabel("cumulative cost, CNY")
    ax.set_xlabel("hours since the start of the trace")
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    ax = fig.add_subplot(grid[rows - 1])
    names = [r.name for r in c.results]
    left = np.zeros(len(names))
    for part in CostSplit.names():
        values = np.array([getattr(r.split, part) for r in c.results])
        ax.barh(names, values, left=left, color=_SPLIT_COLORS[part], label=CostSplit.LABELS[part])
        left += values
    ax.invert_yaxis()
    ax.set_xlabel("total cost, CNY")
    ax.set_title("where the money went", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), fontsize=7, ncol=4)
    fig.tight_layout()
    # tight_layout leaves a placeholder layout engine behind, and savefig lays out a figure that
    # has one with a whole draw of its own before the real one (a third of the plot's time);
    # the layout is done: no engine, one draw, the same pixels.
    fig.set_layout_engine(None)
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
