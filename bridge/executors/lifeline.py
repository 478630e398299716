"""Ties every process of a run to the operator's life: a per-run supervisor that kills the run
when the operator dies, whatever killed it, and kills what the run left when it ends.

Each run's first process is a *supervisor*: for the local executor and the Job executor's
``process`` transport a small script put in front of the command (:func:`wrap`, then
``python lifeline.py <token> <command...>``); for the warm executor the forked run child itself,
which forks once more (:func:`fork_supervised`) so that its child becomes ``ansible-playbook``.
The supervisor:

* makes itself a child *subreaper* (``PR_SET_CHILD_SUBREAPER``): whatever the run starts stays
  below it, even a process that detaches (``setsid``, a double fork, ``nohup ... &``) or drops
  its environment (``env -i``) - orphans are re-parented to it, not to PID 1;
* watches the operator through a pidfd (``pidfd_open``; the operator is named by a *token*,
  ``<pid>:<start time>``, so a re-used PID is never mistaken for it): when the operator has
  ended, it SIGKILLs its whole subtree and every process carrying the run marker, and exits;
* ignores SIGINT and SIGHUP (the run's stop sequence signals the run's processes; the
  supervisor stays to clean up after them); SIGTERM means "kill the run now";
* when its command has exited, kills what is left below it (and of the run marker), then exits
  with the command's status (a signal death is re-raised), so that the caller sees ``rc`` as
  without it.

Neither needs a privilege (``CAP_SYS_ADMIN``, a user or PID namespace): they hold as root and
as any user. What it cannot catch: a process started outside the run's tree (through another
service: ``systemd-run``, ``at``, a container runtime, ``ssh`` to another host), and a run
whose supervisor is itself SIGKILLed at the same time as the operator (then what left the
run's process groups is re-parented to PID 1; the operator's own stop path finds what keeps the
run marker). Standard library only, and loadable by file path: the warm server is a script that
must not import the bridge package.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import signal
import sys
import time
from collections.abc import Iterable, Sequence

#: The run marker (bridge.model.process.MARKER; repeated: this file imports nothing of bridge).
MARKER = "ANSIBLE_BRIDGE_RUN_ID"
#: The variable that carries the operator's token into the warm server.
ENV = "ANSIBLE_BRIDGE_LIFELINE"
_PR_SET_CHILD_SUBREAPER = 36
_KILL_DEADLINE = 10.0
_POLL_MS = 1000


def start_time(pid: int, proc: str = "/proc") -> int | None:
    """A process's start time (clock ticks after boot, ``/proc/<pid>/stat`` field 22); None
    when it does not exist."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])


def token(pid: int | None = None) -> str:
    """The token of process ``pid`` (default: this one): ``<pid>:<start time>``."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{start_time(pid)}"


class Lifeline:
    """The process named by a token, watched for its end (``fileno`` polls readable then)."""

    def __init__(self, text: str) -> None:
        pid, _, start = text.partition(":")
        self.pid, self._start = int(pid), start
        self._fd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self._fd = os.pidfd_open(self.pid)
        # Checked once the pidfd is open: a pidfd of a re-used PID would watch another process.
        self._ended = str(start_time(self.pid)) != self._start

    def fileno(self) -> int | None:
        """The pidfd to poll (readable once the process has ended); None without pidfds."""
        return self._fd

    def ended(self) -> bool:
        if self._ended:
            return True
        if self._fd is not None:
            ready, _, _ = select.select([self._fd], [], [], 0)
            self._ended = bool(ready)
        else:
            self._ended = str(start_time(self.pid)) != self._start
        return self._ended

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def set_subreaper() -> bool:
    """Make this process a child subreaper; False if the kernel refused."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _scan(proc: str) -> list[tuple[int, int]]:
    """(pid, parent pid) of every live process."""
    found = []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z":
            found.append((int(name), int(fields[1])))
    return found


def children(pid: int, proc: str = "/proc") -> set[int]:
    """The live (not zombie) children of ``pid``."""
    return {child for child, ppid in _scan(proc) if ppid == pid}


