"""The operator's side of the warm server: start and stop it, and carry out one run through it.

:class:`WarmServer` is one server process (see :mod:`bridge.executors.warm.server`).
:func:`execute` does for a forked run what ``ansible_runner.Runner.run`` does for a spawned
``ansible-playbook``: the same artifacts (``command``, ``job_events/``, ``stdout``, ``stderr``,
``rc``, ``status``), written by the same ``Runner`` callbacks from the same output read from a
pseudo-terminal, with the same cancel handling (the run's process group is SIGKILLed, rc 254).
Blocking code: it runs in the executor's worker threads.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import termios
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.executors import lifeline
from bridge.executors.bounded import BoundedOutputEventFilter
from bridge.executors.warm import server as _warm_server
from bridge.executors.warm.config import Identity

logger = logging.getLogger("bridge.executors.warm.executor")

_SERVER_SCRIPT = Path(_warm_server.__file__)
#: Seconds to wait for the last output once the run's process has exited (as ansible-runner).
_DRAIN_TIMEOUT = 5.0
_READ_SIZE = 1 << 16
#: Seconds the run's supervisor has to end a canceled run before its group is SIGKILLed.
_KILL_AFTER = 5.0


class WarmError(Exception):
    """The warm server cannot take the run (not started, gone, refused): nothing of the run
    was started, the local executor can run it."""


class RunLost(Exception):
    """The warm server went away between taking the run and saying which process runs it:
    the run may have started, so it must not be run again by another executor."""


def interpreter_of(script: str) -> str | None:
    """The Python a script such as ``ansible-playbook`` runs with, from its ``#!`` line."""
    try:
        with open(script, "rb") as fh:
            first = fh.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    if not words:
        return None
    if os.path.basename(words[0]) == "env" and len(words) > 1:
        return shutil.which(words[1])
    return words[0]


class WarmServer:
    """One running warm server, serving runs of one :class:`Identity`."""

    def __init__(self, identity: Identity, env: Mapping[str, str], python: str) -> None:
        self.identity = identity
        self.info: dict[str, Any] = {}
        self._env = dict(env)
        self._env[_warm_server.MARKER] = _warm_server.PLACEHOLDER
        # Every run it forks is supervised and dies with this process (see lifeline).
        self._env[lifeline.ENV] = lifeline.token()
        self._python = python
        self._lock = threading.Lock()
        self._broken = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._stderr: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float) -> None:
        """Start the server and wait until it has imported Ansible; WarmError if it cannot."""
        assert self.identity.playbook_bin is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [
                    self._python,
                    "-P",
                    str(_SERVER_SCRIPT),
                    str(theirs.fileno()),
                    self.identity.playbook_bin,
                ],
                cwd=self.identity.cwd,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=[theirs.fileno()],
                start_new_session=True,  # a Ctrl-C on the operator's terminal is not for it
            )
        except OSError as exc:
            ours.close()
            raise WarmError(f"cannot start {self._python}: {exc}") from exc
        finally:
            theirs.close()
        self._sock = ours
        self._stderr = threading.Thread(
            target=self._log_stderr, name=f"warm-server-{self._proc.pid}", daemon=True
        )
        self._stderr.start()
        ours.settimeout(timeout)
        try:
            message, _ = _warm_server.receive(ours)
        except (OSError, ValueError) as exc:  # socket.timeout is an OSError
            self.close(0)
            raise WarmError(f"no answer from the warm server: {exc}") from exc
        ours.settimeout(None)
        if message is None or "error" in message:
            self.close(0)
            detail = message.get("error") if message else "it exited"
            raise WarmError(f"the warm server could not import Ansible: {detail}")
        self.info = message

    def _log_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            text = line.decode(errors="replace").rstrip()
            if text:
                logger.warning("warm server %s: %s", self._proc.pid, text)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and not self._broken

    def submit(self, request: Mapping[str, Any], fds: list[int]) -> None:
        """Ask for a run; WarmError if the server is gone."""
        with self._lock:
            if self._sock is None or not self.alive():
                raise WarmError("the warm server is not running")
            try:
                _warm_server.send(self._sock, dict(request), fds)
            except ValueError as exc:  # too large: this run only
                raise WarmError(f"cannot send the run to the warm server: {exc}") from exc
            except OSError as exc:
                self._broken = True
                raise WarmError(f"the warm server is gone: {exc}") from exc

    def close(self, timeout: float) -> None:
        """Stop the server (runs it forked carry on); SIGKILL it after ``timeout`` seconds."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()  # end of file: the server returns from its loop
                self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._stderr is not None:
            self._stderr.join(timeout=5)


def _set_noecho(fd: int) -> None:
    attrs = termios.tcgetattr(fd)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _stop_run(pidfd: int | None) -> None:
    """SIGTERM the run's supervisor: it SIGKILLs everything of the run, then exits."""
    if pidfd is not None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)


