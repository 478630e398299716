"""Status patches: condition merging, transition times, kstatus semantics, stale-key deletion.

Patches are applied with an RFC 7386 merge (what the API server does with kopf's patches), so
the tests check the status a resource ends up with, not only the patch.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest

from bridge.ansible.results import ResultBuilder, describe
from bridge.controller.status import (
    MAX_DRIFTED_TASKS,
    MAX_FAILED_TASKS,
    Condition,
    Stall,
    check_patch,
    condition,
    drift_condition,
    error_patch,
    finished_patch,
    merge_conditions,
    queued_patch,
    rfc3339,
    started_patch,
)
from bridge.model.records import (
    ChangedTask,
    FailedTask,
    HostStats,
    RunnerEvent,
    RunResult,
    RunStatus,
)
from tests.unit.helpers import merge

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
EVENTS = Path(__file__).parent.parent / "data" / "events"


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ts(seconds: int) -> str:
    return rfc3339(at(seconds))


def cond(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    (found,) = [c for c in status["conditions"] if c["type"] == type_]
    return cast(dict[str, Any], found)


def kstatus(generation: int, status: Mapping[str, Any]) -> str:
    """cli-utils kstatus for a custom resource (generic rules, no deletion)."""
    observed = status.get("observedGeneration")
    if observed is not None and observed != generation:
        return "InProgress"
    conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
    if conditions.get("Reconciling") == "True":
        return "InProgress"
    if conditions.get("Stalled") == "True":
        return "Failed"
    return "Current"


def ok_result(run_id: str = "run-1", **kw: Any) -> RunResult:
    hosts = kw.pop(
        "hosts", {"web1": HostStats(ok=3, changed=2), "web2": HostStats(ok=2, changed=1)}
    )
    return RunResult(run_id, "successful", 0, hosts=hosts, **kw)


def failed_result(run_id: str = "run-1", **kw: Any) -> RunResult:
    return RunResult(
        run_id,
        "failed",
        2,
        hosts={"web1": HostStats(ok=1, failed=1)},
        failed_tasks=(FailedTask("web1", "Install", "Install package", "no such package"),),
        **kw,
    )


# --- rfc3339 / condition --------------------------------------------------------------------


def test_rfc3339() -> None:
    assert rfc3339(datetime(2024, 5, 1, 10, 0, 7, 123456, tzinfo=UTC)) == "2024-05-01T10:00:07Z"
    plus2 = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2024, 5, 1, 12, 0, 7, tzinfo=plus2)) == "2024-05-01T10:00:07Z"
    assert rfc3339(datetime(2024, 5, 1, 10, 0, 7)) == "2024-05-01T10:00:07Z"  # naive = UTC


def test_condition() -> None:
    assert condition("Ready", "True", "Succeeded", "ok", 3, T0) == {
        "type": "Ready",
        "status": "True",
        "reason": "Succeeded",
        "message": "ok",
        "lastTransitionTime": "2024-05-01T10:00:00Z",
        "observedGeneration": 3,
    }


@pytest.mark.parametrize("reason", ["", "Not Valid", "1Starts", "ends,", "bad-dash"])
def test_condition_reason_must_fit_metav1_pattern(reason: str) -> None:
    assert condition("Ready", "False", reason, "m", 1, T0)["reason"] == "Error"


@pytest.mark.parametrize("reason", ["PlaybookNotFound", "A", "With_Underscore", "a:b,c"])
def test_condition_valid_reasons_kept(reason: str) -> None:
    assert condition("Ready", "False", reason, "m", 1, T0)["reason"] == reason


# --- merge_conditions -----------------------------------------------------------------------


def c(type_: str, status: str, reason: str = "R", since: int = 0, gen: int = 1) -> Condition:
    return cast(
        Condition, {**condition(type_, "True", reason, "m", gen, at(since)), "status": status}
    )


def test_merge_adds_new_conditions_at_the_end_in_given_order() -> None:
    merged = merge_conditions([c("A", "True")], [c("C", "True"), c("B", "False")], at(5))
    assert [x["type"] for x in merged] == ["A", "C", "B"]
    assert merged[1]["lastTransitionTime"] == ts(5)
    assert merged[2]["lastTransitionTime"] == ts(5)


def test_merge_replaces_in_place_and_keeps_others_verbatim() -> None:
    foreign: dict[str, Any] = {
        "type": "Deployed",
        "status": "True",
        "reason": "X",
        "custom": "kept",
    }
    existing: list[Mapping[str, Any]] = [c("Ready", "False"), foreign, c("Reconciling", "True")]
    merged = merge_conditions(existing, [c("Reconciling", "False", "Idle")], at(9))
    assert [x["type"] for x in merged] == ["Ready", "Deployed", "Reconciling"]
    assert merged[0] == existing[0]
    assert dict(merged[1]) == foreign
    assert merged[2]["reason"] == "Idle"


def test_transition_time_kept_when_status_unchanged() -> None:
    existing = [c("Ready", "False", "Failed", since=0, gen=1)]
    update = condition("Ready", "False", "Timeout", "new message", 2, at(60))
    (merged,) = merge_conditions(existing, [update], at(60))
    assert merged["lastTransitionTime"] == ts(0)
    assert merged["reason"] == "Timeout"
    assert merged["message"] == "new message"
    assert merged["observedGeneration"] == 2


@pytest.mark.parametrize(
    ("old", "new"), [("True", "False"), ("False", "Unknown"), ("Unknown", "True")]
)
def test_transition_time_changes_with_status(old: str, new: str) -> None:
    existing = [c("Ready", old, since=0)]
    update = cast(Condition, {**condition("Ready", "True", "R", "m", 1, at(0)), "status": new})
    (merged,) = merge_conditions(existing, [update], at(60))
    assert merged["lastTransitionTime"] == ts(60)
    assert merged["status"] == new


def test_transition_time_from_merge_now_not_from_update() -> None:
    update = condition("Ready", "True", "R", "m", 1, at(1000))
    (merged,) = merge_conditions([], [update], at(5))
    assert merged["lastTransitionTime"] == ts(5)


def test_existing_without_transition_time_gets_now() -> None:
    existing = [{"type": "Ready", "status": "True"}]
    (merged,) = merge_conditions(existing, [c("Ready", "True")], at(7))
    assert merged["lastTransitionTime"] == ts(7)


def test_merge_drops_duplicates_and_untyped_entries() -> None:
    existing = [
        c("Ready", "True", since=1),
        {"status": "True"},
        c("Ready", "False", since=2),
        c("Other", "True"),
        c("Other", "False"),
    ]
    merged = merge_conditions(existing, [], at(9))
    assert [(x["type"], x["status"]) for x in merged] == [("Ready", "True"), ("Other", "True")]


def test_merge_does_not_mutate_inputs() -> None:
    existing = [c("Ready", "True")]
    updates = [c("Ready", "False"), c("New", "True")]
    before = copy.deepcopy((existing, updates))
    merge_conditions(existing, updates, at(3))
    assert (existing, updates) == before


# --- queued / started -----------------------------------------------------------------------


def test_first_queued_run() -> None:
    patch = queued_patch(None, 1, "create", T0)
    assert set(patch) == {"conditions"}  # no observedGeneration before a run finishes
    status = merge({}, patch)
    assert cond(status, "Reconciling") == {
        "type": "Reconciling",
        "status": "True",
        "reason": "Queued",
        "message": "a run for generation 1 is queued (trigger: create)",
        "lastTransitionTime": ts(0),
        "observedGeneration": 1,
    }
    assert cond(status, "Ready")["status"] == "Unknown"
    assert cond(status, "Ready")["reason"] == "Queued"
    assert cond(status, "Stalled")["status"] == "False"
    assert [x["type"] for x in status["conditions"]] == ["Ready", "Reconciling", "Stalled"]
    assert kstatus(1, status) == "InProgress"


def test_started_sets_current_run() -> None:
    status = merge({}, queued_patch(None, 1, "create", at(0)))
    patch = started_patch(status, "run-1", 1, "create", at(2))
    status = merge(status, patch)
    assert status["currentRun"] == {
        "id": "run-1",
        "generation": 1,
        "trigger": "create",
        "startedAt": ts(2),
    }
    reconciling = cond(status, "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("True", "Running")
    assert reconciling["lastTransitionTime"] == ts(0)  # still True: queued -> running
    assert "run-1" in reconciling["message"]
    ready = cond(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("Unknown", "Running")
    assert ready["lastTransitionTime"] == ts(0)
    assert kstatus(1, status) == "InProgress"


def test_manage_status_false_in_progress() -> None:
    assert queued_patch(None, 1, "create", T0, manage_status=False) == {}
    patch = started_patch(None, "run-1", 1, "create", T0, manage_status=False)
    assert patch == {
        "currentRun": {"id": "run-1", "generation": 1, "trigger": "create", "startedAt": ts(0)}
    }


# --- finished -------------------------------------------------------------------------------


#: The Operator SDK's conditions, written next to ours (tests/unit/test_sdk_options.py).
SDK_TYPES = ["Running", "Successful", "Failure"]


def run_once(
    status: Mapping[str, Any],
    result: RunResult,
    generation: int,
    start: int,
    *,
    trigger: Any = "update",
    manage_status: bool = True,
    stall: Stall | None = None,
) -> dict[str, Any]:
    """queued -> started -> finished, applying each patch; returns the final status. ``stall``:
    the outcome policy's verdict; by default, for a failed, timed-out or errored run, no retry
    left (Stalled True, with the Ready message)."""
    if stall is None and result.status in ("failed", "timeout", "error"):
        stall = Stall(True, describe(result) or f"the run ended: {result.status}")
    kw = {"manage_status": manage_status}
    status = merge(status, queued_patch(status, generation, trigger, at(start), **kw))
    status = merge(
        status, started_patch(status, result.run_id, generation, trigger, at(start + 1), **kw)
    )
    patch = finished_patch(
        status,
        result,
        generation,
        trigger,
        at(start + 1),
        at(start + 9),
        manage_status,
        stall=stall,
    )
    json.dumps(patch)  # plain JSON data
    return cast(dict[str, Any], merge(status, patch))


def test_success() -> None:
    status = run_once({}, ok_result(outputs={"url": "http://x"}), 1, 0, trigger="create")
    assert status["observedGeneration"] == 1
    assert "currentRun" not in status
    assert cond(status, "Ready") == {
        "type": "Ready",
        "status": "True",
        "reason": "Succeeded",
        "message": "3 changed on 2 hosts",
        "lastTransitionTime": ts(9),
        "observedGeneration": 1,
    }
    reconciling = cond(status, "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("False", "Idle")
    assert reconciling["lastTransitionTime"] == ts(9)
    stalled = cond(status, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("False", "Succeeded")
    assert stalled["lastTransitionTime"] == ts(0)
    assert status["lastRun"] == {
        "id": "run-1",
        "generation": 1,
        "trigger": "create",
        "startedAt": ts(1),
        "finishedAt": ts(9),
        "result": "successful",
        "changed": 3,
        "hosts": {
            "web1": {
                "ok": 3,
                "changed": 2,
                "failed": 0,
                "skipped": 0,
                "unreachable": 0,
                "rescued": 0,
                "ignored": 0,
            },
            "web2": {
                "ok": 2,
                "changed": 1,
                "failed": 0,
                "skipped": 0,
                "unreachable": 0,
                "rescued": 0,
                "ignored": 0,
            },
        },
        "failedTasks": [],
    }
    assert status["outputs"] == {"url": "http://x"}
    assert kstatus(1, status) == "Current"


def test_failure() -> None:
    status = run_once({}, failed_result(), 1, 0)
    ready = cond(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Failed")
    assert ready["message"] == "task 'Install package' on web1: no such package"
    stalled = cond(status, "Stalled")
    assert (stalled["status"], stalled["reason"], stalled["message"]) == (
        "True",
        "Failed",
        ready["message"],
    )
    assert status["observedGeneration"] == 1
    assert status["lastRun"]["result"] == "failed"
    assert status["lastRun"]["failedTasks"] == [
        {"host": "web1", "play": "Install", "task": "Install package", "message": "no such package"}
    ]
    assert "outputs" not in status
    assert kstatus(1, status) == "Failed"


@pytest.mark.parametrize(
    ("run_status", "reason", "stalled", "message"),
    [
        ("failed", "Failed", "True", "ansible-playbook exited with rc 2"),
        ("timeout", "Timeout", "True", "the run exceeded its time limit"),
        ("error", "RunnerError", "True", "the runner could not run the playbook"),
    ],
)
def test_unsuccessful_outcomes(
    run_status: RunStatus, reason: str, stalled: str, message: str
) -> None:
    status = run_once({}, RunResult("run-1", run_status, 2), 1, 0)
    ready = cond(status, "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", reason, message)
    assert cond(status, "Stalled")["status"] == stalled
    assert cond(status, "Reconciling")["status"] == "False"
    assert status["observedGeneration"] == 1
    assert status["lastRun"]["result"] == run_status
    assert kstatus(1, status) == "Failed"


def test_canceled_run_leaves_its_generation_unobserved() -> None:
    status = run_once({}, ok_result("r1"), 1, 0)
    status = run_once(status, RunResult("r2", "canceled", None), 2, 100)
    assert status["observedGeneration"] == 1  # generation 2 still to be run (on resume)
    ready = cond(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Canceled")
    assert ready["message"] == "the run was canceled"
    assert cond(status, "Stalled")["status"] == "False"
    assert cond(status, "Reconciling")["status"] == "False"
    assert "currentRun" not in status
    assert status["lastRun"]["result"] == "canceled"
    assert status["lastRun"]["generation"] == 2
    assert kstatus(2, status) == "InProgress"
    # resumed: the same generation runs again and succeeds
    status = run_once(status, ok_result("r3"), 2, 200, trigger="resume")
    assert status["observedGeneration"] == 2
    assert kstatus(2, status) == "Current"


def test_manage_status_false_canceled() -> None:
    status = run_once({}, RunResult("r", "canceled", None), 1, 0, manage_status=False)
    assert "observedGeneration" not in status
    assert status["lastRun"]["result"] == "canceled"


def test_result_message_reaches_ready() -> None:
    status = run_once({}, RunResult("r", "timeout", None, message="stopped after 3600 s"), 1, 0)
    assert cond(status, "Ready")["message"] == "stopped after 3600 s"


def test_failed_tasks_capped() -> None:
    tasks = tuple(FailedTask(f"h{i}", "p", "t", "m") for i in range(MAX_FAILED_TASKS + 5))
    status = run_once({}, RunResult("r", "failed", 2, failed_tasks=tasks), 1, 0)
    assert len(status["lastRun"]["failedTasks"]) == MAX_FAILED_TASKS
    assert status["lastRun"]["failedTasks"][0]["host"] == "h0"
    assert cond(status, "Ready")["message"] == f"task 't' on h0: m (+{MAX_FAILED_TASKS + 4} more)"


def test_result_from_real_events() -> None:
    data = json.loads((EVENTS / "multihost.json").read_text())
    builder = ResultBuilder()
    for event in data["events"]:
        builder.feed(cast(RunnerEvent, event))
    result = builder.result("run-9", data["status"], data["rc"])
    status = run_once({}, result, 4, 0)
    assert set(status["lastRun"]["hosts"]) == {"host1", "host2", "host3"}
    assert status["lastRun"]["hosts"]["host3"]["unreachable"] == 1
    assert status["lastRun"]["changed"] == 2
    assert cond(status, "Ready")["message"].startswith("task 'Ping' on host3: ")


# --- transition times and kstatus over a resource's life ------------------------------------


def test_lifecycle_transition_times_and_kstatus() -> None:
    # generation 1 succeeds
    status = run_once({}, ok_result("r1"), 1, 0, trigger="create")
    assert kstatus(1, status) == "Current"
    assert cond(status, "Ready")["lastTransitionTime"] == ts(9)

    # a periodic re-run of the same generation: Ready stays True and keeps its time
    status = merge(status, queued_patch(status, 1, "resume", at(100)))
    assert cond(status, "Ready")["status"] == "True"
    assert cond(status, "Ready")["lastTransitionTime"] == ts(9)
    assert cond(status, "Reconciling")["lastTransitionTime"] == ts(100)
    assert kstatus(1, status) == "InProgress"
    status = run_once(status, ok_result("r2"), 1, 100, trigger="resume")
    assert cond(status, "Ready")["lastTransitionTime"] == ts(9)
    assert cond(status, "Reconciling")["lastTransitionTime"] == ts(109)
    assert status["lastRun"]["id"] == "r2"
    assert kstatus(1, status) == "Current"

    # the spec changes (generation 2): kstatus sees the lag before the bridge does anything
    assert kstatus(2, status) == "InProgress"
    status = merge(status, queued_patch(status, 2, "update", at(200)))
    ready = cond(status, "Ready")
    assert (ready["status"], ready["lastTransitionTime"]) == ("Unknown", ts(200))
    assert status["observedGeneration"] == 1  # not before the run of generation 2 finished
    assert kstatus(2, status) == "InProgress"

    # generation 2 fails
    status = run_once(status, failed_result("r3"), 2, 200)
    ready = cond(status, "Ready")
    assert (ready["status"], ready["lastTransitionTime"]) == ("False", ts(209))
    assert cond(status, "Stalled")["lastTransitionTime"] == ts(209)
    assert kstatus(2, status) == "Failed"

    # a retry of generation 2: Stalled goes False at once, Ready stays False (same generation)
    status = merge(status, queued_patch(status, 2, "resume", at(300)))
    assert cond(status, "Stalled")["status"] == "False"
    assert cond(status, "Ready") == ready
    assert kstatus(2, status) == "InProgress"

    # ... and fails again, differently: Ready keeps its transition time
    status = run_once(status, RunResult("r4", "timeout", None), 2, 300)
    ready = cond(status, "Ready")
    assert (ready["reason"], ready["lastTransitionTime"]) == ("Timeout", ts(209))
    assert kstatus(2, status) == "Failed"

    # generation 3 succeeds
    status = run_once(status, ok_result("r5"), 3, 400)
    assert cond(status, "Ready")["lastTransitionTime"] == ts(409)
    assert cond(status, "Stalled")["lastTransitionTime"] == ts(400)
    assert kstatus(3, status) == "Current"
    assert [x["type"] for x in status["conditions"]] == [
        "Ready",
        "Reconciling",
        "Stalled",
        *SDK_TYPES,  # the Operator SDK's, after ours
    ]


def test_foreign_conditions_survive_every_patch() -> None:
    foreign = {"type": "Deployed", "status": "True", "reason": "ByPlaybook", "message": "x"}
    status: dict[str, Any] = {"conditions": [foreign]}
    status = run_once(status, ok_result(), 1, 0)
    status = merge(status, error_patch(status, 2, "PlaybookNotFound", "no playbook", at(50)))
    assert status["conditions"][0] == foreign
    assert [x["type"] for x in status["conditions"]] == [
        "Deployed",
        "Ready",
        "Reconciling",
        "Stalled",
        *SDK_TYPES,
    ]


# --- stale keys -----------------------------------------------------------------------------


def test_previous_run_hosts_and_outputs_are_removed() -> None:
    first = ok_result(
        "r1",
        hosts={"a": HostStats(ok=1), "b": HostStats(ok=1)},
        outputs={"url": "u", "old": 1, "nested": {"keep": 1, "drop": 2}},
    )
    status = run_once({}, first, 1, 0)
    second = ok_result(
        "r2", hosts={"a": HostStats(ok=2)}, outputs={"url": "v", "nested": {"keep": 3}}
    )
    status = run_once(status, second, 2, 100)
    assert status["lastRun"]["hosts"] == {
        "a": {
            "ok": 2,
            "changed": 0,
            "failed": 0,
            "skipped": 0,
            "unreachable": 0,
            "rescued": 0,
            "ignored": 0,
        }
    }
    assert status["outputs"] == {"url": "v", "nested": {"keep": 3}}


def test_outputs_kept_after_a_failed_run() -> None:
    status = run_once({}, ok_result(outputs={"url": "u"}), 1, 0)
    status = run_once(status, failed_result(outputs={"partial": True}), 2, 100)
    assert status["outputs"] == {"url": "u"}


def test_outputs_replaced_by_empty_after_success_without_set_stats() -> None:
    status = run_once({}, ok_result(outputs={"url": "u"}), 1, 0)
    status = run_once(status, ok_result("r2"), 2, 100)
    assert status.get("outputs", {}) == {}


def test_outputs_lists_and_scalars_replace_whole() -> None:
    status = run_once({}, ok_result(outputs={"x": [1, 2, 3], "y": {"a": 1}}), 1, 0)
    status = run_once(status, ok_result("r2", outputs={"x": [9], "y": 5}), 2, 100)
    assert status["outputs"] == {"x": [9], "y": 5}


# --- manage_status: False -------------------------------------------------------------------


def test_manage_status_false_writes_only_bookkeeping() -> None:
    playbook_status = {"conditions": [{"type": "Custom", "status": "True"}], "mine": 1}
    status = run_once(playbook_status, ok_result(outputs={"o": 1}), 1, 0, manage_status=False)
    assert status == {
        "conditions": [{"type": "Custom", "status": "True"}],
        "mine": 1,
        "observedGeneration": 1,
        "lastRun": {
            "id": "run-1",
            "generation": 1,
            "trigger": "update",
            "startedAt": ts(1),
            "finishedAt": ts(9),
            "result": "successful",
        },
    }


def test_manage_status_false_after_true_drops_run_details() -> None:
    status = run_once({}, failed_result(), 1, 0)
    conditions = status["conditions"]
    status = run_once(status, ok_result("r2"), 2, 100, manage_status=False)
    assert set(status["lastRun"]) == {
        "id",
        "generation",
        "trigger",
        "startedAt",
        "finishedAt",
        "result",
    }
    assert status["conditions"] == conditions  # left alone
    assert status["observedGeneration"] == 2


# --- permanent errors -----------------------------------------------------------------------


def test_error_patch_before_any_run() -> None:
    patch = error_patch(None, 1, "PlaybookNotFound", "playbook site.yml not found", T0)
    assert "currentRun" not in patch
    status = merge({}, patch)
    assert status["observedGeneration"] == 1
    for type_, value in (("Ready", "False"), ("Reconciling", "False"), ("Stalled", "True")):
        found = cond(status, type_)
        assert found["status"] == value
        assert found["reason"] == "PlaybookNotFound"
        assert found["message"] == "playbook site.yml not found"
        assert found["observedGeneration"] == 1
        assert found["lastTransitionTime"] == ts(0)
    assert kstatus(1, status) == "Failed"


def test_error_patch_clears_an_interrupted_run_and_keeps_ready_time() -> None:
    status = run_once({}, failed_result(), 1, 0)
    status = merge(status, started_patch(status, "r2", 2, "update", at(50)))
    patch = error_patch(status, 2, "InvalidInput", "spec.x must be a string", at(60))
    assert patch["currentRun"] is None
    status = merge(status, patch)
    assert "currentRun" not in status
    ready = cond(status, "Ready")
    # Ready went Unknown when generation 2 started, so False again is a transition.
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == (
        "False",
        "InvalidInput",
        ts(60),
    )
    assert cond(status, "Stalled")["lastTransitionTime"] == ts(60)


def test_error_reason_sanitized() -> None:
    status = merge({}, error_patch({}, 1, "not a reason!", "m", T0))
    assert cond(status, "Ready")["reason"] == "Error"


def test_patches_do_not_mutate_existing_status() -> None:
    status = run_once({}, ok_result(outputs={"a": {"b": 1}}), 1, 0)
    before = copy.deepcopy(status)
    queued_patch(status, 2, "update", at(10))
    started_patch(status, "r", 2, "update", at(10))
    finished_patch(status, failed_result(), 2, "update", at(10), at(20))
    error_patch(status, 2, "X", "m", at(20))
    assert status == before


# --- drift checks: lastCheck and Drifted ----------------------------------------------------


def drifted_result(run_id: str = "chk-1", n: int = 2) -> RunResult:
    tasks = tuple(
        ChangedTask(host, "Configure", task)
        for task in ("Render config", "Write motd")
        for host in ("web1", "web2")
    )[:n]
    hosts = {h: HostStats(ok=3, changed=sum(t.host == h for t in tasks)) for h in ("web1", "web2")}
    return RunResult(run_id, "successful", 0, hosts=hosts, changed_tasks=tasks)


def clean_result(run_id: str = "chk-2") -> RunResult:
    return RunResult(run_id, "successful", 0, hosts={"web1": HostStats(ok=3)})


def check_once(
    status: Mapping[str, Any],
    result: RunResult,
    start: int,
    *,
    generation: int = 1,
    manage_status: bool = True,
    reason: str | None = None,
) -> dict[str, Any]:
    patch = check_patch(
        status,
        result,
        generation,
        at(start),
        at(start + 5),
        manage_status=manage_status,
        reason=reason,
    )
    json.dumps(patch)  # plain JSON data
    return cast(dict[str, Any], merge(status, patch))


def test_a_drifted_check_writes_last_check_and_drifted_and_nothing_else() -> None:
    status = run_once({}, ok_result(outputs={"url": "u"}), 1, 0, trigger="create")
    after = check_once(status, drifted_result(n=3), 100)
    assert {k: v for k, v in after.items() if k not in ("lastCheck", "conditions")} == {
        k: v for k, v in status.items() if k != "conditions"
    }
    # Ready, Reconciling, Stalled (and the Operator SDK's) kept
    assert [c for c in after["conditions"] if c["type"] != "Drifted"] == status["conditions"]
    drifted = cond(after, "Drifted")
    assert drifted == {
        "type": "Drifted",
        "status": "True",
        "reason": "Drifted",
        "message": "2 tasks would change: 'Render config' on web1, web2; 'Write motd' on web1",
        "lastTransitionTime": ts(105),
        "observedGeneration": 1,
    }
    assert after["lastCheck"] == {
        "id": "chk-1",
        "generation": 1,
        "startedAt": ts(100),
        "finishedAt": ts(105),
        "result": "successful",
        "changed": 3,
        "drifted": [
            {"host": "web1", "task": "Render config"},
            {"host": "web2", "task": "Render config"},
            {"host": "web1", "task": "Write motd"},
        ],
    }
    assert kstatus(1, after) == "Current"  # a check is not progress


def test_drifted_keeps_its_transition_time_while_the_drift_stays() -> None:
    status = check_once({}, drifted_result(), 100)
    status = check_once(status, drifted_result("chk-9", n=4), 700)
    drifted = cond(status, "Drifted")
    assert drifted["lastTransitionTime"] == ts(105)
    assert drifted["message"].startswith("2 tasks would change:")
    assert status["lastCheck"]["id"] == "chk-9"


def test_at_most_max_drifted_tasks_are_listed() -> None:
    tasks = tuple(ChangedTask("h", "p", f"task {i}") for i in range(MAX_DRIFTED_TASKS + 5))
    result = RunResult("c", "successful", 0, {"h": HostStats(changed=15)}, changed_tasks=tasks)
    status = check_once({}, result, 0)
    assert len(status["lastCheck"]["drifted"]) == MAX_DRIFTED_TASKS
    assert status["lastCheck"]["changed"] == MAX_DRIFTED_TASKS + 5
    assert cond(status, "Drifted")["message"] == (
        "15 tasks would change: 'task 0' on h; 'task 1' on h; 'task 2' on h (+12 more)"
    )


def test_a_clean_check_is_in_sync_and_clears_the_drifted_list() -> None:
    status = check_once({}, drifted_result(), 0)
    status = check_once(status, clean_result(), 600)
    drifted = cond(status, "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("False", "InSync")
    assert drifted["message"] == "a check of generation 1 found nothing to change"
    assert drifted["lastTransitionTime"] == ts(605)
    assert status["lastCheck"]["drifted"] == [] and status["lastCheck"]["changed"] == 0


def test_a_failed_check_is_unknown_with_its_reason() -> None:
    failed = RunResult(
        "chk-3",
        "failed",
        2,
        hosts={"web1": HostStats(ok=1, failed=1)},
        failed_tasks=(FailedTask("web1", "Configure", "Query the API", "HTTP 503"),),
    )
    status = check_once({}, failed, 0)
    drifted = cond(status, "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("Unknown", "CheckFailed")
    assert drifted["message"] == "task 'Query the API' on web1: HTTP 503"
    assert status["lastCheck"]["result"] == "failed"
    timeout = RunResult("chk-4", "timeout", message="the run exceeded its timeout")
    assert cond(check_once({}, timeout, 0), "Drifted")["reason"] == "CheckTimeout"
    missing = RunResult("chk-5", "error", message="secret db not found")
    status = check_once({}, missing, 0, reason="SecretNotFound")
    assert cond(status, "Drifted")["reason"] == "SecretNotFound"
    assert cond(status, "Drifted")["message"] == "secret db not found"


def test_a_check_with_manage_status_false_writes_last_check_only() -> None:
    playbook_status = {"conditions": [{"type": "Custom", "status": "True"}], "mine": 1}
    status = check_once(playbook_status, drifted_result(), 0, manage_status=False)
    assert status["conditions"] == playbook_status["conditions"]
    assert status["mine"] == 1
    assert status["lastCheck"]["changed"] == 2


def test_drift_condition_compares_equal_for_the_same_verdict() -> None:
    first = drift_condition(drifted_result("a"), 1, at(0))
    again = drift_condition(drifted_result("b"), 1, at(600))
    assert {k: v for k, v in first.items() if k != "lastTransitionTime"} == {
        k: v for k, v in again.items() if k != "lastTransitionTime"
    }


def test_a_successful_run_sets_drifted_false_when_the_watch_checks() -> None:
    status = run_once({}, ok_result(), 1, 0)
    assert "Drifted" not in [c["type"] for c in status["conditions"]]  # no drift, no condition
    patch = finished_patch(status, ok_result("r2"), 1, "periodic", at(99), at(100), drift=True)
    drifted = cond(merge(status, patch), "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("False", "InSync")
    assert drifted["message"] == "run r2 applied generation 1 (trigger: periodic)"


def test_a_run_after_drift_sets_in_sync_only_when_it_succeeds() -> None:
    status = check_once(run_once({}, ok_result(), 1, 0), drifted_result(), 100)
    failed = merge(
        status, finished_patch(status, failed_result("r2"), 1, "drift", at(110), at(120))
    )
    assert cond(failed, "Drifted")["status"] == "True"
    assert failed["lastCheck"] == status["lastCheck"]
    # The condition exists, so a success clears it even without drift=True (drift turned off).
    ok = merge(failed, finished_patch(failed, ok_result("r3"), 1, "retry", at(130), at(140)))
    drifted = cond(ok, "Drifted")
    assert (drifted["status"], drifted["reason"], drifted["lastTransitionTime"]) == (
        "False",
        "InSync",
        ts(140),
    )


def test_stalled_follows_the_outcome_policys_verdict() -> None:
    waiting = Stall(False, "no such package; retry 1 of 3 at 2024-05-01T10:00:19Z")
    status = run_once({}, failed_result(), 1, 0, stall=waiting)
    stalled = cond(status, "Stalled")
    assert (stalled["status"], stalled["reason"], stalled["message"]) == (
        "False",
        "Failed",
        waiting.message,
    )
    assert cond(status, "Ready")["status"] == "False"
    retried = error_patch({}, 1, "SecretNotFound", "no Secret", T0, stall=Stall(False, "soon"))
    assert cond(merge({}, retried), "Stalled")["status"] == "False"
    assert cond(merge({}, retried), "Stalled")["message"] == "soon"
