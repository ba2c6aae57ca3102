"""Every KubeSchedulerConfiguration in manifests/: accepted by kube-scheduler, and pointing at
the extender's real port and paths.

Without a kube-scheduler binary the files are checked structurally against the
`kubescheduler.config.k8s.io/v1` Go types (field names are case-sensitive there: a misspelled
`nodeCachecapable` would be dropped silently by the strict-less decoder of old releases).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from manifests_support import MANIFESTS, REPO, scheduler_config_files

from extender.app import ROUTES
from extender.settings import DEFAULT_PORT

FILES = scheduler_config_files()
IDS = [str(p.relative_to(MANIFESTS)) for p in FILES]

TOP_LEVEL = {
    "apiVersion", "kind", "parallelism", "leaderElection", "clientConnection",
    "enableProfiling", "enableContentionProfiling", "percentageOfNodesToScore",
    "podInitialBackoffSeconds", "podMaxBackoffSeconds", "profiles", "extenders",
    "delayCacheUntilActive",
}  # fmt: skip
LEADER_ELECTION = {
    "leaderElect", "leaseDuration", "renewDeadline", "retryPeriod", "resourceLock",
    "resourceName", "resourceNamespace",
}  # fmt: skip
CLIENT_CONNECTION = {"kubeconfig", "acceptContentTypes", "contentType", "qps", "burst"}
PROFILE = {"schedulerName", "percentageOfNodesToScore", "plugins", "pluginConfig"}
EXTENDER = {
    "urlPrefix", "filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb", "weight",
    "enableHTTPS", "tlsConfig", "httpTimeout", "nodeCacheCapable", "managedResources",
    "ignorable",
}  # fmt: skip
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def _load(path: Path) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return doc  # type: ignore[no-any-return]


def test_all_registration_modes_have_a_config() -> None:
    names = {str(p.relative_to(MANIFESTS)) for p in FILES}
    assert names == {
        "kind/scheduler-config.yaml",
        "overlays/default-scheduler/scheduler-config.yaml",
        "overlays/second-scheduler/scheduler-config.yaml",
    }


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_known_fields_only(path: Path) -> None:
    config = _load(path)
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert set(config) <= TOP_LEVEL, set(config) - TOP_LEVEL
    assert set(config.get("leaderElection", {})) <= LEADER_ELECTION
    assert set(config.get("clientConnection", {})) <= CLIENT_CONNECTION
    for profile in config.get("profiles", []):
        assert set(profile) <= PROFILE, set(profile) - PROFILE
    for extender in config["extenders"]:
        assert set(extender) <= EXTENDER, set(extender) - EXTENDER


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_extender_settings_are_valid(path: Path) -> None:
    config = _load(path)
    assert config["percentageOfNodesToScore"] == 100
    assert sum(1 for e in config["extenders"] if e.get("bindVerb")) <= 1
    for extender in config["extenders"]:
        assert isinstance(extender["weight"], int)
        assert extender["weight"] > 0  # kube-scheduler requires it with a prioritizeVerb
        assert DURATION.match(str(extender["httpTimeout"]))
        assert isinstance(extender["ignorable"], bool)
        assert extender["nodeCacheCapable"] is True
        url = urlsplit(extender["urlPrefix"])
        assert url.scheme == ("https" if extender.get("enableHTTPS") else "http")
        assert {extender["filterVerb"], extender["prioritizeVerb"], extender["preemptVerb"]} == {
            "filter",
            "prioritize",
            "preempt",
        }


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_extender_points_at_the_code(path: Path) -> None:
    for extender in _load(path)["extenders"]:
        url = urlsplit(extender["urlPrefix"])
        assert url.port == DEFAULT_PORT
        for verb_key in ("filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb"):
            if verb_key in extender:
                # kube-scheduler POSTs to urlPrefix + "/" + verb.
                assert f"{url.path.rstrip('/')}/{extender[verb_key]}" in ROUTES


def test_second_scheduler_is_separate() -> None:
    config = _load(MANIFESTS / "overlays/second-scheduler/scheduler-config.yaml")
    assert [p["schedulerName"] for p in config["profiles"]] == ["spillover-scheduler"]
    assert config["leaderElection"]["resourceName"] == "spillover-scheduler"
    assert config["leaderElection"]["leaderElect"] is True


def test_kind_cluster_mounts_and_uses_the_config() -> None:
    cluster = yaml.safe_load((MANIFESTS / "kind/cluster.yaml").read_text())
    assert cluster["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (control_plane,) = [n for n in cluster["nodes"] if n["role"] == "control-plane"]
    (mount,) = control_plane["extraMounts"]
    assert (REPO / mount["hostPath"]).resolve() == MANIFESTS / "kind/scheduler-config.yaml"
    patches = [yaml.safe_load(p) for p in cluster["kubeadmConfigPatches"]]
    assert {p["apiVersion"] for p in patches} == {
        "kubeadm.k8s.io/v1beta3",
        "kubeadm.k8s.io/v1beta4",
    }
    for patch in patches:
        scheduler = patch["scheduler"]
        args = scheduler["extraArgs"]
        config = (
            args["config"]
            if isinstance(args, dict)
            else {a["name"]: a["value"] for a in args}["config"]
        )
        assert config == mount["containerPath"]
        assert any(v["mountPath"] == config for v in scheduler["extraVolumes"])


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_accepted_by_kube_scheduler(path: Path, tmp_path: Path) -> None:
    binary = shutil.which("kube-scheduler")
    if binary is None:
        pytest.skip(
            "no kube-scheduler binary on PATH (none on PyPI or Debian); checked structurally"
        )
    config = _load(path)
    config.pop("clientConnection", None)  # the node's kubeconfig does not exist here
    source = tmp_path / "config.yaml"
    source.write_text(yaml.safe_dump(config))
    out = tmp_path / "out.yaml"
    result = subprocess.run(
        [binary, f"--config={source}", f"--write-config-to={out}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load(out.read_text())
    assert written["extenders"][0]["urlPrefix"] == config["extenders"][0]["urlPrefix"]


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_profile_bin_packs_as_the_replay_models_it(path: Path) -> None:
    # The replay's Spillover variant runs autoscaler.replay.scoring.BIN_PACKING: the profile
    # shipped here must be exactly that (strategy, resources and weights, BalancedAllocation off).
    from autoscaler.replay.scoring import BIN_PACKING, from_profile

    for profile in _load(path)["profiles"]:
        (fit,) = profile["pluginConfig"]
        assert set(fit) == {"name", "args"}
        assert set(fit["args"]) == {"scoringStrategy"}
        assert set(fit["args"]["scoringStrategy"]) == {"type", "resources"}
        assert from_profile(profile) == BIN_PACKING
    # a profile without plugin settings is the stock one
    from autoscaler.replay.scoring import STOCK

    assert from_profile({"schedulerName": "default-scheduler"}) == STOCK
