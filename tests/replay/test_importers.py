"""Importers on the shared files and on broken copies of them."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from autoscaler.planner import EXPECTED_DURATION
from autoscaler.replay.importers import import_openb, import_series
from autoscaler.replay.trace import PodCreated, PodDeleted, ReplicasChanged, TraceError
from extender.model import Resources

from .conftest import data

OPENB = data("alibaba-openb-pods.csv")
DAILY = data("crane-series-daily.csv")
REPLICA = Resources(2000, 8 * 2**30, 1)
HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"


def test_openb_replays_the_pods_that_ran() -> None:
    trace = import_openb(OPENB)
    created = [e for e in trace.events if isinstance(e, PodCreated)]
    deleted = [e for e in trace.events if isinstance(e, PodDeleted)]
    assert len(created) == len(deleted) == 8152 - 897  # the 897 Pending pods never ran
    assert [e.t for e in trace.events] == sorted(e.t for e in trace.events)
    first = created[0]
    assert first.name == "openb-pod-0000"
    assert first.template.requests == Resources(12000, 16384 * 2**20, 1, 1000)
    assert first.workload.kind == "Deployment"  # an LS task: a service's replica (owners="qos")
    gpus = {e.template.requests.gpu_milli for e in created}
    assert 460 in gpus  # a shared GPU: num_gpu=1, gpu_milli=460
    assert 8000 in gpus  # num_gpu=8 whole GPUs
    assert trace.end == 12902960


def test_openb_takes_rows_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "pods.csv"
    path.write_text(
        HEADER + "late,1000,1024,0,0,,LS,Running,50,100,50\n"
        "early,1000,1024,0,0,,LS,Running,10,20,10\n"
        "tie,1000,1024,0,0,,LS,Running,50,60,50\n"  # same second as late: file order kept
    )
    trace = import_openb(path)
    order = [
        (type(e).__name__, e.t, e.name if isinstance(e, PodCreated) else getattr(e, "uid", None))
        for e in trace.events
    ]
    assert order == [
        ("PodCreated", 10.0, "early"),
        ("PodDeleted", 20.0, "openb/early"),
        ("PodCreated", 50.0, "late"),
        ("PodCreated", 50.0, "tie"),
        ("PodDeleted", 60.0, "openb/tie"),
        ("PodDeleted", 100.0, "openb/late"),
    ]


@pytest.mark.parametrize(
    "name",
    ["openb_pod_list_cpu200.csv", "openb_pod_list_gpushare80.csv", "openb_pod_list_gpuspec33.csv"],
)
def test_published_openb_lists_import(name: str) -> None:
    path = data(f"openb/{name}")
    if not path.is_file():
        pytest.skip(f"{path} is not here (../shared/data)")
    trace = import_openb(path)
    assert [e.t for e in trace.events] == sorted(e.t for e in trace.events)
    assert sum(isinstance(e, PodCreated) for e in trace.events) > 5000


def test_openb_options() -> None:
    everything = import_openb(OPENB, include_unscheduled=True, expected_duration="none")
    created = [e for e in everything.events if isinstance(e, PodCreated)]
    assert len(created) == 8152
    assert not any(e.template.annotations for e in created)
    shapes = import_openb(OPENB, group_by="shape")
    kinds = {e.workload.kind for e in shapes.events if isinstance(e, PodCreated)}
    assert kinds == {"Deployment"}


def test_openb_owners_follow_the_qos_column(tmp_path: Path) -> None:
    path = tmp_path / "pods.csv"
    path.write_text(
        HEADER + "svc,1000,1024,1,500,,LS,Running,0,100,0\n"
        "train,1000,1024,1,500,,BE,Failed,10,40,10\n"
        "svc2,1000,1024,1,500,,LS,Running,50,90,50\n"  # after svc's shape-mate train ended
        "train2,1000,1024,1,500,,BE,Running,50,90,50\n"
        "odd,1000,1024,0,0,,Burstable,Running,60,70,60\n"
    )
    created = {e.name: e for e in import_openb(path).events if isinstance(e, PodCreated)}
    kinds = {name: (e.workload.kind, e.workload.name) for name, e in created.items()}
    # LS: a single-replica Deployment each (movable, evictable); the rest stay bare pods
    assert kinds == {
        "svc": ("Deployment", "svc"),
        "train": ("Pod", "train"),
        "svc2": ("Deployment", "svc2"),
        "train2": ("Pod", "train2"),
        "odd": ("Pod", "odd"),
    }
    # the expected duration is the history of the task's shape and QoS, whoever owns it:
    # train2 knows train's 30 s (same shape, BE), svc2 nothing (no LS task of its shape ended)
    assert EXPECTED_DURATION not in created["svc2"].template.annotations
    assert created["train2"].template.annotations == {EXPECTED_DURATION: "30s"}
    bare = {
        e.name: e.workload.kind
        for e in import_openb(path, owners="pod").events
        if isinstance(e, PodCreated)
    }
    assert set(bare.values()) == {"Pod"}
    with pytest.raises(ValueError, match="owners"):
        import_openb(path, owners="job")


def test_openb_expected_duration_only_uses_the_past(tmp_path: Path) -> None:
    path = tmp_path / "pods.csv"
    path.write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
        "a,1000,1024,0,0,,LS,Running,0,100,0\n"
        "b,1000,1024,0,0,,LS,Running,50,5000,50\n"  # a has not finished at 50
        "c,1000,1024,0,0,,LS,Running,200,300,200\n"  # a finished (100 s), b not yet
    )
    created = [e for e in import_openb(path, owners="pod").events if isinstance(e, PodCreated)]
    assert [e.template.annotations.get(EXPECTED_DURATION) for e in created] == [None, None, "100s"]


def test_series_becomes_replicas() -> None:
    trace = import_series(DAILY, per_replica=20, requests=REPLICA)
    events = [e for e in trace.events if isinstance(e, ReplicasChanged)]
    assert len(events) == len(trace.events)
    assert events[0].t == 0.0
    assert events[0].template is not None
    assert all(e.template is None for e in events[1:])
    assert all(a.replicas != b.replicas for a, b in itertools.pairwise(events))
    assert max(e.replicas for e in events) == 47  # ceil(peak 940 / 20)
    assert trace.header.start == 1633651200


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("name,cpu_milli\na,1\n", 1, "missing column(s) memory_mib"),
        (
            HEADER + "a,lots,1024,0,0,,LS,Running,0,100,0\n",
            2,
            "'cpu_milli': 'lots' is not a number",
        ),
        (
            HEADER + "a,1,1024,0,0,,LS,Running,0,100,0\nb,1,1024,0,0,,LS,Running,-5,100,0\n",
            3,
            "creation_time",
        ),
        (
            HEADER + "a,1,1024,0,0,,LS,Running,0,1700000000,0\n",
            2,
            "deletion_time: trace spans 54 years: are these absolute times?",
        ),
        (HEADER + "a,1,1024,0,0,,LS,Running,0,1e300,0\n", 2, "trace spans"),
        (
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli\na,1,1024,0,0\n",
            1,
            "no creation_time, deletion_time, scheduled_time columns",
        ),
        (
            HEADER.replace(",scheduled_time", "") + "a,1,1024,0,0,,LS,Running,0,100\n",
            1,
            "missing column(s) scheduled_time",
        ),
        (
            HEADER + "a,1,1024,0,0,,LS,Running,50,10,50\n",
            2,
            "deletion_time 10 is before creation_time",
        ),
        (HEADER + "a,1,1024,0,0\n", 2, "expected 11 fields"),
    ],
)
def test_broken_openb(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as err:
        import_openb(path)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)
    assert problem in str(err.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("time,val\n1,2\n", ":1: missing column(s) ts, value"),
        ("ts,value\n1,2\n2,x\n", ":3: value 'x' is not a number"),
        ("ts,value\n5,2\n4,3\n", ":3: time goes backwards"),
    ],
)
def test_broken_series(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as err:
        import_series(path, per_replica=1, requests=REPLICA)
    assert str(err.value).startswith(str(path) + problem), str(err.value)
