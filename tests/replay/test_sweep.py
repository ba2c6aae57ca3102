"""What-if sweeps: grids, executors giving the same table, resume, the front, bad grids."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from autoscaler.cli import main as autoscaler_main
from autoscaler.replay.cli import load_trace
from autoscaler.replay.executors import PoolExecutor, SerialExecutor
from autoscaler.replay.frontier import Point, pareto_front, recommendation
from autoscaler.replay.grid import GridError, parse_grid
from autoscaler.replay.report import fluid_bound, variant_of, variants
from autoscaler.replay.scenario import load_scenario
from autoscaler.replay.sweep import LOG, read_log, run_sweep, simulate_variants, trace_inputs
from autoscaler.replay.trace import ReplicasChanged, Template, Trace, TraceHeader, write_trace
from extender.model import Resources, WorkloadKey

from .test_cli import SCENARIO_YAML

GRID = """\
scenario: scenario.yaml
axes:
  policy_max: [null, 1]
  eci_price: [1.0, 0.5]
  boot_time: [60s, 3m]
"""


def _trace(path: Path, phase: int) -> Path:
    web = WorkloadKey("shop", "Deployment", "web")
    tpl = Template(Resources(1000, 2**30, 1), {"app": "web"})
    events = [ReplicasChanged(0.0, web, 2, tpl)]
    events += [ReplicasChanged(600.0 * k, web, 1 + (k + phase) % 5) for k in range(1, 24)]
    write_trace(path, Trace(TraceHeader(source="test"), events))
    return path


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, list[str]]:
    (tmp_path / "scenario.yaml").write_text(SCENARIO_YAML)
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    traces = [str(_trace(tmp_path / "a.jsonl", 0)), str(_trace(tmp_path / "b.jsonl", 2))]
    return grid, traces


def _sweep(grid: Path, traces: list[str], out: Path, executor: Any, **kw: Any) -> Any:
    from autoscaler.replay.grid import load_grid

    return run_sweep(
        load_grid(grid),
        trace_inputs(traces, "auto"),
        out=out,
        executor=executor,
        load=load_trace,
        **kw,
    )


def test_pool_gives_the_serial_table(setup: tuple[Path, list[str]], tmp_path: Path) -> None:
    grid, traces = setup
    serial = _sweep(grid, traces, tmp_path / "serial", SerialExecutor())
    pooled = _sweep(grid, traces, tmp_path / "pool", PoolExecutor(2))
    # 8 cells x 2 traces + the scenario's 4 baselines x 2 traces
    assert serial.total == pooled.total == 8 * 2 + 4 * 2
    assert serial.ran == pooled.ran == serial.total
    for name in ("sweep.csv", "sweep.json", "summary.md"):
        assert (tmp_path / "serial" / name).read_text() == (tmp_path / "pool" / name).read_text()
    rows = json.loads((tmp_path / "serial" / "sweep.json").read_text())
    cells = [r for r in rows if r["kind"] == "spillover"]
    # The axes do something: ECI at half price costs less, unless no pod ever ran on ECI.
    by_label = {(r["trace"], r["label"]): r for r in cells}
    full = by_label[("a.jsonl", "policy_max=1, eci_price=1.0, boot_time=60s")]
    half = by_label[("a.jsonl", "policy_max=1, eci_price=0.5, boot_time=60s")]
    assert full["eci_cost"] > 0
    assert half["eci_cost"] == pytest.approx(full["eci_cost"] / 2, rel=0.01)
    assert (tmp_path / "serial" / "pareto.png").stat().st_size > 0


@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed (optional extra spillover[sweep]; kept out of the dev extra "
    "because ray.init alone takes ~6 s on the 2-core CI machine)",
)
def test_ray_gives_the_pool_table(setup: tuple[Path, list[str]], tmp_path: Path) -> None:
    from autoscaler.replay.executors import RayExecutor

    grid, traces = setup
    pooled = _sweep(grid, traces, tmp_path / "pool", PoolExecutor(2))
    on_ray = _sweep(grid, traces, tmp_path / "ray", RayExecutor("local", num_cpus=2))
    assert on_ray.ran == pooled.ran
    for name in ("sweep.csv", "sweep.json", "summary.md"):
        assert (tmp_path / "pool" / name).read_text() == (tmp_path / "ray" / name).read_text()


def test_interrupted_sweep_resumes_where_it_stopped(
    setup: tuple[Path, list[str]], tmp_path: Path
) -> None:
    grid, traces = setup
    seen = []

    def stop_after_five(row: dict[str, Any]) -> None:
        seen.append(row["key"])
        if len(seen) == 5:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    first = _sweep(grid, traces, out, PoolExecutor(2), on_row=stop_after_five)
    assert first.interrupted
    assert len(first.rows) == 5
    assert len((out / LOG).read_text().splitlines()) == 5
    assert "5 of 24 replays done" in (out / "summary.md").read_text()
    # A torn last line (killed mid-write) is not a finished replay.
    with (out / LOG).open("a") as log:
        log.write('{"key": "torn')
    second = _sweep(grid, traces, out, PoolExecutor(2))
    assert not second.interrupted
    assert (second.reused, second.ran) == (5, 19)
    _sweep(grid, traces, tmp_path / "fresh", SerialExecutor())
    assert (out / "sweep.csv").read_text() == (tmp_path / "fresh" / "sweep.csv").read_text()
    third = _sweep(grid, traces, out, SerialExecutor())
    assert (third.reused, third.ran) == (24, 0)


def test_a_changed_trace_is_replayed_again(setup: tuple[Path, list[str]], tmp_path: Path) -> None:
    grid, traces = setup
    out = tmp_path / "out"
    _sweep(grid, traces, out, SerialExecutor())
    _trace(Path(traces[1]), 3)
    again = _sweep(grid, traces, out, SerialExecutor())
    assert (again.reused, again.ran) == (12, 12)


def test_sweep_command_end_to_end(
    setup: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid, traces = setup
    out = tmp_path / "out"
    code = autoscaler_main(["sweep", str(grid), *traces, "--out", str(out), "--workers", "2"])
    assert code == 0
    text = capsys.readouterr().out
    assert "**Recommendation**:" in text
    assert "24 replays run, 0 reused" in text
    assert autoscaler_main(["sweep", str(grid), *traces, "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "sweep.json").read_text())[0]["trace"] == "a.jsonl"


def test_ray_address_without_ray_says_how_to_install(
    setup: tuple[Path, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    grid, traces = setup
    argv = ["sweep", str(grid), *traces, "--out", str(tmp_path / "o"), "--ray-address", "auto"]
    assert autoscaler_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --ray-address auto: Ray is not installed: pip install 'spillover[sweep]'"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "axes:\n  headroom: [1]\n  colour: [red]\n",
            "GRID.yaml:3: axes.colour: unknown field (known: policy_max, headroom, ",
        ),
        ("axes:\n  headroom: []\n", "GRID.yaml:2: axes.headroom: must not be empty"),
        (
            "axes:\n  policy_max: [1]\n  eci_price:\n    - 0.8\n    - cheap\n",
            "GRID.yaml:5: axes.eci_price[1]: expected float | object, got str",
        ),
        (
            "axes:\n  eci_price: [{vcpuSeconds: 1}]\n",
            "GRID.yaml:2: axes.eci_price[0].vcpuSeconds: unknown field",
        ),
        (
            "axes:\n  forecast: [yes-please]\n",
            "GRID.yaml:2: axes.forecast[0]: expected bool, got str",
        ),
        ("axes: {}\n", "GRID.yaml:1: axes: no axis: give at least one"),
        ("headroom: [1]\n", "GRID.yaml:1: headroom: unknown field"),
        ("[1, 2]\n", "GRID.yaml:1: grid: expected a map with axes"),
        ("axes:\n  headroom: [1\n", "GRID.yaml:3: invalid YAML"),
        (
            "axes:\n  node_groups:\n    - {}\n    - {nope: {pricePerHour: 1}}\n",
            "GRID.yaml:4: axes.node_groups[1].nope: no node group of that name in the scenario",
        ),
        (
            "axes:\n  boot_time: [60s, soon]\n",
            "GRID.yaml:2: axes.boot_time[1]: makes the scenario invalid: autoscaler.groups[0]."
            "bootTime: expected a duration",
        ),
        (
            "axes:\n  spot_price: [0.3]\n",
            "GRID.yaml:2: axes.spot_price: no node group is spot",
        ),
        ("axes:\n  spot_price: [1.5]\n", "GRID.yaml:2: axes.spot_price[0]: expected float <= 1"),
    ],
)
def test_bad_grids_name_the_line_and_field(text: str, message: str) -> None:
    with pytest.raises(GridError) as info:
        parse_grid(text, path="GRID.yaml")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_bad_grid_on_the_command_line_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text("axes:\n  headroom: []\n")
    trace = _trace(tmp_path / "t.jsonl", 0)
    assert autoscaler_main(["sweep", str(grid), str(trace), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{grid}:2: axes.headroom: must not be empty"]
    assert not (tmp_path / "o").exists()


def test_cells_patch_the_scenario() -> None:
    grid = parse_grid(
        """