def descendants(roots: Iterable[int], proc: str = "/proc") -> set[int]:
    """The live descendants of ``roots`` (not the roots themselves)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _scan(proc):
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def marked(run_id: str, proc: str = "/proc") -> set[int]:
    """Live processes whose environment carries ``MARKER=run_id``."""
    needle = f"{MARKER}={run_id}".encode()
    found = set()
    for pid, _ in _scan(proc):
        try:
            with open(f"{proc}/{pid}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.add(pid)
        except OSError:
            continue
    return found


def _reap() -> list[tuple[int, int]]:
    """Reap every ended child (orphans are ours to reap): their (pid, wait status)."""
    reaped: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, status))


def kill_run(root: int, run_id: str | None, deadline: float = _KILL_DEADLINE) -> int:
    """SIGKILL every descendant of ``root`` and every process marked with ``run_id`` (never
    this process), until none is left or ``deadline`` seconds have passed; how many."""
    me = os.getpid()
    killed: set[int] = set()
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        targets = descendants([root]) | (marked(run_id) if run_id else set())
        targets -= {me, root}
        if not targets:
            break
        for pid in targets:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        killed |= targets
        _reap()
        time.sleep(0.02)
    _reap()
    return len(killed)


class _Terminate(Exception):
    """SIGTERM to the supervisor: kill the run now."""


def _on_term(signum: int, frame: object) -> None:
    raise _Terminate


def _supervise(child: int, line: Lifeline, run_id: str | None) -> int | None:
    """Wait for ``child`` while reaping orphans; its wait status, or None when the operator
    ended (or SIGTERM came) first. What is left of the run is killed either way."""
    poller = select.poll()
    child_fd: int | None = None
    with contextlib.suppress(OSError, AttributeError):
        child_fd = os.pidfd_open(child)
        poller.register(child_fd, select.POLLIN)
    line_fd = line.fileno()
    if line_fd is not None:
        poller.register(line_fd, select.POLLIN)
    status: int | None = None
    try:
        while status is None:
            for pid, wait_status in _reap():
                if pid == child:
                    status = wait_status
            if status is not None or line.ended():
                break
            poller.poll(_POLL_MS if child_fd is not None and line_fd is not None else 200)
    except _Terminate:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_run(os.getpid(), run_id)
        if child_fd is not None:
            os.close(child_fd)
    return status


def _exit_as(status: int | None) -> None:
    """Exit as the supervised command did (a signal death re-raised); 137 without its status."""
    sys.stdout.flush()
    if status is None:
        os._exit(137)
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the command's death, not ours
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        os._exit(128 + signum)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)


def _become_supervisor() -> dict[int, object]:
    """Subreaper, SIGINT and SIGHUP ignored, SIGTERM handled; the dispositions it had (for the
    supervised child to get back)."""
    set_subreaper()
    saved: dict[int, object] = {int(sig): signal.getsignal(sig) for sig in _STOP_SIGNALS}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    return saved


def _restore(saved: dict[int, object]) -> None:
    for signum, handler in saved.items():
        with contextlib.suppress(OSError, ValueError, TypeError):
            signal.signal(signum, handler)  # type: ignore[arg-type]


def fork_supervised(operator: str, run_id: str | None) -> None:
    """Split this process in two: the child returns (and becomes the run); this process
    becomes its supervisor and never returns. Call it after the run marker is set."""
    line = Lifeline(operator)
    saved = _become_supervisor()
    pid = os.fork()
    if pid == 0:
        line.close()
        _restore(saved)
        return
    _exit_as(_supervise(pid, line, run_id))


def supervise_exec(operator: str, argv: Sequence[str]) -> None:
    """Run ``argv`` as the supervised command (fork and exec); never returns."""
    line = Lifeline(operator)
    run_id = os.environ.get(MARKER)
    saved = _become_supervisor()
    if line.ended():  # the operator ended before we started: start nothing
        _exit_as(None)
    pid = os.fork()
    if pid == 0:
        try:
            line.close()
            _restore(saved)
            os.execvp(argv[0], list(argv))
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                print(f"cannot run {argv[0]}: {exc}", file=sys.stderr, flush=True)
        os._exit(127)
    _exit_as(_supervise(pid, line, run_id))


def wrap(argv: Sequence[str], python: str | None = None, operator: str | None = None) -> list[str]:
    """``argv`` run under a supervisor tied to this process (the operator)."""
    return [python or sys.executable, "-I", "-S", __file__, operator or token(), *argv]


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(f"usage: {argv[0]} <pid>:<start time> command [args...]", file=sys.stderr)
        return 2
    supervise_exec(argv[1], argv[2:])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
