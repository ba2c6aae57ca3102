"""Consolidation: fewer or cheaper ECS nodes for the same pods.  Expectations computed by hand."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from test_planner import BATCH4 as BATCH_POOL
from test_planner import ECI, GENERAL4, GIB, NOW, node, pod
from test_planner import G8 as PLAIN_G8

from autoscaler.consolidation import Consolidation
from autoscaler.context import PlannerMemo
from autoscaler.nodegroup import PlannerSettings
from autoscaler.planner import Plan, plan
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
    # busy drain's answer from the memo, and must leave the pass's caches as the drain does.
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
