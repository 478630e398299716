"""Bounds on watched objects (bridge.controller.bounds) and their use: kopf's guarded decoding,
the InvalidSpec status, bounded outputs (#20 item 1)."""

from __future__ import annotations

import asyncio
import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.controller import bounds, handlers, status
from bridge.model.records import HostStats, RunResult
from tests.unit.controller.harness import NOW, Harness, run_harness
from tests.unit.helpers import FakeExecutor, make_watch

WATCH = make_watch(group="a.io", version="v1", kind="A", playbook=Path("/p.yml"))


def _event(spec_json: str) -> str:
    obj = '{"apiVersion": "a.io/v1", "kind": "A", "metadata": {"name": "x", "uid": "u1", '
    obj += '"managedFields": [{"f": 1}]}, "spec": ' + spec_json + "}"
    return '{"type": "ADDED", "object": ' + obj + "}"


@pytest.mark.parametrize("levels", [150, 900, 3000, 50_000])
def test_a_deep_spec_becomes_a_marker_whatever_its_depth(levels: int) -> None:
    decoded = bounds.loads(_event('{"a": ' * levels + "1" + "}" * levels).encode())
    obj = decoded["object"]
    assert obj["metadata"] == {"name": "x", "uid": "u1"}  # managedFields dropped
    assert bounds.invalid_reason(obj) == "spec is nested deeper than 100 levels"
    copy.deepcopy(decoded)  # what kopf does with it: no RecursionError


def test_a_large_spec_becomes_a_marker() -> None:
    decoded = bounds.loads(_event(json.dumps({"v": "x" * (bounds.MAX_SPEC_BYTES + 1)})))
    reason = bounds.invalid_reason(decoded["object"])
    assert reason is not None and "more than the limit of 256 KiB" in reason


def test_a_spec_within_the_bounds_is_untouched() -> None:
    spec = {"a": [{"b": {"c": list(range(10))}}] * 5, "s": "x" * 1000}
    deep = {"d": "leaf"}
    for _ in range(bounds.MAX_DEPTH - 1):
        deep = {"d": deep}
    for value in (spec, deep):
        decoded = bounds.loads(_event(json.dumps(value)))
        assert decoded["object"]["spec"] == value


def test_a_list_keeps_its_good_items() -> None:
    good = '{"metadata": {"name": "a"}, "spec": {"k": 1}}'
    bad = '{"metadata": {"name": "b"}, "spec": {"k": ' + "[" * 2000 + "]" * 2000 + "}}"
    decoded = bounds.loads('{"kind": "AList", "items": [' + good + ", " + bad + "]}")
    first, second = decoded["items"]
    assert first["spec"] == {"k": 1}
    assert bounds.invalid_reason(second) is not None


def test_shallow_loads_reads_what_json_reads() -> None:
    for value in ({"a": [1, 2.5, None, True, False, 'é"\\'], "b": {}}, [], [[{}]], "s", 0):
        assert bounds.shallow_loads(json.dumps(value, indent=1)) == value


def test_kopfs_decoding_is_guarded() -> None:
    from kopf._cogs.clients import api as kopf_api

    handlers.guard_decoding()
    handlers.guard_decoding()  # idempotent
    deep = _event('{"a": ' * 3000 + "1" + "}" * 3000)
    assert bounds.invalid_reason(kopf_api.json.loads(deep)["object"]) is not None  # type: ignore[attr-defined]
    assert getattr(kopf_api.get, "bridge_guarded", False)


def test_an_invalid_spec_is_reported_and_runs_nothing(tmp_path: Path) -> None:
    async def script(h: Harness) -> None:
        h.kube.body["spec"] = {bounds.INVALID_SPEC: "spec is nested deeper than 100 levels"}
        await h.settle()

    h = run_harness(tmp_path, WATCH, FakeExecutor(), script)
    assert h.runs() == []
    ready = h.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "nested deeper than 100 levels" in ready["message"]
    assert h.condition("Stalled")["status"] == "True"
    assert ("Warning", "InvalidSpec") in [(t, r) for t, r, _ in h.events]


def test_a_deep_body_observed_directly_is_marked(tmp_path: Path) -> None:
    async def script(h: Harness) -> None:
        body: dict[str, Any] = copy.deepcopy(h.kube.body)
        deep: Any = 1
        for _ in range(sys.getrecursionlimit() + 100):
            deep = [deep]
        body["spec"] = {"a": deep}
        h.controller.observe(h.watch, "as", None, body)
        await asyncio.sleep(0.1)

    h = run_harness(tmp_path, WATCH, FakeExecutor(), script)
    assert h.runs() == []


def test_outputs_beyond_the_bound_are_not_written_and_say_why() -> None:
    big = RunResult("r", "successful", 0, {"h": HostStats(ok=1)}, outputs={"v": "x" * 70_000})
    patch = status.finished_patch({"outputs": {"old": 1}}, big, 1, "update", NOW, NOW)
    assert patch["outputs"] == {"old": None}
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    assert (
        "outputs not written: they are 68 KiB of JSON, more than the limit of 64 KiB"
        in (ready["message"])
    )
    assert len(json.dumps(patch)) < 10_000


def test_many_hosts_and_long_names_stay_bounded() -> None:
    hosts = {f"h{i}": HostStats(ok=1) for i in range(5000)}
    result = RunResult("r", "successful", 0, hosts)
    patch = status.finished_patch(None, result, 1, "update", NOW, NOW)
    assert len(patch["lastRun"]["hosts"]) == status.MAX_HOSTS
