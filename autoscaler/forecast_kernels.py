"""numba kernels of the forecast: the medians its candidate models take thousands of times a replay.

A median is an order statistic, so any selection finds numpy's value; what differs is the cost
(``np.partition`` along the rows of a few days is one small partition per column, each behind
numpy's wrappers). The kernels return numpy's bits: the middle value, or the middle two added and
halved as ``np.median`` (and :func:`autoscaler.forecast._column_medians`) do. Two inputs are
left to numpy, since there the result depends on more than the value: a NaN (numpy's payload
and NaN check) and a -0.0 (equal to 0.0, so which of the two ``np.partition`` leaves in the
middle is its algorithm's choice, and the sign of a zero median with it). On those the kernels
report ``False`` and the public wrappers fall back to numpy; forecasts of demand, which holds
neither, never do.

Kernels are private behind the wrappers, as in :mod:`autoscaler.kernels`; ``cache=True``, and
``warm_up()`` compiles (or loads) them on tiny inputs.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["column_medians", "loo_coverage", "median", "moving_mean", "warm_up"]

FloatArray = npt.NDArray[np.float64]


@njit(cache=True)
def _unordered(x: float) -> bool:
    """A value whose place in numpy's partition is not fixed by its value: NaN or -0.0."""
    return math.isnan(x) or (x == 0.0 and math.copysign(1.0, x) < 0.0)


@njit(cache=True)
def _column_medians_kernel(rows: FloatArray, out: FloatArray) -> bool:
    k, d = rows.shape
    h = k // 2
    buf = np.empty(k)
    for j in range(d):
        # insertion sort of the column (a few days: a handful of values)
        for i in range(k):
            x = rows[i, j]
            if _unordered(x):
                return False
            m = i
            while m > 0 and buf[m - 1] > x:
                buf[m] = buf[m - 1]
                m -= 1
            buf[m] = x
        out[j] = buf[h] if k % 2 else (buf[h - 1] + buf[h]) / 2.0
    return True


