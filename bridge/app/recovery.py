"""Start-up recovery of the artifacts folder: no Secret value an earlier, crashed operator left on
disk survives into this one, nor is served by ``/logs``.

Before the first run (and before ``/logs`` serves anything, unless a standby shares the folder
with its leader: then once it leads), :func:`recover`:

* removes every leftover private data dir (``env/extravars`` with resolved Secret values,
  credential files): no run of this process has started yet, so each one is an earlier
  process's;
* scrubs each unfinished run folder (no :data:`~bridge.ansible.artifacts.FINISHED`) against the
  Secret values its resource references *now* (the spec's ``...From: {secretKeyRef}`` fields,
  resolved through the API as the controller does, and the watch's ``credentials``), and marks
  it finished;
* removes the unfinished run folders whose values cannot be known: the resource or its watch is
  gone, a Secret or key is missing, the API cannot be read.

NB: a Secret changed between the crash and this start-up was scrubbed with its new value; the
old one is unknown here. That is the one case this cannot cover.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bridge.ansible import leftovers, secrets
from bridge.ansible.leftovers import ResourcePath
from bridge.config import credentials
from bridge.kube.client import ObjectKey
from bridge.model.watch import Watch

logger = logging.getLogger("bridge.app.recovery")


class Cluster(Protocol):
    """What recovery reads from the API (:class:`bridge.kube.client.Kube` has it)."""

    async def get(self, key: ObjectKey) -> dict[str, Any] | None: ...

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None: ...


@dataclass(frozen=True)
class Recovered:
    """What :func:`recover` did: folders removed (private dirs, run folders) and scrubbed."""

    private_removed: int = 0
    runs_scrubbed: int = 0
    runs_removed: int = 0


def _watch_for(resource: ResourcePath, watches: Sequence[Watch]) -> Watch | None:
    for watch in watches:
        if (watch.group or "core", watch.version, watch.kind) == (
            resource.group,
            resource.version,
            resource.kind,
        ):
            return watch
    return None


async def secret_values(
    resource: ResourcePath, watches: Sequence[Watch], cluster: Cluster
) -> tuple[str, ...] | None:
    """The Secret values ``resource`` references now (its spec's references and its watch's
    credentials); None when they cannot be known."""
    watch = _watch_for(resource, watches)
    if watch is None:
        return None
    key = ObjectKey(watch.group, watch.version, watch.plural, resource.namespace, resource.name)
    try:
        body = await cluster.get(key)
        if body is None:
            return None
        raw = body.get("spec")
        spec: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        _, values = await secrets.resolve(spec, resource.namespace, cluster.secret_data)
        found = set(values)
        if watch.automation.credentials is not None:
            _, more = await credentials.resolve_credentials(
                watch.automation.credentials, spec, resource.namespace, cluster.secret_data
            )
            found |= set(more)
    except Exception as exc:  # any failure: the values are unknown
        logger.warning("%s: cannot resolve its Secret references: %s", key, exc)
        return None
    return tuple(sorted(found, key=len, reverse=True))


async def recover(root: Path, watches: Sequence[Watch], cluster: Cluster) -> Recovered:
    """Remove the leftover private data dirs below ``root``, and scrub (or remove) the
    unfinished run folders (see the module's docstring)."""
    found = await asyncio.to_thread(leftovers.find, root)
    for folder in found.private_dirs:
        logger.warning("removing %s, left by an earlier operator", folder)
        await asyncio.to_thread(leftovers.remove, folder)
    scrubbed = removed = 0
    for resource, runs in found.unfinished:
        values = await secret_values(resource, watches, cluster)
        for folder in runs:
            if values is None:
                logger.warning(
                    "removing %s: its run was interrupted and its Secret values are unknown",
                    folder,
                )
                await asyncio.to_thread(leftovers.remove, folder)
                removed += 1
            else:
                changed = await asyncio.to_thread(leftovers.scrub, folder, values)
                logger.info("scrubbed interrupted run %s (%d file(s) changed)", folder, changed)
                scrubbed += 1
    return Recovered(len(found.private_dirs), scrubbed, removed)
