"""Spillover against its baselines on one trace: the variants, the fluid bound, the verdict.

Variants (all in the same run, on the same trace and scenario):

- ``spillover``: the scenario's policies (ECS first, overflow to ECI), the planner with the
  forecast, reacting to pending pods after ``timing.reactionDelay``.
- ``reactive-ecs``: all-ECS with a cluster-autoscaler-like loop: the same planner with the
  forecast off and the policies' ECI units removed, acting on the loop period only.  Swept over
  ``baselines.headroom`` spare nodes in every group the trace uses (placeholder pods of one node
  each, preempted by real pods: the cluster-autoscaler overprovisioning pattern).
- ``all-eci``: every managed pod on ECI, no ECS nodes.
- ``static-N``: N nodes per group kept all the time (the mean fluid demand rounded up, or
  ``baselines.staticNodes``), overflow to ECI, no autoscaler.

The fluid ECS lower bound (DESIGN §7): every pod on the group that holds it most cheaply, packed
perfectly (nodes needed = the largest of cpu, memory, GPU and pod-count sums over capacity, as a
fraction), nodes appear instantly and cost nothing when idle.  Pods that fit no group are
charged at ECI prices.

ECI pod-hours (``Result``): every pod-hour on ECI (``eci_pod_hours_share``); of it, those of pods
the policy sent there for lack of ECS room (``eci_pod_hours_share_no_room``, issue 12's 2 %
target: ``extender.policy.Decision.no_room``); and of those, the pods that went there *by price*
(``eci_pod_hours_share_no_room_by_price``): when the pod went to ECI, the planner's own
break-even (``autoscaler.demand.new_node_could_pay``, the function the live controller's planner
uses, with its expected remaining run time, ``demand.remaining``) judged that no new node of any
group its policy may use could make it cheaper than ECI.  The rest
(``eci_pod_hours_share_no_room_ecs_would_pay``) are pods for which a new node could have paid,
had other pods filled the rest of it.  All three are always shown; the first is never replaced.

The whole-node reference (``Bound.whole_node_cost``) is the same hindsight with nodes that come
whole: at every moment each group's demand is held by ``ceil(x)`` nodes (``x`` its fluid node
count), or by ``floor(x)`` nodes and ECI for the rest, or all on ECI, whichever costs least at
that moment (ECI for a part of the demand billed at the group's pods' mean ECI price per unit of
demand, whole GPUs included).  Nodes still boot instantly, pack perfectly and go the moment they
are not needed, so it is not a policy anyone could run.  It is a heuristic reference, **not a
lower bound** on what a policy that buys whole nodes pays: the part of the demand it puts on ECI
pays the group's *mean* ECI price per unit of demand, while a policy chooses which pods go there
and can send those that ECI bills least per unit.  Example: an 8-GPU node at 64 CNY/h, ECI at 12
CNY/h per whole GPU, sixteen 0.5-GPU pods and one 1-GPU pod (9 GPUs, x = 1.125 nodes, ECI 204
CNY/h for all): the reference takes min(2 x 64, 64 + 0.125 / 1.125 x 204, 204) = 86.7 CNY/h, but
one node holding the sixteen half-GPU pods and the 1-GPU pod on ECI costs 64 + 12 = 76 CNY/h.
A ratio to it is therefore no proof that a target in multiples of the fluid bound is out of
reach (``bench/whole_node_bound.py`` computes a true lower bound for whole-node policies under
the same relaxations); what it adds over the fluid bound still shows the price of whole nodes: when a group's
demand is a few GPUs, a whole 8-GPU node or ECI both cost more than the fluid bound's fraction
of a node.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from autoscaler.context import by_identity
from autoscaler.costs import EciPrice, node_share
from extender.model import NodeKind, Pod, Resources
from extender.policy import ResourcePolicy, Unit
from extender.selectors import can_hold

from .scenario import Scenario
from .scheduler import admitted_tolerations
from .simulator import CostSplit, Result, Variant, simulate
from .trace import PodCreated, PodDeleted, ReplicasChanged, Trace

__all__ = [
    "NO_BOUND",
    "Bound",
    "Comparison",
    "closing_note",
    "compare",
    "fluid_bound",
    "kept_bound",
    "result_row",
    "split_table",
    "summary_json",
    "summary_markdown",
    "unmatched_note",
    "used_groups",
    "variant_of",
    "variants",
]


@dataclass(frozen=True, slots=True)
class Bound:
    cost: float
    node_seconds_by_group: dict[str, float]
    eci_cost: float  # pods no group can hold
    mean_nodes_by_group: dict[str, float]
    whole_node_cost: float = 0.0  # the whole-node reference (module docstring)


# Where only the variants' names and flags, or Spillover's variant, are needed: none of these
# depends on the bound (the baselines' spare and static nodes do).
NO_BOUND = Bound(0.0, {}, 0.0, {})


@dataclass(frozen=True, slots=True)
class Comparison:
    trace: str
    scenario: str
    results: list[Result]
    bound: Bound
    target_p99: float
    verdict: list[str] = field(default_factory=list)
    dominates: bool = False
    median_pod_life: float = math.nan  # seconds, pods created and deleted by the trace
    gpu_share_of_bound: float = 0.0  # share of the fluid bound's ECS cost in GPU groups

    @property
    def spillover(self) -> Result:
        return self.results[0]


def _cheapest(requests: Resources, scenario: Scenario) -> tuple[str, float]:
    """The group whose share of a node costs least for ``requests``, among the groups that can
    hold such a pod by the scheduler's rule (its taints against the admitted tolerations)."""
    best, best_cost = "", math.inf
    tolerations = admitted_tolerations(requests, eci=False)
    probe = Pod(uid="", name="", namespace="", requests=requests, tolerations=tolerations)
    for g in scenario.autoscaler.groups:
        template = g.template(overhead=scenario.autoscaler.settings.daemonset_overhead)
        if not can_hold(probe, template):
            continue
        share = node_share(requests, template.allocatable)
        if share <= 1.0 and share * g.price_per_hour < best_cost:
            best, best_cost = g.name, share * g.price_per_hour
    return best, best_cost


