"""Read Ansible argument specs (a role's ``meta/argument_specs.yml`` or a file of that format).

An argument spec declares, per entry point of a role (``main``, or the one ``tasks_from``
names), the options the role takes: each option's ``type``, ``required``, ``default``,
``choices``, ``elements`` (of a list), ``description``, ``no_log`` and nested ``options`` (of a
dict, or of a list of dicts). Ansible validates a role's variables against it before the role's
tasks run; the bridge turns it into a CRD's schema (:mod:`bridge.tools.crdgen`) and learns from it
which options are secrets.

The file format is Ansible's: a mapping with the key ``argument_specs``, whose keys are entry
points, each with ``short_description``, ``description`` and ``options``. A role keeps it in
``meta/argument_specs.yml`` (or ``.yaml``, ``.json``), or under the ``argument_specs`` key of
``meta/main.yml``, the former taking precedence, as in Ansible. A playbook has none of its own;
a watches entry names a file of the same format (``argumentSpec``).

Reading follows what Ansible accepts: an option without ``type`` is a ``str``; keys Ansible
ignores for validation (``version_added``, ``author``...) are ignored. ``options`` are read
wherever they are given, though Ansible checks them only for a ``dict`` or a ``list`` of ``dict``
(:attr:`Option.checks_options`): real roles document lists of dicts as ``elements: str`` too.
What would make Ansible itself fail on the spec (options that are not a mapping, choices that
are not a list) is an :class:`ArgumentSpecError` naming the file and the key.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from bridge.config.yamlfile import read_yaml
from bridge.model.errors import PermanentError
from bridge.model.watch import EntryPoint, Option

__all__ = [
    "ANSIBLE_TYPES",
    "ArgumentSpecError",
    "EntryPoint",
    "Option",
    "find_option",
    "iter_options",
    "load_argument_specs",
    "parse_argument_specs",
    "role_argument_spec_file",
    "secret_paths",
]

#: The option types Ansible's argument spec validator knows (``json`` is ``jsonarg``).
ANSIBLE_TYPES: frozenset[str] = frozenset(
    {
        "str",
        "list",
        "dict",
        "bool",
        "int",
        "float",
        "path",
        "raw",
        "jsonarg",
        "json",
        "bytes",
        "bits",
    }
)

#: Where a role's argument spec is looked for, in Ansible's order (meta/argument_specs first).
_ROLE_SPEC_FILES = (
    "meta/argument_specs.yml",
    "meta/argument_specs.yaml",
    "meta/argument_specs.json",
    "meta/main.yml",
    "meta/main.yaml",
    "meta/main.json",
    "meta/main",
)

#: Ansible's boolean spellings, for ``required`` and ``no_log`` written as strings.
_TRUE = frozenset({"y", "yes", "on", "1", "true", "t"})
_FALSE = frozenset({"n", "no", "off", "0", "false", "f"})


class ArgumentSpecError(PermanentError):
    """An argument spec Ansible could not use either; names the file and the key."""

    reason = "InvalidArgumentSpec"

    def __init__(self, message: str, *, path: str, key: str | None = None) -> None:
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.key = key


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


class _SpecLoader(yaml.SafeLoader):
    """A safe loader that reads Ansible's tags (``!unsafe``, ``!vault``...) as plain values."""


def _construct_tagged(loader: _SpecLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.ScalarNode)
    return loader.construct_scalar(node)


_SpecLoader.add_multi_constructor("!", _construct_tagged)


def _read(path: Path) -> Any:
    return read_yaml(path, ArgumentSpecError, loader=_SpecLoader)


def role_argument_spec_file(role: Path) -> Path | None:
    """The file holding the role's argument spec, as Ansible looks for it; None if it has none.

    ``meta/argument_specs.{yml,yaml,json}`` wins over ``meta/main.*`` (whose ``argument_specs``
    key counts only when no such file exists). A ``meta/main`` without that key is no spec.
    """
    for name in _ROLE_SPEC_FILES[:3]:
        if (role / name).is_file():
            return role / name
    for name in _ROLE_SPEC_FILES[3:]:
        path = role / name
        if path.is_file():
            data = _read(path)
            if isinstance(data, Mapping) and data.get("argument_specs"):
                return path
            return None
    return None


def load_argument_specs(path: Path) -> dict[str, EntryPoint]:
    """Every entry point of the argument-spec file at ``path`` (keys in the file's order)."""
    return parse_argument_specs(_read(path), str(path))


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def parse_argument_specs(data: Any, source: str) -> dict[str, EntryPoint]:
    """The entry points of an argument-spec document already read from YAML.

    ``data`` is the whole document (``{argument_specs: {main: {...}}}``, extra top-level keys as
    in ``meta/main.yml`` ignored). ``source`` names it in errors.
    """
    if not isinstance(data, Mapping):
        raise ArgumentSpecError(
            f"expected a mapping with the key 'argument_specs', got {_kind(data)}", path=source
        )
    if "argument_specs" not in data:
        raise ArgumentSpecError(
            "no 'argument_specs' key (expected argument_specs: {main: {options: ...}})",
            path=source,
        )
    specs = data["argument_specs"]
    if specs is None:
        return {}
    if not isinstance(specs, Mapping):
        raise ArgumentSpecError(
            f"expected a mapping of entry points, got {_kind(specs)}",
            path=source,
            key="argument_specs",
        )
    entry_points: dict[str, EntryPoint] = {}
    for name, spec in specs.items():
        key = f"argument_specs.{name}"
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise ArgumentSpecError(
                f"expected a mapping (short_description, options...), got {_kind(spec)}",
                path=source,
                key=key,
            )
        entry_points[str(name)] = EntryPoint(
            name=str(name),
            short_description=" ".join(_paragraphs(spec.get("short_description"))),
            description=_paragraphs(spec.get("description")),
            options=_options(spec.get("options"), source, f"{key}.options"),
            source=source,
        )
    return entry_points


