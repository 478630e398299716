"""Reconciliation: decide what a resource needs, run it through the executor, report it.

kopf tells the :class:`Controller` about every event of every watched object
(:meth:`Controller.observe`, which never blocks). Each resource then has at most one worker task,
which loops: read the newest body, decide (:func:`decide`, pure), act, repeat until nothing is
left to do. So one resource's runs are strictly one at a time, runs across resources are bounded
by one set of slots (runs for new or changed resources served before periodic runs, drift checks
and retries: :mod:`bridge.controller.scheduling`), and kopf's event loop only ever schedules.

What is decided from what:

* ``status.observedGeneration`` is written when a run of a generation ends (not when it is
  canceled), so a restarted operator skips generations that ran to completion and re-runs one
  whose run was interrupted (its ``status.currentRun`` is still there).
* Our own status patches come back as events; an in-memory record of the last generation that
  finished here keeps a stale event from starting the same run twice.
* A newer generation arriving while an older one runs cancels the stale run; deleting the
  resource cancels the run, then runs the finalizer, then releases the finalizer.
* Drift checks (a watch's ``drift``): once the current generation's last run succeeded, every
  ``interval`` after the later of that run and the last check, the automation runs with
  ``--check --diff`` (action "check"). A check is not a run of the generation: it writes only
  ``status.lastCheck`` and the ``Drifted`` condition. When it finds changes and the watch
  remediates, the next action is a real run (trigger ``drift``), decided from the check being
  newer than the last run, so a restart in between still remediates. New generations, requests,
  annotation changes, retries and periodic runs come first; a new generation cancels a check.
  A check's artifacts go to ``<resource dir>/checks/`` (rotated on their own), not beside the
  runs'.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from bridge.ansible import artifacts, inputs, results, secrets
from bridge.config import credentials, sdk
from bridge.config.settings import OperatorSettings
from bridge.config.watches import parse_duration
from bridge.controller import scheduling, status
from bridge.executors import Executor
from bridge.kube.client import ObjectKey
from bridge.model import bodies
from bridge.model.errors import ConflictError, PermanentError, TemporaryError
from bridge.model.records import RunnerEvent, RunResult, RunSpec, Trigger
from bridge.model.watch import Watch

logger = logging.getLogger("bridge.controller.reconcile")

ActionKind = Literal["none", "run", "check", "finalize", "suspend"]
#: How a drift check ended, for metrics: changes found, none, or no verdict (failed, error).
CheckVerdict = Literal["drifted", "clean", "failed"]

#: Run outcomes retried with back-off (a permanent error is not; canceled is not an outcome).
RETRIED_RESULTS = frozenset({"failed", "error", "timeout"})
#: Permanent errors that wait for something to appear (a Secret): retried with back-off too.
WAITING_REASONS = frozenset(
    {"SecretNotFound", "SecretKeyNotFound", "ConfigMapNotFound", "ConfigMapKeyNotFound"}
)

#: Any new value of this annotation asks for one more run (e.g. a timestamp).
REQUEST_ANNOTATION = "ansible-bridge.io/run-requested"

#: Per-resource reconcile period annotations: ours, and the Operator SDK's.
PERIOD_ANNOTATIONS = (
    "ansible-bridge.io/reconcile-period",
    "ansible.sdk.operatorframework.io/reconcile-period",
)
#: Annotations that never count as a change (kubectl's copy of the applied manifest).
_IGNORED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


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
    value = (metadata.get("annotations") or {}).get(status.SUSPEND_ANNOTATION, "")
    return str(value).strip().lower() == "true"


def annotations_digest(metadata: Mapping[str, Any]) -> str:
    """A short digest of the annotations that count as input (``watchAnnotationsChanges``)."""
    annotations = {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        if k not in _IGNORED_ANNOTATIONS
    }
    text = json.dumps(annotations, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reconcile_period(metadata: Mapping[str, Any], watch: Watch) -> float | None:
    """Seconds between periodic runs: a resource's annotation, else the watch's; None: never."""
    annotations = metadata.get("annotations") or {}
    for key in PERIOD_ANNOTATIONS:
        if key in annotations:
            try:
                period = parse_duration(str(annotations[key]))
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
    requested = (metadata.get("annotations") or {}).get(REQUEST_ANNOTATION)
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


class EventPoster(Protocol):
    """Posts a Kubernetes Event about an object (kopf's poster in the operator)."""

    def __call__(self, body: Mapping[str, Any], type: str, reason: str, message: str) -> None: ...


class StatusWriter(Protocol):
    """The Kubernetes writes a reconcile needs (implemented by :class:`bridge.kube.client.Kube`)."""

    async def patch_status(
        self, key: ObjectKey, status: Mapping[str, Any]
    ) -> dict[str, Any] | None: ...

    async def get(self, key: ObjectKey) -> dict[str, Any] | None: ...

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None: ...

    async def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None: ...

    async def set_finalizers(
        self, key: ObjectKey, finalizers: list[str], resource_version: str
    ) -> dict[str, Any] | None: ...


class RunIdentities(Protocol):
    """Gives runs their own credentials for the Kubernetes API (bridge.kube.proxy: a token of the
    operator's API proxy that knows the run's owner); every method must return at once."""

    def issue(self, watch: Watch, body: Mapping[str, Any]) -> Mapping[str, str]:
        """Environment variables for a run of ``body``; empty when there is nothing to give."""
        ...

    def revoke(self, env: Mapping[str, str]) -> None:
        """The run given ``env`` has ended: its credentials stop working."""
        ...


class RunObserver(Protocol):
    """Told about runs as they happen (metrics); every method must return at once."""

    def queued(self, watch: Watch) -> None: ...

    def dequeued(self, watch: Watch) -> None: ...

    def started(self, watch: Watch, run_id: str) -> None: ...

    def finished(self, watch: Watch, result: RunResult, seconds: float) -> None: ...

    def checked(self, watch: Watch, verdict: CheckVerdict, seconds: float) -> None: ...


class _NoObserver:
    def queued(self, watch: Watch) -> None:
        pass

    def dequeued(self, watch: Watch) -> None:
        pass

    def started(self, watch: Watch, run_id: str) -> None:
        pass

    def finished(self, watch: Watch, result: RunResult, seconds: float) -> None:
        pass

    def checked(self, watch: Watch, verdict: CheckVerdict, seconds: float) -> None:
        pass


@dataclass
class _Resource:
    """The controller's mutable record of one object (owned by the event loop)."""

    watch: Watch
    key: ObjectKey
    #: Stored as the compact copy of whatever is set (:meth:`__setattr__`).
    body: Mapping[str, Any]
    worker: asyncio.Task[None] | None = None
    run: asyncio.Task[RunResult] | None = None
    running_generation: int | None = None
    done: Done | None = None
    wake: asyncio.TimerHandle | None = None
    #: The worker's place in line for a run slot while it waits for one.
    ticket: scheduling.Ticket | None = None
    #: A dependent (an object a run created) changed or went away since the last run began.
    dependents_changed: bool = False
    #: The period of the first ``requeue_after`` task of the run in flight (None: none yet).
    requeue_after: float | None = None
    #: The problems with its SDK annotations last reported in an Event (reported once).
    sdk_problems: tuple[str, ...] = ()
    finalize_failures: int = 0
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def __setattr__(self, name: str, value: Any) -> None:
        # Every body the record takes, from a watch event or an API response, is stored as the
        # compact copy of bridge.model.bodies (with thousands of resources, most of what we hold).
        if name == "body":
            value = bodies.keep(value)
        super().__setattr__(name, value)

    @property
    def status(self) -> dict[str, Any]:
        value = self.body.get("status")
        return value if isinstance(value, dict) else {}


#: The context variables a worker keeps from the code that started it (a kopf handler): kopf's
#: operator-wide ones, which its Event poster (``kopf.event()``) and API calls read. A kopf
#: upgrade that needs another one shows in the e2e tests of Events.
KEPT_CONTEXT = frozenset({"settings_var", "event_queue_var", "event_queue_loop_var", "vault_var"})


def worker_context() -> contextvars.Context:
    """A context for a new worker task with only :data:`KEPT_CONTEXT` of the current one.

    A task keeps its context as long as the task object lives, and each resource keeps its last
    worker's. The context of a kopf handler holds its cause: the raw body of the event, a patch
    and a logger, about 15 KiB an object that 5,000 resources would keep for nothing."""
    context = contextvars.Context()
    for var, value in contextvars.copy_context().items():
        if var.name in KEPT_CONTEXT:
            context.run(var.set, value)
    return context


def _now() -> datetime:
    return datetime.now(UTC)


class Controller:
    """Schedules and runs reconciliations for all watched resources."""

    def __init__(
        self,
        settings: OperatorSettings,
        executor: Executor,
        kube: StatusWriter,
        post_event: EventPoster,
        *,
        observer: RunObserver | None = None,
        identities: RunIdentities | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._observer: RunObserver = observer or _NoObserver()
        self._identities = identities
        self._settings = settings
        self._executor = executor
        self._kube = kube
        self._post_event = post_event
        self._clock = clock
        self._slots = scheduling.PrioritySlots(settings.runner.max_concurrent_runs)
        self._kind_slots = {
            key: asyncio.Semaphore(max(1, limit))
            for key, limit in settings.runner.watch_max_runs.items()
        }
        self._resources: dict[str, _Resource] = {}
        self._live_secrets: dict[str, tuple[str, ...]] = {}
        self._closing = False

    # --- events ---------------------------------------------------------------------------

    def observe(
        self, watch: Watch, plural: str, event_type: str | None, body: Mapping[str, Any]
    ) -> None:
        """Take in one watch event (``event_type`` None: the initial listing). Never blocks.
        The record keeps its own compact copy of ``body`` (:func:`bridge.model.bodies.keep`)."""
        metadata = body.get("metadata") or {}
        uid = str(metadata.get("uid", ""))
        if not uid or self._closing:
            return
        if event_type == "DELETED":
            gone = self._resources.pop(uid, None)
            if gone is not None:
                if gone.wake is not None:
                    gone.wake.cancel()
                if gone.worker is not None:
                    gone.worker.cancel()
            return
        res = self._resources.get(uid)
        if res is None:
            key = ObjectKey(
                group=watch.group,
                version=watch.version,
                plural=plural,
                namespace=metadata.get("namespace") or None,
                name=str(metadata.get("name", "")),
            )
            res = self._resources[uid] = _Resource(watch=watch, key=key, body=body)
        elif _rv(body) < _rv(res.body):
            return  # older than what we already know (e.g. our own patch's response)
        else:
            res.body = body
        self._preempt(res)
        self._promote(res)
        if res.worker is None or res.worker.done():
            self._start_worker(res)

    def _promote(self, res: _Resource) -> None:
        """A worker waiting for a slot with a background run (periodic, drift, retry) whose
        resource now needs an urgent one (it changed, a run was requested...) moves up."""
        ticket = res.ticket
        if ticket is None or not ticket.waiting or ticket.priority == scheduling.URGENT:
            return
        action = _decide(res, self._clock())
        if action.kind in ("run", "finalize"):
            self._slots.promote(ticket, scheduling.priority(action.trigger))

    def _preempt(self, res: _Resource) -> None:
        """Cancel a run that the newest body makes stale (a newer generation, or deletion)."""
        if res.run is None or res.run.done():
            return
        metadata = res.body.get("metadata") or {}
        generation = int(metadata.get("generation") or 0)
        if (
            metadata.get("deletionTimestamp")
            or is_suspended(metadata)
            or (res.running_generation is not None and generation > res.running_generation)
        ):
            logger.info(
                "%s: canceling the run of generation %s",
                res.key,
                res.running_generation,
                extra=_ctx(res),
            )
            res.run.cancel()

    def _start_worker(self, res: _Resource) -> None:
        res.worker = asyncio.create_task(
            self._work(res), name=f"reconcile {res.key}", context=worker_context()
        )

    def _wake_at(self, res: _Resource, when: datetime | None) -> None:
        """Look at ``res`` again at ``when`` (a periodic run falls due)."""
        if res.wake is not None:
            res.wake.cancel()
            res.wake = None
        if when is None or self._closing:
            return
        delay = max(0.0, (when - self._clock()).total_seconds())
        res.wake = asyncio.get_running_loop().call_later(delay, self._poke, res)

    def _poke(self, res: _Resource) -> None:
        res.wake = None
        if self._closing or self._resources.get(_uid(res.body)) is not res:
            return
        if res.worker is None or res.worker.done():
            self._start_worker(res)

    async def shutdown(self) -> None:
        """Cancel every worker and wait for their runs to stop (no process is left behind).

        Interrupted runs keep ``status.currentRun``, so the next start re-runs them.
        """
        self._closing = True
        for res in self._resources.values():
            if res.wake is not None:
                res.wake.cancel()
        workers = [r.worker for r in self._resources.values() if r.worker is not None]
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.wait(workers)

    def dependent_changed(
        self, group: str, kind: str, namespace: str | None, name: str, uid: str | None = None
    ) -> bool:
        """An object a run of this owner created changed or went away (bridge.kube.dependents): run
        the owner again, after its run in flight if there is one. Never blocks. False when no
        such owner is known (or its watch does not watch dependents, or it is being deleted)."""
        found = False
        for res in self._resources.values():
            watch = res.watch
            if (
                self._closing
                or not watch.dependents.enabled
                or (watch.group, watch.kind, res.key.namespace, res.key.name)
                != (group, kind, namespace or None, name)
                or (uid is not None and _uid(res.body) != uid)
                or (res.body.get("metadata") or {}).get("deletionTimestamp")
            ):
                continue
            found = True
            res.dependents_changed = True
            self._promote(res)
            if res.worker is None or res.worker.done():
                self._start_worker(res)
        return found

    def secrets_of(self, run_id: str) -> tuple[str, ...]:
        """The Secret values of run ``run_id`` while it runs (to redact its live output)."""
        return self._live_secrets.get(run_id, ())

    def counts(self) -> dict[str, int]:
        """Resources known, and runs in flight."""
        running = sum(1 for r in self._resources.values() if r.run and not r.run.done())
        return {"resources": len(self._resources), "running": running}

    # --- the worker -------------------------------------------------------------------------

    async def _work(self, res: _Resource) -> None:
        delay = self._settings.retry.initial
        while True:
            action = _decide(res, self._clock())
            if action.kind == "none":
                self._wake_at(res, action.wake_at)
                return  # NB: no await between decide() and return, see observe()
            if action.kind == "suspend":
                self._wake_at(res, None)
                await self._note_suspension(res, True)
                if _decide(res, self._clock()).kind == "suspend":
                    return
                continue
            await self._note_suspension(res, False)
            try:
                if action.kind == "finalize":
                    if await self._finalize(res):
                        return
                    raise TemporaryError("the finalizer run did not succeed")
                if action.kind == "check":
                    await self._check(res)
                else:
                    await self._ensure_finalizer(res)
                    await self._run(res, action)
                delay = self._settings.retry.initial
            except TemporaryError as exc:
                logger.warning(
                    "%s: %s; retrying in %.0fs", res.key, exc, exc.delay or delay, extra=_ctx(res)
                )
                await asyncio.sleep(exc.delay or delay)
                if not isinstance(exc, ConflictError):
                    delay = min(delay * 2, self._settings.retry.maximum)
                await self._refresh(res)

    async def _note_suspension(self, res: _Resource, suspended: bool) -> None:
        if not res.watch.policy.manage_status:
            return
        generation = int((res.body.get("metadata") or {}).get("generation") or 0)
        patch = status.suspended_patch(res.status, suspended, generation, self._clock())
        if patch:
            await self._patch(res, patch)
            if suspended:
                self._event(res, "Normal", "Suspended", "runs are suspended")

    async def _refresh(self, res: _Resource) -> None:
        with contextlib.suppress(TemporaryError, PermanentError):
            fresh = await self._kube.get(res.key)
            if fresh is not None and _rv(fresh) >= _rv(res.body):
                res.body = fresh

    async def _ensure_finalizer(self, res: _Resource) -> None:
        if res.watch.automation.finalizer is None:
            return
        metadata = res.body.get("metadata") or {}
        finalizers = list(metadata.get("finalizers") or [])
        if res.watch.automation.finalizer.name in finalizers:
            return
        updated = await self._kube.set_finalizers(
            res.key,
            [*finalizers, res.watch.automation.finalizer.name],
            str(metadata["resourceVersion"]),
        )
        if updated is not None:
            res.body = updated

    async def _release_finalizer(self, res: _Resource) -> None:
        assert res.watch.automation.finalizer is not None
        for _ in range(10):
            metadata = res.body.get("metadata") or {}
            finalizers = [
                f
                for f in metadata.get("finalizers") or []
                if f != res.watch.automation.finalizer.name
            ]
            try:
                await self._kube.set_finalizers(
                    res.key, finalizers, str(metadata["resourceVersion"])
                )
                return
            except ConflictError:
                fresh = await self._kube.get(res.key)
                if fresh is None:
                    return
                res.body = fresh
        raise TemporaryError(f"{res.key}: the finalizer could not be released")

    async def _patch(self, res: _Resource, patch: Mapping[str, Any]) -> None:
        """Merge ``patch`` into the status; the response becomes the known body."""
        if not patch:
            return
        for attempt in range(3):
            try:
                updated = await self._kube.patch_status(res.key, patch)
            except TemporaryError as exc:
                if attempt == 2:
                    logger.error("%s: status not written: %s", res.key, exc, extra=_ctx(res))
                    return
                await asyncio.sleep(1 + attempt)
                continue
            except PermanentError as exc:
                logger.error("%s: status not written: %s", res.key, exc, extra=_ctx(res))
                return
            if updated is not None and _rv(updated) >= _rv(res.body):
                res.body = updated
            return

    def _event(self, res: _Resource, type_: str, reason: str, message: str) -> None:
        try:
            self._post_event(res.body, type_, reason, message[:1000])
        except Exception:  # an Event is best effort; never let it break a reconcile
            logger.exception("%s: could not post event %s", res.key, reason, extra=_ctx(res))

    async def _run(self, res: _Resource, action: Action) -> None:
        """One run of the main automation for ``action.generation`` (or a newer one)."""
        watch = res.watch
        manage = watch.policy.manage_status
        kind_slots = self._kind_slots.get(watch.key)
        if self._slots.locked() or (kind_slots is not None and kind_slots.locked()):
            await self._patch(
                res,
                status.queued_patch(
                    res.status,
                    action.generation,
                    action.trigger,
                    self._clock(),
                    manage_status=manage,
                ),
            )
        async with self._slot(res, action.trigger):
            # The body may have moved on while we waited for a slot: decide again.
            action = _decide(res, self._clock())
            if action.kind != "run":
                return
            res.dependents_changed = False  # this run sees every dependent as it is now
            run_id = uuid.uuid4().hex[:12]
            started = self._clock()
            try:
                spec = await self._spec(res, run_id, action.trigger)
            except PermanentError as exc:
                res.done = self._done(
                    res,
                    action,
                    _digest(res.body, watch),
                    None,
                    retry=exc.reason in WAITING_REASONS,
                    succeeded=False,
                )
                self._event(res, "Warning", exc.reason, str(exc))
                await self._patch(
                    res,
                    status.error_patch(
                        res.status, action.generation, exc.reason, str(exc), self._clock()
                    ),
                )
                return
            digest = _digest(res.body, watch)  # the annotations this run sees
            annotations = (res.body.get("metadata") or {}).get("annotations") or {}
            requested = annotations.get(REQUEST_ANNOTATION)
            requested = None if requested is None else str(requested)
            await self._patch(
                res,
                status.started_patch(
                    res.status,
                    run_id,
                    action.generation,
                    action.trigger,
                    started,
                    manage_status=manage,
                ),
            )
            logger.info(
                "%s: run %s of generation %s started (%s)",
                res.key,
                run_id,
                action.generation,
                action.trigger,
                extra=_ctx(res, run_id),
            )
            self._event(
                res,
                "Normal",
                "Started",
                f"run {run_id} of generation {action.generation} started ({action.trigger})",
            )
            result = await self._execute(res, spec, action.generation)
        bookkeeping: dict[str, Any] = {}
        if digest is not None:
            bookkeeping["annotations"] = digest
        if requested is not None:
            bookkeeping["runRequested"] = requested
        requeue = res.requeue_after if result.status != "canceled" else None
        if requeue is not None:
            bookkeeping["requeueAfter"] = requeue  # read back after a restart
            logger.info(
                "%s: run %s asked to run again in %ss (requeue_after)",
                res.key,
                result.run_id,
                f"{requeue:g}",
                extra=_ctx(res, result.run_id),
            )
        if result.status != "canceled":
            res.done = self._done(
                res,
                action,
                digest,
                requested,
                retry=result.status in RETRIED_RESULTS,
                succeeded=result.succeeded,
            )
            if requeue is not None:
                res.done = replace(res.done, requeue_after=requeue)
        await self._report(res, result, action.generation, action.trigger, started, bookkeeping)

    async def _spec(
        self, res: _Resource, run_id: str, trigger: Trigger, *, finalizing: bool = False
    ) -> RunSpec:
        """The run's inputs from the newest body, with Secret references resolved."""
        raw = res.body.get("spec")
        resolved, values = await secrets.resolve(
            raw if isinstance(raw, Mapping) else {}, res.key.namespace, self._kube.secret_data
        )
        spec = inputs.run_spec(
            res.body,
            res.watch,
            run_id=run_id,
            trigger=trigger,
            artifacts_root=self._settings.runner.artifacts_dir,
            project_dir=self._settings.watches_file.parent,
            finalizing=finalizing,
            spec=resolved if values else None,
            secrets=values,
            envvars=self._settings.runner.env,
        )
        spec = await self._access(res, spec, raw if isinstance(raw, Mapping) else {})
        return self._sdk_options(res, spec)

    async def _access(self, res: _Resource, spec: RunSpec, raw: Mapping[str, Any]) -> RunSpec:
        """The watch's ``credentials`` and non-path ``inventory`` resolved into ``spec`` (every
        credential value joins ``spec.secrets``)."""
        watch, namespace = res.watch, res.key.namespace
        if watch.automation.credentials is None and watch.automation.inventory_source is None:
            return spec
        changes: dict[str, Any] = {}
        if watch.automation.inventory_source is not None:
            changes["inventory_text"] = await credentials.resolve_inventory(
                watch.automation.inventory_source,
                namespace,
                self._kube.secret_data,
                self._kube.config_map_data,
            )
            changes["inventory"] = None
            changes["hosts"] = "all"
        if watch.automation.credentials is not None:
            creds, values = await credentials.resolve_credentials(
                watch.automation.credentials, raw, namespace, self._kube.secret_data
            )
            if creds is not None:
                changes["credentials"] = creds
                changes["secrets"] = tuple(
                    sorted(set(spec.secrets) | set(values), key=len, reverse=True)
                )
        return replace(spec, **changes)

    def _sdk_options(self, res: _Resource, spec: RunSpec) -> RunSpec:
        """The Operator SDK's per-kind verbosity and per-resource annotations applied to a run's
        spec; a bad annotation is reported (a Warning Event, once per value) and ignored."""
        metadata = res.body.get("metadata") or {}
        overrides = sdk.run_overrides(metadata.get("annotations"))
        if overrides.problems != res.sdk_problems:
            res.sdk_problems = overrides.problems
            for problem in overrides.problems:
                logger.warning("%s: %s", res.key, problem, extra=_ctx(res))
                self._event(res, "Warning", "InvalidAnnotation", problem)
        runner = self._settings.runner
        verbosity = overrides.verbosity
        if verbosity is None:
            verbosity = runner.watch_verbosity.get(res.watch.key, runner.ansible_verbosity)
        if verbosity:
            spec = replace(spec, envvars={**spec.envvars, "ANSIBLE_VERBOSITY": str(verbosity)})
        if overrides.max_artifacts is not None:
            spec = replace(spec, max_artifacts=overrides.max_artifacts)
        return spec

    def _done(
        self,
        res: _Resource,
        action: Action,
        digest: str | None,
        requested: str | None,
        *,
        retry: bool,
        succeeded: bool,
    ) -> Done:
        """What a finished run leaves behind, with the next retry when one is due (and the
        last drift check, carried over)."""
        now = self._clock()
        previous = res.done if action.trigger == "retry" and res.done is not None else None
        attempt = previous.attempt + 1 if previous is not None else 0
        policy, watch = self._settings.retry, res.watch
        limit = policy.run_limit if watch.policy.retry_limit is None else watch.policy.retry_limit
        backoff = (
            policy.run_backoff if watch.policy.retry_backoff is None else watch.policy.retry_backoff
        )
        retry_at = None
        if retry and attempt < limit:
            delay = min(backoff * 2**attempt, policy.maximum)
            retry_at = now + timedelta(seconds=delay)
        checked_at, drifted = (res.done.checked_at, res.done.drifted) if res.done else (None, False)
        return Done(
            action.generation,
            now,
            digest,
            requested,
            attempt,
            retry_at,
            succeeded=succeeded,
            checked_at=checked_at,
            drifted=drifted,
        )

    def _checked(self, res: _Resource, drifted: bool) -> Done:
        """What a finished drift check leaves behind: the last run's record, and the check."""
        now = self._clock()
        if res.done is None:
            return Done(None, now, checked_at=now, drifted=drifted)
        return replace(res.done, checked_at=now, drifted=drifted)

    @contextlib.asynccontextmanager
    async def _slot(self, res: _Resource, trigger: Trigger) -> AsyncIterator[None]:
        """Hold one of the global run slots, queued until one is free: runs for new or
        changed resources before periodic runs, drift checks and retries
        (bridge.controller.scheduling)."""
        watch = res.watch
        # Within its kind's own limit first (MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>).
        kind_slots = self._kind_slots.get(watch.key)
        if kind_slots is not None:
            await kind_slots.acquire()
        res.ticket = self._slots.ticket(scheduling.priority(trigger))
        self._observer.queued(watch)
        try:
            await self._slots.acquire(res.ticket)
        except BaseException:
            if kind_slots is not None:
                kind_slots.release()
            raise
        finally:
            res.ticket = None
            self._observer.dequeued(watch)
        try:
            yield
        finally:
            self._slots.release()
            if kind_slots is not None:
                kind_slots.release()

    async def _execute(
        self, res: _Resource, spec: RunSpec, generation: int, *, observe: bool = True
    ) -> RunResult:
        """Run ``spec``; a cancel of the run alone (preemption) yields a canceled result, a
        cancel of the worker (shutdown) stops the run and propagates. ``observe``: tell the
        observer (metrics count runs; drift checks are not runs)."""

        res.requeue_after = None

        def on_event(event: RunnerEvent) -> None:
            if res.requeue_after is None:
                res.requeue_after = results.requeue_period(event)
            if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
                data = event.get("event_data") or {}
                logger.debug(
                    "%s: run %s: %s on %s",
                    res.key,
                    spec.run_id,
                    event.get("event"),
                    data.get("host"),
                    extra=_ctx(res, spec.run_id),
                )

        identity: Mapping[str, str] = {}
        if self._identities is not None:
            identity = self._identities.issue(res.watch, res.body)
        if identity:
            # The run's own API credentials win over the operator's kubeconfig; they are
            # secrets (redacted and scrubbed like Secret values).
            spec = replace(
                spec,
                envvars={**spec.envvars, **identity},
                secrets=(*spec.secrets, *(v for k, v in identity.items() if k.endswith("_KEY"))),
            )
        run = asyncio.create_task(self._executor.run(spec, on_event), name=f"run {spec.run_id}")
        res.run, res.running_generation = run, generation
        if spec.secrets:
            self._live_secrets[spec.run_id] = spec.secrets
        if observe:
            self._observer.started(res.watch, spec.run_id)
        began = time.monotonic()
        try:
            await asyncio.wait([run])
        except asyncio.CancelledError:
            run.cancel()
            await asyncio.wait([run])
            raise
        finally:
            res.run, res.running_generation = None, None
            # The executor has scrubbed the run's files by the time it returns.
            self._live_secrets.pop(spec.run_id, None)
            if identity and self._identities is not None:
                self._identities.revoke(identity)
        await self._prune(res, spec)
        if run.cancelled():
            result = RunResult(
                run_id=spec.run_id, status="canceled", message="the run was canceled"
            )
        elif (exc := run.exception()) is not None:
            logger.error(
                "%s: run %s could not run: %r",
                res.key,
                spec.run_id,
                exc,
                extra=_ctx(res, spec.run_id),
            )
            result = RunResult(run_id=spec.run_id, status="error", message=str(exc))
        else:
            result = run.result()
        result = secrets.redact_result(result, spec.secrets)
        if spec.secrets and result.changed_tasks:
            # A task name may be templated from a Secret's value; it goes into the status.
            result = replace(
                result,
                changed_tasks=tuple(
                    replace(
                        t,
                        task=secrets.redact(t.task, spec.secrets),
                        play=secrets.redact(t.play, spec.secrets),
                    )
                    for t in result.changed_tasks
                ),
            )
        if observe:
            self._observer.finished(res.watch, result, time.monotonic() - began)
        return result

    async def _prune(self, res: _Resource, spec: RunSpec) -> None:
        """Keep the run's artifacts folder within its count and size bounds (the run just
        finished stays)."""
        try:
            await asyncio.to_thread(
                artifacts.prune,
                spec.artifact_dir,
                max_count=spec.max_artifacts,
                max_bytes=self._settings.runner.max_artifacts_bytes,
                keep=spec.run_id,
            )
        except OSError as exc:  # never fail a run over its leftovers
            logger.warning("%s: old artifacts not removed: %s", res.key, exc, extra=_ctx(res))

    async def _report(
        self,
        res: _Resource,
        result: RunResult,
        generation: int,
        trigger: Trigger,
        started: datetime,
        bookkeeping: Mapping[str, Any],
    ) -> None:
        summary = results.summarize(result)
        logger.info(
            "%s: run %s %s", res.key, result.run_id, summary, extra=_ctx(res, result.run_id)
        )
        if result.succeeded:
            self._event(res, "Normal", "Succeeded", f"run {result.run_id} {summary}")
        elif result.status == "canceled":
            self._event(res, "Normal", "Canceled", f"run {result.run_id} {summary}")
        else:
            self._event(
                res,
                "Warning",
                status.RESULT_REASONS[result.status],
                f"run {result.run_id} {summary}",
            )
        # The playbook may have written status itself (k8s_status): merge into the newest.
        await self._refresh(res)
        await self._patch(
            res,
            status.finished_patch(
                res.status,
                result,
                generation,
                trigger,
                started,
                self._clock(),
                manage_status=res.watch.policy.manage_status,
                bookkeeping=bookkeeping,
                drift=res.watch.policy.drift_interval is not None,
            ),
        )

    async def _check(self, res: _Resource) -> None:
        """One drift check: the automation with ``--check --diff``, reported in
        ``status.lastCheck`` and the ``Drifted`` condition only (never as a run)."""
        watch = res.watch
        async with self._slot(res, "drift"):
            # The body may have moved on while we waited for a slot: decide again.
            action = _decide(res, self._clock())
            if action.kind != "check":
                return
            run_id = uuid.uuid4().hex[:12]
            started = self._clock()
            began = time.monotonic()
            reason: str | None = None
            if not getattr(self._executor, "supports_check", False):
                # Never hand a check to a backend that might run it for real.
                reason = "CheckUnsupported"
                result = RunResult(run_id, "error", message="the executor cannot run in check mode")
            else:
                try:
                    spec = await self._spec(res, run_id, "drift")
                except PermanentError as exc:
                    reason = exc.reason
                    result = RunResult(run_id, "error", message=str(exc))
                else:
                    logger.info(
                        "%s: drift check %s of generation %s started",
                        res.key,
                        run_id,
                        action.generation,
                        extra=_ctx(res, run_id),
                    )
                    # Beside the runs' artifacts, rotated on their own: checks never push a
                    # real run's artifacts out, nor become the newest "run" of /logs.
                    check = replace(
                        spec, check=True, artifact_dir=spec.artifact_dir.parent / "checks"
                    )
                    result = await self._execute(res, check, action.generation, observe=False)
        if result.status == "canceled":
            logger.info("%s: drift check %s canceled", res.key, run_id, extra=_ctx(res, run_id))
            return
        verdict = status.drift_condition(result, action.generation, self._clock(), reason)
        drifted = verdict["status"] == "True"
        res.done = self._checked(res, drifted)
        self._observer.checked(
            watch,
            "drifted" if drifted else "clean" if verdict["status"] == "False" else "failed",
            time.monotonic() - began,
        )
        logger.info(
            "%s: drift check %s: %s: %s",
            res.key,
            run_id,
            verdict["reason"],
            verdict["message"],
            extra=_ctx(res, run_id),
        )
        # Events say what changed: drift found or gone, a check failing; not every check.
        conditions = res.status.get("conditions")
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
        if drifted and not repeated:
            then = "; remediating" if watch.policy.drift_remediate else ""
            self._event(res, "Warning", "Drifted", f"check {run_id}: {verdict['message']}{then}")
        elif verdict["status"] == "Unknown" and not repeated:
            self._event(res, "Warning", verdict["reason"], f"check {run_id}: {verdict['message']}")
        elif (
            verdict["status"] == "False"
            and before is not None
            and before.get("status") in ("True", "Unknown")
        ):
            self._event(res, "Normal", "InSync", f"check {run_id}: {verdict['message']}")
        await self._patch(
            res,
            status.check_patch(
                res.status,
                result,
                action.generation,
                started,
                self._clock(),
                manage_status=watch.policy.manage_status,
                reason=reason,
            ),
        )

    async def _finalize(self, res: _Resource) -> bool:
        """Run the finalizer's automation; release the finalizer if it succeeded."""
        async with self._slot(res, "finalize"):
            run_id = uuid.uuid4().hex[:12]
            started = self._clock()
            generation = int((res.body.get("metadata") or {}).get("generation") or 0)
            try:
                spec = await self._spec(res, run_id, "finalize", finalizing=True)
            except PermanentError as exc:
                self._event(res, "Warning", exc.reason, str(exc))
                raise TemporaryError(str(exc)) from exc
            logger.info("%s: finalizer run %s started", res.key, run_id, extra=_ctx(res, run_id))
            result = await self._execute(res, spec, generation)
        if not result.succeeded:
            res.finalize_failures += 1
            self._event(
                res, "Warning", "FinalizerFailed", f"run {run_id} {results.summarize(result)}"
            )
            await self._patch(
                res,
                status.finished_patch(
                    res.status,
                    result,
                    generation,
                    "finalize",
                    started,
                    self._clock(),
                    manage_status=res.watch.policy.manage_status,
                ),
            )
            return False
        self._event(
            res, "Normal", "Finalized", f"finalizer run {run_id} {results.summarize(result)}"
        )
        await self._release_finalizer(res)
        return True


def _decide(res: _Resource, now: datetime) -> Action:
    return decide(
        res.body, res.watch, done=res.done, now=now, dependents_changed=res.dependents_changed
    )


def _digest(body: Mapping[str, Any], watch: Watch) -> str | None:
    if not watch.policy.watch_annotations_changes:
        return None
    return annotations_digest(body.get("metadata") or {})


def _uid(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("uid", ""))


def _ctx(res: _Resource, run_id: str | None = None) -> dict[str, Any]:
    """``extra=`` for a log call: the resource, and the run when there is one (JSON logs)."""
    ctx: dict[str, Any] = {"resource": str(res.key)}
    if run_id is not None:
        ctx["run_id"] = run_id
    return ctx


def _rv(body: Mapping[str, Any]) -> int:
    """resourceVersion as a number, for ordering bodies of one object (0 if unknown).

    NB: resourceVersions are opaque by contract; etcd-backed servers give increasing integers,
    and this is used only to drop bodies older than one already seen.
    """
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0