def fluid_bound(trace: Trace, scenario: Scenario) -> Bound:
    """The fluid ECS lower bound of a trace (see the module docstring)."""
    groups = {g.name: g for g in scenario.autoscaler.groups}
    overhead = scenario.autoscaler.settings.daemonset_overhead
    caps = {n: g.template(overhead=overhead).allocatable for n, g in groups.items()}
    eci: EciPrice = scenario.autoscaler.settings.eci_price
    sums = {n: [0, 0, 0, 0] for n in groups}
    rates = dict.fromkeys(groups, 0.0)  # what ECI bills per second for each group's pods
    node_seconds = dict.fromkeys(groups, 0.0)
    whole = 0.0
    eci_rate = 0.0
    eci_cost = 0.0
    live: dict[str, tuple[str, Resources, int]] = {}
    replicas: dict[Any, tuple[str, Resources, int]] = {}
    choice: dict[Resources, tuple[str, float]] = {}
    last = 0.0

    def nodes(name: str) -> float:
        c, s = caps[name], sums[name]
        return max(
            s[0] / c.cpu_milli if c.cpu_milli else 0.0,
            s[1] / c.memory if c.memory else 0.0,
            s[2] / c.gpu_milli if c.gpu_milli else (math.inf if s[2] else 0.0),
            s[3] / c.pods if c.pods else 0.0,
        )

    def add(group: str, r: Resources, k: int) -> None:
        nonlocal eci_rate
        if not group:
            eci_rate += k * eci.per_hour(r) / 3600
            return
        s = sums[group]
        s[0] += k * r.cpu_milli
        s[1] += k * r.memory
        s[2] += k * r.gpu_milli
        s[3] += k
        rates[group] = rates[group] + k * eci.per_hour(r) / 3600 if s[3] else 0.0

    for ev in trace.events:
        dt = ev.t - last
        if dt > 0:
            for name in groups:
                if sums[name][3]:
                    x = nodes(name)
                    node_seconds[name] += x * dt
                    whole += _whole_nodes(x, groups[name].price_per_hour / 3600, rates[name]) * dt
            eci_cost += eci_rate * dt
            last = ev.t
        if isinstance(ev, PodCreated):
            r = ev.template.requests
            if r not in choice:
                choice[r] = _cheapest(r, scenario)
            group = choice[r][0]
            live[ev.uid] = (group, r, 1)
            add(group, r, 1)
        elif isinstance(ev, PodDeleted):
            found = live.pop(ev.uid, None)
            if found is not None:
                add(found[0], found[1], -1)
        elif isinstance(ev, ReplicasChanged):
            before = replicas.get(ev.workload)
            template = ev.template.requests if ev.template else before[1] if before else None
            if template is None:
                continue
            if template not in choice:
                choice[template] = _cheapest(template, scenario)
            if before is not None:
                add(before[0], before[1], -before[2])
            group = choice[template][0]
            replicas[ev.workload] = (group, template, ev.replicas)
            add(group, template, ev.replicas)
    ecs = sum(node_seconds[n] * groups[n].price_per_hour / 3600 for n in groups)
    span = trace.end or 1.0
    return Bound(
        cost=ecs + eci_cost,
        node_seconds_by_group=node_seconds,
        eci_cost=eci_cost,
        mean_nodes_by_group={n: node_seconds[n] / span for n in groups},
        whole_node_cost=whole + eci_cost,
    )