axes:
  policy_max: [3]
  node_groups: [{general-8c32g: {spot: true, instanceType: {cpu: "16", memory: 64Gi}}}]
  spot_price: [0.25]
  eci_price: [0.5]
  boot_time: [3m]
  eci_start_delay: [30s]
  forecast: [false]
  spot_interruption_rate: [0.1]
  headroom: [2]
""",
        path="g.yaml",
    )
    (cell,) = grid.cells()
    s = grid.scenario(cell)
    groups = {g.name: g for g in s.autoscaler.groups}
    assert groups["general-8c32g"].instance_type.cpu_milli == 16000
    assert groups["general-8c32g"].price_per_hour == pytest.approx(1.412 * 0.25)
    assert groups["gpu-8x"].price_per_hour == 64.0  # not spot: list price
    assert all(g.boot_time == 180 for g in groups.values())
    assert s.autoscaler.settings.eci_price.vcpu_second == pytest.approx(0.000049 / 2)
    assert s.autoscaler.settings.eci_price.gpu_hour == pytest.approx(6.0)
    assert [p.units[0].max for p in s.policies] == [3, 3]
    assert s.timing.eci_start_delay == 30
    assert not s.forecast.enabled
    assert s.spot_interruptions_per_hour == 0.1
    assert cell.value("headroom") == 2
    assert cell.label.startswith("policy_max=3, node_groups={")


def _p(name: str, cost: float, p99: float, kind: str = "spillover", never: int = 0) -> Point:
    return Point(name, kind, cost, p99, never, 1)


def test_pareto_front_and_recommendation() -> None:
    points = [
        _p("a", 100, 30),
        _p("b", 120, 10),
        _p("c", 130, 12),  # dominated by b
        _p("d", 200, 1),
        _p("e", 100, 40),  # dominated by a
        _p("reactive-ecs+1", 150, 0, "baseline"),
        _p("all-eci", 90, 12, "baseline", never=3),  # pods never started: never cheaper
    ]
    cells = [p for p in points if p.kind == "spillover"]
    assert [p.name for p in pareto_front(cells)] == ["a", "b", "d"]
    assert recommendation(points, target_p99=15) == (
        "b: -20% cost against reactive-ecs+1, the cheapest baseline within the target, "
        "at pending p99 10.0 s."
    )
    assert recommendation(points, target_p99=0.5).startswith(
        "No cell meets the pending p99 target of 0.5 s; the fastest is d"
    )


class _Recording(SerialExecutor):
    """In this process, in order; keeps the tasks it was given."""

    tasks: list[Any]

    def map_unordered(self, fn: Any, tasks: Any, shared: Any) -> Any:
        self.tasks = [task for _, task in tasks]
        return super().map_unordered(fn, tasks, shared)


def test_spillover_replays_first_and_the_bound_is_a_task_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text(SCENARIO_YAML)
    scenario = load_scenario(tmp_path / "scenario.yaml")
    trace = load_trace(str(_trace(tmp_path / "t.jsonl", 1)), "auto")
    executor = _Recording()
    bound, results = simulate_variants(trace, scenario, executor=executor)
    # Spillover's replay does not wait for the bound, which the baselines need: it comes next
    assert executor.tasks[:2] == ["spillover", None]
    assert bound == fluid_bound(trace, scenario)
    table = variants(scenario, bound)
    assert [r.name for r in results] == [v.name for v in table]
    assert [variant_of(trace, scenario, v.name) for v in table] == table


def test_replay_command_in_parallel_writes_what_the_serial_run_writes(tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text(SCENARIO_YAML)
    trace = str(_trace(tmp_path / "t.jsonl", 1))
    outs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        argv = ["replay", trace, "--scenario", str(tmp_path / "scenario.yaml"), "--quiet"]
        assert autoscaler_main([*argv, "--out", str(out), "--workers", workers]) == 0
        outs[workers] = out
    for name in ("summary.json", "summary.md", "actions.jsonl"):
        assert (outs["1"] / name).read_text() == (outs["2"] / name).read_text()
    assert len(json.loads((outs["2"] / "summary.json").read_text())["baselines"]) == 4


# The sweep command with every cell but the first held in its worker until the worker is ended:
# when the first row is in the log, cells are certainly left, however slowly this machine runs.
HELD_SWEEP = """\
import signal, sys
from autoscaler.cli import main
from autoscaler.replay import sweep

