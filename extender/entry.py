"""The console scripts' entry points (``[project.scripts]`` in ``pyproject.toml``).

A command's modules take a while to import (numpy, msgspec, the HTTP stack), and until its
``main`` runs ``extender.commandline.run_main`` a Ctrl-C would show a traceback.  ``run`` first
makes Ctrl-C end the process with one line and exit status 130 (a ``SystemExit``, which Python
never prints as a traceback), imports the command under that handler, puts Python's own back
(the command's ``KeyboardInterrupt`` handling, ``asyncio.run`` and ``run_main`` need it) and
runs the command.  Ctrl-C is left alone when it was ignored (a background job).  What remains
unguarded is Python's own start-up (``site`` and the ``.pth`` files of the environment: an
editable install's finder is one) and loading this small module.
"""

from __future__ import annotations

import signal
import sys
from importlib import import_module
from types import FrameType

__all__ = ["extender", "run"]

INTERRUPTED = 130  # extender.commandline.INTERRUPTED, not imported: it is what takes the time


def _quiet(signum: int, frame: FrameType | None) -> None:
    print("\ninterrupted", file=sys.stderr)
    raise SystemExit(INTERRUPTED)


def _guard() -> None:
    """Quiet Ctrl-C while importing, unless Ctrl-C was ignored or handled by someone else."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _quiet)


def run(module: str) -> int:
    """Import ``module`` and return what its ``main()`` returns; Ctrl-C meanwhile is exit 130."""
    _guard()
    try:
        try:
            main = import_module(module).main
        finally:
            if signal.getsignal(signal.SIGINT) is _quiet:
                signal.signal(signal.SIGINT, signal.default_int_handler)
        code: int = main()
    except KeyboardInterrupt:  # Ctrl-C handled by someone else, or before run_main's handler
        print("\ninterrupted", file=sys.stderr)
        return INTERRUPTED
    return code


def extender() -> int:
    """``spillover-extender``."""
    return run("extender.cli")