def _whole_nodes(x: float, price: float, eci_rate: float) -> float:
    """The cheapest way to hold ``x`` fluid nodes of demand with whole nodes at ``price`` and ECI
    at ``eci_rate`` for all of it (per second): ``ceil(x)`` nodes, ``floor(x)`` nodes and the rest
    on ECI, or all on ECI (module docstring).  ``x`` within 1e-9 of a whole number is one."""
    if x <= 0:
        return 0.0
    low = math.floor(x + 1e-9)
    return min(eci_rate, math.ceil(x - 1e-9) * price, low * price + (x - low) / x * eci_rate)


def _ecs_only(policies: Sequence[ResourcePolicy]) -> tuple[ResourcePolicy, ...]:
    out = []
    for p in policies:
        units = tuple(replace(u, max=None) for u in p.units if u.resource is NodeKind.ECS)
        if units:
            out.append(replace(p, units=units))
    return tuple(out)


def _eci_only(policies: Sequence[ResourcePolicy]) -> tuple[ResourcePolicy, ...]:
    return tuple(replace(p, units=(Unit(NodeKind.ECI),)) for p in policies)


def _bound_costs(scenario: Scenario, bound: Bound) -> dict[str, float]:
    return {
        g.name: bound.node_seconds_by_group.get(g.name, 0.0) * g.price_per_hour
        for g in scenario.autoscaler.groups
    }


def used_groups(scenario: Scenario, bound: Bound) -> tuple[str, ...]:
    """The groups the fluid bound uses: where headroom (spare nodes) is kept."""
    return tuple(n for n, c in _bound_costs(scenario, bound).items() if c > 0)


def variants(scenario: Scenario, bound: Bound) -> list[Variant]:
    """Spillover first, then the baselines, in the order of the comparison table."""
    policies = scenario.policies
    reaction = scenario.timing.reaction_delay
    costs = _bound_costs(scenario, bound)
    busiest = max(costs, key=lambda n: costs[n]) if costs else ""
    used = used_groups(scenario, bound)
    out = [
        Variant(
            "spillover",
            policies,
            reaction_delay=reaction,
            description=(
                "ECS first, overflow to ECI; planner with forecast, consolidation, moves back"
            ),
            consolidation=True,
            rebalance=True,
            scoring=scenario.scoring,
        )
    ]
    for h in scenario.headroom:
        out.append(
            Variant(
                f"reactive-ecs+{h}" if h else "reactive-ecs",
                _ecs_only(policies),
                forecast=False,
                eci=False,
                reaction_delay=None,
                headroom=h,
                headroom_groups=used,
                scoring=scenario.baseline_scoring,
                deletion_cost=False,
                description=(
                    "all ECS, cluster-autoscaler-like loop"
                    + (f", {h} spare node(s) in each of {', '.join(used)}" if h else "")
                ),
            )
        )
    out.append(
        Variant(
            "all-eci",
            _eci_only(policies),
            autoscaling=False,
            forecast=False,
            description="every managed pod on ECI",
            scoring=scenario.baseline_scoring,
            deletion_cost=False,
        )
    )
    if scenario.static_nodes is not None:
        static = {busiest: scenario.static_nodes} if busiest else {}
    else:
        static = {n: math.ceil(m) for n, m in bound.mean_nodes_by_group.items() if m > 0}
    label = ", ".join(f"{n}={k}" for n, k in static.items()) or "none"
    out.append(
        Variant(
            "static-N",
            policies,
            autoscaling=False,
            forecast=False,
            static=static,
            description=f"fixed nodes ({label}), overflow to ECI, no autoscaler",
            scoring=scenario.baseline_scoring,
        )
    )
    return out


