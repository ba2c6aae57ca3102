"""``autoscaler.eviction``: which pods an eviction may take, and which ones may be moved."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoscaler.eviction import (
    CHECKPOINT_INTERVAL,
    SAFE_TO_EVICT,
    blocker,
    lost_work,
    move_blocker,
)
from extender.model import OwnerRef, Pod, pod_from_dict


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


def test_a_live_jobs_pod_is_priced_from_its_owner_references_and_annotation() -> None:
    # what the controller reads from the API server: the Job from ownerReferences, the age from
    # creationTimestamp, the checkpoint interval from the annotation
    raw = {
        "metadata": {
            "name": "train-x7k2p",
            "namespace": "ml",
            "uid": "u1",
            "creationTimestamp": "2026-12-02T10:00:00Z",
            "annotations": {CHECKPOINT_INTERVAL: "20m"},
            "ownerReferences": [{"kind": "Job", "name": "train", "controller": True}],
        },
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
    }
    live = pod_from_dict(raw)
    assert move_blocker(live) is None
    # 70 min after its creation: checkpoints at 20, 40 and 60 min, 10 min lost
    assert lost_work(
        live, ran=datetime(2026, 12, 2, 11, 10, tzinfo=UTC).timestamp() - live.created
    ) == (600.0)
