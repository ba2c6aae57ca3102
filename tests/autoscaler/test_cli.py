"""``spillover-autoscaler``: flags and environment, refusing bad configuration, ``run`` end to end."""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from autoscaler_fakes import FakeEss
from kube_emulator import KubeEmulator
from kubernetes_asyncio.client import ApiClient

from autoscaler.cli import Runtime, build_parser, load_groups, main
from autoscaler.nodegroup import Consolidation, MoveCosts, load_config
from extender.commandline import UsageError

GOOD: dict[str, Any] = {
    "groups": [
        {
            "name": "general",
            "instanceType": {"cpu": "2", "memory": "8Gi", "maxPods": 32},
            "min": 0,
            "max": 4,
            "cooldown": "0s",
        }
    ],
    "settings": {"scaleDownDelayAfterAdd": "0s"},
}


def _write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "groups.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _bad(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    target: Any = doc["groups"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("min",), 5, "groups[0].min: 5 is greater than max 4"),
        (("pricePerHour",), -1, "groups[0].pricePerHour: must not be negative"),
        (("instanceType", "memory"), "8Gx", "groups[0].instanceType.memory"),
        (("instanceType", "cpu"), "-2", "groups[0].instanceType.cpu"),
    ],
)
def test_bad_group_config_refuses_to_start_naming_the_field(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    path: tuple[str, ...],
    value: Any,
    message: str,
) -> None:
    groups = _write(tmp_path, _bad(path, value))
    assert main(["run", "--groups", groups, "--provider", "kwok"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1  # one clear line, no traceback


def test_unknown_provider_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = _write(tmp_path, GOOD)
    assert main(["run", "--groups", groups, "--provider", "gce"]) == 2
    assert "--provider: invalid choice: 'gce'" in capsys.readouterr().err
    monkeypatch.setenv("SPILLOVER_AUTOSCALER_PROVIDER", "gce")
    assert main(["run", "--groups", groups]) == 2
    assert "SPILLOVER_AUTOSCALER_PROVIDER: must be one of kwok, ess, simulated" in (
        capsys.readouterr().err
    )


def test_missing_provider_or_groups_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--groups", _write(tmp_path, GOOD)]) == 2
    assert "--provider" in capsys.readouterr().err
    assert main(["run", "--provider", "kwok"]) == 2
    assert "exactly one of --groups FILE or --groups-configmap NAME" in capsys.readouterr().err


def test_every_flag_also_comes_from_the_environment() -> None:
    env = {
        "SPILLOVER_AUTOSCALER_PROVIDER": "ess",
        "SPILLOVER_AUTOSCALER_DRY_RUN": "true",
        "SPILLOVER_AUTOSCALER_LOOP_INTERVAL": "30s",
        "SPILLOVER_AUTOSCALER_PORT": "9090",
        "SPILLOVER_AUTOSCALER_GROUPS_CONFIGMAP": "groups",
        "SPILLOVER_AUTOSCALER_HORIZON": "2h",
    }
    parser = build_parser(env)
    args = parser.parse_args(["run"])
    assert (args.provider, args.dry_run, args.loop_interval, args.port) == ("ess", True, 30.0, 9090)
    assert args.groups_configmap == "groups"
    assert parser.parse_args(["run", "--port", "1"]).port == 1  # the command line wins
    forecast = parser.parse_args(["forecast", "series.csv"])
    assert forecast.horizon == 7200.0


def test_bad_environment_values_name_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="SPILLOVER_AUTOSCALER_DRY_RUN: expected true or false"):
        build_parser({"SPILLOVER_AUTOSCALER_DRY_RUN": "maybe"})
    with pytest.raises(UsageError, match="SPILLOVER_AUTOSCALER_PORT: 'http' is not a valid int"):
        build_parser({"SPILLOVER_AUTOSCALER_PORT": "http"})


def test_subcommands_are_assembled() -> None:
    from autoscaler import forecast_cli

    parser = build_parser({})
    assert parser.parse_args(["forecast", "series.csv"]).func is forecast_cli.run
    assert parser.parse_args(["run"]).command == "run"


def _args(kube_api: KubeEmulator, groups: str, *extra: str) -> Any:
    assert kube_api.kubeconfig_path is not None
    return build_parser({}).parse_args(
        [
            "run",
            "--groups",
            groups,
            "--provider",
            "kwok",
            "--kubeconfig",
            str(kube_api.kubeconfig_path),
            "--loop-interval",
            "1s",
            "--batch-window",
            "0.1s",
            *extra,
        ]
    )


def _pending(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1500m"}}}]},
        "status": {"phase": "Pending"},
    }


async def _until(predicate: Any, *, polls: int = 1200) -> None:
    """Poll until ``predicate``; the poll budget is a safety net, nothing asserts on time."""
    for _ in range(polls):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_run_scales_the_cluster_and_serves_probes(
    kube_api: KubeEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="autoscaler.cli")
    kube_api.create_all([_pending("p-1"), _pending("p-2")])
    runtime = Runtime(_args(kube_api, _write(tmp_path, GOOD)))
    await runtime.start()
    (loaded,) = [r for r in caplog.records if r.getMessage() == "loaded"]
    assert loaded.__dict__["groups"] == len(GOOD["groups"]) > 0
    transport = httpx.ASGITransport(app=runtime.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://autoscaler") as http:
        assert (await http.get("/readyz")).status_code == 503
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.serve(stop, http=False))
        try:
            await _until(lambda: len(kube_api.objects_of("nodes")) == 2)
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
            metrics = (await http.get("/metrics")).text
            assert "spillover_autoscaler_applied_changes_total" in metrics
            assert "spillover_extender_watch_restarts" in metrics
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    lease = kube_api.get("leases", "spillover-autoscaler", "kube-system")
    assert lease["spec"]["holderIdentity"] == ""  # released on shutdown


async def test_run_dry_run_changes_nothing(kube_api: KubeEmulator, tmp_path: Path) -> None:
    kube_api.create(_pending("p-1"))
    runtime = Runtime(_args(kube_api, _write(tmp_path, GOOD), "--dry-run"))
    await runtime.start()
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.serve(stop, http=False))
    try:
        await _until(lambda: runtime.controller.last is not None)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    last = runtime.controller.last
    assert last is not None
    assert last.plan is not None
    assert last.plan.scale_ups
    assert kube_api.objects_of("nodes") == []
    assert kube_api.objects_of("configmaps") == []
    assert kube_api.objects_of("leases") == []