kept_bound = by_identity(8)(fluid_bound)
"""``fluid_bound``, kept per (trace, scenario) pair of objects (both never change)."""


def variant_of(trace: Trace, scenario: Scenario, name: str) -> Variant:
    """The variant ``name`` of ``variants(scenario, fluid_bound(trace, scenario))``: Spillover's
    without the bound (it does not depend on it), a baseline's from ``kept_bound`` (computed
    once per trace and scenario in a process that replays several baselines)."""
    spillover = variants(scenario, NO_BOUND)[0]
    if name == spillover.name:
        return spillover
    return next(v for v in variants(scenario, kept_bound(trace, scenario)) if v.name == name)


def compare(
    trace: Trace,
    scenario: Scenario,
    *,
    name: str = "",
    progress: Callable[[str, int], None] | None = None,
    run_variants: Callable[[Trace, Scenario], tuple[Bound, list[Result]]] | None = None,
) -> Comparison:
    """Spillover and every baseline on one trace, with the bound and the verdict.

    ``run_variants`` replays the variants elsewhere (``autoscaler.replay.sweep.simulate_variants``
    runs them in parallel, Spillover's before the bound is known); it returns the fluid bound
    and the results in the order of ``variants``.
    """
    if run_variants is not None:
        bound, results = run_variants(trace, scenario)
    else:
        bound = fluid_bound(trace, scenario)
        results = []
        for variant in variants(scenario, bound):
            tick = None
            if progress is not None:
                vname = variant.name

                def tick(n: int, vname: str = vname) -> None:
                    progress(vname, n)

            results.append(simulate(trace, scenario, variant, progress=tick))
    verdict, dominates = _verdict(results, scenario.pending_target_p99)
    created: dict[str, float] = {}
    lives = []
    for ev in trace.events:
        if isinstance(ev, PodCreated):
            created[ev.uid] = ev.t
        elif isinstance(ev, PodDeleted) and ev.uid in created:
            lives.append(ev.t - created.pop(ev.uid))
    groups = {g.name: g for g in scenario.autoscaler.groups}
    ecs = {n: bound.node_seconds_by_group[n] * groups[n].price_per_hour for n in groups}
    gpu = sum(v for n, v in ecs.items() if groups[n].instance_type.gpu_milli)
    return Comparison(
        trace=name or trace.header.source,
        scenario=scenario.name,
        results=results,
        bound=bound,
        target_p99=scenario.pending_target_p99,
        verdict=verdict,
        dominates=dominates,
        median_pod_life=float(np.median(lives)) if lives else math.nan,
        gpu_share_of_bound=gpu / sum(ecs.values()) if sum(ecs.values()) > 0 else 0.0,
    )


def unmatched_note(r: Result) -> str:
    """``"N of M pods match no ResourcePolicy ..."``, or ``""`` when every pod is managed."""
    if not r.unmanaged:
        return ""
    return (
        f"{r.unmanaged:,} of {r.pods:,} pods match no ResourcePolicy of the scenario: they run "
        "unmanaged (ECS only, never ECI); set everyNamespace: true in the scenario (or "
        "--every-namespace) to apply its policies to every namespace."
    )


