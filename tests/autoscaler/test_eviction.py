"""``autoscaler.eviction``: which pods an eviction may take, and which ones may be moved."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from autoscaler.eviction import (
    CHECKPOINT_INTERVAL,
    SAFE_TO_EVICT,
    blocker,
    drain_blocker,
    drain_clear_until,
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


@given(
    owner=st.sampled_from(["Job", "ReplicaSet", None]),
    every=st.sampled_from([None, "0", "15m", "often"]),
    safe=st.sampled_from([None, "false"]),
    created=st.one_of(st.floats(0, 2e9), st.sampled_from([math.nan, math.inf, -math.inf])),
    share=st.one_of(st.floats(allow_nan=True), st.floats(0, 20)),
    restart=st.one_of(st.floats(allow_nan=True), st.floats(0, 5)),
    before=st.floats(0, 1e7),
)
@example(owner="Job", every=None, safe=None, created=1.7e9, share=0.35, restart=0.1, before=0.0)
@example(owner="Job", every=None, safe=None, created=0.0, share=math.inf, restart=0.0, before=0.0)
@example(owner="ReplicaSet", every=None, safe=None, created=0.0, share=1.0, restart=-1, before=0)
def test_a_pod_clear_until_a_time_is_clear_at_every_earlier_one(
    owner: str | None,
    every: str | None,
    safe: str | None,
    created: float,
    share: float,
    restart: float,
    before: float,
) -> None:
    # drain_clear_until's promise, against drain_blocker itself: at the time and any earlier
    # one, the pod may go; a Job's pod without checkpoints at a share that makes its restart
    # worth less than 2e7 s of work is blocked soon after it (the time is found, not a guess)
    annotations = {k: v for k, v in ((CHECKPOINT_INTERVAL, every), (SAFE_TO_EVICT, safe)) if v}
    candidate = dataclasses.replace(pod(owner), annotations=annotations, created=created)
    costs = {"share_per_hour": share, "restart": restart}
    clear = drain_clear_until(candidate, **costs)
    assert not math.isnan(clear)
    if math.isinf(clear) and clear > 0:
        times = [created, created + before, created + 1e9, math.inf]
    else:
        times = [clear, clear - before] if math.isfinite(clear) else []
    for t in times:
        assert drain_blocker(candidate, now=t, **costs) is None
    found = owner == "Job" and every is None and safe is None and math.isfinite(created)
    if found and share >= 1e-3 and 0 <= restart <= 5:
        assert math.isfinite(clear)
        assert drain_blocker(candidate, now=clear + max(1.0, clear * 1e-8), **costs) is not None
