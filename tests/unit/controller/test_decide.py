"""What one resource needs next (bridge.controller.decide), without a cluster."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from bridge.controller.decide import Done, annotations_digest, decide, reconcile_period
from bridge.model.watch import FinalizerSpec
from tests.unit.controller.harness import NOW, stamp
from tests.unit.helpers import make_watch

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
