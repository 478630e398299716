"""Executing one run spec of a resource: credentials, cancellation, artifacts and redaction.

The executor runs the spec; around it, the run gets its own API credentials (and loses them when
it ends), its Secret values are known while it runs (to redact its live output), its artifacts
folder is pruned, and the result is redacted before anything reports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from bridge.ansible import artifacts, secrets
from bridge.config.settings import OperatorSettings
from bridge.controller.ports import RunIdentities, RunObserver
from bridge.controller.registry import Resource
from bridge.executors import Executor
from bridge.model.records import RunnerEvent, RunResult, RunSpec

logger = logging.getLogger(__name__)


class Execution:
    """Runs specs through the executor for :class:`Resource` records."""

    def __init__(
        self,
        settings: OperatorSettings,
        executor: Executor,
        observer: RunObserver,
        identities: RunIdentities | None,
    ) -> None:
        self._settings = settings
        self._executor = executor
        self._observer = observer
        self._identities = identities
        self._live_secrets: dict[str, tuple[str, ...]] = {}

    @property
    def supports_check(self) -> bool:
        """Whether the executor can run a spec in check mode (drift checks)."""
        return self._executor.supports_check

    def secrets_of(self, run_id: str) -> tuple[str, ...]:
        """The Secret values of run ``run_id`` while it runs (to redact its live output)."""
        return self._live_secrets.get(run_id, ())

    async def execute(
        self, res: Resource, spec: RunSpec, generation: int, *, observe: bool = True
    ) -> RunResult:
        """Run ``spec``; a cancel of the run alone (preemption) yields a canceled result, a
        cancel of the worker (shutdown) stops the run and propagates. ``observe``: tell the
        observer (metrics count runs; drift checks are not runs)."""

        def on_event(event: RunnerEvent) -> None:
            if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
                data = event.get("event_data") or {}
                logger.debug(
                    "%s: run %s: %s on %s",
                    res.key,
                    spec.run_id,
                    event.get("event"),
                    data.get("host"),
                    extra=res.log(spec.run_id),
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
        res.finalizing = spec.trigger == "finalize"
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
            res.run, res.running_generation, res.finalizing = None, None, False
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
                extra=res.log(spec.run_id),
            )
            result = RunResult(run_id=spec.run_id, status="error", message=str(exc))
        else:
            result = run.result()
        result = _redacted(result, spec.secrets)
        if observe:
            self._observer.finished(res.watch, result, time.monotonic() - began)
        return result

    async def _prune(self, res: Resource, spec: RunSpec) -> None:
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
            logger.warning("%s: old artifacts not removed: %s", res.key, exc, extra=res.log())


def _redacted(result: RunResult, values: tuple[str, ...]) -> RunResult:
    """``result`` with ``values`` (Secret values) redacted, the changed tasks' names too."""
    result = secrets.redact_result(result, values)
    if values and result.changed_tasks:
        # A task name may be templated from a Secret's value; it goes into the status.
        result = replace(
            result,
            changed_tasks=tuple(
                replace(
                    t,
                    task=secrets.redact(t.task, values),
                    play=secrets.redact(t.play, values),
                )
                for t in result.changed_tasks
            ),
        )
    return result
