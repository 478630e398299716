"""What follows a run, a drift check or a finalizer run: the one outcome policy, a pure function.

Like controller-runtime's ``reconcileHandler`` (one switch over the reconciler's result and
error), :func:`settle` maps (the attempt, its result or permanent error, the memory of the last
run, the policy) to the new memory, the Event to post, what the status patch is built from, and
when to try again. Nothing here does I/O; the worker applies what it says.

The rules:

* A run that failed, errored or timed out (:data:`RETRIED_RESULTS`), and a missing input (a
  Secret, ConfigMap or key: :func:`bridge.model.errors.is_missing_input`), are retried with
  back-off: attempt ``n`` (0 for the first run of a generation) waits
  ``min(backoff * 2**n, maximum)``, up to ``limit`` retries (``limit: 0``: none). A watch's
  ``retry`` overrides the operator's ``limit`` and ``backoff``.
* ``Stalled`` is True only when no retry is coming: retries exhausted, or an input error no
  retry fixes; its message says which. While a retry is scheduled it is False and
  ``Reconciling`` stays True (reason ``RetryScheduled``, saying when), so kstatus reads the
  resource as InProgress, not Current.
* Any other permanent error is not retried until the input changes.
* A canceled run leaves the memory alone (its generation runs again).
* A failed finalizer run, or one that could not start, is tried again after
  :data:`FINALIZER_RETRY` seconds, for as long as it takes.
* Temporary errors (API hiccups) are the worker's: :func:`temporary_backoff`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from bridge.ansible import results
from bridge.config.settings import RetrySettings
from bridge.controller import status
from bridge.controller.decide import Done
from bridge.controller.ports import CheckVerdict
from bridge.model.errors import ConflictError, PermanentError, TemporaryError, is_missing_input
from bridge.model.records import RunResult, RunStatus, Trigger
from bridge.model.watch import Watch

#: Run outcomes retried with back-off (a permanent error is not; canceled is not an outcome).
RETRIED_RESULTS: frozenset[RunStatus] = frozenset({"failed", "error", "timeout"})
#: Seconds before a finalizer run that failed (or could not start) is tried again.
FINALIZER_RETRY = 5.0

AttemptKind = Literal["run", "check", "finalize"]


@dataclass(frozen=True)
class RetryPolicy:
    """When failures are tried again: the operator's ``RetrySettings`` with a watch's
    ``retry`` over them."""

    #: Retries of a failed run of one generation (0: none).
    limit: int = 3
    #: Seconds before the first retry of a failed run; doubled after each.
    backoff: float = 10.0
    #: The longest delay, of run retries and of the worker's back-off alike.
    maximum: float = 300.0
    #: The worker's first delay after a temporary error; doubled after each.
    initial: float = 2.0

    @classmethod
    def of(cls, settings: RetrySettings, watch: Watch) -> RetryPolicy:
        """The policy of ``watch``'s resources: its own limit and back-off when it sets them."""
        own = watch.policy
        return cls(
            limit=settings.run_limit if own.retry_limit is None else own.retry_limit,
            backoff=settings.run_backoff if own.retry_backoff is None else own.retry_backoff,
            maximum=settings.maximum,
            initial=settings.initial,
        )

    def delay(self, attempt: int) -> float:
        """Seconds before the retry that follows attempt ``attempt`` (0: the first run)."""
        return float(min(self.backoff * 2**attempt, self.maximum))


