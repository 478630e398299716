"""Small builders shared by the unit tests."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.model.records import ResourceRef, RunSpec


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
