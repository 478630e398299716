"""What an interrupted operator left in the artifacts folder: private data dirs, and the run
folders of runs whose end was never dealt with.

A run's private data dir (``run-<id>-*``, or ``worker-<id>-*`` for a Job run's local worker,
beside the resource's ``artifacts/`` and ``checks/``) holds its inputs, Secret values
included; it is removed when the run ends, so any one found at start-up was left by a process
that died. A run folder without :data:`~bridge.ansible.artifacts.FINISHED` belongs to a run
that never reached its end: its artifacts may hold Secret values unscrubbed. The operator's
start-up (:mod:`bridge.app.recovery`) removes the former, and scrubs each of the latter
(:func:`scrub`) or removes it (:func:`remove`) when its Secret values cannot be known.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from bridge.ansible import secrets
from bridge.ansible.artifacts import CHECKS, RUNS, is_finished, mark_finished, run_paths

#: A private data dir: ``run-<run id>-<random>`` (local, warm) or ``worker-...`` (Job, process).
PRIVATE = re.compile(r"(run|worker)-[A-Za-z0-9][A-Za-z0-9_-]*")
#: The folder of a resource's artifacts for cluster-scoped resources (see inputs.resource_dir).
CLUSTER = "_cluster"


@dataclass(frozen=True)
class ResourcePath:
    """The resource a folder of the artifacts tree is for
    (``<group|core>/<version>/<kind>/<namespace|_cluster>/<name>``)."""

    group: str
    version: str
    kind: str
    namespace: str | None
    name: str


@dataclass(frozen=True)
class Leftovers:
    """What start-up found: private data dirs, and unfinished run folders by resource."""

    private_dirs: tuple[Path, ...]
    unfinished: tuple[tuple[ResourcePath, tuple[Path, ...]], ...]


def resource_dirs(root: Path) -> list[tuple[ResourcePath, Path]]:
    """Every resource folder below ``root`` (five levels down), with what it names."""
    found = []
    for folder in sorted(root.glob("*/*/*/*/*")):
        if folder.is_symlink() or not folder.is_dir():
            continue
        group, version, kind, namespace, name = folder.relative_to(root).parts
        found.append(
            (
                ResourcePath(
                    group, version, kind, None if namespace == CLUSTER else namespace, name
                ),
                folder,
            )
        )
    return found


def find(root: Path) -> Leftovers:
    """The private data dirs and unfinished run folders (runs and checks) below ``root``."""
    private: list[Path] = []
    unfinished: list[tuple[ResourcePath, tuple[Path, ...]]] = []
    for resource, folder in resource_dirs(root):
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        private += [
            p for p in entries if PRIVATE.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
        ]
        runs = tuple(
            path
            for sub in (RUNS, CHECKS)
            for _, path in run_paths(folder / sub)
            if not is_finished(path)
        )
        if runs:
            unfinished.append((resource, runs))
    return Leftovers(tuple(private), tuple(unfinished))


def scrub(folder: Path, values: tuple[str, ...]) -> int:
    """Redact ``values`` in every file of the run folder, then mark it finished; the count of
    files changed. Blocking."""
    changed = secrets.scrub_tree(folder, values)
    mark_finished(folder)
    return changed


def remove(folder: Path) -> None:
    """Remove a folder (a private data dir, or a run folder that cannot be scrubbed). Blocking."""
    shutil.rmtree(folder, ignore_errors=True)
