"""Every write the controller makes to the API, with its retry policy: status, finalizers, Events.

Each write's response becomes the record's known body (unless an event already brought a newer
one). A status patch that meets a temporary error (the API server is down, overloaded) is not
lost: it waits in the record (``Resource.pending_status``) and a task of its own writes it with
back-off (:data:`RETRY_FIRST` seconds, doubling to :data:`RETRY_MAX`) for as long as the
operator lives; the worker goes on meanwhile (no run slot is held for it). A later patch of the
same resource merges into the waiting one (RFC 7386 composition), so the newest state wins and
the writes stay in order. Shutdown and the object's deletion stop the retries. An Event never
breaks a reconcile. Releasing a finalizer re-reads the object on a conflict and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from bridge.controller import bounds
from bridge.controller.outcome import Event
from bridge.controller.ports import EventPoster, StatusWriter
from bridge.controller.registry import Resource, rv
from bridge.model.errors import ConflictError, PermanentError, TemporaryError
from bridge.model.records import plain

logger = logging.getLogger("bridge.controller.reconcile")

#: Seconds before a status patch that met a temporary error is tried again; doubled after each.
RETRY_FIRST = 0.5
#: The longest wait between two tries of a status patch.
RETRY_MAX = 30.0
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
        """Merge ``patch`` into the status; the response becomes the known body. When the API
        does not take it now, it is written later (see the module docstring); returns at once
        when an earlier patch is still waiting (this one joins it)."""
        if not patch:
            return
        if res.pending_status is not None:
            res.pending_status = compose(res.pending_status, patch)
            return
        try:
            updated = await self._kube.patch_status(res.key, patch)
        except TemporaryError as exc:
            if _too_deep(exc):
                return  # written; only its response (the whole object) could not be decoded
            logger.warning(
                "%s: status not written yet: %s; retrying", res.key, exc, extra=res.log()
            )
            res.pending_status = compose({}, patch)
            res.flusher = asyncio.create_task(self._flush(res), name=f"status of {res.key}")
            return
        except PermanentError as exc:
            logger.error("%s: status not written: %s", res.key, exc, extra=res.log())
            return
        self._accept(res, updated)

    async def _flush(self, res: Resource) -> None:
        """Write ``res.pending_status`` until the API takes it (the newest one, merged)."""
        delay, tries = RETRY_FIRST, 1
        while res.pending_status is not None:
            await asyncio.sleep(delay)
            patch = res.pending_status
            tries += 1
            try:
                updated = await self._kube.patch_status(res.key, patch)
            except TemporaryError as exc:
                if _too_deep(exc):
                    updated = None  # written (see patch())
                else:
                    delay = min(delay * 2, RETRY_MAX)
                    logger.debug("%s: status not written yet: %s", res.key, exc, extra=res.log())
                    continue
            except PermanentError as exc:
                logger.error("%s: status not written: %s", res.key, exc, extra=res.log())
                res.pending_status = None
                break
            if res.pending_status is patch:
                res.pending_status = None  # else a newer one joined meanwhile: write it next
            delay = 0.0
            self._accept(res, updated)
            logger.info("%s: status written after %d tries", res.key, tries, extra=res.log())
        res.flusher = None

    def stop(self, res: Resource) -> None:
        """Stop writing ``res``'s waiting status patch (shutdown, or the object is gone)."""
        if res.flusher is not None:
            res.flusher.cancel()
            res.flusher = None
        res.pending_status = None

    @staticmethod
    def _accept(res: Resource, updated: Mapping[str, Any] | None) -> None:
        if updated is not None and rv(updated) >= rv(res.body):
            res.body = bounds.checked(updated)

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
                res.body = bounds.checked(fresh)

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
            res.body = bounds.checked(updated)

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
                res.body = bounds.checked(fresh)
        raise TemporaryError(f"{res.key}: the finalizer could not be released")


def _too_deep(error: TemporaryError) -> bool:
    """Whether ``error`` is the client failing to decode a response nested too deep for it
    (the request itself went through)."""
    return isinstance(error.__cause__, RecursionError)


def compose(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """One JSON merge patch (RFC 7386) that does what ``first`` then ``second`` do: ``second``
    wins key by key, nested mappings compose, a None (delete) or any other value replaces."""
    merged: dict[str, Any] = {str(k): plain(v) for k, v in first.items()}
    for key, value in second.items():
        previous = merged.get(key)
        if isinstance(value, Mapping) and isinstance(previous, Mapping):
            merged[key] = compose(previous, value)
        else:
            merged[key] = plain(value)
    return merged
