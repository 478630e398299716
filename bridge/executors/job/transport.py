"""How a Job run reaches its worker: the worker's stdin (the transmit stream) and its output.

:class:`PodTransport` waits for the Job's pod to run, attaches to its stdin (``pods/attach``) and
follows its log (``pods/log``); :class:`ProcessTransport` runs ``ansible-runner worker`` as a
local process standing in for the pod's container (tests and development:
``--job-transport process``).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from bridge.ansible import proctree
from bridge.config.settings import JobSettings, RunnerSettings
from bridge.executors import lifeline
from bridge.executors.job.manifest import CONTAINER, POD_PRIVATE_DIR
from bridge.kube.client import AUTH_API_KEY, AUTH_HOST, AUTH_KUBECONFIG, Jobs
from bridge.model.process import MARKER
from bridge.model.records import RunSpec


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
        env[MARKER] = spec.run_id
        command = [str(settings.bin_dir / "ansible-runner"), "worker"]
        command += ["--private-data-dir", self.private_dir, "--delete"]
        # Under a supervisor: the worker and its run die with the operator (see lifeline).
        command = lifeline.wrap(command)
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

    drop_env = frozenset({AUTH_HOST, AUTH_API_KEY, AUTH_KUBECONFIG})

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