def _kill_group(pid: int, pidfd: int | None) -> None:
    """SIGKILL the run's process group, as ``Runner.handle_termination`` does (when its
    supervisor has not ended the run in time)."""
    if pidfd is not None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    # Its group is its own once it has called setsid(); before that it is the server's.
    with contextlib.suppress(OSError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def execute(
    runner: Any,
    server: WarmServer,
    *,
    run_id: str,
    rc_file: str,
    poll_interval: float,
) -> None:
    """Carry out the prepared ``ansible_runner.Runner`` ``runner`` in a child of ``server``.

    Sets ``runner.status``, ``runner.rc`` and ``runner.canceled`` as ``Runner.run`` would.
    Raises WarmError when the server did not start the run, RunLost when it is not known.
    """
    from ansible_runner.utils import cleanup_artifact_dir

    config = runner.config
    artifact_dir = str(config.artifact_dir)
    runner.status_callback("starting")
    os.makedirs(artifact_dir, mode=0o700, exist_ok=True)
    events_dir = os.path.join(artifact_dir, "job_events")
    if not os.path.exists(events_dir):
        os.mkdir(events_dir, 0o700)
    _write_private(
        os.path.join(artifact_dir, "command"),
        json.dumps(
            {"command": config.command, "cwd": config.cwd, "env": config.env}, ensure_ascii=False
        ),
    )
    if config.ident is not None:
        cleanup_artifact_dir(os.path.join(artifact_dir, ".."), config.rotate_artifacts)

    master, follower = os.openpty()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        _set_noecho(follower)
        request = {
            "argv": [server.identity.playbook_bin, *config.command[1:]],
            "env": dict(config.env),
            "cwd": config.cwd,
            "run_id": run_id,
            "rc_file": rc_file,
        }
        server.submit(request, [follower, theirs.fileno()])
    except BaseException:
        os.close(master)
        ours.close()
        raise
    finally:
        os.close(follower)
        theirs.close()

    stdout_path = os.path.join(artifact_dir, "stdout")
    stderr_path = os.path.join(artifact_dir, "stderr")
    for path in (stdout_path, stderr_path):
        os.close(os.open(path, os.O_CREAT, stat.S_IRUSR | stat.S_IWUSR))
    # As Runner.run: a filter per stream, which closes its file (stderr stays empty: the
    # terminal carries both streams).
    stdout, stderr = (
        BoundedOutputEventFilter(
            codecs.open(path, "w", encoding="utf-8"),  # noqa: SIM115 (closed by the filter)
            runner.event_callback,
            config.suppress_ansible_output,
            output_json=config.json_mode,
        )
        for path in (stdout_path, stderr_path)
    )
    runner.status_callback("running")
    try:
        status = _follow(runner, master, ours, stdout, poll_interval)
    finally:
        os.close(master)
        ours.close()
        stdout.close()
        stderr.close()

    if runner.canceled:
        runner.rc = 254
    elif status is not None:
        code = os.waitstatus_to_exitcode(status) if status >= 0 else -1
        runner.rc = code if code >= 0 else None  # killed by a signal: pexpect says None
    else:  # the server went away: the child left its exit code in a file
        try:
            runner.rc = int(Path(rc_file).read_text().strip())
        except (OSError, ValueError):
            runner.rc = None
    if runner.canceled:
        runner.status_callback("canceled")
    elif runner.rc == 0:
        runner.status_callback("successful")
    else:
        runner.status_callback("failed")
    for name, value in (("status", runner.status), ("rc", runner.rc)):
        _write_private(os.path.join(artifact_dir, name), str(value))


def _follow(
    runner: Any, master: int, reply: socket.socket, stdout: Any, poll_interval: float
) -> int | None:
    """Read the run's terminal into ``stdout`` until the run has ended; its wait status (None
    when only the pidfd could tell the end, the server having gone)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    poller = select.poll()
    poller.register(master, select.POLLIN)
    poller.register(reply, select.POLLIN)
    pid: int | None = None
    pidfd: int | None = None
    status: int | None = None
    server_gone = exited = eof = child_done = False
    exited_at = 0.0
    canceled_at = float("inf")
    try:
        while True:
            for fd, _ in poller.poll(int(poll_interval * 1000)):
                if fd == master:
                    try:
                        data = os.read(master, _READ_SIZE)
                    except OSError:  # EIO: no process has the terminal open any more
                        data = b""
                    if data:
                        stdout.write(decoder.decode(data))
                    else:
                        eof = True
                        poller.unregister(master)
                elif fd == reply.fileno():
                    message, fds = _warm_server.receive(reply, max_fds=1)
                    if message is None:
                        server_gone, exited = True, exited or child_done
                        poller.unregister(reply)
                        if pidfd is None:
                            raise RunLost("the warm server went away while starting the run")
                    elif "pid" in message and fds:
                        pid, pidfd = int(message["pid"]), fds[0]
                        poller.register(pidfd, select.POLLIN)
                    elif "status" in message:
                        status, exited = int(message["status"]), True
                    elif "error" in message:
                        raise WarmError(str(message["error"]))
                elif fd == pidfd:
                    # The child has ended; the server tells how (unless it has gone too).
                    poller.unregister(pidfd)
                    child_done = True
                    exited = exited or server_gone
            if not exited and pid is not None and not runner.canceled:
                runner.canceled = bool(runner.cancel_callback and runner.cancel_callback())
                if runner.canceled:
                    _stop_run(pidfd)
                    canceled_at = time.monotonic()
            elif not exited and pid is not None and time.monotonic() - canceled_at > _KILL_AFTER:
                _kill_group(pid, pidfd)
                canceled_at = float("inf")
            if exited:
                if not exited_at:
                    exited_at = time.monotonic()
                if eof or time.monotonic() - exited_at > _DRAIN_TIMEOUT:
                    break
    except BaseException:
        if pid is not None and not exited:  # nobody would read its output any more
            _stop_run(pidfd)
        raise
    finally:
        tail = decoder.decode(b"", final=True)
        if tail:
            stdout.write(tail)
        if pidfd is not None:
            os.close(pidfd)
    return status