@dataclass(frozen=True)
class Policy:
    """What the outcome depends on besides the attempt: retries, and the watch's status and
    drift options."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    manage_status: bool = True
    #: The watch checks for drift (a successful run then sets ``Drifted`` False).
    drift: bool = False
    #: A check that finds drift is followed by a real run.
    remediate: bool = False

    @classmethod
    def of(cls, settings: RetrySettings, watch: Watch) -> Policy:
        return cls(
            retry=RetryPolicy.of(settings, watch),
            manage_status=watch.policy.manage_status,
            drift=watch.policy.drift_interval is not None,
            remediate=watch.policy.drift_remediate,
        )


@dataclass(frozen=True)
class Attempt:
    """One run, drift check or finalizer run the worker made, as the outcome needs it."""

    kind: AttemptKind
    generation: int
    trigger: Trigger
    run_id: str
    started: datetime
    #: The annotations digest and ``run-requested`` value the attempt saw (runs only).
    digest: str | None = None
    requested: str | None = None


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post about the resource."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Finished:
    """The status after a run (or finalizer run) that ended: :func:`status.finished_patch`."""

    result: RunResult
    generation: int
    trigger: Trigger
    started: datetime
    stall: status.Stall
    manage_status: bool = True
    drift: bool = False
    bookkeeping: Mapping[str, Any] = field(default_factory=dict)

    def patch(self, existing: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
        return status.finished_patch(
            existing,
            self.result,
            self.generation,
            self.trigger,
            self.started,
            now,
            manage_status=self.manage_status,
            bookkeeping=self.bookkeeping,
            drift=self.drift,
            stall=self.stall,
        )


@dataclass(frozen=True)
class Errored:
    """The status after a permanent error kept a run from starting: :func:`status.error_patch`."""

    generation: int
    reason: str
    message: str
    stall: status.Stall

    def patch(self, existing: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
        return status.error_patch(
            existing, self.generation, self.reason, self.message, now, stall=self.stall
        )


@dataclass(frozen=True)
class Checked:
    """The status after a drift check: :func:`status.check_patch`."""

    result: RunResult
    generation: int
    started: datetime
    manage_status: bool = True
    #: The reason of a permanent error that kept the check from running.
    reason: str | None = None

    def patch(self, existing: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
        return status.check_patch(
            existing,
            self.result,
            self.generation,
            self.started,
            now,
            manage_status=self.manage_status,
            reason=self.reason,
        )


StatusUpdate = Finished | Errored | Checked


@dataclass(frozen=True)
class Outcome:
    """What the worker does after an attempt."""

    #: The resource's memory from now on (the same object: unchanged).
    memory: Done | None
    event: Event | None = None
    #: What the status patch is built from (from the newest status, at write time).
    status: StatusUpdate | None = None
    #: When the generation runs again (a scheduled retry; also in ``memory``).
    retry_at: datetime | None = None
    #: A finalizer run to try again after this many seconds (the worker waits and retries).
    retry_in: float | None = None
    #: The finalizer ran: release it.
    release_finalizer: bool = False
    #: The verdict of a drift check, for metrics.
    check: CheckVerdict | None = None
    #: Seconds to the next run asked for by a ``requeue_after`` task (kept in ``memory``).
    requeue_after: float | None = None


def settle(
    attempt: Attempt,
    ended: RunResult | PermanentError,
    memory: Done | None,
    policy: Policy,
    *,
    now: datetime,
    existing: Mapping[str, Any] | None = None,
) -> Outcome:
    """The outcome of ``attempt``, which ended with ``ended`` (a result, or the permanent error
    that kept it from running), given the resource's ``memory`` and ``policy`` at ``now``.
    ``existing``: the resource's status (a check's Event depends on the ``Drifted`` before)."""
    if attempt.kind == "check":
        return _checked(attempt, ended, memory, policy, now, existing)
    if attempt.kind == "finalize":
        return _finalized(attempt, ended, memory, policy)
    return _ran(attempt, ended, memory, policy, now)


def temporary_backoff(
    error: TemporaryError, delay: float, policy: RetryPolicy
) -> tuple[float, float]:
    """The worker after a temporary error: (seconds to wait now, the delay for the next one).
    An error that names its own delay is waited for that long; a conflict (read again and
    retry at once) does not grow the delay; others double it up to the maximum."""
    wait = error.delay or delay
    if isinstance(error, ConflictError):
        return wait, delay
    return wait, min(delay * 2, policy.maximum)


def remember(
    attempt: Attempt,
    memory: Done | None,
    policy: RetryPolicy,
    now: datetime,
    *,
    retry: bool,
    succeeded: bool,
    requeue_after: float | None = None,
) -> Done:
    """The memory a finished run leaves: its attempt number (counted over the retries of one
    generation), the next retry when ``retry`` and one is left, the last drift check kept."""
    previous = memory if attempt.trigger == "retry" and memory is not None else None
    number = previous.attempt + 1 if previous is not None else 0
    retry_at = None
    if retry and number < policy.limit:
        retry_at = now + timedelta(seconds=policy.delay(number))
    return Done(
        attempt.generation,
        now,
        attempt.digest,
        attempt.requested,
        number,
        retry_at,
        succeeded=succeeded,
        checked_at=memory.checked_at if memory is not None else None,
        drifted=memory.drifted if memory is not None else False,
        requeue_after=requeue_after,
    )


def stall(
    done: Done, policy: RetryPolicy, detail: str, *, retried: bool, why: str = ""
) -> status.Stall:
    """``Stalled`` after an unsuccessful attempt remembered as ``done``: False while a retry is
    scheduled (saying when), True once none is (saying why)."""
    if done.retry_at is not None:
        when = status.rfc3339(done.retry_at)
        return status.Stall(
            False, f"{detail}; retry {done.attempt + 1} of {policy.limit} at {when}", retrying=True
        )
    if not retried:
        return status.Stall(True, f"{detail}; will not be retried: {why}")
    if policy.limit == 0:
        return status.Stall(True, f"{detail}; will not be retried: the retry limit is 0")
    attempts = done.attempt + 1
    return status.Stall(True, f"retries exhausted after {attempts} attempts: {detail}")


def _ran(
    attempt: Attempt,
    ended: RunResult | PermanentError,
    memory: Done | None,
    policy: Policy,
    now: datetime,
) -> Outcome:
    if isinstance(ended, PermanentError):
        retried = is_missing_input(ended)
        done = remember(attempt, memory, policy.retry, now, retry=retried, succeeded=False)
        message = str(ended)
        verdict = stall(
            done, policy.retry, message, retried=retried, why="retrying the same input cannot help"
        )
        return Outcome(
            done,
            Event("Warning", ended.reason, message),
            Errored(attempt.generation, ended.reason, message, verdict),
            retry_at=done.retry_at,
        )
    result = ended
    event = _run_event(result)
    bookkeeping: dict[str, Any] = {}
    if attempt.digest is not None:
        bookkeeping["annotations"] = attempt.digest
    if attempt.requested is not None:
        bookkeeping["runRequested"] = attempt.requested
    detail = results.describe(result) or f"the run ended: {result.status}"
    if result.status == "canceled":
        finished = Finished(
            result,
            attempt.generation,
            attempt.trigger,
            attempt.started,
            status.Stall(False, detail),
            policy.manage_status,
            policy.drift,
            bookkeeping,
        )
        return Outcome(memory, event, finished)
    requeue = result.requeue_after
    if requeue is not None:
        bookkeeping["requeueAfter"] = requeue  # read back after a restart
    retried = result.status in RETRIED_RESULTS
    done = remember(
        attempt,
        memory,
        policy.retry,
        now,
        retry=retried,
        succeeded=result.succeeded,
        requeue_after=requeue,
    )
    verdict = status.Stall(False, detail)
    if not result.succeeded:
        verdict = stall(done, policy.retry, detail, retried=retried)
    finished = Finished(
        result,
        attempt.generation,
        attempt.trigger,
        attempt.started,
        verdict,
        policy.manage_status,
        policy.drift,
        bookkeeping,
    )
    return Outcome(done, event, finished, retry_at=done.retry_at, requeue_after=requeue)


def _run_event(result: RunResult) -> Event:
    summary = f"run {result.run_id} {results.summarize(result)}"
    if result.succeeded:
        return Event("Normal", "Succeeded", summary)
    if result.status == "canceled":
        return Event("Normal", "Canceled", summary)
    return Event("Warning", status.RESULT_REASONS[result.status], summary)


def _checked(
    attempt: Attempt,
    ended: RunResult | PermanentError,
    memory: Done | None,
    policy: Policy,
    now: datetime,
    existing: Mapping[str, Any] | None,
) -> Outcome:
    reason: str | None = None
    if isinstance(ended, PermanentError):
        reason = ended.reason
        result = RunResult(attempt.run_id, "error", message=str(ended))
    else:
        result = ended
    if result.status == "canceled":
        return Outcome(memory)
    verdict = status.drift_condition(result, attempt.generation, now, reason)
    drifted = verdict["status"] == "True"
    if memory is None:
        done = Done(None, now, checked_at=now, drifted=drifted)
    else:
        done = replace(memory, checked_at=now, drifted=drifted)
    # Events say what changed: drift found or gone, a check failing; not every check.
    conditions = (existing or {}).get("conditions")
    before = next(
        (
            c
            for c in (conditions if isinstance(conditions, list) else [])
            if isinstance(c, Mapping) and c.get("type") == status.DRIFTED
        ),
        None,
    )
    repeated = before is not None and all(
        before.get(k) == verdict[k] for k in ("status", "reason", "message")
    )
    event = None
    said = f"check {attempt.run_id}: {verdict['message']}"
    if drifted and not repeated:
        event = Event("Warning", "Drifted", said + ("; remediating" if policy.remediate else ""))
    elif verdict["status"] == "Unknown" and not repeated:
        event = Event("Warning", verdict["reason"], said)
    elif (
        verdict["status"] == "False"
        and before is not None
        and before.get("status")
        in (
            "True",
            "Unknown",
        )
    ):
        event = Event("Normal", "InSync", said)
    check: CheckVerdict = (
        "drifted" if drifted else "clean" if verdict["status"] == "False" else "failed"
    )
    update = Checked(result, attempt.generation, attempt.started, policy.manage_status, reason)
    return Outcome(done, event, update, check=check)


def _finalized(
    attempt: Attempt, ended: RunResult | PermanentError, memory: Done | None, policy: Policy
) -> Outcome:
    if isinstance(ended, PermanentError):
        event = Event("Warning", ended.reason, str(ended))
        return Outcome(memory, event, retry_in=FINALIZER_RETRY)
    summary = results.summarize(ended)
    if ended.succeeded:
        event = Event("Normal", "Finalized", f"finalizer run {ended.run_id} {summary}")
        return Outcome(memory, event, release_finalizer=True)
    detail = results.describe(ended) or f"the run ended: {ended.status}"
    retrying = status.Stall(
        False, f"{detail}; the finalizer runs again in {FINALIZER_RETRY:g}s", retrying=True
    )
    finished = Finished(
        ended, attempt.generation, "finalize", attempt.started, retrying, policy.manage_status
    )
    event = Event("Warning", "FinalizerFailed", f"run {ended.run_id} {summary}")
    return Outcome(memory, event, finished, retry_in=FINALIZER_RETRY)
