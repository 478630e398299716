"""A resource's run folders: where runs and checks go, and the disk bound that removes the oldest.

ansible-runner rotates a resource's artifacts folder by count (``maxRunnerArtifacts``); after
each run the bridge also bounds its size (``--max-artifacts-bytes``), removing the oldest run
folders until both bounds hold. The run just finished is never removed, even alone over the
size bound: its output is what ``ansible-bridge logs`` shows. Runs and drift checks have folders
of their own (``artifacts/``, ``checks/``), each bounded on its own, so checks never push a
real run's artifacts out.

A run folder is *finished* once the run's end has been dealt with (its private data dir removed,
its Secret values scrubbed from the artifacts): :func:`mark_finished` writes :data:`FINISHED` in
it then. A folder without it was left by a run that an operator crash interrupted (see
:mod:`bridge.ansible.leftovers`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("bridge.ansible.artifacts")

#: The folders of a resource's runs and of its drift checks, side by side in its folder.
RUNS = "artifacts"
CHECKS = "checks"
#: A run id, as a run folder is named (and as ``/logs?run=`` takes it).
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
#: The file in a run folder that says the run's end was dealt with (written last).
FINISHED = ".finished"


@dataclass(frozen=True)
class RunFolder:
    """One run's artifacts folder, with when it was last written and its size in bytes."""

    path: Path
    mtime_ns: int
    size: int


def mark_finished(run_folder: Path) -> None:
    """Say that ``run_folder``'s run has ended and its artifacts are scrubbed (if it exists)."""
    if run_folder.is_dir() and not run_folder.is_symlink():
        (run_folder / FINISHED).touch(mode=0o600)


def is_finished(run_folder: Path) -> bool:
    return (run_folder / FINISHED).exists()


def tree_size(path: Path) -> int:
    """Bytes of the regular files below ``path`` (links not followed; vanishing files skipped)."""
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def run_paths(folder: Path) -> list[tuple[int, Path]]:
    """The run folders in ``folder`` with their modification times, oldest first (by time, then
    name): the order ansible-runner rotates in and ``/logs`` picks the newest from. Symbolic
    links and names that are not run ids are never run folders."""
    try:
        entries = [p for p in folder.iterdir() if RUN_ID.fullmatch(p.name)]
    except OSError:
        return []
    found = []
    for path in entries:
        try:
            st = path.lstat()
        except OSError:
            continue  # rotated away meanwhile
        if stat.S_ISDIR(st.st_mode):
            found.append((st.st_mtime_ns, path))
    return sorted(found, key=lambda found: (found[0], found[1].name))


def run_folders(folder: Path) -> list[RunFolder]:
    """The run folders in ``folder``, oldest first (see :func:`run_paths`), with their sizes."""
    return [RunFolder(path, mtime_ns, tree_size(path)) for mtime_ns, path in run_paths(folder)]


def to_remove(runs: list[RunFolder], *, max_count: int, max_bytes: int, keep: str) -> list[Path]:
    """Which of ``runs`` (oldest first) go so that at most ``max_count`` remain and they take at
    most ``max_bytes`` (0: no size bound), oldest first; never the run named ``keep``.

    Pure: the whole policy, unit-tested without files.
    """
    count = len(runs)
    total = sum(r.size for r in runs)
    removed = []
    for run in runs:
        if count <= max(1, max_count) and (max_bytes <= 0 or total <= max_bytes):
            break
        if run.path.name == keep:
            continue
        removed.append(run.path)
        count -= 1
        total -= run.size
    return removed


def prune(folder: Path, *, max_count: int, max_bytes: int, keep: str) -> list[Path]:
    """Remove the oldest run folders in ``folder`` past the bounds (see :func:`to_remove`);
    the removed folders. Blocking: call it in a thread."""
    removed = to_remove(run_folders(folder), max_count=max_count, max_bytes=max_bytes, keep=keep)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    if removed:
        logger.debug("%s: removed %d old run folder(s)", folder, len(removed))
    return removed