def _verdict(results: list[Result], target: float) -> tuple[list[str], bool]:
    s = results[0]
    sp99, scost = s.pending_percentile(99), s.cost
    notes = []
    ok = sp99 <= target
    if s.unmanaged:
        notes.append(unmatched_note(s))
    if not ok:
        notes.append(f"Spillover misses the pending p99 target: {sp99:.1f} s > {target:g} s.")
    # "As fast" means a pending p99 at or below Spillover's, or within the target when Spillover
    # is within it too: a few hundred milliseconds of ECI start jitter are not a difference.
    fast_enough = max(sp99, target) if sp99 <= target else sp99
    for b in results[1:]:
        bp99, bcost = b.pending_percentile(99), b.cost
        if b.never_started > s.never_started:
            # Pods that never ran cost nothing: such a baseline is never called cheaper.
            notes.append(
                f"{b.name} left {b.never_started:,} pod(s) never started (Spillover "
                f"{s.never_started:,}), so it is never called cheaper: it cost {bcost:,.0f} CNY "
                f"({_relative(bcost, scost)}) without running them."
            )
            continue
        if bp99 <= fast_enough and bcost <= scost:
            ok = False
            notes.append(
                f"{b.name} is as fast (p99 {bp99:.2f} s vs {sp99:.2f} s, target {target:g} s) "
                f"and as cheap ({bcost:,.0f} vs {scost:,.0f} CNY): Spillover does not beat it."
            )
        elif bp99 <= fast_enough:
            notes.append(f"{b.name} is as fast but costs {_relative(bcost, scost)} more.")
        elif bcost <= scost:
            notes.append(
                f"{b.name} is {_relative(bcost, scost, sign=False)} cheaper but slower "
                f"(p99 {bp99:.2f} s vs {sp99:.2f} s)."
            )
        else:
            notes.append(f"{b.name} is slower and costs {_relative(bcost, scost)} more.")
    return notes, ok


def _relative(cost: float, base: float, *, sign: bool = True) -> str:
    """``cost`` against ``base`` (``+12.0%``; unsigned and negated: how much cheaper), or n/a."""
    if base <= 0:
        return "n/a"
    change = cost / base - 1
    return f"{change:+.1%}" if sign else f"{-change:.1%}"


def closing_note(c: Comparison) -> str:
    """Why the verdict came out as it did, from the numbers of this run."""
    s = c.spillover
    by_name = {r.name: r for r in c.results}
    parts = []
    life = c.median_pod_life
    life_text = f" (median pod life {life / 60:.0f} min)" if not math.isnan(life) else ""
    if c.dominates:
        parts.append(
            f"Spillover keeps {1 - s.eci_share:.1%} of pod-hours on ECS, sized by the planner, and "
            f"sends only the bursts to ECI, whose start (about {s.pending_percentile(99):.0f} s at "
            "p99) is what pods wait at worst. The all-ECS baselines wait for node boots unless "
            "they pay for spare nodes; all-ECI and a static base pay ECI prices for demand that "
            "lasts."
        )
    else:
        parts.append(
            f"{s.eci_share:.1%} of Spillover's pod-hours ran on ECI{life_text}. The planner adds "
            "ECS capacity for pending pods and, pod by pod, for ECI pods whose expected run time "
            "(annotation spillover.dev/expected-duration, or the whole horizon for Deployments and "
            "StatefulSets, at least as long again as it has run for a workload's only replica) "
            "makes ECS cheaper; its forecast pre-provisions each resource class "
            "(requested CPU cores for general-purpose groups, GPUs for GPU groups) to the level "
            "aggregate demand stays above for the break-even share of the next boot time + "
            "horizon. Demand above that level, and demand the forecast misses, stays on ECI."
        )
        if c.gpu_share_of_bound > 0.5:
            parts.append(
                f"Here {c.gpu_share_of_bound:.0%} of the fluid bound's ECS cost is GPU nodes: "
                "GPU pods share nodes by GPU fraction, so packing loses capacity the fluid bound "
                "does not."
            )
        static = by_name.get("static-N")
        if static is not None and static.cost <= s.cost:
            parts.append(
                f"A fixed base ({static.description.split('(')[1].split(')')[0]}) holds that "
                f"steady aggregate on ECS and overflows the rest to ECI: {static.cost:,.0f} CNY "
                f"against {s.cost:,.0f}."
            )
        eci = by_name.get("all-eci")
        if eci is not None and eci.cost <= s.cost:
            parts.append(
                f"All-ECI is cheaper than Spillover: Spillover paid {s.ecs_cost:,.0f} CNY for ECS "
                "nodes that the planner added for ECI pods it judged cheaper on ECS, but running "
                "pods are not migrated, so those nodes only served later pods."
            )
        parts.append(
            "What would close the gap: a better forecast of this trace's aggregate demand, or a "
            "group minimum chosen from a replay like this one."
        )
    return " ".join(parts)


