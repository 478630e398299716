"""The operator as a process (``python -m bridge run``), for the e2e tests, the demo and the bench.

One helper starts it with its environment and a log file, waits for its ``/readyz``, and stops
it: SIGTERM, a grace period, then SIGKILL, and reaps it. The benchmark starts the Operator SDK's
operator through the same class (any command with a ``/readyz`` works). An operator started by
another process (the demo's, which outlives ``make demo``) is stopped by its PID file with
:func:`stop_pid_file`.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bridge.model.errors import BridgeError
from bridge.tools.processes import POLL, reap, spawn, terminate

__all__ = [
    "OperatorProcess",
    "OperatorProcessError",
    "bridge_command",
    "http_status",
    "stop_pid_file",
]

#: What the operator logs once its HTTP server listens (``--http-port 0`` picks any port).
_SERVING = re.compile(r"HTTP server on [^\s:]+:(\d+)")


class OperatorProcessError(BridgeError):
    """The operator exited or did not get ready; the message says which, with its log's end."""


def bridge_command(
    watches: Path,
    *,
    kubeconfig: Path,
    artifacts_dir: Path,
    namespaces: Sequence[str] = (),
    executor: str | None = None,
    http_host: str | None = None,
    http_port: int | None = None,
    log_level: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``python -m bridge run`` with this interpreter; options left None are the defaults."""
    cmd = [
        sys.executable,
        "-m",
        "bridge",
        "run",
        "--watches",
        str(watches),
        "--kubeconfig",
        str(kubeconfig),
        *[arg for namespace in namespaces for arg in ("--namespace", namespace)],
        "--artifacts-dir",
        str(artifacts_dir),
    ]
    for flag, value in (
        ("--executor", executor),
        ("--http-host", http_host),
        ("--http-port", http_port),
        ("--log-level", log_level),
    ):
        if value is not None:
            cmd += [flag, str(value)]
    return [*cmd, *extra]


def http_status(url: str, timeout: float = 5) -> tuple[int, str]:
    """The status and body of a GET of ``url``; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, OSError):
        return 0, ""


class OperatorProcess:
    """An operator process logging to a file: :meth:`start`, :meth:`wait_ready`, :meth:`stop`.

    ``new_session``: the process leads its own session and process group (SIGKILL then ends its
    Ansible processes too, and a Ctrl-C in the terminal does not reach it). ``port``: of its
    ``/readyz``; None to read it from the bridge's log (``--http-port 0``). ``append``: keep the
    log of an earlier start. It may be started again once stopped."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        label: str = "ansible-bridge",
        new_session: bool = True,
        append: bool = True,
    ) -> None:
        self.cmd = list(cmd)
        self.log = log
        self.env = None if env is None else dict(env)
        self.cwd = cwd
        self.port = port
        self.host = host
        self.label = label
        self.new_session = new_session
        self.append = append
        self.proc: subprocess.Popen[bytes] | None = None
        #: ``time.monotonic()`` when it was last started.
        self.started_at = 0.0

    def start(self) -> OperatorProcess:
        """Start the command (the log gets its command line first)."""
        self.started_at = time.monotonic()
        self.proc = spawn(
            self.cmd,
            self.log,
            env=self.env,
            cwd=self.cwd,
            new_session=self.new_session,
            append=self.append,
            header=True,
        )
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise OperatorProcessError(f"{self.label} is not started")
        return self.proc.pid

    def exited(self) -> int | None:
        """Its exit code once it has exited (reaped), else None (also when never started)."""
        return None if self.proc is None else self.proc.poll()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def http_port(self) -> int | None:
        """The port of its HTTP server: the one given, else the one its log names."""
        if self.port:
            return self.port
        found = _SERVING.search(self.log_text())
        return int(found.group(1)) if found else None

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds from :meth:`start` until ``/readyz`` answers 200; raises
        :class:`OperatorProcessError` (with the log's end) if it exits or times out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise OperatorProcessError(
                    f"{self.label} exited ({self.exited()}); its log, {self.log}:\n{self.tail()}"
                )
            port = self.http_port()
            if port is not None:
                status, _ = http_status(f"http://{self.host}:{port}/readyz", timeout=2)
                if status == 200:
                    return time.monotonic() - self.started_at
            time.sleep(POLL)
        raise OperatorProcessError(
            f"{self.label} not ready after {timeout:.0f}s; its log, {self.log}:\n{self.tail()}"
        )

    def stop(self, sig: int = signal.SIGTERM, grace: float = 30.0) -> int | None:
        """Send ``sig``, wait up to ``grace`` seconds, then SIGKILL; its exit code once reaped
        (None when it was not started)."""
        proc = self.proc
        if proc is None:
            return None
        terminate(
            proc.pid,
            lambda: proc.poll() is None,
            sig=sig,
            grace=grace,
            group=self.new_session,
        )
        proc.wait()
        self.proc = None
        return proc.returncode

    def write_pid(self, path: Path) -> None:
        """Its PID in ``path``, for :func:`stop_pid_file` from another process."""
        path.write_text(f"{self.pid}\n")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def stop_pid_file(
    pid_file: Path,
    is_ours: Callable[[int], bool],
    *,
    grace: float = 30.0,
    before_kill: Callable[[int], None] | None = None,
) -> int | None:
    """Stop the operator whose PID ``pid_file`` holds (started by another process, in its own
    session) if ``is_ours(pid)`` says it still is ours: SIGTERM, up to ``grace`` seconds, then
    SIGKILL to its process group (``before_kill(pid)`` first). The file is removed either way.
    Returns the PID stopped, or None when none ran."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = 0

    def alive() -> bool:
        reap(pid)
        return is_ours(pid)

    stopped: int | None = None
    if pid > 0 and alive():
        stopped = pid
        terminate(
            pid,
            alive,
            grace=grace,
            group=True,
            before_kill=None if before_kill is None else lambda: before_kill(pid),
        )
    with contextlib.suppress(OSError):
        pid_file.unlink()
    return stopped
