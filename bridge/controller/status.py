"""Build the merge patches of a resource's ``.status``: kstatus conditions, run records, outputs.

What the status holds and means is described once, in the README's "What comes back" section.
Every builder here returns the value for ``.status`` in a JSON merge patch (RFC 7386, what kopf
sends for custom resources): ``None`` deletes a key, nested mappings merge, lists
(``conditions``, ``failedTasks``) replace whole. So builders read the existing status to carry
over the conditions they do not own and to delete stale keys of mappings they rewrite. Whether
``Stalled`` is True is not decided here but by the outcome policy
(:mod:`bridge.controller.outcome`), which hands over a :class:`Stall`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict, cast

from bridge.ansible.results import describe, describe_drift
from bridge.controller import bounds
from bridge.model.annotations import SUSPEND
from bridge.model.records import HostStats, RunResult, RunStatus, Trigger, plain

ConditionStatus = Literal["True", "False", "Unknown"]

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
SUSPENDED = "Suspended"
DRIFTED = "Drifted"

#: The Operator SDK's (ansible-operator's) conditions, written next to ours (manageStatus only).
SDK_RUNNING = "Running"
SDK_SUCCESSFUL = "Successful"
SDK_FAILURE = "Failure"

#: The Reconciling reason while a retry of a failed attempt is scheduled.
RETRY_SCHEDULED = "RetryScheduled"

#: The annotation that suspends a resource's runs (all but the finalizer's) when "true".
SUSPEND_ANNOTATION = SUSPEND

#: At most this many failed tasks are kept in ``status.lastRun.failedTasks``.
MAX_FAILED_TASKS = 10
#: At most this many changed tasks are kept in ``status.lastCheck.drifted``.
MAX_DRIFTED_TASKS = 10
#: At most this many hosts are kept in ``status.lastRun.hosts`` (the play recap's first ones).
MAX_HOSTS = 100
#: A condition's message, and a task's or play's name in the status, are cut to this length.
MAX_TEXT = 4000
#: The largest ``set_stats`` outputs written to ``status.outputs``, as compact JSON (and at most
#: :data:`bounds.MAX_DEPTH` levels deep). With the other bounds here, a status patch stays far
#: below etcd's 1.5 MiB request limit.
MAX_OUTPUTS_BYTES = 64 * 1024

#: The Ready (and Stalled) reason for each way a run can end.
RESULT_REASONS: Mapping[RunStatus, str] = {
    "successful": "Succeeded",
    "failed": "Failed",
    "canceled": "Canceled",
    "timeout": "Timeout",
    "error": "RunnerError",
}
#: The Drifted reason (status Unknown) for each way a check run can fail.
CHECK_REASONS: Mapping[RunStatus, str] = {
    "failed": "CheckFailed",
    "canceled": "CheckCanceled",
    "timeout": "CheckTimeout",
    "error": "CheckError",
}
# metav1.Condition's reason pattern.
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class Stall:
    """The ``Stalled`` condition's verdict (kstatus: True when no retry is coming that could
    help), and its message: why not, or when the next attempt is."""

    stalled: bool
    message: str
    #: Another attempt is scheduled (a retry): ``Reconciling`` stays True (reason
    #: :data:`RETRY_SCHEDULED`, with the message), so kstatus reads the resource as InProgress.
    retrying: bool = False


class Condition(TypedDict):
    """One entry of ``status.conditions``, shaped like ``metav1.Condition``."""

    type: str
    status: ConditionStatus
    reason: str
    message: str
    #: RFC 3339 in UTC with a ``Z``, to the second: when ``status`` last changed.
    lastTransitionTime: str
    #: The ``metadata.generation`` this condition was set for.
    observedGeneration: int


def rfc3339(when: datetime) -> str:
    """``when`` as Kubernetes writes times: ``2024-05-01T10:00:07Z`` (naive means UTC)."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> Condition:
    """A condition as of ``now``; :func:`merge_conditions` keeps an older transition time."""
    return Condition(
        type=type_,
        status=status,
        reason=reason if _REASON.match(reason) else "Error",
        message=_cut(message),
        lastTransitionTime=rfc3339(now),
        observedGeneration=generation,
    )


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], updates: Sequence[Condition], now: datetime
) -> list[Condition]:
    """The conditions after setting ``updates`` over ``existing``, keyed by ``type``.

    An update replaces the condition of its type in place; its ``lastTransitionTime`` is the
    existing one when ``status`` did not change, else ``now``. Conditions of other types are kept
    as they are, in their order; new types go at the end, in the order given. Each type appears
    once (the first entry wins).
    """
    stamp = rfc3339(now)
    by_type = {u["type"]: u for u in updates}
    merged: list[Condition] = []
    seen: set[str] = set()
    for old in existing:
        type_ = old.get("type")
        if not isinstance(type_, str) or type_ in seen:
            continue
        seen.add(type_)
        update = by_type.get(type_)
        if update is None:
            merged.append(cast(Condition, dict(old)))
            continue
        since = old.get("lastTransitionTime")
        if old.get("status") != update["status"] or not isinstance(since, str) or not since:
            since = stamp
        merged.append({**update, "lastTransitionTime": since})
    for update in updates:
        if update["type"] not in seen:
            seen.add(update["type"])
            merged.append({**update, "lastTransitionTime": stamp})
    return merged


