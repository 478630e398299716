"""Small builders and fakes shared by the unit tests."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.executors import EventCallback
from bridge.kube.client import ObjectKey
from bridge.model.records import (
    ChangedTask,
    HostStats,
    ResourceRef,
    RunResult,
    RunSpec,
    RunStatus,
)
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


# --- fakes of the cluster and the executor (the controller's tests) ---------------------------


class FakeKube:
    """One object in memory; status patches merge into it and bump its resourceVersion."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.body: dict[str, Any] = {
            "apiVersion": "a.io/v1",
            "kind": "A",
            "metadata": {
                "name": "x",
                "namespace": "ns",
                "uid": "u1",
                "generation": 1,
                "resourceVersion": "1",
            },
            "spec": spec,
        }
        self.secrets: dict[str, dict[str, str]] = {}

    def bump(self) -> None:
        metadata = self.body["metadata"]
        metadata["resourceVersion"] = str(int(metadata["resourceVersion"]) + 1)

    def update_spec(self, spec: dict[str, Any]) -> None:
        self.body["spec"] = spec
        self.body["metadata"]["generation"] += 1
        self.bump()

    async def patch_status(self, key: ObjectKey, status: Mapping[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)  # a real write lets the loop run (and a hot loop be timed out)
        self.body = merge(self.body, {"status": status})
        self.bump()
        return copy.deepcopy(self.body)

    async def get(self, key: ObjectKey) -> dict[str, Any]:
        return copy.deepcopy(self.body)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get(name)

    async def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return None

    async def set_finalizers(
        self, key: ObjectKey, finalizers: list[str], resource_version: str
    ) -> dict[str, Any]:
        self.body["metadata"]["finalizers"] = finalizers
        self.bump()
        return copy.deepcopy(self.body)


RENDER = ChangedTask(host="localhost", play="Manage", task="Render config")


class FakeExecutor:
    """Real runs end as ``run`` says (successful: one change); check runs as ``check`` says."""

    supports_check = True

    def __init__(
        self,
        check: str = "drifted",
        changed: ChangedTask | None = None,
        *,
        run: RunStatus = "successful",
        requeue_after: float | None = None,
    ) -> None:
        self.check = check
        self.changed = changed or RENDER
        self.run_status: RunStatus = run
        self.requeue_after = requeue_after
        self.specs: list[RunSpec] = []

    async def run(self, spec: RunSpec, on_event: EventCallback) -> RunResult:
        self.specs.append(spec)
        if not spec.check:
            if self.run_status != "successful":
                return RunResult(spec.run_id, self.run_status, 2, message="the run went wrong")
            hosts = {"localhost": HostStats(ok=2, changed=1)}
            return RunResult(
                spec.run_id,
                "successful",
                0,
                hosts,
                outputs={"n": spec.generation},
                requeue_after=self.requeue_after,
            )
        if self.check == "drifted":
            hosts = {"localhost": HostStats(ok=2, changed=1)}
            return RunResult(spec.run_id, "successful", 0, hosts, changed_tasks=(self.changed,))
        if self.check == "clean":
            return RunResult(spec.run_id, "successful", 0, {"localhost": HostStats(ok=2)})
        return RunResult(spec.run_id, "failed", 2, message="the check went wrong")

    async def close(self) -> None:
        pass


class NoCheckExecutor(FakeExecutor):
    supports_check = False
