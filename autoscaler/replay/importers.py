"""Importers: other people's traces turned into Spillover trace events.

**Alibaba cluster-trace-gpu-v2023** (``openb_pod_list_*.csv``).  Every row is one task of a
production GPU cluster, with times in seconds from the trace start.  Rows are taken in any order
(the published cpu200 and gpushare80 lists are not sorted) and ordered by creation time, stable.
A list without time columns (the published multigpu50 list has only ``name, cpu_milli,
memory_mib, num_gpu, gpu_milli``) cannot be replayed over time: the importer stops with one line
that says so.  What is replayed:

- Pods with a ``scheduled_time`` (phases Running, Succeeded, Failed: they ran in the original
  cluster) arrive at ``creation_time`` and are deleted at ``deletion_time``.  Failed pods ran and
  were billed until they ended, so they are replayed like the others.
- Pods without a ``scheduled_time`` (phase Pending: they never ran) are skipped by default;
  ``include_unscheduled=True`` replays them as demand too.  In the shared trace every pod has a
  ``deletion_time``; a row without one would run to the end of the trace (the largest time seen).
- Requests: ``cpu_milli`` millicores, ``memory_mib`` MiB, GPUs ``num_gpu * gpu_milli`` thousandths
  (a pod with ``num_gpu=1, gpu_milli=460`` shares 46 % of one GPU, as the trace describes).
- Expected run time: the planner moves pods from ECI to ECS only when it expects them to run long
  enough (annotation ``spillover.dev/expected-duration``; bare pods and Jobs without it stay on
  ECI).  With ``expected_duration="history"`` (default) each pod is annotated with the median run
  time of the pods of its shape (cpu, memory, GPU, QoS) that had *already finished* when it was
  created: what an operator could know at that moment, never the pod's own future.  ``"none"``
  leaves the annotation off.
- Owners (``owners``): who would recreate a task's pod, which decides whether Spillover may
  move it (``autoscaler.eviction``).  The trace has no owner column; its ``qos`` column says
  what kind of task each row is.  On a managed ML platform no task is a bare pod: ``LS``
  (latency-sensitive) tasks are online services (inference, notebooks) run by a Deployment or an
  equivalent controller, which recreates an evicted replica elsewhere at the price of a restart;
  the other tasks (``BE`` best-effort, ``Burstable``, ``Guaranteed``, empty) are batch and
  training jobs, whose operators recreate an evicted pod too but lose the work done since the
  last checkpoint.  ``owners="qos"`` (default) imports each ``LS`` task as a single-replica
  Deployment (``Deployment/openb/<name>``): its replacement keeps the task's lifetime (a service
  replica has no progress to lose), so rebalance may move it from ECI and scale-down may evict
  it, each move priced by the scenario's ``settings.rebalance.restartCost``; and every other
  task as a one-pod Job (``Job/openb/<name>``): an eviction (a move from ECI, a drained or
  reclaimed node) makes its replacement run again all the work it had done (the trace has no
  checkpoints: ``eviction.lost_work`` without ``spillover.dev/checkpoint-interval``), so the
  replay ends it that much later and bills that re-run as lost work, and rebalance moves it only
  while ECI's bill for the time it is expected to run on (its estimate, but at least as long
  again as it has run: ``demand.remaining``) beats the restart plus that re-run at its share of
  an ECS node (``costs.move_saving``); scale-down does not evict it once that work is worth more
  than a restart (``eviction.drain_blocker``).  Each task's expected run time is the same history rule (below; measured, it judges
  moves better than the planner's one-horizon guess for a Deployment without the annotation:
  bench/RESULTS.md, issue 12).  ``owners="services"`` keeps the non-``LS`` tasks bare pods
  (``Pod/openb/<name>``: never moved nor evicted), the default before Jobs lost their work
  honestly (bench/RESULTS.md up to session 4 calls it ``qos``).  ``owners="pod"`` imports every
  task as a bare pod (nothing is ever moved or evicted: the most conservative reading).
  ``group_by="shape"`` instead makes the pods of one (cpu, memory, gpu) shape one Deployment, to
  see what a per-shape keep-N would do (it invents keep-N counts that never existed).

**Demand series** (``ts,value`` CSV, e.g. gocrane's monitoring series): the value is turned into
the replica count of one Deployment, ``ceil(value / per_replica)`` clamped to
``[min_replicas, max_replicas]`` (a negative value counts as 0; a quotient within 1e-9 of a whole
number is that number, so ``0.07 / 0.01`` is 7 replicas, not 8).  An event is written when the
count changes, and one at the last sample, so the replay lasts as long as the series (a series
whose count never changes is one event at its start and one at its end).  Each value holds until
the next sample, as a ReplicaSet keeps its count: a gap in the series is a time at the last
count, and 15 s or 60 s steps are read alike.

A series' unit is rarely documented (crane's are cores, fractions of a core, requests per
second...), so ``per_replica="auto"`` (the command's default) takes the scale from the series
itself: the demand one replica serves is the series' 99th percentile *over time* (each value
weighted by how long it holds, so a gap or a step size does not tilt it) divided by
``AUTO_REPLICAS`` (50).  The series then runs at 50 replicas during all but its busiest 1 % of
the time and above that only in its bursts (the bundled daily series at ``per_replica=20``
peaks at 47).  A quantile, not the peak, so that one wild sample does not flatten the rest of
the series to ``min_replicas``; a series that is 0 more than 99 % of the time takes its peak
as 50 replicas instead.  A series with no value above 0 has no scale: it stops with one line
asking for ``--per-replica``.  An explicit number keeps the unit the user knows.
"""

