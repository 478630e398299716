"""Values with units, as users write them: Go durations (``1h30m``) and byte sizes (``50Mi``).

Pure parsing, shared by the watches file, the CLI flags, the SDK annotations and the artifacts
bound; each raises :class:`ValueError` naming the text it could not read.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = ["parse_duration", "parse_size"]

# ---------------------------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------------------------

#: Nanoseconds per Go duration unit (``µs`` is U+00B5 MICRO SIGN, ``μs`` U+03BC GREEK MU).
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION_RE = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_SECONDS_RE = re.compile(_NUMBER)
_DURATION_HINT = "is not a duration like 30s, 5m, 1h30m"


def parse_duration(value: str | float) -> float:
    """Return the seconds in a Go duration (``1h30m``, ``1.5h``, ``250ms``) or a number of seconds.

    Units are ``h``, ``m``, ``s``, ``ms``, ``us`` (or ``µs``) and ``ns``, combined largest first
    or in any order as Go allows; a plain number, or a string holding one (``"30"``), is seconds.
    Raises :class:`ValueError` for anything else, and for negative or infinite values (no
    duration in the bridge can be negative).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} {_DURATION_HINT}")
    if isinstance(value, str):
        text = value.strip()
        if _SECONDS_RE.fullmatch(text):
            return float(Fraction(text))
        if not _DURATION_RE.fullmatch(text):
            raise ValueError(f"{value!r} {_DURATION_HINT}")
        ns = sum(
            (Fraction(number) * _UNIT_NS[unit] for number, unit in _DURATION_PART.findall(text)),
            Fraction(0),
        )
        return float(ns / 1_000_000_000)
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} {_DURATION_HINT}")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative; a duration cannot be")
    return seconds


# ---------------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------------

_SIZE = re.compile(r"(\d+)\s*([KMGT]i?)?B?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """Bytes from ``text``: a number, optionally with a unit (``K``, ``M``, ``G``, ``T``: powers
    of 1000; ``Ki``, ``Mi``, ``Gi``, ``Ti``: of 1024; a trailing ``B`` is allowed).

    >>> parse_size("50Mi"), parse_size("1k"), parse_size("1024")
    (52428800, 1000, 1024)

    Raises ValueError naming the text for anything else.
    """
    found = _SIZE.fullmatch(text.strip())
    if not found:
        raise ValueError(f"invalid size {text!r}: expected bytes, e.g. 52428800, 50Mi or 100M")
    number, unit = int(found.group(1)), (found.group(2) or "").lower()
    if unit.endswith("i"):
        return number << (10 * ("kmgt".index(unit[0]) + 1))
    return number * _SIZE_UNITS[unit]
