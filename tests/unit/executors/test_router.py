"""The router: each run to its watch's executor, one table of executor names, and the
``supports_check`` every executor declares (the ``Executor`` protocol)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge.config.settings import OperatorSettings
from bridge.executors import Executor
from bridge.executors.router import BACKENDS, ExecutorRouter, build_executor
from bridge.executors.warm.executor import WarmExecutor
from bridge.model.records import ResourceRef, RunResult, RunSpec
from bridge.model.watch import EXECUTOR_NAMES
from tests.unit.helpers import make_watch, spec_for

RESOURCE = ResourceRef("test.io/v1", "Probe", "team-a", "p1", "uid-1")
WATCH_KEY = "Probe.test.io/v1"


def spec_of(tmp: Path, run_id: str, **kw: Any) -> RunSpec:
    return spec_for(tmp, run_id=run_id, **{"resource": RESOURCE, **kw})


class Recorder:
    def __init__(self, name: str, supports_check: bool = True) -> None:
        self.name = name
        self.supports_check = supports_check
        self.ran: list[str] = []
        self.closed = False

    async def run(self, spec: RunSpec, on_event: Any) -> RunResult:
        self.ran.append(spec.run_id)
        return RunResult(spec.run_id, "successful", message=self.name)

    async def close(self) -> None:
        self.closed = True


def test_router_hands_each_run_to_its_watchs_executor(tmp_path: Path) -> None:
    job, local = Recorder("job"), Recorder("local")
    router = ExecutorRouter({WATCH_KEY: job}, local)
    other = ResourceRef("test.io/v1", "Plain", "ns", "x", "u2")

    async def go() -> list[str]:
        first = await router.run(spec_of(tmp_path, "r1"), lambda e: None)
        second = await router.run(spec_of(tmp_path, "r2", resource=other), lambda e: None)
        await router.close()
        return [first.message, second.message]

    assert asyncio.run(go()) == ["job", "local"]
    assert job.closed and local.closed
    assert router.supports_check


def test_router_checks_for_drift_only_when_every_backend_does() -> None:
    router = ExecutorRouter({WATCH_KEY: Recorder("job", supports_check=False)}, Recorder("local"))
    assert router.supports_check is False


def test_build_executor_without_per_watch_executors_is_the_default_one(tmp_path: Path) -> None:
    watches = (make_watch(group="test.io", version="v1", kind="Probe", playbook=tmp_path / "pb"),)
    settings = OperatorSettings(watches_file=tmp_path / "w.yaml", watches=watches)
    executor = build_executor(settings)
    assert isinstance(executor, WarmExecutor)  # the default --executor
    asyncio.run(executor.close())


def test_every_executor_name_has_a_backend_and_every_backend_a_name() -> None:
    assert tuple(BACKENDS) == EXECUTOR_NAMES


@pytest.mark.parametrize("name", ["local", "warm"])
def test_every_backend_declares_whether_it_runs_check_mode(name: str, tmp_path: Path) -> None:
    settings = OperatorSettings(watches_file=tmp_path / "w.yaml", watches=())
    executor: Executor = BACKENDS[name](settings, ())
    try:
        assert executor.supports_check is True
    finally:
        asyncio.run(executor.close())


def test_the_job_backend_declares_check_mode_too() -> None:
    from bridge.executors.job.executor import JobExecutor

    assert JobExecutor.supports_check is True