from __future__ import annotations

import bisect
import csv
import heapq
import math
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from autoscaler.planner import EXPECTED_DURATION
from extender.documents import DocumentError, convert, dotted
from extender.model import Resources, WorkloadKey

from .trace import (
    Event,
    PodCreated,
    PodDeleted,
    ReplicasChanged,
    Template,
    Trace,
    TraceError,
    TraceHeader,
    check_time,
)

__all__ = [
    "AUTO_QUANTILE",
    "AUTO_REPLICAS",
    "OPENB_COLUMNS",
    "OPENB_OWNERS",
    "OPENB_TIME_COLUMNS",
    "SERVICE_QOS",
    "auto_per_replica",
    "import_openb",
    "import_series",
    "replicas_for",
]

OPENB_TIME_COLUMNS = ("creation_time", "deletion_time", "scheduled_time")
OPENB_COLUMNS = (
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "gpu_milli",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
MIB = 2**20
OPENB_OWNERS = ("qos", "services", "pod")
SERVICE_QOS = "LS"  # latency-sensitive: an online service's replica (owners="qos")
AUTO_QUANTILE = 0.99  # per_replica="auto": this quantile of a series over time ...
AUTO_REPLICAS = 50  # ... is this many replicas
_WHOLE = 1e-9  # a replica quotient this close (relatively) to a whole number is that number


class _Count(int):
    """A CSV cell holding a non-negative whole number (``12``, ``12.0``, ``1e3``)."""


def _count(kind: type, text: Any) -> _Count:
    """The ``dec_hook`` of :class:`_Row`."""
    if kind is not _Count:
        raise NotImplementedError(kind)
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number") from None
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise ValueError(f"{text.strip()!r} is not a non-negative integer")
    return _Count(number)


class _Row(msgspec.Struct):
    """One row of an openb pod list (other columns are ignored; empty cells are left out)."""

    cpu_milli: _Count
    memory_mib: _Count
    num_gpu: _Count
    gpu_milli: _Count
    creation_time: _Count
    deletion_time: _Count | None = None
    scheduled_time: _Count | None = None
    qos: str = ""


def _row(cells: Mapping[str, str], at: str) -> _Row:
    try:
        return convert({k: v for k, v in cells.items() if v.strip()}, _Row, dec_hook=_count)
    except DocumentError as err:
        raise TraceError(f"{at}: column {dotted(err.segments)!r}: {err.problem}") from None


def import_openb(
    path: str | Path,
    *,
    include_unscheduled: bool = False,
    group_by: str = "pod",
    expected_duration: str = "history",
    owners: str = "qos",
) -> Trace:
    """The Alibaba openb pod list as a trace; raises ``TraceError`` naming the file and line."""
    if group_by not in ("pod", "shape"):
        raise ValueError(f"group_by must be 'pod' or 'shape', not {group_by!r}")
    if owners not in OPENB_OWNERS:
        raise ValueError(f"owners must be one of {', '.join(OPENB_OWNERS)}, not {owners!r}")
    if expected_duration not in ("history", "none"):
        raise ValueError(
            f"expected_duration must be 'history' or 'none', not {expected_duration!r}"
        )
    where = str(path)
    rows: list[tuple[int, int | None, str, Resources, dict[str, str]]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # a spreadsheet's BOM too
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            missing = [c for c in OPENB_COLUMNS if c not in columns]
            if set(OPENB_TIME_COLUMNS) <= set(missing) <= {*OPENB_TIME_COLUMNS, "pod_phase"}:
                raise TraceError(
                    f"{where}:1: no {', '.join(OPENB_TIME_COLUMNS)} columns: this pod list has "
                    "no times (like the published multigpu50 list), so it cannot be replayed "
                    "over time (it describes a set of pods without their lifetimes)"
                )
            if missing:
                raise TraceError(f"{where}:1: missing column(s) {', '.join(missing)}")
            for row in reader:
                at = f"{where}:{reader.line_num}"
                if None in row or any(v is None for v in row.values()):
                    raise TraceError(f"{at}: expected {len(columns)} fields")
                cells = _row(row, at)
                created = int(cells.creation_time)
                deleted = None if cells.deletion_time is None else int(cells.deletion_time)
                for column, value in (("creation_time", created), ("deletion_time", deleted)):
                    if value is not None:
                        check_time(value, f"{at}: {column}")
                if deleted is not None and deleted < created:
                    raise TraceError(f"{at}: deletion_time {deleted} is before creation_time")
                if cells.scheduled_time is None and not include_unscheduled:
                    continue
                ngpu, gmilli = cells.num_gpu, cells.gpu_milli
                gpu = ngpu * gmilli if ngpu > 1 else gmilli if ngpu == 1 else 0
                requests = Resources(int(cells.cpu_milli), cells.memory_mib * MIB, 1, int(gpu))
                labels = {"app": "openb", "qos": cells.qos}
                rows.append(
                    (
                        created,
                        None if deleted is None else int(deleted),
                        row["name"],
                        requests,
                        labels,
                    )
                )
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise TraceError(f"{where}: {err}") from None
    # The published lists are not all in creation order (cpu200, gpushare80): order by creation
    # time, stable, so rows created at the same second keep their file order.
    rows.sort(key=lambda r: r[0])
    end = max((d if d is not None else c for c, d, *_ in rows), default=0)
    history = _History() if expected_duration == "history" else None
    events: list[tuple[float, int, Event]] = []
    for seq, (created, deleted, name, requests, labels) in enumerate(rows):
        annotations: dict[str, str] = {}
        if history is not None:
            kind = (requests.cpu_milli, requests.memory, requests.gpu_milli, labels["qos"])
            known = history.median(kind, now=created)
            if known is not None:
                annotations[EXPECTED_DURATION] = f"{known:g}s"
            history.add(
                kind,
                ends=end if deleted is None else deleted,
                lasted=(end if deleted is None else deleted) - created,
            )
        if group_by == "shape":
            gpu = requests.gpu_milli
            shape = f"shape-{requests.cpu_milli}m-{requests.memory // MIB}mi-{gpu}g"
            workload = WorkloadKey("openb", "Deployment", shape)
        elif owners != "pod" and labels["qos"] == SERVICE_QOS:
            workload = WorkloadKey("openb", "Deployment", name)
        elif owners == "qos":
            workload = WorkloadKey("openb", "Job", name)
        else:
            workload = WorkloadKey("openb", "Pod", name)
        uid = f"openb/{name}"
        events.append(
            (
                created,
                seq,
                PodCreated(created, uid, workload, name, Template(requests, labels, annotations)),
            )
        )
        gone = float(end if deleted is None else deleted)
        events.append((gone, seq, PodDeleted(gone, uid)))
    # Stable sort: at equal times creations (earlier rows) come in file order, a pod's deletion
    # after its own creation.
    events.sort(key=lambda e: (e[0], e[1], isinstance(e[2], PodDeleted)))
    notes = "pods that never ran are " + ("included" if include_unscheduled else "skipped")
    if group_by == "pod":
        notes += {
            "qos": "; LS tasks are single-replica Deployments, the others one-pod Jobs",
            "services": "; LS tasks are single-replica Deployments, the others bare pods",
            "pod": "; every task is a bare pod",
        }[owners]
    return Trace(
        TraceHeader(source=f"alibaba-openb:{Path(path).name}", notes=notes),
        [e for _, _, e in events],
    )


class _History:
    """Run times of finished pods per shape, revealed only once each pod has ended."""

    def __init__(self) -> None:
        self._future: list[tuple[int, int, Hashable, int]] = []
        self._done: dict[Hashable, list[int]] = {}
        self._seq = 0

    def add(self, shape: Hashable, *, ends: int, lasted: int) -> None:
        self._seq += 1
        heapq.heappush(self._future, (ends, self._seq, shape, lasted))

    def median(self, shape: Hashable, *, now: int) -> float | None:
        while self._future and self._future[0][0] <= now:
            _, _, done_shape, lasted = heapq.heappop(self._future)
            bisect.insort(self._done.setdefault(done_shape, []), lasted)
        known = self._done.get(shape)
        if not known:
            return None
        return float(known[len(known) // 2])


def replicas_for(value: float, per_replica: float) -> int:
    """``ceil(value / per_replica)`` for a demand ``value`` (0 when negative), where a quotient
    that floating point puts a hair above a whole number is that number (``0.07 / 0.01`` is
    ``7.000000000000001``: 7 replicas)."""
    x = max(value, 0.0) / per_replica
    whole = round(x)
    return whole if abs(x - whole) <= _WHOLE * max(1.0, x) else math.ceil(x)


def auto_per_replica(ts: Any, values: Any) -> tuple[float, float] | None:
    """``(per_replica, level)`` for ``per_replica="auto"``: ``level`` is the series' 99th
    percentile over time (each value weighted by the time to the next sample; negative values
    count as 0), or its peak when that percentile is 0, and ``per_replica = level / 50``.
    ``None`` when no value is above 0 (there is no scale to take)."""
    v = np.maximum(np.asarray(values, np.float64), 0.0)
    t = np.asarray(ts, np.float64)
    peak = float(v.max()) if v.size else 0.0
    if peak <= 0.0:
        return None
    weights = np.diff(t, append=t[-1])  # the last sample ends the replay: it holds for 0 s
    if weights.sum() <= 0.0:  # one sample, or every sample at the same time
        weights = np.ones_like(v)
    order = np.argsort(v, kind="stable")
    held = np.cumsum(weights[order])
    # the smallest value at or under which the series spends AUTO_QUANTILE of its time
    k = int(np.searchsorted(held, AUTO_QUANTILE * held[-1], side="left"))
    level = float(v[order][min(k, v.size - 1)])
    if level <= 0.0:
        level = peak
    return level / AUTO_REPLICAS, level


def import_series(
    path: str | Path,
    *,
    per_replica: float | Literal["auto"] = "auto",
    requests: Resources,
    workload: WorkloadKey | None = None,
    min_replicas: int = 1,
    max_replicas: int = 10_000,
    labels: Mapping[str, str] | None = None,
) -> Trace:
    """A ``ts,value`` demand series as the replica count of one Deployment; ``per_replica`` is
    the demand one replica serves, or ``"auto"`` (the module's docstring).  The trace header's
    ``notes`` say which scale was used and what was clamped."""
    if per_replica != "auto" and not (isinstance(per_replica, float | int) and per_replica > 0):
        raise ValueError(f"per_replica must be positive or 'auto', not {per_replica!r}")
    from autoscaler.forecast import read_series  # the one ts,value reader

    try:
        ts, values = read_series(path)
    except OSError as err:
        raise TraceError(f"{path}: {err}") from None
    except ValueError as err:
        raise TraceError(str(err)) from None
    notes = []
    if per_replica == "auto":
        scale = auto_per_replica(ts, values)
        if scale is None:
            raise TraceError(
                f"{path}: value: no value is above 0, so --per-replica auto has no scale to take "
                "from the series; give --per-replica N (the demand one replica serves)"
            )
        per_replica, level = scale
        notes.append(
            f"per_replica auto: the series' {AUTO_QUANTILE * 100:g}th percentile over time, "
            f"{level:.6g}, is {AUTO_REPLICAS} replicas"
        )
    workload = workload or WorkloadKey("series", "Deployment", Path(path).stem)
    template = Template(
        Resources(requests.cpu_milli, requests.memory, 1, requests.gpu_milli),
        dict(labels or {"app": workload.name}),
    )
    start = float(ts[0])
    end = float(ts[-1]) - start
    check_time(end, f"{path}: ts")
    events: list[Event] = []
    current = -1
    wanted = [replicas_for(v, per_replica) for v in values.tolist()]
    for t, want in zip(ts.tolist(), wanted, strict=True):
        replicas = min(max_replicas, max(min_replicas, want))
        if replicas != current:
            first = current < 0
            events.append(
                ReplicasChanged(t - start, workload, replicas, template if first else None)
            )
            current = replicas
    if events[-1].t < end:  # the count holds to the last sample: the replay lasts that long
        events.append(ReplicasChanged(end, workload, current))
    peak = max(wanted)
    if peak <= 1:
        notes.append(
            f"no value is above one replica's worth ({per_replica:g}): the series is at most "
            "one replica (--per-replica auto scales it to the series)"
        )
    above = sum(1 for w in wanted if w > max_replicas)
    if above:
        notes.append(f"{above} samples above max_replicas {max_replicas} clamped (peak {peak})")
    negative = int((values < 0).sum())
    if negative:
        notes.append(f"{negative} negative values read as 0")
    return Trace(
        TraceHeader(
            source=f"series:{Path(path).name}",
            start=start,
            notes="; ".join([f"replicas = ceil(value / {per_replica:.6g})", *notes]),
        ),
        events,
    )
