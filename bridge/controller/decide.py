"""What one resource needs next (:func:`decide`): pure, the whole scheduling policy of a resource.

kopf tells the controller about every event of every watched object; each resource's worker
then loops: read the newest body, decide (here), act, repeat until nothing is left to do.

What is decided from what:

* ``status.observedGeneration`` is written when a run of a generation ends (not when it is
  canceled), so a restarted operator skips generations that ran to completion and re-runs one
  whose run was interrupted (its ``status.currentRun`` is still there).
* Our own status patches come back as events; an in-memory record of the last generation that
  finished here (:class:`Done`) keeps a stale event from starting the same run twice.
* Drift checks (a watch's ``drift``): once the current generation's last run succeeded, every
  ``interval`` after the later of that run and the last check, the automation runs with
  ``--check --diff`` (action "check"). A check is not a run of the generation: it writes only
  ``status.lastCheck`` and the ``Drifted`` condition. When it finds changes and the watch
  remediates, the next action is a real run (trigger ``drift``), decided from the check being
  newer than the last run, so a restart in between still remediates. New generations, requests,
  annotation changes, retries and periodic runs come first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bridge.config.watches import parse_duration
from bridge.controller import scheduling
from bridge.model.annotations import LAST_APPLIED, PERIOD_ANNOTATIONS, RUN_REQUESTED, SUSPEND
from bridge.model.records import Trigger
from bridge.model.watch import Watch

ActionKind = Literal["none", "run", "check", "finalize", "suspend"]


@dataclass(frozen=True)
class Action:
    """What a resource needs next; for "none", when to look again (periodic runs, retries,
    drift checks). "check": a drift check of ``generation`` (a ``--check --diff`` run)."""

    kind: ActionKind
    generation: int = 0
    trigger: Trigger = "update"
    wake_at: datetime | None = None


@dataclass(frozen=True)
class Done:
    """The last run this process finished for a resource (status may lag behind it), and its
    last drift check.

    ``generation`` None: no real run finished here yet, only a check (the fields of the run
    then mean nothing and :func:`decide` reads the status instead).
    """

    generation: int | None
    finished_at: datetime
    annotations: str | None = None
    requested: str | None = None
    #: Retries so far of this generation, and when the next one falls due (None: no more).
    attempt: int = 0
    retry_at: datetime | None = None
    #: Whether the run succeeded (drift checks follow a successful run only).
    succeeded: bool = False
    #: When the last drift check finished here (None: none did), and whether it found drift.
    checked_at: datetime | None = None
    drifted: bool = False
    #: Seconds to the next run asked for by the run's ``operator_sdk.util.requeue_after`` task
    #: (instead of the reconcile period, once; 0: no timed run); None: it asked nothing.
    requeue_after: float | None = None


def is_suspended(metadata: Mapping[str, Any]) -> bool:
    value = (metadata.get("annotations") or {}).get(SUSPEND, "")
    return str(value).strip().lower() == "true"


def annotations_digest(metadata: Mapping[str, Any]) -> str:
    """A short digest of the annotations that count as input (``watchAnnotationsChanges``)."""
    kept = {k: v for k, v in (metadata.get("annotations") or {}).items() if k != LAST_APPLIED}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reconcile_period(metadata: Mapping[str, Any], watch: Watch) -> float | None:
    """Seconds between periodic runs: a resource's annotation, else the watch's; None: never."""
    given = metadata.get("annotations") or {}
    for key in PERIOD_ANNOTATIONS:
        if key in given:
            try:
                period = parse_duration(str(given[key]))
            except ValueError:
                continue  # a bad annotation is ignored, the watch's period applies
            return period or None
    return watch.policy.reconcile_period or None


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _seconds(value: Any) -> float | None:
    """A non-negative number of seconds read back from the status, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def decide(
    body: Mapping[str, Any],
    watch: Watch,
    *,
    done: Done | None,
    now: datetime,
    dependents_changed: bool = False,
) -> Action:
    """What ``body`` needs at ``now``, given the last run this process finished for it
    (``dependents_changed``: an object a run created changed since the last run began).

    Pure: the whole scheduling policy of one resource, unit-tested without a cluster.
    """
    metadata = body.get("metadata") or {}
    state = body.get("status") or {}
    if metadata.get("deletionTimestamp"):
        if watch.automation.finalizer is not None and watch.automation.finalizer.name in (
            metadata.get("finalizers") or []
        ):
            return Action("finalize", trigger="finalize")
        return Action("none")
    if is_suspended(metadata):
        return Action("suspend")
    generation = int(metadata.get("generation") or 0)
    last_run = state.get("lastRun") or {}
    if generation != state.get("observedGeneration") and (
        done is None or done.generation != generation
    ):
        if state.get("currentRun"):
            trigger: Trigger = "resume"
        elif state.get("observedGeneration") is None and not last_run:
            trigger = "create"
        else:
            trigger = "update"
        return Action("run", generation=generation, trigger=trigger)

    # This generation ran. What else can ask for a run: a request, annotations, the period.
    if dependents_changed:
        return Action("run", generation=generation, trigger="dependent")
    mine = done if done is not None and done.generation == generation else None
    requested = (metadata.get("annotations") or {}).get(RUN_REQUESTED)
    if requested is not None:
        recorded = mine.requested if mine else last_run.get("runRequested")
        if str(requested) != recorded:
            return Action("run", generation=generation, trigger="requested")
    if watch.policy.watch_annotations_changes:
        recorded = mine.annotations if mine else last_run.get("annotations")
        if recorded is not None and recorded != annotations_digest(metadata):
            return Action("run", generation=generation, trigger="annotation")
    retry_at = mine.retry_at if mine is not None else None
    if retry_at is not None and now >= retry_at:
        return Action("run", generation=generation, trigger="retry")
    period = reconcile_period(metadata, watch)
    requeue = mine.requeue_after if mine is not None else _seconds(last_run.get("requeueAfter"))
    if requeue is not None:  # requeue_after replaces the period for the next run (as the SDK)
        period = requeue or None
    finished = [t for t in (_parse_time(last_run.get("finishedAt")),) if t is not None]
    if mine is not None:
        finished.append(mine.finished_at)
    uid = str(metadata.get("uid") or "")
    due = None
    if period is not None and finished:
        # A little early, by a per-resource amount: resources created together spread out.
        due = max(finished) + timedelta(seconds=period - scheduling.jitter(period, uid))
    if due is not None and now >= due:
        return Action("run", generation=generation, trigger="periodic")

    # Drift: checks of a generation whose last run succeeded; remediation after a drifted one.
    check_due = None
    if watch.policy.drift_interval is not None and finished:
        if mine is not None:
            succeeded = mine.succeeded
        else:
            succeeded = (
                last_run.get("generation") == generation and last_run.get("result") == "successful"
            )
        if succeeded:
            ran_at = max(finished)
            checked_at, drifted = _last_check(state, done)
            if checked_at is not None and checked_at > ran_at:
                if drifted and watch.policy.drift_remediate:
                    return Action("run", generation=generation, trigger="drift")
                ran_at = checked_at
            interval = watch.policy.drift_interval
            check_due = ran_at + timedelta(seconds=interval - scheduling.jitter(interval, uid))
            if now >= check_due:
                return Action("check", generation=generation, trigger="drift")
    wakes = [t for t in (due, retry_at, check_due) if t is not None]
    return Action("none", wake_at=min(wakes) if wakes else None)


def _last_check(state: Mapping[str, Any], done: Done | None) -> tuple[datetime | None, bool]:
    """When the last drift check finished, and whether it found drift: from memory when it
    knows one at least as new as ``status.lastCheck``, else from that."""
    last_check = state.get("lastCheck") or {}
    at = _parse_time(last_check.get("finishedAt")) if last_check else None
    if done is not None and done.checked_at is not None and (at is None or done.checked_at >= at):
        return done.checked_at, done.drifted
    if at is None:
        return None, False
    changed = last_check.get("changed")
    drifted = last_check.get("result") == "successful" and (
        bool(last_check.get("drifted")) or (isinstance(changed, int) and changed > 0)
    )
    return at, drifted
