"""The trace format: round trip, schema agreement, and bad files named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from autoscaler.replay.trace import (
    SCHEMA_PATH,
    Event,
    NodeAdded,
    NodeRemoved,
    PodCreated,
    PodDeleted,
    ReplicasChanged,
    Template,
    Trace,
    TraceError,
    TraceHeader,
    TraceWriter,
    event_to_dict,
    read_trace,
    write_trace,
)
from extender.model import Resources, WorkloadKey

WEB = WorkloadKey("shop", "Deployment", "web")
TEMPLATE = Template(
    Resources(500, 2**30, 1, 0), {"app": "web"}, {"spillover.dev/expected-duration": "8h"}
)
EVENTS: list[Event] = [
    NodeAdded(0.0, "n1", Resources(4000, 16 * 2**30, 110, 0), {"pool": "a"}, 0.5),
    PodCreated(
        1.0,
        "u1",
        WorkloadKey("shop", "Pod", "p1"),
        "p1",
        Template(Resources(1500, 3 * 2**29, 1, 460)),
    ),
    ReplicasChanged(2.0, WEB, 3, TEMPLATE),
    ReplicasChanged(5.5, WEB, 1),
    PodDeleted(7.0, "u1"),
    NodeRemoved(9.0, "n1"),
]


def header_line() -> str:
    return '{"type":"header","format":"spillover-trace","version":1}\n'


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_trace(path, Trace(TraceHeader(source="test", start=1.5e9), EVENTS))
    back = read_trace(path)
    assert back.events == EVENTS
    assert back.header == TraceHeader(source="test", start=1.5e9)


def test_every_written_line_matches_the_schema(tmp_path: Path) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    path = tmp_path / "t.jsonl"
    write_trace(path, Trace(TraceHeader(), EVENTS))
    for line in path.read_text().splitlines():
        validator.validate(json.loads(line))
    for bad in ({"t": 1, "type": "pod_exploded"}, {"t": -1, "type": "pod_deleted", "uid": "x"}):
        assert not validator.is_valid(bad)


@pytest.mark.parametrize(
    ("lines", "where", "problem"),
    [
        ([], ":1:", "empty file"),
        (['{"type":"header","format":"other","version":1}'], ":1:", "format must be"),
        (
            ['{"type":"header","format":"spillover-trace","version":9}'],
            ":1:",
            "unsupported version",
        ),
        (['{"t":0,"type":"pod_deleted","uid":"a"}'], ":1:", "first line must be the header"),
        (["{not json"], ":1:", "not valid JSON"),
        (['{"t":1,"type":"pod_exploded"}'], ":2:", "unknown event type 'pod_exploded'"),
        (
            ['{"t":5,"type":"pod_deleted","uid":"a"}', '{"t":4,"type":"pod_deleted","uid":"b"}'],
            ":3:",
            "time goes backwards",
        ),
        (['{"t":"soon","type":"pod_deleted","uid":"a"}'], ":2:", "t: expected float, got str"),
        (
            ['{"t":1700000000,"type":"pod_deleted","uid":"a"}'],
            ":2:",
            "t: trace spans 54 years: are these absolute times?",
        ),
        (
            ['{"t":2,"type":"replicas_changed","workload":"Deployment/a/b","replicas":1000000000}'],
            ":2:",
            "replicas: 1,000,000,000 is more than 100,000",
        ),
        (
            ['{"t":1,"type":"pod_created","uid":"a","workload":"Pod/x","name":"a","requests":{}}'],
            ":2:",
            "not Kind/namespace/name",
        ),
        (
            [
                '{"t":1,"type":"pod_created","uid":"a","workload":"Pod/ns/a","name":"a","requests":{"cpu":"lots"}}'
            ],
            ":2:",
            "cpu",
        ),
        (
            ['{"t":1,"type":"replicas_changed","workload":"Deployment/ns/a","replicas":-1}'],
            ":2:",
            "replicas",
        ),
        (
            ['{"t":1,"type":"pod_created","uid":"a","workload":"Pod/ns/a","name":"a"}'],
            ":2:",
            "requests",
        ),
    ],
)
def test_bad_files_name_file_line_and_problem(
    tmp_path: Path, lines: list[str], where: str, problem: str
) -> None:
    path = tmp_path / "bad.jsonl"
    # Lines that test the first line are written as they are; the others follow a good header.
    own_first = bool(lines) and (
        lines[0].startswith('{"type":"header"') or "not json" in lines[0] or '"t":0' in lines[0]
    )
    if not lines:
        text = ""
    elif own_first:
        text = "\n".join(lines) + "\n"
    else:
        text = header_line() + "".join(line + "\n" for line in lines)
    path.write_text(text)
    with pytest.raises(TraceError) as err:
        read_trace(path)
    message = str(err.value)
    assert message.startswith(str(path) + where), message
    assert problem in message


def test_writer_leaves_nothing_when_it_fails(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    writer = TraceWriter(path, TraceHeader())
    writer.write(PodDeleted(5.0, "a"))

    def fail() -> None:
        with writer:
            writer.write(PodDeleted(4.0, "b"))  # backwards: refused, the file is dropped

    with pytest.raises(TraceError):
        fail()
    assert list(tmp_path.iterdir()) == []


def test_event_dicts_use_kubernetes_quantities() -> None:
    d = event_to_dict(EVENTS[1])
    assert d["requests"] == {"cpu": "1500m", "memory": "1536Mi", "nvidia.com/gpu": "460m"}


def test_a_byte_order_mark_before_the_header_is_read(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    text = header_line() + '{"t":1,"type":"pod_deleted","uid":"a","reason":"evicted"}\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read_trace(path).events == [PodDeleted(1.0, "a")]


def test_fields_the_reader_does_not_know_are_ignored(tmp_path: Path) -> None:
    # The schema allows additional properties: a newer writer's extra fields must not break us.
    path = tmp_path / "t.jsonl"
    path.write_text(
        header_line().replace("}", ',"recorder":"v2"}')
        + '{"t":1,"type":"pod_deleted","uid":"a","reason":"evicted"}\n'
    )
    assert read_trace(path).events == [PodDeleted(1.0, "a")]
