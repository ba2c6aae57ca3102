"""Forecast fits shared between replays in one process: the same history is fitted once.

A sweep replays many cells of one trace; every cell with the forecast on records the same demand
history (demand does not depend on where pods run, only on the trace and the policies) and refits
at the same times, so most fits repeat.  ``SharedFits`` wraps the production forecaster (the one
function that fits, never a copy): a fit is looked up by the exact bytes of its history, the
horizon and the wrapped forecaster's settings, so a hit returns what the fit would have returned.
The cache lives in the process (each pool worker has its own) and is bounded.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoscaler.forecast import FloatArray, Forecast, Forecaster, SeasonalForecaster

__all__ = ["SharedFits", "shared_fits"]

MAX_FITS = 8192
_FITS: OrderedDict[tuple[Any, ...], Forecast] = OrderedDict()


@dataclass(frozen=True, slots=True)
class SharedFits:
    """A :class:`Forecaster` that fits through ``inner`` once per distinct history and horizon."""

    inner: SeasonalForecaster
    ts: FloatArray | None = None
    values: FloatArray | None = None

    def fit(self, ts: FloatArray, values: FloatArray) -> SharedFits:
        return SharedFits(self.inner, np.asarray(ts, np.float64), np.asarray(values, np.float64))

    def predict(self, *, horizon: float) -> Forecast:
        if self.ts is None or self.values is None:
            raise RuntimeError("predict() before fit()")
        digest = hashlib.blake2b(self.ts.tobytes(), digest_size=16)
        digest.update(self.values.tobytes())
        key = (self.inner.quantile, self.inner.settings, self.ts.size, digest.digest(), horizon)
        found = _FITS.get(key)
        if found is None:
            found = self.inner.fit(self.ts, self.values).predict(horizon=horizon)
            _FITS[key] = found
            if len(_FITS) > MAX_FITS:
                _FITS.popitem(last=False)
        else:
            _FITS.move_to_end(key)
        return found


def shared_fits(inner: SeasonalForecaster | None = None) -> Forecaster:
    return SharedFits(inner or SeasonalForecaster())