# --- rendering ----------------------------------------------------------------------------------


def result_row(r: Result) -> dict[str, Any]:
    """One variant's numbers, rounded (the summary's rows, and the sweep's)."""
    return {
        "name": r.name,
        "description": r.description,
        "cost": round(r.cost, 2),
        "ecs_cost": round(r.ecs_cost, 2),
        "ecs_node_hours": round(r.ecs_node_seconds / 3600, 2),
        "ecs_node_hours_by_group": {
            g: round(s / 3600, 2) for g, s in r.ecs_node_seconds_by_group.items()
        },
        "eci_cost": round(r.eci_cost, 2),
        "eci_vcpu_seconds": round(r.eci_vcpu_seconds, 1),
        "eci_gib_seconds": round(r.eci_gib_seconds, 1),
        "eci_gpu_seconds": round(r.eci_gpu_seconds, 1),
        "pending_p50": round(r.pending_percentile(50), 3),
        "pending_p95": round(r.pending_percentile(95), 3),
        "pending_p99": round(r.pending_percentile(99), 3),
        "never_started": r.never_started,
        "pods": r.pods,
        "unmanaged_pods": r.unmanaged,
        "cost_split": {name: round(v, 2) for name, v in r.split.items()},
        "costliest_pre_provisioned_nodes": [
            {
                "node": n.name,
                "group": n.group,
                "from_hour": round(n.start / 3600, 2),
                "to_hour": round(n.end / 3600, 2),
                "cost": round(n.cost, 2),
            }
            for n in r.idle_nodes
        ],
        "eci_pod_hours_share": round(r.eci_share, 4),
        "eci_pod_hours_share_no_room": round(r.eci_no_room_share, 4),
        # of it: ECI cheaper than any new ECS node by the planner's break-even (module docstring)
        "eci_pod_hours_share_no_room_by_price": round(r.eci_by_price_share, 4),
        "eci_pod_hours_share_no_room_ecs_would_pay": round(
            r.eci_no_room_share - r.eci_by_price_share, 4
        ),
        "scaling_actions": len(r.actions),
        "peak_nodes": r.peak_nodes,
        "evictions": r.evictions,
        "moves": r.moves,
        "lost_work_pod_hours": round(r.lost_work_pod_seconds / 3600, 2),
        "planner_calls": r.planner_calls,
        "decide_calls": r.decide_calls,
    }


def summary_json(c: Comparison) -> dict[str, Any]:
    s = c.spillover
    return {
        "trace": c.trace,
        "scenario": c.scenario,
        "duration_hours": round(s.duration / 3600, 2),
        "target_pending_p99": c.target_p99,
        "summary": result_row(s),
        "baselines": [result_row(r) for r in c.results[1:]],
        "fluid_ecs_lower_bound": {
            "cost": round(c.bound.cost, 2),
            "eci_cost_of_pods_no_group_holds": round(c.bound.eci_cost, 2),
            "node_hours_by_group": {
                g: round(v / 3600, 2) for g, v in c.bound.node_seconds_by_group.items()
            },
        },
        "whole_node_reference": {"cost": round(c.bound.whole_node_cost, 2)},
        "dominates": c.dominates,
        "verdict": c.verdict,
    }


