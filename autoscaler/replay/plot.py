"""The replay's PNG: demand, ECS capacity, ECS vs ECI pods, and cost over time (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from .report import Comparison

__all__ = ["plot_comparison"]


def plot_comparison(c: Comparison, path: str | Path) -> Path:
    """Write the plot of Spillover's run (and the baselines' cost) to ``path``."""
    s = c.spillover
    tl = s.timeline
    hours = tl.t / 3600
    gpu = bool(tl.demand_gpu.any())
    fig, axes = plt.subplots(4, 1, figsize=(11, 12), sharex=True)
    ax = axes[0]
    ax.plot(hours, tl.demand_cpu, label="demand, vCPU requested", color="tab:blue", lw=0.8)
    ax.plot(hours, tl.ecs_cpu, label="ECS capacity, vCPU", color="tab:orange", lw=0.8)
    if gpu:
        ax2 = ax.twinx()
        ax2.plot(hours, tl.demand_gpu, label="demand, GPUs", color="tab:purple", lw=0.6, alpha=0.7)
        ax2.plot(hours, tl.ecs_gpu, label="ECS capacity, GPUs", color="tab:red", lw=0.6, alpha=0.7)
        ax2.set_ylabel("GPUs")
        ax2.legend(loc="upper right", fontsize=8)
    ax.set_ylabel("vCPU")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{c.trace}: {s.name}")
    ax = axes[1]
    ax.stackplot(
        hours,
        tl.ecs_pods,
        tl.eci_pods,
        labels=["pods on ECS", "pods on ECI"],
        colors=["tab:orange", "tab:green"],
        alpha=0.8,
    )
    ax.plot(hours, tl.pending_pods, label="pending pods", color="black", lw=0.6)
    ax.set_ylabel("pods")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[2]
    ax.step(hours, tl.ecs_nodes, where="post", color="tab:orange", lw=0.8, label="ECS nodes")
    ax.set_ylabel("nodes")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[3]
    for r in c.results:
        style = {"lw": 2.0} if r is s else {"lw": 0.8, "alpha": 0.8}
        ax.plot(r.timeline.t / 3600, r.timeline.cost, label=f"{r.name}", **style)
    ax.set_ylabel("cumulative cost, CNY")
    ax.set_xlabel("hours since the start of the trace")
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