# Ctrl-C as a terminal delivers it: a test run as a background job of a script inherits SIGINT
# ignored (the shell ignores it in such jobs), and an ignored Ctrl-C would stop nothing.
signal.signal(signal.SIGINT, signal.default_int_handler)
run = sweep.run_task


def held(job, task):
    if task.cell is not None and task.cell.index > 0:
        signal.pause()  # until the parent, interrupted, terminates this worker
    return run(job, task)


sweep.run_task = held
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_stops_the_command_cleanly_and_a_rerun_continues(tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text(SCENARIO_YAML)
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "scenario: scenario.yaml\nbaselines: false\n"
        "axes:\n  eci_price: [1.0, 0.8, 0.6]\n  boot_time: [30s, 60s, 90s, 2m]\n"
    )
    web = WorkloadKey("shop", "Deployment", "web")
    tpl = Template(Resources(1000, 2**30, 1), {"app": "web"})
    events = [ReplicasChanged(0.0, web, 2, tpl)]
    events += [ReplicasChanged(60.0 * k, web, 1 + (k * 7) % 9) for k in range(1, 800)]
    trace = tmp_path / "t.jsonl"
    write_trace(trace, Trace(TraceHeader(source="test"), events))
    out = tmp_path / "out"
    argv = [sys.executable, "-c", HELD_SWEEP, "sweep", str(grid), str(trace)]
    argv += ["--out", str(out), "--workers", "2"]
    # A new session stands for the terminal: Ctrl-C sends SIGINT to the whole process group.
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = out / LOG
    try:
        while not (log.exists() and log.read_text().count("\n") >= 1):
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)  # a Ctrl-C not handled: the held cells never end
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().startswith("interrupted: ")
    assert "run the same command again" in err
    assert len(read_log(log)) == 1
    assert autoscaler_main(["sweep", *argv[4:], "--quiet"]) == 0
    assert len(read_log(log)) == 12


