"""What the ECI pod-hours "for lack of room" are made of (issue 12): Spillover alone, one trace.

    .venv/bin/python bench/eci_no_room.py [--every 1800] FILE [FILE ...]

Replays the Spillover variant of the default scenario (the replay command's import defaults) and
breaks ``Result.eci_no_room_pod_seconds`` down, printing Markdown:

- by pod class (whole GPUs asked, CPU size, LS replica or Job pod), exact pod-hours;
- by how long each stay on ECI lasted, exact;
- by whether a node of a group that holds the pod was booting when it went to ECI, exact;
- sampled every ``--every`` seconds of replay time (pod-hours = samples x period): what the
  shared decision functions say of each such pod then: not movable (``eviction.move_blocker``);
  rebalance would not move it into room (``demand.remaining`` with rebalance's ``outlived``, and
  ``costs.move_saving`` through ``rebalance._saving``: 0 left, or not worth it); an existing Ready
  node of a group that holds it has room (so rebalance moves it at its next pass, unless the
  rate limit or pending pods take the room first); no room, and the planner's own break-even
  (``demand.cheaper_on_a_new_node``, the function scale-up uses) says a new node would pay, or
  that ECI is cheaper than any new node for its expected remaining run time.

Not a test: it never asserts.  It wraps the replay's scheduler and samples its state; the
replay's decisions are untouched (the Result is the one the replay command gives).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

# bench/autoscaler.py would shadow the package: drop this folder from the path, as every bench does
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from autoscaler import rebalance as moving  # noqa: E402
from autoscaler.context import Context, policy_of  # noqa: E402
from autoscaler.demand import cheaper_on_a_new_node, remaining_in  # noqa: E402
from autoscaler.eviction import lost_work, move_blocker  # noqa: E402
from autoscaler.nodegroup import MoveCosts  # noqa: E402
from autoscaler.replay import simulator as sim  # noqa: E402
from autoscaler.replay.cli import load_trace  # noqa: E402
from autoscaler.replay.report import fluid_bound, variants  # noqa: E402
from autoscaler.replay.scenario import load_scenario  # noqa: E402
from autoscaler.replay.scheduler import PodRecord, Scheduler  # noqa: E402
from autoscaler.replay.trace import detect_format  # noqa: E402
from extender.model import NodeKind  # noqa: E402

STAYS: tuple[tuple[float, str], ...] = (
    (600, "< 10 min"),
    (3600, "10 min - 1 h"),
    (6 * 3600, "1 - 6 h"),
    (86400, "6 - 24 h"),
    (7 * 86400, "1 - 7 days"),
    (math.inf, "> 7 days"),
)


def pod_class(rec: PodRecord) -> str:
    cpu, _, gpu = rec.req
    if gpu == 0:
        g = "CPU"
    elif gpu < 1000:
        g = "GPU < 1"
    else:
        g = f"{math.ceil(gpu / 1000)} GPU"
    c = "<= 4 cores" if cpu <= 4000 else "<= 16 cores" if cpu <= 16000 else "> 16 cores"
    kind = "LS replica" if rec.wl.kind == "Deployment" else f"{rec.wl.kind} pod"
    return f"{kind}, {g}, {c}"


def stay_of(seconds: float) -> str:
    return next(label for top, label in STAYS if seconds < top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--every", type=float, default=1800.0)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.files:
        breakdown(path, args.every)
    return 0


def breakdown(path: Path, every: float) -> None:
    scenario = load_scenario(None)
    trace = load_trace(str(path), detect_format(path))
    variant = variants(scenario, fluid_bound(trace, scenario))[0]
    simulation = sim.Simulation(trace, scenario, variant)
    s: Scheduler = simulation.scheduler
    settings = scenario.autoscaler.settings
    costs = settings.rebalance or MoveCosts()
    horizon = settings.forecast_horizon
    by_class: dict[str, float] = defaultdict(float)
    by_stay: dict[str, float] = defaultdict(float)
    by_arrival: dict[str, float] = defaultdict(float)
    stays_n: dict[str, int] = defaultdict(int)
    arrival: dict[str, str] = {}
    sampled: dict[str, float] = defaultdict(float)
    sampled_class: dict[tuple[str, str], float] = defaultdict(float)

    bind, unbind = Scheduler.bind, Scheduler.unbind

    def booting_for(rec: PodRecord) -> bool:
        now = s.clock.now
        provider = simulation.provider
        for state in provider._nodes.values():
            if state.ready_at > now:
                group = state.node.labels.get(settings.node_group_label, "")
                if group in s.groups and s.fits_group(rec, group):
                    return True
        return False

    def on_bind(self: Scheduler, rec: PodRecord, node: object) -> None:
        if node is None and rec.no_room and not rec.balloon:
            arrival[rec.uid] = (
                "a node of a group that holds it was booting"
                if booting_for(rec)
                else "no node was booting for it"
            )
        bind(self, rec, node)  # type: ignore[arg-type]

    def on_unbind(self: Scheduler, rec: PodRecord) -> None:
        if rec.bound and rec.node is None and rec.no_room and not rec.balloon:
            ran = max(0.0, self.clock.now - rec.started)
            if ran > 0:
                by_class[pod_class(rec)] += ran
                by_stay[stay_of(ran)] += ran
                stays_n[stay_of(ran)] += 1
                by_arrival[arrival.get(rec.uid, "?")] += ran
        unbind(self, rec)

    s.bind = on_bind.__get__(s)  # type: ignore[method-assign]
    s.unbind = on_unbind.__get__(s)  # type: ignore[method-assign]
    sample = simulation._sample
    last = [-math.inf]

    def on_sample(t: float) -> None:
        sample(t)
        if t - last[0] < every:
            return
        last[0] = t
        on_eci = [r for r in s.pods.values() if r.bound and r.node is None and r.no_room]
        if not on_eci:
            return
        groups = simulation.autoscaler._group_states()
        ctx = Context(s.state, groups, settings)
        for rec in on_eci:
            sampled_class[(pod_class(rec), judge(ctx, rec, t))] += every
            sampled[judge(ctx, rec, t)] += every

    def judge(ctx: Context, rec: PodRecord, now: float) -> str:
        pod = rec.pod
        if move_blocker(pod) is not None:
            return "not movable (bare pod / safe-to-evict false)"
        policy = policy_of(ctx.state.policies, pod)
        if policy is None:
            return "no policy"
        unit = next(i for i, u in enumerate(policy.units) if u.resource is NodeKind.ECS)
        cls = ctx.class_of(pod)
        left = remaining_in(ctx.state, pod, now=now, horizon=horizon, outlived=horizon)
        if left <= 0:
            return "rebalance: no expected time left (remaining 0)"
        rate = (
            moving._share_price(ctx, pod, cls, policy, unit)
            if lost_work(pod, ran=now - pod.created) > 0
            else 0.0
        )
        saving = moving._saving(pod, left, now=now, rate=rate, settings=settings, costs=costs)
        room = any(
            n.cpu >= rec.req[0] and n.mem >= rec.req[1] and n.gpu >= rec.req[2] and n.pods >= 1
            for g in s.group_order
            if s.fits_group(rec, g)
            for n in s.by_group[g]
        )
        # the planner's expectation is rebalance's (``outlived``: one more horizon)
        pays = cheaper_on_a_new_node(ctx, pod, cls, policy, unit, left, now)
        if saving <= 0:
            return "rebalance: the move would not pay (restart + lost work >= ECI's bill left)"
        if room:
            return "room on an existing node, worth moving (next pass / rate limit / pending first)"
        if pays:
            return "no room; the planner's break-even: a new node would pay"
        return "no room; the planner's break-even: ECI cheaper than any new node (by price)"

    simulation._sample = on_sample  # type: ignore[method-assign]
    result = simulation.run()
    total = result.ecs_pod_seconds + result.eci_pod_seconds
    no_room = result.eci_no_room_pod_seconds
    print(
        f"\n### {path.stem}: ECI for lack of room {no_room / 3600:,.0f} pod-h = "
        f"{no_room / total:.1%} of {total / 3600:,.0f} pod-h (cost {result.cost:,.0f})\n"
    )

    def table(title: str, rows: dict[str, float], counts: dict[str, int] | None = None) -> None:
        print(f"| {title} | pod-h | share of all pod-h |" + (" stays |" if counts else ""))
        print("| --- | ---: | ---: |" + (" ---: |" if counts else ""))
        for k, v in sorted(rows.items(), key=lambda kv: -kv[1]):
            extra = f" {counts[k]} |" if counts else ""
            print(f"| {k} | {v / 3600:,.0f} | {v / total:.2%} |{extra}")
        print()

    table("pod class", by_class)
    table("stay on ECI", by_stay, stays_n)
    table("when it went to ECI", by_arrival)
    scale = no_room / sum(sampled.values()) if sampled else 0.0
    table("sampled: what the shared functions say", {k: v * scale for k, v in sampled.items()})
    top: dict[str, float] = defaultdict(float)
    for (cls, why), v in sampled_class.items():
        top[f"{cls}: {why}"] += v * scale
    table(
        "sampled, by class and reason (largest 12)",
        dict(sorted(top.items(), key=lambda kv: -kv[1])[:12]),
    )


if __name__ == "__main__":
    sys.exit(main())
