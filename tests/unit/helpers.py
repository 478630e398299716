"""Small builders shared by the unit tests."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.model.records import ResourceRef, RunSpec
from bridge.model.watch import Watch, WatchedKind


def spec_for(tmp_path: Path, **kw: Any) -> RunSpec:
    """A RunSpec of a one-play playbook written into ``tmp_path``; ``kw`` overrides any field."""
    playbook = tmp_path / "p.yml"
    playbook.write_text("- hosts: localhost\n  tasks: []\n")
    fields: dict[str, Any] = {
        "run_id": "r1",
        "resource": ResourceRef("a.io/v1", "A", "ns", "x", "u1"),
        "generation": 1,
        "trigger": "update",
        "playbook": playbook,
        "extravars": {},
        "inventory": None,
        "artifact_dir": tmp_path / "artifacts",
    }
    return RunSpec(**{**fields, **kw})


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies it."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


#: Where each flat keyword of :func:`make_watch` lives in the nested :class:`Watch`.
_WATCH_SECTIONS: dict[str, tuple[str, str]] = {
    **{k: ("resource", k) for k in ("group", "version", "kind", "plural", "scope", "short_names")},
    "selector": ("resource", "selector"),
    **{
        k: ("automation", k)
        for k in (
            "playbook",
            "role",
            "vars",
            "finalizer",
            "gather_facts",
            "snake_case_parameters",
            "mark_unsafe",
            "timeout",
            "inventory",
            "inventory_source",
            "credentials",
        )
    },
    **{
        k: ("policy", k)
        for k in (
            "reconcile_period",
            "manage_status",
            "watch_annotations_changes",
            "max_runner_artifacts",
            "retry_limit",
            "retry_backoff",
            "drift_interval",
            "drift_remediate",
        )
    },
    "watch_dependent_resources": ("dependents", "enabled"),
    "watch_cluster_scoped_resources": ("dependents", "cluster_scoped"),
    "blacklist": ("dependents", "blacklist"),
    "executor": ("executor", "name"),
    "job": ("executor", "job"),
    **{k: ("crd", k) for k in ("argument_spec", "entry_point", "secret_options", "arguments")},
}


def make_watch(base: Watch | None = None, /, **flat: Any) -> Watch:
    """A :class:`Watch` from flat keywords (the watches.yaml keys in snake_case: ``playbook``,
    ``reconcile_period``, ``watch_dependent_resources``...), on top of ``base`` if given."""
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in flat.items():
        if key == "source":
            top[key] = value
            continue
        section, name = _WATCH_SECTIONS[key]
        sections.setdefault(section, {})[name] = value
    if base is None:
        resource = sections.pop("resource")
        base = Watch(resource=WatchedKind(**resource))
    changes = {
        section: dataclasses.replace(getattr(base, section), **values)
        for section, values in sections.items()
    }
    return dataclasses.replace(base, **changes, **top)