def queued_patch(
    existing_status: Mapping[str, Any] | None,
    generation: int,
    trigger: Trigger,
    now: datetime,
    *,
    manage_status: bool = True,
) -> dict[str, Any]:
    """A run for ``generation`` is waiting for a free runner: Reconciling True (Queued)."""
    if not manage_status:
        return {}
    message = f"a run for generation {generation} is queued (trigger: {trigger})"
    return _in_progress(existing_status, "Queued", message, generation, now)


def started_patch(
    existing_status: Mapping[str, Any] | None,
    run_id: str,
    generation: int,
    trigger: Trigger,
    now: datetime,
    *,
    manage_status: bool = True,
) -> dict[str, Any]:
    """Run ``run_id`` started: Reconciling True (Running) and ``currentRun`` set."""
    patch: dict[str, Any] = {
        "currentRun": _replace(
            _get(existing_status, "currentRun"),
            {"id": run_id, "generation": generation, "trigger": trigger, "startedAt": rfc3339(now)},
        )
    }
    if manage_status:
        message = f"run {run_id} of generation {generation} is running (trigger: {trigger})"
        patch.update(_in_progress(existing_status, "Running", message, generation, now))
        patch["conditions"] = merge_conditions(
            patch["conditions"], sdk_started(_conditions(existing_status), now), now
        )
    return patch


