"""Child processes of the developer tools: start with a log file, tell ours, stop and reap.

The control plane (:mod:`bridge.tools.controlplane`) and the operator
(:mod:`bridge.tools.operator_process`) are stopped the same way: a signal (SIGTERM), a grace
period, then SIGKILL (to the whole process group when the child leads its own session, so
Ansible's forks go too), each wait reaping the child. NB: a PID read back from a file is checked
against ``/proc/<pid>/cmdline`` before it is signalled, so a recycled PID is never killed.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["cmdline", "pid_alive", "reap", "set_pdeathsig", "spawn", "terminate"]

#: How often the waits below look again (seconds).
POLL = 0.05


def cmdline(pid: int) -> list[str] | None:
    """The command line of a running (not zombie) ``pid``, or None."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # a zombie has exited already
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pid_alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs and its command line mentions ``marker`` (e.g. our run folder)."""
    args = cmdline(pid)
    return args is not None and marker in "\0".join(args)


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child and has exited (else nothing)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """In a child: SIGKILL it when its parent dies (Linux' PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(
    cmd: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    new_session: bool = True,
    preexec: Callable[[], None] | None = None,
    append: bool = False,
    header: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with stdin closed and its output in ``log`` (appended to with ``append``;
    ``header``: the command line first, as ``$ cmd``), in its own session unless told not."""
    with open(log, "ab" if append else "wb") as out:
        if header:
            out.write(f"$ {shlex.join(cmd)}\n".encode())
            out.flush()
        return subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=new_session,
            preexec_fn=preexec,
        )


def terminate(
    pid: int,
    alive: Callable[[], bool],
    *,
    sig: int = signal.SIGTERM,
    grace: float = 10.0,
    group: bool = False,
    kill_wait: float = 5.0,
    before_kill: Callable[[], None] | None = None,
) -> bool:
    """Stop ``pid``: ``sig``, up to ``grace`` seconds, then SIGKILL (its process group with
    ``group``; ``before_kill`` is called first) and up to ``kill_wait`` more. ``alive`` says
    whether it still runs (and reaps it). True when SIGKILL was needed."""
    if not alive():
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive():
            return False
        time.sleep(POLL)
    if not alive():
        return False
    if before_kill is not None:
        before_kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + kill_wait
    while alive() and time.monotonic() < deadline:
        time.sleep(POLL)
    return True
