"""The status schema declares every key the status builders write, with the type they write.

Real patches come from :mod:`bridge.controller.status` (a run queued, started and finished, a
failed run, a drift check, a permanent error, a suspension, the Operator SDK's conditions); each
is walked against :func:`bridge.controller.schema.status_schema`, and so is the status they add
up to. An object that declares ``properties`` must declare each key written to it (its
``x-kubernetes-preserve-unknown-fields`` is room for others' keys, not a licence for ours); an
object without ``properties`` takes any key when it preserves unknown fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.controller.schema import status_schema
from bridge.controller.status import (
    check_patch,
    error_patch,
    finished_patch,
    queued_patch,
    started_patch,
    suspended_patch,
)
from bridge.model.records import ChangedTask, FailedTask, HostStats, RunResult
from tests.unit.helpers import merge

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)

_TYPES: Mapping[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def undeclared(value: Any, schema: Mapping[str, Any], path: str = "status") -> list[str]:
    """Where ``value`` (a merge patch or a status) has a key or type ``schema`` does not allow.

    ``None`` deletes a key in a merge patch, so it is allowed anywhere."""
    if value is None:
        return []
    found: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        allowed = _TYPES[kind]
        ok = isinstance(value, allowed) and not (kind != "boolean" and isinstance(value, bool))
        if not ok:
            return [f"{path}: {type(value).__name__} where the schema says {kind}"]
    free = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    if isinstance(value, Mapping):
        properties: Mapping[str, Any] | None = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}"
            if item is None:
                continue  # a deletion, of any key
            if properties is not None and key in properties:
                found += undeclared(item, properties[key], where)
            elif isinstance(extra, Mapping):
                found += undeclared(item, extra, where)
            elif properties is None and (free or extra is True):
                continue
            else:
                found.append(f"{where}: not in the schema")
    elif isinstance(value, list):
        items = schema.get("items")
        if items is None and not free:
            return [f"{path}: a list where the schema has no items"]
        for index, item in enumerate(value):
            found += undeclared(item, items or {}, f"{path}[{index}]")
    return found


def succeeded(run_id: str) -> RunResult:
    return RunResult(
        run_id,
        "successful",
        0,
        hosts={"web1": HostStats(ok=3, changed=2), "web2": HostStats(ok=2, skipped=1)},
        outputs={"url": "http://shop.example.com", "ports": [80, 443], "tls": {"on": True}},
        changed_tasks=(ChangedTask("web1", "Install", "Render config"),),
    )


def failed(run_id: str) -> RunResult:
    return RunResult(
        run_id,
        "failed",
        2,
        hosts={"web1": HostStats(ok=1, failed=1, unreachable=0, rescued=1, ignored=1)},
        failed_tasks=(FailedTask("web1", "Install", "Install package", "no such package"),),
        outputs={"partial": 1},
    )


def drifted(run_id: str) -> RunResult:
    return RunResult(
        run_id,
        "successful",
        0,
        hosts={"web1": HostStats(ok=2, changed=2), "web2": HostStats(ok=2, changed=1)},
        changed_tasks=(
            ChangedTask("web1", "Install", "Render config"),
            ChangedTask("web2", "Install", "Render config"),
            ChangedTask("web1", "Install", "Write motd"),
        ),
    )


def lifecycle(manage_status: bool) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(what, patch, status after it) for a resource's life: two runs (one failed, one that
    succeeds over it), drift checks that find changes and fail, a permanent error while a run is
    in flight, a suspension and its end."""
    status: dict[str, Any] = {}
    now = T0

    def step(what: str, patch: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        nonlocal status
        status = merge(status, patch)
        return what, patch, status

    keys = {"manage_status": manage_status}
    for generation, result in ((1, failed("run-1")), (2, succeeded("run-2"))):
        started = now
        yield step("queued", queued_patch(status, generation, "update", now, **keys))
        yield step(
            "started", started_patch(status, result.run_id, generation, "update", now, **keys)
        )
        now += timedelta(seconds=7)
        yield step(
            f"finished ({result.status})",
            finished_patch(status, result, generation, "update", started, now, drift=True, **keys),
        )
    for check in (drifted("chk-1"), RunResult("chk-2", "timeout", None, message="took too long")):
        started, now = now, now + timedelta(seconds=5)
        yield step(f"check ({check.status})", check_patch(status, check, 2, started, now, **keys))
    yield step("started again", started_patch(status, "run-3", 3, "update", now, **keys))
    yield step("error", error_patch(status, 3, "PlaybookNotFound", "no playbook site.yml", now))
    yield step("suspended", suspended_patch(status, True, 3, now))
    yield step("resumed", suspended_patch(status, False, 3, now + timedelta(seconds=1)))


@pytest.mark.parametrize("manage_status", [True, False])
def test_every_key_the_status_builders_write_is_in_the_status_schema(
    manage_status: bool,
) -> None:
    schema = status_schema(manage_status)
    for what, patch, status in lifecycle(manage_status):
        assert undeclared(patch, schema) == [], f"the patch of {what}"
        assert undeclared(status, schema) == [], f"the status after {what}"


def test_the_lifecycle_writes_every_part_of_the_status() -> None:
    """So the walk above does cover them: the SDK's conditions with ansibleResult, failed tasks,
    hosts, outputs, the drift check's drifted tasks."""
    seen: set[str] = set()

    def keys(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                seen.add(f"{path}.{key}")
                keys(item, f"{path}.{key}")
        elif isinstance(value, list):
            for item in value:
                keys(item, f"{path}[]")

    for _, patch, _ in lifecycle(True):
        keys(patch, "status")
    assert {
        "status.conditions[].ansibleResult.completion",
        "status.conditions[].observedGeneration",
        "status.currentRun.startedAt",
        "status.lastRun.failedTasks[].message",
        "status.lastRun.hosts.web1.rescued",
        "status.outputs.url",
        "status.runs[].changed",
        "status.lastCheck.drifted[].task",
        "status.lastCheck.changed",
        "status.observedGeneration",
    } <= seen
    types = {c["type"] for _, _, s in lifecycle(True) for c in s.get("conditions", [])}
    assert types == {
        "Ready",
        "Reconciling",
        "Stalled",
        "Drifted",
        "Suspended",
        "Running",
        "Successful",
        "Failure",
    }


def test_the_drift_check_record_is_its_own() -> None:
    """lastCheck declares what a check writes (drifted), not the run record's keys."""
    last_check = status_schema()["properties"]["lastCheck"]["properties"]
    assert set(last_check) == {
        "changed",
        "drifted",
        "finishedAt",
        "generation",
        "id",
        "result",
        "startedAt",
    }
    assert last_check["drifted"]["items"]["properties"] == {
        "host": {"type": "string"},
        "task": {"type": "string"},
    }


def test_the_walk_reports_undeclared_keys_and_wrong_types() -> None:
    schema = {
        "type": "object",
        "properties": {
            "run": {
                "type": "object",
                "properties": {"id": {"type": "string"}},
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "list": {"type": "array", "items": {"type": "integer"}},
        },
    }
    good = {"run": {"id": "r", "gone": None}, "free": {"a": [1]}, "counts": {"x": 1}, "list": [1]}
    assert undeclared(good, schema) == []
    bad = {"run": {"id": 1, "drifted": []}, "counts": {"x": "1"}, "list": [True], "other": 0}
    assert undeclared(bad, schema) == [
        "status.run.id: int where the schema says string",
        "status.run.drifted: not in the schema",
        "status.counts.x: str where the schema says integer",
        "status.list[0]: bool where the schema says integer",
        "status.other: not in the schema",
    ]


def test_each_call_gives_a_new_schema() -> None:
    first = status_schema()
    first["properties"].clear()
    assert "lastCheck" in status_schema()["properties"]