async def test_groups_from_a_configmap_are_checked_too(kube_api: KubeEmulator) -> None:
    bad = _bad(("max",), -1)
    kube_api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "groups", "namespace": "kube-system"},
            "data": {"groups.yaml": yaml.safe_dump(bad)},
        }
    )
    assert kube_api.kubeconfig_path is not None
    args = [
        "run",
        "--groups-configmap",
        "groups",
        "--provider",
        "kwok",
        "--kubeconfig",
        str(kube_api.kubeconfig_path),
    ]
    runtime = Runtime(build_parser({}).parse_args(args))
    with pytest.raises(ValueError, match=r"ConfigMap kube-system/groups: groups\[0\]\.max"):
        await runtime.start()
    await runtime.api.close()


async def test_run_with_the_ess_provider(
    kube_api: KubeEmulator, tmp_path: Path, fake_ess: FakeEss, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials come from the standard ALIBABA_CLOUD_* environment variables."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "test-ak")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "test-sk")
    fake_ess.add_group("asg-general", min_size=0, max_size=4, desired=0)
    kube_api.create_all([_pending("p-1"), _pending("p-2")])
    args = _args(
        kube_api,
        _write(tmp_path, GOOD),
        "--ess-region",
        "cn-hangzhou",
        "--ess-endpoint",
        f"127.0.0.1:{fake_ess.port}",
        "--ess-protocol",
        "http",
        "--ess-scaling-groups",
        "general=asg-general",
    )
    args.provider = "ess"
    runtime = Runtime(args)
    await runtime.start()
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.serve(stop, http=False))
    try:
        await _until(lambda: fake_ess.groups["asg-general"].desired == 2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert "ModifyScalingGroup" in fake_ess.actions()


def test_ess_needs_a_region_and_known_groups(tmp_path: Path) -> None:
    groups = _write(tmp_path, GOOD)
    args = build_parser({}).parse_args(
        ["run", "--groups", groups, "--provider", "ess", "--ess-scaling-groups", "gpu=asg-1"]
    )
    runtime = Runtime(args)
    runtime.config = load_config(groups)
    with pytest.raises(UsageError, match="--ess-region is required"):
        runtime._provider(runtime.config)
    args.ess_region = "cn-hangzhou"
    with pytest.raises(UsageError, match="'gpu' is not a configured node group"):
        runtime._provider(runtime.config)


def test_every_subcommand_is_mounted_and_reads_its_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from autoscaler import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"run", "forecast", "plan", "record", "replay", "sweep"}
    monkeypatch.setenv("SPILLOVER_AUTOSCALER_OUT", "env.jsonl")
    args = cli.build_parser().parse_args(["record"])
    assert args.out == "env.jsonl"
    assert args.func is not None


