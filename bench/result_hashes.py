"""A fingerprint of every variant's replay result, to check a speed change changes no answer.

    .venv/bin/python bench/result_hashes.py [--audit] [--workers N] [--save FILE] [--check FILE]

Replays the default Alibaba list, ``../shared/data/openb/openb_pod_list_gpushare80.csv`` and both
crane series (``replay``'s own import defaults and the default scenario), every variant (Spillover
and the baselines), and prints one row per variant: the SHA-256 of its whole ``Result``
(``dataclasses.asdict``: every field, floats by ``repr``, arrays by dtype, shape and bytes) and its
cost in CNY, plus a fingerprint of each trace's fluid bound.  ``--save`` writes the rows as JSON,
``--check`` compares with a saved file and exits 1 on any difference (naming the variant).
``--audit`` runs each replay with ``simulate(..., audit=True)`` (the invariant checks; slow).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

# bench/autoscaler.py would shadow the package: drop this folder from the path, as every bench does
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np  # noqa: E402

from autoscaler.replay.cli import load_trace  # noqa: E402
from autoscaler.replay.demo import data_file  # noqa: E402
from autoscaler.replay.executors import PoolExecutor, SerialExecutor  # noqa: E402
from autoscaler.replay.report import fluid_bound, variants  # noqa: E402
from autoscaler.replay.scenario import load_scenario  # noqa: E402
from autoscaler.replay.simulator import simulate  # noqa: E402
from autoscaler.replay.sweep import simulate_variants  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRACES = [
    (str(data_file("alibaba-openb-pods.csv")), "openb"),
    (str(DATA / "openb" / "openb_pod_list_gpushare80.csv"), "openb"),
    (str(DATA / "crane-series-daily.csv"), "series"),
    (str(DATA / "crane-series-weekly.csv"), "series"),
]


def _feed(h: Any, value: Any) -> None:
    """Every leaf in a fixed order: a changed field, float bit or array element changes the hash."""
    if isinstance(value, np.ndarray):
        h.update(f"nd{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(f"d{len(value)}".encode())
        for k in sorted(value, key=repr):
            _feed(h, k)
            _feed(h, value[k])
    elif isinstance(value, list | tuple):
        h.update(f"l{len(value)}".encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, float):
        h.update(f"f{value!r}".encode())
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def fingerprint(value: Any) -> str:
    h = hashlib.sha256()
    is_instance = dataclasses.is_dataclass(value) and not isinstance(value, type)
    _feed(h, dataclasses.asdict(value) if is_instance else value)
    return h.hexdigest()[:16]


def rows(*, audit: bool, workers: int) -> dict[str, dict[str, Any]]:
    scenario = load_scenario(None)
    out: dict[str, dict[str, Any]] = {}
    for path, fmt in TRACES:
        trace = load_trace(path, fmt)
        bound = fluid_bound(trace, scenario)
        if audit:
            results = [simulate(trace, scenario, v, audit=True) for v in variants(scenario, bound)]
        else:
            ex = PoolExecutor(workers) if workers > 1 else SerialExecutor()
            parts_bound, results = simulate_variants(trace, scenario, executor=ex)
            if fingerprint(parts_bound) != fingerprint(bound):  # the bound the baselines used
                sys.exit(f"{path}: simulate_variants' fluid bound is not fluid_bound's")
        name = Path(path).name
        out[f"{name} fluid-bound"] = {"hash": fingerprint(bound), "cost": None}
        for r in results:
            out[f"{name} {r.name}"] = {
                "hash": fingerprint(r),
                "cost": round(r.ecs_cost + r.eci_cost + r.restart_cost),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit", action="store_true", help="replay with audit=True (slow)")
    parser.add_argument("--workers", type=int, default=2, help="replay processes (1: serial)")
    parser.add_argument("--save", default="", help="write the fingerprints to this JSON file")
    parser.add_argument("--check", default="", help="compare with a saved JSON file")
    args = parser.parse_args()
    got = rows(audit=args.audit, workers=args.workers)
    print("| trace variant | result sha256[:16] | cost CNY |\n| --- | --- | ---: |")
    for key, row in got.items():
        cost = "" if row["cost"] is None else f"{row['cost']:,}"
        print(f"| {key} | {row['hash']} | {cost} |")
    if args.save:
        Path(args.save).write_text(json.dumps(got, indent=1) + "\n")
    if args.check:
        want = json.loads(Path(args.check).read_text())
        bad = [k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)]
        for k in bad:
            print(f"DIFFERS: {k}: expected {want.get(k)}, got {got.get(k)}", file=sys.stderr)
        if bad:
            sys.exit(1)
        print(f"same as {args.check}: {len(got)} fingerprints")


if __name__ == "__main__":
    main()