@njit(cache=True)
def _median_kernel(values: FloatArray) -> float:
    """The median, or NaN where numpy must decide (:func:`_unordered`)."""
    n = values.size
    buf = values.copy()
    for i in range(n):
        x = buf[i]
        if (x == 0.0 or x != x) and _unordered(x):
            return math.nan
    h = n // 2
    # quickselect with a three-way partition (demand is often flat: many equal values are one
    # pass), until buf[h] is the h-th smallest and nothing before it is larger
    lo, hi = 0, n - 1
    while lo < hi:
        a, b, c = buf[lo], buf[(lo + hi) // 2], buf[hi]
        pivot = max(min(a, b), min(max(a, b), c))  # the median of three
        lt, i, gt = lo, lo, hi
        while i <= gt:
            x = buf[i]
            if x < pivot:
                buf[i] = buf[lt]
                buf[lt] = x
                lt += 1
                i += 1
            elif x > pivot:
                buf[i] = buf[gt]
                buf[gt] = x
                gt -= 1
            else:
                i += 1
        if h < lt:
            hi = lt - 1
        elif h > gt:
            lo = gt + 1
        else:
            break
    if n % 2:
        return float(buf[h])
    below = buf[0]
    for i in range(1, h):
        below = max(below, buf[i])
    return float((below + buf[h]) / 2.0)


@njit(cache=True)
def _moving_mean_kernel(values: FloatArray, size: int, wrap: bool) -> FloatArray:
    n = values.size
    before = size // 2
    after = size - before - 1
    line = np.empty(n + size - 1)  # the values extended by the mode, as scipy's line buffer
    for i in range(before):
        line[i] = values[(i - before) % n] if wrap else values[0]
    line[before : before + n] = values
    for i in range(after):
        line[before + n + i] = values[i % n] if wrap else values[n - 1]
    out = np.empty(n)
    total = 0.0
    for i in range(size):
        total += line[i]
    out[0] = total / size
    for i in range(1, n):
        total += line[i + size - 1] - line[i - 1]
        out[i] = total / size
    return out


@njit(cache=True)
def _loo_coverage_kernel(
    ordered: FloatArray, rest: FloatArray, levels: FloatArray, covered: FloatArray
) -> None:
    cuts, size = ordered.shape
    m = rest.shape[1]
    for i in range(cuts):
        count = 0
        for v in range(levels.size):
            position = levels[v] * (m - 1)
            below = math.floor(position)
            above = min(below + 1, m - 1)
            low = rest[i, below]
            edge = low + (position - below) * (rest[i, above] - low)
            # the values at or below the edge: a prefix of the sorted cut (the edges rise with
            # the levels, so the count moves a little each time; both ways, to be exact)
            while count < size and ordered[i, count] <= edge:
                count += 1
            while count > 0 and ordered[i, count - 1] > edge:
                count -= 1
            covered[v] += count / size


def column_medians(rows: FloatArray) -> FloatArray | None:
    """The median of each column of a 2-d float64 array with at least one row, as
    ``np.median(rows, axis=0)`` gives it; ``None`` where numpy must compute it (a NaN or a -0.0)."""
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.dtype != np.float64:
        raise ValueError(f"column_medians: need a 2-d float64 array with rows, got {rows.shape}")
    out = np.empty(rows.shape[1])
    return out if _column_medians_kernel(rows, out) else None


def median(values: FloatArray) -> float:
    """``float(np.median(values))`` of a non-empty 1-d float64 array; NaN where numpy must
    compute it (a NaN or a -0.0: the caller asks numpy then)."""
    if values.ndim != 1 or values.size == 0 or values.dtype != np.float64:
        raise ValueError(f"median: need a non-empty 1-d float64 array, got {values.shape}")
    return float(_median_kernel(values))


def moving_mean(values: FloatArray, size: int, *, wrap: bool) -> FloatArray:
    """``scipy.ndimage.uniform_filter1d(values, size, mode="wrap" if wrap else "nearest")`` of
    a non-empty 1-d float64 array: scipy's running sum over its extended line, each output the
    sum divided by ``size``, in the same order (without its wrappers: a profile is smoothed
    thousands of times a replay)."""
    if values.ndim != 1 or values.size == 0 or values.dtype != np.float64 or size < 1:
        raise ValueError(f"moving_mean: need a non-empty 1-d float64 array, size >= 1, got {size}")
    return np.asarray(_moving_mean_kernel(values, size, wrap))


def loo_coverage(ordered: FloatArray, rest: FloatArray, levels: FloatArray) -> FloatArray:
    """Per level, the sum over the cuts of the fraction of cut ``i`` (row ``i`` of ``ordered``,
    sorted) at or below the quantile (``np.quantile``'s linear one) of the other cuts (row ``i``
    of ``rest``, sorted) at that level: :func:`autoscaler.forecast._band_level`'s leave-one-out
    coverage, with the same interpolation and the same sums in the same order as its numpy
    form. Counts values at or below each edge as ``np.searchsorted(side="right")`` does: the
    rows must hold no NaN (which numpy's search places)."""
    if (
        ordered.ndim != 2
        or rest.shape[0] != ordered.shape[0]
        or ordered.shape[1] == 0
        or rest.shape[1] == 0
        or levels.ndim != 1
    ):
        raise ValueError(f"loo_coverage: cuts of {ordered.shape} and the rest {rest.shape}")
    covered = np.zeros(levels.size)
    _loo_coverage_kernel(ordered, rest, levels, covered)
    return covered


def warm_up() -> None:
    """Compile (or load from cache) every kernel on tiny inputs."""
    column_medians(np.ones((3, 2)))
    median(np.ones(2))
    moving_mean(np.ones(2), 2, wrap=True)
    loo_coverage(np.ones((3, 2)), np.ones((3, 4)), np.array([0.5, 0.9]))
