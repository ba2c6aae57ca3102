"""Typed documents: YAML and JSON checked by ``msgspec`` Structs, errors naming the file, line, field.

Each file format (node groups, scenario, sweep grid, ResourcePolicy, trace line, openb CSV row) is
described once, as ``msgspec.Struct`` types that carry their constraints in ``msgspec.Meta`` and
forbid unknown fields where the format has no room for extensions (the Kubernetes-shaped policy
and the trace ignore them, as their schemas allow); :func:`convert` and :class:`JsonDecoder` turn
decoded data into them.  What a Struct cannot say (``min <= max``, a regular expression that
compiles) is checked after, and a custom type (a duration, a quantity) by a ``dec_hook``; both
raise the same way.  Every problem becomes a :class:`DocumentError` holding the field as a path
(``("groups", 2, "min")``) and the problem, so a loader that knows the YAML nodes adds the line:
``FILE:LINE: groups[2].min: problem``.

The extender's hot path (``Pod`` and ``Node`` on ``/filter``) keeps its hand parsing in
``extender.model``: this module is for files read once.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import msgspec
import yaml

from .commandline import file_problem

__all__ = [
    "FINITE",
    "DocumentError",
    "JsonDecoder",
    "Segments",
    "convert",
    "dotted",
    "line_of",
    "read_yaml",
    "yaml_document",
    "yaml_documents",
]

T = TypeVar("T")
Segments = tuple[str | int, ...]

FINITE = sys.float_info.max
"""``msgspec.Meta(le=FINITE)``: refuses ``.inf`` (and ``Meta(ge=...)`` refuses ``.nan``)."""


def dotted(segments: Sequence[str | int]) -> str:
    """``groups[2].min`` from ``("groups", 2, "min")``; a key that cannot be printed as it is
    (a newline, a control character) in JSON's quotes and escapes, so the message stays one
    line: ``["ne\\nw"]``."""
    text = ""
    for s in segments:
        if isinstance(s, int):
            text += f"[{s}]"
        elif not s.isprintable():
            text += f"[{json.dumps(s)}]"
        else:
            text += f".{s}" if text else s
    return text


class DocumentError(ValueError):
    """A bad document: ``problem`` at the field ``segments``, in ``file`` at ``line`` if known.

    Subclasses (``ConfigError``, ``ScenarioError``, ``GridError``, ``PolicyError``,
    ``TraceError``) say which kind of file it is.  ``str()`` is the one-line message:
    ``FILE:LINE: SUBJECT: FIELD: problem`` with the parts not known left out (``subject`` names
    one object of a file that holds several, like ``ResourcePolicy shop/web``).
    """

    def __init__(
        self,
        problem: str,
        *segments: str | int,
        file: str | None = None,
        line: int | None = None,
        subject: str = "",
    ) -> None:
        self.problem = problem
        self.segments: Segments = segments
        self.file = file
        self.line = line
        self.subject = subject  # which object of the file, when it has several
        super().__init__(self._text())

    def _text(self) -> str:
        where = None if self.file is None else self.file
        if where is not None and self.line is not None:
            where = f"{where}:{self.line}"
        parts = (where, self.subject, dotted(self.segments), self.problem)
        return ": ".join(p for p in parts if p)

    @classmethod
    def of(cls, err: DocumentError, *prefix: str | int) -> Self:
        """``err`` as this class, its field inside ``prefix``."""
        return cls(
            err.problem,
            *prefix,
            *err.segments,
            file=err.file,
            line=err.line,
            subject=err.subject,
        )

    def located(self, file: object, root: yaml.Node | None = None) -> Self:
        """The same problem, in ``file`` at the line of its field in ``root`` (when known)."""
        if self.file is not None:
            return self
        line = line_of(root, self.segments)
        return type(self)(
            self.problem, *self.segments, file=str(file), line=line, subject=self.subject
        )


def read_yaml(path: str | Path, error: type[DocumentError]) -> tuple[Any, yaml.Node | None]:
    """The document in ``path`` and its YAML node tree (for lines); bad files raise ``error``."""
    try:
        return yaml_document(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise error(file_problem(path, err)) from None


def yaml_document(text: str) -> tuple[Any, yaml.Node | None]:
    """``yaml.safe_load(text)`` and the node tree it was built from (for lines), parsed once."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()  # raises on a second document, as safe_load does
        return (None, None) if root is None else (loader.construct_document(root), root)
    finally:
        loader.dispose()


def yaml_documents(text: str) -> list[tuple[Any, yaml.Node]]:
    """``yaml.safe_load_all(text)``, each document with its node tree, parsed once."""
    loader = yaml.SafeLoader(text)
    try:
        found = []
        while loader.check_node():
            root = loader.get_node()
            if root is not None:  # check_node() said there is one
                found.append((loader.construct_document(root), root))
        return found
    finally:
        loader.dispose()


