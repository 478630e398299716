"""The job executor: each run is a Kubernetes Job whose pod runs ``ansible-runner worker``.

ansible-runner splits a run in three (its transmit / worker / process streaming, as AWX runs
jobs on execution nodes): *transmit* packs the run's private data dir and arguments into one
stream, *worker* unpacks it, runs ``ansible-playbook`` and streams back the job events, the
status and the artifacts, and *process* replays that stream through the same callbacks as a
local run. So a Job run writes the same artifacts (``job_events/``, ``stdout``, ``rc``,
``status``...) and feeds the same events to :class:`~bridge.executors.local.EventRelay` as a
local one, and status, outputs and Events are computed once, by the same code.

Per run (:meth:`JobExecutor.run`):

1. the private data dir is prepared exactly as for the local executor (extravars 0600 in a
   0700 folder, the role playbook, the localhost inventory) and :func:`job_manifest` is created
   in the API: labels ``ansible-bridge.io/resource-uid``, ``/generation``, ``/run-id``,
   ``backoffLimit: 0``, ``restartPolicy: Never``, the container with ``stdin``/``stdinOnce``,
   the watch's image, resources, serviceAccount, nodeSelector and tolerations;
2. a :class:`Transport` opens the worker's two ends: :class:`PodTransport` waits for the
   Job's pod to run, attaches to its stdin (``pods/attach``) and follows its log
   (``pods/log``); :class:`ProcessTransport` runs ``ansible-runner worker`` as a local process
   standing in for the pod's container (tests and development: ``--job-transport process``);
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
import io
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from bridge.ansible import proctree, secrets
from bridge.config import credentials
from bridge.config.settings import JobSettings, RunnerSettings
from bridge.executors import EventCallback
from bridge.executors.local import (
    EventRelay,
    LocalExecutor,
    run_outcome,
    runner_options,
    timeout_message,
)
from bridge.kube.client import Jobs
from bridge.model.errors import BridgeError
from bridge.model.records import RunResult, RunSpec, RunStatus
from bridge.model.watch import JobOptions, Watch

logger = logging.getLogger("bridge.executors.job.executor")

#: Labels of every Job (and its pod) the executor creates.
MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_UID = "ansible-bridge.io/resource-uid"
LABEL_GENERATION = "ansible-bridge.io/generation"
LABEL_RUN_ID = "ansible-bridge.io/run-id"
#: Annotations: the watch (``Kind.group/version``) and the resource (``Kind/ns/name``).
ANNOTATION_WATCH = "ansible-bridge.io/watch"
ANNOTATION_RESOURCE = "ansible-bridge.io/resource"
ANNOTATION_TRIGGER = "ansible-bridge.io/trigger"
#: The selector of the executor's Jobs.
SELECTOR = f"{MANAGED_BY}=ansible-bridge"
#: The worker's container, and where it unpacks the run (an in-memory emptyDir at /tmp, the
#: image's HOME: the root filesystem stays read-only).
CONTAINER = "worker"
POD_PRIVATE_DIR = "/tmp/runner"
#: Seconds the Job may outlive the run's own timeout before Kubernetes stops it (a backstop
#: when the operator is gone).
DEADLINE_MARGIN = 300

#: ansible-runner arguments that stay with the operator: the processor's side of the run.
_NOT_TRANSMITTED = frozenset(
    {
        "private_data_dir",
        "artifact_dir",
        "rotate_artifacts",
        "event_handler",
        "status_handler",
        "artifacts_handler",
        "finished_callback",
        "cancel_callback",
    }
)
_NAME_RE = re.compile(r"[^a-z0-9-]+")


class JobError(BridgeError):
    """The Job's worker could not be reached (pod not running, attach or log refused)."""


# ---------------------------------------------------------------------------------------------
# The Job
# ---------------------------------------------------------------------------------------------


def job_name(run_id: str) -> str:
    """The Job's name for a run: ``ansible-bridge-run-<run id>`` (a DNS label)."""
    return ("ansible-bridge-run-" + _NAME_RE.sub("-", run_id.lower())).strip("-")[:63]


def worker_command(private_dir: str) -> list[str]:
    """The worker's command line: unpack the transmit stream from stdin into ``private_dir``,
    run it, stream the results to stdout (removing the folder at the end). Its stderr goes to
    a file beside the folder, not into the pod log: the log is the worker stream."""
    return [
        "/bin/sh",
        "-c",
        f'exec ansible-runner worker --private-data-dir "{private_dir}" --delete '
        f'2>>"{private_dir}.stderr"',
    ]


