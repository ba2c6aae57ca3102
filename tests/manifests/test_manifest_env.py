"""Every environment variable a manifest sets is one the program in that container reads.

A variable nothing reads is a setting that silently does nothing (issue 12: the kind overlay set
``SPILLOVER_SCALE_DOWN_UNNEEDED_TIME``, which no code reads, so the e2e scale-down waited the
default 10 minutes).  A variable counts as read when setting it to the manifest's value changes
what the command line parser of that program produces, when the code names it
(``autoscaler.cli.OTHER_ENVIRONMENT``), when the container's own args use it (``$(NAME)``), or
when a library the program uses reads it (``LIBRARIES``, each with the reason).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from manifests_support import kustomizations, pod_spec, render

from autoscaler import cli as autoscaler_cli
from extender import cli as extender_cli

LIBRARIES = {"NUMBA_CACHE_DIR": "numba: where compiled kernels are cached (cache=True)"}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def _containers() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for directory in kustomizations():
        for obj in render(directory):
            if obj["kind"] not in WORKLOADS:
                continue
            for c in pod_spec(obj).get("containers", []):
                where = f"{directory.name}: {obj['kind']}/{obj['metadata']['name']}/{c['name']}"
                found.append((where, c))
    return found


def _changes_parse(command: str, args: list[str], name: str, value: str) -> bool:
    if command == "spillover-autoscaler":
        parse = autoscaler_cli.build_parser

        def parsed(environ: dict[str, str]) -> dict[str, Any]:
            return {k: v for k, v in vars(parse(environ).parse_args(args)).items() if k != "func"}

        return parsed({name: value}) != parsed({})
    if command == "spillover-extender":
        argv = args[1:] if args[:1] == ["serve"] else args
        before = extender_cli.parse_settings(argv, environ={})
        return extender_cli.parse_settings(argv, environ={name: value}) != before
    return False


def _read(container: dict[str, Any], name: str, value: str) -> bool:
    args = [str(a) for a in container.get("args", [])]
    command = (container.get("command") or [""])[0]
    if any(f"$({name})" in a for a in [*args, *container.get("command", [])]):
        return True
    if name in LIBRARIES:
        return True
    if command == "spillover-autoscaler" and name in autoscaler_cli.OTHER_ENVIRONMENT:
        return True
    return _changes_parse(command, args, name, value)


CONTAINERS = _containers()


@pytest.mark.parametrize(("where", "container"), CONTAINERS, ids=[w for w, _ in CONTAINERS])
def test_every_environment_variable_is_read(where: str, container: dict[str, Any]) -> None:
    unread = [
        e["name"]
        for e in container.get("env", []) or []
        if not _read(container, e["name"], str(e.get("value", "")))
    ]
    assert unread == [], f"{where} sets variables nothing reads: {unread}"


def test_the_check_catches_an_unread_variable() -> None:
    container = {"command": ["spillover-autoscaler"], "args": ["run", "--provider=kwok"]}
    assert not _read(container, "SPILLOVER_SCALE_DOWN_UNNEEDED_TIME", "30s")
    assert _read(container, "SPILLOVER_AUTOSCALER_BATCH_WINDOW", "200ms")
    assert _read(container, "POD_NAME", "")


def test_containers_were_found() -> None:
    names = {re.sub(r".*/", "", w) for w, _ in CONTAINERS}
    assert {"autoscaler"} <= names
