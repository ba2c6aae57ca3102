"""``autoscaler.context``: the planner's memo of new-node templates (``PlannerMemo``), and the
identity-keyed memo of pure functions (``by_identity``)."""

from __future__ import annotations

import functools
import gc
import inspect
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from autoscaler_fakes import group_doc
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.context import PlannerMemo, by_identity
from autoscaler.nodegroup import config_from_dict
from extender.model import NodeKind, Resources

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


class Box:
    """A value in an object of its own: two boxes of one value are equal, never the same."""

    __slots__ = ("__weakref__", "value")

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Box) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def _one(a: Box) -> int:
    return a.value


def _two(a: Box, b: Box) -> int:
    return a.value * 1000 + b.value


def _three(a: Box, b: Box, c: Box) -> int:
    return a.value * 1_000_000 + b.value * 1000 + c.value


def _variadic(a: Box, *more: Box) -> int:
    return a.value * 1000 + sum(b.value for b in more)


CASES = [(_one, 1), (_two, 2), (_three, 3), (_variadic, 2), (_variadic, 3)]


@pytest.mark.parametrize(("fn", "n"), CASES)
def test_by_identity_never_answers_for_other_objects_of_equal_value(
    fn: Callable[..., int], n: int
) -> None:
    calls: list[tuple[Box, ...]] = []

    def counted(*args: Box) -> int:
        calls.append(args)
        return fn(*args)

    kept = by_identity(64)(functools.wraps(fn)(counted))
    first = [Box(k) for k in range(1, n + 1)]
    assert kept(*first) == fn(*first)
    assert kept(*first) == fn(*first)
    assert len(calls) == 1  # the same objects: kept
    equal = [Box(k) for k in range(1, n + 1)]
    assert equal == first
    assert kept(*equal) == fn(*equal)
    assert len(calls) == 2  # equal values in other objects: asked again, not a shared entry
    assert kept(*equal) == fn(*equal)
    assert len(calls) == 2


@pytest.mark.parametrize(("fn", "n"), CASES)
def test_by_identity_never_answers_for_a_freed_object_whose_id_is_reused(
    fn: Callable[..., int], n: int
) -> None:
    kept = by_identity(64)(fn)
    # CPython gives a freed object's memory, and so its id, to the next object of its size: a
    # table that kept answers by id without holding the objects would answer for the old ones.
    for k in range(300):
        expected = fn(*[Box(k + j) for j in range(n)])
        assert kept(*[Box(k + j) for j in range(n)]) == expected
    held = Box(5)
    alive = weakref.ref(held)
    kept(*[held] * n)
    del held
    gc.collect()
    assert alive() is not None  # the entry holds its objects: their ids cannot be reused
    for k in range(64):
        kept(*[Box(k)] * n)  # the table fills up and is cleared: the entry goes, and its objects
    assert alive() is None


def test_by_identity_calls_one_and_two_parameter_functions_without_packing_arguments() -> None:
    # (the point of those wrappers: a hit answered by the id alone, no ``*args`` tuple to build)
    fixed: list[Callable[..., int]] = [_one, _two]
    for fn in fixed:
        code = by_identity(4)(fn).__code__
        assert not code.co_flags & inspect.CO_VARARGS
        assert code.co_argcount == code.co_posonlyargcount == fn.__code__.co_argcount
    others: list[Callable[..., int]] = [_three, _variadic]
    for fn in others:
        assert by_identity(4)(fn).__code__.co_flags & inspect.CO_VARARGS
    one: Callable[..., int] = by_identity(4)(_one)
    with pytest.raises(TypeError):
        one(Box(1), Box(2))
    with pytest.raises(TypeError, match="positional"):
        one(a=Box(1))


def _classes_cluster() -> tuple[Any, Any, Any, Any]:
    from test_planner import ECI, G4, GENERAL4, LABEL, pod

    from autoscaler.state import GroupState
    from extender.model import NodeKind
    from extender.policy import ResourcePolicy, Unit
    from extender.selectors import LabelSelector
    from extender.snapshot import ClusterState

    policy = ResourcePolicy(
        "web", "default", LabelSelector({"app": "web"}), (Unit(NodeKind.ECS, 2), Unit(NodeKind.ECI))
    )
    state = ClusterState(
        nodes=[ECI], pods=[pod("a", node=ECI.name), pod("b", node=LABEL)], policies=[policy]
    )
    groups = [GroupState(G4, 0), GroupState(GENERAL4, 0)]
    return state, groups, policy, pod