def finished_patch(
    existing_status: Mapping[str, Any] | None,
    result: RunResult,
    generation: int,
    trigger: Trigger,
    started_at: datetime,
    now: datetime,
    manage_status: bool = True,
    bookkeeping: Mapping[str, Any] | None = None,
    keep_runs: int = 5,
    drift: bool = False,
    stall: Stall | None = None,
) -> dict[str, Any]:
    """Run ``result.run_id`` of ``generation`` ended: lastRun, observedGeneration (unless it was
    canceled), conditions (Ready by the outcome, Reconciling False, Stalled as ``stall`` says,
    None: False) and, after a success, outputs. ``bookkeeping``: more keys for ``lastRun`` that the
    scheduler reads back (kept with manage_status False too). ``drift``: the watch checks for
    drift, so a success sets ``Drifted`` False (as it does wherever the condition exists)."""
    last_run: dict[str, Any] = {
        "id": result.run_id,
        "generation": generation,
        "trigger": trigger,
        "startedAt": rfc3339(started_at),
        "finishedAt": rfc3339(now),
        "result": result.status,
        **(bookkeeping or {}),
    }
    patch: dict[str, Any] = {"currentRun": None}
    if result.status != "canceled":
        patch["observedGeneration"] = generation
    if manage_status:
        last_run["changed"] = result.changed
        hosts = list(result.hosts.items())[:MAX_HOSTS]
        last_run["hosts"] = {_cut(host): _host_stats(s) for host, s in hosts}
        last_run["failedTasks"] = [
            {"host": _cut(t.host), "play": _cut(t.play), "task": _cut(t.task), "message": t.message}
            for t in result.failed_tasks[:MAX_FAILED_TASKS]
        ]
        reason = RESULT_REASONS[result.status]
        message = describe(result) or f"the run ended: {result.status}"
        outputs = result.outputs
        too_large = outputs_problem(outputs) if result.succeeded else None
        if too_large is not None:
            outputs, message = {}, f"{message}; outputs not written: {too_large}"
        idle = f"run {result.run_id} of generation {generation} finished (trigger: {trigger})"
        stall = stall or Stall(False, message)
        updates = [
            condition(
                READY, "True" if result.succeeded else "False", reason, message, generation, now
            ),
            _reconciling(stall, "Idle", idle, generation, now),
            condition(
                STALLED,
                "True" if stall.stalled else "False",
                reason,
                stall.message,
                generation,
                now,
            ),
        ]
        existing = _conditions(existing_status)
        if result.succeeded and (drift or any(c.get("type") == DRIFTED for c in existing)):
            applied = f"run {result.run_id} applied generation {generation} (trigger: {trigger})"
            updates.append(condition(DRIFTED, "False", "InSync", applied, generation, now))
        if result.status != "canceled":  # a canceled run leaves the SDK's conditions alone
            updates.extend(sdk_finished(existing, result, now))
        patch["conditions"] = merge_conditions(existing, updates, now)
        if result.succeeded:
            patch["outputs"] = _replace(_get(existing_status, "outputs"), outputs)
        summary = {
            k: last_run[k]
            for k in ("id", "generation", "trigger", "startedAt", "finishedAt", "result", "changed")
        }
        previous = [r for r in _get(existing_status, "runs") or [] if isinstance(r, Mapping)]
        patch["runs"] = [summary, *(plain(r) for r in previous)][:keep_runs]
    patch["lastRun"] = _replace(_get(existing_status, "lastRun"), last_run)
    return patch


def drift_condition(
    result: RunResult, generation: int, now: datetime, reason: str | None = None
) -> Condition:
    """The ``Drifted`` condition after check run ``result`` (``reason``: of a permanent error
    that kept it from running): True when it would change something, False when not, Unknown
    when it did not succeed. The message names no run, so an unchanged verdict compares equal."""
    if not result.succeeded:
        why = describe(result) or f"the check run ended: {result.status}"
        reason = reason or CHECK_REASONS.get(result.status, "CheckError")
        return condition(DRIFTED, "Unknown", reason, why, generation, now)
    drift = describe_drift(result)
    if drift:
        return condition(DRIFTED, "True", "Drifted", drift, generation, now)
    clean = f"a check of generation {generation} found nothing to change"
    return condition(DRIFTED, "False", "InSync", clean, generation, now)


def check_patch(
    existing_status: Mapping[str, Any] | None,
    result: RunResult,
    generation: int,
    started_at: datetime,
    now: datetime,
    *,
    manage_status: bool = True,
    reason: str | None = None,
) -> dict[str, Any]:
    """Check run ``result.run_id`` (``--check --diff``) of ``generation`` ended: ``lastCheck``
    and the ``Drifted`` condition (see :func:`drift_condition`), nothing else. ``lastCheck``
    is written with manage_status False too: the scheduler reads its ``finishedAt`` back."""
    last_check: dict[str, Any] = {
        "id": result.run_id,
        "generation": generation,
        "startedAt": rfc3339(started_at),
        "finishedAt": rfc3339(now),
        "result": result.status,
        "changed": max(result.changed, len(result.changed_tasks)),
        "drifted": [
            {"host": t.host, "task": t.task} for t in result.changed_tasks[:MAX_DRIFTED_TASKS]
        ],
    }
    patch: dict[str, Any] = {"lastCheck": _replace(_get(existing_status, "lastCheck"), last_check)}
    if manage_status:
        update = drift_condition(result, generation, now, reason)
        patch["conditions"] = merge_conditions(_conditions(existing_status), [update], now)
    return patch