@pytest.mark.parametrize(
    ("flag", "text", "seconds"),
    [
        ("--batch-window", "0s", 0.0),
        ("--batch-window", "200ms", 0.2),
        ("--batch-idle", "50ms", 0.05),
        ("--batch-window", "1m30s", 90.0),
        ("--loop-interval", "10s", 10.0),
    ],
)
def test_durations_are_written_as_in_the_groups_yaml(flag: str, text: str, seconds: float) -> None:
    args = build_parser({}).parse_args(["run", flag, text])
    assert getattr(args, flag[2:].replace("-", "_")) == seconds


@pytest.mark.parametrize(
    ("flag", "text", "message"),
    [
        ("--batch-window", "-1s", "expected a duration like 300s or 10m, got '-1s'"),
        ("--batch-idle", "soon", "expected a duration like 300s or 10m, got 'soon'"),
        ("--loop-interval", "0s", "must be longer than 0s, got '0s'"),
    ],
)
def test_bad_durations_are_refused_in_one_line(
    flag: str, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser({}).parse_args(["run", f"{flag}={text}"])
    assert exit_.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err


async def test_without_the_policy_crd_it_is_ready_warns_once_and_scales(
    kube_api: KubeEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the API server does not serve spillover.dev/v1alpha1 resourcepolicies: 404, as without the CRD
    kube_api.fail(r"/resourcepolicies", status=404, times=10_000)
    kube_api.create(_pending("p-1"))
    runtime = Runtime(_args(kube_api, _write(tmp_path, GOOD)))
    await runtime.start()
    transport = httpx.ASGITransport(app=runtime.app())
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.serve(stop, http=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://autoscaler") as http:
            await _until(lambda: len(kube_api.objects_of("nodes")) == 1)
            assert (await http.get("/readyz")).text == "ok"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    warnings = [r for r in caplog.records if "CRD not installed" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"


async def test_a_pod_created_after_start_wakes_the_planner_before_the_tick(
    kube_api: KubeEmulator, tmp_path: Path
) -> None:
    # a one-hour tick: only the watch callback can start the pass that adds the node
    args = _args(kube_api, _write(tmp_path, GOOD), "--loop-interval", "1h")
    runtime = Runtime(args)
    await runtime.start()
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.serve(stop, http=False))
    try:
        await _until(lambda: runtime.controller.last is not None)
        assert kube_api.objects_of("nodes") == []
        kube_api.create(_pending("p-late"))
        await _until(lambda: len(kube_api.objects_of("nodes")) == 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize(
    ("yaml_settings", "flags", "costs", "merged"),
    [
        ({}, [], MoveCosts(restart=0.1, per_minute=10), Consolidation(30.0, True)),
        (
            {},
            ["--rebalance-restart-cost", "0.3", "--rebalance-per-minute", "2"],
            MoveCosts(0.3, 2),
            Consolidation(30.0, True),
        ),
        ({}, ["--rebalance-per-minute", "0", "--no-consolidation"], None, None),
        # the groups YAML's keys (the replay's scenario reads the same ones) ...
        (
            {
                "rebalance": {"restartCost": 2.5, "perMinute": 3},
                "consolidation": {"emptyAfter": "2m", "replace": False},
            },
            [],
            MoveCosts(2.5, 3),
            Consolidation(120.0, False),
        ),
        # ... and a flag overrides only the key it names
        (
            {"rebalance": {"restartCost": 2.5, "perMinute": 3}, "consolidation": False},
            ["--rebalance-per-minute", "7", "--consolidate-empty-after", "10s"],
            MoveCosts(2.5, 7),
            Consolidation(10.0, True),
        ),
        ({"rebalance": False, "consolidation": {"enabled": False}}, [], None, None),
    ],
)
async def test_rebalance_and_consolidation_settings_reach_the_controller(
    tmp_path: Path,
    yaml_settings: dict[str, Any],
    flags: list[str],
    costs: MoveCosts | None,
    merged: Consolidation | None,
) -> None:
    doc = copy.deepcopy(GOOD)
    doc["settings"].update(yaml_settings)
    groups = _write(tmp_path, doc)
    args = build_parser({}).parse_args(
        ["run", "--groups", groups, "--provider", "simulated", "--no-leader-election", *flags]
    )
    async with ApiClient() as api:  # assembled after connecting, as in start()
        runtime = Runtime(args, _api=api)
        controller = runtime._controller(load_groups(args, None))
    assert controller.config.settings.rebalance == costs
    assert controller.config.settings.consolidation == merged
