"""The key reader of one watches entry: typed primitives, and failures naming file, entry and key.

Every section reader (:mod:`.resource`, :mod:`.automation`, :mod:`.policy`, :mod:`.dependents`,
:mod:`.executor`, :mod:`.crd`) reads its keys through one :class:`KeyReader`, so a message is
worded and placed the same way whichever section finds the problem.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from bridge.model.errors import WatchesError
from bridge.model.names import DNS_SUBDOMAIN_RE
from bridge.model.units import parse_duration

#: Name patterns of the entry's keys (Kubernetes object names are in bridge.model.names).
GROUP_RE = DNS_SUBDOMAIN_RE
VERSION_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
KIND_RE = re.compile(r"[A-Z][A-Za-z0-9]*")
LABEL_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")

_VAR_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")


class KeyReader:
    """Reads the keys of one entry: strings, names, booleans, durations, mappings; fails and
    warns naming the file, the entry (1-based) and the key."""

    def __init__(
        self, file: str, n: int, base: Path, environ: Mapping[str, str], warnings: list[str]
    ) -> None:
        self.file = file
        self.n = n
        #: The watches file's folder: relative paths are resolved against it.
        self.base = base
        self.environ = environ
        self.warnings = warnings

    # --- reporting ----------------------------------------------------------------------------

    def fail(self, key: str | None, message: str) -> NoReturn:
        raise WatchesError(message, path=self.file, entry=self.n, key=key)

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{self.file}: entry {self.n}: key '{key}': {message}")

    # --- mappings -----------------------------------------------------------------------------

    def check_keys(self, mapping: Mapping[Any, Any], allowed: tuple[str, ...], prefix: str) -> None:
        """Fail on the first key of ``mapping`` not in ``allowed``, suggesting the nearest."""
        for key in mapping:
            if key in allowed:
                continue
            suggestion = _nearest(key, allowed) if isinstance(key, str) else None
            if suggestion:
                message = f"unknown key {key!r}; did you mean {suggestion!r}?"
            else:
                message = f"unknown key {key!r}; valid keys: {', '.join(allowed)}"
            self.fail(f"{prefix}{key}", message)

    def section(
        self,
        mapping: Mapping[str, Any],
        key: str,
        like: str,
        allowed: tuple[str, ...],
        *,
        prefix: str = "",
    ) -> dict[str, Any] | None:
        """An optional nested mapping with the keys ``allowed``; None when absent or null.
        ``like`` completes "expected ..." when it is not a mapping."""
        value = mapping.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(prefix + key, f"expected {like}, got {type_name(value)}")
        self.check_keys(value, allowed, f"{prefix}{key}.")
        return value

    def variables(self, mapping: Mapping[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
        """An optional mapping of variable names (strings) to any values; {} when absent."""
        value = mapping.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(prefix + key, f"expected a mapping, got {type_name(value)}")
        for name in value:
            if not isinstance(name, str):
                self.fail(
                    prefix + key, f"variable names must be strings, got {type_name(name)} {name!r}"
                )
        return value

    # --- ${VAR} -------------------------------------------------------------------------------

    def expand(self, value: Any, key: str) -> Any:
        """Expand ``${VAR}`` in every string inside ``value``."""
        if isinstance(value, str):
            return self.expand_string(value, key)
        if isinstance(value, list):
            return [self.expand(item, f"{key}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.expand(item, f"{key}.{k}") for k, item in value.items()}
        return value

    def expand_string(self, text: str, key: str) -> str:
        parts: list[str] = []
        end = 0
        for match in _VAR_REF.finditer(text):
            parts.append(text[end : match.start()])
            end = match.end()
            if match.group(0) == "$${":
                parts.append("${")
                continue
            name = match.group(1)
            if name is None:
                self.fail(
                    key,
                    f"bad variable reference in {text!r}: '${{' must be followed by a variable "
                    "name and '}' (write '$${' for a literal '${')",
                )
            if name not in self.environ:
                self.fail(key, f"environment variable {name!r} is not defined (used in {text!r})")
            parts.append(self.environ[name])
        parts.append(text[end:])
        return "".join(parts)

    # --- scalars ------------------------------------------------------------------------------

    def string(self, mapping: Mapping[str, Any], key: str, prefix: str = "") -> str | None:
        """An optional non-empty string; None when absent or null."""
        value = mapping.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(prefix + key, f"expected a string, got {type_name(value)}")
        if not value.strip():
            self.fail(prefix + key, "must not be empty")
        return value

    def name(
        self,
        mapping: Mapping[str, Any],
        key: str,
        pattern: re.Pattern[str],
        like: str,
        *,
        prefix: str = "",
    ) -> str:
        """A required string matching ``pattern``."""
        if key not in mapping:
            self.fail(prefix + key, f"missing required key '{key}'")
        value = mapping[key]
        if not isinstance(value, str):
            self.fail(prefix + key, f"expected a string, got {type_name(value)}")
        if not value:
            self.fail(prefix + key, "must not be empty")
        if not pattern.fullmatch(value) or len(value) > 253:
            self.fail(prefix + key, f"{value!r} is not {like}")
        return value

    def names(
        self,
        mapping: Mapping[str, Any],
        key: str,
        pattern: re.Pattern[str],
        like: str,
        *,
        unique: bool = False,
    ) -> tuple[str, ...]:
        """An optional list of strings matching ``pattern``; () when absent or null."""
        value = mapping.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(key, f"expected a list of strings, got {type_name(value)}")
        seen: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{key}[{i}]", f"expected a string, got {type_name(item)}")
            if not pattern.fullmatch(item) or len(item) > 63:
                self.fail(f"{key}[{i}]", f"{item!r} is not {like}")
            if unique and item in seen:
                self.fail(f"{key}[{i}]", f"{item!r} is listed twice")
            seen.add(item)
        return tuple(dict.fromkeys(value))

    def boolean(
        self, mapping: Mapping[str, Any], key: str, default: bool, *, prefix: str = ""
    ) -> bool:
        value = mapping.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(prefix + key, f"expected a boolean (true or false), got {type_name(value)}")
        return value

    def duration(
        self, mapping: Mapping[str, Any], key: str, default: float | None, *, prefix: str = ""
    ) -> float | None:
        """A duration in seconds; ``default`` when absent, None when null."""
        if key not in mapping:
            return default
        value = mapping[key]
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(
                prefix + key,
                f"expected a duration (like 30s, 5m, 1h30m) or a number of seconds, "
                f"got {type_name(value)}",
            )
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(prefix + key, str(exc))

    # --- paths --------------------------------------------------------------------------------

    def local(self, value: str) -> Path:
        """``value`` as an absolute path, relative to the watches file's folder."""
        return Path(os.path.normpath(self.base / value))


def _nearest(key: str, allowed: tuple[str, ...]) -> str | None:
    """The valid key ``key`` was probably meant to be, if one is close enough."""

    def fold(s: str) -> str:
        return s.replace("_", "").replace("-", "").lower()

    folded = {fold(k): k for k in allowed}
    if fold(key) in folded:
        return folded[fold(key)]
    match = difflib.get_close_matches(fold(key), list(folded), n=1, cutoff=0.6)
    return folded[match[0]] if match else None


def type_name(value: object) -> str:
    """How a YAML value's type is named in messages: "a string", "an integer", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__} ({value})"
