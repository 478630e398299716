"""Every write the controller makes to the API, with its retry policy: status, finalizers, Events.

Each write's response becomes the record's known body (unless an event already brought a newer
one). A status patch is best effort (tried three times, then logged): the next run writes the
whole picture again. An Event never breaks a reconcile. Releasing a finalizer re-reads the
object on a conflict and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from bridge.controller.outcome import Event
from bridge.controller.ports import EventPoster, StatusWriter
from bridge.controller.registry import Resource, rv
from bridge.model.errors import ConflictError, PermanentError, TemporaryError

logger = logging.getLogger("bridge.controller.reconcile")

#: Tries of a status patch that meets temporary errors (1 s, then 2 s apart).
PATCH_TRIES = 3
#: Tries of a finalizer release that meets conflicts.
RELEASE_TRIES = 10
#: Events are cut to this many characters.
EVENT_LIMIT = 1000


class Writer:
    """Writes to the objects of :class:`Resource` records."""

    def __init__(self, kube: StatusWriter, post_event: EventPoster) -> None:
        self._kube = kube
        self._post_event = post_event

    async def patch(self, res: Resource, patch: Mapping[str, Any]) -> None:
        """Merge ``patch`` into the status; the response becomes the known body."""
        if not patch:
            return
        for attempt in range(PATCH_TRIES):
            try:
                updated = await self._kube.patch_status(res.key, patch)
            except TemporaryError as exc:
                if attempt == PATCH_TRIES - 1:
                    logger.error("%s: status not written: %s", res.key, exc, extra=res.log())
                    return
                await asyncio.sleep(1 + attempt)
                continue
            except PermanentError as exc:
                logger.error("%s: status not written: %s", res.key, exc, extra=res.log())
                return
            if updated is not None and rv(updated) >= rv(res.body):
                res.body = updated
            return

    def event(self, res: Resource, event: Event | None) -> None:
        """Post ``event`` about the object (best effort; None: nothing)."""
        if event is None:
            return
        try:
            self._post_event(res.body, event.type, event.reason, event.message[:EVENT_LIMIT])
        except Exception:  # an Event is best effort; never let it break a reconcile
            logger.exception("%s: could not post event %s", res.key, event.reason, extra=res.log())

    async def refresh(self, res: Resource) -> None:
        """Read the object again (a failure keeps the body known)."""
        with contextlib.suppress(TemporaryError, PermanentError):
            fresh = await self._kube.get(res.key)
            if fresh is not None and rv(fresh) >= rv(res.body):
                res.body = fresh

    async def ensure_finalizer(self, res: Resource) -> None:
        """Add the watch's finalizer to the object, when it has one and the object lacks it."""
        finalizer = res.watch.automation.finalizer
        if finalizer is None:
            return
        metadata = res.body.get("metadata") or {}
        finalizers = list(metadata.get("finalizers") or [])
        if finalizer.name in finalizers:
            return
        updated = await self._kube.set_finalizers(
            res.key, [*finalizers, finalizer.name], str(metadata["resourceVersion"])
        )
        if updated is not None:
            res.body = updated

    async def release_finalizer(self, res: Resource) -> None:
        """Remove the watch's finalizer from the object (it may then go away)."""
        finalizer = res.watch.automation.finalizer
        assert finalizer is not None
        for _ in range(RELEASE_TRIES):
            metadata = res.body.get("metadata") or {}
            finalizers = [f for f in metadata.get("finalizers") or [] if f != finalizer.name]
            try:
                await self._kube.set_finalizers(
                    res.key, finalizers, str(metadata["resourceVersion"])
                )
                return
            except ConflictError:
                fresh = await self._kube.get(res.key)
                if fresh is None:
                    return
                res.body = fresh
        raise TemporaryError(f"{res.key}: the finalizer could not be released")
