"""Both command-line tools in front of a person: bad input is one line and exit status 2.

Every case named in issue 11 has a test here: a missing kubeconfig, ``--per-replica 0``, a
cluster file that is not one, ``| head``, Ctrl-C; plus ``--help``, ``--version``, and a fuzz of
argv lists and small garbage files over every subcommand of both commands.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import ROOT, run_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler import cli as autoscaler_cli
from autoscaler.replay import report
from extender import cli as extender_cli
from extender import logs, server
from extender.commandline import Parser
from extender.logs import JsonFormatter
from extender.metrics import Metrics

GROUPS = ROOT / "autoscaler/data/default-groups.yaml"
CLUSTER = ROOT / "extender/data/demo-cluster.yaml"
POLICIES = ROOT / "extender/data/demo-policies.yaml"
SERIES = ROOT / "autoscaler/replay/data/crane-series-daily.csv"


def _run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """The command line in a fresh interpreter; (exit status, stderr)."""
    result = run_python("-c", _ENTRY, *argv, env=env)
    return result.returncode, result.stderr


_ENTRY = (
    "import sys; from autoscaler.cli import main as a; from extender.cli import main as e; "
    "cmd = sys.argv.pop(1); sys.argv[0] = cmd; sys.exit((a if cmd == 'autoscaler' else e)())"
)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return tmp_path


# -- the named cases --------------------------------------------------------------------------
def test_run_without_a_kubeconfig_is_one_line(
    no_kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = autoscaler_cli.main(["run", "--provider", "kwok", "--groups", str(GROUPS)])
    assert code == 2
    assert _one_line(capsys.readouterr().err).startswith("error: --kubeconfig: none given")


def test_run_with_an_empty_kubeconfig_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "kubeconfig"
    empty.write_text("")
    argv = ["run", "--provider", "kwok", "--groups", str(GROUPS), "--kubeconfig", str(empty)]
    assert autoscaler_cli.main(argv) == 2
    assert _one_line(capsys.readouterr().err).startswith(f"{empty}: ")


def test_record_without_a_kubeconfig_is_one_line(
    no_kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = no_kubeconfig / "trace.jsonl"
    assert autoscaler_cli.main(["record", "--out", str(out), "--duration", "1"]) == 2
    assert _one_line(capsys.readouterr().err).startswith("error: --kubeconfig: none given")
    assert not out.exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--per-replica", "0", "error: argument --per-replica: must be more than 0, not '0'"),
        ("--per-replica", "nan", "error: argument --per-replica: must be more than 0"),
        ("--min-replicas", "-1", "error: argument --min-replicas: must be 0 or more"),
        ("--workers", "-2", "error: argument --workers: must be 0 or more"),
    ],
    ids=["per-replica-0", "per-replica-nan", "min-replicas", "workers"],
)
def test_replay_refuses_bad_numbers(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = autoscaler_cli.main(["replay", str(SERIES), "--format", "series", f"{flag}={value}"])
    assert code == 2
    assert _one_line(capsys.readouterr().err).startswith(message)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("nodes: 5\n", "nodes: expected a list of objects"),
        ("", "no Node, Pod, ResourcePolicy or StatefulSet objects"),
        (GROUPS.read_text(), ": not a cluster file"),
        ("a: [\n", "invalid YAML"),
    ],
    ids=["nodes-5", "empty", "groups-file", "bad-yaml"],
)
def test_plan_refuses_a_file_that_is_not_a_cluster(
    tmp_path: Path, content: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(content)
    assert autoscaler_cli.main(["plan", "--cluster", str(cluster), "--groups", str(GROUPS)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"{cluster}")
    assert problem in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["forecast", "{tmp}"], "{tmp}: Is a directory"),
        (
            ["plan", "--cluster", "{cluster}", "--groups", str(GROUPS), "--unneeded", "{garbage}"],
            "{garbage}:1: invalid JSON: Expecting value",
        ),
        (
            ["plan", "--cluster", "{cluster}", "--groups", str(GROUPS), "--unneeded", "{tmp}/no"],
            "{tmp}/no: No such file or directory",
        ),
        (
            ["replay", "{series}", "--format", "series", "--out", "{garbage}", "--workers", "1"],
            "{garbage}: File exists",
        ),
        (
            ["replay", "{series}", "--format", "series", "--replica-cpu", "abc"],
            "error: --replica-*.cpu: 'abc' is not a Kubernetes quantity",
        ),
        (
            ["replay", "{series}", "--format", "series", "--scenario", "{binary}"],
            "{binary}: not UTF-8 text",
        ),
        (["plan", "--cluster", "{cluster}", "--groups", "{binary}"], "{binary}: not UTF-8 text"),
    ],
    ids=[
        "forecast-dir",
        "unneeded-json",
        "unneeded-missing",
        "out-is-a-file",
        "replica-cpu",
        "binary-scenario",
        "binary-groups",
    ],
)
def test_files_that_cannot_be_read_or_written_are_one_line(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    names = {
        "tmp": str(tmp_path),
        "garbage": str(tmp_path / "garbage"),
        "binary": str(tmp_path / "binary"),
        "series": str(tmp_path / "s.csv"),
        "cluster": str(ROOT / "autoscaler/data/example-cluster.yaml"),
    }
    (tmp_path / "garbage").write_text("x")
    (tmp_path / "binary").write_bytes(b"\x00\xff\xfe")
    (tmp_path / "s.csv").write_text("ts,value\n0,2\n60,3\n")
    argv = [a.format(**names) for a in argv]
    assert autoscaler_cli.main(argv) == 2
    assert _one_line(capsys.readouterr().err).startswith(message.format(**names))


def test_a_replay_in_which_spillover_costs_nothing_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    series = tmp_path / "s.csv"
    series.write_text("ts,value\n0,2\n")  # one sample: a replay 0 s long, which costs nothing
    out = tmp_path / "out"
    argv = ["replay", str(series), "--format", "series", "--out", str(out), "--workers", "1"]
    assert autoscaler_cli.main([*argv, "--quiet"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert (out / "summary.md").is_file()
    assert json.loads((out / "summary.json").read_text())["summary"]["cost"] == 0


def test_forecast_into_head_ends_quietly(tmp_path: Path) -> None:
    command = (
        f"{sys.executable} -m autoscaler.forecast_cli {SERIES} --horizon 2d | head -2; "
        "exit ${PIPESTATUS[0]}"
    )
    result = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == ""


def test_ctrl_c_during_a_replay_exits_130_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "compare", interrupted)
    argv = ["replay", str(SERIES), "--format", "series", "--out", str(tmp_path / "o"), "--quiet"]
    assert autoscaler_cli.main([*argv, "--workers", "1"]) == 130
    assert _one_line(capsys.readouterr().err) == "interrupted"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--cluster", str(GROUPS)], "not a cluster file"),
        (["--cluster", "{empty}"], "no Node, Pod, ResourcePolicy or StatefulSet objects"),
        (["--cluster", str(CLUSTER), "--policies", "{empty}"], "no ResourcePolicy objects"),
        (["--policies", "{empty}"], "no ResourcePolicy objects"),
        (["--cluster", str(CLUSTER), "--port", "0"], "error: --port: 0 is not a TCP port"),
        (["--port", "x"], "error: argument --port: invalid int value: 'x'"),
    ],
    ids=["groups-file", "empty-cluster", "empty-policies", "empty-policies-live", "port", "int"],
)
def test_serve_refuses_wrong_and_empty_files(
    tmp_path: Path, argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    argv = [a.replace("{empty}", str(empty)) for a in argv]
    assert extender_cli.main(["serve", *argv]) == 2
    assert problem in _one_line(capsys.readouterr().err)


def test_a_bad_environment_variable_is_one_line() -> None:
    code, err = _run("autoscaler", "plan", "--help", env={"SPILLOVER_AUTOSCALER_JSON": "maybe"})
    assert code == 2
    assert _one_line(err) == "error: SPILLOVER_AUTOSCALER_JSON: expected true or false, not 'maybe'"
    code, err = _run("extender", "serve", env={"SPILLOVER_PORT": "eighty"})
    assert code == 2
    assert _one_line(err) == "error: SPILLOVER_PORT: 'eighty' is not a valid int"


# -- what a good start says -------------------------------------------------------------------
def test_static_mode_listens_on_loopback_and_logs_what_it_loaded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = extender_cli.parse_settings(
        ["serve", "--cluster", str(CLUSTER), "--policies", str(POLICIES)], {}
    )
    assert settings.host == "127.0.0.1"
    assert extender_cli.parse_settings(["serve"], {}).host == "0.0.0.0"
    assert extender_cli.parse_settings(["serve", "--host", "::"], {}).host == "::"
    with caplog.at_level(logging.INFO, logger="extender.cli"):
        state, *_ = extender_cli.build(settings, Metrics())
    (record,) = [r for r in caplog.records if r.getMessage() == "loaded"]
    assert record.__dict__["nodes"] == len(state.nodes) > 0
    assert record.__dict__["pods"] == len(state.pods)
    assert record.__dict__["policies"] == len(state.policies) > 0


def test_json_logs_carry_no_colour_field() -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "Started", (), None)
    record.color_message = "\x1b[32mStarted\x1b[0m"
    assert "color_message" not in JsonFormatter().format(record)
    assert "\x1b" not in JsonFormatter().format(record)


# -- help and version -------------------------------------------------------------------------
def _subcommands(parser: Parser) -> Iterator[tuple[str, Parser]]:
    yield from parser.subcommands.items()


@pytest.mark.parametrize("tool", ["autoscaler", "extender"])
def test_version(tool: str) -> None:
    result = run_python("-c", _ENTRY, tool, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"spillover-{tool} ")
    assert result.stdout.split()[1][0].isdigit()


def _parsers() -> list[tuple[str, Parser, str]]:
    found = []
    for prefix, parser in (
        ("SPILLOVER_AUTOSCALER_", autoscaler_cli.build_parser({})),
        ("SPILLOVER_", extender_cli._parser({})),
    ):
        for name, child in _subcommands(parser):
            found.append((f"{parser.prog} {name}", child, prefix))
    return found


@pytest.mark.parametrize(
    ("name", "parser", "prefix"), _parsers(), ids=[n for n, _, _ in _parsers()]
)
def test_help_shows_each_flag_with_its_default_and_variable(
    name: str, parser: Parser, prefix: str
) -> None:
    text = "".join(parser.format_help().split())  # argparse wraps lines, even at hyphens
    assert "``" not in text, name
    assert ":func:" not in text, name
    assert parser.flags
    for action in parser.flags:
        if action.dest == "help" or action.help == argparse.SUPPRESS:
            continue
        variable = prefix + action.dest.upper()
        assert f"env{variable})" in text, (name, action.dest)
        if action.required:
            assert f"required;env{variable})" in text, (name, action.dest)
        elif action.nargs != 0 and action.default not in (None, ""):
            expected = "".join(f"default: {action.default!r}; env {variable}".split())
            assert expected in text or "default" in str(action.help), (name, action.dest)


def test_the_extender_demo_has_help() -> None:
    result = run_python("-m", "extender.demo", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m extender.demo")
    assert "``" not in result.stdout


# -- fuzz -------------------------------------------------------------------------------------
GARBAGE = [
    b"",
    b"nodes: 5\n",
    b"a: [\n",
    b"\x00\xff\xfe",
    b"- 1\n- 2\n",
    b"groups: 5\n",
    b"groups:\n- name: x\n  min: -1\n",
    b"kind: Pod\n",
    b"items: [1]\n",
    b"ts,value\n1,x\n",
    b"ts,value\n",
    b'{"t": 0}\n',
    b"axes: {}\n",
    b"null\n",
]
VALUES = ["0", "-1", "nan", "inf", "1e999", "", "x", "1h30m", "2d", "--", "-", "=", "%s"]


def _flags(parser: Parser) -> list[str]:
    return [option for action in parser.flags for option in action.option_strings]


AUTOSCALER = autoscaler_cli.build_parser({})
EXTENDER = extender_cli._parser({})
COMMANDS = [("autoscaler", name, _flags(child)) for name, child in AUTOSCALER.subcommands.items()]
COMMANDS += [("extender", name, _flags(child)) for name, child in EXTENDER.subcommands.items()]


@pytest.fixture(scope="module")
def garbage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("garbage")
    for i, content in enumerate(GARBAGE):
        (directory / f"g{i}.yaml").write_bytes(content)
    return directory


@st.composite
def _argv(draw: st.DrawFn, directory: Path) -> tuple[str, list[str]]:
    tool, command, flags = draw(st.sampled_from(COMMANDS))
    files = [str(directory / f"g{i}.yaml") for i in range(len(GARBAGE))] + [str(directory)]
    words = st.one_of(
        st.sampled_from(flags or ["--x"]),
        st.sampled_from(files),
        st.sampled_from(VALUES),
        st.text(max_size=6),
    )
    return tool, [command, *draw(st.lists(words, max_size=6))]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_fuzzed_command_lines_exit_0_or_2_without_a_traceback(
    data: st.DataObject,
    garbage_dir: Path,
    no_kubeconfig: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(no_kubeconfig)  # outputs of a run that gets far land here
    monkeypatch.setattr(server, "run", lambda app, settings: None)  # a valid serve returns
    monkeypatch.setattr(extender_cli, "configure", lambda level: None)  # keep pytest's logging
    monkeypatch.setattr(logs, "configure", lambda level: None)
    monkeypatch.setattr(gc, "freeze", lambda: None)
    tool, argv = data.draw(_argv(garbage_dir))
    main = autoscaler_cli.main if tool == "autoscaler" else extender_cli.main
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (0, 2), (argv, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        _one_line(err)


@pytest.mark.parametrize("now", ["nan", "inf", "-5"])
def test_plan_refuses_a_time_that_is_not_one(now: str, capsys: pytest.CaptureFixture[str]) -> None:
    cluster = str(ROOT / "autoscaler/data/example-cluster.yaml")
    argv = ["plan", "--cluster", cluster, "--groups", str(GROUPS), f"--now={now}"]
    assert autoscaler_cli.main(argv) == 2
    assert _one_line(capsys.readouterr().err).startswith(
        f"error: argument --now: must be 0 or more{'' if now == '-5' else ' and finite'}, not '{now}'"
    )
