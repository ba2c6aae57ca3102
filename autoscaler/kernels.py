"""numba kernels of the planner: bin packing, option scores and scale-down fit checks.

Resource arrays are ``int64[:, D]`` with the dimensions of :data:`DIMS` (cpu in millicores, memory
in bytes, GPU in thousandths, pod slots): integers, so the kernels and the plain-Python references
in :mod:`autoscaler.kernels_ref` agree exactly.  Kernels are private; the public wrappers check
shapes and convert dtypes, and take every setting as an argument (numba freezes globals at compile
time).  ``warm_up()`` compiles everything on tiny inputs; with ``cache=True`` later processes load
the machine code from ``__pycache__``.

First fit onto new nodes keeps a max-tree over the open nodes (per dimension, the most free
room in each subtree), so finding the first node with room is a descent instead of a scan: the
result is exactly first fit's (the references scan every node) in O(P log N) for typical inputs
instead of O(P N).  First fit onto existing nodes, which has a per-class eligibility mask, skips
dead nodes instead: a node whose free amount in some dimension is below the smallest request
still to come can take no further pod, so the scan starts after the last leading dead node.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from autoscaler import forecast_kernels

__all__ = [
    "DIMS",
    "DRAIN_MIN_SIZE",
    "DRAIN_NO_FIT",
    "DRAIN_PDB",
    "DRAIN_RECEIVED",
    "DRAIN_REMOVED",
    "OPTION_COLUMNS",
    "drain",
    "ffd",
    "fit_existing",
    "option_matrix",
    "warm_up",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

DIMS = ("cpu_milli", "memory", "gpu_milli", "pods")
OPTION_COLUMNS = ("pods", "nodes", "cpu_waste", "memory_waste", "node_cost", "eci_cost")
DRAIN_REMOVED, DRAIN_NO_FIT, DRAIN_MIN_SIZE, DRAIN_PDB, DRAIN_RECEIVED = 0, 1, 2, 3, 4


@njit(cache=True)
def _suffix_min(req: IntArray, order: IntArray) -> IntArray:
    p, d = req.shape
    out = np.empty((p + 1, d), np.int64)
    for j in range(d):
        out[p, j] = np.iinfo(np.int64).max
    for k in range(p - 1, -1, -1):
        i = order[k]
        for j in range(d):
            out[k, j] = min(out[k + 1, j], req[i, j])
    return out


@njit(cache=True)
def _tree_set(tree: IntArray, size: int, leaf: int, row: IntArray) -> None:
    """Set a leaf of the max-tree and refresh its ancestors (per-dimension maxima)."""
    d = tree.shape[1]
    v = size + leaf
    for j in range(d):
        tree[v, j] = row[j]
    v //= 2
    while v >= 1:
        left = 2 * v
        for j in range(d):
            a = tree[left, j]
            b = tree[left + 1, j]
            tree[v, j] = a if a > b else b
        v //= 2


@njit(cache=True)
def _tree_first_fit(tree: IntArray, size: int, want: IntArray, stack: IntArray) -> int:
    """The leftmost leaf with room for ``want`` in every dimension, or -1.

    A subtree is skipped when its maximum in some dimension is too small; the maxima may come
    from different leaves, so a search can descend and backtrack, but the answer is always the
    leftmost fitting leaf: first fit, exactly.
    """
    d = tree.shape[1]
    stack[0] = 1
    top = 1
    while top > 0:
        top -= 1
        v = int(stack[top])
        ok = True
        for j in range(d):
            if tree[v, j] < want[j]:
                ok = False
                break
        if not ok:
            continue
        if v >= size:
            return v - size
        stack[top] = 2 * v + 1
        stack[top + 1] = 2 * v
        top += 2
    return -1


@njit(cache=True)
def _ffd_kernel(
    req: IntArray, order: IntArray, cap: IntArray, elig: BoolArray, max_nodes: IntArray
) -> tuple[IntArray, IntArray]:
    p, d = req.shape
    g_count = cap.shape[0]
    used = np.zeros(g_count, np.int64)
    assign = np.full((g_count, p), -1, np.int64)
    for g in range(g_count):
        limit = min(max_nodes[g], p)
        if limit <= 0:
            continue
        size = 1
        while size < limit:
            size *= 2
        depth = 1
        while (1 << depth) < size:
            depth += 1
        tree = np.full((2 * size, d), -1, np.int64)  # unopened nodes fit nothing
        stack = np.empty(2 * depth + 4, np.int64)
        free = np.empty((limit, d), np.int64)
        n_open = 0
        hot = -1  # the node that took the previous pod; its tree leaf may be stale
        prev = -1  # the previous pod this group placed
        for k in range(p):
            i = order[k]
            if not elig[g, i]:
                continue
            too_big = False
            for j in range(d):
                if req[i, j] > cap[g, j]:
                    too_big = True
                    break
            if too_big:
                continue
            # A replica of the previous pod cannot fit before ``hot``: those nodes were too full
            # for it then and have not changed since. So if it fits ``hot``, that is first fit.
            placed = -1
            if hot >= 0:
                same = True
                fits = True
                for j in range(d):
                    if req[i, j] != req[prev, j]:
                        same = False
                    if req[i, j] > free[hot, j]:
                        fits = False
                if same and fits:
                    placed = hot
                else:
                    _tree_set(tree, size, hot, free[hot])
                    hot = -1
            if placed < 0:
                placed = _tree_first_fit(tree, size, req[i], stack)
            if placed < 0:
                if n_open >= limit:
                    continue
                placed = n_open
                n_open += 1
                for j in range(d):
                    free[placed, j] = cap[g, j]
            for j in range(d):
                free[placed, j] -= req[i, j]
            hot = placed
            prev = i
            assign[g, i] = placed
        used[g] = n_open
    return used, assign


@njit(cache=True)
def _option_kernel(
    req: IntArray,
    assign: IntArray,
    used: IntArray,
    cap: IntArray,
    price: FloatArray,
    eci_cost: FloatArray,
    hours: float,
) -> FloatArray:
    g_count, p = assign.shape
    out = np.zeros((g_count, 6), np.float64)
    for g in range(g_count):
        pods = 0
        cpu = 0.0
        mem = 0.0
        eci = 0.0
        for i in range(p):
            if assign[g, i] >= 0:
                pods += 1
                cpu += req[i, 0]
                mem += req[i, 1]
                eci += eci_cost[i]
        nodes = used[g]
        out[g, 0] = pods
        out[g, 1] = nodes
        if nodes > 0:
            out[g, 2] = 1.0 - cpu / (nodes * cap[g, 0]) if cap[g, 0] > 0 else 0.0
            out[g, 3] = 1.0 - mem / (nodes * cap[g, 1]) if cap[g, 1] > 0 else 0.0
        out[g, 4] = nodes * price[g] * hours
        out[g, 5] = eci
    return out


@njit(cache=True)
def _fit_existing_kernel(
    req: IntArray, order: IntArray, free_in: IntArray, pod_class: IntArray, elig: BoolArray
) -> IntArray:
    p, d = req.shape
    n_nodes = free_in.shape[0]
    free = free_in.copy()
    assign = np.full(p, -1, np.int64)
    smin = _suffix_min(req, order)
    first = 0
    for k in range(p):
        i = order[k]
        while first < n_nodes:
            dead = False
            for j in range(d):
                if free[first, j] < smin[k, j]:
                    dead = True
                    break
            if not dead:
                break
            first += 1
        c = pod_class[i]
        for n in range(first, n_nodes):
            if not elig[c, n]:
                continue
            fits = True
            for j in range(d):
                if req[i, j] > free[n, j]:
                    fits = False
                    break
            if fits:
                for j in range(d):
                    free[n, j] -= req[i, j]
                assign[i] = n
                break
    return assign


@njit(cache=True)
def _drain_kernel(
    req: IntArray,
    pod_class: IntArray,
    pod_pdb: IntArray,
    cand_start: IntArray,
    cand_node: IntArray,
    cand_group: IntArray,
    group_budget_in: IntArray,
    pdb_budget_in: IntArray,
    free_in: IntArray,
    elig: BoolArray,
) -> tuple[IntArray, IntArray]:
    q, d = req.shape
    c_count = cand_node.shape[0]
    n_nodes = free_in.shape[0]
    free = free_in.copy()
    group_budget = group_budget_in.copy()
    pdb_budget = pdb_budget_in.copy()
    removed = np.zeros(n_nodes, np.bool_)
    received = np.zeros(n_nodes, np.bool_)
    status = np.full(c_count, 1, np.int64)
    dest = np.full(q, -1, np.int64)
    pdb_need = np.zeros(pdb_budget.shape[0], np.int64)
    for c in range(c_count):
        node = cand_node[c]
        if received[node]:
            status[c] = 4
            continue
        if group_budget[cand_group[c]] <= 0:
            status[c] = 2
            continue
        pdb_need[:] = 0
        blocked = False
        for i in range(cand_start[c], cand_start[c + 1]):
            b = pod_pdb[i]
            if b >= 0:
                pdb_need[b] += 1
                if pdb_need[b] > pdb_budget[b]:
                    blocked = True
        if blocked:
            status[c] = 3
            continue
        ok = True
        for i in range(cand_start[c], cand_start[c + 1]):
            cls = pod_class[i]
            placed = -1
            for n in range(n_nodes):
                if n == node or removed[n] or not elig[cls, n]:
                    continue
                fits = True
                for j in range(d):
                    if req[i, j] > free[n, j]:
                        fits = False
                        break
                if fits:
                    placed = n
                    break
            if placed < 0:
                ok = False
                break
            for j in range(d):
                free[placed, j] -= req[i, j]
            dest[i] = placed
        if not ok:
            for i in range(cand_start[c], cand_start[c + 1]):
                n = dest[i]
                if n >= 0:
                    for j in range(d):
                        free[n, j] += req[i, j]
                    dest[i] = -1
            status[c] = 1
            continue
        for i in range(cand_start[c], cand_start[c + 1]):
            received[dest[i]] = True
        for b in range(pdb_budget.shape[0]):
            pdb_budget[b] -= pdb_need[b]
        group_budget[cand_group[c]] -= 1
        removed[node] = True
        status[c] = 0
    return status, dest


def _ints(a: npt.ArrayLike, ndim: int, name: str) -> IntArray:
    out = np.ascontiguousarray(a, dtype=np.int64)
    if out.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got {out.ndim}")
    return out


def _bools(a: npt.ArrayLike, name: str) -> BoolArray:
    out = np.ascontiguousarray(a, dtype=np.bool_)
    if out.ndim != 2:
        raise ValueError(f"{name}: expected 2 dimensions, got {out.ndim}")
    return out


def ffd(
    req: npt.ArrayLike,
    *,
    order: npt.ArrayLike,
    cap: npt.ArrayLike,
    elig: npt.ArrayLike,
    max_nodes: npt.ArrayLike,
) -> tuple[IntArray, IntArray]:
    """First-fit decreasing of pods ``req[P, D]`` (taken in ``order``) onto new nodes of each group.

    ``cap[G, D]`` is a new node's allocatable, ``elig[G, P]`` which pods a group's nodes accept,
    ``max_nodes[G]`` how many nodes a group may add.  Returns the nodes used per group and, per
    group and pod, the new node's index or -1.
    """
    r, o, c = _ints(req, 2, "req"), _ints(order, 1, "order"), _ints(cap, 2, "cap")
    e, m = _bools(elig, "elig"), _ints(max_nodes, 1, "max_nodes")
    if c.shape[1] != r.shape[1] or e.shape != (c.shape[0], r.shape[0]) or m.shape[0] != c.shape[0]:
        raise ValueError("ffd: inconsistent shapes")
    return _ffd_kernel(r, o, c, e, m)


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
    """Scores of each group's packing, columns :data:`OPTION_COLUMNS` (costs over ``hours``)."""
    r, a, u, c = (
        _ints(req, 2, "req"),
        _ints(assign, 2, "assign"),
        _ints(used, 1, "used"),
        _ints(cap, 2, "cap"),
    )
    pr = np.ascontiguousarray(price, dtype=np.float64)
    ec = np.ascontiguousarray(eci_cost, dtype=np.float64)
    if a.shape != (c.shape[0], r.shape[0]) or ec.shape[0] != r.shape[0]:
        raise ValueError("option_matrix: inconsistent shapes")
    return _option_kernel(r, a, u, c, pr, ec, float(hours))


