"""The replay command end to end on small inputs, the report, and the recorder's translation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from autoscaler.replay.cli import main, progress_bar
from autoscaler.replay.record import Recorder
from autoscaler.replay.report import compare, fluid_bound, summary_markdown
from autoscaler.replay.trace import (
    Event,
    NodeAdded,
    PodCreated,
    PodDeleted,
    ReplicasChanged,
    Template,
    Trace,
    TraceHeader,
    detect_format,
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
    assert "## Where the money went (CNY)" in (out / "summary.md").read_text()
    split = saved["summary"]["cost_split"]
    assert sum(split.values()) == pytest.approx(saved["summary"]["cost"], abs=0.1)
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
    assert f"{bad}:3: time goes backwards" in capsys.readouterr().err


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
    # Whole nodes: a 1 cpu / 1 GiB pod costs 0.1764 + 0.022068 = 0.198468 CNY/h on ECI, so at
    # 3.6 CNY/h for a node ECI holds both hours (0.396936 + 0.198468)
    assert bound.whole_node_cost == pytest.approx(0.595404)
    c = compare(trace, scenario)
    text = summary_markdown(c)
    assert "fluid ECS lower bound" in text
    assert "| whole-node reference | 1 |" in text
    assert "and 0.00x the whole-node reference" not in text


def test_whole_node_reference_is_hand_computable() -> None:
    # nodes at 0.3 CNY/h; three pods (1.5 nodes) for an hour, then one (half a node) for an hour
    scenario = small_scenario()
    groups = tuple(replace(g, price_per_hour=0.3) for g in scenario.autoscaler.groups)
    scenario = replace(scenario, autoscaler=replace(scenario.autoscaler, groups=groups))
    pod = Template(Resources(1000, 2**30, 1))
    events: list[Event] = [
        PodCreated(0.0, p, WorkloadKey("shop", "Pod", p), p, pod) for p in ("a", "b", "c")
    ]
    events += [PodDeleted(3600.0, "a"), PodDeleted(3600.0, "b"), PodDeleted(7200.0, "c")]
    bound = fluid_bound(Trace(TraceHeader(), events), scenario)
    assert bound.cost == pytest.approx(2 * 0.3)  # 1.5 + 0.5 node-hours
    # first hour: 2 nodes 0.6, all on ECI 3 * 0.198468 = 0.595404, or one node and the third
    # of the demand beyond it on ECI: 0.3 + 0.595404 / 3 = 0.498468, the least; second hour:
    # one node 0.3 or ECI 0.198468: ECI
    assert bound.whole_node_cost == pytest.approx(0.498468 + 0.198468)


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
    pod: dict[str, Any] = {
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


DOCS_EXAMPLE = """\
{"type":"header","format":"spillover-trace","version":1,"source":"example"}
{"t":0,"type":"replicas_changed","workload":"Deployment/shop/web","replicas":3,"requests":{"cpu":"2","memory":"8Gi"},"labels":{"app":"web"}}
{"t":12.5,"type":"pod_created","uid":"9f1c","workload":"Job/batch/etl","name":"etl-x7","requests":{"cpu":"4","memory":"16Gi"}}
{"t":600,"type":"replicas_changed","workload":"Deployment/shop/web","replicas":5}
{"t":3600,"type":"pod_deleted","uid":"9f1c"}
"""


def test_unmatched_pods_are_reported_and_never_called_cheaper(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/trace-format.md's example against a scenario whose policies name other namespaces."""
    trace = tmp_path / "example.jsonl"
    trace.write_text(DOCS_EXAMPLE)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO_YAML.replace("namespace: shop", "namespace: elsewhere"))
    out = tmp_path / "out"
    assert (
        main(["replay", str(trace), "--scenario", str(scenario), "--out", str(out), "--quiet"]) == 0
    )
    err = capsys.readouterr().err
    assert "6 of 6 pods match no ResourcePolicy" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["unmanaged_pods"] == 6
    assert "6 of 6 pods match no ResourcePolicy" in (out / "summary.md").read_text()
    eci = next(b for b in summary["baselines"] if b["name"] == "all-eci")
    assert eci["never_started"] == 6
    assert eci["cost"] == 0.0
    verdict = " ".join(summary["verdict"])
    # the 4-cpu job fits no 2-cpu node: it never starts in Spillover's run either
    assert "all-eci left 6 pod(s) never started (Spillover 1), so it is never called" in verdict
    assert "all-eci is 100.0% cheaper" not in verdict
    # The flag applies the policies to every namespace: nothing unmanaged, all-eci runs them.
    out2 = tmp_path / "out2"
    args = ["replay", str(trace), "--scenario", str(scenario), "--out", str(out2), "--quiet"]
    assert main([*args, "--every-namespace"]) == 0
    assert "match no ResourcePolicy" not in capsys.readouterr().err
    summary = json.loads((out2 / "summary.json").read_text())
    assert summary["summary"]["unmanaged_pods"] == 0
    eci = next(b for b in summary["baselines"] if b["name"] == "all-eci")
    assert eci["never_started"] == 0
    assert eci["cost"] > 0


