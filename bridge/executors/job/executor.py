"""The job executor: each run is a Kubernetes Job whose pod runs ``ansible-runner worker``.

ansible-runner splits a run in three (its transmit / worker / process streaming, as AWX runs
jobs on execution nodes): *transmit* packs the run's private data dir and arguments into one
stream, *worker* unpacks it, runs ``ansible-playbook`` and streams back the job events, the
status and the artifacts, and *process* replays that stream through the same callbacks as a
local run. So a Job run writes the same artifacts (``job_events/``, ``stdout``, ``rc``,
``status``...) and feeds the same events to :class:`~bridge.executors.plumbing.EventRelay` as
a local one, and status, outputs and Events are computed once, by the same code.

Per run (:meth:`JobExecutor.run`):

1. the private data dir is prepared exactly as for the local executor
   (:mod:`bridge.executors.plumbing`: extravars 0600 in a 0700 folder, the role playbook, the
   localhost inventory) and the Job (:func:`~bridge.executors.job.manifest.job_manifest`) is
   created in the API: labels ``ansible-bridge.io/resource-uid``, ``/generation``, ``/run-id``,
   ``backoffLimit: 0``, ``restartPolicy: Never``, the container with ``stdin``/``stdinOnce``,
   the watch's image, resources, serviceAccount, nodeSelector and tolerations;
2. a :class:`~bridge.executors.job.transport.Transport` opens the worker's two ends:
   :class:`PodTransport` waits for the Job's pod to run, attaches to its stdin
   (``pods/attach``) and follows its log (``pods/log``); :class:`ProcessTransport` runs
   ``ansible-runner worker`` as a local process standing in for the pod's container (tests and
   development: ``--job-transport process``);
3. the transmit stream is written to the worker's stdin (from memory: the extravars, Secrets
   included, never touch a file other than the private dir's, and never the Job object), and
   the worker's output is read by ansible-runner's processor into the run's artifact folder;
4. the Job is deleted once the run ended; ``ttlSecondsAfterFinished`` removes the Job of a
   run whose operator went away first.

Cancellation and timeouts delete the Job with ``propagationPolicy: Foreground`` (its pod goes
first), stop the transport (the local worker's whole process tree, by the run id marker of
:mod:`bridge.ansible.proctree`, SIGINT then SIGKILL), and only then does the cancellation reach the
caller. A worker stream cannot be re-attached once the operator that held its stdin is gone, so
on its first run the executor deletes the Jobs left by an earlier operator for its watches
(logged); the controller runs their resources again (``trigger: resume``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import io
import logging
import shutil
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bridge.ansible import proctree, secrets
from bridge.config.settings import JobSettings, RunnerSettings
from bridge.executors import EventCallback
from bridge.executors.job.manifest import SELECTOR, job_manifest, transmit_options
from bridge.executors.job.transport import Channel, PodTransport, ProcessTransport, Transport
from bridge.executors.plumbing import (
    EventRelay,
    apply_credentials,
    await_run,
    cleanup_credentials,
    finish_artifacts,
    new_private_dir,
    prepare_private_dir,
    run_outcome,
    runner_options,
    timeout_message,
)
from bridge.kube.client import Jobs
from bridge.model.annotations import JOB_RESOURCE, JOB_WATCH, LABEL_GENERATION, LABEL_RUN_ID
from bridge.model.errors import BridgeError
from bridge.model.records import RunResult, RunSpec, RunStatus
from bridge.model.watch import JobOptions, Watch

logger = logging.getLogger("bridge.executors.job.executor")


class _Buffer(io.BytesIO):
    """ansible-runner's stream writer asks its output for a ``name``."""

    name = "<transmit>"