def suspended_patch(
    existing_status: Mapping[str, Any] | None, suspended: bool, generation: int, now: datetime
) -> dict[str, Any]:
    """The ``Suspended`` condition after the suspend annotation was set (True) or removed."""
    existing = _conditions(existing_status)
    current = next((c for c in existing if c.get("type") == SUSPENDED), None)
    if suspended:
        message = f"runs are suspended by the annotation {SUSPEND_ANNOTATION}"
        update = condition(SUSPENDED, "True", "Suspended", message, generation, now)
    elif current is None:
        return {}
    else:
        update = condition(SUSPENDED, "False", "Resumed", "runs are not suspended", generation, now)
    if (
        current is not None
        and current.get("status") == update["status"]
        and current.get("observedGeneration") == generation
    ):
        return {}
    return {"conditions": merge_conditions(existing, [update], now)}


def error_patch(
    existing_status: Mapping[str, Any] | None,
    generation: int,
    reason: str,
    message: str,
    now: datetime,
    stall: Stall | None = None,
) -> dict[str, Any]:
    """A permanent error kept ``generation`` from running (``reason`` e.g. PlaybookNotFound):
    Ready False with that reason, Reconciling False, Stalled as ``stall`` says (None: True, with
    ``message``), observedGeneration set."""
    stall = stall or Stall(True, message)
    updates = [
        condition(READY, "False", reason, message, generation, now),
        _reconciling(stall, reason, message, generation, now),
        condition(
            STALLED, "True" if stall.stalled else "False", reason, stall.message, generation, now
        ),
    ]
    existing = _conditions(existing_status)
    updates.extend(sdk_error(existing, message, now))
    patch: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": merge_conditions(existing, updates, now),
    }
    if _get(existing_status, "currentRun") is not None:
        patch["currentRun"] = None
    return patch


def sdk_condition(
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    ansible_result: Mapping[str, Any] | None = None,
) -> Condition:
    """A condition shaped as the Operator SDK writes it: ``type``, ``status``, ``reason`` (may be
    empty), ``message``, ``lastTransitionTime`` and ``ansibleResult`` when given (no
    ``observedGeneration``)."""
    value: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": rfc3339(now),
    }
    if ansible_result is not None:
        value["ansibleResult"] = dict(ansible_result)
    return cast(Condition, value)


def sdk_ansible_result(result: RunResult, now: datetime) -> dict[str, Any]:
    """The SDK's ``ansibleResult``: the play recap's ``ok``, ``changed``, ``skipped`` and
    ``failures`` (summed over hosts; the SDK reads ``localhost`` only, the one host of a run
    without an inventory) and ``completion``, when the run ended, in the SDK's format
    (``2024-05-01T10:00:07.123456+00:00``)."""
    when = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    hosts = result.hosts.values()
    return {
        "ok": sum(h.ok for h in hosts),
        "changed": sum(h.changed for h in hosts),
        "skipped": sum(h.skipped for h in hosts),
        "failures": sum(h.failed for h in hosts),
        "completion": stamp + "+00:00",
    }


def _sdk_lowered(existing: Sequence[Mapping[str, Any]], type_: str) -> list[Condition]:
    """The SDK's way to end a condition: the existing one of ``type_`` (if any) with status
    False, its reason and message kept."""
    old = next((c for c in existing if c.get("type") == type_), None)
    return [] if old is None else [cast(Condition, {**old, "status": "False"})]


def sdk_started(existing: Sequence[Mapping[str, Any]], now: datetime) -> list[Condition]:
    """A run started: ``Running`` True (reason Running, "Running reconciliation"), and an
    existing ``Successful`` set False (as the SDK's markRunning)."""
    return [
        *_sdk_lowered(existing, SDK_SUCCESSFUL),
        sdk_condition(SDK_RUNNING, "True", "Running", "Running reconciliation", now),
    ]