def test_shared_fits_fit_each_history_once_and_return_what_the_forecaster_returns() -> None:
    import numpy as np

    from autoscaler.forecast import SeasonalForecaster
    from autoscaler.replay import fits

    fits._FITS.clear()
    ts = np.arange(0.0, 3 * 86_400, 300.0)
    values = 10 + 5 * np.sin(ts / 86_400 * 2 * np.pi)
    direct = SeasonalForecaster().fit(ts, values).predict(horizon=7200)
    shared = fits.shared_fits()
    first = shared.fit(ts, values).predict(horizon=7200)
    again = shared.fit(ts.copy(), values.copy()).predict(horizon=7200)
    assert again is first
    assert len(fits._FITS) == 1
    assert (first.start, first.step, first.period, first.model) == (
        direct.start,
        direct.step,
        direct.period,
        direct.model,
    )
    assert np.array_equal(first.point, direct.point)
    assert np.array_equal(first.upper, direct.upper)
    other = values.copy()
    other[-1] += 1
    shared.fit(ts, other).predict(horizon=7200)
    shared.fit(ts, values).predict(horizon=3600)
    assert len(fits._FITS) == 3


def test_a_grown_axis_reuses_the_cells_it_had(
    setup: tuple[Path, list[str]], tmp_path: Path
) -> None:
    grid, traces = setup
    grid.write_text("scenario: scenario.yaml\naxes:\n  eci_price: [0.5]\n  boot_time: [60s]\n")
    out = tmp_path / "out"
    first = _sweep(grid, traces, out, SerialExecutor())
    assert (first.reused, first.ran) == (0, 2 + 8)
    grid.write_text("scenario: scenario.yaml\naxes:\n  eci_price: [1.0, 0.5]\n  boot_time: [60s]\n")
    grown = _sweep(grid, traces, out, SerialExecutor())
    assert (grown.reused, grown.ran) == (2 + 8, 2)
    _sweep(grid, traces, tmp_path / "fresh", SerialExecutor())
    assert (out / "sweep.csv").read_text() == (tmp_path / "fresh" / "sweep.csv").read_text()
    assert "| #1 | eci_price=0.5 |" in (out / "summary.md").read_text()


