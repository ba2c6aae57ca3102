"""A true lower bound on what any policy that buys whole nodes pays, beside the report's references.

    .venv/bin/python bench/whole_node_bound.py FILE [FILE ...]   (openb pod lists)

The report's whole-node reference (``autoscaler.replay.report``) bills the part of a group's
demand it leaves to ECI at the group's mean ECI price, so a policy that chooses which pods go to
ECI can pay less: it is a heuristic.  This bound cannot be beaten by such a policy under the same
relaxations (nodes boot instantly and go the moment they are not needed, pods pack perfectly, the
scenario's prices; each pod in the group ``report.fluid_bound`` gives it).  The GPU group (one,
tainted, as in the default scenario: only GPU pods use it, and they no other group): at every
moment, for each node count ``n`` from 0 to ``ceil(x)`` (``x`` the fluid node count), the pods
left to ECI must cover, in every dimension d (cpu, memory, GPU, pods), what ``n`` nodes cannot
hold; their ECI bill is at least the fractional knapsack over d (pods by ECI price per unit of d,
cheapest first, the last one in part); the bound takes ``min over n of n x price + max over d``.
The other groups pooled (a pod may use any of them): per dimension d, each pod at the lesser of
ECI's price and its d at the cheapest of those groups' prices per unit of d; the largest of those
sums over d.  Pods no group holds pay ECI.

Prints, per file: fluid bound, this bound, the whole-node reference, each as CNY and over the
fluid bound.  Never asserts; exact (no sampling), independent of the machine's load.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import sys
from pathlib import Path

# bench/autoscaler.py would shadow the package: drop this folder from the path, as every bench does
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from autoscaler.replay.cli import load_trace  # noqa: E402
from autoscaler.replay.report import _cheapest, fluid_bound  # noqa: E402
from autoscaler.replay.scenario import load_scenario  # noqa: E402
from autoscaler.replay.trace import PodCreated, PodDeleted, detect_format  # noqa: E402
from extender.model import Resources  # noqa: E402


class Knapsack:
    """The least ECI bill per second that covers a need in one dimension ``d``, fractional (the
    last pod in part): a lower bound on any set of whole pods that covers it."""

    def __init__(self, pods: list[tuple[tuple[int, int, int, int], float]], d: int) -> None:
        ranked = sorted((p for p in pods if p[0][d] > 0), key=lambda p: p[1] / p[0][d])
        self.units = [float(p[0][d]) for p in ranked]
        self.rates = [p[1] for p in ranked]
        self.cum_units = list(itertools.accumulate(self.units))
        self.cum_rates = list(itertools.accumulate(self.rates))

    def cost(self, need: float) -> float:
        if need <= 0:
            return 0.0
        i = bisect.bisect_left(self.cum_units, need)
        if i >= len(self.units):
            return math.inf  # not even every pod on ECI covers it (cannot happen: need <= sum)
        before_units = self.cum_units[i - 1] if i else 0.0
        before_rate = self.cum_rates[i - 1] if i else 0.0
        return before_rate + (need - before_units) / self.units[i] * self.rates[i]


def bound(path: Path) -> None:
    scenario = load_scenario(None)
    trace = load_trace(str(path), detect_format(path))
    settings = scenario.autoscaler.settings
    eci = settings.eci_price
    groups = {g.name: g for g in scenario.autoscaler.groups}
    caps = {
        n: g.template(overhead=settings.daemonset_overhead).allocatable for n, g in groups.items()
    }
    gpu_groups = [n for n, c in caps.items() if c.gpu_milli > 0]
    if len(gpu_groups) != 1 or any(not groups[n].taints for n in gpu_groups):
        print(f"| {path.stem} | needs one tainted GPU group, as the default scenario has | | |")
        return
    (gpu,) = gpu_groups
    # The other groups pooled: per unit of each dimension, the cheapest of them
    pooled = [
        min(
            groups[n].price_per_hour / 3600 / k
            for n, c in caps.items()
            if n != gpu
            for k in [(c.cpu_milli, c.memory, c.gpu_milli, c.pods)[d]]
            if k > 0
        )
        if d != 2
        else 0.0
        for d in range(4)
    ]
    pool = [0.0, 0.0, 0.0, 0.0]  # per dimension: sum over pods of min(its ECS price, ECI's)
    live: dict[str, tuple[tuple[int, int, int, int], float]] = {}
    where: dict[str, tuple[str, float, tuple[int, int, int, int]]] = {}
    choice: dict[Resources, str] = {}
    total, eci_only, eci_rate, last = 0.0, 0.0, 0.0, 0.0
    cached: list[float] = []  # the GPU group's bound rate per second, while unchanged

    def gpu_rate() -> float:
        pods = list(live.values())
        if not pods:
            return 0.0
        cap = caps[gpu]
        c = (cap.cpu_milli, cap.memory, cap.gpu_milli, cap.pods)
        sums = [sum(p[0][d] for p in pods) for d in range(4)]
        x = max(s / k if k else (math.inf if s else 0.0) for s, k in zip(sums, c, strict=True))
        price = groups[gpu].price_per_hour / 3600
        sacks = [Knapsack(pods, d) for d in range(4)]
        best = math.inf
        for n in range(math.ceil(x - 1e-9) + 1):
            eci_part = max(sacks[d].cost(sums[d] - n * c[d] - 1e-6 * c[d]) for d in range(4))
            best = min(best, n * price + eci_part)
        return best

    def add(req: tuple[int, int, int, int], per_second: float, k: int) -> None:
        for d in (0, 1, 3):
            pool[d] += k * min(req[d] * pooled[d], per_second)

    for ev in trace.events:
        dt = ev.t - last
        if dt > 0:
            if not cached:
                cached.append(gpu_rate())
            total += (cached[0] + max(pool)) * dt
            eci_only += eci_rate * dt
            last = ev.t
        if isinstance(ev, PodCreated):
            r = ev.template.requests
            if r not in choice:
                choice[r] = _cheapest(r, scenario)[0]
            group = choice[r]
            per_second = eci.per_hour(r) / 3600
            req = (r.cpu_milli, r.memory, r.gpu_milli, 1)
            where[ev.uid] = (group, per_second, req)
            if not group:
                eci_rate += per_second
            elif group == gpu:
                live[ev.uid] = (req, per_second)
                cached.clear()
            else:
                add(req, per_second, 1)
        elif isinstance(ev, PodDeleted):
            found = where.pop(ev.uid, None)
            if found is None:
                continue
            group, per_second, req = found
            if not group:
                eci_rate -= per_second
            elif group == gpu:
                live.pop(ev.uid, None)
                cached.clear()
            else:
                add(req, per_second, -1)
    fluid = fluid_bound(trace, scenario)
    lower = total + eci_only
    print(
        f"| {path.stem} | {fluid.cost:,.0f} | {lower:,.0f} ({lower / fluid.cost:.3f}x) "
        f"| {fluid.whole_node_cost:,.0f} ({fluid.whole_node_cost / fluid.cost:.3f}x) |",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    print("| file | fluid bound | whole-node lower bound | whole-node reference |")
    print("| --- | ---: | ---: | ---: |")
    for path in args.files:
        bound(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
