"""A controller over one object of a fake cluster, with a fake executor and a clock the test
moves (the controller's tests)."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bridge.config.settings import OperatorSettings, RunnerSettings
from bridge.controller.reconcile import Controller
from bridge.model.watch import Watch
from tests.unit.helpers import FakeExecutor, FakeKube, make_watch

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class Harness:
    def __init__(self, tmp_path: Path, watch: Watch, executor: FakeExecutor) -> None:
        playbook = tmp_path / "p.yml"
        playbook.write_text("- hosts: localhost\n  tasks: []\n")
        self.watch = make_watch(watch, playbook=playbook)
        self.executor = executor
        self.kube = FakeKube({"content": "one"})
        self.now = NOW
        self.events: list[tuple[str, str, str]] = []
        settings = OperatorSettings(
            watches_file=tmp_path / "watches.yaml",
            watches=(self.watch,),
            runner=RunnerSettings(max_concurrent_runs=1, artifacts_dir=tmp_path / "artifacts"),
        )
        self.controller = Controller(
            settings,
            executor,
            self.kube,
            lambda body, type_, reason, message: self.events.append((type_, reason, message)),
            clock=lambda: self.now,
        )

    async def settle(self, after: float = 0.0) -> None:
        """Move the clock on by ``after`` seconds, tell the controller, wait until it is idle."""
        self.now += timedelta(seconds=after)
        self.controller.observe(self.watch, "as", None, copy.deepcopy(self.kube.body))
        res = self.controller._resources["u1"]
        while True:
            if res.worker is not None and not res.worker.done():
                await res.worker
            await asyncio.sleep(0.01)
            if res.worker is None or res.worker.done():
                return

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.kube.body.get("status") or {})

    def condition(self, type_: str) -> dict[str, Any]:
        (found,) = [c for c in self.status["conditions"] if c["type"] == type_]
        return dict(found)

    def runs(self) -> list[tuple[str, bool]]:
        return [(s.trigger, s.check) for s in self.executor.specs]


def run_harness(tmp_path: Path, watch: Watch, executor: FakeExecutor, script: Any) -> Harness:
    harness = Harness(tmp_path, watch, executor)

    async def main() -> None:
        try:
            await script(harness)
        finally:
            await harness.controller.shutdown()

    asyncio.run(main())
    return harness
