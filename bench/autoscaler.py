"""Planner benchmark: pending pods x node groups, numba kernels against the pure-Python references.

    .venv/bin/python bench/autoscaler.py [--quick] [--no-results]

Each cell builds a synthetic cluster (replicas of 200 workloads in 12 request shapes, a quarter of
them with a node selector, one GPU workload; groups of 2-16 vCPU general nodes in four pools plus
GPU groups; two half-used nodes per group so the free-capacity and scale-down paths run too) and
times ``plan()`` after a warm-up, best of a few repeats.  The reference backend is quadratic
(first fit scans every open node) and pure Python: it runs once, only for the 1,000-pod rows
(seconds each; a 10,000-pod run would take minutes), and the other cells say "skipped".  Where it
runs, the two plans are asserted equal.  Results are printed and appended as a dated section to bench/RESULTS.md.
Targets (issue 3): 10,000 pending pods x 50 groups in <= 100 ms; numba >= 30x the reference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# This file is named like the package it measures: drop bench/ from the path, add the repo root.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from autoscaler import kernels, kernels_ref  # noqa: E402
from autoscaler.nodegroup import InstanceType, NodeGroup, PlannerSettings  # noqa: E402
from autoscaler.planner import Plan, plan  # noqa: E402
from autoscaler.state import GroupState  # noqa: E402
from extender.model import Node, OwnerRef, Pod, Resources, Taint, Toleration, WorkloadKey  # noqa: E402
from extender.snapshot import ClusterState  # noqa: E402

GIB = 2**30
LABEL = "spillover.dev/node-group"
POOLS = ("general", "web", "batch", "memory")
SHAPES = [
    (100, GIB // 4),
    (250, GIB // 2),
    (500, GIB),
    (500, 2 * GIB),
    (1000, 2 * GIB),
    (1000, 4 * GIB),
    (1500, 3 * GIB),
    (2000, 4 * GIB),
    (2000, 8 * GIB),
    (3000, 6 * GIB),
    (4000, 8 * GIB),
    (250, GIB),
]
REFERENCE_MAX_PENDING = 1_000  # the reference needs seconds at 1,000 pods, minutes at 10,000
GPU_TAINT = Taint("nvidia.com/gpu", "present", "NoSchedule")


def build(pending: int, group_count: int, seed: int = 1) -> tuple[ClusterState, list[GroupState]]:
    rng = np.random.default_rng(seed)
    groups: list[GroupState] = []
    nodes: list[Node] = []
    pods: list[Pod] = []
    for g in range(group_count):
        if g % 10 == 9:
            it = InstanceType(f"gpu-{g}", 96_000, 384 * GIB, 8000, 110)
            group = NodeGroup(f"gpu-{g}", it, {"pool": "gpu"}, (GPU_TAINT,), 64.0, max_size=500)
        else:
            cpu = int(rng.choice([2, 4, 8, 16]))
            pool = POOLS[g % len(POOLS)]
            it = InstanceType(f"ecs-{cpu}c-{g}", cpu * 1000, cpu * 4 * GIB, 0, 110)
            price = round(0.1765 * cpu * float(rng.uniform(0.9, 1.1)), 4)
            group = NodeGroup(f"{pool}-{cpu}c-{g}", it, {"pool": pool}, (), price, max_size=2000)
        for n in range(2):
            name = f"{group.name}-n{n}"
            nodes.append(
                Node(
                    name,
                    labels={"pool": group.labels["pool"], LABEL: group.name},
                    taints=group.taints,
                    allocatable=it.capacity,
                    created=float(n),
                )
            )
            pods.append(_pod(f"{name}-busy", it.cpu_milli // 2, it.memory // 2, node=name))
        groups.append(GroupState(group, 2))
    workloads = 200
    for i in range(pending):
        w = int(rng.integers(0, workloads))
        cpu, mem = SHAPES[w % len(SHAPES)]
        selector = {"pool": POOLS[w % len(POOLS)]} if w % 4 == 1 else {}
        gpu = 1000 if w == 7 and group_count >= 10 else 0
        tol = (Toleration("nvidia.com/gpu", "Exists"),) if gpu else ()
        pods.append(_pod(f"w{w}-{i}", cpu, mem, app=f"w{w}", selector=selector, gpu=gpu, tol=tol))
    return ClusterState(nodes=nodes, pods=pods), groups


def _pod(
    name: str,
    cpu: int,
    mem: int,
    *,
    node: str = "",
    app: str = "busy",
    selector: dict[str, str] | None = None,
    gpu: int = 0,
    tol: tuple[Toleration, ...] = (),
) -> Pod:
    return Pod(
        uid=name,
        name=name,
        namespace="bench",
        labels={"app": app},
        requests=Resources(cpu, mem, 1, gpu),
        owner=OwnerRef("StatefulSet", app),
        node_name=node,
        phase="Running" if node else "Pending",
        node_selector=selector or {},
        tolerations=tol,
        workload=WorkloadKey("bench", "StatefulSet", app),
    )


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the smaller sizes")
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    pod_sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 50_000)
    group_sizes = (10, 50) if args.quick else (10, 50, 200)
    settings = PlannerSettings(max_nodes_per_loop=100_000)
    kernels.warm_up()
    rows = []
    print(f"{'pending':>8} {'groups':>6} {'up':>6} {'numba ms':>9} {'ref ms':>9} {'speed-up':>9}")
    for pending in pod_sizes:
        for group_count in group_sizes:
            state, groups = build(pending, group_count)

            def run(
                backend: str, state: ClusterState = state, groups: list[GroupState] = groups
            ) -> Plan:
                return plan(
                    state, groups, forecast=None, settings=settings, now=1e6, backend=backend
                )

            result = run("numba")  # warm-up of this shape; also gives the plan size
            added = sum(u.delta for u in result.scale_ups)
            fast = best_of(lambda: run("numba"), 5 if pending <= 10_000 else 3)
            slow: float | None = None
            if pending <= REFERENCE_MAX_PENDING:
                slow = best_of(lambda: run("reference"), 1)
                ref_plan = run("reference")
                assert ref_plan == result, "backends disagree"
            speed = f"{slow / fast:8.1f}x" if slow else "  skipped"
            slow_text = f"{slow * 1000:9.1f}" if slow else "  skipped"
            print(
                f"{pending:>8} {group_count:>6} {added:>6} {fast * 1000:9.1f} {slow_text} {speed}"
            )
            rows.append((pending, group_count, added, fast, slow))
    print(
        "\nfirst-fit-decreasing kernel alone, 2 sampled groups (the reference is too slow for all):"
    )
    print(f"{'pending':>8} {'nodes':>6} {'numba ms':>9} {'ref ms':>9} {'speed-up':>9}")
    kernel_rows = []
    for pending in (1_000, 10_000):
        req, order, cap, elig = kernel_sample(pending)
        limits = np.full(cap.shape[0], 5_000)
        args_ = {"order": order, "cap": cap, "elig": elig, "max_nodes": limits}
        used, _ = kernels.ffd(req, **args_)
        fast = best_of(functools.partial(kernels.ffd, req, **args_), 5)
        slow = best_of(functools.partial(kernels_ref.ffd, req, **args_), 1)
        nodes = int(used.sum())
        print(f"{pending:>8} {nodes:>6} {fast * 1000:9.2f} {slow * 1000:9.1f} {slow / fast:8.0f}x")
        kernel_rows.append((pending, nodes, fast, slow))
    if not args.no_results:
        _append(rows, kernel_rows)
    return 0


def kernel_sample(pending: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first-round inputs of two general groups (2 and 8 vCPU) for the benchmark's pods."""
    state, _ = build(pending, 10)
    pods = list(state.pending_pods())
    req = np.array(
        [(p.requests.cpu_milli, p.requests.memory, p.requests.gpu_milli, 1) for p in pods],
        np.int64,
    )
    order = np.lexsort((-req[:, 1], -req[:, 0], -req[:, 2])).astype(np.int64)
    cap = np.array([[2000, 8 * GIB, 0, 110], [8000, 32 * GIB, 0, 110]], np.int64)
    general = np.array([not p.node_selector and not p.tolerations for p in pods])
    return req, order, cap, np.stack([general, general])