def summary_markdown(c: Comparison, *, closing: str = "") -> str:
    s = c.spillover
    lines = [
        f"# Replay: {c.trace}",
        "",
        f"Scenario `{c.scenario}`, {s.duration / 3600:,.1f} hours of virtual time, {s.pods:,} pods. "
        f"Target: pending p99 <= {c.target_p99:g} s.",
        "",
        *([f"**{unmatched_note(s)}**", ""] if s.unmanaged else []),
        "| variant | total CNY | ECS CNY | ECS node-h | ECI CNY | ECI vCPU-s | ECI GiB-s "
        "| pending p50 / p95 / p99 s | never started | ECI pod-h share (no room; of it by price) | scaling actions "
        "| peak nodes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in c.results:
        name = f"**{r.name}**" if r is s else r.name
        lines.append(
            f"| {name} | {r.cost:,.0f} | {r.ecs_cost:,.0f} | {r.ecs_node_seconds / 3600:,.1f} "
            f"| {r.eci_cost:,.0f} | {r.eci_vcpu_seconds:,.0f} | {r.eci_gib_seconds:,.0f} "
            f"| {r.pending_percentile(50):.1f} / {r.pending_percentile(95):.1f} / "
            f"{r.pending_percentile(99):.1f} | {r.never_started} | {r.eci_share:.1%} "
            f"({r.eci_no_room_share:.1%}; {r.eci_by_price_share:.1%}) | {len(r.actions)} "
            f"| {r.peak_nodes} |"
        )
    lines.append(
        f"| fluid ECS lower bound | {c.bound.cost:,.0f} | | "
        f"{sum(c.bound.node_seconds_by_group.values()) / 3600:,.1f} | {c.bound.eci_cost:,.0f} "
        "| | | 0 | | | | |"
    )
    lines.append(f"| whole-node reference | {c.bound.whole_node_cost:,.0f} | | | | | | 0 | | | | |")
    lines += ["", *split_table(c)]
    lines += ["", "Variants:", ""]
    lines += [f"- `{r.name}`: {r.description}" for r in c.results]
    lines += [
        "",
        "## Verdict",
        "",
        (
            "Spillover dominates: cheaper than every baseline that is as fast (pending p99 within "
            "the target counts as as fast), faster than every baseline that is as cheap."
            if c.dominates
            else "Spillover does **not** dominate every baseline on this trace."
        ),
        "",
    ]
    lines += [f"- {v}" for v in c.verdict]
    lines += [
        "",
        f"Spillover costs {s.cost / c.bound.cost:.2f}x the fluid ECS lower bound"
        + (
            f" and {s.cost / c.bound.whole_node_cost:.2f}x the whole-node reference (the "
            f"same hindsight with whole nodes, {c.bound.whole_node_cost / c.bound.cost:.2f}x "
            "the fluid bound: roughly what whole nodes cost more than fractions of them; a "
            "heuristic, not a lower bound)."
            if c.bound.whole_node_cost > 0
            else "."
        )
        if c.bound.cost > 0
        else "",
    ]
    if closing:
        lines += ["", "## Why", "", closing]
    return "\n".join(lines) + "\n"


def split_table(c: Comparison) -> list[str]:
    """Where each variant's money went (``autoscaler.replay.billing``), and the costliest
    pre-provisioned nodes of Spillover's run."""
    names = CostSplit.names()
    lines = [
        "## Where the money went (CNY)",
        "",
        "| variant | " + " | ".join(CostSplit.LABELS[n] for n in names) + " | ECS idle share |",
        "| --- | " + " | ".join("---:" for _ in names) + " | ---: |",
    ]
    for r in c.results:
        ecs = r.split.ecs_busy + r.split.ecs_idle
        idle = f"{r.split.ecs_idle / ecs:.0%}" if ecs > 0 else "-"
        cells = " | ".join(f"{v:,.0f}" for _, v in r.split.items())
        lines.append(f"| {r.name} | {cells} | {idle} |")
    s = c.spillover
    if s.idle_nodes:
        lines += ["", "Spillover's costliest nodes before their first pod:", ""]
        lines += [
            f"- `{n.name}` ({n.group}): Ready at {n.start / 3600:,.1f} h, first pod or removal at "
            f"{n.end / 3600:,.1f} h, {n.cost:,.0f} CNY idle"
            for n in s.idle_nodes
        ]
    return lines
