"""``extender.entry`` (and ``autoscaler.entry``): Ctrl-C while a command is still importing."""

from __future__ import annotations

import signal
import types

import pytest

import autoscaler.entry
from extender import entry


def test_ctrl_c_while_importing_is_one_line_and_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def import_module(name: str) -> types.ModuleType:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of the command's imports
        raise AssertionError("not reached")

    monkeypatch.setattr(entry, "import_module", import_module)
    with pytest.raises(SystemExit) as stopped:
        entry.extender()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "\ninterrupted\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's is back


def test_ctrl_c_before_run_main_is_one_line_and_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted_main() -> int:
        raise KeyboardInterrupt

    def import_module(name: str) -> types.ModuleType:
        module = types.ModuleType(name)
        module.main = interrupted_main  # type: ignore[attr-defined]
        return module

    monkeypatch.setattr(entry, "import_module", import_module)
    assert entry.extender() == 130
    assert capsys.readouterr().err == "\ninterrupted\n"


@pytest.mark.parametrize(
    ("script", "module"),
    [(entry.extender, "extender.cli"), (autoscaler.entry.autoscaler, "autoscaler.cli")],
    ids=["extender", "autoscaler"],
)
def test_each_script_runs_its_commands_main(
    script: object, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    imported: list[str] = []

    def import_module(name: str) -> types.ModuleType:
        imported.append(name)
        found = types.ModuleType(name)
        found.main = lambda: 7  # type: ignore[attr-defined]
        return found

    monkeypatch.setattr(entry, "import_module", import_module)
    assert script() == 7  # type: ignore[operator]
    assert imported == [module]
