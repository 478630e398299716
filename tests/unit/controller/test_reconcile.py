"""The controller's worker loop (bridge.controller.reconcile): retries and Stalled, requeue_after,
dependents, worker contexts and the bodies it keeps; with a fake cluster and executor."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import gc
import weakref
from datetime import timedelta
from pathlib import Path
from typing import Any

from bridge.executors import EventCallback
from bridge.model.records import RunResult, RunSpec
from tests.unit.controller.harness import NOW, Harness, run_harness, stamp
from tests.unit.helpers import FakeExecutor, make_watch

WATCH = make_watch(group="a.io", version="v1", kind="A", playbook=Path("/p.yml"))


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


# --- retries and Stalled (issue 16: Stalled only once no retry is coming) --------------------


def stalled(h: Harness) -> tuple[str, str]:
    found = h.condition("Stalled")
    return found["status"], found["message"]


def test_a_failed_run_is_not_stalled_while_retries_remain(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []

    async def script(h: Harness) -> None:
        await h.settle()
        seen.append(stalled(h))
        for wait in (10, 20, 40):  # the back-off: 10 s, doubled after each retry
            await h.settle(after=wait)
            seen.append(stalled(h))

    h = run_harness(tmp_path, WATCH, FakeExecutor(run="failed"), script)
    assert h.runs() == [("create", False), ("retry", False), ("retry", False), ("retry", False)]
    assert seen[0] == (
        "False",
        f"the run went wrong; retry 1 of 3 at {stamp(NOW + timedelta(seconds=10))}",
    )
    assert seen[1] == (
        "False",
        f"the run went wrong; retry 2 of 3 at {stamp(NOW + timedelta(seconds=30))}",
    )
    assert seen[2][0] == "False" and "retry 3 of 3" in seen[2][1]
    assert seen[3] == ("True", "retries exhausted after 4 attempts: the run went wrong")
    assert h.condition("Ready")["message"] == "the run went wrong"
    assert h.condition("Stalled")["reason"] == "Failed"


def test_a_failed_run_without_retries_is_stalled_at_once(tmp_path: Path) -> None:
    async def script(h: Harness) -> None:
        await h.settle()
        await h.settle(after=3600)

    watch = make_watch(WATCH, retry_limit=0)
    h = run_harness(tmp_path, watch, FakeExecutor(run="timeout"), script)
    assert h.runs() == [("create", False)]
    assert stalled(h) == ("True", "the run went wrong; will not be retried: the retry limit is 0")


def test_a_missing_secret_is_retried_and_not_stalled_until_retries_run_out(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []

    async def script(h: Harness) -> None:
        h.kube.body["spec"] = {"passwordFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}
        await h.settle()
        seen.append(stalled(h))
        await h.settle(after=5)
        seen.append(stalled(h))

    watch = make_watch(WATCH, retry_limit=1, retry_backoff=5.0)
    h = run_harness(tmp_path, watch, FakeExecutor(), script)
    assert h.runs() == []
    assert seen[0][0] == "False" and "retry 1 of 1 at" in seen[0][1]
    assert seen[1][0] == "True" and seen[1][1].startswith("retries exhausted after 2 attempts: ")
    assert h.condition("Stalled")["reason"] == "SecretNotFound"


def test_an_input_error_no_retry_fixes_is_stalled_and_says_so(tmp_path: Path) -> None:
    async def script(h: Harness) -> None:
        h.watch = make_watch(h.watch, playbook=tmp_path / "missing.yml")
        await h.settle()

    h = run_harness(tmp_path, WATCH, FakeExecutor(), script)
    assert h.runs() == []
    status, message = stalled(h)
    assert status == "True"
    assert message.endswith("; will not be retried: retrying the same input cannot help")
    assert h.condition("Stalled")["reason"] == "PlaybookNotFound"


# --- requeue_after travels in the result --------------------------------------------------------


def test_requeue_after_of_the_result_replaces_the_period_once(tmp_path: Path) -> None:
    async def script(h: Harness) -> None:
        await h.settle()
        await h.settle(after=29)
        await h.settle(after=1)

    watch = make_watch(WATCH, reconcile_period=3600.0)
    h = run_harness(tmp_path, watch, FakeExecutor(requeue_after=30.0), script)
    assert h.runs() == [("create", False), ("periodic", False)]
    assert h.status["lastRun"]["requeueAfter"] == 30.0


# --- dependents: the owner index -------------------------------------------------------------


def test_a_dependents_event_runs_its_owner_again(tmp_path: Path) -> None:
    found: list[bool] = []

    async def script(h: Harness) -> None:
        await h.settle()
        c = h.controller
        found.append(c.dependent_changed("a.io", "A", "ns", "x"))
        found.append(c.dependent_changed("a.io", "A", "ns", "y"))
        found.append(c.dependent_changed("a.io", "A", "other", "x"))
        found.append(c.dependent_changed("a.io", "A", "ns", "x", uid="not-u1"))
        found.append(c.dependent_changed("b.io", "A", "ns", "x"))
        await h.settle()

    watch = make_watch(WATCH, watch_dependent_resources=True)
    h = run_harness(tmp_path, watch, FakeExecutor(), script)
    assert found == [True, False, False, False, False]
    assert h.runs() == [("create", False), ("dependent", False)]


def test_a_watch_without_dependents_ignores_their_events(tmp_path: Path) -> None:
    found: list[bool] = []

    async def script(h: Harness) -> None:
        await h.settle()
        found.append(h.controller.dependent_changed("a.io", "A", "ns", "x"))

    h = run_harness(
        tmp_path, make_watch(WATCH, watch_dependent_resources=False), FakeExecutor(), script
    )
    assert found == [False]
    assert h.runs() == [("create", False)]


def test_a_requested_run_stopped_by_an_input_error_is_not_requested_again(tmp_path: Path) -> None:
    # The request is remembered with the error, so the worker does not try again at once (it
    # did: memory kept no request, and the same request looked new, over and over).
    async def script(h: Harness) -> None:
        h.watch = make_watch(h.watch, playbook=tmp_path / "missing.yml")
        h.kube.body["metadata"]["annotations"] = {"ansible-bridge.io/run-requested": "t1"}
        await asyncio.wait_for(h.settle(), timeout=5)

    h = run_harness(tmp_path, WATCH, FakeExecutor(), script)
    assert [e[1] for e in h.events] == ["PlaybookNotFound"]
