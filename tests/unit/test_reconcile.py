"""The scheduling policy of one resource (decide), without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bridge.reconcile import Done, annotations_digest, decide, reconcile_period
from bridge.structs import FinalizerSpec, Watch

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
WATCH = Watch(group="a.io", version="v1", kind="A", playbook=Path("/p.yml"))
FIN = Watch(
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
    watching = Watch(**{**WATCH.__dict__, "watch_annotations_changes": True})
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
    watch = Watch(**{**WATCH.__dict__, "reconcile_period": 60.0})
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
    watch = Watch(**{**WATCH.__dict__, "reconcile_period": 60.0})
    old = (NOW - timedelta(seconds=300)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {"observedGeneration": 1, "lastRun": {"generation": 1, "finishedAt": old}}
    done = Done(generation=1, finished_at=NOW)
    assert decide(body(1, status), watch, done=done, now=NOW).kind == "none"


def test_period_annotation_overrides_the_watch() -> None:
    watch = Watch(**{**WATCH.__dict__, "reconcile_period": 3600.0})
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