class JobExecutor:
    """Runs each run of its watches as a Kubernetes Job (see the module's docstring)."""

    #: Drift checks run in the worker with ``--check --diff``, as locally.
    supports_check = True

    def __init__(
        self,
        settings: RunnerSettings,
        jobs: JobSettings,
        kube: Jobs,
        watches: Iterable[Watch],
        *,
        namespaces: tuple[str, ...] = (),
        transport: Transport | None = None,
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._kube = kube
        self._watches = {w.key: w for w in watches}
        self._namespaces = namespaces
        if transport is None:
            transport = (
                ProcessTransport(settings)
                if jobs.transport == "process"
                else PodTransport(kube, jobs)
            )
        self._transport = transport
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, settings.max_concurrent_runs) + 2, thread_name_prefix="ansible-job"
        )
        self._channels: dict[str, Channel] = {}
        self._stopping: set[str] = set()
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._swept = False
        self._sweep_lock = asyncio.Lock()

    async def close(self) -> None:
        for run_id in list(self._in_flight):
            await asyncio.to_thread(self._stop_channel, run_id, 0)
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        self._kube.close()

    # --- one run ------------------------------------------------------------------------------

    async def run(self, spec: RunSpec, on_event: EventCallback) -> RunResult:
        await self._sweep()
        watch_key = f"{spec.resource.kind}.{spec.resource.api_version}"
        watch = self._watches.get(watch_key)
        options = (watch.executor.job if watch is not None else None) or JobOptions()
        namespace = options.namespace or spec.resource.namespace
        relay = EventRelay(asyncio.get_running_loop(), on_event)
        if not namespace:
            message = f"{spec.resource}: a cluster-scoped resource's Job needs job.namespace"
            return await relay.result(spec.run_id, "error", None, message)
        job = job_manifest(
            spec, options, image=self._jobs.image, namespace=namespace, watch_key=watch_key
        )
        name = job["metadata"]["name"]
        self._in_flight.add(spec.run_id)
        try:
            await self._kube.create(namespace, job)
            logger.info("run %s: Job %s/%s created", spec.run_id, namespace, name)
            future = asyncio.get_running_loop().run_in_executor(
                self._pool, self._run_sync, spec, job, relay.handle
            )
            # A cancellation goes on from here once the Job is deleted and the worker stopped.
            stop = functools.partial(self._stop, spec.run_id, future, namespace, name)
            (status, rc, message), timed_out = await await_run(spec, future, stop)
            if timed_out:
                status, message = "timeout", timeout_message(spec)
            else:
                await self._delete(namespace, name, foreground=False)
        finally:
            self._in_flight.discard(spec.run_id)
            with self._lock:
                self._stopping.discard(spec.run_id)
        return await relay.result(spec.run_id, status, rc, message)

    async def _stop(
        self, run_id: str, future: asyncio.Future[Any], namespace: str, name: str
    ) -> None:
        """Delete the Job (foreground) and stop the worker, then wait for the run's thread."""
        with self._lock:
            self._stopping.add(run_id)
        await self._delete(namespace, name, foreground=True)
        await asyncio.to_thread(self._stop_channel, run_id, self._settings.stop_grace)
        await asyncio.wait([future])
        await asyncio.to_thread(proctree.stop, run_id, grace=0)

    def _stop_channel(self, run_id: str, grace: float) -> None:
        with self._lock:
            self._stopping.add(run_id)
            channel = self._channels.get(run_id)
        if channel is not None:
            channel.stop(grace)

    def _is_stopping(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._stopping

    async def _delete(self, namespace: str, name: str, *, foreground: bool) -> None:
        try:
            await self._kube.delete(namespace, name, foreground=foreground)
        except BridgeError as exc:  # ttlSecondsAfterFinished is the backstop
            logger.warning("Job %s/%s could not be deleted: %s", namespace, name, exc)

    def _run_sync(
        self, spec: RunSpec, job: Mapping[str, Any], handle: Any
    ) -> tuple[RunStatus, int | None, str]:
        import ansible_runner

        private = new_private_dir(spec)
        artifacts = spec.artifact_dir / spec.run_id
        channel: Channel | None = None
        explanation: list[str] = []

        def on_status(data: dict[str, Any], runner_config: Any = None) -> None:
            if data.get("job_explanation"):
                explanation.append(str(data["job_explanation"]))

        try:
            # The worker (in its pod) has no such folder: Ansible's default temporary folders.
            inventory, playbook = prepare_private_dir(
                private, spec, self._settings, private_tmp=False
            )
            options = runner_options(
                self._settings, spec, private, inventory, playbook, handle, threading.Event()
            )
            apply_credentials(options, spec, private)  # inventory text, credentials (0600)
            channel = self._transport.open(job, spec, lambda: self._is_stopping(spec.run_id))
            with self._lock:
                self._channels[spec.run_id] = channel
                stopping = spec.run_id in self._stopping
            if stopping:
                return "canceled", None, "the run was canceled"
            stream = _Buffer()
            ansible_runner.run(
                streamer="transmit",
                _output=stream,
                private_data_dir=str(private),
                **transmit_options(
                    options, private, channel.private_dir, drop_env=self._transport.drop_env
                ),
            )
            channel.send(stream.getvalue())
            del stream
            processor = ansible_runner.run(
                streamer="process",
                _input=channel.output,
                private_data_dir=str(private),
                artifact_dir=str(artifacts),
                ident=spec.run_id,
                event_handler=handle,
                status_handler=on_status,
                quiet=True,
            )
        except Exception as exc:  # the worker could not be started or reached
            return "error", None, f"the run's Job could not run: {exc}"
        finally:
            with self._lock:
                self._channels.pop(spec.run_id, None)
                self._stopping.discard(spec.run_id)
            if channel is not None:
                channel.close()
            cleanup_credentials(spec)
            shutil.rmtree(private, ignore_errors=True)
            finish_artifacts(spec)
            with contextlib.suppress(OSError):
                _rotate(spec.artifact_dir, max(1, spec.max_artifacts))
        rc = _read_rc(artifacts)
        status, rc, message = run_outcome(str(processor.status), rc)
        if status == "error" and not message:
            message = secrets.redact(
                "; ".join(explanation) or "the worker stream ended without a result", spec.secrets
            )
        return status, rc, message

    # --- Jobs of an earlier operator ----------------------------------------------------------

    async def _sweep(self) -> None:
        """Once, before the first run: delete the Jobs of this executor's watches that no run
        of this process owns (an earlier operator's; their runs are run again)."""
        async with self._sweep_lock:
            if self._swept:
                return
            try:
                found = await self._kube.list(self._namespaces, SELECTOR)
            except BridgeError as exc:
                logger.warning("could not list the Jobs of earlier runs (tried again): %s", exc)
                return
            for job in found:
                meta = job.get("metadata") or {}
                annotations = meta.get("annotations") or {}
                labels = meta.get("labels") or {}
                run_id = labels.get(LABEL_RUN_ID)
                if annotations.get(JOB_WATCH) not in self._watches:
                    continue
                if run_id in self._in_flight or meta.get("deletionTimestamp"):
                    continue
                logger.warning(
                    "Job %s/%s of run %s (%s, generation %s) was left by an earlier operator: "
                    "its worker cannot be re-attached; deleting it (the resource runs again)",
                    meta.get("namespace"),
                    meta.get("name"),
                    run_id,
                    annotations.get(JOB_RESOURCE),
                    labels.get(LABEL_GENERATION),
                )
                await self._delete(
                    str(meta.get("namespace")), str(meta.get("name")), foreground=True
                )
            self._swept = True


def _read_rc(artifacts: Path) -> int | None:
    try:
        return int((artifacts / "rc").read_text().strip())
    except (OSError, ValueError):
        return None


def _rotate(folder: Path, keep: int) -> None:
    """Keep the ``keep`` newest run folders of ``folder``, as ansible-runner's rotation does."""
    from ansible_runner.utils import cleanup_artifact_dir

    cleanup_artifact_dir(str(folder), keep)
