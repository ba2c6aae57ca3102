"""``extender.quantity``: Kubernetes quantities, parsed exactly like apimachinery."""

from __future__ import annotations

from typing import Any

import pytest

from extender.quantity import QuantityError, milli_value, parse_quantity, value

MiB = 1 << 20


# -- quantities -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "milli", "whole"),
    [
        ("500m", 500, 1),
        ("1.5Gi", 1536 * MiB * 1000, 1536 * MiB),
        ("2e3", 2_000_000, 2000),
        ("0.1", 100, 1),
        ("1", 1000, 1),
        ("100Mi", 100 * MiB * 1000, 100 * MiB),
        ("1k", 1_000_000, 1000),
        ("3900m", 3900, 4),
        ("13376580Ki", 13376580 * 1024 * 1000, 13376580 * 1024),
        ("1E-3", 1, 1),
        ("1n", 1, 1),
        (".5", 500, 1),
        (2, 2000, 2),
    ],
)
def test_quantities_parse_like_apimachinery(text: str | int, milli: int, whole: int) -> None:
    assert milli_value(text) == milli
    assert value(text) == whole


@pytest.mark.parametrize(
    "bad", ["", "abc", "1.5Gb", "--1", "1 Gi", "Gi", "1e999", "1.2.3", True, None]
)
def test_bad_quantities_are_refused(bad: Any) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(bad)
