"""The import-linter contracts of pyproject.toml fail on a deliberate violation.

Each case copies both packages and pyproject.toml into a temporary directory, makes one small
change that breaks a rule, and runs ``lint-imports`` there: the contracts named must be the ones
broken, and the report must name the offending import.  The unchanged copy keeps every contract,
so a failure is the change's doing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

CLIENTS = "client libraries only in the named adapters"
EXTENDER_LAYERS = "extender layers: commands > app and adapters > verbs > policy > model"
AUTOSCALER_LAYERS = "autoscaler layers: commands > controller | replay > planner > passes > kernels"
REPLAY_LAYERS = "replay layers: commands > sweep > report > simulator > scheduler > trace"
NO_AUTOSCALER = "extender never imports autoscaler"
NUMBA = "numba only in autoscaler.kernels and autoscaler.forecast_kernels"
CYCLES = "no import cycles"

STATUS = re.compile(r"^(?P<name>.+) (?P<status>KEPT|BROKEN)(?: \(\d+ ignored imports?\))?$", re.M)


def lint_imports(tree: Path) -> tuple[int, dict[str, str], str]:
    """Exit status, every contract's KEPT/BROKEN, and the report, for the packages in ``tree``."""
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    statuses = {m["name"]: m["status"] for m in STATUS.finditer(done.stdout)}
    return done.returncode, statuses, done.stdout


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in ("extender", "autoscaler"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_unchanged_copy_keeps_every_contract(tree: Path) -> None:
    code, statuses, report = lint_imports(tree)
    assert code == 0, report
    assert set(statuses) == {
        CLIENTS,
        EXTENDER_LAYERS,
        AUTOSCALER_LAYERS,
        REPLAY_LAYERS,
        NO_AUTOSCALER,
        NUMBA,
        CYCLES,
    }
    assert set(statuses.values()) == {"KEPT"}


TYPE_CHECKING_CYCLE = """
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .planner import Plan
"""


@pytest.mark.parametrize(
    ("path", "added", "broken", "reported"),
    [
        pytest.param(
            "extender/fresh.py",
            "import starlette\n",
            {CLIENTS},
            "extender.fresh -> starlette",
            id="new-module-is-pure-by-default",
        ),
        pytest.param(
            "autoscaler/replay/fresh.py",
            "from kubernetes_asyncio import client\n",
            {CLIENTS},
            "autoscaler.replay.fresh -> kubernetes_asyncio",
            id="new-replay-module-imports-the-kubernetes-client",
        ),
        pytest.param(
            "autoscaler/planner.py",
            "import ray\n",
            {CLIENTS},
            "autoscaler.planner -> ray",
            id="planner-imports-ray",
        ),
        pytest.param(
            "extender/selectors.py",
            "import extender.ledger\n",
            {EXTENDER_LAYERS},
            "extender.selectors -> extender.ledger",
            id="selectors-import-the-ledger",
        ),
        pytest.param(
            "autoscaler/scaleup.py",
            "from autoscaler import leader\n",
            {AUTOSCALER_LAYERS},
            "autoscaler.scaleup -> autoscaler.leader",
            id="pass-imports-leader-election",
        ),
        pytest.param(
            "autoscaler/replay/scheduler.py",
            "from . import executors\n",
            {REPLAY_LAYERS},
            "autoscaler.replay.scheduler -> autoscaler.replay.executors",
            id="scheduler-imports-executors",
        ),
        pytest.param(
            "extender/model.py",
            "import autoscaler.kernels\n",
            {NO_AUTOSCALER},
            "extender.model -> autoscaler.kernels",
            id="extender-imports-autoscaler",
        ),
        pytest.param(
            "autoscaler/scaledown.py",
            "import numba\n",
            {NUMBA},
            "autoscaler.scaledown -> numba",
            id="numba-outside-kernels",
        ),
        pytest.param(
            "autoscaler/context.py",
            "from autoscaler import planner\n",
            {AUTOSCALER_LAYERS, CYCLES},
            "autoscaler.context -> autoscaler.planner",
            id="pass-imports-planner",
        ),
        pytest.param(
            "autoscaler/state.py",
            TYPE_CHECKING_CYCLE,
            {CYCLES, AUTOSCALER_LAYERS},
            ".state -> .planner",
            id="type-checking-import-cycle",
        ),
    ],
)
def test_a_violation_breaks_its_contract(
    tree: Path, path: str, added: str, broken: set[str], reported: str
) -> None:
    with (tree / path).open("a") as f:
        f.write(added)
    code, statuses, report = lint_imports(tree)
    assert code == 1, report
    assert {name for name, status in statuses.items() if status == "BROKEN"} == broken, report
    assert reported in report
