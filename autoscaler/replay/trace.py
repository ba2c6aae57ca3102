"""Spillover's own trace format (version 1): JSON lines of cluster events, and its reader and writer.

The first line is a header ``{"type": "header", "format": "spillover-trace", "version": 1, ...}``;
every following line is one event with a time ``t`` in seconds from the start of the trace (times
never go backwards).  Event types:

- ``pod_created``: ``uid``, ``workload`` (``Kind/namespace/name``), ``name``, ``requests`` (a map of
  Kubernetes quantities: ``cpu``, ``memory``, ``nvidia.com/gpu``, which may be fractional, e.g.
  ``"460m"`` for a shared GPU), optional ``labels`` and ``annotations`` (the planner reads
  ``spillover.dev/expected-duration``).
- ``pod_deleted``: ``uid``.
- ``replicas_changed``: ``workload``, ``replicas``; ``requests`` / ``labels`` (the pod template)
  (and ``annotations``) are required the first time a workload appears.  The replay plays the ReplicaSet controller.
- ``node_added``: ``name``, ``allocatable`` (quantities), optional ``labels``, ``price_per_hour``.
- ``node_removed``: ``name``.

Sizes are checked up front, because a replay's memory and run time grow with them: ``t`` may not
exceed ``MAX_SPAN`` (10 years: a larger ``t`` is almost always an absolute Unix time where seconds
from the start were meant) and ``replicas`` may not exceed ``MAX_REPLICAS``.

The reader decodes every line into ``msgspec`` Structs, one per event type (fast, and the
messages name the file, line and field); unknown fields are ignored, as the JSON Schema in
``data/trace.schema.json`` allows.  The schema says the same for other tools, and a test keeps the
two in agreement.  The writer writes to a temporary file and renames it, so a failed write leaves
nothing half-written.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

import msgspec

from extender.documents import FINITE, DocumentError, JsonDecoder
from extender.model import ModelError, Resources, WorkloadKey, parse_resources

__all__ = [
    "FORMAT",
    "IMPORT_DEFAULTS",
    "INPUT_FORMATS",
    "MAX_REPLICAS",
    "MAX_SPAN",
    "SCHEMA_PATH",
    "VERSION",
    "Event",
    "ImportOptions",
    "NodeAdded",
    "NodeRemoved",
    "PodCreated",
    "PodDeleted",
    "ReplicasChanged",
    "Template",
    "Trace",
    "TraceError",
    "TraceHeader",
    "TraceWriter",
    "check_time",
    "detect_format",
    "event_to_dict",
    "iter_lines",
    "parse_workload",
    "read_trace",
    "resources_to_dict",
    "write_trace",
]

FORMAT = "spillover-trace"
VERSION = 1
SCHEMA_PATH = Path(__file__).parent / "data" / "trace.schema.json"
YEAR = 365.25 * 86_400
MAX_SPAN = 10 * YEAR
MAX_REPLICAS = 100_000
# What ``replay`` and ``sweep`` read: this format, an Alibaba openb pod list, a ts,value series.
INPUT_FORMATS = ("jsonl", "openb", "series")
_FIRST_LINE = 1 << 16  # bytes read to tell the formats apart


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How an openb pod list or a demand series is read (``importers``), as ``replay`` and
    ``sweep`` take it; the defaults are the commands' defaults.  Here, not in ``importers``, so
    that building the commands' parsers does not import the planner."""

    # series: ceil(value / per_replica) replicas of replica_cpu / replica_memory, at least min
    per_replica: float | Literal["auto"] = "auto"
    replica_cpu: str = "2"
    replica_memory: str = "8Gi"
    min_replicas: int = 1
    # openb
    include_unscheduled: bool = False
    group_by: str = "pod"
    owners: str = "qos"
    expected_duration: str = "history"

    def of_format(self, fmt: str) -> dict[str, Any]:
        """The options that change how a file of ``fmt`` is read (none for this format)."""
        return {name: getattr(self, name) for name in _IMPORT_OPTIONS.get(fmt, ())}


_IMPORT_OPTIONS = {
    "series": ("per_replica", "replica_cpu", "replica_memory", "min_replicas"),
    "openb": ("include_unscheduled", "group_by", "owners", "expected_duration"),
}
IMPORT_DEFAULTS = ImportOptions()


class TraceError(DocumentError):
    """A bad input file; the message is ``file:line: problem``."""


def check_time(t: float, where: str) -> None:
    """Stop at a time too far from the start to be meant (``where``: ``file:line: field``)."""
    if t > MAX_SPAN:
        raise TraceError(
            f"{where}: trace spans {t / YEAR:,.0f} years: are these absolute times? times count "
            f"seconds from the start of the trace (at most {MAX_SPAN / YEAR:.0f} years)"
        )


