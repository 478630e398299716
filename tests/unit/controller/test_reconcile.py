"""The scheduling policy of one resource (decide), without a cluster."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import gc
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.config.settings import OperatorSettings, RunnerSettings
from bridge.controller.reconcile import (
    Controller,
    Done,
    annotations_digest,
    decide,
    reconcile_period,
)
from bridge.executors import EventCallback
from bridge.executors.local import CHECK_CMDLINE, LocalExecutor, runner_cmdline
from bridge.kube.client import ObjectKey
from bridge.model.records import ChangedTask, HostStats, RunResult, RunSpec
from bridge.model.watch import FinalizerSpec, Watch
from tests.unit.helpers import make_watch, merge, spec_for

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
WATCH = make_watch(group="a.io", version="v1", kind="A", playbook=Path("/p.yml"))
FIN = make_watch(
    group="a.io",
    version="v1",
    kind="A",
    playbook=Path("/p.yml"),
    finalizer=FinalizerSpec(name="a.io/fin", vars={"state": "absent"}),
)


def body(generation: int = 1, status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"generation": generation, **meta}, "status": status or {}}


def test_new_resource_runs_as_create() -> None:
    action = decide(body(), WATCH, done=None, now=NOW)
    assert (action.kind, action.generation, action.trigger) == ("run", 1, "create")


def test_observed_generation_means_nothing_to_do() -> None:
    assert decide(body(3, {"observedGeneration": 3}), WATCH, done=None, now=NOW).kind == "none"


def test_new_generation_after_a_run_is_an_update() -> None:
    status = {"observedGeneration": 1, "lastRun": {"generation": 1}}
    action = decide(body(2, status), WATCH, done=None, now=NOW)
    assert (action.kind, action.generation, action.trigger) == ("run", 2, "update")


def test_interrupted_run_resumes() -> None:
    status = {"currentRun": {"id": "x", "generation": 1}}
    assert decide(body(1, status), WATCH, done=None, now=NOW).trigger == "resume"


def test_stale_event_after_a_finished_run_does_not_run_again() -> None:
    # Status still says nothing ran (the event predates our patch); memory knows better.
    done = Done(generation=1, finished_at=NOW)
    assert decide(body(1), WATCH, done=done, now=NOW).kind == "none"


def test_deletion_with_our_finalizer_finalizes() -> None:
    deleting = body(deletionTimestamp="2026-01-01T00:00:00Z", finalizers=["a.io/fin"])
    assert decide(deleting, FIN, done=None, now=NOW).kind == "finalize"


def test_deletion_without_our_finalizer_does_nothing() -> None:
    deleting = body(deletionTimestamp="2026-01-01T00:00:00Z", finalizers=["other/fin"])
    assert decide(deleting, FIN, done=None, now=NOW).kind == "none"
    assert decide(body(deletionTimestamp="x"), WATCH, done=None, now=NOW).kind == "none"


def test_annotation_change_runs_only_when_watched() -> None:
    recorded = annotations_digest({"annotations": {"team": "a"}})
    status = {"observedGeneration": 1, "lastRun": {"generation": 1, "annotations": recorded}}
    changed = body(1, status, annotations={"team": "b"})
    assert decide(changed, WATCH, done=None, now=NOW).kind == "none"
    watching = make_watch(WATCH, watch_annotations_changes=True)
    action = decide(changed, watching, done=None, now=NOW)
    assert (action.kind, action.trigger) == ("run", "annotation")
    same = body(1, status, annotations={"team": "a"})
    assert decide(same, watching, done=None, now=NOW).kind == "none"


def test_kubectl_last_applied_annotation_is_not_a_change() -> None:
    plain = annotations_digest({"annotations": {"x": "1"}})
    applied = annotations_digest(
        {"annotations": {"x": "1", "kubectl.kubernetes.io/last-applied-configuration": "{}"}}
    )
    assert plain == applied


def test_periodic_run_falls_due_after_the_period() -> None:
    watch = make_watch(WATCH, reconcile_period=60.0)
    finished = NOW - timedelta(seconds=30)
    status = {
        "observedGeneration": 1,
        "lastRun": {"generation": 1, "finishedAt": finished.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
    waiting = decide(body(1, status), watch, done=None, now=NOW)
    assert waiting.kind == "none" and waiting.wake_at == finished + timedelta(seconds=60)
    due = decide(body(1, status), watch, done=None, now=NOW + timedelta(seconds=31))
    assert (due.kind, due.trigger) == ("run", "periodic")


def test_periodic_uses_the_later_of_memory_and_status() -> None:
    watch = make_watch(WATCH, reconcile_period=60.0)
    old = (NOW - timedelta(seconds=300)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {"observedGeneration": 1, "lastRun": {"generation": 1, "finishedAt": old}}
    done = Done(generation=1, finished_at=NOW)
    assert decide(body(1, status), watch, done=done, now=NOW).kind == "none"


def test_period_annotation_overrides_the_watch() -> None:
    watch = make_watch(WATCH, reconcile_period=3600.0)
    sdk = {"annotations": {"ansible.sdk.operatorframework.io/reconcile-period": "30s"}}
    ours = {"annotations": {"ansible-bridge.io/reconcile-period": "1m"}}
    assert reconcile_period(sdk, watch) == 30.0
    assert reconcile_period(ours, watch) == 60.0
    assert (
        reconcile_period({"annotations": {"ansible-bridge.io/reconcile-period": "bad"}}, watch)
        == 3600.0
    )
    assert reconcile_period({}, WATCH) is None


def test_a_new_run_request_value_runs_once() -> None:
    status = {"observedGeneration": 1, "lastRun": {"generation": 1, "runRequested": "t1"}}
    same = body(1, status, annotations={"ansible-bridge.io/run-requested": "t1"})
    assert decide(same, WATCH, done=None, now=NOW).kind == "none"
    new = body(1, status, annotations={"ansible-bridge.io/run-requested": "t2"})
    action = decide(new, WATCH, done=None, now=NOW)
    assert (action.kind, action.trigger) == ("run", "requested")
    done = Done(generation=1, finished_at=NOW, requested="t2")
    assert decide(new, WATCH, done=done, now=NOW).kind == "none"


def test_suspend_holds_runs_but_not_the_finalizer() -> None:
    suspended = {"ansible-bridge.io/suspend": "true"}
    assert decide(body(1, annotations=suspended), WATCH, done=None, now=NOW).kind == "suspend"
    deleting = body(1, annotations=suspended, deletionTimestamp="x", finalizers=["a.io/fin"])
    assert decide(deleting, FIN, done=None, now=NOW).kind == "finalize"
    not_true = body(1, annotations={"ansible-bridge.io/suspend": "false"})
    assert decide(not_true, WATCH, done=None, now=NOW).kind == "run"


def test_a_due_retry_runs_and_a_pending_one_sets_the_wake_time() -> None:
    status = {"observedGeneration": 1, "lastRun": {"generation": 1, "result": "failed"}}
    later = NOW + timedelta(seconds=10)
    pending = Done(generation=1, finished_at=NOW, attempt=0, retry_at=later)
    waiting = decide(body(1, status), WATCH, done=pending, now=NOW)
    assert waiting.kind == "none" and waiting.wake_at == later
    due = decide(body(1, status), WATCH, done=pending, now=later)
    assert (due.kind, due.trigger) == ("run", "retry")
    exhausted = Done(generation=1, finished_at=NOW, attempt=3, retry_at=None)
    assert decide(body(1, status), WATCH, done=exhausted, now=later).wake_at is None


# --- drift checks ---------------------------------------------------------------------------

DRIFT = make_watch(WATCH, drift_interval=600.0)
REMEDIATE = make_watch(DRIFT, drift_remediate=True)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def ran(
    ago: float, result: str = "successful", generation: int = 1, **extra: Any
) -> dict[str, Any]:
    """A status whose last run (of ``generation``) finished ``ago`` seconds before NOW."""
    finished = stamp(NOW - timedelta(seconds=ago))
    last_run = {"generation": generation, "result": result, "finishedAt": finished}
    return {"observedGeneration": generation, "lastRun": last_run, **extra}


def checked(ago: float, *, drifted: bool = False, result: str = "successful") -> dict[str, Any]:
    """A ``status.lastCheck`` that finished ``ago`` seconds before NOW."""
    return {
        "id": "c1",
        "generation": 1,
        "finishedAt": stamp(NOW - timedelta(seconds=ago)),
        "result": result,
        "changed": 1 if drifted else 0,
        "drifted": [{"host": "localhost", "task": "Render config"}] if drifted else [],
    }


def test_a_check_falls_due_an_interval_after_the_last_run() -> None:
    action = decide(body(1, ran(700)), DRIFT, done=None, now=NOW)
    assert (action.kind, action.generation, action.trigger) == ("check", 1, "drift")
    waiting = decide(body(1, ran(100)), DRIFT, done=None, now=NOW)
    assert waiting.kind == "none"
    assert waiting.wake_at == NOW - timedelta(seconds=100) + timedelta(seconds=600)


def test_without_drift_in_the_watch_nothing_is_checked() -> None:
    action = decide(body(1, ran(7000)), WATCH, done=None, now=NOW)
    assert action.kind == "none" and action.wake_at is None


def test_the_next_check_counts_from_the_last_check() -> None:
    status = ran(3000, lastCheck=checked(100))
    waiting = decide(body(1, status), DRIFT, done=None, now=NOW)
    assert waiting.kind == "none"
    assert waiting.wake_at == NOW + timedelta(seconds=500)
    due = decide(body(1, ran(3000, lastCheck=checked(600))), DRIFT, done=None, now=NOW)
    assert due.kind == "check"


def test_the_check_time_in_memory_counts_when_status_lags() -> None:
    # The lastCheck patch has not come back yet: memory knows of the check.
    done = Done(generation=1, finished_at=NOW - timedelta(seconds=3000), succeeded=True)
    assert decide(body(1, ran(3000)), DRIFT, done=done, now=NOW).kind == "check"
    done = Done(
        generation=1,
        finished_at=NOW - timedelta(seconds=3000),
        succeeded=True,
        checked_at=NOW - timedelta(seconds=10),
    )
    waiting = decide(body(1, ran(3000)), DRIFT, done=done, now=NOW)
    assert waiting.kind == "none" and waiting.wake_at == NOW + timedelta(seconds=590)
    # Only a check ran here (the run was an earlier process's): the status tells of the run.
    only_check = Done(generation=None, finished_at=NOW, checked_at=NOW - timedelta(seconds=10))
    waiting = decide(body(1, ran(3000)), DRIFT, done=only_check, now=NOW)
    assert waiting.kind == "none" and waiting.wake_at == NOW + timedelta(seconds=590)


def test_a_check_only_follows_a_successful_run_of_the_current_generation() -> None:
    failed = decide(body(1, ran(7000, result="failed")), DRIFT, done=None, now=NOW)
    assert failed.kind == "none" and failed.wake_at is None
    older = decide(body(2, {**ran(7000), "observedGeneration": 2}), DRIFT, done=None, now=NOW)
    assert older.kind == "none" and older.wake_at is None  # generation 2 stopped by an error
    not_in_memory = Done(generation=1, finished_at=NOW - timedelta(seconds=7000))
    assert decide(body(1, ran(7000)), DRIFT, done=not_in_memory, now=NOW).kind == "none"


def test_a_new_generation_runs_before_a_due_check() -> None:
    status = ran(7000)
    action = decide(body(2, status), DRIFT, done=None, now=NOW)
    assert (action.kind, action.generation, action.trigger) == ("run", 2, "update")


def test_requests_retries_and_periodic_runs_come_before_a_due_check() -> None:
    requested = body(1, ran(7000), annotations={"ansible-bridge.io/run-requested": "t9"})
    assert decide(requested, DRIFT, done=None, now=NOW).trigger == "requested"
    periodic = make_watch(DRIFT, reconcile_period=600.0)
    assert decide(body(1, ran(7000)), periodic, done=None, now=NOW).trigger == "periodic"
    retry = Done(
        generation=1,
        finished_at=NOW - timedelta(seconds=7000),
        retry_at=NOW,
        succeeded=True,
    )
    assert decide(body(1, ran(7000)), DRIFT, done=retry, now=NOW).trigger == "retry"


def test_the_wake_time_is_the_earliest_of_period_retry_and_check() -> None:
    periodic = make_watch(DRIFT, reconcile_period=3600.0)
    waiting = decide(body(1, ran(100)), periodic, done=None, now=NOW)
    assert waiting.wake_at == NOW + timedelta(seconds=500)  # the check, before the period
    rare = make_watch(DRIFT, drift_interval=7200.0, reconcile_period=3600.0)
    waiting = decide(body(1, ran(100)), rare, done=None, now=NOW)
    assert waiting.wake_at == NOW + timedelta(seconds=3500)  # the period, before the check
    soon = NOW + timedelta(seconds=20)
    retry = Done(generation=1, finished_at=NOW, retry_at=soon, succeeded=False)
    assert decide(body(1, ran(0)), periodic, done=retry, now=NOW).wake_at == soon


def test_a_drifted_check_remediates_only_when_the_watch_says_so() -> None:
    status = ran(3000, lastCheck=checked(10, drifted=True))
    action = decide(body(1, status), REMEDIATE, done=None, now=NOW)
    assert (action.kind, action.generation, action.trigger) == ("run", 1, "drift")
    waiting = decide(body(1, status), DRIFT, done=None, now=NOW)
    assert waiting.kind == "none" and waiting.wake_at == NOW + timedelta(seconds=590)
    clean = ran(3000, lastCheck=checked(10))
    assert decide(body(1, clean), REMEDIATE, done=None, now=NOW).kind == "none"
    failed = ran(3000, lastCheck=checked(10, drifted=True, result="failed"))
    assert decide(body(1, failed), REMEDIATE, done=None, now=NOW).kind == "none"


def test_a_run_after_the_drifted_check_ends_the_remediation() -> None:
    status = ran(5, lastCheck=checked(10, drifted=True))  # the run came after the check
    waiting = decide(body(1, status), REMEDIATE, done=None, now=NOW)
    assert waiting.kind == "none" and waiting.wake_at == NOW + timedelta(seconds=595)
    # The same from memory: a check found drift, then the remediation run finished.
    check = NOW - timedelta(seconds=10)
    drifted = Done(
        generation=1,
        finished_at=NOW - timedelta(seconds=3000),
        succeeded=True,
        checked_at=check,
        drifted=True,
    )
    assert decide(body(1, ran(3000)), REMEDIATE, done=drifted, now=NOW).trigger == "drift"
    remediated = Done(generation=1, finished_at=NOW, succeeded=True, checked_at=check, drifted=True)
    assert decide(body(1, ran(3000)), REMEDIATE, done=remediated, now=NOW).kind == "none"


def test_suspension_and_deletion_hold_checks() -> None:
    suspended = body(1, ran(7000), annotations={"ansible-bridge.io/suspend": "true"})
    assert decide(suspended, DRIFT, done=None, now=NOW).kind == "suspend"
    assert decide(body(1, ran(7000), deletionTimestamp="x"), DRIFT, done=None, now=NOW).kind == (
        "none"
    )


# --- drift checks through the controller (fake cluster and executor) ------------------------


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
        self.body = merge(self.body, {"status": status})
        self.bump()
        return copy.deepcopy(self.body)

    async def get(self, key: ObjectKey) -> dict[str, Any]:
        return copy.deepcopy(self.body)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get(name)

    async def set_finalizers(
        self, key: ObjectKey, finalizers: list[str], resource_version: str
    ) -> dict[str, Any]:
        self.body["metadata"]["finalizers"] = finalizers
        self.bump()
        return copy.deepcopy(self.body)


RENDER = ChangedTask(host="localhost", play="Manage", task="Render config")


class FakeExecutor:
    """Real runs succeed (one change); check runs end as ``check`` says."""

    supports_check = True

    def __init__(self, check: str = "drifted", changed: ChangedTask | None = None) -> None:
        self.check = check
        self.changed = changed or RENDER
        self.specs: list[RunSpec] = []

    async def run(self, spec: RunSpec, on_event: EventCallback) -> RunResult:
        self.specs.append(spec)
        if not spec.check:
            hosts = {"localhost": HostStats(ok=2, changed=1)}
            return RunResult(spec.run_id, "successful", 0, hosts, outputs={"n": spec.generation})
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
    import ansible_runner

    calls: list[dict[str, Any]] = []

    class Done_:
        status, rc = "successful", 0

    def fake_run(**kwargs: Any) -> Done_:
        calls.append(kwargs)
        return Done_()

    monkeypatch.setattr(ansible_runner, "run", fake_run)
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


class Cause:
    """Stands in for what a kopf handler's context holds: its cause, with the event's body."""


class ContextExecutor(FakeExecutor):
    """Records the context variables its runs see."""

    def __init__(self) -> None:
        super().__init__()
        self.contexts: list[dict[Any, Any]] = []

    async def run(self, spec: RunSpec, on_event: EventCallback) -> RunResult:
        self.contexts.append(dict(contextvars.copy_context()))
        return await super().run(spec, on_event)


def test_a_worker_keeps_only_kopfs_event_poster_of_the_handler_context(tmp_path: Path) -> None:
    cause_var: contextvars.ContextVar[Cause] = contextvars.ContextVar("cause_var")
    queue_var: contextvars.ContextVar[str] = contextvars.ContextVar("event_queue_var")
    seen: dict[str, Any] = {}

    async def script(h: Harness) -> None:
        def handler(cause: Cause) -> None:  # what kopf calls, in a context of its own
            seen["cause"] = weakref.ref(cause)
            cause_var.set(cause)
            queue_var.set("kopf's event queue")
            h.controller.observe(h.watch, "as", None, copy.deepcopy(h.kube.body))

        contextvars.copy_context().run(handler, Cause())
        worker = h.controller._resources["u1"].worker
        assert worker is not None
        await worker
        gc.collect()
        seen["alive"] = seen["cause"]() is not None

    executor = ContextExecutor()
    h = run_harness(tmp_path, WATCH, executor, script)
    assert h.runs() == [("create", False)]
    assert executor.contexts == [{queue_var: "kopf's event queue"}]
    assert seen["alive"] is False  # the finished worker's task does not keep the cause


def test_the_controller_keeps_bodies_without_managed_fields(tmp_path: Path) -> None:
    async def script(h: Harness) -> None:
        h.kube.body["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {}}]
        await h.settle()

    h = run_harness(tmp_path, WATCH, FakeExecutor(), script)
    kept = h.controller._resources["u1"].body
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["name"] == "x"
    assert kept["status"]["observedGeneration"] == 1
