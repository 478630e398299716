"""One attempt at what a resource needs: the shared skeleton of a run, a drift check, a finalizer.

Every attempt goes the same way: wait for a run slot (:mod:`bridge.controller.scheduling`),
decide again (the body may have moved on meanwhile), build the spec
(:mod:`bridge.controller.specs`), execute it (:mod:`bridge.controller.execution`), then apply
what the outcome policy (:func:`bridge.controller.outcome.settle`) says: memory, Event, status,
finalizer release. The three kinds differ only in how the spec is prepared, how the start is
announced and in what the policy makes of the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime

from bridge.ansible.results import summarize
from bridge.config.settings import OperatorSettings
from bridge.controller import bounds, scheduling, status
from bridge.controller.decide import Action, annotations_digest
from bridge.controller.execution import Execution
from bridge.controller.outcome import Attempt, AttemptKind, Event, Outcome, Policy, settle
from bridge.controller.ports import RunObserver
from bridge.controller.registry import Resource
from bridge.controller.specs import SpecBuilder
from bridge.controller.writer import Writer
from bridge.model.annotations import RUN_REQUESTED
from bridge.model.errors import PermanentError
from bridge.model.records import RunResult, RunSpec, Trigger

logger = logging.getLogger(__name__)

#: The actions that are attempts, by kind.
_KINDS: dict[str, AttemptKind] = {"run": "run", "check": "check", "finalize": "finalize"}


class Attempts:
    """Makes runs, drift checks and finalizer runs of :class:`Resource` records."""

    def __init__(
        self,
        settings: OperatorSettings,
        execution: Execution,
        specs: SpecBuilder,
        writer: Writer,
        observer: RunObserver,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._execution = execution
        self._specs = specs
        self._writer = writer
        self._observer = observer
        self._clock = clock
        self.slots = scheduling.PrioritySlots(settings.runner.max_concurrent_runs)
        self._kind_slots = {
            key: asyncio.Semaphore(max(1, limit))
            for key, limit in settings.runner.watch_max_runs.items()
        }

    async def attempt(self, res: Resource, action: Action) -> Outcome | None:
        """Make the run, check or finalizer run ``action`` asks for, and apply its outcome
        (returned). None: by the time a slot was free, the resource needed something else."""
        kind = _KINDS[action.kind]
        if kind == "run":
            await self._note_queued(res, action)
        async with self._slot(res, action.trigger):
            # The body may have moved on while we waited for a slot: decide again.
            action = res.decide(self._clock())
            if action.kind != kind:
                return None
            if kind == "run":
                res.dependents_changed = False  # this run sees every dependent as it is now
            attempt = self._begin(res, action, kind)
            began = time.monotonic()
            ended: RunResult | PermanentError
            try:
                spec = await self._prepare(res, attempt)
            except PermanentError as exc:
                ended = exc
            else:
                await self._announce(res, attempt)
                observe = kind != "check"  # metrics count runs; drift checks are not runs
                ended = await self._execution.execute(
                    res, spec, attempt.generation, observe=observe
                )
        return await self._conclude(res, attempt, ended, time.monotonic() - began)

    def _begin(self, res: Resource, action: Action, kind: AttemptKind) -> Attempt:
        metadata = res.body.get("metadata") or {}
        digest = requested = None
        if kind == "run":
            if res.watch.policy.watch_annotations_changes:
                digest = annotations_digest(metadata)  # the annotations this run sees
            value = (metadata.get("annotations") or {}).get(RUN_REQUESTED)
            requested = None if value is None else str(value)
        generation = res.generation if kind == "finalize" else action.generation
        return Attempt(
            kind,
            generation,
            action.trigger,
            uuid.uuid4().hex[:12],
            self._clock(),
            digest,
            requested,
        )

    async def _prepare(self, res: Resource, attempt: Attempt) -> RunSpec:
        invalid = bounds.invalid_reason(res.body)
        if invalid is not None:
            raise PermanentError(
                f"the resource cannot be used: its {invalid}; nothing runs until it is fixed",
                reason=bounds.REASON,
            )
        if attempt.kind == "finalize":
            return await self._specs.build(res, attempt.run_id, "finalize", finalizing=True)
        if attempt.kind == "run":
            return await self._specs.build(res, attempt.run_id, attempt.trigger)
        if not self._execution.supports_check:
            # Never hand a check to a backend that might run it for real.
            raise PermanentError("the executor cannot run in check mode", reason="CheckUnsupported")
        spec = await self._specs.build(res, attempt.run_id, "drift")
        # Beside the runs' artifacts, rotated on their own: checks never push a real run's
        # artifacts out, nor become the newest "run" of /logs.
        return replace(spec, check=True, artifact_dir=spec.artifact_dir.parent / "checks")

    async def _announce(self, res: Resource, attempt: Attempt) -> None:
        run_id, generation = attempt.run_id, attempt.generation
        if attempt.kind == "check":
            logger.info(
                "%s: drift check %s of generation %s started",
                res.key,
                run_id,
                generation,
                extra=res.log(run_id),
            )
            return
        if attempt.kind == "finalize":
            logger.info("%s: finalizer run %s started", res.key, run_id, extra=res.log(run_id))
            return
        await self._writer.patch(
            res,
            status.started_patch(
                res.status,
                run_id,
                generation,
                attempt.trigger,
                attempt.started,
                manage_status=res.watch.policy.manage_status,
            ),
        )
        logger.info(
            "%s: run %s of generation %s started (%s)",
            res.key,
            run_id,
            generation,
            attempt.trigger,
            extra=res.log(run_id),
        )
        started = f"run {run_id} of generation {generation} started ({attempt.trigger})"
        self._writer.event(res, Event("Normal", "Started", started))

    async def _conclude(
        self, res: Resource, attempt: Attempt, ended: RunResult | PermanentError, seconds: float
    ) -> Outcome:
        """Apply the outcome policy's verdict on ``attempt``."""
        outcome = settle(
            attempt,
            ended,
            res.done,
            Policy.of(self._settings.retry, res.watch),
            now=self._clock(),
            existing=res.status,
        )
        res.done = outcome.memory
        self._log(res, attempt, ended, outcome)
        if outcome.check is not None:
            self._observer.checked(res.watch, outcome.check, seconds)
        self._writer.event(res, outcome.event)
        if outcome.status is not None:
            if attempt.kind == "run" and isinstance(ended, RunResult):
                # The playbook may have written status itself (k8s_status): merge into the
                # newest.
                await self._writer.refresh(res)
            await self._writer.patch(res, outcome.status.patch(res.status, self._clock()))
        if outcome.release_finalizer:
            await self._writer.release_finalizer(res)
        return outcome

    def _log(
        self, res: Resource, attempt: Attempt, ended: RunResult | PermanentError, outcome: Outcome
    ) -> None:
        run_id, extra = attempt.run_id, res.log(attempt.run_id)
        if isinstance(ended, PermanentError):
            logger.warning("%s: %s: %s", res.key, ended.reason, ended, extra=extra)
        elif attempt.kind == "check":
            if outcome.check is None:
                logger.info("%s: drift check %s canceled", res.key, run_id, extra=extra)
            else:
                logger.info("%s: drift check %s: %s", res.key, run_id, outcome.check, extra=extra)
        else:
            logger.info("%s: run %s %s", res.key, run_id, summarize(ended), extra=extra)
        if outcome.requeue_after is not None:
            logger.info(
                "%s: run %s asked to run again in %ss (requeue_after)",
                res.key,
                run_id,
                f"{outcome.requeue_after:g}",
                extra=extra,
            )

    async def _note_queued(self, res: Resource, action: Action) -> None:
        """Reconciling True (Queued) when the run has to wait for a slot."""
        kind_slots = self._kind_slots.get(res.watch.key)
        if self.slots.locked() or (kind_slots is not None and kind_slots.locked()):
            await self._writer.patch(
                res,
                status.queued_patch(
                    res.status,
                    action.generation,
                    action.trigger,
                    self._clock(),
                    manage_status=res.watch.policy.manage_status,
                ),
            )

    @contextlib.asynccontextmanager
    async def _slot(self, res: Resource, trigger: Trigger) -> AsyncIterator[None]:
        """Hold one of the global run slots, queued until one is free: runs for new or
        changed resources before periodic runs, drift checks and retries
        (bridge.controller.scheduling)."""
        watch = res.watch
        # Within its kind's own limit first (MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>).
        kind_slots = self._kind_slots.get(watch.key)
        if kind_slots is not None:
            await kind_slots.acquire()
        res.ticket = self.slots.ticket(scheduling.priority(trigger))
        self._observer.queued(watch)
        try:
            await self.slots.acquire(res.ticket)
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
            self.slots.release()
            if kind_slots is not None:
                kind_slots.release()
