"""``extender.selectors``: label selectors, node selectors and affinity, taints, "can it hold"."""

from __future__ import annotations

from typing import Any

import pytest

from extender.model import ModelError, Node, Pod, Taint, Toleration
from extender.policies import PolicyError
from extender.selectors import (
    LabelSelector,
    Requirement,
    can_hold,
    fits_node_selector,
    label_selector,
    untolerated_taint,
    why_not_held,
)

LABELS = {"app": "web", "tier": "3"}


@pytest.mark.parametrize(
    ("requirement", "matches"),
    [
        (Requirement("app", "In", ("web", "api")), True),
        (Requirement("app", "In", ("db",)), False),
        (Requirement("app", "NotIn", ("db",)), True),
        (Requirement("zone", "NotIn", ("a",)), True),
        (Requirement("app", "Exists"), True),
        (Requirement("zone", "DoesNotExist"), True),
        (Requirement("tier", "Gt", ("2",)), True),
        (Requirement("tier", "Lt", ("2",)), False),
        (Requirement("app", "Gt", ("2",)), False),
        (Requirement("app", "Near", ("web",)), False),
    ],
    ids=[
        "in",
        "in-miss",
        "notin",
        "notin-absent",
        "exists",
        "doesnotexist",
        "gt",
        "lt",
        "gt-not-a-number",
        "unknown-operator",
    ],
)
def test_requirement(requirement: Requirement, matches: bool) -> None:
    assert requirement.matches(LABELS) is matches


def test_the_empty_selector_matches_everything() -> None:
    assert LabelSelector({}).matches({})
    assert not LabelSelector({"app": "db"}).matches(LABELS)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, LabelSelector({})),
        ({"matchLabels": {"app": "web"}}, LabelSelector({"app": "web"})),
        (
            {"matchExpressions": [{"key": "z", "operator": "Exists"}]},
            LabelSelector({}, (Requirement("z", "Exists"),)),
        ),
    ],
    ids=["null", "labels", "expressions"],
)
def test_label_selector_parses(raw: Any, expected: LabelSelector) -> None:
    assert label_selector(raw, "here") == expected


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "here: expected an object"),
        ({"matchLabels": ["app"]}, "here.matchLabels"),
        ({"matchExpressions": {"key": "a"}}, "here.matchExpressions"),
        ({"matchExpressions": [{"operator": "In"}]}, "here.matchExpressions[0].key"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "here.matchExpressions[0].values"),
    ],
    ids=["not-an-object", "labels-list", "expressions-map", "no-key", "in-without-values"],
)
@pytest.mark.parametrize("error", [ModelError, PolicyError], ids=["model", "policy"])
def test_label_selector_errors_name_the_field(
    raw: Any, field: str, error: type[ValueError]
) -> None:
    with pytest.raises(error, match=r"^" + field.replace("[", r"\[").replace("]", r"\]")):
        label_selector(raw, "here", error=error)


GPU = Taint("nvidia.com/gpu", "present", "NoSchedule")
NODE = Node("n", labels={"pool": "gpu", "zone": "a"}, taints=(GPU,))


def pod(**kw: Any) -> Pod:
    return Pod(uid="u", name="p", namespace="ns", **kw)


GPU_OK = (Toleration(key="nvidia.com/gpu", operator="Exists"),)


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (pod(tolerations=GPU_OK), ""),
        (pod(tolerations=GPU_OK, node_selector={"pool": "gpu"}), ""),
        (pod(tolerations=GPU_OK, node_selector={"pool": "cpu"}), "selector"),
        (
            pod(tolerations=GPU_OK, required_affinity=((("zone", "In", ("b",)),),)),
            "selector",
        ),
        (
            pod(
                tolerations=GPU_OK,
                required_affinity=((("zone", "In", ("b",)),), (("zone", "In", ("a",)),)),
            ),
            "",
        ),
        (pod(), "taint"),
        (pod(node_selector={"pool": "cpu"}), "selector"),  # the selector is named first
    ],
    ids=[
        "tolerated",
        "selector-matches",
        "selector-misses",
        "affinity-misses",
        "affinity-terms-ored",
        "untolerated-taint",
        "both",
    ],
)
def test_why_not_held_and_can_hold_agree(candidate: Pod, reason: str) -> None:
    why = why_not_held(candidate, NODE)
    assert can_hold(candidate, NODE) is (why == "")
    code = "" if not why else "taint" if why.startswith("untolerated taint") else "selector"
    assert code == reason
    assert fits_node_selector(candidate, NODE) is (reason != "selector")


@pytest.mark.parametrize(
    ("effect", "blocks"),
    [("NoSchedule", True), ("NoExecute", True), ("PreferNoSchedule", False)],
    ids=["no-schedule", "no-execute", "prefer-no-schedule"],
)
def test_untolerated_taint_effects(effect: str, blocks: bool) -> None:
    taint = Taint("k", "v", effect)
    assert (untolerated_taint((), (taint,)) == taint) is blocks
