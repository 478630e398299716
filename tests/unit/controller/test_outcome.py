"""The outcome policy (bridge.controller.outcome) as a table: outcome x attempt x limit x
per-watch override -> retry time, Stalled or not, Event."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.config.settings import RetrySettings
from bridge.controller.decide import Done
from bridge.controller.outcome import (
    Attempt,
    Checked,
    Errored,
    Finished,
    Policy,
    RetryPolicy,
    settle,
    temporary_backoff,
)
from bridge.model.errors import (
    ConflictError,
    PermanentError,
    SecretNotFoundError,
    TemporaryError,
)
from bridge.model.records import HostStats, RunResult, RunStatus
from tests.unit.controller.harness import NOW, stamp
from tests.unit.helpers import make_watch

WATCH = make_watch(group="a.io", version="v1", kind="A", playbook=Path("/p.yml"))
SETTINGS = RetrySettings(initial=2.0, maximum=300.0, run_limit=3, run_backoff=10.0)


def attempt(number: int, kind: Any = "run") -> tuple[Attempt, Done | None]:
    """Attempt ``number`` of generation 1 (0: the first run), with the memory before it."""
    trigger: Any = "retry" if number else "update"
    memory = Done(1, NOW, attempt=number - 1, retry_at=NOW) if number else None
    return Attempt(kind, 1, trigger, "r1", NOW), memory


def result(status: RunStatus) -> RunResult:
    return RunResult("r1", status, 0 if status == "successful" else 2, {"h": HostStats(ok=1)})


@pytest.mark.parametrize(
    ("ended", "number", "limit", "backoff", "retry_in", "stalled", "event"),
    [
        # a run that failed, errored or timed out: retried min(backoff * 2**n, 300) later
        ("failed", 0, None, None, 10.0, False, ("Warning", "Failed")),
        ("failed", 1, None, None, 20.0, False, ("Warning", "Failed")),
        ("failed", 2, None, None, 40.0, False, ("Warning", "Failed")),
        ("failed", 3, None, None, None, True, ("Warning", "Failed")),  # exhausted
        ("timeout", 0, None, None, 10.0, False, ("Warning", "Timeout")),
        ("error", 0, None, None, 10.0, False, ("Warning", "RunnerError")),
        # the watch's own limit and back-off
        ("failed", 0, 0, None, None, True, ("Warning", "Failed")),  # limit 0: never
        ("failed", 0, 1, 100.0, 100.0, False, ("Warning", "Failed")),
        ("failed", 1, 1, 100.0, None, True, ("Warning", "Failed")),
        ("failed", 2, 5, 100.0, 300.0, False, ("Warning", "Failed")),  # capped at the maximum
        ("failed", 0, 5, 0.5, 0.5, False, ("Warning", "Failed")),
        # success and cancel: nothing to retry, never stalled
        ("successful", 0, None, None, None, False, ("Normal", "Succeeded")),
        ("successful", 2, 0, None, None, False, ("Normal", "Succeeded")),
        ("canceled", 0, None, None, None, False, ("Normal", "Canceled")),
        # a missing input waits for it with the same back-off; other input errors do not
        ("secret", 0, None, None, 10.0, False, ("Warning", "SecretNotFound")),
        ("secret-reason", 1, None, None, 20.0, False, ("Warning", "SecretKeyNotFound")),
        ("secret", 3, None, None, None, True, ("Warning", "SecretNotFound")),
        ("secret", 0, 0, None, None, True, ("Warning", "SecretNotFound")),
        ("invalid", 0, None, None, None, True, ("Warning", "PlaybookNotFound")),
        ("invalid", 0, 5, None, None, True, ("Warning", "PlaybookNotFound")),
    ],
)
def test_the_outcome_of_a_run(
    ended: str,
    number: int,
    limit: int | None,
    backoff: float | None,
    retry_in: float | None,
    stalled: bool,
    event: tuple[str, str],
) -> None:
    watch = make_watch(WATCH, retry_limit=limit, retry_backoff=backoff)
    policy = Policy.of(SETTINGS, watch)
    what, memory = attempt(number)
    outcome_of: RunResult | PermanentError
    if ended == "secret":
        outcome_of = SecretNotFoundError("Secret ns/db does not exist")
    elif ended == "secret-reason":  # raised as a plain PermanentError with the reason
        outcome_of = PermanentError("Secret ns/db has no key 'pw'", reason="SecretKeyNotFound")
    elif ended == "invalid":
        outcome_of = PermanentError("playbook not found", reason="PlaybookNotFound")
    else:
        outcome_of = result(ended)  # type: ignore[arg-type]
    outcome = settle(what, outcome_of, memory, policy, now=NOW)
    expected = None if retry_in is None else NOW + timedelta(seconds=retry_in)
    assert outcome.retry_at == expected
    assert outcome.event is not None
    assert (outcome.event.type, outcome.event.reason) == event
    update = outcome.status
    assert isinstance(update, Finished | Errored)
    assert update.stall.stalled is stalled
    # kstatus: InProgress (Reconciling True) while a retry is coming, Stalled once none is.
    conditions = {c["type"]: c for c in update.patch({}, NOW)["conditions"]}
    assert conditions["Stalled"]["status"] == ("True" if stalled else "False")
    assert conditions["Reconciling"]["status"] == ("True" if retry_in is not None else "False")
    if retry_in is not None:
        assert conditions["Reconciling"]["reason"] == "RetryScheduled"
        assert conditions["Reconciling"]["message"] == update.stall.message
    message = update.stall.message
    if retry_in is not None:
        assert expected is not None
        assert message.endswith(
            f"; retry {number + 1} of {policy.retry.limit} at {stamp(expected)}"
        )
    elif stalled and isinstance(outcome_of, PermanentError) and ended == "invalid":
        assert message.endswith("; will not be retried: retrying the same input cannot help")
    elif stalled and policy.retry.limit == 0:
        assert message.endswith("; will not be retried: the retry limit is 0")
    elif stalled:
        assert message.startswith(f"retries exhausted after {number + 1} attempts: ")
    if ended == "canceled":
        assert outcome.memory is memory  # the generation runs again
    else:
        assert outcome.memory is not None and outcome.memory.attempt == number
        assert outcome.memory.retry_at == expected
        assert outcome.memory.succeeded is (ended == "successful")


def test_the_retry_message_says_when() -> None:
    what, memory = attempt(0)
    outcome = settle(what, result("failed"), memory, Policy.of(SETTINGS, WATCH), now=NOW)
    assert isinstance(outcome.status, Finished)
    assert outcome.status.stall.message == (
        "ansible-playbook exited with rc 2; retry 1 of 3 at 2026-01-01T12:00:10Z"
    )


def test_a_run_that_is_not_a_retry_starts_counting_again() -> None:
    what = Attempt("run", 1, "update", "r1", NOW)
    memory = Done(1, NOW, attempt=3)
    outcome = settle(what, result("failed"), memory, Policy.of(SETTINGS, WATCH), now=NOW)
    assert outcome.memory is not None and outcome.memory.attempt == 0
    assert outcome.retry_at == NOW + timedelta(seconds=10)


def test_requeue_after_travels_from_the_result_into_memory_and_bookkeeping() -> None:
    what, memory = attempt(0)
    asked = RunResult("r1", "successful", 0, requeue_after=30.0)
    outcome = settle(what, asked, memory, Policy.of(SETTINGS, WATCH), now=NOW)
    assert outcome.memory is not None and outcome.memory.requeue_after == 30.0
    assert isinstance(outcome.status, Finished)
    assert outcome.status.bookkeeping == {"requeueAfter": 30.0}
    canceled = RunResult("r1", "canceled", requeue_after=30.0)
    outcome = settle(what, canceled, memory, Policy.of(SETTINGS, WATCH), now=NOW)
    assert isinstance(outcome.status, Finished) and outcome.status.bookkeeping == {}


@pytest.mark.parametrize(
    ("ended", "release", "event"),
    [
        ("successful", True, ("Normal", "Finalized")),
        ("failed", False, ("Warning", "FinalizerFailed")),
        ("timeout", False, ("Warning", "FinalizerFailed")),
        ("invalid", False, ("Warning", "SecretNotFound")),
    ],
)
def test_the_outcome_of_a_finalizer_run(ended: str, release: bool, event: tuple[str, str]) -> None:
    what, memory = attempt(0, kind="finalize")
    outcome_of: RunResult | PermanentError = (
        SecretNotFoundError("gone") if ended == "invalid" else result(ended)  # type: ignore[arg-type]
    )
    outcome = settle(what, outcome_of, memory, Policy.of(SETTINGS, WATCH), now=NOW)
    assert outcome.release_finalizer is release
    assert outcome.retry_in == (None if release else 5.0)
    assert outcome.event is not None and (outcome.event.type, outcome.event.reason) == event
    assert outcome.memory is memory
    if ended in ("failed", "timeout"):
        assert isinstance(outcome.status, Finished)
        assert not outcome.status.stall.stalled  # it is tried again for as long as it takes
        assert outcome.status.stall.message.endswith("the finalizer runs again in 5s")


@pytest.mark.parametrize(
    ("check", "before", "verdict", "event"),
    [
        ("drifted", None, "drifted", ("Warning", "Drifted")),
        ("drifted", "True", "drifted", None),  # the same drift again: no second Warning
        ("clean", None, "clean", None),
        ("clean", "True", "clean", ("Normal", "InSync")),
        ("failed", None, "failed", ("Warning", "CheckFailed")),
        ("unsupported", None, "failed", ("Warning", "CheckUnsupported")),
    ],
)
def test_the_outcome_of_a_drift_check(
    check: str, before: str | None, verdict: str, event: tuple[str, str] | None
) -> None:
    from bridge.controller.status import drift_condition
    from bridge.model.records import ChangedTask

    what = Attempt("check", 1, "drift", "c1", NOW)
    changed = (ChangedTask("h", "p", "Render"),)
    ended: RunResult | PermanentError
    if check == "drifted":
        ended = RunResult("c1", "successful", 0, {"h": HostStats(changed=1)}, changed_tasks=changed)
    elif check == "clean":
        ended = RunResult("c1", "successful", 0, {"h": HostStats(ok=1)})
    elif check == "failed":
        ended = RunResult("c1", "failed", 2, message="it broke")
    else:
        ended = PermanentError("cannot check", reason="CheckUnsupported")
    existing: dict[str, Any] = {}
    if before == "True":
        drifted = RunResult(
            "c0", "successful", 0, {"h": HostStats(changed=1)}, changed_tasks=changed
        )
        existing["conditions"] = [drift_condition(drifted, 1, NOW)]
        assert existing["conditions"][0]["status"] == "True"
    memory = Done(1, NOW - timedelta(hours=1), succeeded=True)
    outcome = settle(what, ended, memory, Policy.of(SETTINGS, WATCH), now=NOW, existing=existing)
    assert outcome.check == verdict
    assert outcome.memory is not None and outcome.memory.checked_at == NOW
    assert outcome.memory.drifted is (verdict == "drifted")
    assert outcome.memory.generation == 1 and outcome.memory.succeeded  # the run's record kept
    assert isinstance(outcome.status, Checked)
    if event is None:
        assert outcome.event is None
    else:
        assert outcome.event is not None and (outcome.event.type, outcome.event.reason) == event


def test_a_canceled_check_changes_nothing() -> None:
    what = Attempt("check", 1, "drift", "c1", NOW)
    memory = Done(1, NOW)
    outcome = settle(what, RunResult("c1", "canceled"), memory, Policy.of(SETTINGS, WATCH), now=NOW)
    assert outcome.memory is memory and outcome.event is None and outcome.status is None


@pytest.mark.parametrize(
    ("error", "delay", "wait", "next_delay"),
    [
        (TemporaryError("x", delay=0.0), 2.0, 2.0, 4.0),  # the worker's own back-off, doubled
        (TemporaryError("x", delay=0.0), 200.0, 200.0, 300.0),  # up to the maximum
        (TemporaryError("x"), 8.0, 5.0, 16.0),  # an error naming its delay is waited for
        (ConflictError("x"), 8.0, 8.0, 8.0),  # a conflict does not grow the delay
    ],
)
def test_the_workers_back_off_after_a_temporary_error(
    error: TemporaryError, delay: float, wait: float, next_delay: float
) -> None:
    assert temporary_backoff(error, delay, RetryPolicy.of(SETTINGS, WATCH)) == (wait, next_delay)


def test_the_watch_overrides_the_global_policy() -> None:
    assert RetryPolicy.of(SETTINGS, WATCH) == RetryPolicy(3, 10.0, 300.0, 2.0)
    own = make_watch(WATCH, retry_limit=0, retry_backoff=1.0)
    assert RetryPolicy.of(SETTINGS, own) == RetryPolicy(0, 1.0, 300.0, 2.0)


def test_requeue_after_travels_from_the_job_events_in_the_result() -> None:
    from bridge.ansible.results import ResultBuilder
    from bridge.model.records import RunnerEvent

    def requeue(period: str) -> RunnerEvent:
        data = {"host": "h", "task_action": "operator_sdk.util.requeue_after"}
        return RunnerEvent(event="runner_on_ok", event_data={**data, "res": {"period": period}})

    builder = ResultBuilder()
    for event in (requeue("30s"), requeue("5m")):  # the first one counts
        builder.feed(event)
    assert builder.result("r1", "successful", 0).requeue_after == 30.0
    assert ResultBuilder().result("r1", "successful", 0).requeue_after is None