def job_manifest(
    spec: RunSpec,
    options: JobOptions,
    *,
    image: str,
    namespace: str,
    watch_key: str,
) -> dict[str, Any]:
    """The Job of one run (pure): one pod, never restarted or retried, whose container reads
    the run from its stdin; labels tie it to the resource (uid, generation) and the run."""
    labels = {
        MANAGED_BY: "ansible-bridge",
        LABEL_UID: spec.resource.uid,
        LABEL_GENERATION: str(spec.generation),
        LABEL_RUN_ID: spec.run_id,
    }
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": options.image or image,
        "command": worker_command(POD_PRIVATE_DIR),
        "stdin": True,
        "stdinOnce": True,
        "tty": False,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if options.resources:
        container["resources"] = dict(options.resources)
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        # In memory: the run's extravars (Secrets resolved) never reach the node's disk.
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}],
    }
    if options.service_account:
        pod["serviceAccountName"] = options.service_account
    if options.node_selector:
        pod["nodeSelector"] = dict(options.node_selector)
    if options.tolerations:
        pod["tolerations"] = [dict(t) for t in options.tolerations]
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": options.ttl_seconds_after_finished,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
    }
    if spec.timeout is not None:
        job_spec["activeDeadlineSeconds"] = math.ceil(spec.timeout) + DEADLINE_MARGIN
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(spec.run_id),
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                ANNOTATION_WATCH: watch_key,
                ANNOTATION_RESOURCE: str(spec.resource),
                ANNOTATION_TRIGGER: spec.trigger,
            },
        },
        "spec": job_spec,
    }


def transmit_options(
    options: Mapping[str, Any], private: Path, remote: str, *, drop_env: Iterable[str] = ()
) -> dict[str, Any]:
    """The ansible-runner arguments sent to the worker: those of a local run (see
    :func:`~bridge.executors.local.runner_options`) less the processor's own and the
    ``drop_env`` variables, with every path into the private dir (the role playbook, the
    project folder of a role run, credential files in ``envvars`` and ``cmdline``) moved to
    where the worker unpacks it. The inventory stays: ansible-runner makes it relative to the
    private dir itself."""
    root = os.path.abspath(private)
    options = dict(options)
    if drop_env and isinstance(options.get("envvars"), Mapping):
        options["envvars"] = {k: v for k, v in options["envvars"].items() if k not in drop_env}

    def move(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(rf"{re.escape(root)}(?=/|$|\s|')", lambda _: remote, value)
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    return {
        k: (v if k == "inventory" else move(v))
        for k, v in options.items()
        if k not in _NOT_TRANSMITTED
    }


# ---------------------------------------------------------------------------------------------
# Transports: the worker's stdin and stdout
# ---------------------------------------------------------------------------------------------


class Channel(Protocol):
    """The two ends of one worker: its stdin (the transmit stream) and its output stream."""

    #: Where the worker unpacks the private data dir.
    private_dir: str
    #: The worker stream (``readline``/``read``), read by ansible-runner's processor.
    output: IO[bytes]

    def send(self, data: bytes) -> None:
        """Write the whole transmit stream to the worker's stdin, then close it."""
        ...

    def stop(self, grace: float) -> None:
        """Stop the worker (SIGINT, SIGKILL after ``grace``) so that ``output`` ends."""
        ...

    def close(self) -> None:
        """Release everything (after the run); nothing of the worker is left behind."""
        ...


class Transport(Protocol):
    """How a run's Job gets its worker."""

    #: Variables of the run's environment that mean nothing where the worker runs.
    drop_env: frozenset[str]

    def open(self, job: Mapping[str, Any], spec: RunSpec, stopping: Callable[[], bool]) -> Channel:
        """Start (or reach) the worker of ``job``; blocking, called in a worker thread. Gives up
        (raising) once ``stopping()`` is true (the run was canceled or timed out meanwhile)."""
        ...


class _ProcessChannel:
    def __init__(self, spec: RunSpec, settings: RunnerSettings) -> None:
        self._run_id = spec.run_id
        spec.artifact_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._folder = Path(
            tempfile.mkdtemp(prefix=f"worker-{spec.run_id}-", dir=spec.artifact_dir.parent)
        )
        self.private_dir = str(self._folder / "runner")
        env = dict(os.environ)
        env["PATH"] = f"{settings.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env[proctree.MARKER] = spec.run_id
        command = [str(settings.bin_dir / "ansible-runner"), "worker"]
        command += ["--private-data-dir", self.private_dir, "--delete"]
        with open(self._folder / "worker.stderr", "wb") as stderr:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                start_new_session=True,
            )
        assert self._proc.stdout is not None
        self.output: IO[bytes] = self._proc.stdout

    def send(self, data: bytes) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            stdin.close()
        except BrokenPipeError:  # the worker is gone; its output says why
            pass

    def stop(self, grace: float) -> None:
        proctree.stop(self._run_id, grace=grace)

    def close(self) -> None:
        proctree.stop(self._run_id, grace=0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=10)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        # --delete removes the unpacked run, unless the worker was killed: not its extravars.
        shutil.rmtree(self._folder, ignore_errors=True)


class ProcessTransport:
    """A local ``ansible-runner worker`` process stands in for the Job's container (the Job
    object is created all the same): stdin and stdout are its pipes. On this machine, the
    operator's API proxy and kubeconfig are reachable: the run's environment is kept whole."""

    drop_env: frozenset[str] = frozenset()

    def __init__(self, settings: RunnerSettings) -> None:
        self._settings = settings

    def open(self, job: Mapping[str, Any], spec: RunSpec, stopping: Callable[[], bool]) -> Channel:
        return _ProcessChannel(spec, self._settings)


