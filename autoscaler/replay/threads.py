"""One BLAS thread for the replay.

The forecaster's least-squares fits are small; with OpenBLAS's default thread pool on a busy
2-core machine each fit took ~30x longer (0.3 s instead of 10 ms), which dominated a replay.
Environment variables only work before numpy is imported, so this sets the thread count of the
OpenBLAS libraries already loaded (numpy's and scipy's), best effort: if a symbol is missing
nothing happens.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["limit_blas_threads"]

_SYMBOLS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def limit_blas_threads(n: int = 1) -> int:
    """Set every loaded OpenBLAS to ``n`` threads; returns how many libraries were set."""
    import numpy  # noqa: F401  (load the libraries first)
    import scipy.linalg  # noqa: F401

    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(n))
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return 0
    done = 0
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in _SYMBOLS:
            setter = getattr(lib, symbol, None)
            if setter is not None:
                setter(n)
                done += 1
                break
    return done
