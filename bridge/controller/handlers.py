"""kopf registration, one event handler per watches entry: thin, it only hands bodies over.

Watching, reconnecting, and posting Events are kopf's; deciding and running are the
:class:`~bridge.controller.reconcile.Controller`'s. The handlers are low-level event handlers,
so kopf keeps no state of its own on our objects (no annotations, no finalizer of its own).

NB: :func:`guard_decoding` replaces how kopf decodes what the API server sends (watch lines and
listings) with :func:`bridge.controller.bounds.loads`, so that no object, however deep or large
its spec, reaches kopf's recursive code (``json.loads``, ``deepcopy``): such an object arrives
with a marker spec, and the controller reports it ``InvalidSpec``. It reaches into kopf's
private ``kopf._cogs.clients.api`` (kopf 1.3x-1.4x decode there); a kopf upgrade that moves it
fails :func:`guard_decoding` loudly at start-up, not silently.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kopf._cogs.clients import api as kopf_api

from bridge.controller import bounds
from bridge.controller.reconcile import Controller
from bridge.model.selectors import matches
from bridge.model.watch import Watch


def post_event(body: Mapping[str, Any], type: str, reason: str, message: str) -> None:
    """Post a Kubernetes Event about ``body`` through kopf's poster (non-blocking)."""
    # kopf only reads apiVersion, kind and metadata of it to build the Event's reference.
    kopf.event(cast(kopf.Body, dict(body)), type=type, reason=reason, message=message)


def guard_decoding() -> None:
    """Make kopf decode watch lines and listings with :func:`bounds.loads` (idempotent)."""
    if getattr(kopf_api.get, "bridge_guarded", False):
        return
    if not isinstance(getattr(kopf_api, "json", None), types.ModuleType | types.SimpleNamespace):
        raise RuntimeError("kopf no longer decodes JSON where ansible-bridge guards it")
    # kopf's stream() calls json.loads(line) through its module's `json` name.
    kopf_api.json = types.SimpleNamespace(loads=bounds.loads, dumps=json.dumps)  # type: ignore[assignment,attr-defined]
    request = kopf_api.request

    async def get(
        url: str,
        *,
        settings: Any,
        payload: object | None = None,
        headers: dict[str, str] | None = None,
        timeout: Any = None,  # noqa: ASYNC109 - kopf's api.get signature
        logger: Any,
    ) -> Any:
        response = await request(
            method="get",
            url=url,
            payload=payload,
            headers=headers,
            timeout=timeout,
            settings=settings,
            logger=logger,
        )
        async with response:
            data = await response.read()
        return bounds.loads(data) if data.strip() else None

    get.bridge_guarded = True  # type: ignore[attr-defined]
    kopf_api.get = get


def register(registry: kopf.OperatorRegistry, controller: Controller, watch: Watch) -> None:
    """Route every event of ``watch``'s kind to ``controller`` (and guard kopf's decoding)."""
    guard_decoding()

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
