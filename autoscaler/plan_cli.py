"""``spillover-autoscaler plan``: one planning pass over a cluster file, printed with its reasons.

    spillover-autoscaler plan --cluster autoscaler/data/example-cluster.yaml \\
        --groups autoscaler/data/default-groups.yaml [--json]

The cluster file holds Node, Pod and ResourcePolicy objects (``extender.snapshot.load_cluster``).
A node belongs to a node group through the label named by ``settings.nodeGroupLabel`` (default
``spillover.dev/node-group: <group name>``); a group's current target size is the larger of its
``desired`` and the number of its nodes in the file.  ``--unneeded`` reads the unneeded-since
timestamps of an earlier pass (the JSON ``unneeded`` map of ``--json``) so scale-down can be
previewed; ``--forecast`` fits a forecast on a ``ts,value`` CSV of cpu demand in cores (general
groups), ``--gpu-forecast`` on one of GPU demand in GPUs (GPU groups).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extender.commandline import Parser, at_least, fail, file_problem, plain, run_main
from extender.model import ModelError
from extender.snapshot import ClusterState, load_cluster

from .nodegroup import AutoscalerConfig, ConfigError, load_config
from .planner import BACKENDS, GroupNode, GroupState, Plan, plan

if TYPE_CHECKING:
    from .forecast import Forecast

__all__ = ["add_parser", "format_plan", "group_states", "main", "run"]

_SHOWN_PODS = 8


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``plan`` on an ``argparse`` sub-parser collection."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plan",
        help="plan node-group sizes for a cluster file and explain every decision",
        description=plain(__doc__),
    )
    parser.add_argument(
        "--cluster", required=True, help="YAML of Node, Pod, ResourcePolicy objects"
    )
    parser.add_argument("--groups", required=True, help="node-group configuration (YAML)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--now", type=at_least(float, 0), default=None, help="unix time (default: the clock)"
    )
    parser.add_argument("--unneeded", default=None, help="JSON map node -> unneeded since")
    parser.add_argument("--forecast", default=None, help="ts,value CSV of cpu demand (cores)")
    parser.add_argument("--gpu-forecast", default=None, help="ts,value CSV of GPU demand (GPUs)")
    parser.add_argument("--backend", choices=BACKENDS, default="numba", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)
    return parser


def group_states(config: AutoscalerConfig, state: ClusterState) -> list[GroupState]:
    """Groups as a static cluster shows them: members by label, target = max(desired, members)."""
    label = config.settings.node_group_label
    out = []
    for group in config.groups:
        members = tuple(
            GroupNode(n.name, n.created)
            for n in state.nodes.values()
            if n.labels.get(label) == group.name
        )
        out.append(GroupState(group, max(group.desired, len(members)), members))
    return out


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.groups)
        state = load_cluster(args.cluster)
        unneeded = _read_unneeded(args.unneeded) if args.unneeded else {}
    except (ConfigError, ModelError, ValueError) as err:
        return fail(err)
    now = time.time() if args.now is None else args.now
    forecasts: dict[str, Forecast] = {}
    for cls, path in (("cpu", args.forecast), ("gpu", args.gpu_forecast)):
        if not path:
            continue
        from .forecast import fit_forecast, read_series

        try:
            ts, values = read_series(path)
        except (OSError, UnicodeDecodeError) as err:
            return fail(file_problem(path, err))
        except ValueError as err:  # read_series names the file and line
            return fail(err)
        try:
            forecasts[cls] = fit_forecast(ts, values, horizon=config.settings.forecast_horizon)
        except ValueError as err:
            return fail(f"{path}: {err}")
    result = plan(
        state,
        group_states(config, state),
        forecast=forecasts or None,
        settings=config.settings,
        now=now,
        unneeded=unneeded,
        backend=args.backend,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        print(format_plan(result))
    return 0


def format_plan(result: Plan) -> str:
    lines = []
    for up in result.scale_ups:
        lines.append(f"scale up   {up.group}: +{up.delta} -> {up.new_target} nodes")
        lines.append(f"    why: {up.reason}")
        if up.pods:
            shown = ", ".join(up.pods[:_SHOWN_PODS])
            more = f" and {len(up.pods) - _SHOWN_PODS} more" if len(up.pods) > _SHOWN_PODS else ""
            lines.append(f"    pods: {shown}{more}")
    for down in result.scale_downs:
        lines.append(f"scale down {down.group}: remove node {down.node}")
        lines.append(f"    why: {down.reason}")
    if not result.scale_ups and not result.scale_downs:
        lines.append("no change")
    for pod, reason in sorted(result.unschedulable.items()):
        lines.append(f"unschedulable {pod}: {reason}")
    for node, since in sorted(result.unneeded.items()):
        lines.append(f"unneeded {node} since {since:.0f}")
    lines.extend(f"note: {note}" for note in result.notes)
    return "\n".join(lines)


def _read_unneeded(path: str) -> dict[str, float]:
    try:
        raw = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise ValueError(file_problem(path, err)) from None
    if isinstance(raw, dict) and isinstance(raw.get("unneeded"), dict):
        raw = raw["unneeded"]
    if not isinstance(raw, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in raw.values()
    ):
        raise ValueError(f"{path}: expected a JSON map of node name to unix time")
    return {str(k): float(v) for k, v in raw.items()}


def main(argv: list[str] | None = None) -> int:
    def command() -> int:
        parser = Parser(prog="spillover-autoscaler")
        add_parser(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        code: int = args.func(args)
        return code

    return run_main(command)


if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:] if len(sys.argv) > 1 and sys.argv[1] == "plan" else ["plan", *sys.argv[1:]]
        )
    )