def fit_existing(
    req: npt.ArrayLike,
    *,
    order: npt.ArrayLike,
    free: npt.ArrayLike,
    pod_class: npt.ArrayLike,
    elig: npt.ArrayLike,
) -> IntArray:
    """First fit of pods onto existing free capacity ``free[N, D]``; ``elig[K, N]`` per pod class."""
    r, o, f = _ints(req, 2, "req"), _ints(order, 1, "order"), _ints(free, 2, "free")
    pc, e = _ints(pod_class, 1, "pod_class"), _bools(elig, "elig")
    if e.shape[1] != f.shape[0] or f.shape[1] != r.shape[1]:
        raise ValueError("fit_existing: inconsistent shapes")
    return _fit_existing_kernel(r, o, f, pc, e)


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
    """Remove candidate nodes one by one as cluster-autoscaler does.

    Candidate ``c`` holds pods ``cand_start[c]:cand_start[c+1]`` and is node ``cand_node[c]`` of
    ``free[N, D]``.  A candidate goes when its group is above its minimum (``group_budget``), the
    PodDisruptionBudgets of its pods allow it (``pod_pdb`` index into ``pdb_budget``, -1 none) and
    every pod first-fits on a node that stays; the destinations' free capacity is then updated and
    they can no longer be removed in this pass.  Returns a ``DRAIN_*`` status per candidate and
    each pod's destination node (-1 when it does not move).
    """
    r, f = _ints(req, 2, "req"), _ints(free, 2, "free")
    args = (
        _ints(pod_class, 1, "pod_class"),
        _ints(pod_pdb, 1, "pod_pdb"),
        _ints(cand_start, 1, "cand_start"),
        _ints(cand_node, 1, "cand_node"),
        _ints(cand_group, 1, "cand_group"),
        _ints(group_budget, 1, "group_budget"),
        _ints(pdb_budget, 1, "pdb_budget"),
    )
    e = _bools(elig, "elig")
    if args[2].shape[0] != args[3].shape[0] + 1 or e.shape[1] != f.shape[0]:
        raise ValueError("drain: inconsistent shapes")
    return _drain_kernel(r, *args, f, e)


