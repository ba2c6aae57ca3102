"""``autoscaler.context``: the planner's memo of new-node templates (``PlannerMemo``)."""

from __future__ import annotations

from autoscaler_fakes import group_doc

from autoscaler.context import PlannerMemo
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
