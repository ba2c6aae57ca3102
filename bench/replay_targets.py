"""Issue 12's targets on every published trace: the replay's summary against its own baselines.

    .venv/bin/python bench/replay_targets.py [--label after] [--owners qos|services|pod] [--scenario FILE]
        [--per-replica N|auto] [FILE ...]

Runs ``spillover-autoscaler replay --json`` (default scenario) on each openb pod list and each
demand series in ../shared/data (or the FILEs given) and prints one Markdown row per file: cost
(ECS / ECI), pending p99, cost against reactive-ecs (target <= 0.95x), the fluid ECS lower bound
(<= 1.3x), the whole-node reference (the same hindsight with whole nodes: what no node-by-node
decision can avoid; autoscaler.replay.report) and static keep-N (<= 0.85x), the share of
pod-hours on ECI (in brackets: of pods the policy sent there for lack of ECS room, the <= 2 %
target; after the semicolon the part of it that went there by price: the planner's break-even
judged ECI cheaper than any new node, ``autoscaler.replay.report``; the rest went beyond a unit's
``max``), pods moved back, and the two largest items of the
cost split.  Never asserts; a file the replay refuses gets its one-line reason.  Series replay
with the command's default ``--per-replica auto``, except the two established ones
(crane-series-daily and -weekly), which keep the demo's explicit ``--per-replica 20`` so that
their rows stay comparable with the earlier ones in RESULTS.md; ``--per-replica`` replays every
series at the scale given.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# bench/autoscaler.py would shadow the package: drop this folder from the path, as every bench does
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from autoscaler.replay.demo import PER_REPLICA  # noqa: E402
from autoscaler.replay.trace import TraceError, detect_format  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OPENB = [DATA / "alibaba-openb-pods.csv", *sorted((DATA / "openb").glob("openb_pod_list_*.csv"))]
SERIES = [
    DATA / "crane-series-daily.csv",
    DATA / "crane-series-weekly.csv",
    *sorted((DATA / "crane").glob("*.csv")),
]
ESTABLISHED = ("crane-series-daily", "crane-series-weekly")  # replayed at the demo's scale
HEADER = (
    "| file | run | cost (ECS / ECI) | p99 s | vs reactive | vs fluid | vs whole-node | vs static "
    "| ECI share (no room; by price) | moves | largest costs |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
)


def replay(path: Path, fmt: str, extra: list[str], out: Path) -> dict[str, Any] | str:
    command = [sys.executable, "-m", "autoscaler.cli", "replay", "--format", fmt, "--quiet"]
    done = subprocess.run(
        [*command, "--json", "--out", str(out), *extra, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit {done.returncode}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def row(name: str, label: str, d: dict[str, Any] | str) -> str:
    if isinstance(d, str):
        return f"| {name} | {label} | not replayed: {d} | | | | | | | | |"
    s = d["summary"]
    base = {b["name"]: b for b in d["baselines"]}

    def ratio(other: float | None) -> str:
        return f"{s['cost'] / other:.2f}x" if other else "-"

    split = s.get("cost_split") or {}
    top = sorted(split.items(), key=lambda kv: -kv[1])[:2]
    return (
        f"| {name} | {label} | {s['cost']:,.0f} ({s['ecs_cost']:,.0f} / {s['eci_cost']:,.0f}) "
        f"| {s['pending_p99']:.1f} | {ratio(base.get('reactive-ecs', {}).get('cost'))} "
        f"| {ratio((d.get('fluid_ecs_lower_bound') or {}).get('cost'))} "
        f"| {ratio((d.get('whole_node_reference') or {}).get('cost'))} "
        f"| {ratio(base.get('static-N', {}).get('cost'))} | {s['eci_pod_hours_share']:.1%} "
        f"({s.get('eci_pod_hours_share_no_room', 0.0):.1%}; "
        f"{s.get('eci_pod_hours_share_no_room_by_price', 0.0):.1%}) "
        f"| {s.get('moves', 0)} | {', '.join(f'{k} {v:,.0f}' for k, v in top)} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--label", default="now")
    parser.add_argument("--group-by-shape", action="store_true", help="openb: --group-by shape")
    parser.add_argument(
        "--owners", choices=("qos", "services", "pod"), default=None, help="openb: --owners"
    )
    parser.add_argument("--scenario", default="", help="scenario YAML (default: the bundled one)")
    parser.add_argument("--per-replica", default="", help="series: every one at this scale")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    extra = ["--group-by", "shape"] if args.group_by_shape else []
    extra += ["--owners", args.owners] if args.owners else []
    common = ["--scenario", args.scenario] if args.scenario else []
    print(HEADER)
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.files or [*OPENB, *SERIES]:
            try:
                fmt = detect_format(path)  # the replay's one detector: by content, not the name
            except TraceError as err:
                print(row(path.stem, args.label, str(err)), flush=True)
                continue
            options = common + (extra if fmt == "openb" else [])
            if fmt == "series" and (args.per_replica or path.stem in ESTABLISHED):
                options += ["--per-replica", args.per_replica or f"{PER_REPLICA:g}"]
            d = replay(path, fmt, options, Path(tmp) / path.stem)
            print(row(path.stem, args.label, d), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
