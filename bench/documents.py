"""Reading the input files: CPU time of each reader on the shared data (issue 11, typed documents).

Prints one markdown row per reader: the best ``time.process_time`` of a few runs, so the numbers
hold on a busy machine.  Run it against two checkouts in the same minutes to compare, e.g.
``PYTHONPATH=../main .venv/bin/python bench/documents.py`` and ``.venv/bin/python bench/documents.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# bench/autoscaler.py would shadow the package: drop this folder from the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from autoscaler.nodegroup import load_config  # noqa: E402
from autoscaler.replay.importers import import_openb  # noqa: E402
from autoscaler.replay.scenario import load_scenario  # noqa: E402
from autoscaler.replay.trace import read_trace, write_trace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PODS = SHARED / "alibaba-openb-pods.csv"
GROUPS = ROOT / "autoscaler" / "data" / "default-groups.yaml"


def best_cpu(fn: Callable[[], object], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    trace = import_openb(PODS)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "openb.jsonl"
        write_trace(path, trace)
        rows = [
            (f"read_trace, {len(trace.events):,} events", best_cpu(lambda: read_trace(path), 7)),
            (f"import_openb, {PODS.name}", best_cpu(lambda: import_openb(PODS), 5)),
            ("load_scenario (bundled)", best_cpu(load_scenario, 50)),
            ("load_config (default groups)", best_cpu(lambda: load_config(GROUPS), 50)),
        ]
    print("| reader | best CPU ms |")
    print("| --- | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.2f} |")


if __name__ == "__main__":
    main()
