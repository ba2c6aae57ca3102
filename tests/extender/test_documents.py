"""extender.documents: msgspec conversion errors as ``FILE:LINE: FIELD: problem``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest
import yaml

from extender.documents import (
    FINITE,
    DocumentError,
    convert,
    dotted,
    line_of,
    read_yaml,
    yaml_document,
    yaml_documents,
)


class Inner(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    max_pods: Annotated[int, msgspec.Meta(ge=1)] = 1
    mode: Literal["a", "b"] = "a"


class Outer(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[Inner], msgspec.Meta(min_length=1)]
    price: Annotated[float, msgspec.Meta(ge=0, le=FINITE)] = 0.0
    table: dict[str, Inner] | None = None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"items": []}, "items: must not be empty"),
        ({"items": [{}, {"maxPods": 0}]}, "items[1].maxPods: must be positive"),
        ({"items": [{"cores": 2}]}, "items[0].cores: unknown field (known: maxPods, mode)"),
        ({"items": [{"mode": "c"}]}, "items[0].mode: must be one of a, b, not 'c'"),
        ({}, "items: is required"),
        ({"items": [{}], "price": -1}, "price: must not be negative"),
        ({"items": [{}], "price": float("inf")}, "price: expected a finite number"),
        (
            {"items": [{}], "table": {"x": {"y": 1}}},
            "table.*.y: unknown field (known: maxPods, mode)",
        ),
        ({"items": [{}], "colour": 1}, "colour: unknown field (known: items, price, table)"),
        (
            {"items": [{"max\nPods": 1}]},
            'items[0]["max\\nPods"]: unknown field (known: maxPods, mode)',
        ),
    ],
    ids=[
        "empty",
        "positive",
        "unknown",
        "choice",
        "required",
        "negative",
        "inf",
        "map",
        "top",
        "newline",
    ],
)
def test_conversion_errors_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(DocumentError) as err:
        convert(raw, Outer)
    assert str(err.value) == message


def test_lines_of_fields(tmp_path: Path) -> None:
    text = "items:\n  - {}\n  - maxPods: 0\n    mode: a\ntable:\n  x: {mode: b}\n"
    root = yaml.compose(text)
    assert line_of(root, ("items", 1, "maxPods")) == 3
    assert line_of(root, ("items", 1, "absent")) == 3  # the deepest ancestor that exists
    assert line_of(root, ("table", "x", "mode")) == 6
    assert line_of(None, ("items",)) is None
    path = tmp_path / "f.yaml"
    path.write_text(text)
    raw, tree = read_yaml(path, DocumentError)
    with pytest.raises(DocumentError) as err:
        convert(raw, Outer)
    assert str(err.value.located(path, tree)) == f"{path}:3: items[1].maxPods: must be positive"


def test_unreadable_files_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    with pytest.raises(DocumentError, match=rf"^{bad}:2: invalid YAML"):
        read_yaml(bad, DocumentError)
    with pytest.raises(DocumentError, match=r": No such file or directory$"):
        read_yaml(tmp_path / "missing.yaml", DocumentError)


def test_an_error_moves_into_a_larger_document() -> None:
    class Child(DocumentError):
        pass

    inner = DocumentError("is bad", "groups", 0, "min")
    moved = Child.of(inner, "autoscaler")
    assert isinstance(moved, Child)
    assert str(moved) == "autoscaler.groups[0].min: is bad"
    assert dotted(("a", 1, "b", 2)) == "a[1].b[2]"
    assert str(DocumentError("plain problem")) == "plain problem"


def test_yaml_is_parsed_once_with_its_lines() -> None:
    text = "a: 1\n---\nb:\n  - 2\n"
    assert [doc for doc, _ in yaml_documents(text)] == list(yaml.safe_load_all(text))
    (_, first), (_, second) = yaml_documents(text)
    assert (line_of(first, ("a",)), line_of(second, ("b", 0))) == (1, 4)
    assert yaml_document("x: [1, 2]\n")[0] == {"x": [1, 2]}
    assert yaml_document("") == (None, None)
    with pytest.raises(yaml.YAMLError):
        yaml_document(text)  # two documents where one is expected, as yaml.safe_load