def warm_up() -> None:
    """Compile (or load from cache) every kernel on tiny inputs, the forecast's
    (:mod:`autoscaler.forecast_kernels`) too; call before declaring ready."""
    forecast_kernels.warm_up()
    req = np.array([[1000, 2**30, 0, 1], [500, 2**29, 0, 1]], np.int64)
    cap = np.array([[2000, 2**32, 0, 110]], np.int64)
    order = np.array([0, 1], np.int64)
    used, assign = ffd(
        req, order=order, cap=cap, elig=np.ones((1, 2), np.bool_), max_nodes=np.array([5])
    )
    option_matrix(
        req, assign=assign, used=used, cap=cap, price=np.ones(1), eci_cost=np.ones(2), hours=1.0
    )
    fit_existing(
        req, order=order, free=cap, pod_class=np.zeros(2, np.int64), elig=np.ones((1, 1), bool)
    )
    drain(
        req,
        pod_class=np.zeros(2, np.int64),
        pod_pdb=np.full(2, -1, np.int64),
        cand_start=np.array([0, 2], np.int64),
        cand_node=np.array([0], np.int64),
        cand_group=np.array([0], np.int64),
        group_budget=np.array([1], np.int64),
        pdb_budget=np.zeros(0, np.int64),
        free=np.concatenate([cap, cap]),
        elig=np.ones((1, 2), np.bool_),
    )
