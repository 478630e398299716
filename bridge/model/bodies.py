"""The copy of a watched object's body the controller keeps: compact, without managedFields.

With thousands of resources, the bodies the controller holds are most of the operator's memory.
A body parsed from JSON has its own copy of every key ("metadata", "lastTransitionTime"...) and
of every repeated value ("True", "Ready", the apiVersion, the namespace), and its
``metadata.managedFields`` (the API server's field ownership for server-side apply) is often a
large part of it, though nothing here reads it. :func:`keep` copies a body without
managedFields and with its keys and short strings interned, so that all the bodies share one copy
of each. It is also what a run's ``_<group>_<kind>`` variable shows of the object.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

#: Strings up to this length are interned (names, reasons, timestamps); longer ones (messages,
#: large values) are kept as they are. CPython drops an interned string once nothing uses it.
SHORT = 64


def keep(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``body`` that shares nothing mutable with it, without
    ``metadata.managedFields``, with its keys and short strings interned."""
    out = {}
    for key, value in body.items():
        if key == "metadata" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k != "managedFields"}
        out[_str(key)] = _copy(value)
    return out


def _str(value: Any) -> Any:
    return sys.intern(value) if type(value) is str and len(value) <= SHORT else value


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {_str(k): _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return _str(value)
