"""Deleting a resource (bridge.controller.reconcile): once deletion has begun, only shutdown stops
the finalizer run; the main run canceled by the deletion is not a finalizer failure (#20 item 6).
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

from bridge.executors import EventCallback
from bridge.model.records import RunResult, RunSpec, Trigger
from bridge.model.watch import FinalizerSpec
from tests.unit.controller.harness import Harness, run_harness
from tests.unit.helpers import FakeExecutor, make_watch

FINALIZER = FinalizerSpec(name="a.io/fin", vars={"state": "absent"})
WATCH = make_watch(
    group="a.io", version="v1", kind="A", playbook=Path("/p.yml"), finalizer=FINALIZER
)


class GatedExecutor(FakeExecutor):
    """Runs of the triggers in ``gated`` wait until the test opens the gate."""

    def __init__(self, *gated: Trigger) -> None:
        super().__init__()
        self.gated = set(gated)
        self.gate = asyncio.Event()
        self.started: dict[str, asyncio.Event] = {}
        self.canceled: list[str] = []

    def began(self, trigger: str) -> asyncio.Event:
        return self.started.setdefault(trigger, asyncio.Event())

    async def run(self, spec: RunSpec, on_event: EventCallback) -> RunResult:
        self.began(spec.trigger).set()
        if spec.trigger in self.gated:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.canceled.append(spec.trigger)
                raise
        return await super().run(spec, on_event)


def _deleting(h: Harness) -> None:
    h.kube.body["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    h.kube.bump()


def _observe(h: Harness) -> None:
    h.controller.observe(h.watch, "as", None, copy.deepcopy(h.kube.body))


def _reasons(h: Harness) -> list[str]:
    return [reason for _, reason, _ in h.events]


def test_an_update_while_the_finalizer_runs_does_not_cancel_it(tmp_path: Path) -> None:
    executor = GatedExecutor("finalize")

    async def script(h: Harness) -> None:
        await h.settle()  # the main run, and the finalizer added
        assert h.kube.body["metadata"]["finalizers"] == ["a.io/fin"]
        _deleting(h)
        _observe(h)
        await asyncio.wait_for(executor.began("finalize").wait(), 5)
        # Labels, annotations and even the spec change while the finalizer runs.
        h.kube.body["metadata"]["labels"] = {"team": "b"}
        h.kube.body["metadata"]["annotations"] = {"note": "x"}
        h.kube.update_spec({"content": "two"})
        _observe(h)
        await asyncio.sleep(0.05)
        executor.gate.set()
        await h.settle()

    h = run_harness(tmp_path, WATCH, executor, script)
    assert executor.canceled == []
    assert h.runs() == [("create", False), ("finalize", False)]
    assert "FinalizerFailed" not in _reasons(h)
    assert _reasons(h)[-1] == "Finalized"
    assert h.kube.body["metadata"]["finalizers"] == []


def test_deleting_during_a_main_run_cancels_it_without_a_finalizer_failure(
    tmp_path: Path,
) -> None:
    executor = GatedExecutor("create", "finalize")

    async def script(h: Harness) -> None:
        _observe(h)
        await asyncio.wait_for(executor.began("create").wait(), 5)
        _deleting(h)
        _observe(h)
        await asyncio.wait_for(executor.began("finalize").wait(), 5)
        _observe(h)  # the watch event of the canceled run's status patch
        await asyncio.sleep(0.05)
        executor.gate.set()
        await h.settle()

    h = run_harness(tmp_path, WATCH, executor, script)
    assert executor.canceled == ["create"]
    assert list(executor.started) == ["create", "finalize"]
    assert "FinalizerFailed" not in _reasons(h)
    assert "Canceled" in _reasons(h) and _reasons(h)[-1] == "Finalized"
    assert h.kube.body["metadata"]["finalizers"] == []


def test_shutdown_stops_the_finalizer_run(tmp_path: Path) -> None:
    executor = GatedExecutor("finalize")

    async def script(h: Harness) -> None:
        await h.settle()
        _deleting(h)
        _observe(h)
        await asyncio.wait_for(executor.began("finalize").wait(), 5)

    h = run_harness(tmp_path, WATCH, executor, script)  # shuts the controller down
    assert executor.canceled == ["finalize"]
    assert h.kube.body["metadata"]["finalizers"] == ["a.io/fin"]
