"""Rebalance: which pods on ECI move back to ECS now.  Expectations computed by hand.

A 1 cpu / 2 GiB pod on ECI costs 0.1764 + 2 * 0.022068 = 0.22054 CNY/h; the restart cost is the
default 0.1 CNY unless a test says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from test_planner import BATCH4, ECI, GENERAL4, GIB, NOW, node, pod

from autoscaler.context import PlannerMemo
from autoscaler.eviction import CHECKPOINT_INTERVAL
from autoscaler.nodegroup import PlannerSettings
from autoscaler.planner import EXPECTED_DURATION, SAFE_TO_EVICT
from autoscaler.rebalance import MoveCosts, Moves, allowed, rebalance
from autoscaler.state import DisruptionBudget, GroupState
from extender.model import Node, NodeKind, Pod
from extender.policy import ResourcePolicy, Unit
from extender.selectors import LabelSelector
from extender.snapshot import ClusterState


def web(ecs_max: int | None = None, **selector: str) -> ResourcePolicy:
    return ResourcePolicy(
        "web",
        "default",
        LabelSelector({"app": "web"}),
        (Unit(NodeKind.ECS, ecs_max, node_selector=selector), Unit(NodeKind.ECI)),
    )


def on_eci(name: str, left: str = "2h", cpu: int = 1000, **extra: Any) -> Pod:
    annotations = {EXPECTED_DURATION: left, **extra.pop("annotations", {})}
    return pod(name, cpu, 2 * GIB, node=ECI.name, annotations=annotations, **extra)


def moves(
    pods: Sequence[Pod],
    *,
    nodes: Sequence[Node] = (),
    policies: Sequence[ResourcePolicy] = (),
    limit: int = 10,
    costs: MoveCosts | None = None,
    pdbs: Sequence[DisruptionBudget] = (),
    groups: Sequence[GroupState] = (),
    backend: str = "numba",
) -> Moves:
    state = ClusterState(nodes=[*nodes, ECI], pods=pods, policies=policies or [web()])
    return rebalance(
        state,
        groups or [GroupState(GENERAL4, len(nodes))],
        costs or MoveCosts(),
        now=NOW,
        settings=PlannerSettings(),
        limit=limit,
        pdbs=pdbs,
        backend=backend,
    )


def busy(name: str, on: str, cpu: int) -> Pod:
    return pod(name, cpu, GIB, node=on, app="db")


@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_a_pod_that_overflowed_moves_into_room_that_appeared(backend: str) -> None:
    # n1 has 2 cpu free; the pod has 2 h left: ECI would bill 0.22054 * 2 = 0.4411 CNY, so the
    # move saves 0.4411 - 0.1 = 0.3411 CNY
    result = moves(
        [busy("b", "n1", 2000), on_eci("e0")], nodes=[node("n1", GENERAL4)], backend=backend
    )
    (move,) = result.moves
    assert (move.pod, move.source, move.target) == ("default/e0", ECI.name, "n1")
    assert move.saving == pytest.approx(0.3411, abs=1e-4)
    assert move.code == "rebalance"


def test_the_restart_cost_must_be_beaten() -> None:
    # 20 min left: ECI would bill 0.22054 / 3 = 0.0735 CNY < 0.1: stays; with a 0.05 CNY restart
    # cost it moves (saving 0.0235)
    pods = [busy("b", "n1", 2000), on_eci("e0", "20m")]
    assert moves(pods, nodes=[node("n1", GENERAL4)]).moves == ()
    (move,) = moves(pods, nodes=[node("n1", GENERAL4)], costs=MoveCosts(restart=0.05)).moves
    assert move.saving == pytest.approx(0.0235, abs=1e-4)


def test_pods_beyond_the_units_max_stay_and_a_move_never_exceeds_it() -> None:
    # max 2 on ECS, one already there: of two pods on ECI only one may move, even with room
    pods = [pod("s0", 1000, 2 * GIB, node="n1"), on_eci("e0"), on_eci("e1")]
    result = moves(pods, nodes=[node("n1", GENERAL4)], policies=[web(2)])
    assert [m.pod for m in result.moves] == ["default/e0"]
    full = [pod("s0", 1000, 2 * GIB, node="n1"), pod("s1", 1000, 2 * GIB, node="n1"), on_eci("e0")]
    assert moves(full, nodes=[node("n1", GENERAL4)], policies=[web(2)]).moves == ()


@pytest.mark.parametrize(
    "extra",
    [
        {"kind": "Pod"},
        {"annotations": {SAFE_TO_EVICT: "false"}},
        {"kind": "Job", "annotations": {SAFE_TO_EVICT: "false"}},
    ],
)
def test_only_pods_a_controller_recreates_and_that_may_be_evicted_move(
    extra: dict[str, Any],
) -> None:
    stuck = on_eci("e0", **extra)
    assert moves([stuck], nodes=[node("n1", GENERAL4)]).moves == ()


def test_pending_pods_take_the_room_first() -> None:
    # 2 cpu free: a pending 1.5-cpu pod takes it, the 1-cpu pod on ECI no longer fits
    pods = [busy("b", "n1", 2000), pod("waiting", 1500, GIB), on_eci("e0")]
    result = moves(pods, nodes=[node("n1", GENERAL4)])
    assert result.moves == ()
    assert "1 pod(s) on ECI worth moving find no room on ECS nodes now" in result.notes


def test_the_destination_is_in_the_pods_unit() -> None:
    # the unit is pool=general; b1 (pool=batch) has room, g1 (pool=general) has none
    nodes = [node("b1", BATCH4), node("g1", GENERAL4)]
    pods = [busy("b", "g1", 4000), on_eci("e0")]
    groups = [GroupState(GENERAL4, 1), GroupState(BATCH4, 1)]
    policy = web(pool="general")
    assert moves(pods, nodes=nodes, policies=[policy], groups=groups).moves == ()
    pods = [busy("b", "g1", 2000), on_eci("e0")]
    (move,) = moves(pods, nodes=nodes, policies=[policy], groups=groups).moves
    assert move.target == "g1"


def test_the_rate_limit_keeps_the_largest_savings() -> None:
    # three pods with 1 h, 3 h, 2 h left; room for all; a limit of 2 keeps the 3 h and 2 h ones
    pods = [on_eci("e1", "1h"), on_eci("e3", "3h"), on_eci("e2", "2h")]
    result = moves(pods, nodes=[node("n1", GENERAL4)], limit=2)
    assert [m.pod for m in result.moves] == ["default/e3", "default/e2"]
    assert "1 move(s) wait: the rate limit allows 2 now" in result.notes


def test_disruption_budgets_are_respected() -> None:
    pdb = DisruptionBudget("default", LabelSelector({"app": "web"}), 1, name="web")
    pods = [on_eci("e1", "1h"), on_eci("e2", "2h")]
    result = moves(pods, nodes=[node("n1", GENERAL4)], pdbs=[pdb])
    assert [m.pod for m in result.moves] == ["default/e2"]
    assert "pod default/e1 stays on ECI: its PodDisruptionBudget allows no more" in result.notes


def test_nothing_moves_without_policies_or_onto_a_cordoned_node() -> None:
    state = ClusterState(nodes=[node("n1", GENERAL4), ECI], pods=[on_eci("e0")])
    settings = PlannerSettings()
    none = rebalance(
        state, [GroupState(GENERAL4, 1)], MoveCosts(), now=NOW, settings=settings, limit=10
    )
    assert none == Moves()
    cordoned = node("n1", GENERAL4, unschedulable=True)
    assert moves([on_eci("e0")], nodes=[cordoned]).moves == ()


def test_allowed_counts_the_moves_of_the_last_minute() -> None:
    assert allowed([NOW - 61, NOW - 30, NOW - 1], now=NOW, per_minute=10) == 8
    assert allowed([NOW - 1] * 12, now=NOW, per_minute=10) == 0


def test_a_replica_that_outlived_its_expected_duration_still_moves_into_free_room() -> None:
    # expected 2 h, running for 3 h: a Deployment's replica is still serving, so into room that
    # is already paid it counts one more horizon (1 h): ECI 0.22054 CNY, saving 0.12054
    old = on_eci("e0", "2h", created=NOW - 3 * 3600)
    (move,) = moves([busy("b", "n1", 2000), old], nodes=[node("n1", GENERAL4)]).moves
    assert move.saving == pytest.approx(0.12054, abs=1e-5)


def test_remaining_after_the_expected_duration() -> None:
    from autoscaler.demand import remaining

    replica = on_eci("e0", "2h", created=NOW - 3 * 3600)
    assert remaining(replica, now=NOW, horizon=3600) == 0.0  # what a new node is judged on
    assert remaining(replica, now=NOW, horizon=3600, outlived=3600) == 3600.0
    young = on_eci("e1", "2h", created=NOW - 1800)
    assert remaining(young, now=NOW, horizon=3600, outlived=3600) == 5400.0  # its own estimate
    bare = on_eci("e2", "2h", created=NOW - 3 * 3600, kind="Pod")
    assert remaining(bare, now=NOW, horizon=3600, outlived=3600) == 0.0  # no replica: it ends


def test_a_lone_replica_without_an_estimate_is_expected_to_run_as_long_again() -> None:
    # Lindy, as for a Job's pod: a replica that is its workload's only pod and has no estimate
    # is expected to run at least as long again as it has run; with siblings (the first a
    # scale-in takes on ECI) or with an estimate it is not
    from autoscaler.demand import only_pod, remaining, remaining_in

    old = pod("e0", node=ECI.name, created=NOW - 3 * 3600)
    assert remaining(old, now=NOW, horizon=3600, alone=True) == 3 * 3600.0
    assert remaining(old, now=NOW, horizon=3600) == 3600.0
    young = pod("e1", node=ECI.name, created=NOW - 600)
    assert remaining(young, now=NOW, horizon=3600, alone=True) == 3600.0  # at least the horizon
    late = on_eci("e2", "2h", created=NOW - 3 * 3600)  # past its estimate: one more horizon
    assert remaining(late, now=NOW, horizon=3600, outlived=3600, alone=True) == 3600.0
    assert only_pod(ClusterState(nodes=[ECI], pods=[old]), old)
    assert not only_pod(ClusterState(nodes=[ECI], pods=[old, young]), old)  # both app=web
    # remaining_in: the same, alone or not as the cluster has it
    lone, pair = ClusterState(nodes=[ECI], pods=[old]), ClusterState(nodes=[ECI], pods=[old, young])
    assert remaining_in(lone, old, now=NOW, horizon=3600) == 3 * 3600.0
    assert remaining_in(pair, old, now=NOW, horizon=3600) == 3600.0


def test_remaining_reads_each_pod_once_and_a_bad_annotation_stays_unknown() -> None:
    # what remaining reads of a pod (its expected duration, whether it is a replica) is kept
    # per pod object; the answers, asked twice, are those of the annotation each pod has
    from autoscaler.demand import remaining

    bad = on_eci("e0", "soon", created=NOW - 60)
    number = on_eci("e1", "7200", created=NOW - 1800)
    none = pod("e2", node=ECI.name)
    for _ in range(2):
        assert remaining(bad, now=NOW, horizon=3600) == 0.0  # unknown: it stays on ECI
        assert remaining(number, now=NOW, horizon=3600) == 5400.0
        assert remaining(none, now=NOW, horizon=3600) == 3600.0  # a replica: the horizon


NO_ROOM = ("1 pod(s) on ECI worth moving find no room on ECS nodes now",)


def full_n1(waiting: Pod) -> tuple[ClusterState, Callable[[float, PlannerMemo | None], Moves]]:
    """A cluster whose one node n1 is full, ``waiting`` on ECI, and rebalance asked at a time
    with a memo or none."""
    state = ClusterState(
        nodes=[node("n1", GENERAL4), ECI], pods=[busy("b", "n1", 4000), waiting], policies=[web()]
    )
    groups = [GroupState(GENERAL4, 1)]

    def ask(now: float, memo: PlannerMemo | None) -> Moves:
        return rebalance(
            state, groups, MoveCosts(), now=now, settings=PlannerSettings(), limit=10, memo=memo
        )

    return state, ask


def test_an_answer_that_moved_nothing_is_given_again_only_while_it_stays_the_answer() -> None:
    # n1 is full; e0 (30 min left at NOW: ECI would bill 0.11027 CNY > 0.1) finds no room.
    state, ask = full_n1(on_eci("e0", "30m", created=NOW))
    memo = PlannerMemo()
    no_room = NO_ROOM
    assert ask(NOW, memo).notes == no_room
    assert ask(NOW + 60, memo).notes == no_room  # nothing changed: from the memo
    assert memo.skips == {"rebalance": 1}
    # b ends: a write to the cluster, so the memo does not answer; e0 (29 min left) moves
    state.remove_pod("b")
    (move,) = ask(NOW + 60, memo).moves
    assert move.pod == "default/e0"
    state.upsert_pod(busy("b2", "n1", 4000))
    assert ask(NOW + 60, memo).notes == no_room
    # 5 min on, nothing written: e0 has 25 min left, 0.0919 CNY < 0.1, no longer worth moving
    assert ask(NOW + 300, memo) == ask(NOW + 300, None) == Moves()
    assert memo.skips == {"rebalance": 1}


@pytest.mark.parametrize(
    ("age", "every", "saving"),
    [
        # 10 min into a 2 h Job: ECI would bill 0.220536 * 110 / 60 = 0.404316; the re-run of
        # 10 min at its share of a general node (0.706 / 4 = 0.1765 CNY/h) 0.029417: saves
        # 0.404316 - 0.1 - 0.029417 = 0.274899
        (600.0, None, 0.274899),
        # 1 h in: 0.220536 - 0.1 - 0.1765 < 0: stays (a ReplicaSet's replica would save 0.120536)
        (3600.0, None, None),
        # checkpoints every 15 min: nothing lost at 1 h; every 25 min: the 10 min since 50 min
        (3600.0, "15m", 0.120536),
        (3600.0, "25m", 0.091119),
    ],
)
def test_a_jobs_pod_moves_while_its_saving_pays_for_the_work_run_again(
    age: float, every: str | None, saving: float | None
) -> None:
    notes = {CHECKPOINT_INTERVAL: every} if every else {}
    job = on_eci("e0", "2h", kind="Job", created=NOW - age, annotations=notes)
    result = moves([busy("b", "n1", 2000), job], nodes=[node("n1", GENERAL4)])
    if saving is None:
        assert result.moves == ()
        replica = on_eci("e0", "2h", created=NOW - age)
        (move,) = moves([busy("b", "n1", 2000), replica], nodes=[node("n1", GENERAL4)]).moves
        assert move.saving == pytest.approx(0.120536, abs=1e-6)
        return
    (move,) = result.moves
    assert move.saving == pytest.approx(saving, abs=1e-6)
    if every != "15m":
        assert "min of lost work run again" in move.reason


def test_a_jobs_pod_judged_worth_moving_is_judged_again_as_its_lost_work_grows() -> None:
    # n1 is full.  A 2 h Job's pod 10 min old is worth moving (no room: the note); 50 min later
    # (1 h old) its re-run costs more than ECI's bill left, so the memo's answer no longer holds
    _, ask = full_n1(on_eci("e0", "2h", kind="Job", created=NOW - 600))
    memo = PlannerMemo()
    assert ask(NOW, memo).notes == NO_ROOM
    assert ask(NOW + 60, memo).notes == NO_ROOM
    assert memo.skips == {"rebalance": 1}
    assert ask(NOW + 3000, memo) == ask(NOW + 3000, None) == Moves()
    assert memo.skips == {"rebalance": 1}


def test_a_jobs_pod_is_expected_to_run_at_least_as_long_again_as_it_has_run() -> None:
    from autoscaler.demand import remaining

    # past its estimate, or without one, a Job's pod is expected to run as long again (the
    # heavy-tailed lifetimes predictive.pinned assumes); a bare pod's remaining time stays 0
    late = on_eci("e0", "2h", kind="Job", created=NOW - 3 * 3600)
    assert remaining(late, now=NOW, horizon=3600) == 3 * 3600.0
    assert remaining(on_eci("e1", "2h", kind="Job", created=NOW - 600), now=NOW, horizon=3600) == (
        6600.0  # its own estimate is longer
    )
    unknown = pod("e2", 1000, 2 * GIB, node=ECI.name, kind="Job", created=NOW - 600)
    assert remaining(unknown, now=NOW, horizon=3600) == 600.0
    # 3 h old: ECI would bill 0.220536 * 3 = 0.661608 over the 3 h expected; the re-run of 3 h
    # at 0.1765 CNY/h is 0.5295: saves 0.661608 - 0.1 - 0.5295 = 0.032108, it moves
    (move,) = moves([busy("b", "n1", 2000), late], nodes=[node("n1", GENERAL4)]).moves
    assert move.saving == pytest.approx(0.032108, abs=1e-6)
