"""Status writes through an API outage (bridge.controller.writer): retried with back-off until
they succeed, the newest state winning, never holding up the worker (#20 item 4)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bridge.controller import writer
from bridge.controller.writer import compose
from bridge.kube.client import ObjectKey
from bridge.model.errors import TemporaryError
from tests.unit.controller.harness import Harness, run_harness
from tests.unit.helpers import FakeExecutor, FakeKube, make_watch

WATCH = make_watch(group="a.io", version="v1", kind="A", playbook=Path("/p.yml"))


class FlakyKube(FakeKube):
    """A FakeKube whose status writes fail while ``down`` (the API server is unreachable)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        self.down = False
        self.refused = 0

    async def patch_status(self, key: ObjectKey, status: Mapping[str, Any]) -> dict[str, Any]:
        if self.down:
            self.refused += 1
            raise TemporaryError(f"status of {key}: Max retries exceeded")
        return await super().patch_status(key, status)

    async def get(self, key: ObjectKey) -> dict[str, Any]:
        if self.down:
            raise TemporaryError(f"get {key}: Max retries exceeded")
        return await super().get(key)


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(writer, "RETRY_MAX", 0.05)


def _flaky(h: Harness) -> FlakyKube:
    kube = FlakyKube({"content": "one"})
    h.kube = kube
    h.controller._writer._kube = kube
    h.controller._attempts._specs._kube = kube
    return kube


def test_a_final_status_written_during_an_outage_arrives_once_the_api_is_back(
    tmp_path: Path,
) -> None:
    seen: dict[str, Any] = {}

    async def script(h: Harness) -> None:
        kube = _flaky(h)
        kube.down = True
        await h.settle()  # the run starts and ends while the API refuses every write
        res = h.controller._resources["u1"]
        seen["worker_done"] = res.worker is not None and res.worker.done()
        seen["pending"] = res.pending_status is not None
        await asyncio.sleep(0.3)  # retries go on, with back-off
        seen["refused"] = kube.refused
        kube.down = False
        for _ in range(100):
            if res.pending_status is None and "status" in kube.body:
                break
            await asyncio.sleep(0.02)

    h = run_harness(tmp_path, WATCH, FakeExecutor(), script)
    assert h.runs() == [("create", False)]
    assert seen["worker_done"] and seen["pending"]
    assert 3 < seen["refused"] < 40  # retried, but backing off
    status = h.status
    assert "currentRun" not in status  # the started patch, then the finished one: merged
    assert status["observedGeneration"] == 1
    assert status["lastRun"]["result"] == "successful"
    assert h.condition("Ready")["status"] == "True"
    assert h.condition("Reconciling")["status"] == "False"


def test_shutdown_stops_the_retries(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def script(h: Harness) -> None:
        kube = _flaky(h)
        kube.down = True
        await h.settle()
        seen["res"] = h.controller._resources["u1"]
        seen["kube"] = kube

    run_harness(tmp_path, WATCH, FakeExecutor(), script)
    res = seen["res"]
    assert res.flusher is None and res.pending_status is None


def test_a_deleted_object_stops_its_retries(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def script(h: Harness) -> None:
        kube = _flaky(h)
        kube.down = True
        await h.settle()
        res = h.controller._resources["u1"]
        flusher = res.flusher
        assert flusher is not None
        h.controller.observe(h.watch, "as", "DELETED", kube.body)
        await asyncio.sleep(0.05)
        seen["stopped"] = flusher.done() and res.pending_status is None

    run_harness(tmp_path, WATCH, FakeExecutor(), script)
    assert seen["stopped"]


def test_compose_is_the_two_merge_patches_in_order() -> None:
    first = {"currentRun": {"id": "a", "trigger": "create"}, "conditions": [1], "x": 1}
    second = {"currentRun": None, "conditions": [2], "lastRun": {"id": "a"}, "y": {"z": None}}
    assert compose(first, second) == {
        "currentRun": None,
        "conditions": [2],
        "x": 1,
        "lastRun": {"id": "a"},
        "y": {"z": None},
    }
    assert compose({"a": {"b": 1, "c": 2}}, {"a": {"c": None, "d": 3}}) == {
        "a": {"b": 1, "c": None, "d": 3}
    }
