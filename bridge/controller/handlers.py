"""kopf registration, one event handler per watches entry: thin, it only hands bodies over.

Watching, reconnecting, and posting Events are kopf's; deciding and running are the
:class:`~bridge.controller.reconcile.Controller`'s. The handlers are low-level event handlers, so
kopf keeps
no state of its own on our objects (no annotations, no finalizer of its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

from bridge.controller.reconcile import Controller
from bridge.model.selectors import matches
from bridge.model.watch import Watch


def post_event(body: Mapping[str, Any], type: str, reason: str, message: str) -> None:
    """Post a Kubernetes Event about ``body`` through kopf's poster (non-blocking)."""
    # kopf only reads apiVersion, kind and metadata of it to build the Event's reference.
    kopf.event(cast(kopf.Body, dict(body)), type=type, reason=reason, message=message)


def register(registry: kopf.OperatorRegistry, controller: Controller, watch: Watch) -> None:
    """Route every event of ``watch``'s kind to ``controller``."""

    def selected(labels: Mapping[str, str], **_: Any) -> bool:
        return watch.resource.selector is None or matches(watch.resource.selector, labels)

    async def on_event(
        event: Mapping[str, Any], body: Mapping[str, Any], resource: Any, **_: Any
    ) -> None:
        raw = event.get("object")
        source: Mapping[str, Any] = raw if isinstance(raw, Mapping) else body
        controller.observe(watch, resource.plural, event.get("type"), source)

    kopf.on.event(
        watch.group,
        watch.version,
        watch.kind,
        id=f"bridge:{watch.key}",
        when=selected,
        registry=registry,
    )(on_event)
