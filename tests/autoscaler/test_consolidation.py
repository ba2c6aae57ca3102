"""Consolidation: fewer or cheaper ECS nodes for the same pods.  Expectations computed by hand."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from test_planner import BATCH4 as BATCH_POOL
from test_planner import ECI, GENERAL4, GIB, NOW, node, pod
from test_planner import G8 as PLAIN_G8

import autoscaler.consolidation
import autoscaler.scaledown
from autoscaler.consolidation import Consolidation
from autoscaler.context import Context, PlannerMemo
from autoscaler.nodegroup import InstanceType, PlannerSettings
from autoscaler.planner import EXPECTED_DURATION, Plan, plan
from autoscaler.state import DisruptionBudget, GroupState
from extender.model import Node, NodeKind, Pod
from extender.policy import ResourcePolicy, Unit
from extender.selectors import LabelSelector
from extender.snapshot import ClusterState

G4 = dataclasses.replace(GENERAL4, name="g4")
G8 = dataclasses.replace(PLAIN_G8, labels={"pool": "general"})
BATCH4 = dataclasses.replace(BATCH_POOL, name="batch4", price_per_hour=0.5)
ON = Consolidation()
# web pods on ECS only on pool=general nodes, else on ECI
GENERAL_WEB = ResourcePolicy(
    "web",
    "default",
    LabelSelector({"app": "web"}),
    (Unit(NodeKind.ECS, node_selector={"pool": "general"}), Unit(NodeKind.ECI)),
)
EVERYONE = ResourcePolicy(
    "all", "default", LabelSelector({}), (Unit(NodeKind.ECS), Unit(NodeKind.ECI))
)


def run(
    pods: Sequence[Pod],
    groups: Sequence[GroupState],
    nodes: Sequence[Node],
    *,
    unneeded: dict[str, float],
    consolidation: Consolidation | None = ON,
    policies: Sequence[ResourcePolicy] = (),
    pdbs: Sequence[DisruptionBudget] = (),
) -> Plan:
    return plan(
        ClusterState(nodes=nodes, pods=pods, policies=policies),
        groups,
        forecast=None,
        settings=PlannerSettings(),
        now=NOW,
        unneeded=unneeded,
        pdbs=pdbs,
        consolidation=consolidation,
    )


def test_an_empty_node_goes_after_empty_after_not_the_unneeded_time() -> None:
    # n1 has been empty for 60 s: > 30 s (empty_after), < 600 s (the unneeded time)
    nodes = [node("n1", G4, created=1.0), node("n2", G4, created=2.0)]
    pods = [pod("big", 3000, 4 * GIB, node="n2")]
    groups = [GroupState(G4, 2, last_scale_up=0.0)]
    result = run(pods, groups, nodes, unneeded={"n1": NOW - 60})
    assert [(d.node, d.code) for d in result.scale_downs] == [("n1", "empty")]
    classic = run(pods, groups, nodes, unneeded={"n1": NOW - 60}, consolidation=None)
    assert classic.scale_downs == ()


def test_a_busy_node_whose_pods_fit_on_the_rest_goes() -> None:
    # every node is at 62.5 % (above the 50 % threshold): n1 holds two 1.25-cpu pods, n2 and n3
    # one 2.5-cpu pod each (1.5 cpu free).  n1's pods fit one on n2, one on n3: n1 goes; then
    # n2 and n3 are full.  cluster-autoscaler's rule removes nothing.
    nodes = [node(f"n{i}", G4, created=float(i)) for i in (1, 2, 3)]
    pods = [
        pod("a", 1250, GIB, node="n1"),
        pod("b", 1250, GIB, node="n1"),
        pod("c", 2500, GIB, node="n2"),
        pod("d", 2500, GIB, node="n3"),
    ]
    groups = [GroupState(G4, 3, last_scale_up=0.0)]
    long_ago = {f"n{i}": NOW - 3600 for i in (1, 2, 3)}
    result = run(pods, groups, nodes, unneeded=long_ago)
    (down,) = result.scale_downs
    assert (down.node, down.code) == ("n1", "consolidated")
    assert "its 2 pod(s) fit on n2, n3" in down.reason
    assert run(pods, groups, nodes, unneeded=long_ago, consolidation=None).scale_downs == ()
    # first seen fitting now: it waits the unneeded time like any other unneeded node
    fresh = run(pods, groups, nodes, unneeded={})
    assert fresh.scale_downs == ()
    assert set(fresh.unneeded) == {"n1"}


def test_a_busy_node_with_a_jobs_pod_is_consolidated_until_its_work_is_worth_a_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As above, with n1's second pod a Job's (1.25 cpu of a 0.706 CNY/h node: 0.2206 CNY/h,
    # worth more than the 0.1 CNY restart after 1631.7 s).  Until then n1's pods fit elsewhere
    # and the busy nodes' pods are not asked about (drain_stuck), only n1's once it is ready
    # to go; after, n1 is not unneeded and only the Job's pod was asked.
    asked: list[str] = []
    stuck = autoscaler.consolidation.drain_stuck

    def counting(ctx: Any, pod: Pod, *args: Any, **kwargs: Any) -> str | None:
        asked.append(pod.name)
        return stuck(ctx, pod, *args, **kwargs)

    monkeypatch.setattr(autoscaler.scaledown, "drain_stuck", counting)
    nodes = [node(f"n{i}", G4, created=float(i)) for i in (1, 2, 3)]
    groups = [GroupState(G4, 3, last_scale_up=0.0)]
    long_ago = {f"n{i}": NOW - 3600 for i in (1, 2, 3)}
    for age, goes in ((1631.0, True), (1700.0, False)):
        asked.clear()
        pods = [
            pod("a", 1250, GIB, node="n1"),
            pod("b", 1250, GIB, node="n1", kind="Job", created=NOW - age),
            pod("c", 2500, GIB, node="n2"),
            pod("d", 2500, GIB, node="n3"),
        ]
        result = run(pods, groups, nodes, unneeded=long_ago)
        assert [d.node for d in result.scale_downs] == (["n1"] if goes else [])
        assert sorted(result.unneeded) == (["n1"] if goes else [])
        assert asked == (["a", "b"] if goes else ["b"])


def test_a_node_is_replaced_by_a_cheaper_groups_node_and_then_goes() -> None:
    # n8 (8 cpu, 1.0/h) holds one 2-cpu pod (25 %) and nothing else could take it.  One g4 node
    # (0.706/h) holds it: scale g4 up by one.  Next pass, with that node up, n8's pod fits on it
    # and n8 goes (most expensive first, so the new empty node is not taken first).
    pods = [pod("w", 2000, 2 * GIB, node="n8")]
    groups = [GroupState(G4, 0), GroupState(G8, 1, last_scale_up=0.0)]
    first = run(pods, groups, [node("n8", G8)], unneeded={"n8": NOW - 3600})
    (up,) = first.scale_ups
    assert (up.group, up.delta, up.code) == ("g4", 1, "consolidated")
    assert "fit on one g4 node at 0.706/h instead of g8 at 1/h" in up.reason
    assert first.scale_downs == ()
    classic = run(pods, groups, [node("n8", G8)], unneeded={"n8": NOW - 3600}, consolidation=None)
    assert classic.scale_ups == ()

    nodes = [node("n8", G8, created=1.0), node("n4", G4, created=2.0)]
    groups = [GroupState(G4, 1, last_scale_up=0.0), GroupState(G8, 1, last_scale_up=0.0)]
    second = run(pods, groups, nodes, unneeded={"n8": NOW - 3600, "n4": NOW - 3600})
    assert [(d.node, d.code) for d in second.scale_downs] == [("n8", "underutilized")]
    assert second.scale_ups == ()


def test_a_replacement_stays_in_the_pods_unit() -> None:
    # batch4 is cheaper still (0.5/h) but pool=batch: the web pod's unit is pool=general
    web = GENERAL_WEB
    pods = [pod("w", 2000, 2 * GIB, node="n8")]
    groups = [GroupState(BATCH4, 0), GroupState(G4, 0), GroupState(G8, 1, last_scale_up=0.0)]
    result = run(pods, groups, [node("n8", G8)], unneeded={"n8": NOW - 3600}, policies=[web])
    (up,) = result.scale_ups
    assert up.group == "g4"
    unmanaged = run(pods, groups, [node("n8", G8)], unneeded={"n8": NOW - 3600})
    assert unmanaged.scale_ups[0].group == "batch4"


def test_disruption_budgets_and_min_sizes_hold() -> None:
    nodes = [node(f"n{i}", G4, created=float(i)) for i in (1, 2, 3)]
    pods = [
        pod("a", 1250, GIB, node="n1"),
        pod("b", 1250, GIB, node="n1"),
        pod("c", 2500, GIB, node="n2", app="db"),
        pod("d", 2500, GIB, node="n3", app="db"),
    ]
    long_ago = {f"n{i}": NOW - 3600 for i in (1, 2, 3)}
    pdb = DisruptionBudget("default", LabelSelector({"app": "web"}), 0, name="web")
    held = run(pods, [GroupState(G4, 3, last_scale_up=0.0)], nodes, unneeded=long_ago, pdbs=[pdb])
    assert held.scale_downs == ()
    at_min = dataclasses.replace(G4, min_size=3)
    kept = run(pods, [GroupState(at_min, 3, last_scale_up=0.0)], nodes, unneeded=long_ago)
    assert kept.scale_downs == ()


def g2_unneeded_pass(
    state: ClusterState, groups: Sequence[GroupState], memo: PlannerMemo | None
) -> Plan:
    """A consolidating pass at NOW in which g2 has been unneeded for 1,000 s."""
    return plan(
        state,
        groups,
        forecast=None,
        settings=PlannerSettings(),
        now=NOW,
        unneeded={"g2": NOW - 1000},
        consolidation=ON,
        memo=memo,
    )


def test_a_pass_over_the_same_cluster_decides_from_the_memo_as_afresh() -> None:
    # g1 (general pool) is full of web pods (busy: the consolidation drain asks whether they fit
    # elsewhere), b1 is an empty batch node, g2 holds one web pod and has been unneeded for
    # 1,000 s (ready to go: the second drain).  A second pass over the same cluster takes the
    # busy drain's answer from the memo and decides as the first.
    web = GENERAL_WEB
    nodes = [node("g1", G4), node("b1", BATCH4), node("g2", G4)]
    pods = [pod(f"w{i}", 1000, GIB, node="g1") for i in range(4)]
    pods.append(pod("w9", 1000, GIB, node="g2"))
    state = ClusterState(nodes=nodes, pods=pods, policies=[web])
    groups = [GroupState(G4, 2), GroupState(BATCH4, 1)]
    memo = PlannerMemo()

    def once(memo: PlannerMemo | None) -> Plan:
        return g2_unneeded_pass(state, groups, memo)

    first = once(memo)
    assert once(memo) == first == once(None)
    assert memo.skips == {"scale-down: busy nodes": 1}
    # g2 stays: w9 may only land in the general pool (g1 is full) and b1 is a batch node.  Both
    # drains of the pass share the "drain" eligibility rows; read against the other drain's node
    # order, w9 "fitted" on b1 and g2 went (the rows are now kept for one node list at a time).
    assert first.scale_downs == ()


def test_a_busy_drain_answered_from_the_memo_asks_no_pod_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The cluster above: the first pass drains g1 (busy) and g2 (ready) and classes their pods;
    # the second takes g1's answer from the memo and classes only g2's pod, for its own drain
    # (a class's index is the pass's name for it; the rows read from it depend on the pods'
    # selectors and tolerations alone), and decides the same.
    nodes = [node("g1", G4), node("b1", BATCH4), node("g2", G4)]
    pods = [pod(f"w{i}", 1000, GIB, node="g1") for i in range(4)]
    pods.append(pod("w9", 1000, GIB, node="g2"))
    state = ClusterState(nodes=nodes, pods=pods, policies=[GENERAL_WEB])
    groups = [GroupState(G4, 2), GroupState(BATCH4, 1)]
    memo = PlannerMemo()
    classed: list[str] = []
    class_of = Context.class_of

    def counting(ctx: Context, pod: Pod) -> int:
        classed.append(pod.name)
        return class_of(ctx, pod)

    monkeypatch.setattr(Context, "class_of", counting)
    first = g2_unneeded_pass(state, groups, memo)
    assert sorted(set(classed)) == ["w0", "w1", "w2", "w3", "w9"]
    classed.clear()
    assert g2_unneeded_pass(state, groups, memo) == first
    assert memo.skips == {"scale-down: busy nodes": 1}
    assert set(classed) == {"w9"}


def test_the_busy_drain_answer_is_kept_across_writes_it_does_not_read() -> None:
    # The same cluster as above, plus a pod on ECI.  A pod created on ECI changes the state's
    # revision but nothing the busy drain reads (ECS nodes, their usage, the pods to move): the
    # next pass takes the drain's answer from the memo.  A pod bound to the busy node g1
    # changes its usage: the drain runs again.  Each pass decides as a pass without the memo.
    nodes = [node("g1", G4), node("b1", BATCH4), node("g2", G4), ECI]
    pods = [pod(f"w{i}", 1000, GIB, node="g1") for i in range(3)]
    pods += [pod("w9", 1000, GIB, node="g2"), pod("e0", 1000, GIB, node=ECI.name)]
    state = ClusterState(nodes=nodes, pods=pods, policies=[GENERAL_WEB])
    groups = [GroupState(G4, 2), GroupState(BATCH4, 1)]
    memo = PlannerMemo()

    def once(memo: PlannerMemo | None) -> Plan:
        return g2_unneeded_pass(state, groups, memo)

    assert once(memo) == once(None)
    assert memo.skips == {}
    state.upsert_pod(pod("e1", 1000, GIB, node=ECI.name))
    assert once(memo) == once(None)
    assert memo.skips == {"scale-down: busy nodes": 1}
    state.upsert_pod(pod("w3", 500, GIB, node="g1"))
    assert once(memo) == once(None)
    assert memo.skips == {"scale-down: busy nodes": 1}  # g1's usage changed: drained again


def test_each_busy_node_gets_its_own_drain_answer() -> None:
    # Listed x, g2, g1; the drain takes the dearest first: x (8 cpu, 1.0 CNY/h), then g1, g2.
    # x's five 1-cpu pods do not fit in g1's and g2's 1 and 0.5 cpu left: x stays.  g1's three
    # fit in x's 3 cpu: g1 goes.  g2's 3.5-cpu pod then fits nowhere: g2 stays.  Each answer
    # belongs to its node, not to the node at the same place in the listed order (g2).
    general8 = dataclasses.replace(G8, name="g8")
    nodes = [node("x", general8), node("g2", G4), node("g1", G4)]
    pods = [pod(f"x{i}", 1000, GIB, node="x") for i in range(5)]
    pods += [pod("big", 3500, GIB, node="g2")]
    pods += [pod(f"g{i}", 1000, GIB, node="g1") for i in range(3)]
    long_ago = dict.fromkeys(("x", "g1", "g2"), NOW - 1000)
    got = run(pods, [GroupState(G4, 2), GroupState(general8, 1)], nodes, unneeded=long_ago)
    assert [d.node for d in got.scale_downs] == ["g1"]
    assert sorted(got.unneeded) == ["g1"]


# Issue 12: a new node that takes a replica off ECI and lets half-used nodes go.  Prices as the
# default scenario's: 8 cpu / 32 GiB at 1.412 CNY/h, 32 cpu / 128 GiB at 5.648 (60 s boots).
SMALL = dataclasses.replace(
    GENERAL4,
    name="g8c",
    instance_type=InstanceType("ecs.8c32g", 8000, 32 * GIB),
    price_per_hour=1.412,
)
LARGE = dataclasses.replace(
    SMALL,
    name="g32c",
    instance_type=InstanceType("ecs.32c128g", 32000, 128 * GIB),
    price_per_hour=5.648,
)


def _absorbing(small_nodes: int) -> tuple[list[Pod], list[Node], list[GroupState]]:
    # each small node holds one 5-cpu / 8 GiB replica (62.5 %: busy, and its pod fits no other
    # small node); the 20-cpu / 64 GiB replica of "big" runs on ECI for lack of room
    nodes = [ECI, *(node(f"n{i}", SMALL, created=float(i)) for i in range(small_nodes))]
    pods = [pod(f"s{i}", 5000, 8 * GIB, node=f"n{i}", app=f"s{i}") for i in range(small_nodes)]
    pods.append(pod("big", 20000, 64 * GIB, node=ECI.name, app="big"))
    groups = [GroupState(SMALL, small_nodes, last_scale_up=0.0), GroupState(LARGE, 0)]
    return pods, nodes, groups


@pytest.mark.parametrize(("small_nodes", "added"), [(2, True), (1, False)])
def test_a_new_node_pays_with_the_ecs_nodes_it_lets_go(small_nodes: int, added: bool) -> None:
    # The replica is expected to run one more horizon (3600 s; it has no expected duration).
    # ECI: 20 * 0.1764 + 64 * 0.022068 = 4.940352 CNY/h, over the 3600 - 60 s after the boot:
    # 4.85801.  A g32c node alone is paid 60 + 3600 + 600 s (boot, run, unneeded time):
    # 5.648 * 4260 / 3600 = 6.68347 > 4.85801, so alone it stays on ECI (as before).  The node
    # also takes the small nodes' pods (5 cpu / 8 GiB each fit its 12 cpu / 64 GiB left); each
    # small node then goes 600 s after the new node is up and its replica runs 3600 s, so it is
    # saved from 60 + 600 to 3600 s: 1.412 * 2940 / 3600 = 1.15313, less a 0.1 restart: 1.05313.
    # Two: 4.85801 + 2 * 1.05313 = 6.96427 > 6.68347: one g32c node.  One: 5.91114 < 6.68347.
    pods, nodes, groups = _absorbing(small_nodes)
    result = run(pods, groups, nodes, unneeded={}, policies=[EVERYONE])
    if not added:
        assert result.scale_ups == ()
        return
    (up,) = result.scale_ups
    assert (up.group, up.delta, up.pods, up.code) == (
        "g32c",
        1,
        ("default/big",),
        "eci-cheaper-on-ecs",
    )
    assert "a new g32c node for 1 pod(s) on ECI also takes the pods of n0, n1" in result.notes[-1]
    # without consolidation the node is judged alone
    classic = run(pods, groups, nodes, unneeded={}, policies=[EVERYONE], consolidation=None)
    assert classic.scale_ups == ()


def test_the_nodes_a_new_node_could_let_go_count_in_the_bound_that_skips_the_packing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # scaleup._none_pays: only "big" is left (on ECI), only g32c can take it.  Its ECI bill after
    # the boot is 4.85801 and a g32c node costs at least 5.648 * (60 + 3600 + 600) / 3600 =
    # 6.68347 (as above).  The bound counts each small node a new g32c node could let go at its
    # whole price (1.412/h) from 600 s after the boot until the node's paid time ends (3600 s
    # of it), no restart: 1.412 each.  Two small nodes: 4.85801 + 2.824 = 7.68201 > 6.68347:
    # the bound cannot tell, the packing runs, and the node pays (6.96427 above).  One:
    # 4.85801 + 1.412 = 6.27001 < 6.68347: no node pays, the packing is skipped (it keeps "big"
    # on ECI: 5.91114 < 6.68347 above).  Without consolidation the bound holds with two:
    # 4.85801 < 6.68347.

    held = _spy_on_the_bound(monkeypatch)
    for small_nodes, consolidation, skipped in [(2, ON, False), (1, ON, True), (2, None, True)]:
        held.clear()
        pods, nodes, groups = _absorbing(small_nodes)
        run(pods, groups, nodes, unneeded={}, policies=[EVERYONE], consolidation=consolidation)
        assert held == [skipped], (small_nodes, consolidation)
    # a node at its group's minimum cannot go: with min 2, neither small node counts
    held.clear()
    pods, nodes, groups = _absorbing(2)
    groups[0] = GroupState(dataclasses.replace(SMALL, min_size=2), 2, last_scale_up=0.0)
    result = run(pods, groups, nodes, unneeded={}, policies=[EVERYONE])
    assert (held, result.scale_ups) == ([True], ())


def test_freed_nodes_dearer_than_the_new_node_count_at_its_longest_paid_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A Job's pod on ECI (1 cpu, 4 GiB, 0.1 GPU: ECI bills a whole GPU, 12.264672 CNY/h), 1 h
    # old, expected to run 2 h: 3600 s left; moved, it runs its hour again once the node is up
    # (redo 3600 + 180 s boot).  Only "gpu8" (8 GPUs, 64 CNY/h, 180 s boot) may take it (its
    # node selector).  Two "old" nodes (33 CNY/h each) hold one 1-GPU replica each (24 h to
    # go): a gpu8 node could take both, then they go.  ECI saves 12.264672 * 3420 / 3600 =
    # 11.65144.  The bound at the node's shortest paid time (180 + 3600 + 600 s = 4380 s):
    # 64 * 4380 / 3600 = 77.86667 >= 11.65144 + 66 * (4380 - 780) / 3600 = 77.65144: no pay.
    # But the freed nodes (66/h) cost more than the node (64/h): the longer the node is paid,
    # the more they save.  Its paid time with the redo, 180 + 3600 + 3780 + 600 = 8160 s:
    # 64 * 8160 / 3600 = 145.06667 < 11.65144 + 66 * 7380 / 3600 - 2 * 0.1 restarts =
    # 146.75144: the node pays, and the bound must not skip the packing.

    gpu = dict(cpu_milli=96000, memory=384 * GIB, gpu_milli=8000)
    new = dataclasses.replace(
        SMALL,
        name="gpu8",
        instance_type=InstanceType("gpu8", **gpu),
        labels={"pool": "new"},
        price_per_hour=64.0,
        boot_time=180.0,
    )
    old = dataclasses.replace(
        new,
        name="old",
        instance_type=InstanceType("old4", 48000, 192 * GIB, 4000),
        labels={"pool": "old"},
        price_per_hour=33.0,
    )
    nodes = [ECI, node("o0", old), node("o1", old)]
    day = {EXPECTED_DURATION: "24h"}
    pods = [
        pod(f"r{i}", 4000, 16 * GIB, node=f"o{i}", app=f"r{i}", gpu=1000, created=NOW - 60)
        for i in (0, 1)
    ]
    pods = [dataclasses.replace(p, annotations=day) for p in pods]
    job = pod(
        "job",
        1000,
        4 * GIB,
        node=ECI.name,
        kind="Job",
        gpu=100,
        created=NOW - 3600,
        annotations={EXPECTED_DURATION: "2h"},
        node_selector={"pool": "new"},
    )
    groups = [GroupState(new, 0), GroupState(old, 2, last_scale_up=0.0)]
    held = _spy_on_the_bound(monkeypatch)
    result = run([*pods, job], groups, nodes, unneeded={}, policies=[EVERYONE])
    assert held == [False]
    (up,) = result.scale_ups
    assert (up.group, up.delta, up.pods) == ("gpu8", 1, ("default/job",))
    assert result.notes == (
        "a new gpu8 node for 1 pod(s) on ECI also takes the pods of o0, o1, which can then go",
    )


def test_the_nodes_a_new_node_took_go_once_it_holds_the_replica() -> None:
    # The g32c node is up and rebalance moved "big" onto it (20 of 32 cpu: busy, and "big" fits
    # nowhere else); n0's and n1's replicas fit its 12 cpu left: both go (consolidated).
    pods, nodes, groups = _absorbing(2)
    pods = [*pods[:-1], pod("big", 20000, 64 * GIB, node="l0", app="big")]
    nodes = [*nodes, node("l0", LARGE, created=5.0)]
    groups = [GroupState(SMALL, 2, last_scale_up=0.0), GroupState(LARGE, 1, last_scale_up=0.0)]
    since = {"n0": NOW - 900, "n1": NOW - 900}
    result = run(pods, groups, nodes, unneeded=since, policies=[EVERYONE])
    assert sorted((d.node, d.code) for d in result.scale_downs) == [
        ("n0", "consolidated"),
        ("n1", "consolidated"),
    ]
    assert result.scale_ups == ()


def test_a_node_that_receives_pending_pods_is_not_taken() -> None:
    # As above with two small nodes, but a pending 3-cpu pod fits one of them (3 cpu free): that
    # node will be full, so a new node cannot take its pods.  With the other alone the new node
    # does not pay (5.91114 < 6.68347): no scale-up, the pending pod lands, "big" stays on ECI.
    pods, nodes, groups = _absorbing(2)
    pods.append(pod("p", 3000, 4 * GIB, app="p"))
    result = run(pods, groups, nodes, unneeded={}, policies=[EVERYONE])
    assert result.scale_ups == ()


def _spy_on_the_bound(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each call of ``scaleup._none_pays`` answers (True: the packing is skipped)."""
    from autoscaler import scaleup

    held: list[bool] = []
    bound = scaleup._none_pays

    def spied(*args: object, **kwargs: object) -> bool:
        found = bound(*args, **kwargs)  # type: ignore[arg-type]
        held.append(found)
        return found

    monkeypatch.setattr(scaleup, "_none_pays", spied)
    return held
