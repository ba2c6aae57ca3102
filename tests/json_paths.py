"""Paths into decoded JSON/YAML values, for tests that put a wrong value at every place."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["paths", "replaced"]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value: each object key and list index, at every level."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += paths(item, (*prefix, i))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """``value`` with ``new`` at ``path`` (copies along the path; ``value`` is not changed)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    copied = copy.copy(value)
    copied[head] = replaced(value[head], rest, new)
    return copied
