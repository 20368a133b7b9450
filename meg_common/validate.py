"""Range checks for settings, one copy for every layer.

Each check returns the value it accepted (converted: numbers to float or int) and raises `InputError` with a
one-line message that names the setting and the allowed range. `where` names the place in a config file
(e.g. "config [downlink]"); without it the setting is named as a keyword (`snr_db=...`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

from meg_common.errors import InputError


def is_real(value) -> bool:
    """A real number (int, float, numpy scalar), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _label(name: str, value, where: str | None) -> str:
    return f"{where}: {name} = {value!r}" if where else f"{name}={value!r}"


def choice(name: str, value, allowed: Iterable[str], where: str | None = None) -> str:
    """`value` if it is one of `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        if where:
            raise InputError(f"{where}: {name} = {value!r} is not known; choose one of: {', '.join(allowed)}")
        raise InputError(f"unknown {name} '{value}'; choose one of {', '.join(allowed)}")
    return value


def number(name: str, value, lo: float = -math.inf, hi: float = math.inf, *, where: str | None = None,
           unit: str = "", hint: str = "") -> float:
    """A finite real number in [lo, hi], as float."""
    if not is_real(value):
        raise InputError(f"{_label(name, value, where)}: must be a number")
    value = float(value)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise InputError(f"{_label(name, value, where)} is out of range; give a number from "
                         f"{_range(lo, hi, unit)}{hint}".rstrip())
    return value


def integer(name: str, value, lo: float = -math.inf, hi: float = math.inf, *, where: str | None = None) -> int:
    """A whole number (not a bool, not a float) in [lo, hi], as int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise InputError(f"{_label(name, value, where)} is out of range; give a whole number from "
                         f"{_range(lo, hi)}")
    return int(value)


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name}={value!r}: must be a positive integer")
    return int(value)


def non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InputError(f"{name}={value!r}: must be an integer >= 0")
    return int(value)


def positive_float(name: str, value) -> float:
    if not is_real(value) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name}={value!r}: must be a positive number")
    return float(value)


def non_negative_float(name: str, value) -> float:
    if not is_real(value) or not math.isfinite(value) or value < 0:
        raise InputError(f"{name}={value!r}: must be a finite number >= 0")
    return float(value)


def _range(lo: float, hi: float, unit: str = "") -> str:
    unit = f" {unit}" if unit else ""
    if math.isinf(hi):
        return f"{lo:g} up{unit}"
    if math.isinf(lo):
        return f"up to {hi:g}{unit}"
    return f"{lo:g} to {hi:g}{unit}"