class _PodChannel:
    def __init__(self, kube: Jobs, namespace: str, pod: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._pod = pod
        self.private_dir = POD_PRIVATE_DIR
        self._log = kube.follow_log(namespace, pod, CONTAINER)
        # NB: urllib3 closes a response whose body is exhausted, and a closed raw stream makes
        # BufferedReader refuse to hand out what it still buffers: end of stream must be b"".
        self._log.auto_close = False
        self.output: IO[bytes] = io.BufferedReader(self._log)

    def send(self, data: bytes) -> None:
        self._kube.attach_stdin(self._namespace, self._pod, CONTAINER, data)

    def stop(self, grace: float) -> None:
        # The Job is deleted by the executor (the pod gets SIGTERM: ansible-runner cancels the
        # run); stop reading once it had the grace period to say so.
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not self._log.closed:
            time.sleep(0.1)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._log.close()


class PodTransport:
    """The Job's pod: wait for it to run, attach to its stdin, follow its log. In the pod,
    Kubernetes modules use the pod's service account (``job.serviceAccount``): the operator's
    API proxy (on its loopback), its token and its kubeconfig path are not sent."""

    drop_env = frozenset({"K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "K8S_AUTH_KUBECONFIG"})

    def __init__(self, kube: Jobs, settings: JobSettings) -> None:
        self._kube = kube
        self._settings = settings

    def open(self, job: Mapping[str, Any], spec: RunSpec, stopping: Callable[[], bool]) -> Channel:
        namespace = str(job["metadata"]["namespace"])
        name = str(job["metadata"]["name"])
        pod = self._kube.wait_pod_running(
            namespace, name, CONTAINER, timeout=self._settings.start_timeout, stopping=stopping
        )
        return _PodChannel(self._kube, namespace, pod)


# ---------------------------------------------------------------------------------------------
# The executor
# ---------------------------------------------------------------------------------------------


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
        self._local = LocalExecutor(settings)  # its private-dir preparation, shared
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
        await self._local.close()
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
            (status, rc, message), timed_out = await self._await(spec, future, namespace, name)
            if timed_out:
                status, message = "timeout", timeout_message(spec)
            else:
                await self._delete(namespace, name, foreground=False)
        finally:
            self._in_flight.discard(spec.run_id)
            with self._lock:
                self._stopping.discard(spec.run_id)
        return await relay.result(spec.run_id, status, rc, message)

    async def _await(
        self,
        spec: RunSpec,
        future: asyncio.Future[tuple[RunStatus, int | None, str]],
        namespace: str,
        name: str,
    ) -> tuple[tuple[RunStatus, int | None, str], bool]:
        """The run's outcome within its timeout: ``(outcome, timed_out)``. On timeout or
        cancellation, the Job is deleted (foreground) and the worker stopped before the outcome
        is awaited or the cancellation goes on."""
        try:
            return await asyncio.wait_for(asyncio.shield(future), spec.timeout), False
        except TimeoutError:
            await self._stop(spec.run_id, future, namespace, name)
            logger.info("run %s timed out after %ss", spec.run_id, spec.timeout)
            return await future, True
        except asyncio.CancelledError:
            await self._stop(spec.run_id, future, namespace, name)
            raise

    async def _stop(
        self, run_id: str, future: asyncio.Future[Any], namespace: str, name: str
    ) -> None:
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

        spec.artifact_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Path(tempfile.mkdtemp(prefix=f"run-{spec.run_id}-", dir=spec.artifact_dir.parent))
        artifacts = spec.artifact_dir / spec.run_id
        channel: Channel | None = None
        explanation: list[str] = []

        def on_status(data: dict[str, Any], runner_config: Any = None) -> None:
            if data.get("job_explanation"):
                explanation.append(str(data["job_explanation"]))

        try:
            # The worker (in its pod) has no such folder: Ansible's default temporary folders.
            inventory, playbook = self._local._prepare(private, spec, private_tmp=False)
            options = runner_options(
                self._settings, spec, private, inventory, playbook, handle, threading.Event()
            )
            credentials.apply(options, spec, private)  # inventory text, credentials (0600)
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
            credentials.cleanup(spec)
            shutil.rmtree(private, ignore_errors=True)
            secrets.scrub_tree(artifacts, spec.secrets)
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
                if annotations.get(ANNOTATION_WATCH) not in self._watches:
                    continue
                if run_id in self._in_flight or meta.get("deletionTimestamp"):
                    continue
                logger.warning(
                    "Job %s/%s of run %s (%s, generation %s) was left by an earlier operator: "
                    "its worker cannot be re-attached; deleting it (the resource runs again)",
                    meta.get("namespace"),
                    meta.get("name"),
                    run_id,
                    annotations.get(ANNOTATION_RESOURCE),
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
