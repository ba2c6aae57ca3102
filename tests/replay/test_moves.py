"""The replay moves pods back from ECI and consolidates with the controller's own functions."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

import extender.policies
from autoscaler.demand import remaining
from autoscaler.nodegroup import MoveCosts
from autoscaler.replay.report import fluid_bound, variants
from autoscaler.replay.scenario import Scenario
from autoscaler.replay.simulator import Result, Simulation, simulate
from autoscaler.replay.trace import (
    NodeAdded,
    PodCreated,
    PodDeleted,
    Template,
    Trace,
    TraceHeader,
)
from extender.model import Resources, WorkloadKey

from .conftest import small_scenario

ECI_RATE = 1 * 0.000049 + 1 * 0.00000613  # one vCPU and one GiB per second
DB_ONLY_ECS = {
    "apiVersion": "spillover.dev/v1alpha1",
    "kind": "ResourcePolicy",
    "metadata": {"name": "db", "namespace": "db"},
    "spec": {"selector": {}, "units": [{"resource": "ecs"}]},
}


def scenario_with_db() -> Scenario:
    scenario = small_scenario()
    db = extender.policies.policy_from_dict(DB_ONLY_ECS)
    return replace(scenario, policies=(*scenario.policies, db))


def run(web: WorkloadKey, variant: str = "spillover", **settings: Any) -> Result:
    """``a`` (web, 1 cpu / 1 GiB, expected 10 h) and ``d`` (db: ECS only) arrive at t=0;
    ``settings``: changes to the scenario's planner settings (``autoscaler.settings``)."""
    long = Template(
        Resources(1000, 2**30, 1, 0), {"app": "web"}, {"spillover.dev/expected-duration": "10h"}
    )
    db = Template(Resources(1000, 2**30, 1, 0), {"app": "db"})
    trace = Trace(
        TraceHeader(),
        [
            PodCreated(0.0, "a", web, "a", long),
            PodCreated(0.0, "d", WorkloadKey("db", "Deployment", "db"), "d", db),
            PodDeleted(1000.0, "a"),
            PodDeleted(1000.0, "d"),
        ],
    )
    scenario = scenario_with_db()
    if settings:
        config = scenario.autoscaler
        scenario = replace(
            scenario, autoscaler=replace(config, settings=replace(config.settings, **settings))
        )
    chosen = {v.name: v for v in variants(scenario, fluid_bound(trace, scenario))}[variant]
    return simulate(trace, scenario, chosen, audit=True)


def test_a_pod_that_overflowed_while_a_node_booted_moves_back_once_it_is_up() -> None:
    # t=0: no node: a overflows to ECI (starts at 10); d waits (ECS only).  The pass at t=1 adds
    # one small node for d (a alone would not pay for a 3.6 CNY/h node).  The node is Ready at 61:
    # d binds, 1 cpu stays free; the next loop (t=70) moves a there: ECI billed 10 to 70.  Moving
    # saves ECI's 0.198 CNY/h for the ~9.98 h a has left, far above the 0.1 CNY restart cost.
    r = run(WorkloadKey("shop", "Deployment", "web"))
    assert r.moves == 1
    assert r.pending.tolist() == [10.0, 61.0]
    assert r.eci_vcpu_seconds == pytest.approx(60.0)
    assert r.eci_cost == pytest.approx(60 * ECI_RATE, rel=1e-12)
    assert r.ecs_node_seconds == pytest.approx(999.0)
    # the move is billed at the scenario's restart cost (settings.rebalance.restartCost)
    assert r.split.restarts == pytest.approx(0.1)
    assert r.cost == pytest.approx(r.ecs_cost + r.eci_cost + 0.1)


@pytest.mark.parametrize(("restart", "moved"), [(1.95, 1), (2.0, 0)])
def test_the_scenario_restart_cost_decides_the_move(restart: float, moved: int) -> None:
    # At t=70 a has 36,000 - 70 = 35,930 s left: ECI would bill 35,930 * 0.00005513 = 1.981 CNY.
    r = run(WorkloadKey("shop", "Deployment", "web"), rebalance=MoveCosts(restart, 10))
    assert r.moves == moved
    assert r.split.restarts == pytest.approx(restart * moved)


def test_rebalance_off_in_the_scenario_moves_nothing() -> None:
    r = run(WorkloadKey("shop", "Deployment", "web"), rebalance=None)
    assert r.moves == 0
    assert r.eci_vcpu_seconds == pytest.approx(990.0)


