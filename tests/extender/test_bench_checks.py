"""The bench client's answer checks (``bench/extender.py``, ``_Checks``): compact answers pass,
wrong answers still fail."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench/extender.py"
OFFER = b'["a","b","v"]'


@functools.cache
def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_extender", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # msgspec resolves the Structs' annotations through it
    spec.loader.exec_module(module)
    return module


def _checks() -> Any:
    return _bench()._Checks([OFFER], "v")


def _answer(names: list[str] | None, failed: Any = None, refused: Any = None) -> bytearray:
    return bytearray(
        json.dumps(
            {
                "Nodes": None,
                "NodeNames": names,
                "FailedNodes": failed,
                "FailedAndUnresolvableNodes": refused,
                "Error": "",
            },
            separators=(",", ":"),
        ).encode()
    )


GOOD = [
    (0, _answer(["a", "b"])),  # compact: v is refused by its absence
    (0, _answer(["v"])),
    (0, _answer(["a", "b"], refused={"v": "policy"})),  # --refusals always
    (0, _answer(["a", "b"], failed={"v": "unknown"})),
    (1, _answer(["a", "b", "v"])),  # unmanaged: everything back
]
BAD = [
    (0, _answer(["a"])),  # not one unit
    (0, _answer(["a", "b", "v"])),  # both units
    (0, _answer(["a", "b", "x"])),  # a name not offered
    (0, _answer([])),  # nothing accepted and no reasons
    (0, _answer([], refused={"a": "x", "b": "x", "v": "x"})),  # the bench always has a unit
    (0, _answer(["a", "b"], refused={})),  # a map sent, but v in none
    (0, _answer(["a", "b"], refused={"a": "x", "v": "x"})),  # accepted and refused
    (1, _answer(["a", "b"])),  # unmanaged but a node kept back
]


@pytest.mark.parametrize(("workload", "answer"), GOOD)
def test_right_answers_pass(workload: int, answer: bytearray) -> None:
    accepted = _checks().filter(workload, OFFER, answer, 0, len(answer))
    assert json.loads(accepted) == json.loads(answer)["NodeNames"]


@pytest.mark.parametrize(("workload", "answer"), BAD)
def test_wrong_answers_fail(workload: int, answer: bytearray) -> None:
    with pytest.raises(RuntimeError, match=f"filter, workload {workload}"):
        _checks().filter(workload, OFFER, answer, 0, len(answer))


def test_the_go_bench_skips_with_its_reason_without_go() -> None:
    """``bench/extender_go.py`` is optional: no ``go`` on the PATH, one line and exit 0."""
    script = BENCH.parent / "extender_go.py"
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # python, and no go
    done = subprocess.run(
        [sys.executable, str(script), "--no-append"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "skipped: no `go` on the PATH" in done.stdout
