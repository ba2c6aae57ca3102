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
  ``BE`` (best-effort) tasks are batch and training jobs, whose operators recreate an evicted pod
  too but lose the work done since the last checkpoint.  ``owners="qos"`` (default) imports each
  ``LS`` task as a single-replica Deployment (``Deployment/openb/<name>``): its replacement keeps
  the task's lifetime (a service replica has no progress to lose), so rebalance may move it from
  ECI and scale-down may evict it, each move priced by the scenario's
  ``settings.rebalance.restartCost``; its expected run time is the same history rule as any
  task's (below; measured, it judges moves better than the planner's one-horizon guess for a
  Deployment without the annotation: bench/RESULTS.md, issue 12).  Every
  other task (``BE``, ``Burstable``, ``Guaranteed``, empty) stays a bare ``Pod/openb/<name>``:
  the replay cannot restart a job's work, and moving it without that cost would flatter
  Spillover.  ``owners="pod"`` imports every task as a bare pod (nothing is ever moved or
  evicted: the most conservative reading).  ``group_by="shape"`` instead makes the pods of one
  (cpu, memory, gpu) shape one Deployment, to see what a per-shape keep-N would do (it invents
  keep-N counts that never existed).

**Demand series** (``ts,value`` CSV, e.g. gocrane's monitoring series): the value is turned into
the replica count of one Deployment, ``ceil(value / per_replica)`` clamped to
``[min_replicas, max_replicas]``; an event is written only when the count changes.
"""

from __future__ import annotations

import bisect
import csv
import heapq
import math
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import msgspec

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
    "OPENB_COLUMNS",
    "OPENB_OWNERS",
    "OPENB_TIME_COLUMNS",
    "SERVICE_QOS",
    "import_openb",
    "import_series",
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
OPENB_OWNERS = ("qos", "pod")
SERVICE_QOS = "LS"  # latency-sensitive: an online service's replica (owners="qos")


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
        with open(path, newline="", encoding="utf-8") as f:
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
        elif owners == "qos" and labels["qos"] == SERVICE_QOS:
            workload = WorkloadKey("openb", "Deployment", name)
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
        notes += (
            "; LS tasks are single-replica Deployments, the others bare pods"
            if owners == "qos"
            else "; every task is a bare pod"
        )
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


def import_series(
    path: str | Path,
    *,
    per_replica: float,
    requests: Resources,
    workload: WorkloadKey | None = None,
    min_replicas: int = 1,
    max_replicas: int = 10_000,
    labels: Mapping[str, str] | None = None,
) -> Trace:
    """A ``ts,value`` demand series as the replica count of one Deployment."""
    if per_replica <= 0:
        raise ValueError("per_replica must be positive")
    from autoscaler.forecast import read_series  # the one ts,value reader

    try:
        ts, values = read_series(path)
    except OSError as err:
        raise TraceError(f"{path}: {err}") from None
    except ValueError as err:
        raise TraceError(str(err)) from None
    workload = workload or WorkloadKey("series", "Deployment", Path(path).stem)
    template = Template(
        Resources(requests.cpu_milli, requests.memory, 1, requests.gpu_milli),
        dict(labels or {"app": workload.name}),
    )
    start = float(ts[0])
    check_time(float(ts[-1]) - start, f"{path}: ts")
    events: list[Event] = []
    current = -1
    for t, v in zip(ts.tolist(), values.tolist(), strict=True):
        replicas = min(max_replicas, max(min_replicas, math.ceil(max(v, 0.0) / per_replica)))
        if replicas != current:
            first = current < 0
            events.append(
                ReplicasChanged(t - start, workload, replicas, template if first else None)
            )
            current = replicas
    return Trace(
        TraceHeader(
            source=f"series:{Path(path).name}",
            start=start,
            notes=f"replicas = ceil(value / {per_replica:g})",
        ),
        events,
    )