def test_pod_classes_are_kept_across_passes_for_the_same_templates_and_eci_nodes() -> None:
    import dataclasses

    from test_planner import ECI

    from autoscaler.context import Context
    from autoscaler.nodegroup import PlannerSettings

    state, groups, _, pod = _classes_cluster()
    settings = PlannerSettings()
    memo = PlannerMemo()
    first = Context(state, groups, settings, memo=memo)
    cls = first.class_of(pod("x"))
    again = Context(state, groups, settings, memo=memo)
    assert again.classes is first.classes  # the same table: no class computed again
    assert again.class_of(pod("y")) == cls
    assert len(again.classes) == 1
    c = again.classes[cls]
    assert c.offered == [t for t, ok in zip(again.templates, c.groups, strict=True) if ok] + [ECI]
    # Without a memo every pass has its own classes (the plain computation the audit compares).
    assert Context(state, groups, settings).classes is not first.classes
    # Another ECI node object (equal or not) is another table.
    state.upsert_node(dataclasses.replace(ECI, labels={"type": "virtual-kubelet", "z": "1"}))
    assert Context(state, groups, settings, memo=memo).classes is not first.classes


@given(
    counts=st.lists(st.integers(0, 4), min_size=2, max_size=2),
    ordinal=st.none() | st.integers(0, 5),
)
def test_a_class_s_decision_is_decide_s(counts: list[int], ordinal: int | None) -> None:
    from autoscaler.context import Context
    from autoscaler.nodegroup import PlannerSettings
    from extender.policy import decide

    state, groups, policy, pod = _classes_cluster()
    memo, settings = PlannerMemo(), PlannerSettings()
    ctx = Context(state, groups, settings, memo=memo)
    cls = ctx.class_of(pod("x"))
    plain = decide(policy, counts=counts, candidates=ctx.classes[cls].offered, ordinal=ordinal)
    kept = ctx.decide(cls, policy, counts, ordinal)
    assert kept == plain
    assert (kept.unit, kept.reason, dict(kept.unresolvable)) == (
        plain.unit,
        plain.reason,
        dict(plain.unresolvable),
    )
    # the next pass: the same object for the same policy, counts and ordinal
    assert (
        Context(state, groups, settings, memo=memo).decide(cls, policy, list(counts), ordinal)
        is kept
    )


def test_new_node_groups_and_eligible_rows_are_the_plain_computation_kept() -> None:
    from test_planner import G4, GENERAL4, node

    from autoscaler.context import Context
    from autoscaler.nodegroup import PlannerSettings
    from extender.policy import ResourcePolicy, Unit
    from extender.selectors import LabelSelector, can_hold

    state, groups, policy, pod = _classes_cluster()
    pooled = ResourcePolicy(
        "pool",
        "default",
        LabelSelector({"app": "web"}),
        (Unit(NodeKind.ECS, node_selector={"pool": "general"}), Unit(NodeKind.ECI)),
    )
    memo, settings = PlannerMemo(), PlannerSettings()
    ctx = Context(state, groups, settings, memo=memo)
    cls = ctx.class_of(pod("x"))
    assert ctx.new_node_groups(cls, policy, 0) == (0, 1)
    assert ctx.new_node_groups(cls, pooled, 0) == (1,)  # only GENERAL4 has the pool label
    assert ctx.new_node_groups(cls, None, -1) == (0, 1)
    nodes = [node("n1", G4), node("n2", GENERAL4)]
    row = ctx.node_elig(cls, pooled, 0, nodes, purpose="fit")
    plain = [can_hold(pod("x"), n) and pooled.units[0].contains(n) for n in nodes]
    assert row.tolist() == plain == [False, True]
    assert not row.flags.writeable  # shared by the passes: nobody may write it
    later = Context(state, groups, settings, memo=memo)
    assert later.node_elig(cls, pooled, 0, list(nodes), purpose="fit") is row
    other = [node("n1", G4), node("n2", GENERAL4)]  # equal nodes, other objects: computed again
    assert later.node_elig(cls, pooled, 0, other, purpose="drain") is not row
