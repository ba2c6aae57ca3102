"""Importers on the shared files and on broken copies of them."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from autoscaler.forecast import read_series
from autoscaler.planner import EXPECTED_DURATION
from autoscaler.replay.importers import import_openb, import_series, replicas_for
from autoscaler.replay.trace import PodCreated, PodDeleted, ReplicasChanged, Trace, TraceError
from extender.model import Resources

from .conftest import data

OPENB = data("alibaba-openb-pods.csv")
DAILY = data("crane-series-daily.csv")
WEEKLY = data("crane-series-weekly.csv")
INPUT3 = data("crane/input3.csv")  # fractions of a core, one value a minute, 16 days
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


def test_openb_saved_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    """A spreadsheet's UTF-8 BOM before ``name``: the first column is still ``name``."""
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "a,1000,1024,0,0,,LS,Running,10,20,10\n").encode())
    assert [(type(e).__name__, e.t) for e in import_openb(path).events] == [
        ("PodCreated", 10.0),
        ("PodDeleted", 20.0),
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
    # LS: a single-replica Deployment each (movable, evictable); the rest one-pod Jobs (movable,
    # their work lost when moved)
    assert kinds == {
        "svc": ("Deployment", "svc"),
        "train": ("Job", "train"),
        "svc2": ("Deployment", "svc2"),
        "train2": ("Job", "train2"),
        "odd": ("Job", "odd"),
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
    services = {
        e.name: e.workload.kind
        for e in import_openb(path, owners="services").events
        if isinstance(e, PodCreated)
    }  # the default before Jobs: LS Deployments, the rest bare pods
    assert services == {
        "svc": "Deployment",
        "train": "Pod",
        "svc2": "Deployment",
        "train2": "Pod",
        "odd": "Pod",
    }
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


def _series(tmp_path: Path, rows: list[tuple[float, float]]) -> Path:
    path = tmp_path / "demand.csv"
    path.write_text("ts,value\n" + "".join(f"{t:g},{v!r}\n" for t, v in rows))
    return path


def _counts(trace: Trace) -> list[tuple[float, int]]:
    return [(e.t, e.replicas) for e in trace.events if isinstance(e, ReplicasChanged)]


def _at(trace: Trace, t: float) -> int:
    """The replica count the trace sets at time ``t``."""
    return [n for when, n in _counts(trace) if when <= t][-1]


@pytest.mark.skipif(not INPUT3.is_file(), reason="needs ../shared/data/crane/input3.csv")
def test_series_of_fractions_of_a_core_replays_by_default() -> None:
    trace = import_series(INPUT3, requests=REPLICA)  # per_replica="auto"
    # Its 99th percentile over 16 days is 0.00467 (23,040 minutes at 60 s each: the minute of
    # the 22,810th smallest value), so one replica serves 0.00467 / 50 = 0.0000934.
    assert trace.header.notes == (
        "replicas = ceil(value / 9.34e-05); per_replica auto: the series' 99th percentile over "
        "time, 0.00467, is 50 replicas"
    )
    counts = _counts(trace)
    assert counts[0] == (0.0, 29)  # first value 0.002620 / 0.0000934 = 28.05
    assert max(n for _, n in counts) == 177  # peak 0.01644 / 0.0000934 = 176.02
    assert trace.end == 23_039 * 60  # the last sample, not the last change
    # At the old fixed scale (20 a replica) the series never reaches one replica: it stays at
    # min_replicas, says so, and still lasts the whole 16 days (it used to replay 0 s).
    flat = import_series(INPUT3, per_replica=20, requests=REPLICA)
    assert _counts(flat) == [(0.0, 1), (23_039 * 60, 1)]
    assert "no value is above one replica's worth (20)" in flat.header.notes


@pytest.mark.parametrize("path", [DAILY, WEEKLY], ids=["daily", "weekly"])
def test_explicit_per_replica_keeps_the_established_series(path: Path) -> None:
    """The explicit scale is today's rule: ceil(value / 20), at least 1, an event per change."""
    ts, values = read_series(path)
    expected, current = [], -1
    for t, v in zip(ts.tolist(), values.tolist(), strict=True):
        n = max(1, math.ceil(max(v, 0.0) / 20))
        if n != current:
            expected.append((t - ts[0], n))
            current = n
    assert _counts(import_series(path, per_replica=20, requests=REPLICA)) == expected
    assert expected[-1][0] == ts[-1] - ts[0]  # both change at their last minute: no end event


def test_series_auto_scale_is_a_percentile_over_time(tmp_path: Path) -> None:
    # 2 holds 6,000 s, then 99 samples of 1 a minute apart (98 of them hold 60 s, the last 0 s):
    # 1 covers 5,880 of 11,880 s (49.5 %), so the 99th percentile over time is 2, although 99
    # of the 100 samples are 1 (a percentile over samples would say 1).
    rows = [(0.0, 2.0)] + [(6000.0 + 60 * k, 1.0) for k in range(99)]
    trace = import_series(_series(tmp_path, rows), requests=REPLICA)
    assert "the series' 99th percentile over time, 2, is 50 replicas" in trace.header.notes
    assert _counts(trace) == [(0.0, 50), (6000.0, 25), (6000.0 + 60 * 98, 25)]


def test_series_auto_scale_is_the_same_at_15_and_60_seconds(tmp_path: Path) -> None:
    # Values 1..100 a minute apart: 1..99 hold 60 s each, 100 holds 0 s; 99 % of the 5,940 s
    # is 5,880.6 s, first reached at 99 (99 x 60 = 5,940 s): per_replica 99 / 50 = 1.98.
    minute = [(60.0 * k, float(k + 1)) for k in range(100)]
    quarter = [(15.0 * k, float(k // 4 + 1)) for k in range(400)]  # each value 4 times
    for rows in (minute, quarter):
        (tmp_path / "s").mkdir(exist_ok=True)
        trace = import_series(_series(tmp_path / "s", rows), requests=REPLICA)
        assert trace.header.notes.startswith("replicas = ceil(value / 1.98); ")
        assert _at(trace, 0.0) == 1  # 1 / 1.98
        assert _at(trace, 60.0 * 96) == 49  # 97 / 1.98 = 48.99
        assert _at(trace, 60.0 * 97) == 50  # 98 / 1.98 = 49.49
        assert _at(trace, 60.0 * 98) == 50  # 99 / 1.98 = 50
        assert _at(trace, 60.0 * 99) == 51  # 100 / 1.98 = 50.5


def test_flat_series_is_its_scale_for_its_whole_span(tmp_path: Path) -> None:
    # 0.0016 / (0.0016 / 50) is 50.00000000000001 in floating point: still 50 replicas
    trace = import_series(
        _series(tmp_path, [(60.0 * k, 0.0016) for k in range(10)]), requests=REPLICA
    )
    assert _counts(trace) == [(0.0, 50), (540.0, 50)]


@pytest.mark.parametrize("values", [[0.0] * 5, [-1.0, -2.5, 0.0]], ids=["all-zero", "all-negative"])
def test_series_without_a_positive_value_has_no_auto_scale(
    tmp_path: Path, values: list[float]
) -> None:
    path = _series(tmp_path, [(60.0 * k, v) for k, v in enumerate(values)])
    with pytest.raises(TraceError) as err:
        import_series(path, requests=REPLICA)
    assert str(err.value) == (
        f"{path}: value: no value is above 0, so --per-replica auto has no scale to take from "
        "the series; give --per-replica N (the demand one replica serves)"
    )
    # an explicit scale replays it: min_replicas all along
    assert _counts(import_series(path, per_replica=1, requests=REPLICA))[0] == (0.0, 1)


def test_mostly_idle_series_takes_its_peak(tmp_path: Path) -> None:
    # 0 for 200 minutes, 7 for one: the 99th percentile over time is 0, so the peak is 50
    rows = [(60.0 * k, 0.0) for k in range(200)] + [(12_000.0, 7.0), (12_060.0, 0.0)]
    trace = import_series(_series(tmp_path, rows), requests=REPLICA)
    assert "the series' 99th percentile over time, 7, is 50 replicas" in trace.header.notes
    assert _counts(trace) == [(0.0, 1), (12_000.0, 50), (12_060.0, 1)]


def test_negative_huge_and_clamped_values(tmp_path: Path) -> None:
    # -5 reads as 0; the 99th percentile over time is 1e300 (it holds 60 of 120 s... and 2e300
    # the other 60 s: 99 % of 180 s is 178.2 s, reached at 2e300), per_replica 4e298
    rows = [(0.0, -5.0), (60.0, 1e300), (120.0, 2e300), (180.0, 3e300)]
    trace = import_series(_series(tmp_path, rows), requests=REPLICA, max_replicas=60)
    assert trace.header.notes == (
        "replicas = ceil(value / 4e+298); per_replica auto: the series' 99th percentile over "
        "time, 2e+300, is 50 replicas; 1 samples above max_replicas 60 clamped (peak 75); "
        "1 negative values read as 0"
    )
    assert _counts(trace) == [(0.0, 1), (60.0, 25), (120.0, 50), (180.0, 60)]


@pytest.mark.parametrize(
    ("value", "per_replica", "replicas"),
    [(0.07, 0.01, 7), (0.3, 0.1, 3), (20.000001, 20, 2), (40.0, 20, 2), (-3.0, 20, 0), (0.0, 1, 0)],
)
def test_replicas_for(value: float, per_replica: float, replicas: int) -> None:
    assert replicas_for(value, per_replica) == replicas


def test_series_saved_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    """A spreadsheet's UTF-8 BOM before ``ts``: --format auto calls it a series, and it reads."""
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfts,value\r\n0,1\r\n60,2\r\n")
    trace = import_series(path, per_replica=1, requests=REPLICA)
    assert _counts(trace) == [(0.0, 1), (60.0, 2)]
