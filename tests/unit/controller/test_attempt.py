"""Runs, drift checks and finalizer runs through the controller (bridge.controller.attempt),
with a fake cluster and executor; and check mode reaching ansible-runner for checks only."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.config.settings import RunnerSettings
from bridge.executors.local import CHECK_CMDLINE, LocalExecutor, runner_cmdline
from bridge.model.records import ChangedTask
from tests.unit.controller.harness import NOW, Harness, run_harness, stamp
from tests.unit.helpers import FakeExecutor, NoCheckExecutor, make_watch, spec_for

WATCH = make_watch(group="a.io", version="v1", kind="A", playbook=Path("/p.yml"))
DRIFT = make_watch(WATCH, drift_interval=600.0)
REMEDIATE = make_watch(DRIFT, drift_remediate=True)


def test_a_drifted_check_reports_drift_and_leaves_the_run_record_alone(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def script(h: Harness) -> None:
        await h.settle()
        seen["before"] = h.status
        await h.settle(after=601)
        seen["after"] = h.status
        await h.settle(after=601)  # the same drift again: no second Warning

    h = run_harness(tmp_path, DRIFT, FakeExecutor("drifted"), script)
    assert h.runs() == [("create", False), ("drift", True), ("drift", True)]
    before, after = seen["before"], seen["after"]
    for key in ("observedGeneration", "lastRun", "outputs", "runs"):
        assert after[key] == before[key], key
    assert "currentRun" not in after
    ready = [c for c in after["conditions"] if c["type"] == "Ready"]
    assert ready == [c for c in before["conditions"] if c["type"] == "Ready"]
    drifted = h.condition("Drifted")
    assert (drifted["status"], drifted["reason"]) == ("True", "Drifted")
    assert drifted["message"] == "1 task would change: 'Render config' on localhost"
    last_check = h.status["lastCheck"]
    assert last_check["result"] == "successful" and last_check["changed"] == 1
    assert last_check["drifted"] == [{"host": "localhost", "task": "Render config"}]
    assert last_check["finishedAt"] == stamp(NOW + timedelta(seconds=1202))
    warnings = [e for e in h.events if e[1] == "Drifted"]
    assert len(warnings) == 1 and warnings[0][0] == "Warning"
    assert "'Render config' on localhost" in warnings[0][2]
    assert "Started" not in [e[1] for e in h.events[2:]]  # a check is not a run


def test_remediation_runs_for_real_after_a_drifted_check(tmp_path: Path) -> None:
    async def script(h: Harness) -> None:
        await h.settle()
        await h.settle(after=601)

    h = run_harness(tmp_path, REMEDIATE, FakeExecutor("drifted"), script)
    assert h.runs() == [("create", False), ("drift", True), ("drift", False)]
    assert h.executor.specs[-1].check is False
    create, check, remediation = h.executor.specs
    assert create.artifact_dir == remediation.artifact_dir
    assert create.artifact_dir.name == "artifacts"
    assert check.artifact_dir == create.artifact_dir.parent / "checks"
    assert h.status["lastRun"]["trigger"] == "drift"
    assert h.status["observedGeneration"] == 1
    drifted = h.condition("Drifted")
    assert (drifted["status"], drifted["reason"]) == ("False", "InSync")
    assert h.condition("Ready")["status"] == "True"
    assert [e[1] for e in h.events if e[0] == "Warning"] == ["Drifted"]
    assert "remediating" in next(e[2] for e in h.events if e[1] == "Drifted")


def test_a_check_never_leaks_into_the_next_real_run(tmp_path: Path) -> None:
    async def script(h: Harness) -> None:
        await h.settle()
        await h.settle(after=601)
        h.kube.update_spec({"content": "two"})
        await h.settle()

    h = run_harness(tmp_path, DRIFT, FakeExecutor("drifted"), script)
    assert h.runs() == [("create", False), ("drift", True), ("update", False)]
    assert h.status["observedGeneration"] == 2
    drifted = h.condition("Drifted")
    assert (drifted["status"], drifted["reason"]) == ("False", "InSync")


def test_a_clean_check_says_in_sync_and_a_failed_one_unknown(tmp_path: Path) -> None:
    executor = FakeExecutor("failed")
    seen: dict[str, Any] = {}

    async def script(h: Harness) -> None:
        await h.settle()
        await h.settle(after=601)
        seen["failed"] = h.condition("Drifted")
        seen["lastRun"] = h.status["lastRun"]
        executor.check = "clean"
        await h.settle(after=601)

    h = run_harness(tmp_path, DRIFT, executor, script)
    failed = seen["failed"]
    assert (failed["status"], failed["reason"]) == ("Unknown", "CheckFailed")
    assert failed["message"] == "the check went wrong"
    assert seen["lastRun"]["trigger"] == "create"  # not the check's
    clean = h.condition("Drifted")
    assert (clean["status"], clean["reason"]) == ("False", "InSync")
    assert h.status["lastCheck"]["drifted"] == []
    assert [e[1] for e in h.events if e[1] in ("CheckFailed", "InSync")] == [
        "CheckFailed",
        "InSync",
    ]


def test_an_executor_without_check_mode_is_never_given_a_check(tmp_path: Path) -> None:
    async def script(h: Harness) -> None:
        await h.settle()
        await h.settle(after=601)

    h = run_harness(tmp_path, REMEDIATE, NoCheckExecutor(), script)
    assert h.runs() == [("create", False)]
    drifted = h.condition("Drifted")
    assert (drifted["status"], drifted["reason"]) == ("Unknown", "CheckUnsupported")


def test_a_secret_in_a_drifted_task_name_is_redacted(tmp_path: Path) -> None:
    leaky = ChangedTask(host="localhost", play="Manage", task="Set password hunter2")
    executor = FakeExecutor("drifted", changed=leaky)

    async def script(h: Harness) -> None:
        h.kube.body["spec"] = {"passwordFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}
        h.kube.secrets["db"] = {"pw": "aHVudGVyMg=="}  # hunter2
        await h.settle()
        await h.settle(after=601)

    h = run_harness(tmp_path, DRIFT, executor, script)
    assert h.runs() == [("create", False), ("drift", True)]
    assert "hunter2" not in repr(h.status) and "hunter2" not in repr(h.events)
    assert h.status["lastCheck"]["drifted"] == [
        {"host": "localhost", "task": "Set password ********"}
    ]


# --- check mode reaches ansible-runner for check runs only ---------------------------------


def test_runner_cmdline_is_check_mode_for_check_runs_only(tmp_path: Path) -> None:
    assert CHECK_CMDLINE == "--check --diff"
    assert runner_cmdline(spec_for(tmp_path)) is None
    assert runner_cmdline(spec_for(tmp_path, check=False)) is None
    assert runner_cmdline(spec_for(tmp_path, check=True)) == "--check --diff"


@pytest.mark.parametrize("check", [False, True])
def test_local_executor_passes_cmdline_only_to_a_check_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check: bool
) -> None:
    import types

    import ansible_runner.interface

    calls: list[dict[str, Any]] = []

    class Done_:
        status, rc = "successful", 0
        config = types.SimpleNamespace(command=["ansible-playbook"], env={})

        def run(self) -> None:
            pass

    def fake_init_runner(**kwargs: Any) -> Done_:
        calls.append(kwargs)
        return Done_()

    # The local executor builds the runner with init_runner (to wrap its command), then runs it.
    monkeypatch.setattr(ansible_runner.interface, "init_runner", fake_init_runner)
    executor = LocalExecutor(RunnerSettings(max_concurrent_runs=1))
    try:
        import threading

        status = executor._run_sync(
            spec_for(tmp_path, check=check), lambda event: True, threading.Event()
        )
    finally:
        asyncio.run(executor.close())
    assert status[0] == "successful"
    (kwargs,) = calls
    if check:
        assert kwargs["cmdline"] == "--check --diff"
    else:
        assert "cmdline" not in kwargs
    assert "--check" not in repr({k: v for k, v in kwargs.items() if k != "cmdline"})
