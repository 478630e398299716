"""Dependent resources: watching what runs created, and running their owner again on changes.

:mod:`bridge.kube.proxy` reports each kind a run creates an object of. From then on one watch per
kind (per namespace when the operator serves only some) follows those objects, with the
operator's credentials, as the Operator SDK's ``watchDependentResources`` does:

- an object's ownerReference to a watched kind, or the SDK's primary-resource annotations,
  name its owner;
- a change (anything but ``status``, ``resourceVersion``, ``managedFields`` and
  ``generation``) or a deletion runs the owner again (trigger ``dependent``); a creation
  does not;
- the owner's watch decides: ``watchDependentResources: false`` watches nothing,
  ``blacklist`` kinds are never watched, cluster-scoped dependents tracked by annotations are
  watched only with ``watchClusterScopedResources: true``.

A change the owner's runs made themselves (the proxy knows the ``resourceVersion`` each of their
writes left) runs nothing. Any other change runs the owner once: that run puts the dependent
back, and its own write runs nothing more.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession

from bridge.kube.client import Credentials
from bridge.kube.paths import Collection, collection_path
from bridge.kube.proxy import Created, api_url, client_session, primary_resource_type
from bridge.model.annotations import SDK_PRIMARY_RESOURCE, SDK_PRIMARY_RESOURCE_TYPE
from bridge.model.watch import Watch

logger = logging.getLogger("bridge.kube.dependents")

#: Calls the controller's ``dependent_changed(group, kind, namespace, name, uid)``.
Notify = Callable[[str, str, "str | None", str, "str | None"], bool]

#: Seconds a watch request lasts before it is made again (the server ends it then).
WATCH_SECONDS = 300
#: Seconds before a failed list or watch is tried again.
RETRY_SECONDS = 5.0
#: Seconds an event waits before it counts, so the proxy has seen the answer to a run's own
#: write (the watch event and the answer leave the API server at about the same time).
SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class Stream:
    """One watch: a kind, in one namespace or cluster-wide (namespace None)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    namespace: str | None

    @property
    def path(self) -> str:
        return collection_path(self.group, self.version, self.plural, self.namespace)

    def __str__(self) -> str:
        gv = f"{self.group}/{self.version}" if self.group else self.version
        return f"{self.kind}.{gv}" + (f" in {self.namespace}" if self.namespace else "")


def watches_dependent(watch: Watch, group: str, version: str, kind: str) -> bool:
    """Whether ``watch`` watches its dependents of this kind at all."""
    return watch.dependents.enabled and (group, version, kind) not in watch.dependents.blacklist


def comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What counts as a change of a dependent: the object without its status and the
    metadata every write moves (as the Operator SDK's DependentPredicate)."""
    body = {k: v for k, v in obj.items() if k != "status"}
    metadata = dict(body.get("metadata") or {})
    for key in ("resourceVersion", "managedFields", "generation"):
        metadata.pop(key, None)
    body["metadata"] = metadata
    return body


@dataclass(frozen=True)
class OwnerKey:
    """An owner a dependent names: by ownerReference (with its uid) or by annotations."""

    group: str
    kind: str
    namespace: str | None
    name: str
    uid: str | None


def owners_of(obj: Mapping[str, Any], stream: Stream, watches: Iterable[Watch]) -> list[OwnerKey]:
    """The owners ``obj`` (of ``stream``'s kind) names that should run again when it changes:
    those of ``watches`` that watch dependents of this kind."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") or None
    found: list[OwnerKey] = []
    for watch in watches:
        if not watches_dependent(watch, stream.group, stream.version, stream.kind):
            continue
        for ref in metadata.get("ownerReferences") or ():
            if not isinstance(ref, Mapping):
                continue
            if ref.get("apiVersion") == watch.api_version and ref.get("kind") == watch.kind:
                owner_ns = namespace if watch.resource.scope == "Namespaced" else None
                found.append(
                    OwnerKey(
                        watch.group,
                        watch.kind,
                        owner_ns,
                        str(ref.get("name", "")),
                        str(ref.get("uid", "")) or None,
                    )
                )
        annotations = metadata.get("annotations") or {}
        if annotations.get(SDK_PRIMARY_RESOURCE_TYPE) != primary_resource_type(watch):
            continue
        if not stream.namespaced and not watch.dependents.cluster_scoped:
            continue
        owner_ns, _, name = str(annotations.get(SDK_PRIMARY_RESOURCE, "")).rpartition("/")
        if name:
            found.append(OwnerKey(watch.group, watch.kind, owner_ns or None, name, None))
    return found


class Dependents:
    """The dependents' watches, started as :mod:`bridge.kube.proxy` reports created objects."""

    def __init__(
        self,
        creds: Credentials,
        watches: Iterable[Watch],
        namespaces: tuple[str, ...],
        notify: Notify,
        *,
        own: Callable[[str, str], bool] = lambda uid, version: False,
        settle: float = SETTLE_SECONDS,
    ) -> None:
        self._creds = creds
        self._own = own
        self._settle_seconds = settle
        self._watches = tuple(watches)
        self._namespaces = namespaces
        self._notify = notify
        self._streams: dict[Stream, asyncio.Task[None]] = {}
        self._session: ClientSession | None = None
        self._closing = False

    def created(self, created: Created) -> None:
        """A run created an object through the proxy: watch its kind if its owner wants to."""
        owner, collection, resource = created.owner, created.collection, created.resource
        if self._closing or not watches_dependent(
            owner.watch, collection.group, collection.version, resource.kind
        ):
            return
        if (
            not created.owner_reference
            and not resource.namespaced
            and not owner.watch.dependents.cluster_scoped
        ):
            return  # as the SDK: annotation-tracked cluster-scoped kinds only when asked
        self.watch(collection, resource.kind, resource.namespaced)

    def watch(self, collection: Collection, kind: str, namespaced: bool) -> None:
        """Start the watch of ``kind`` that covers ``collection.namespace`` (once)."""
        namespace: str | None = None
        if namespaced and self._namespaces:
            if collection.namespace not in self._namespaces:
                return  # outside what the operator serves (and maybe may see)
            namespace = collection.namespace
        stream = Stream(
            collection.group, collection.version, collection.plural, kind, namespaced, namespace
        )
        if stream in self._streams:
            return
        logger.info("watching dependents: %s", stream)
        self._streams[stream] = asyncio.create_task(self._follow(stream), name=f"watch {stream}")

    @property
    def streams(self) -> tuple[Stream, ...]:
        return tuple(self._streams)

    async def close(self) -> None:
        self._closing = True
        tasks = list(self._streams.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- one watch --------------------------------------------------------------------------

    async def _follow(self, stream: Stream) -> None:
        """List, then watch from the list's resourceVersion; list again after any trouble
        (what changed or went away meanwhile counts too)."""
        if self._session is None:
            self._session = client_session(self._creds)
        known: dict[str, dict[str, Any]] = {}
        first = True
        while not self._closing:
            try:
                version = await self._list(stream, known, quiet=first)
                first = False
                await self._watch(stream, known, version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "watch of dependents %s: %s; again in %.0fs", stream, exc, RETRY_SECONDS
                )
                await asyncio.sleep(RETRY_SECONDS)

    async def _list(self, stream: Stream, known: dict[str, dict[str, Any]], *, quiet: bool) -> str:
        assert self._session is not None
        async with self._session.get(api_url(self._creds, stream.path)) as resp:
            if resp.status != 200:
                raise _StreamError(f"list: HTTP {resp.status}: {(await resp.text())[:200]}")
            listing = await resp.json()
        items = {}
        for item in listing.get("items") or ():
            item.setdefault("kind", stream.kind)
            items[str((item.get("metadata") or {}).get("uid", ""))] = item
        if not quiet:  # a relist: what happened while no watch was open
            for uid, old in list(known.items()):
                new = items.get(uid)
                if new is None:
                    self._changed(stream, old, "DELETED")
                elif comparable(new) != comparable(old):
                    self._changed(stream, new, "MODIFIED")
        known.clear()
        known.update({uid: comparable(item) for uid, item in items.items()})
        return str((listing.get("metadata") or {}).get("resourceVersion", ""))

    async def _watch(self, stream: Stream, known: dict[str, dict[str, Any]], version: str) -> None:
        assert self._session is not None
        while not self._closing:
            params = {
                "watch": "1",
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(WATCH_SECONDS),
            }
            async with self._session.get(api_url(self._creds, stream.path), params=params) as resp:
                if resp.status != 200:
                    raise _StreamError(f"watch: HTTP {resp.status}")
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        version = self._event(stream, known, event, version)

    def _event(
        self,
        stream: Stream,
        known: dict[str, dict[str, Any]],
        event: Mapping[str, Any],
        version: str,
    ) -> str:
        """Take in one watch event; the resourceVersion to go on from."""
        kind, obj = event.get("type"), event.get("object") or {}
        metadata = obj.get("metadata") or {}
        if kind == "ERROR":
            raise _StreamError(f"watch: {obj.get('message') or obj}")  # e.g. 410 Gone: relist
        uid = str(metadata.get("uid", ""))
        new_version = str(metadata.get("resourceVersion") or version)
        if kind == "BOOKMARK":
            return new_version
        if kind == "DELETED":
            known.pop(uid, None)
            self._settle(stream, obj, "DELETED", uid, new_version)
        elif kind == "ADDED":
            known[uid] = comparable(obj)
        elif kind == "MODIFIED":
            now = comparable(obj)
            if known.get(uid) != now:
                known[uid] = now
                self._settle(stream, obj, "MODIFIED", uid, new_version)
        return new_version

    def _settle(
        self, stream: Stream, obj: Mapping[str, Any], what: str, uid: str, version: str
    ) -> None:
        """Count the event in :data:`SETTLE_SECONDS`, unless a run's own write made it."""

        def settled() -> None:
            if not self._closing and not self._own(uid, version):
                self._changed(stream, obj, what)

        asyncio.get_running_loop().call_later(self._settle_seconds, settled)

    def _changed(self, stream: Stream, obj: Mapping[str, Any], what: str) -> None:
        metadata = obj.get("metadata") or {}
        for owner in owners_of(obj, stream, self._watches):
            if self._notify(owner.group, owner.kind, owner.namespace, owner.name, owner.uid):
                logger.info(
                    "%s %s/%s %s: running its owner %s %s again",
                    stream.kind,
                    metadata.get("namespace") or "-",
                    metadata.get("name"),
                    what.lower(),
                    owner.kind,
                    owner.name,
                )


class _StreamError(Exception):
    pass
