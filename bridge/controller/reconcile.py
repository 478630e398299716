"""The controller: takes in watch events, and runs each resource's worker loop and timers.

kopf tells the :class:`Controller` about every event of every watched object
(:meth:`Controller.observe`, which never blocks). Each resource then has at most one worker task,
which loops: read the newest body, decide (:func:`~bridge.controller.decide.decide`, pure), make
the attempt it asks for (:mod:`bridge.controller.attempt`), repeat until nothing is left to do,
then sets a timer for when something falls due (a periodic run, a retry, a drift check). So one
resource's runs are strictly one at a time, runs across resources are bounded by one set of slots
(:mod:`bridge.controller.scheduling`), and kopf's event loop only ever schedules.

A newer generation arriving while an older one runs cancels the stale run; deleting the
resource cancels the run, then runs the finalizer, then releases the finalizer. A new
generation cancels a drift check too. Once deletion has begun, nothing but the operator's
shutdown cancels the finalizer run (not an update of labels, annotations or spec).

The parts: :mod:`~bridge.controller.decide` (what a resource needs),
:mod:`~bridge.controller.registry` (the records, by uid and by owner),
:mod:`~bridge.controller.attempt` (run / check / finalize), :mod:`~bridge.controller.specs`
(run inputs), :mod:`~bridge.controller.execution` (the executor call),
:mod:`~bridge.controller.outcome` (retries, Stalled, Events: the policy),
:mod:`~bridge.controller.writer` (API writes), :mod:`~bridge.controller.status` (status patches).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.config.settings import OperatorSettings
from bridge.controller import bounds, scheduling, status
from bridge.controller.attempt import Attempts
from bridge.controller.decide import (
    Action,
    ActionKind,
    Done,
    annotations_digest,
    decide,
    is_suspended,
    reconcile_period,
)
from bridge.controller.execution import Execution
from bridge.controller.outcome import Event, RetryPolicy, temporary_backoff
from bridge.controller.ports import (
    CheckVerdict,
    EventPoster,
    NoObserver,
    RunIdentities,
    RunObserver,
    StatusWriter,
)
from bridge.controller.registry import Registry, Resource, rv
from bridge.controller.specs import SpecBuilder
from bridge.controller.writer import Writer
from bridge.executors import Executor
from bridge.model.errors import TemporaryError
from bridge.model.watch import Watch

__all__ = [
    "KEPT_CONTEXT",
    "Action",
    "ActionKind",
    "CheckVerdict",
    "Controller",
    "Done",
    "EventPoster",
    "RunIdentities",
    "RunObserver",
    "StatusWriter",
    "annotations_digest",
    "decide",
    "is_suspended",
    "reconcile_period",
    "worker_context",
]

logger = logging.getLogger(__name__)

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
        self._settings = settings
        self._clock = clock
        self._writer = Writer(kube, post_event)
        observer = observer or NoObserver()
        self._execution = Execution(settings, executor, observer, identities)
        self._attempts = Attempts(
            settings,
            self._execution,
            SpecBuilder(settings, kube, self._writer),
            self._writer,
            observer,
            clock,
        )
        self._resources = Registry()
        self._closing = False

    # --- events ---------------------------------------------------------------------------

    def observe(
        self, watch: Watch, plural: str, event_type: str | None, body: Mapping[str, Any]
    ) -> None:
        """Take in one watch event (``event_type`` None: the initial listing). Never blocks.
        The record keeps its own compact copy of ``body`` (:func:`bridge.model.bodies.keep`);
        a body nested too deep gets a marker spec first (:func:`bounds.checked`; the size bound
        is kopf's decoding's, :func:`bridge.controller.handlers.guard_decoding`)."""
        body = bounds.checked(body, large=False)
        metadata = body.get("metadata") or {}
        uid = str(metadata.get("uid", ""))
        if not uid or self._closing:
            return
        if event_type == "DELETED":
            gone = self._resources.remove(uid)
            if gone is not None:
                logger.info("%s: deleted; forgotten", gone.key, extra=gone.log())
                self._writer.stop(gone)
                if gone.wake is not None:
                    gone.wake.cancel()
                if gone.worker is not None:
                    gone.worker.cancel()
            return
        res = self._resources.get(uid)
        if res is None:
            res = self._resources.add(watch, plural, body)
        elif rv(body) < rv(res.body):
            return  # older than what we already know (e.g. our own patch's response)
        else:
            res.body = body
        self._preempt(res)
        self._promote(res)
        if res.idle():
            self._start_worker(res)

    def dependent_changed(
        self, group: str, kind: str, namespace: str | None, name: str, uid: str | None = None
    ) -> bool:
        """An object a run of this owner created changed or went away (bridge.kube.dependents):
        run the owner again, after its run in flight if there is one. Never blocks. False when
        no such owner is known (or its watch does not watch dependents, or it is being
        deleted)."""
        if self._closing:
            return False
        found = False
        for res in self._resources.owners(group, kind, namespace, name):
            if (
                not res.watch.dependents.enabled
                or (uid is not None and res.uid != uid)
                or (res.body.get("metadata") or {}).get("deletionTimestamp")
            ):
                continue
            found = True
            res.dependents_changed = True
            self._promote(res)
            if res.idle():
                self._start_worker(res)
        return found

    def secrets_of(self, run_id: str) -> tuple[str, ...]:
        """The Secret values of run ``run_id`` while it runs (to redact its live output)."""
        return self._execution.secrets_of(run_id)

    def counts(self) -> dict[str, int]:
        """Resources known, and runs in flight."""
        running = sum(1 for r in self._resources if r.busy())
        return {"resources": len(self._resources), "running": running}

    async def shutdown(self) -> None:
        """Cancel every worker and wait for their runs to stop (no process is left behind).

        Interrupted runs keep ``status.currentRun``, so the next start re-runs them; so do
        runs whose final status was still waiting for the API.
        """
        self._closing = True
        for res in self._resources:
            if res.wake is not None:
                res.wake.cancel()
        workers = [r.worker for r in self._resources if r.worker is not None]
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.wait(workers)
        for res in self._resources:  # status writes still waiting for the API are given up
            self._writer.stop(res)

    def _promote(self, res: Resource) -> None:
        """A worker waiting for a slot with a background run (periodic, drift, retry) whose
        resource now needs an urgent one (it changed, a run was requested...) moves up."""
        ticket = res.ticket
        if ticket is None or not ticket.waiting or ticket.priority == scheduling.URGENT:
            return
        action = res.decide(self._clock())
        if action.kind in ("run", "finalize"):
            self._attempts.slots.promote(ticket, scheduling.priority(action.trigger))

    def _preempt(self, res: Resource) -> None:
        """Cancel a run that the newest body makes stale (a newer generation, or deletion); a
        finalizer run is never stale (only shutdown stops it)."""
        if res.run is None or res.run.done() or res.finalizing:
            return
        metadata = res.body.get("metadata") or {}
        if (
            metadata.get("deletionTimestamp")
            or is_suspended(metadata)
            or (res.running_generation is not None and res.generation > res.running_generation)
        ):
            logger.info(
                "%s: canceling the run of generation %s",
                res.key,
                res.running_generation,
                extra=res.log(),
            )
            res.run.cancel()

    # --- the worker and its timer -------------------------------------------------------------

    def _start_worker(self, res: Resource) -> None:
        res.worker = asyncio.create_task(
            self._work(res), name=f"reconcile {res.key}", context=worker_context()
        )

    def _wake_at(self, res: Resource, when: datetime | None) -> None:
        """Look at ``res`` again at ``when`` (a periodic run falls due)."""
        if res.wake is not None:
            res.wake.cancel()
            res.wake = None
        if when is None or self._closing:
            return
        delay = max(0.0, (when - self._clock()).total_seconds())
        res.wake = asyncio.get_running_loop().call_later(delay, self._poke, res)

    def _poke(self, res: Resource) -> None:
        res.wake = None
        if self._closing or self._resources.get(res.uid) is not res:
            return
        if res.idle():
            self._start_worker(res)

    async def _work(self, res: Resource) -> None:
        policy = RetryPolicy.of(self._settings.retry, res.watch)
        delay = policy.initial
        while True:
            action = res.decide(self._clock())
            if action.kind == "none":
                self._wake_at(res, action.wake_at)
                return  # NB: no await between decide() and return, see observe()
            if action.kind == "suspend":
                self._wake_at(res, None)
                await self._note_suspension(res, True)
                if res.decide(self._clock()).kind == "suspend":
                    return
                continue
            await self._note_suspension(res, False)
            try:
                if action.kind == "run" and bounds.invalid_reason(res.body) is None:
                    await self._writer.ensure_finalizer(res)
                outcome = await self._attempts.attempt(res, action)
                if outcome is not None and outcome.retry_in is not None:
                    why = "the finalizer run did not succeed"
                    if outcome.status is None and outcome.event is not None:
                        why = outcome.event.message  # it could not start
                    raise TemporaryError(why, delay=outcome.retry_in)
                if outcome is not None and outcome.release_finalizer:
                    return
                delay = policy.initial
            except TemporaryError as exc:
                wait, delay = temporary_backoff(exc, delay, policy)
                logger.warning("%s: %s; retrying in %.0fs", res.key, exc, wait, extra=res.log())
                await asyncio.sleep(wait)
                await self._writer.refresh(res)

    async def _note_suspension(self, res: Resource, suspended: bool) -> None:
        if not res.watch.policy.manage_status:
            return
        patch = status.suspended_patch(res.status, suspended, res.generation, self._clock())
        if patch:
            await self._writer.patch(res, patch)
            if suspended:
                self._writer.event(res, Event("Normal", "Suspended", "runs are suspended"))