def detect_format(path: str | Path) -> str:
    """The input format of ``path`` by its content, whatever its name (``--format auto``).

    The first line that is not blank decides: a JSON object is this format's header
    (``jsonl``); a CSV header with a ``cpu_milli`` column is an Alibaba openb pod list
    (``openb``); one with ``ts`` and ``value`` columns is a demand series (``series``).  Anything
    else raises ``TraceError`` (``FILE:LINE: format: ...``, listing the formats); the chosen
    reader then checks the rest of the file.
    """
    formats = ", ".join(INPUT_FORMATS)
    first, number, offset = "", 0, 0
    try:
        # Bytes that are not UTF-8 are kept (surrogateescape) and judged only in the lines read
        # here: a bad byte further on is the chosen reader's to name, with its line.
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
            while not first.strip():
                line = f.readline(_FIRST_LINE)
                number += 1
                if not line:
                    raise TraceError(
                        f"{path}:1: format: empty file, expected one of {formats} (--format)"
                    )
                raw = line.encode("utf-8", "surrogateescape")
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise TraceError(
                        f"{path}:{number}: format: not UTF-8 text (byte {offset + err.start}: "
                        f"{err.reason}), so none of {formats} (--format)"
                    ) from None
                offset += len(raw)
                first = line.removeprefix("\ufeff") if number == 1 else line  # a BOM
    except OSError as err:
        raise TraceError(f"{path}: {err.strerror or err}") from None
    if first.lstrip().startswith("{"):
        return "jsonl"
    columns = {c.strip().lower() for c in next(csv.reader([first]), [])}
    if "cpu_milli" in columns:
        return "openb"
    if {"ts", "value"} <= columns:
        return "series"
    shown = first.strip()
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise TraceError(
        f"{path}:{number}: format: cannot tell the format from {shown!r}: expected jsonl (a "
        "Spillover trace, a JSON header line), openb (a CSV header with cpu_milli) or series "
        "(a CSV header with ts,value); name one with --format"
    )


@dataclass(frozen=True, slots=True)
class Template:
    requests: Resources
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PodCreated:
    t: float
    uid: str
    workload: WorkloadKey
    name: str
    template: Template


@dataclass(frozen=True, slots=True)
class PodDeleted:
    t: float
    uid: str


@dataclass(frozen=True, slots=True)
class ReplicasChanged:
    t: float
    workload: WorkloadKey
    replicas: int
    template: Template | None = None


@dataclass(frozen=True, slots=True)
class NodeAdded:
    t: float
    name: str
    allocatable: Resources
    labels: Mapping[str, str] = field(default_factory=dict)
    price_per_hour: float = 0.0


@dataclass(frozen=True, slots=True)
class NodeRemoved:
    t: float
    name: str


Event = PodCreated | PodDeleted | ReplicasChanged | NodeAdded | NodeRemoved


@dataclass(frozen=True, slots=True)
class TraceHeader:
    source: str = ""
    start: float = 0.0  # unix seconds of t = 0, when known
    notes: str = ""


@dataclass(frozen=True, slots=True)
class Trace:
    header: TraceHeader
    events: Sequence[Event]

    @property
    def end(self) -> float:
        return self.events[-1].t if self.events else 0.0


# --- encoding --------------------------------------------------------------------------------