def line_of(root: yaml.Node | None, segments: Sequence[str | int]) -> int | None:
    """The 1-based line of the node at ``segments`` (or of the deepest ancestor that exists)."""
    node = root
    line = None if root is None else root.start_mark.line + 1
    for seg in segments:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == str(seg)), None)
            if found is None:
                return line
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) and seg < len(node.value):
            node = node.value[seg]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def convert(
    raw: Any,
    kind: type[T],
    *,
    error: type[DocumentError] = DocumentError,
    dec_hook: Callable[[type, Any], Any] | None = None,
) -> T:
    """``msgspec.convert(raw, kind)``; a mismatch raises ``error`` naming the field."""
    try:
        return msgspec.convert(raw, kind, dec_hook=dec_hook)
    except msgspec.ValidationError as err:
        problem, segments = _problem(str(err), kind)
        raise error(problem, *segments) from None


class JsonDecoder(Generic[T]):
    """A ``msgspec.json.Decoder`` for ``kind`` whose errors are ``error`` naming the field.

    For JSON read in bulk (a trace's lines): the decoder is built once.
    """

    def __init__(self, kind: Any, *, error: type[DocumentError] = DocumentError) -> None:
        self._kind = kind
        self._error = error
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(kind)

    def decode(self, data: str | bytes) -> T:
        try:
            return self._decoder.decode(data)
        except msgspec.ValidationError as err:
            problem, segments = _problem(str(err), self._kind)
            raise self._error(problem, *segments) from None
        except msgspec.DecodeError as err:
            detail = str(err).removeprefix("JSON is malformed: ")
            raise self._error(f"not valid JSON: {detail}") from None


_AT = re.compile(r"^(?P<problem>.*?)(?: - at (?P<key>`key` in )?`(?P<path>\$[^`]*)`)?$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_FIELD = re.compile(r"(unknown|missing required) field `([^`]+)`")


def _segments(path: str) -> list[str | int]:
    out: list[str | int] = []
    for name, index in _SEGMENT.findall(path[1:]):
        if name:
            out.append(name)
        elif index == "...":
            out.append("*")  # a map's value: msgspec does not name the key
        else:
            out.append(int(index))
    return out


def _problem(message: str, kind: Any) -> tuple[str, list[str | int]]:
    m = _AT.match(message)
    assert m is not None
    problem, segments = m.group("problem"), _segments(m.group("path") or "$")
    if m.group("key"):
        problem = f"a key: {problem}"
    field = _FIELD.search(problem)
    if field is not None:
        known = _names(_at(kind, segments))
        segments.append(field.group(2))
        if field.group(1) == "unknown":
            problem = "unknown field" + (f" (known: {', '.join(known)})" if known else "")
        else:
            problem = "is required"
    elif problem.startswith("Invalid enum value"):
        allowed = _names(_at(kind, segments))
        if allowed:
            problem = f"must be one of {', '.join(allowed)}, not {problem.split(' ', 3)[3]}"
    if "length >= 1" in problem:
        problem = "must not be empty"
    elif re.fullmatch(r"Expected `(int|float)` >= 0(\.0)?", problem):
        problem = "must not be negative"
    elif problem == "Expected `int` >= 1":
        problem = "must be positive"
    problem = problem.replace("`", "").replace(f"float <= {FINITE!r}", "a finite number")
    return problem[:1].lower() + problem[1:], segments


def _at(kind: Any, segments: Sequence[str | int]) -> Any:
    """The ``msgspec.inspect`` type at ``segments`` inside ``kind`` (``None`` if not known)."""
    info = _unwrap(msgspec.inspect.type_info(kind))
    for seg in segments:
        if isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if f.encode_name == seg), None)
        elif isinstance(info, msgspec.inspect.ListType):
            info = info.item_type
        elif isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        else:
            return None
        info = _unwrap(info)
    return info


def _names(info: Any) -> tuple[str, ...]:
    """The field names of a Struct, or the values of an enum or a ``Literal``."""
    if isinstance(info, msgspec.inspect.StructType):
        return tuple(f.encode_name for f in info.fields)
    if isinstance(info, msgspec.inspect.EnumType):
        return tuple(str(member.value) for member in info.cls)
    if isinstance(info, msgspec.inspect.LiteralType):
        return tuple(map(str, info.values))
    if isinstance(info, msgspec.inspect.UnionType):  # "auto" or a number: auto, int
        kinds = (_names(t) or (type(t).__name__.removesuffix("Type").lower(),) for t in info.types)
        return tuple(name for names in kinds for name in names if name != "none")
    return ()


def _unwrap(info: Any) -> Any:
    """The one Struct of a union (or its one other member), without its constraints."""
    while True:
        if isinstance(info, msgspec.inspect.Metadata):
            info = info.type
        elif isinstance(info, msgspec.inspect.UnionType):
            structs = [t for t in info.types if isinstance(t, msgspec.inspect.StructType)]
            others = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
            if len(structs) != 1 and len(others) != 1:
                return info  # a real choice: _names lists it
            info = structs[0] if len(structs) == 1 else others[0]
        else:
            return info
