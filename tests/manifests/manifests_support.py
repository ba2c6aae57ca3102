"""Rendering of `manifests/` for the manifest tests, and the code's own ports and paths.

Every kustomization is rendered once per session: with the `kustomize` binary when it is on
PATH, else with `kubectl kustomize`, else with `kustomize_lite` (the tests also check that the
lite renderer agrees with a real one whenever a real one is there).
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kustomize_lite
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"

AUTOSCALER_PORT = (
    8080  # `spillover-autoscaler run --port` default, serving /healthz /readyz /metrics
)
AUTOSCALER_ROUTES = ("/healthz", "/readyz", "/metrics")


def kustomizations() -> list[Path]:
    """Every directory under manifests/ with a Kustomization (Components are rendered inside)."""
    found = []
    for kfile in sorted(MANIFESTS.rglob("kustomization.yaml")):
        if yaml.safe_load(kfile.read_text()).get("kind", "Kustomization") == "Kustomization":
            found.append(kfile.parent)
    return found


def real_renderer() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@cache
def render(directory: Path) -> tuple[dict[str, Any], ...]:
    command = real_renderer()
    if command is None:
        return tuple(kustomize_lite.build(directory))
    out = subprocess.run([*command, str(directory)], capture_output=True, text=True, check=True)
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def find(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def flag(args: list[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` in a container's args."""
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
    return None


def scheduler_config_files() -> list[Path]:
    """Every file in manifests/ holding a KubeSchedulerConfiguration."""
    found = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        if any(d.get("kind") == "KubeSchedulerConfiguration" for d in docs):
            found.append(path)
    return found
