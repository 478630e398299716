"""Find and stop every process of a run, wherever it went in the process tree.

ansible-runner kills the process group of ansible-playbook, but Ansible's workers call
``setsid()`` and leave that group; once their parent is gone they are orphans nobody tracks.
Every run's environment carries a marker variable, which each process of the run inherits, so
the run's processes are found by reading ``/proc/<pid>/environ`` instead of following parents.

A process that drops its environment (``env -i``) loses the marker; :func:`members` also takes
the descendants of marked processes. Each run's first process is a child subreaper (see
:mod:`bridge.executors.lifeline`), so a process that detaches from its parent is re-parented to
it, not to PID 1, and stays a descendant of a marked process until the run's end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from bridge.model.process import MARKER


def marked(run_id: str, proc: Path = Path("/proc")) -> list[int]:
    """PIDs of live processes whose environment carries ``MARKER=run_id``."""
    needle = f"{MARKER}={run_id}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


def _parents(proc: Path) -> dict[int, int]:
    """Parent PID of every live (not zombie) process."""
    found = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields and fields[0] != "Z":
            found[int(entry.name)] = int(fields[1])
    return found


def members(run_id: str, proc: Path = Path("/proc")) -> list[int]:
    """PIDs of the run's processes: those marked with ``run_id`` and all their descendants."""
    roots = set(marked(run_id, proc))
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents(proc).items():
        children.setdefault(ppid, []).append(pid)
    found = set(roots)
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    found.discard(os.getpid())
    return sorted(found)


def stop(run_id: str, *, grace: float = 5.0, poll: float = 0.05) -> int:
    """SIGINT every process of ``run_id`` (:func:`members`), then SIGKILL what is left after
    ``grace`` seconds.

    Returns how many processes were signalled. Blocking: call it from a worker thread.
    """
    pids = members(run_id)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    left = pids
    while left and time.monotonic() < deadline:
        time.sleep(poll)
        left = members(run_id)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while left and time.monotonic() < deadline:
        time.sleep(poll)
        left = members(run_id)
    return len(pids)
