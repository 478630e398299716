"""Read one YAML file safely, turning every failure into the caller's error naming file and line.

The config files (watches.yaml, argument specs) are read through :func:`read_yaml`, so a file
that cannot be read, is not UTF-8 or is not valid YAML is reported the same way everywhere:
``<file>: YAML error at line L, column C: <problem>``, with the library's error chained.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any, Protocol

import yaml

__all__ = ["FileError", "StrictLoader", "read_yaml"]


class FileError(Protocol):
    """An error type that names the file it is about (WatchesError, ArgumentSpecError...)."""

    def __call__(self, message: str, *, path: str) -> Exception: ...


class StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key repeated in one mapping (YAML keeps the last)."""


def _construct_mapping(loader: StrictLoader, node: yaml.Node) -> dict[Hashable, Any]:
    assert isinstance(node, yaml.MappingNode)
    seen: dict[Hashable, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first set at line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(
    path: Path, error: FileError, *, loader: type[yaml.SafeLoader] = yaml.SafeLoader
) -> Any:
    """The one YAML document of the file at ``path`` (None when it is empty).

    ``loader`` must be :class:`yaml.SafeLoader` or a subclass (the default: plain safe YAML).
    Raises ``error(message, path=str(path))`` when the file cannot be read, is not UTF-8 text or
    is not valid YAML (the message gives the line and column where YAML knows them).
    """
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror or exc}", path=file) from exc
    except UnicodeDecodeError as exc:
        raise error(f"cannot read the file: not UTF-8 text ({exc})", path=file) from exc
    try:
        return yaml.load(text, Loader=loader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(f"YAML error{where}: {problem}", path=file) from exc
    except yaml.YAMLError as exc:
        raise error(f"YAML error: {exc}", path=file) from exc