def _square_or_fail(shared: int, task: int) -> int:
    if task < 0:
        raise ValueError(f"task {task} fails")
    return shared + task * task


def test_pool_runs_every_task_once_and_raises_a_failing_tasks_error() -> None:
    tasks = [("a" if k % 3 else "b", k) for k in range(9)]
    done = dict(PoolExecutor(2).map_unordered(_square_or_fail, tasks, {"a": 0, "b": 100}))
    assert done == {i: (0 if k % 3 else 100) + k * k for i, (_, k) in enumerate(tasks)}
    with pytest.raises(ValueError, match="task -1 fails"):
        list(PoolExecutor(2).map_unordered(_square_or_fail, [("a", 1), ("a", -1)], {"a": 0}))


def test_pool_keeps_a_worker_on_its_input_and_starts_tasks_in_the_order_given() -> None:
    from autoscaler.replay.executors import _Schedule

    s = _Schedule([("a", 0), ("b", 1), ("a", 2), ("c", 3), ("a", 4), ("b", 5)])
    assert s.next(None, []) == (0, "a", 0)  # first in the order given
    assert s.next(None, ["a"]) == (1, "b", 1)  # a key no other worker is on
    assert s.next("a", ["b"]) == (2, "a", 2)  # the worker's own key while it has tasks
    assert s.next("b", ["a"]) == (5, "b", 5)
    assert s.next("b", ["a"]) == (3, "c", 3)  # b is done: the next free key
    assert s.next("c", ["a"]) == (4, "a", 4)  # nothing free: the key with most tasks left
    assert s.next("a", []) is None