def _append(
    rows: list[tuple[int, int, int, float, float | None]],
    kernel_rows: list[tuple[int, int, float, float]],
) -> None:
    path = Path(__file__).with_name("RESULTS.md")
    lines = [
        "",
        f"## autoscaler planner — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`bench/autoscaler.py` on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, 2 cores shared with other jobs; best of 3-5 numba runs "
        "after warm-up; reference (pure Python) "
        "only at 1,000 pending pods (one run; larger cells skipped: minutes per run).",
        "Targets: 10,000 pending x 50 groups <= 100 ms; numba >= 30x the reference.",
        "",
        "| pending pods | groups | nodes added | numba ms | reference ms | speed-up |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for pending, groups, added, fast, slow in rows:
        ref = f"{slow * 1000:.1f}" if slow else "skipped"
        speed = f"{slow / fast:.1f}x" if slow else "—"
        lines.append(f"| {pending:,} | {groups} | {added} | {fast * 1000:.1f} | {ref} | {speed} |")
    lines += [
        "",
        "First-fit-decreasing kernel alone (`kernels.ffd` vs `kernels_ref.ffd`), two sampled "
        "groups (2 and 8 vCPU), the general pods of the same clusters:",
        "",
        "| pending pods | nodes opened | numba ms | reference ms | speed-up |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for pending, nodes, fast, slow in kernel_rows:
        lines.append(
            f"| {pending:,} | {nodes} | {fast * 1000:.2f} | {slow * 1000:.1f} | {slow / fast:.0f}x |"
        )
    if not path.exists():
        path.write_text("# Benchmark results\n")
    with path.open("a") as out:
        out.write("\n".join(lines) + "\n")
    print(f"appended to {path}")


if __name__ == "__main__":
    sys.exit(main())
