"""The replay's demand history (``autoscaling._History``): the windows a forecast refit reads."""

from __future__ import annotations

import random

import numpy as np

from autoscaler.predictive import CLASSES
from autoscaler.replay.autoscaling import _History


def test_the_history_gives_each_refit_the_window_the_lists_gave() -> None:
    # The replay kept its demand history in lists, which every refit converted to arrays, class
    # by class (the times once per class); it keeps numpy buffers now.  Random bursts of samples
    # (one ``sample`` call adds one step or many, then trims) give the same windows as the
    # lists, byte for byte: the last ``keep`` samples, the oldest dropped once there are more
    # than twice ``keep``; as float64 arrays, the times one array for every class.
    rng = random.Random(5)
    for keep in (2, 3, 17):
        history = _History(CLASSES, keep=keep)
        times: list[float] = []
        series: dict[str, list[float]] = {cls: [] for cls in CLASSES}
        t = 0.0
        for _ in range(300):
            for _ in range(rng.choice([1, 1, 1, 2, 5, 3 * keep])):
                demand = {cls: rng.choice([0, 250, 8000, rng.randint(0, 10**7)]) for cls in CLASSES}
                history.add(t, demand)
                times.append(t)
                for cls in CLASSES:
                    series[cls].append(demand[cls] / 1000)
                t += 300.0
            history.trim()
            if len(times) > 2 * keep:
                del times[:-keep]
                for kept in series.values():
                    del kept[:-keep]
            first = max(0, len(times) - keep)
            window = history.window()
            assert list(window) == list(CLASSES)
            for cls, (ts, values) in window.items():
                assert type(ts) is np.ndarray
                assert type(values) is np.ndarray
                assert ts.tobytes() == np.asarray(times[first:], np.float64).tobytes()
                assert values.tobytes() == np.asarray(series[cls][first:], np.float64).tobytes()
                assert ts is window[CLASSES[0]][0]
