"""``autoscaler.eviction``: which pods an eviction may take, and which ones may be moved."""

from __future__ import annotations

import pytest

from autoscaler.eviction import SAFE_TO_EVICT, blocker, move_blocker
from extender.model import OwnerRef, Pod


def pod(owner: str | None, **annotations: str) -> Pod:
    return Pod(
        uid="u",
        name="p",
        namespace="ns",
        owner=OwnerRef(owner, "x") if owner else None,
        annotations={SAFE_TO_EVICT: annotations["safe"]} if "safe" in annotations else {},
    )


@pytest.mark.parametrize(
    ("candidate", "may_empty", "may_move"),
    [
        (pod("ReplicaSet"), True, True),
        (pod("StatefulSet"), True, True),
        (pod("ReplicationController"), True, True),
        (pod("Job"), True, False),
        (pod(None), False, False),
        (pod("ReplicaSet", safe="False"), False, False),
        (pod("ReplicaSet", safe="true"), True, True),
    ],
    ids=["replicaset", "statefulset", "rc", "job", "bare", "safe-false", "safe-true"],
)
def test_blockers(candidate: Pod, may_empty: bool, may_move: bool) -> None:
    assert (blocker(candidate) is None) is may_empty
    assert (move_blocker(candidate) is None) is may_move
