"""``autoscaler.context``: the planner's memo of new-node templates (``PlannerMemo``), and the
identity-keyed memo of pure functions (``by_identity``)."""

from __future__ import annotations

import pytest
from autoscaler_fakes import group_doc

from autoscaler.context import PlannerMemo, by_identity
from autoscaler.nodegroup import config_from_dict
from extender.model import Resources

CONFIG = {"groups": [group_doc("a"), group_doc("b")]}


def test_templates_are_computed_once_per_groups_and_overhead() -> None:
    groups = config_from_dict(CONFIG).groups
    overhead = Resources(cpu_milli=100, memory=2**28)
    memo = PlannerMemo()
    templates, cap, rows = memo.templates(groups, overhead)
    assert [t.name for t in templates] == [g.template(overhead=overhead).name for g in groups]
    assert rows == [(3900, 16 * 2**30 - 2**28, 0, 110)] * 2
    assert cap.tolist() == [list(r) for r in rows]
    assert not cap.flags.writeable
    again = memo.templates(groups, overhead)
    assert again[0] is templates
    assert again[1] is cap
    other = memo.templates(groups, Resources(cpu_milli=100, memory=2**28))  # equal, not same
    assert other[0] is not templates
    assert other[2] == rows
    assert PlannerMemo().templates(groups, overhead)[0] is not templates  # one memo per planner


def test_the_memo_is_bounded() -> None:
    groups = config_from_dict(CONFIG).groups
    memo = PlannerMemo(size=2)
    first = memo.templates(groups, Resources())
    memo.templates(groups, Resources(pods=1))
    memo.templates(groups, Resources(pods=2))  # the third clears the table
    assert memo.templates(groups, Resources())[0] is not first[0]


def test_usage_is_kept_in_the_memo_only_when_it_has_a_table() -> None:
    from test_planner import G4, node, pod

    from autoscaler.context import Context, Usage
    from autoscaler.nodegroup import PlannerSettings
    from extender.snapshot import ClusterState

    state = ClusterState(nodes=[node("n1", G4)], pods=[pod("a", node="n1")])
    settings = PlannerSettings()
    table: dict[str, Usage] = {}
    kept = PlannerMemo(usage=table)
    first = Context(state, [], settings, memo=kept).usage("n1")
    assert (len(first.pods), first.cpu_milli) == (1, 1000)
    assert table == {"n1": first}
    state.upsert_pod(pod("b", 500, node="n1"))
    # The keeper has not dropped n1's entry: the next pass reads the kept one (the replay drops
    # it on every bind, so this never happens there).
    assert Context(state, [], settings, memo=kept).usage("n1") is first
    table.pop("n1")
    assert Context(state, [], settings, memo=kept).usage("n1").cpu_milli == 1500
    # The controller's memo keeps no usage: every pass computes it afresh.
    plain = PlannerMemo()
    assert plain.usage is None
    before = Context(state, [], settings, memo=plain).usage("n1")
    state.upsert_pod(pod("c", 250, node="n1"))
    assert before.cpu_milli == 1500
    assert Context(state, [], settings, memo=plain).usage("n1").cpu_milli == 1750


def test_policy_of_is_policy_for_kept_per_policies_and_pod_objects() -> None:
    from test_planner import pod

    from autoscaler.context import policy_of
    from extender.model import NodeKind
    from extender.policy import ResourcePolicy, Unit, policy_for
    from extender.selectors import LabelSelector

    def web(name: str) -> ResourcePolicy:
        return ResourcePolicy(name, "default", LabelSelector({"app": "web"}), (Unit(NodeKind.ECI),))

    one, two = (web("b"),), (web("a"), web("b"))
    w, other = pod("w1"), pod("o1", app="other")
    assert policy_of(one, w) is policy_for(one, w) is one[0]
    assert policy_of(one, w) is one[0]  # kept
    assert policy_of(two, w) is two[0]  # other policies: another answer ("a" sorts first)
    assert policy_of(one, other) is None
    listed = list(one)
    assert policy_of(listed, w) is one[0]
    listed[0] = web("c")  # a list can change: never kept
    assert policy_of(listed, w) is listed[0]


def test_by_identity_answers_the_same_objects_once_and_equal_objects_again() -> None:
    calls: list[tuple[object, ...]] = []

    @by_identity(2)
    def joined(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
        calls.append((a, b))
        return a + b

    a, b = (1, 2), (3,)
    first = joined(a, b)
    assert joined(a, b) is first  # the same objects: kept
    assert len(calls) == 1
    equal = tuple([1, 2])  # equal to ``a``, another object: computed again
    assert equal is not a
    assert joined(equal, b) == first
    assert len(calls) == 2
    assert joined(b, a) == (3, 1, 2)  # the order of the objects is part of the key
    assert len(calls) == 3  # the table was full (2): cleared, then kept
    assert joined(b, a) == (3, 1, 2)
    assert len(calls) == 3
    with pytest.raises(TypeError, match="positional"):
        joined(a, b=b)