def test_default_scenario_manages_a_recorded_namespace(tmp_path: Path) -> None:
    trace = tmp_path / "example.jsonl"
    trace.write_text(DOCS_EXAMPLE)
    out = tmp_path / "out"
    assert main(["replay", str(trace), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["unmanaged_pods"] == 0
    assert all(b["never_started"] == 0 for b in summary["baselines"] if b["name"] == "all-eci")


def test_outputs_are_readable_by_others(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO_YAML)
    trace = small_trace(tmp_path / "t.jsonl")
    out = tmp_path / "out"
    assert (
        main(["replay", str(trace), "--scenario", str(scenario), "--out", str(out), "--quiet"]) == 0
    )
    for name in ("summary.md", "summary.json", "actions.jsonl", "replay.png"):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name
    assert trace.stat().st_mode & 0o777 == 0o644  # the trace writer (record) too


def test_progress_bar_is_quiet_without_a_terminal() -> None:
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tick, bar = progress_bar(100, False, stream=io.StringIO())
    assert tick is None
    assert bar is None
    tick, bar = progress_bar(100, False, stream=Terminal())
    assert tick is not None
    assert bar is not None
    bar.close()


def _one_pod() -> Trace:
    created = PodCreated(
        0.0, "a", WorkloadKey("shop", "Pod", "a"), "a", Template(Resources(1000, 2**30, 1))
    )
    return Trace(TraceHeader(), [created, PodDeleted(3600.0, "a")])


def test_plot_title_names_the_file_not_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    from autoscaler.replay.plot import plot_comparison

    c = compare(_one_pod(), small_scenario(), name="crane-daily (/work/shared/data/crane.csv)")
    figures: list[Any] = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot_comparison(c, tmp_path / "p.png")
    [fig] = figures
    assert fig.axes[0].get_title() == "crane-daily (crane.csv): spillover"
    # no GPU pods: no GPU panel; pods on ECS and ECI are separate lines, not a stack
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert labels == ["pods on ECS", "pods on ECI", "pending pods"]


def test_the_plot_is_drawn_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    from autoscaler.replay.plot import plot_comparison

    c = compare(_one_pod(), small_scenario())
    draws: list[object] = []
    draw = Figure.draw

    def counted(fig: Figure, renderer: Any) -> None:
        draws.append(renderer)
        draw(fig, renderer)

    monkeypatch.setattr(Figure, "draw", counted)
    plot_comparison(c, tmp_path / "p.png")
    # tight_layout measures without drawing; savefig then draws once (not a layout pass first)
    assert len(draws) == 1
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


OPENB_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("trace.csv", '{"type":"header","format":"spillover-trace","version":1}\n', "jsonl"),
        ("pods.txt", OPENB_HEADER + "a,1000,1024,0,0\n", "openb"),
        ("demand.jsonl", "\n Value , TS\n2,0\n", "series"),  # any order, case, blank first line
        ("bom.csv", "\ufeffts,value\n0,2\n", "series"),
    ],
)
def test_format_is_told_by_content(tmp_path: Path, name: str, text: str, fmt: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert detect_format(path) == fmt


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"a,b\n1,2\n", ":1: format: cannot tell the format from 'a,b': expected jsonl (a "),
        (b"\n\n", ":1: format: empty file, expected one of jsonl, openb, series (--format)"),
        (b"\n# notes\nts,value\n", ":2: format: cannot tell the format from '# notes'"),
        (b"\x00\xff\xfe", ":1: format: not UTF-8 text (byte 1: invalid start byte)"),
        (b"\n\n\xffab\n", ":3: format: not UTF-8 text (byte 2: invalid start byte)"),
        # the first line tells the format; the series reader names the bad byte's line
        (b"ts,value\n0,1\n60,\xff\n", ":3: not UTF-8 text (byte 16: invalid start byte)"),
    ],
    ids=["other-csv", "blank", "comment", "binary", "binary-third-line", "series-bad-byte"],
)
def test_replay_and_sweep_refuse_an_undetectable_file_alike(
    tmp_path: Path, content: bytes, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from autoscaler.cli import main as autoscaler_main

    path = tmp_path / "input.csv"
    path.write_bytes(content)
    (tmp_path / "grid.yaml").write_text("axes:\n  eci_price: [1.0]\n")
    assert main(["replay", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    replayed = capsys.readouterr().err
    argv = ["sweep", str(tmp_path / "grid.yaml"), str(path), "--out", str(tmp_path / "s")]
    assert autoscaler_main(argv) == 2
    assert capsys.readouterr().err == replayed
    assert replayed.count("\n") == 1
    assert replayed.startswith(f"{path}{problem}"), replayed
    if "cannot tell" in problem:
        assert "openb (a CSV header with cpu_milli) or series (a CSV header with ts,value)" in (
            replayed
        )
    assert not (tmp_path / "o").exists()


def test_replay_of_a_series_by_default_says_its_scale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO_YAML + "everyNamespace: true\n")
    # 1 for 20 minutes, 3 for 10 (the last sample holds 0 s): 3 covers 540 of 1,740 s, so the
    # 99th percentile over time is 3 and one replica serves 3 / 50 = 0.06: 17 then 50 replicas
    series = tmp_path / "demand.csv"
    series.write_text("ts,value\n" + "".join(f"{60 * k},{1 if k < 20 else 3}\n" for k in range(30)))
    out = tmp_path / "out"
    argv = ["replay", str(series), "--scenario", str(scenario), "--out", str(out), "--workers", "1"]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        f"{series}: replicas = ceil(value / 0.06); per_replica auto: the series' 99th "
        "percentile over time, 3, is 50 replicas\n"
    )
    summary = json.loads(captured.out)["summary"]
    assert summary["cost"] > 0
    assert main([*argv, "--json", "--quiet", "--per-replica", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: nothing on stderr
    explicit = json.loads(captured.out)["summary"]
    assert explicit["cost"] < summary["cost"]  # 1 then 1 replica instead of 17 then 50


def test_per_replica_is_a_number_or_auto(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "x.csv", "--per-replica", "lots"])
    assert "argument --per-replica: not a valid float: 'lots', or auto" in capsys.readouterr().err
