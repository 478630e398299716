"""The watched-kind section of a watches entry: group/version/kind, CRD names, scope, selector.

Reads ``group``, ``version``, ``kind``, ``plural``, ``scope``, ``shortNames`` and ``selector``
into a :class:`~bridge.model.watch.WatchedKind`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.config.watches.keys import (
    GROUP_RE,
    KIND_RE,
    LABEL_RE,
    VERSION_RE,
    KeyReader,
    type_name,
)
from bridge.model.names import label_key_problem, label_value_problem
from bridge.model.watch import WatchedKind

_SCOPES = ("Namespaced", "Cluster")
_SELECTOR_KEYS = ("matchLabels", "matchExpressions")
_EXPRESSION_KEYS = ("key", "operator", "values")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def read_resource(keys: KeyReader, entry: Mapping[str, Any]) -> WatchedKind:
    """The watched kind of ``entry``."""
    return WatchedKind(
        group=keys.name(
            entry, "group", GROUP_RE, "a lowercase DNS subdomain like cache.example.com"
        ),
        version=keys.name(entry, "version", VERSION_RE, "a lowercase name like v1 or v1alpha1"),
        kind=keys.name(entry, "kind", KIND_RE, "a CamelCase name like Memcached"),
        plural=_plural(keys, entry),
        scope=_scope(keys, entry),
        short_names=keys.names(
            entry, "shortNames", LABEL_RE, "a lowercase name like svccfg", unique=True
        ),
        selector=_selector(keys, entry),
    )


def _scope(keys: KeyReader, entry: Mapping[str, Any]) -> str:
    value = entry.get("scope")
    if value is None:
        return "Namespaced"
    if value not in _SCOPES:
        keys.fail("scope", f"expected Namespaced or Cluster, got {type_name(value)}")
    return str(value)


def _plural(keys: KeyReader, entry: Mapping[str, Any]) -> str | None:
    value = keys.string(entry, "plural")
    if value is not None and (not LABEL_RE.fullmatch(value) or len(value) > 63):
        keys.fail("plural", f"{value!r} is not a lowercase name like websites")
    return value


def _selector(keys: KeyReader, entry: Mapping[str, Any]) -> dict[str, Any] | None:
    value = keys.section(
        entry, "selector", "a mapping with matchLabels and/or matchExpressions", _SELECTOR_KEYS
    )
    if value is None:
        return None
    labels = value.get("matchLabels")
    if labels is not None:
        if not isinstance(labels, dict):
            keys.fail(
                "selector.matchLabels",
                f"expected a mapping of label names to values, got {type_name(labels)}",
            )
        for label, label_value in labels.items():
            if not isinstance(label, str):
                keys.fail("selector.matchLabels", f"label names must be strings, got {label!r}")
            if (problem := label_key_problem(label)) is not None:
                keys.fail("selector.matchLabels", problem)
            if not isinstance(label_value, str):
                keys.fail(
                    f"selector.matchLabels.{label}",
                    f"expected a string, got {type_name(label_value)} (quote numbers and booleans)",
                )
            if (problem := label_value_problem(label_value)) is not None:
                keys.fail(f"selector.matchLabels.{label}", problem)
    expressions = value.get("matchExpressions")
    if expressions is not None:
        if not isinstance(expressions, list):
            keys.fail(
                "selector.matchExpressions",
                f"expected a list of {{key, operator, values}}, got {type_name(expressions)}",
            )
        for i, expression in enumerate(expressions):
            _expression(keys, expression, f"selector.matchExpressions[{i}]")
    if not labels and not expressions:
        return None
    return value


def _expression(keys: KeyReader, value: object, key: str) -> None:
    if not isinstance(value, dict):
        keys.fail(key, f"expected a mapping with key, operator, values, got {type_name(value)}")
    keys.check_keys(value, _EXPRESSION_KEYS, f"{key}.")
    label = value.get("key")
    if not isinstance(label, str) or not label:
        keys.fail(f"{key}.key", f"expected a label name, got {type_name(label)}")
    if (problem := label_key_problem(label)) is not None:
        keys.fail(f"{key}.key", problem)
    operator = value.get("operator")
    if operator not in _OPERATORS:
        keys.fail(f"{key}.operator", f"expected one of {', '.join(_OPERATORS)}, got {operator!r}")
    values = value.get("values")
    if values is not None and (
        not isinstance(values, list) or not all(isinstance(v, str) for v in values)
    ):
        keys.fail(f"{key}.values", f"expected a list of strings, got {values!r}")
    for i, item in enumerate(values or []):
        if (problem := label_value_problem(item)) is not None:
            keys.fail(f"{key}.values[{i}]", problem)
    if operator in ("In", "NotIn") and not values:
        keys.fail(f"{key}.values", f"operator {operator} needs a non-empty list of values")
    if operator in ("Exists", "DoesNotExist") and values:
        keys.fail(f"{key}.values", f"operator {operator} takes no values")
