"""The defaults the command line shows and uses, read from the settings dataclasses.

:mod:`bridge.config.settings` is the one source of every default; an option's ``default=`` and
its help text are derived from the field here, never written a second time.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def default_of(cls: type[Any], name: str) -> Any:
    """The default of field ``name`` of the settings dataclass ``cls`` (a default factory is
    called). Raises LookupError for a field without a default."""
    for field in dataclasses.fields(cls):
        if field.name != name:
            continue
        if field.default is not dataclasses.MISSING:
            return field.default
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        raise LookupError(f"{cls.__name__}.{name} has no default")
    raise LookupError(f"{cls.__name__} has no field {name!r}")


def duration(seconds: float) -> str:
    """Seconds as a duration option takes it back (``15.0`` -> ``15s``, ``0.5`` -> ``500ms``).

    >>> duration(15.0), duration(0.5), duration(90)
    ('15s', '500ms', '90s')
    """
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds * 1000:g}ms"


def size(count: int) -> str:
    """Bytes as a size option takes it back, in the largest binary unit that divides them.

    >>> size(50 * 1024 * 1024), size(1536), size(1000), size(0)
    ('50Mi', '1536', '1000', '0')
    """
    for unit, shift in (("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if count and count % (1 << shift) == 0:
            return f"{count >> shift}{unit}"
    return str(count)