def resources_to_dict(r: Resources) -> dict[str, str]:
    out: dict[str, str] = {}
    if r.cpu_milli:
        out["cpu"] = f"{r.cpu_milli}m" if r.cpu_milli % 1000 else str(r.cpu_milli // 1000)
    if r.memory:
        out["memory"] = _bytes(r.memory)
    if r.gpu_milli:
        out["nvidia.com/gpu"] = (
            f"{r.gpu_milli}m" if r.gpu_milli % 1000 else str(r.gpu_milli // 1000)
        )
    if r.pods and r.pods != 1:
        out["pods"] = str(r.pods)
    return out


def _bytes(n: int) -> str:
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def _template_fields(template: Template) -> dict[str, Any]:
    out: dict[str, Any] = {"requests": resources_to_dict(template.requests)}
    if template.labels:
        out["labels"] = dict(template.labels)
    if template.annotations:
        out["annotations"] = dict(template.annotations)
    return out


def event_to_dict(event: Event) -> dict[str, Any]:
    t = event.t
    if isinstance(event, PodCreated):
        return {
            "t": t,
            "type": "pod_created",
            "uid": event.uid,
            "workload": str(event.workload),
            "name": event.name,
            **_template_fields(event.template),
        }
    if isinstance(event, PodDeleted):
        return {"t": t, "type": "pod_deleted", "uid": event.uid}
    if isinstance(event, ReplicasChanged):
        out = {
            "t": t,
            "type": "replicas_changed",
            "workload": str(event.workload),
            "replicas": event.replicas,
        }
        if event.template is not None:
            out.update(_template_fields(event.template))
        return out
    if isinstance(event, NodeAdded):
        node: dict[str, Any] = {
            "t": t,
            "type": "node_added",
            "name": event.name,
            "allocatable": resources_to_dict(event.allocatable)
            | {"pods": str(event.allocatable.pods)},
        }
        if event.labels:
            node["labels"] = dict(event.labels)
        if event.price_per_hour:
            node["price_per_hour"] = event.price_per_hour
        return node
    return {"t": t, "type": "node_removed", "name": event.name}


class TraceWriter:
    """Writes a trace atomically: lines go to a temporary file renamed into place on ``close``."""

    def __init__(self, path: str | Path, header: TraceHeader) -> None:
        self.path = Path(path)
        self._last = -math.inf
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent or ".")
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a trace is for sharing
        self._tmp = Path(tmp)
        self._file: TextIO = os.fdopen(fd, "w", encoding="utf-8")
        head: dict[str, Any] = {"type": "header", "format": FORMAT, "version": VERSION}
        if header.source:
            head["source"] = header.source
        if header.start:
            head["start"] = header.start
        if header.notes:
            head["notes"] = header.notes
        self._write(head)

    def _write(self, obj: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def write(self, event: Event) -> None:
        if event.t < self._last:
            raise TraceError(f"{self.path}: event at t={event.t} is earlier than t={self._last}")
        self._last = event.t
        self._write(event_to_dict(event))

    def close(self) -> None:
        self._file.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_trace(path: str | Path, trace: Trace) -> None:
    with TraceWriter(path, trace.header) as writer:
        for event in trace.events:
            writer.write(event)


# --- decoding --------------------------------------------------------------------------------
_Time = Annotated[float, msgspec.Meta(ge=0, le=FINITE)]
_Name = Annotated[str, msgspec.Meta(min_length=1)]
_Quantities = dict[str, str | int | float]
_Labels = dict[str, str] | None


class _HeaderLine(msgspec.Struct):
    type: Any = None
    format: Any = None
    version: Any = None
    source: Any = ""
    start: float = 0.0
    notes: Any = ""


class _Line(msgspec.Struct, tag_field="type"):
    t: _Time


class _PodCreatedLine(_Line, tag="pod_created"):
    uid: _Name
    workload: str
    name: _Name
    requests: _Quantities
    labels: _Labels = None
    annotations: _Labels = None


class _PodDeletedLine(_Line, tag="pod_deleted"):
    uid: _Name


class _ReplicasChangedLine(_Line, tag="replicas_changed"):
    workload: str
    replicas: Annotated[int, msgspec.Meta(ge=0)]
    requests: _Quantities | None = None
    labels: _Labels = None
    annotations: _Labels = None


class _NodeAddedLine(_Line, tag="node_added"):
    name: _Name
    allocatable: _Quantities
    labels: _Labels = None
    price_per_hour: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class _NodeRemovedLine(_Line, tag="node_removed"):
    name: _Name


_EventLine = (
    _PodCreatedLine | _PodDeletedLine | _ReplicasChangedLine | _NodeAddedLine | _NodeRemovedLine
)
_TYPES = ("pod_created", "pod_deleted", "replicas_changed", "node_added", "node_removed")


def parse_workload(text: Any, where: str) -> WorkloadKey:
    if not isinstance(text, str):
        raise TraceError(f"{where}: workload must be a string Kind/namespace/name")
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise TraceError(f"{where}: workload {text!r} is not Kind/namespace/name")
    return WorkloadKey(parts[1], parts[0], parts[2])


class _Decoder:
    """Turns lines into events; caches parsed requests and workloads (traces repeat a few)."""

    def __init__(self) -> None:
        self.last = -math.inf
        self._lines: JsonDecoder[_EventLine] = JsonDecoder(_EventLine, error=TraceError)
        self._requests: dict[tuple[tuple[str, str | int | float], ...], Resources] = {}
        self._workloads: dict[str, WorkloadKey] = {}

    def _resources(self, raw: _Quantities, key: str, at: str, *, pod: bool) -> Resources:
        cache_key = tuple(sorted(raw.items()))
        cached = self._requests.get(cache_key) if pod else None
        if cached is not None:
            return cached
        try:
            r = parse_resources(raw, where=f"{key}")
        except ModelError as err:
            for name, q in raw.items():  # name the quantity that failed
                try:
                    parse_resources({name: q}, where=f"{key}.{name}")
                except ModelError as one:
                    raise TraceError(f"{at}: {one}") from None
            raise TraceError(f"{at}: {err}") from None
        if min(r.cpu_milli, r.memory, r.gpu_milli, r.pods) < 0:
            raise TraceError(f"{at}: {key} must not be negative")
        if pod:
            r = Resources(r.cpu_milli, r.memory, 1, r.gpu_milli, r.ephemeral_storage)
            self._requests[cache_key] = r
        return r

    def _template(self, line: _PodCreatedLine | _ReplicasChangedLine, at: str) -> Template:
        assert line.requests is not None
        return Template(
            self._resources(line.requests, "requests", at, pod=True),
            line.labels or {},
            line.annotations or {},
        )

    def _workload(self, raw: str, at: str) -> WorkloadKey:
        key = self._workloads.get(raw)
        if key is None:
            key = self._workloads[raw] = parse_workload(raw, at)
        return key

    def event(self, text: str, at: str) -> Event:
        try:
            line = self._lines.decode(text)
        except TraceError as err:
            if err.segments == ("type",):
                kind = err.problem.partition("invalid value ")[2]
                problem = f"unknown event type {kind}" if kind else "field 'type' is required"
                raise TraceError(f"{at}: {problem} (one of {', '.join(_TYPES)})") from None
            raise TraceError(f"{at}: {err}") from None
        t = line.t
        if t < self.last:
            raise TraceError(f"{at}: time goes backwards (t={t} after t={self.last})")
        check_time(t, f"{at}: t")
        self.last = t
        if isinstance(line, _PodCreatedLine):
            return PodCreated(
                t, line.uid, self._workload(line.workload, at), line.name, self._template(line, at)
            )
        if isinstance(line, _PodDeletedLine):
            return PodDeleted(t, line.uid)
        if isinstance(line, _ReplicasChangedLine):
            if line.replicas > MAX_REPLICAS:
                raise TraceError(
                    f"{at}: replicas: {line.replicas:,} is more than {MAX_REPLICAS:,} pods of one "
                    "workload"
                )
            template = None if line.requests is None else self._template(line, at)
            return ReplicasChanged(t, self._workload(line.workload, at), line.replicas, template)
        if isinstance(line, _NodeAddedLine):
            return NodeAdded(
                t,
                line.name,
                self._resources(line.allocatable, "allocatable", at, pod=False),
                line.labels or {},
                line.price_per_hour,
            )
        return NodeRemoved(t, line.name)


_HEADER: JsonDecoder[_HeaderLine] = JsonDecoder(_HeaderLine, error=TraceError)


def _header(text: str, at: str) -> TraceHeader:
    try:
        head = _HEADER.decode(text)
    except TraceError as err:
        if err.segments and err.segments[0] == "start":
            raise TraceError(f"{at}: header field 'start' must be a number") from None
        raise TraceError(f"{at}: {err}") from None
    if head.type != "header":
        raise TraceError(f'{at}: the first line must be the header {{"type": "header", ...}}')
    if head.format != FORMAT:
        raise TraceError(f"{at}: format must be {FORMAT!r}, not {head.format!r}")
    if head.version != VERSION or isinstance(head.version, bool):
        raise TraceError(
            f"{at}: unsupported version {head.version!r} (this reader knows {VERSION})"
        )
    return TraceHeader(str(head.source), head.start, str(head.notes))


def iter_lines(lines: Iterable[str], where: str) -> Iterator[TraceHeader | Event]:
    decoder = _Decoder()
    header_seen = False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        at = f"{where}:{number}"
        if not header_seen:
            header_seen = True
            yield _header(line, at)
            continue
        yield decoder.event(line, at)
    if not header_seen:
        raise TraceError(f"{where}:1: empty file, expected the trace header")


def read_trace(path: str | Path) -> Trace:
    """The whole trace; raises ``TraceError`` naming the file, line and problem."""
    header: TraceHeader | None = None
    events: list[Event] = []
    try:
        with open(path, encoding="utf-8-sig") as f:  # a BOM an editor added, too
            for item in iter_lines(f, str(path)):
                if isinstance(item, TraceHeader):
                    header = item
                else:
                    events.append(item)
    except (OSError, UnicodeDecodeError) as err:
        raise TraceError(f"{path}: {err}") from None
    assert header is not None
    return Trace(header, events)