def _options(raw: Any, source: str, key: str) -> tuple[Option, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ArgumentSpecError(
            f"expected a mapping of option names to their specs, got {_kind(raw)}",
            path=source,
            key=key,
        )
    return tuple(_option(name, spec, source, f"{key}.{name}") for name, spec in raw.items())


def _option(name: Any, spec: Any, source: str, key: str) -> Option:
    if not isinstance(name, str) or not name:
        raise ArgumentSpecError(f"option names must be strings, got {name!r}", path=source, key=key)
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ArgumentSpecError(
            f"expected a mapping (type, required, default...), got {_kind(spec)}",
            path=source,
            key=key,
        )
    type_ = spec.get("type")
    if type_ is None:
        type_ = "str"
    if not isinstance(type_, str):
        raise ArgumentSpecError(
            f"expected a type name such as str, int, list, got {_kind(type_)}",
            path=source,
            key=f"{key}.type",
        )
    elements = spec.get("elements")
    if elements is not None and not isinstance(elements, str):
        raise ArgumentSpecError(
            f"expected a type name such as str or dict, got {_kind(elements)}",
            path=source,
            key=f"{key}.elements",
        )
    choices = spec.get("choices")
    if choices is not None and not isinstance(choices, list | tuple):
        raise ArgumentSpecError(
            f"expected a list of allowed values, got {_kind(choices)}",
            path=source,
            key=f"{key}.choices",
        )
    sub_options: tuple[Option, ...] | None = None
    if spec.get("options") is not None:
        sub_options = _options(spec.get("options"), source, f"{key}.options")
    has_default = spec.get("default") is not None
    return Option(
        name=name,
        type=type_,
        required=_flag(spec, "required", source, key),
        default=_json_value(spec.get("default")) if has_default else None,
        has_default=has_default,
        choices=tuple(_json_value(c) for c in choices or ()),
        elements=elements,
        description=_paragraphs(spec.get("description")),
        no_log=_flag(spec, "no_log", source, key),
        options=sub_options,
    )


def _flag(spec: Mapping[str, Any], name: str, source: str, key: str) -> bool:
    value = spec.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ArgumentSpecError(
        f"expected a boolean, got {_kind(value)}", path=source, key=f"{key}.{name}"
    )


def _paragraphs(value: Any) -> tuple[str, ...]:
    """A description (a string or a list of strings) as stripped, non-empty paragraphs."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    return tuple(text for item in items if item is not None and (text := str(item).strip()))


def _json_value(value: Any) -> Any:
    """``value`` with what YAML reads but JSON cannot hold (dates, sets, bytes) as strings."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.loads(json.dumps(value, default=str))


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------


def iter_options(options: tuple[Option, ...], prefix: str = "") -> Iterator[tuple[str, Option]]:
    """Every option and sub-option with its dotted path (``tls.cert_file``), depth first."""
    for option in options:
        path = f"{prefix}{option.name}"
        yield path, option
        if option.options:
            yield from iter_options(option.options, f"{path}.")


def secret_paths(options: tuple[Option, ...]) -> tuple[str, ...]:
    """The dotted paths of the options marked ``no_log: true`` (inside a secret, none more)."""
    found: list[str] = []

    def walk(opts: tuple[Option, ...], prefix: str) -> None:
        for option in opts:
            path = f"{prefix}{option.name}"
            if option.no_log:
                found.append(path)
            elif option.options:
                walk(option.options, f"{path}.")

    walk(options, "")
    return tuple(found)


def find_option(options: tuple[Option, ...], path: str) -> Option | str:
    """The option at dotted ``path``, or a message saying why there is none.

    A path goes through dict options and lists of dicts (``users.password``: the ``password``
    of each element of ``users``).
    """
    current: tuple[Option, ...] | None = options
    found: Option | None = None
    walked: list[str] = []
    for part in path.split("."):
        if current is None:
            assert found is not None
            return (
                f"option {'.'.join(walked)!r} is a {_describe_type(found)} without sub-options, "
                f"so it has no {part!r}"
            )
        by_name = {option.name: option for option in current}
        if part not in by_name:
            where = f"option {'.'.join(walked)!r}" if walked else "the argument spec"
            known = ", ".join(sorted(by_name)) or "none"
            return f"{where} has no option {part!r} (options: {known})"
        found = by_name[part]
        walked.append(part)
        current = found.options
    assert found is not None
    return found


def _describe_type(option: Option) -> str:
    if option.type == "list" and option.elements:
        return f"list of {option.elements}"
    return option.type