def test_a_bare_pod_is_never_moved_and_baselines_do_not_move() -> None:
    # the same pod without a controller (an imported Alibaba task): nothing would recreate it
    bare = run(WorkloadKey("shop", "Pod", "a"))
    assert bare.moves == 0
    assert bare.eci_vcpu_seconds == pytest.approx(990.0)
    static = run(WorkloadKey("shop", "Deployment", "web"), "static-N")
    assert static.moves == 0


@pytest.mark.parametrize(("variant", "on"), [("spillover", True), ("reactive-ecs", False)])
def test_spillover_plans_with_consolidation_and_baselines_with_the_autoscaler_rule(
    monkeypatch: pytest.MonkeyPatch, variant: str, on: bool
) -> None:
    import autoscaler.planner

    seen: list[object] = []
    plan = autoscaler.planner.plan

    def recording(*args: object, **kwargs: object) -> autoscaler.planner.Plan:
        seen.append(kwargs.get("consolidation"))
        return plan(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(autoscaler.planner, "plan", recording)
    run(WorkloadKey("shop", "Deployment", "web"), variant)
    assert seen
    assert all((c is not None) == on for c in seen)


def test_passes_answered_from_the_memo_are_the_passes_computed_afresh() -> None:
    # d1 and d2 (db: ECS only) fill the one node the first pass adds; a (web, expected 1 h)
    # (created at t=1) overflowed to ECI and finds no room, pass after pass (from t=910 the
    # forecast asks for one every 5 min) while nothing in the cluster changes: rebalance answers
    # those from the memo.  Its worth changes with the time alone: 0.198 CNY/h on ECI beats the
    # 0.1 CNY restart while more than 1,814 s are left (until t=1,787), then not, then again
    # from t=3,601 (a replica that outlived its expected duration counts one more horizon).  The audit computes every plan
    # and every rebalance afresh as well and stops at the first difference.
    hour = Template(
        Resources(1000, 2**30, 1, 0), {"app": "web"}, {"spillover.dev/expected-duration": "1h"}
    )
    db = Template(Resources(1000, 2**30, 1, 0), {"app": "db"})
    dbs = WorkloadKey("db", "Deployment", "db")
    trace = Trace(
        TraceHeader(),
        [
            PodCreated(0.0, "d1", dbs, "d1", db),
            PodCreated(0.0, "d2", dbs, "d2", db),
            PodCreated(1.0, "a", WorkloadKey("shop", "Deployment", "web"), "a", hour),
            PodDeleted(900.0, "d2"),
            PodCreated(900.0, "d3", dbs, "d3", db),  # takes d2's room; the pass refits
            PodDeleted(7200.0, "a"),
            PodDeleted(7200.0, "d1"),
            PodDeleted(7200.0, "d3"),
        ],
    )
    forecast = {
        "enabled": True,
        "passEvery": "5m",
        "minHistory": "10m",
        "step": "1m",
        "refit": "5m",
    }
    scenario = replace(scenario_with_db(), forecast=small_scenario(forecast=forecast).forecast)
    spillover = {v.name: v for v in variants(scenario, fluid_bound(trace, scenario))}["spillover"]
    sim = Simulation(trace, scenario, spillover, audit=True)
    r = sim.run()
    assert r.moves == 0
    assert sim.autoscaler.memo.skips["rebalance"] > 10


def job_run(kind: str, expected: str) -> Result:
    """``d`` (db: ECS only) at t=0; ``a`` (1 cpu / 1 GiB, a ``kind`` workload ``train``) at t=1,
    ended by the trace at t=1000; a no-op at 3000 lets a late end show."""
    a = Template(
        Resources(1000, 2**30, 1, 0), {"app": "web"}, {"spillover.dev/expected-duration": expected}
    )
    db = Template(Resources(1000, 2**30, 1, 0), {"app": "db"})
    trace = Trace(
        TraceHeader(),
        [
            PodCreated(0.0, "d", WorkloadKey("db", "Deployment", "db"), "d", db),
            PodCreated(1.0, "a", WorkloadKey("shop", kind, "train"), "a", a),
            PodDeleted(1000.0, "a"),
            PodDeleted(1000.0, "d"),
            PodDeleted(3000.0, "unknown"),
        ],
    )
    scenario = scenario_with_db()
    chosen = {v.name: v for v in variants(scenario, fluid_bound(trace, scenario))}["spillover"]
    return simulate(trace, scenario, chosen, audit=True)


def test_a_moved_jobs_pod_runs_its_lost_work_again_and_the_report_charges_it() -> None:
    # As above, a overflows to ECI (starts at 11) and moves at t=70 into the node d's pass added
    # (Ready at 61).  A Deployment's replica keeps its lifetime: on ECS 70..1000.  A Job's
    # replacement starts over: the 59 s it ran on ECI are run again, so it ends at 1059, and
    # those 59 s at its share of the node (half of 0.001 CNY/s) are lost work, 0.0295 CNY; the
    # node goes 30 s (consolidation's empty_after) after a ends, at 1090 instead of 1040.
    replica = job_run("Deployment", "10h")
    job = job_run("Job", "10h")
    assert replica.moves == job.moves == 1
    assert replica.lost_work_pod_seconds == 0.0
    assert replica.split.lost_work == 0.0
    assert job.lost_work_pod_seconds == pytest.approx(59.0)
    assert job.ecs_pod_seconds - replica.ecs_pod_seconds == pytest.approx(59.0)
    assert job.split.lost_work == pytest.approx(59 * 0.0005)
    assert job.ecs_node_seconds - replica.ecs_node_seconds == pytest.approx(50.0)
    assert job.eci_cost == pytest.approx(replica.eci_cost)
    assert job.eci_cost == pytest.approx(59 * ECI_RATE)
    # ECS pays the re-run: ECS cost includes it, and the cost split still sums to the cost
    assert job.ecs_cost - replica.ecs_cost == pytest.approx(0.05)
    assert job.split.total == pytest.approx(job.cost)


def test_a_jobs_pod_whose_rerun_costs_more_than_its_eci_bill_left_stays() -> None:
    # Expected to run 2,200 s.  At t=70 (69 s old) a replica would move: ECI's bill for the
    # 2,131 s left is 2131 * 0.00005513 = 0.1175 CNY > the 0.1 restart.  A Job's pod would also
    # run its 69 s again at 0.0005 CNY/s (0.0345): 0.1175 - 0.1 - 0.0345 < 0, it stays on ECI
    assert job_run("Deployment", "2200").moves == 1
    job = job_run("Job", "2200")
    assert job.moves == 0
    assert job.lost_work_pod_seconds == 0.0
    assert job.eci_pod_seconds == pytest.approx(989.0)


def test_a_jobs_pod_created_at_the_traces_start_has_an_age() -> None:
    # The replay's clock starts at 0, and a created time of 0 means "unknown" to the planner.
    # A Job's pod of the trace's first instant, on ECI, one hour later: at least as long again
    # as it has run (demand.remaining), 3,600 s, where "unknown age" would give 0 (never moved).
    trace = Trace(TraceHeader(), [])
    scenario = small_scenario()
    chosen = variants(scenario, fluid_bound(trace, scenario))[0]
    scheduler = Simulation(trace, scenario, chosen).scheduler
    job = WorkloadKey("batch", "Job", "train")
    rec = scheduler.new_pod("j", job, "j", Template(Resources(1000, 2**30, 1, 0), {"app": "t"}))
    assert 0.0 < rec.pod.created < 1e-300
    assert remaining(rec.pod, now=3600.0, horizon=3600.0) == pytest.approx(3600.0)


def test_trace_nodes_are_counted_in_their_own_units() -> None:
    """Nodes the trace adds share one group label, but a unit's selector reads their own labels:
    a pod on the zone-b node is counted in the zone-b unit, not in the first trace node's."""
    units = [
        {"resource": "ecs", "max": 1, "nodeSelector": {"zone": "a"}},
        {"resource": "ecs", "nodeSelector": {"zone": "b"}},
        {"resource": "eci"},
    ]
    policy = {
        "apiVersion": "spillover.dev/v1alpha1",
        "kind": "ResourcePolicy",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {}, "units": units},
    }
    scenario = small_scenario(policies=[policy])
    web = WorkloadKey("shop", "Deployment", "web")
    pod = Template(Resources(1000, 2**30, 1, 0), {"app": "web"})
    big = Resources(4000, 16 * 2**30, 110, 0)
    trace = Trace(
        TraceHeader(),
        [
            NodeAdded(0.0, "a1", big, {"zone": "a"}),
            NodeAdded(0.0, "b1", big, {"zone": "b"}),
            PodCreated(1.0, "p1", web, "p1", pod),
            PodCreated(2.0, "p2", web, "p2", pod),
            PodCreated(3.0, "p3", web, "p3", pod),
            PodDeleted(600.0, "p1"),
            PodDeleted(600.0, "p2"),
            PodDeleted(600.0, "p3"),
        ],
    )
    for variant in variants(scenario, fluid_bound(trace, scenario)):
        sim = Simulation(trace, scenario, variant, audit=True)
        # the audit compares every pod's kept unit with policy.unit_of(its node) at every event
        sim.run()
        if variant.name == "spillover":
            # b1 is offered beside a1 (kube-scheduler offers every feasible node): p2 and p3
            # take zone b's unit, nothing goes to ECI
            assert sim.scheduler.eci_pod_s == 0.0
