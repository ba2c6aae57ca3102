"""Kubernetes resource quantities, parsed exactly as apimachinery's ``resource.Quantity`` does.

A quantity is ``<sign><digits>[.<digits>][<suffix>]`` where the suffix is a binary SI suffix
(``Ki Mi Gi Ti Pi Ei``), a decimal SI suffix (``n u m "" k M G T P E``) or a decimal exponent
(``e3``, ``E-2``).  Values are kept as exact fractions; ``milli_value`` and ``value`` round up,
like ``Quantity.MilliValue()`` and ``Quantity.Value()``.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

__all__ = ["QuantityError", "milli_value", "parse_quantity", "value"]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_PATTERN = re.compile(
    r"^(?P<sign>[+-]?)(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<exp>[eE][+-]?[0-9]+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(text: str | int | float) -> Fraction:
    """The exact value of a quantity such as ``500m``, ``1.5Gi`` or ``2e3``."""
    if isinstance(text, bool):
        raise QuantityError(f"quantity must be a string or number, not {text!r}")
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        if not math.isfinite(text):
            raise QuantityError(f"quantity {text!r} is not finite")
        return Fraction(str(text))
    if not isinstance(text, str):
        raise QuantityError(f"quantity must be a string or number, not {type(text).__name__}")
    match = _PATTERN.match(text.strip())
    if match is None:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 1.5Gi, 2e3)")
    number = Fraction(match["num"])
    if match["sign"] == "-":
        number = -number
    if match["exp"] is not None:
        exponent = int(match["exp"][1:])
        if abs(exponent) > 64:
            raise QuantityError(f"{text!r}: exponent out of range")
        return number * Fraction(10) ** exponent
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    return number * _DECIMAL[suffix]


def milli_value(text: str | int | float) -> int:
    """Thousandths, rounded up (``Quantity.MilliValue``): cpu ``"250m"`` -> 250, ``"0.1"`` -> 100."""
    if type(text) is str:
        return _milli_str(text)
    return math.ceil(parse_quantity(text) * 1000)


def value(text: str | int | float) -> int:
    """Whole units, rounded up (``Quantity.Value``): memory ``"1.5Gi"`` -> 1610612736."""
    if type(text) is str:
        return _value_str(text)
    return math.ceil(parse_quantity(text))


# Every pod of a workload repeats the same few quantity strings: parse each once.
@functools.lru_cache(maxsize=8192)
def _milli_str(text: str) -> int:
    return math.ceil(parse_quantity(text) * 1000)


@functools.lru_cache(maxsize=8192)
def _value_str(text: str) -> int:
    return math.ceil(parse_quantity(text))
