"""`kubectl` driver and polling for the e2e tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

VIRTUAL_NODE_LABEL = ("type", "virtual-kubelet")


class Kubectl:
    """`kubectl` against one kubeconfig; JSON in, JSON out."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json"))

    def apply(self, *documents: dict[str, Any]) -> None:
        self("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("pods", "-n", namespace, "-l", selector)["items"]
        return [p for p in items if "deletionTimestamp" not in p["metadata"]]

    def virtual_nodes(self) -> set[str]:
        key, value = VIRTUAL_NODE_LABEL
        return {n["metadata"]["name"] for n in self.get("nodes", "-l", f"{key}={value}")["items"]}


def eventually(
    check: Callable[[], Any], *, timeout: float = 180, interval: float = 2, what: str = ""
) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what or check}; last: {last!r}")