def test_a_series_read_another_way_is_replayed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep reads a series as the replay does (--per-replica auto), and the scale it took is
    part of the key: the same bytes read at another scale are not the same replays."""
    from autoscaler.replay import importers
    from autoscaler.replay.grid import load_grid

    (tmp_path / "scenario.yaml").write_text(SCENARIO_YAML + "everyNamespace: true\n")
    grid = tmp_path / "grid.yaml"
    grid.write_text("scenario: scenario.yaml\naxes:\n  eci_price: [1.0]\n")
    series = tmp_path / "demand.csv"  # 2 a minute for 10 minutes, 4 for 10: p99 over time is 4
    series.write_text("ts,value\n" + "".join(f"{60 * k},{2 if k < 10 else 4}\n" for k in range(21)))
    assert load_trace(str(series), "auto").header.notes.startswith(
        "replicas = ceil(value / 0.08); per_replica auto: the series' 99th percentile over time, 4"
    )
    out = tmp_path / "out"

    def sweep() -> Any:
        inputs = trace_inputs([str(series)], "auto")
        assert inputs[0].format == "series"
        return run_sweep(
            load_grid(grid), inputs, out=out, executor=SerialExecutor(), load=load_trace
        )

    first = sweep()
    assert (first.ran, first.reused) == (5, 0)  # one cell and the 4 baselines
    again = sweep()
    assert (again.ran, again.reused) == (0, 5)
    monkeypatch.setattr(importers, "AUTO_REPLICAS", 5)  # the same file at another scale
    assert load_trace(str(series), "auto").header.notes.startswith("replicas = ceil(value / 0.8)")
    rescaled = sweep()
    assert (rescaled.ran, rescaled.reused) == (5, 0)


OPENB = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,qos,pod_phase,creation_time,deletion_time,"
    "scheduled_time\n"
    + "".join(
        f"t{k},1000,1024,0,0,BE,Succeeded,{300 * k},{300 * k + 900},{300 * k}\n" for k in range(8)
    )
    + "never,1000,1024,0,0,LS,Pending,0,3000,\n"
)


def _import_traces(tmp_path: Path) -> tuple[Path, list[str]]:
    """A grid of one cell without baselines, a demand series and an openb list."""
    (tmp_path / "scenario.yaml").write_text(SCENARIO_YAML + "everyNamespace: true\n")
    grid = tmp_path / "grid.yaml"
    grid.write_text("scenario: scenario.yaml\nbaselines: false\naxes:\n  eci_price: [1.0]\n")
    series = tmp_path / "demand.csv"
    series.write_text("ts,value\n" + "".join(f"{60 * k},{1 + k % 4}\n" for k in range(30)))
    openb = tmp_path / "pods.csv"
    openb.write_text(OPENB)
    return grid, [str(series), str(openb)]


@pytest.mark.parametrize(
    "options",
    [
        ["--per-replica", "0.5", "--min-replicas", "3", "--replica-cpu", "1500m"],
        ["--include-unscheduled", "--owners", "pod", "--expected-duration", "none"],
    ],
    ids=["series", "openb"],
)
def test_sweep_reads_a_trace_as_replay_does_with_the_same_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    grid, traces = _import_traces(tmp_path)
    trace = traces[0] if options[0] == "--per-replica" else traces[1]
    replay = ["replay", trace, "--scenario", str(tmp_path / "scenario.yaml"), "--workers", "1"]
    assert autoscaler_main([*replay, "--out", str(tmp_path / "r"), "--json", *options]) == 0
    replayed = json.loads(capsys.readouterr().out)["summary"]

    def swept(out: str, *flags: str) -> dict[str, Any]:
        argv = ["sweep", str(grid), trace, "--out", str(tmp_path / out), "--workers", "1"]
        assert autoscaler_main([*argv, "--quiet", *flags]) == 0
        (row,) = json.loads((tmp_path / out / "sweep.json").read_text())
        return {k: v for k, v in row.items() if k in replayed}

    assert swept("with", *options) == {k: replayed[k] for k in swept("with", *options)}
    assert swept("without") != swept("with", *options)  # the options change the replay


def test_rows_read_with_other_import_options_are_replayed_again(tmp_path: Path) -> None:
    """A row is reused only when its trace is read with the same options; options of the
    other formats do not count."""
    from autoscaler.replay.grid import load_grid
    from autoscaler.replay.trace import IMPORT_DEFAULTS, ImportOptions

    grid, traces = _import_traces(tmp_path)
    out = tmp_path / "out"

    def sweep(options: ImportOptions) -> tuple[int, int]:
        inputs = trace_inputs(traces, "auto", options)
        assert [t.format for t in inputs] == ["series", "openb"]
        outcome = run_sweep(
            load_grid(grid), inputs, out=out, executor=SerialExecutor(), load=load_trace
        )
        return outcome.ran, outcome.reused

    assert sweep(IMPORT_DEFAULTS) == (2, 0)
    assert sweep(IMPORT_DEFAULTS) == (0, 2)
    assert sweep(ImportOptions(min_replicas=3)) == (1, 1)  # the series again, not the list
    assert sweep(ImportOptions(min_replicas=3, expected_duration="none")) == (1, 1)
    assert sweep(ImportOptions(min_replicas=3, expected_duration="none", owners="pod")) == (1, 1)
    same_list = ImportOptions(replica_memory="4Gi", expected_duration="none", owners="pod")
    assert sweep(same_list) == (1, 1)
    assert sweep(IMPORT_DEFAULTS) == (0, 2)  # every row of the first run is still in the log
