"""Plain-Python references of :mod:`autoscaler.kernels`, written for obviousness, not speed.

Same public functions, same arguments, same results: the tests assert the two agree on random
clusters, and the planner can run on either (``backend="reference"``) so the benchmark can
compare them.  First fit here scans every node from the first, as the textbook algorithm does.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .kernels import (
    DIMS,
    DRAIN_MIN_SIZE,
    DRAIN_NO_FIT,
    DRAIN_PDB,
    DRAIN_RECEIVED,
    DRAIN_REMOVED,
    OPTION_COLUMNS,
    BoolArray,
    FloatArray,
    IntArray,
)

__all__ = ["DIMS", "OPTION_COLUMNS", "drain", "ffd", "fit_existing", "option_matrix", "warm_up"]


def _fits(want: list[int], free: list[int]) -> bool:
    return all(w <= f for w, f in zip(want, free, strict=True))


def ffd(
    req: npt.ArrayLike,
    *,
    order: npt.ArrayLike,
    cap: npt.ArrayLike,
    elig: npt.ArrayLike,
    max_nodes: npt.ArrayLike,
) -> tuple[IntArray, IntArray]:
    pods: list[list[int]] = np.asarray(req, np.int64).tolist()
    caps: list[list[int]] = np.asarray(cap, np.int64).tolist()
    ok: list[list[bool]] = np.asarray(elig, np.bool_).tolist()
    limits: list[int] = np.asarray(max_nodes, np.int64).tolist()
    sequence: list[int] = np.asarray(order, np.int64).tolist()
    used = [0] * len(caps)
    assign = [[-1] * len(pods) for _ in caps]
    for g, capacity in enumerate(caps):
        nodes: list[list[int]] = []
        for i in sequence:
            if not ok[g][i] or not _fits(pods[i], capacity):
                continue
            target = next((n for n, free in enumerate(nodes) if _fits(pods[i], free)), -1)
            if target < 0 and len(nodes) < limits[g]:
                nodes.append(list(capacity))
                target = len(nodes) - 1
            if target >= 0:
                nodes[target] = [f - w for f, w in zip(nodes[target], pods[i], strict=True)]
                assign[g][i] = target
        used[g] = len(nodes)
    return np.array(used, np.int64), np.array(assign, np.int64).reshape(len(caps), len(pods))


def option_matrix(
    req: npt.ArrayLike,
    *,
    assign: npt.ArrayLike,
    used: npt.ArrayLike,
    cap: npt.ArrayLike,
    price: npt.ArrayLike,
    eci_cost: npt.ArrayLike,
    hours: float,
) -> FloatArray:
    pods: list[list[int]] = np.asarray(req, np.int64).tolist()
    where: list[list[int]] = np.asarray(assign, np.int64).tolist()
    nodes: list[int] = np.asarray(used, np.int64).tolist()
    caps: list[list[int]] = np.asarray(cap, np.int64).tolist()
    prices: list[float] = np.asarray(price, np.float64).tolist()
    eci: list[float] = np.asarray(eci_cost, np.float64).tolist()
    rows = []
    for g, capacity in enumerate(caps):
        placed = [i for i, n in enumerate(where[g]) if n >= 0]
        cpu = float(sum(pods[i][0] for i in placed))
        mem = float(sum(pods[i][1] for i in placed))
        n = nodes[g]
        cpu_waste = 1.0 - cpu / (n * capacity[0]) if n > 0 and capacity[0] > 0 else 0.0
        mem_waste = 1.0 - mem / (n * capacity[1]) if n > 0 and capacity[1] > 0 else 0.0
        eci_total = 0.0
        for i in placed:
            eci_total += eci[i]
        rows.append([len(placed), n, cpu_waste, mem_waste, n * prices[g] * hours, eci_total])
    return np.array(rows, np.float64).reshape(len(caps), len(OPTION_COLUMNS))


def fit_existing(
    req: npt.ArrayLike,
    *,
    order: npt.ArrayLike,
    free: npt.ArrayLike,
    pod_class: npt.ArrayLike,
    elig: npt.ArrayLike,
) -> IntArray:
    pods: list[list[int]] = np.asarray(req, np.int64).tolist()
    nodes: list[list[int]] = np.asarray(free, np.int64).tolist()
    classes: list[int] = np.asarray(pod_class, np.int64).tolist()
    ok: list[list[bool]] = np.asarray(elig, np.bool_).tolist()
    assign = [-1] * len(pods)
    for i in np.asarray(order, np.int64).tolist():
        for n, room in enumerate(nodes):
            if ok[classes[i]][n] and _fits(pods[i], room):
                nodes[n] = [f - w for f, w in zip(room, pods[i], strict=True)]
                assign[i] = n
                break
    return np.array(assign, np.int64)


def drain(
    req: npt.ArrayLike,
    *,
    pod_class: npt.ArrayLike,
    pod_pdb: npt.ArrayLike,
    cand_start: npt.ArrayLike,
    cand_node: npt.ArrayLike,
    cand_group: npt.ArrayLike,
    group_budget: npt.ArrayLike,
    pdb_budget: npt.ArrayLike,
    free: npt.ArrayLike,
    elig: npt.ArrayLike,
) -> tuple[IntArray, IntArray]:
    pods: list[list[int]] = np.asarray(req, np.int64).tolist()
    classes: list[int] = np.asarray(pod_class, np.int64).tolist()
    pdb_of: list[int] = np.asarray(pod_pdb, np.int64).tolist()
    starts: list[int] = np.asarray(cand_start, np.int64).tolist()
    cand_nodes: list[int] = np.asarray(cand_node, np.int64).tolist()
    groups: list[int] = np.asarray(cand_group, np.int64).tolist()
    budget: list[int] = np.asarray(group_budget, np.int64).tolist()
    pdb_left: list[int] = np.asarray(pdb_budget, np.int64).tolist()
    room: list[list[int]] = np.asarray(free, np.int64).tolist()
    ok: BoolArray = np.asarray(elig, np.bool_)
    removed: set[int] = set()
    received: set[int] = set()
    status: list[int] = []
    dest = [-1] * len(pods)
    for c, node in enumerate(cand_nodes):
        members = range(starts[c], starts[c + 1])
        if node in received:
            status.append(DRAIN_RECEIVED)
            continue
        if budget[groups[c]] <= 0:
            status.append(DRAIN_MIN_SIZE)
            continue
        need = [0] * len(pdb_left)
        for i in members:
            if pdb_of[i] >= 0:
                need[pdb_of[i]] += 1
        if any(n > left for n, left in zip(need, pdb_left, strict=True)):
            status.append(DRAIN_PDB)
            continue
        trial = [list(r) for r in room]
        moves: dict[int, int] = {}
        for i in members:
            target = next(
                (
                    n
                    for n in range(len(trial))
                    if n != node
                    and n not in removed
                    and ok[classes[i], n]
                    and _fits(pods[i], trial[n])
                ),
                -1,
            )
            if target < 0:
                break
            trial[target] = [f - w for f, w in zip(trial[target], pods[i], strict=True)]
            moves[i] = target
        if len(moves) < len(members):
            status.append(DRAIN_NO_FIT)
            continue
        room = trial
        for i, target in moves.items():
            dest[i] = target
            received.add(target)
        pdb_left = [left - n for left, n in zip(pdb_left, need, strict=True)]
        budget[groups[c]] -= 1
        removed.add(node)
        status.append(DRAIN_REMOVED)
    return np.array(status, np.int64), np.array(dest, np.int64)


def warm_up() -> None:
    """Nothing to compile."""
