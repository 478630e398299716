"""The ``spec`` schema of a CRD from an argument spec: Ansible option types as OpenAPI v3.

The API server then enforces what the role (or playbook) declares, so a wrong resource is refused
at ``kubectl apply`` instead of failing a run. Ansible types map to OpenAPI v3 as follows:

==========================  ===================================================================
``str``, ``path``           ``type: string``
``int`` / ``float``         ``type: integer`` / ``type: number``
``bool``                    ``type: boolean``
``bytes``, ``bits``         ``x-kubernetes-int-or-string`` (``"1G"`` or ``1024``)
``list``                    ``type: array``, ``items`` typed by ``elements`` (and ``options``)
``dict`` with ``options``   ``type: object`` with ``properties`` (other fields are rejected)
``dict`` without            ``type: object`` with ``x-kubernetes-preserve-unknown-fields``
``raw``, ``json[arg]``      ``x-kubernetes-preserve-unknown-fields`` (any value)
==========================  ===================================================================

``choices`` become ``enum`` (of the items, for a list), ``required`` the parent's ``required``,
``description`` the description (Ansible markup made plain), and ``default`` a ``default`` when
it is valid for the schema (a Jinja template, which the role would compute, is only named in the
description). Other keys (``version_added``, ``aliases``, ``required_if``...) are ignored.

Field names are the options' names in camelCase (:func:`bridge.model.names.to_camel`), chosen so
that the bridge's snake_case conversion of a resource's spec gives the option's exact name back;
an option whose camelCase name would not come back keeps its own name (see :func:`field_name`).

Secrets stay in Secrets: an option marked ``no_log: true`` in the spec or listed in the watches
entry's ``secretOptions`` has no field of its own; the field ``<name>From: {secretKeyRef: {name,
key}}`` names a key of a Secret in the resource's namespace instead (required when the option is),
which :mod:`bridge.ansible.secrets` resolves at run time. Generation is pure: the same entry
point gives the same schema and warnings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bridge.model.errors import BridgeError
from bridge.model.names import to_camel, to_snake
from bridge.model.records import plain
from bridge.model.watch import EntryPoint, Option

__all__ = [
    "SECRET_KEY_REF",
    "CrdError",
    "field_name",
    "ordered",
    "plain_text",
    "reaches",
    "secret_field",
    "spec_schema",
]

#: The schema of a reference to a key of a Secret in the resource's namespace.
SECRET_KEY_REF: Mapping[str, Any] = {
    "type": "object",
    "required": ["secretKeyRef"],
    "properties": {
        "secretKeyRef": {
            "type": "object",
            "description": "A key of a Secret in the resource's namespace.",
            "required": ["key", "name"],
            "properties": {
                "key": {"type": "string", "description": "The key in the Secret's data."},
                "name": {"type": "string", "description": "The Secret's name."},
            },
        }
    },
}

_SCALARS: Mapping[str, Mapping[str, Any]] = {
    "str": {"type": "string"},
    "path": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "bytes": {"x-kubernetes-int-or-string": True},
    "bits": {"x-kubernetes-int-or-string": True},
    "raw": {"x-kubernetes-preserve-unknown-fields": True},
    "jsonarg": {"x-kubernetes-preserve-unknown-fields": True},
    "json": {"x-kubernetes-preserve-unknown-fields": True},
}

_TEMPLATE = re.compile(r"{{|{%")


class CrdError(BridgeError):
    """The watches entries cannot be turned into CRDs (two fields of one name, clashing kinds)."""


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------


def field_name(option: str, snake_case_parameters: bool = True) -> str:
    """The spec field for ``option``: its camelCase name, if the bridge converts that back.

    The bridge passes spec keys to Ansible through :func:`~bridge.model.names.to_snake` (unless the
    watch sets ``snakeCaseParameters: false``: then the field is the option's own name). When
    ``to_snake(to_camel(option))`` is not ``option`` (``http_url`` -> ``HTTPURL`` ->
    ``_httpurl``), the option's own name is used if it converts to itself; if neither does
    (``fooBar``), it is still used, and :func:`reaches` tells it cannot reach the option.
    """
    if not snake_case_parameters:
        return option
    camel = to_camel(option)
    if to_snake(camel) == option:
        return camel
    return option


def reaches(field: str, option: str, snake_case_parameters: bool = True) -> bool:
    """Whether a spec field ``field`` arrives in Ansible as the variable ``option``."""
    return field == option if not snake_case_parameters else to_snake(field) == option


def secret_field(field: str) -> str:
    """The field naming the Secret of a secret option's field: ``adminPassword`` ->
    ``adminPasswordFrom`` (:mod:`bridge.ansible.secrets` hands its value to the role as the
    option)."""
    return f"{field}From"


# ---------------------------------------------------------------------------------------------
# Descriptions
# ---------------------------------------------------------------------------------------------

_MARKUP = re.compile(r"\bHORIZONTALLINE\b|\b(RV|[IBMUCEVOPLR])\(([^()]*)\)")


def plain_text(paragraphs: Iterable[str], field: Callable[[str], str] = lambda s: s) -> str:
    """Ansible doc markup made plain: ``C(x)`` -> `` `x` ``, ``O(a.b)`` -> `` `field(a).b` ``,
    ``L(text,url)`` -> ``text (url)``, ``I(x)``/``B(x)``/``M(x)``/``U(x)`` -> ``x``.

    Paragraphs are joined by a blank line; runs of white space inside one become a space.
    """

    def replace(match: re.Match[str]) -> str:
        macro, arg = match.group(1), match.group(2)
        if macro is None:
            return ""
        if macro in ("C", "V", "E", "RV"):
            return f"`{arg}`"
        if macro == "O":
            name, eq, value = arg.partition("=")
            name = name.rsplit(":", 1)[-1]  # plugin#type:option
            path = ".".join(field(part) for part in name.replace("[]", "").split("."))
            return f"`{path}{eq}{value}`"
        if macro in ("L", "R"):
            text, _, target = arg.partition(",")
            return f"{text.strip()} ({target.strip()})" if macro == "L" and target else text
        return arg

    texts = (" ".join(_MARKUP.sub(replace, p).split()) for p in paragraphs)
    return "\n\n".join(t for t in texts if t)


# ---------------------------------------------------------------------------------------------
# The spec schema
# ---------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A default that the schema would not accept; the message says why."""


class _SpecBuilder:
    """Builds the ``spec`` schema of one entry point, collecting warnings as it goes."""

    def __init__(
        self,
        where: str,
        secret_options: Iterable[str],
        snake_case_parameters: bool,
        excluded: Mapping[str, str],
    ) -> None:
        self.where = where
        self.secrets = frozenset(secret_options)
        self.snake = snake_case_parameters
        self.excluded = excluded
        self.warnings: list[str] = []

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{self.where}: option {path!r}: {message}")

    def field(self, option: str) -> str:
        return field_name(option, self.snake)

    def doc_field(self, option: str) -> str:
        """How a description names an option: by its field (excluded ones by their own name)."""
        return option if option in self.excluded else self.field(option)

    def describe(self, option: Option) -> str:
        return plain_text(option.description, self.doc_field)

    # --- objects ------------------------------------------------------------------------------

    def properties(
        self, options: Sequence[Option], prefix: str
    ) -> tuple[dict[str, Any], list[str], dict[str, str]]:
        """The properties of an object of ``options``, its required fields, and field -> option."""
        props: dict[str, Any] = {}
        required: list[str] = []
        names: dict[str, str] = {}
        for option in options:
            path = prefix + option.name
            if not prefix and option.name in self.excluded:
                if option.name != "ansible_operator_meta":  # documents what the bridge sets
                    self.warn(path, f"not a spec field: {self.excluded[option.name]}")
                continue
            field = self.field(option.name)
            note = ""
            if not reaches(field, option.name, self.snake):
                note = (
                    f"Note: the bridge passes this field to Ansible as {to_snake(field)!r}, "
                    f"not as the option {option.name!r}; rename the option or set "
                    "snakeCaseParameters: false in the watches entry."
                )
                self.warn(path, note)
            if path in self.secrets:
                field = secret_field(field)
                schema = self.secret(option, path)
            else:
                schema = self.option(option, path)
            if note:
                schema["description"] = "\n\n".join(filter(None, [schema.get("description"), note]))
            if field in names:
                raise CrdError(
                    f"{self.where}: options {prefix + names[field]!r} and {path!r} both become "
                    f"the field {field!r}; rename one of them"
                )
            names[field] = option.name
            props[field] = schema
            if option.required:
                required.append(field)
        return dict(sorted(props.items())), sorted(required), names

    def closed_object(self, options: Sequence[Option], path: str) -> dict[str, Any]:
        props, required, _ = self.properties(options, f"{path}.")
        schema: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            schema["required"] = required
        return schema

    # --- one option ---------------------------------------------------------------------------

    def secret(self, option: Option, path: str) -> dict[str, Any]:
        text = (
            f"The {option.name!r} option, read from a Secret in the resource's namespace "
            "(only when the playbook runs: its value is never stored in this resource, its "
            "status, Events or logs)."
        )
        description = "\n\n".join(filter(None, [self.describe(option), text]))
        return {"description": description, **plain(SECRET_KEY_REF)}

    def option(self, option: Option, path: str) -> dict[str, Any]:
        schema = self.typed(option, path)
        description = self.describe(option)
        if description:
            schema = {"description": description, **schema}
        if option.has_default:
            self.add_default(schema, option, path)
        return schema

    def typed(self, option: Option, path: str) -> dict[str, Any]:
        """The schema of ``option``'s value, without description or default."""
        if option.type == "list":
            return {"type": "array", "items": self.element(option, path)}
        if option.type == "dict":
            if option.options is not None:
                return self.closed_object(option.options, path)
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        if option.options is not None:
            self.warn(path, f"sub-options of a {option.type} are ignored, as Ansible ignores them")
        if option.type not in _SCALARS:
            self.warn(path, f"unknown type {option.type!r}; any value is accepted")
            return {"x-kubernetes-preserve-unknown-fields": True}
        schema = dict(_SCALARS[option.type])
        self.add_enum(schema, option, path)
        return schema

    def element(self, option: Option, path: str) -> dict[str, Any]:
        elements = option.elements
        if option.options is not None and elements != "dict":
            # Sub-options Ansible does not check, given for a list of dicts all the same: the
            # documented fields are typed, others kept (nothing ever enforced the sub-spec).
            self.warn(
                path,
                f"elements is {elements or 'not given'} but sub-options are given (which Ansible "
                "does not check): taken as a list of objects with those fields, others allowed",
            )
            props, _, _ = self.properties(option.options, f"{path}.")
            return {
                "type": "object",
                "properties": props,
                "x-kubernetes-preserve-unknown-fields": True,
            }
        if elements is None or elements in ("raw", "json", "jsonarg"):
            return {"x-kubernetes-preserve-unknown-fields": True}
        if elements == "dict":
            if option.options is not None:
                return self.closed_object(option.options, path)
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        if elements == "list":
            return {"type": "array", "items": {"x-kubernetes-preserve-unknown-fields": True}}
        if elements not in _SCALARS:
            self.warn(path, f"unknown elements type {elements!r}; any value is accepted")
            return {"x-kubernetes-preserve-unknown-fields": True}
        schema = dict(_SCALARS[elements])
        self.add_enum(schema, option, path)
        return schema

    def add_enum(self, schema: dict[str, Any], option: Option, path: str) -> None:
        if not option.choices or (
            "type" not in schema and "x-kubernetes-int-or-string" not in schema
        ):
            return
        values: list[Any] = []
        for choice in option.choices:
            if schema.get("type") == "string" and isinstance(choice, bool | int | float):
                choice = str(choice)  # as Ansible converts the value before it compares
            try:
                value = _conform_scalar(choice, schema)
            except _Invalid as exc:
                self.warn(path, f"choice {choice!r} left out: {exc}")
                continue
            if value not in values:
                values.append(value)
        if values:
            schema["enum"] = values

    def add_default(self, schema: dict[str, Any], option: Option, path: str) -> None:
        try:
            value = self.conform(option.default, schema, option)
        except _Invalid as exc:
            shown = _short(option.default)
            if _TEMPLATE.search(str(option.default)):
                text = f"Default: {shown} (computed by the role)."
                schema["description"] = "\n\n".join(filter(None, [schema.get("description"), text]))
                return
            self.warn(path, f"default {shown} left out of the schema: {exc}")
            return
        schema["default"] = value

    # --- defaults -----------------------------------------------------------------------------

    def conform(self, value: Any, schema: Mapping[str, Any], option: Option | None) -> Any:
        """``value`` (a default from the spec, snake_case keys) as the schema's field names,
        or :class:`_Invalid` when the API server would refuse it as a default."""
        if isinstance(value, str) and _TEMPLATE.search(value):
            raise _Invalid("it is a Jinja template")
        kind = schema.get("type")
        if kind == "array":
            # As Ansible reads a list: "a,b" is [a, b], a number a list of its string.
            if isinstance(value, str):
                value = value.split(",")
            elif isinstance(value, int | float) and not isinstance(value, bool):
                value = [str(value)]
            if not isinstance(value, list):
                raise _Invalid(f"not a list: {value!r}")
            items = schema["items"]
            sub = option if option is not None and option.options is not None else None
            return [self.conform(item, items, sub) for item in value]
        if kind == "object":
            if not isinstance(value, Mapping):
                raise _Invalid(f"not a mapping: {value!r}")
            if schema.get("x-kubernetes-preserve-unknown-fields") or option is None:
                if _TEMPLATE.search(repr(value)):
                    raise _Invalid("it holds a Jinja template")
                return dict(value)
            return self.conform_object(value, schema, option)
        if kind is None and schema.get("x-kubernetes-preserve-unknown-fields"):
            if _TEMPLATE.search(repr(value)):
                raise _Invalid("it holds a Jinja template")
            return value
        return _conform_scalar(value, schema)

    def conform_object(
        self, value: Mapping[str, Any], schema: Mapping[str, Any], option: Option
    ) -> dict[str, Any]:
        by_name = {o.name: o for o in option.options or ()}
        properties: Mapping[str, Any] = schema.get("properties", {})
        result: dict[str, Any] = {}
        for key, item in value.items():
            sub = by_name.get(key)
            field = self.field(key)
            if sub is None or field not in properties:
                raise _Invalid(f"{key!r} is not a field of the object")
            result[field] = self.conform(item, properties[field], sub)
        missing = [f for f in schema.get("required", ()) if f not in result]
        if missing:
            raise _Invalid(f"it lacks the required field(s) {', '.join(missing)}")
        return dict(sorted(result.items()))


def _conform_scalar(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` as a value of a scalar schema (numbers as strings for a string), or _Invalid."""
    kind = schema.get("type")
    ok: bool
    if kind == "string":
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        ok = isinstance(value, str)
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    else:
        ok = True
    if not ok:
        raise _Invalid(f"{_short(value)} is not a valid {kind or 'value'}")
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        raise _Invalid(f"{_short(value)} is not one of the choices")
    return value


def spec_schema(
    entry: EntryPoint,
    *,
    secret_options: Iterable[str] = (),
    snake_case_parameters: bool = True,
    excluded: Mapping[str, str] | None = None,
    where: str = "",
) -> tuple[dict[str, Any], list[str]]:
    """The ``spec`` schema of ``entry``'s options, and warnings.

    ``secret_options``: dotted option paths that become Secret references. ``excluded``:
    top-level options that are not spec fields, with the reason. Raises :class:`CrdError` when
    two options would get the same field name.
    """
    builder = _SpecBuilder(
        where or entry.source, secret_options, snake_case_parameters, excluded or {}
    )
    props, required, _ = builder.properties(entry.options, "")
    schema: dict[str, Any] = {"type": "object"}
    description = plain_text(entry.description, builder.doc_field)
    if description:
        schema["description"] = description
    schema["properties"] = props
    if required:
        schema["required"] = required
    elif any("default" in p for p in props.values()):
        # So that the defaults show (and apply) in a resource written without a spec too.
        schema["default"] = {}
    return ordered(schema), builder.warnings


#: The order of a schema node's keys in the output (others follow, sorted).
_SCHEMA_KEYS = (
    "description",
    "type",
    "format",
    "x-kubernetes-int-or-string",
    "enum",
    "default",
    "items",
    "properties",
    "required",
    "x-kubernetes-preserve-unknown-fields",
)


def ordered(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with its keys in :data:`_SCHEMA_KEYS` order, at every depth (property names
    are sorted already; values of ``default`` and ``enum`` are data, left as they are)."""
    rank = {key: i for i, key in enumerate(_SCHEMA_KEYS)}
    result: dict[str, Any] = {}
    for key in sorted(schema, key=lambda k: (rank.get(k, len(rank)), k)):
        value = schema[key]
        if key == "items":
            value = ordered(value)
        elif key == "properties":
            value = {name: ordered(sub) for name, sub in value.items()}
        result[key] = value
    return result


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
