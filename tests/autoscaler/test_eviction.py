"""``autoscaler.eviction``: which pods an eviction may take, and which ones may be moved."""

from __future__ import annotations

import pytest

from autoscaler.eviction import (
    CHECKPOINT_INTERVAL,
    SAFE_TO_EVICT,
    blocker,
    lost_work,
    move_blocker,
)
from extender.model import OwnerRef, Pod


def pod(owner: str | None, **annotations: str) -> Pod:
    names = {"safe": SAFE_TO_EVICT, "every": CHECKPOINT_INTERVAL}
    return Pod(
        uid="u",
        name="p",
        namespace="ns",
        owner=OwnerRef(owner, "x") if owner else None,
        annotations={names[k]: v for k, v in annotations.items()},
    )


@pytest.mark.parametrize(
    ("candidate", "may_empty", "may_move"),
    [
        (pod("ReplicaSet"), True, True),
        (pod("StatefulSet"), True, True),
        (pod("ReplicationController"), True, True),
        (pod("Job"), True, True),
        (pod(None), False, False),
        (pod("ReplicaSet", safe="False"), False, False),
        (pod("ReplicaSet", safe="true"), True, True),
    ],
    ids=["replicaset", "statefulset", "rc", "job", "bare", "safe-false", "safe-true"],
)
def test_blockers(candidate: Pod, may_empty: bool, may_move: bool) -> None:
    assert (blocker(candidate) is None) is may_empty
    assert (move_blocker(candidate) is None) is may_move


@pytest.mark.parametrize(
    ("candidate", "ran", "lost"),
    [
        (pod("ReplicaSet"), 3600.0, 0.0),  # a service replica has no progress to lose
        (pod("StatefulSet"), 3600.0, 0.0),
        (pod("Job"), 3600.0, 3600.0),  # no checkpoint: all it ran
        (pod("Job"), 0.0, 0.0),
        (pod("Job"), -5.0, 0.0),  # not started yet
        (pod("Job", every="15m"), 2400.0, 600.0),  # 40 min: checkpoints at 15 and 30
        (pod("Job", every="900"), 1800.0, 0.0),  # just checkpointed
        (pod("Job", every="0"), 3600.0, 0.0),  # keeps all its progress
        (pod("Job", every="often"), 3600.0, 3600.0),  # unreadable: nothing assumed kept
    ],
    ids=["rs", "sts", "job", "job-new", "job-unstarted", "ckpt", "ckpt-now", "ckpt-0", "ckpt-bad"],
)
def test_lost_work(candidate: Pod, ran: float, lost: float) -> None:
    assert lost_work(candidate, ran=ran) == lost