def sdk_finished(
    existing: Sequence[Mapping[str, Any]], result: RunResult, now: datetime
) -> list[Condition]:
    """A run ended (as the SDK's markDone). Success: ``Running`` True (reason Successful,
    "Awaiting next reconciliation", with ``ansibleResult``), ``Successful`` True ("Last
    reconciliation succeeded"), ``Failure`` False (empty reason and message). Otherwise
    (failed, timed out, runner error): ``Running`` set False, ``Failure`` True (reason Failed,
    the failed tasks' messages one per line, with ``ansibleResult``), ``Successful`` False."""
    stats = sdk_ansible_result(result, now)
    if result.succeeded:
        return [
            sdk_condition(
                SDK_RUNNING, "True", "Successful", "Awaiting next reconciliation", now, stats
            ),
            sdk_condition(
                SDK_SUCCESSFUL, "True", "Successful", "Last reconciliation succeeded", now
            ),
            sdk_condition(SDK_FAILURE, "False", "", "", now),
        ]
    messages = [t.message for t in result.failed_tasks[:MAX_FAILED_TASKS]]
    message = "\n".join(messages) if messages else describe(result)
    return [
        *_sdk_lowered(existing, SDK_RUNNING),
        sdk_condition(SDK_FAILURE, "True", "Failed", message or result.status, now, stats),
        sdk_condition(SDK_SUCCESSFUL, "False", "", "", now),
    ]


def sdk_error(
    existing: Sequence[Mapping[str, Any]], message: str, now: datetime
) -> list[Condition]:
    """A resource could not run at all (as the SDK's markError): existing ``Running`` and
    ``Successful`` set False, ``Failure`` True (reason Failed) with ``message``."""
    return [
        *_sdk_lowered(existing, SDK_RUNNING),
        *_sdk_lowered(existing, SDK_SUCCESSFUL),
        sdk_condition(SDK_FAILURE, "True", "Failed", message, now),
    ]


def _in_progress(
    existing_status: Mapping[str, Any] | None,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    existing = _conditions(existing_status)
    updates = [
        condition(RECONCILING, "True", reason, message, generation, now),
        condition(STALLED, "False", reason, message, generation, now),
    ]
    ready = next((c for c in existing if c.get("type") == READY), None)
    settled = (
        ready is not None
        and ready.get("observedGeneration") == generation
        and ready.get("status") in ("True", "False")
    )
    if not settled:
        waiting = f"waiting for the run of generation {generation}"
        updates.insert(0, condition(READY, "Unknown", reason, waiting, generation, now))
    return {"conditions": merge_conditions(existing, updates, now)}


def outputs_problem(outputs: Mapping[str, Any]) -> str | None:
    """Why ``outputs`` (a run's ``set_stats`` data) cannot go into the status, or None."""
    if bounds.depth(outputs, bounds.MAX_DEPTH + 1) > bounds.MAX_DEPTH:
        return f"they are nested deeper than {bounds.MAX_DEPTH} levels"
    size = len(json.dumps(plain(outputs), separators=(",", ":"), default=str))
    if size > MAX_OUTPUTS_BYTES:
        return (
            f"they are {size // 1024} KiB of JSON, more than the limit of "
            f"{MAX_OUTPUTS_BYTES // 1024} KiB"
        )
    return None


def _reconciling(
    stall: Stall, reason: str, message: str, generation: int, now: datetime
) -> Condition:
    """``Reconciling`` after an attempt ended: True while a retry is scheduled, else False."""
    if stall.retrying:
        return condition(RECONCILING, "True", RETRY_SCHEDULED, stall.message, generation, now)
    return condition(RECONCILING, "False", reason, message, generation, now)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _host_stats(stats: HostStats) -> dict[str, int]:
    return {
        "ok": stats.ok,
        "changed": stats.changed,
        "failed": stats.failed,
        "skipped": stats.skipped,
        "unreachable": stats.unreachable,
        "rescued": stats.rescued,
        "ignored": stats.ignored,
    }


def _get(status: Mapping[str, Any] | None, key: str) -> Any:
    return status.get(key) if isinstance(status, Mapping) else None


def _conditions(status: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    conditions = _get(status, "conditions")
    if not isinstance(conditions, list):
        return []
    return [c for c in conditions if isinstance(c, Mapping)]


def _replace(old: Any, new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that turns mapping ``old`` into ``new`` (keys only in ``old`` -> None)."""
    old_map: Mapping[str, Any] = old if isinstance(old, Mapping) else {}
    patch: dict[str, Any] = {key: None for key in old_map if key not in new}
    for key, value in new.items():
        previous = old_map.get(key)
        if isinstance(value, Mapping) and isinstance(previous, Mapping):
            patch[key] = _replace(previous, value)
        else:
            patch[key] = plain(value)
    return patch
