"""The replay command end to end on small inputs, the report, and the recorder's translation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoscaler.replay.cli import main
from autoscaler.replay.record import Recorder
from autoscaler.replay.report import compare, fluid_bound, summary_markdown
from autoscaler.replay.trace import (
    NodeAdded,
    PodCreated,
    PodDeleted,
    ReplicasChanged,
    Template,
    Trace,
    TraceHeader,
    write_trace,
)
from extender.model import Resources, WorkloadKey

from .conftest import small_scenario

SCENARIO_YAML = """
seed: 1
autoscaler:
  groups:
    - name: small
      instanceType: {cpu: "2", memory: 8Gi}
      labels: {spillover.dev/node-group: small}
      pricePerHour: 3.6
      max: 10
      cooldown: 0s
      bootTime: 60s
  settings: {scaleDownUnneededTime: 100s, scaleDownDelayAfterAdd: 0s}
policies:
  - apiVersion: spillover.dev/v1alpha1
    kind: ResourcePolicy
    metadata: {name: web, namespace: shop}
    spec: {selector: {}, units: [{resource: ecs}, {resource: eci}]}
forecast: {enabled: false}
baselines: {headroom: [0, 1]}
"""


def small_trace(path: Path) -> Path:
    web = WorkloadKey("shop", "Deployment", "web")
    tpl = Template(Resources(1000, 2**30, 1), {"app": "web"})
    events = [ReplicasChanged(0.0, web, 2, tpl)]
    events += [ReplicasChanged(600.0 * k, web, 2 + k % 4) for k in range(1, 30)]
    write_trace(path, Trace(TraceHeader(source="test"), events))
    return path


def test_replay_writes_summary_json_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO_YAML)
    trace = small_trace(tmp_path / "t.jsonl")
    out = tmp_path / "out"
    code = main(
        ["replay", str(trace), "--scenario", str(scenario), "--out", str(out), "--json", "--quiet"]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["summary"]["name"] == "spillover"
    assert [b["name"] for b in printed["baselines"]] == [
        "reactive-ecs",
        "reactive-ecs+1",
        "all-eci",
        "static-N",
    ]
    for key in ("cost", "ecs_cost", "eci_cost", "pending_p99", "eci_pod_hours_share", "peak_nodes"):
        assert key in printed["summary"]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["summary"] == printed["summary"]
    assert "closing_note" in saved
    assert (out / "replay.png").read_bytes()[:4] == b"\x89PNG"
    assert "| **spillover** |" in (out / "summary.md").read_text()
    assert (out / "actions.jsonl").exists()


def test_bad_input_stops_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"type":"header","format":"spillover-trace","version":1}\n{"t":1,"type":"boom"}\n'
    )
    out = tmp_path / "out"
    assert main(["replay", str(bad), "--out", str(out), "--quiet"]) == 2
    assert f"{bad}:2: unknown event type 'boom'" in capsys.readouterr().err
    assert not out.exists()


def test_bad_csv_stops_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "series.csv"
    bad.write_text("ts,value\n1,2\n0,3\n")
    assert (
        main(["replay", str(bad), "--format", "series", "--out", str(tmp_path / "o"), "--quiet"])
        == 2
    )
    assert "line 3: time goes backwards" in capsys.readouterr().err


def test_fluid_bound_is_hand_computable() -> None:
    scenario = small_scenario()
    pod = Template(Resources(1000, 2**30, 1))  # half a 2-cpu node
    trace = Trace(
        TraceHeader(),
        [
            PodCreated(0.0, "a", WorkloadKey("shop", "Pod", "a"), "a", pod),
            PodCreated(0.0, "b", WorkloadKey("shop", "Pod", "b"), "b", pod),
            PodDeleted(3600.0, "a"),
            PodDeleted(7200.0, "b"),
        ],
    )
    bound = fluid_bound(trace, scenario)
    # one node for an hour, half a node for the next: 1.5 node-hours at 3.6 CNY/h
    assert bound.cost == pytest.approx(5.4)
    c = compare(trace, scenario)
    assert "fluid ECS lower bound" in summary_markdown(c)


def test_recorder_translates_watch_events() -> None:
    rec = Recorder()
    deployment = {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": 3,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}]},
            },
        },
    }
    [first] = rec.deployment("ADDED", deployment, 1.0)
    assert isinstance(first, ReplicasChanged)
    assert first.replicas == 3
    assert first.template is not None
    assert first.template.requests.cpu_milli == 500
    assert rec.deployment("MODIFIED", deployment, 2.0) == []  # same replicas: nothing
    pod = {
        "metadata": {
            "name": "job-1",
            "namespace": "batch",
            "uid": "u1",
            "ownerReferences": [{"kind": "Job", "name": "job", "controller": True}],
        },
        "spec": {
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]
        },
    }
    [created] = rec.pod("ADDED", pod, 3.0)
    assert isinstance(created, PodCreated)
    assert created.workload == WorkloadKey("batch", "Job", "job")
    assert rec.pod("MODIFIED", pod, 4.0) == []
    assert rec.pod("DELETED", pod, 5.0) == [PodDeleted(5.0, "u1")]
    owned = {
        **pod,
        "metadata": {
            **pod["metadata"],
            "uid": "u2",
            "labels": {"pod-template-hash": "abc"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "controller": True}],
        },
    }
    assert rec.pod("ADDED", owned, 6.0) == []  # recorded through its Deployment
    node = {
        "metadata": {"name": "n1"},
        "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}},
    }
    [added] = rec.node("ADDED", node, 7.0)
    assert isinstance(added, NodeAdded)
    assert added.allocatable.cpu_milli == 4000


def test_demo_data_falls_back_to_the_bundled_copies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from autoscaler.replay import demo

    monkeypatch.setattr(demo, "ROOT", tmp_path / "fresh-clone")  # no ../shared/data beside it
    for name in ("alibaba-openb-pods.csv", "crane-series-daily.csv"):
        path = demo.data_file(name)
        assert path.parent == demo.BUNDLED
        assert path.is_file()
    shared = demo.ROOT.parent / "shared" / "data"
    assert shared != demo.BUNDLED
