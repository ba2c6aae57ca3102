"""What both command-line tools share: flags with environment variables, errors, exit codes.

``Parser`` is an ``argparse.ArgumentParser`` whose usage errors are one line (``error: --flag:
problem``, exit status 2) and whose sub-parsers are ``Parser`` too.  ``with_environment`` gives
every flag of a parser and of its sub-parsers a default from ``PREFIX<FLAG>`` (``--dry-run`` is
``PREFIX DRY_RUN``; the command line wins) and writes the default and the variable into the
flag's ``--help``.  ``run_main`` runs a command so that no traceback reaches a user: bad input
(``UsageError``) prints one line and exits 2, Ctrl-C exits 130 with one line, and a closed
stdout (``| head``) ends the command quietly.

Messages name the file and line (``FILE:LINE: FIELD: problem``), the file (``FILE: problem``) or
the flag (``error: --flag: problem``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn

__all__ = [
    "INTERRUPTED",
    "USAGE",
    "Parser",
    "UsageError",
    "at_least",
    "fail",
    "file_problem",
    "one_line",
    "package_version",
    "plain",
    "run_main",
    "with_environment",
]

USAGE = 2
INTERRUPTED = 130
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class UsageError(ValueError):
    """Input the command cannot work with; the message names the file, line, flag or variable."""


def one_line(message: object) -> str:
    """The message on one line: a multi-line error text joined with ``; ``."""
    return "; ".join(part.strip() for part in str(message).splitlines() if part.strip())


def file_problem(path: object, err: BaseException) -> str:
    """``FILE:LINE: problem`` for a YAML syntax error, ``FILE: problem`` for anything else."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if mark is not None and problem:
        return f"{path}:{mark.line + 1}: invalid YAML: {problem}"
    if isinstance(err, OSError) and err.strerror:
        return f"{path}: {err.strerror}"
    if isinstance(err, UnicodeDecodeError):
        return f"{path}: not UTF-8 text (byte {err.start}: {err.reason})"
    return f"{path}: {one_line(err)}"


def fail(message: object) -> int:
    """Print ``message`` as one line on stderr; the exit status for bad input."""
    print(one_line(message), file=sys.stderr)
    return USAGE


def plain(text: str | None) -> str | None:
    """A docstring as help text: without reStructuredText markup (``x``, :func:`x`)."""
    if text is None:
        return None
    return re.sub(r":\w+:`([^`]*)`", r"\1", text).replace("``", "")


def at_least(
    kind: Callable[[str], Any], low: float, *, above: bool = False
) -> Callable[[str], Any]:
    """An ``argparse`` type: ``kind(text)``, refused below ``low`` (or at it, with ``above``) and
    when not finite (``nan``, ``inf``)."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a valid {getattr(kind, '__name__', 'value')}: {text!r}"
            ) from None
        finite = math.isfinite(value)
        if not finite or value < low or (above and value == low):
            bound = f"more than {low:g}" if above else f"{low:g} or more"
            also = "" if finite else " and finite"
            raise argparse.ArgumentTypeError(f"must be {bound}{also}, not {text!r}")
        return value

    convert.__name__ = getattr(kind, "__name__", "value")
    return convert


def package_version() -> str:
    try:
        return version("spillover")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: ``error: PROBLEM (see --help)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        self.flags: list[argparse.Action] = []
        self.subcommands: dict[str, Parser] = {}
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs: Any) -> Any:
        subparsers = super().add_subparsers(**kwargs)
        add_parser = subparsers.add_parser

        def add(name: str, **options: Any) -> Parser:
            child: Parser = add_parser(name, **options)
            self.subcommands[name] = child
            return child

        subparsers.add_parser = add  # type: ignore[method-assign]
        return subparsers

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.option_strings:
            self.flags.append(action)
        return action

    def add_version(self) -> None:
        self.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"error: {one_line(message)} (see {self.prog} --help)\n")


def _flag_env(prefix: str, action: argparse.Action) -> str:
    return prefix + action.dest.upper()


def _from_environment(action: argparse.Action, name: str, raw: str) -> Any:
    if action.nargs == 0:  # store_true, store_false, BooleanOptionalAction
        text = raw.strip().lower()
        if text not in _TRUE + _FALSE:
            raise UsageError(f"error: {name}: expected true or false, not {raw!r}")
        return (text in _TRUE) == (action.const is not False)
    try:
        value = action.type(raw) if callable(action.type) else raw
    except (TypeError, ValueError, argparse.ArgumentTypeError) as err:
        kind = getattr(action.type, "__name__", "value")
        detail = f"not a valid {kind}"
        if isinstance(err, argparse.ArgumentTypeError):
            detail = f"not valid: {err}"
        raise UsageError(f"error: {name}: {raw!r} is {detail}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise UsageError(f"error: {name}: must be one of {choices}, not {raw!r}")
    return value


def _shown(action: argparse.Action, default: Any) -> str:
    """``required; ``, ``default: X; `` or nothing, for a flag's help."""
    if action.required:
        return "required; "
    if action.nargs == 0 and action.const is None:  # --x / --no-x
        return f"default: --{'' if default else 'no-'}{action.dest.replace('_', '-')}; "
    if action.nargs == 0 or default in (None, "") or "default" in (action.help or ""):
        return ""  # a switch, an unset value, or a help text that says it already
    return f"default: {default!r}; "


def with_environment(parser: Parser, prefix: str, environ: Mapping[str, str]) -> Parser:
    """Defaults from ``PREFIX<FLAG>`` for ``parser`` and its sub-parsers; raises ``UsageError``.

    Each flag's help gains its default and its variable.
    """
    for action in parser.flags:
        if action.dest in ("help", "version") or action.default == argparse.SUPPRESS:
            continue
        if action.help == argparse.SUPPRESS:
            continue
        name = _flag_env(prefix, action)
        shown = action.default
        if name in environ:
            action.default = _from_environment(action, name, environ[name])
            action.required = False
        action.help = f"{action.help or ''} ({_shown(action, shown)}env {name})"
        action.help = action.help.replace("%", "%%").lstrip()
    for child in parser.subcommands.values():
        with_environment(child, prefix, environ)
    return parser


def run_main(command: Callable[[], int], *, interrupted: str = "interrupted") -> int:
    """Run ``command``; bad input, Ctrl-C and a closed stdout become exit codes, not tracebacks."""
    try:
        return command()
    except SystemExit as done:  # argparse: --help, --version and usage errors
        return done.code if isinstance(done.code, int) else USAGE if done.code else 0
    except UsageError as err:
        return fail(err)
    except KeyboardInterrupt:
        print(f"\n{interrupted}", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # The reader (``| head``) is gone: stop writing, and keep the interpreter's final
        # flush of stdout from raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except UnicodeDecodeError as err:  # the readers that name the file catch it first
        return fail(f"error: an input file is not UTF-8 text ({err.reason})")
    except OSError as err:  # a file named on the command line that cannot be read or written
        where = err.filename if err.filename is not None else "error"
        return fail(f"{where}: {err.strerror or err}")
