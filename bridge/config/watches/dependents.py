"""The dependents section of a watches entry: which objects a run created are watched.

Reads ``watchDependentResources``, ``watchClusterScopedResources`` and ``blacklist`` (dependent
kinds never watched) into a :class:`~bridge.model.watch.DependentsPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.config.watches.keys import GROUP_RE, KIND_RE, VERSION_RE, KeyReader, type_name
from bridge.model.watch import DependentsPolicy

_GVK_KEYS = ("group", "version", "kind")


def read_dependents(keys: KeyReader, entry: Mapping[str, Any]) -> DependentsPolicy:
    """The dependents policy of ``entry``."""
    return DependentsPolicy(
        enabled=keys.boolean(entry, "watchDependentResources", True),
        cluster_scoped=keys.boolean(entry, "watchClusterScopedResources", False),
        blacklist=_blacklist(keys, entry),
    )


def _blacklist(keys: KeyReader, entry: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """``blacklist``: ``[{group, version, kind}]`` (group empty or absent: the core group)."""
    value = entry.get("blacklist")
    if value is None:
        return ()
    if not isinstance(value, list):
        keys.fail(
            "blacklist",
            f"expected a list of {{group, version, kind}}, got {type_name(value)}",
        )
    found = []
    for i, item in enumerate(value):
        key = f"blacklist[{i}]"
        if not isinstance(item, dict):
            keys.fail(key, f"expected a mapping with group, version, kind, got {type_name(item)}")
        keys.check_keys(item, _GVK_KEYS, f"{key}.")
        group = item.get("group") or ""
        if group:
            group = keys.name(item, "group", GROUP_RE, "an API group", prefix=f"{key}.")
        version = keys.name(item, "version", VERSION_RE, "a version like v1", prefix=f"{key}.")
        kind = keys.name(item, "kind", KIND_RE, "a CamelCase kind", prefix=f"{key}.")
        found.append((group, version, kind))
    return tuple(found)
