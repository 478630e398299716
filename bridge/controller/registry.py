"""The controller's records of the objects it watches, by uid and by owner (for dependents).

Each watched object has one mutable :class:`Resource`, owned by the event loop: its newest body,
its worker, its run in flight and the memory of its last run (:class:`~bridge.controller.decide.
Done`). The :class:`Registry` finds a record by uid, and by the owner identity a dependent's
event names (group, kind, namespace, name) with a dict lookup, not a scan of every resource.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.controller import scheduling
from bridge.controller.decide import Action, Done, decide
from bridge.kube.client import ObjectKey
from bridge.model import bodies
from bridge.model.records import RunResult
from bridge.model.watch import Watch

#: What a dependent's event names of its owner: group, kind, namespace (None: cluster), name.
OwnerKey = tuple[str, str, str | None, str]


@dataclass
class Resource:
    """The controller's mutable record of one object (owned by the event loop)."""

    watch: Watch
    key: ObjectKey
    #: Stored as the compact copy of whatever is set (:meth:`__setattr__`).
    body: Mapping[str, Any]
    worker: asyncio.Task[None] | None = None
    run: asyncio.Task[RunResult] | None = None
    running_generation: int | None = None
    #: The run in flight is the finalizer's (nothing but shutdown cancels it).
    finalizing: bool = False
    done: Done | None = None
    wake: asyncio.TimerHandle | None = None
    #: The worker's place in line for a run slot while it waits for one.
    ticket: scheduling.Ticket | None = None
    #: A dependent (an object a run created) changed or went away since the last run began.
    dependents_changed: bool = False
    #: The problems with its SDK annotations last reported in an Event (reported once).
    sdk_problems: tuple[str, ...] = ()
    finalize_failures: int = 0
    #: A status patch the API did not take yet (newer patches merge into it), and the task that
    #: writes it with back-off (bridge.controller.writer).
    pending_status: dict[str, Any] | None = None
    flusher: asyncio.Task[None] | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def __setattr__(self, name: str, value: Any) -> None:
        # Every body the record takes, from a watch event or an API response, is stored as the
        # compact copy of bridge.model.bodies (with thousands of resources, most of what we hold).
        if name == "body":
            value = bodies.keep(value)
        super().__setattr__(name, value)

    @property
    def status(self) -> dict[str, Any]:
        value = self.body.get("status")
        return value if isinstance(value, dict) else {}

    @property
    def uid(self) -> str:
        return uid_of(self.body)

    @property
    def generation(self) -> int:
        return int((self.body.get("metadata") or {}).get("generation") or 0)

    @property
    def owner_key(self) -> OwnerKey:
        return (self.watch.group, self.watch.kind, self.key.namespace, self.key.name)

    def decide(self, now: datetime) -> Action:
        """What the record's newest body needs at ``now`` (:func:`decide`)."""
        return decide(
            self.body,
            self.watch,
            done=self.done,
            now=now,
            dependents_changed=self.dependents_changed,
        )

    def busy(self) -> bool:
        """Whether a run is in flight."""
        return self.run is not None and not self.run.done()

    def idle(self) -> bool:
        """Whether no worker is at work (one must be started to act)."""
        return self.worker is None or self.worker.done()

    def log(self, run_id: str | None = None) -> dict[str, Any]:
        """``extra=`` for a log call: the resource, and the run when there is one (JSON logs)."""
        ctx: dict[str, Any] = {"resource": str(self.key)}
        if run_id is not None:
            ctx["run_id"] = run_id
        return ctx


class Registry:
    """Every :class:`Resource`, by uid, with an index by owner identity."""

    def __init__(self) -> None:
        self._by_uid: dict[str, Resource] = {}
        self._by_owner: dict[OwnerKey, dict[str, Resource]] = {}

    def __len__(self) -> int:
        return len(self._by_uid)

    def __iter__(self) -> Iterator[Resource]:
        return iter(list(self._by_uid.values()))

    def __getitem__(self, uid: str) -> Resource:
        return self._by_uid[uid]

    def get(self, uid: str) -> Resource | None:
        return self._by_uid.get(uid)

    def add(self, watch: Watch, plural: str, body: Mapping[str, Any]) -> Resource:
        """A new record for ``body`` (an object of ``watch``'s kind, whose plural is
        ``plural``)."""
        metadata = body.get("metadata") or {}
        key = ObjectKey(
            group=watch.group,
            version=watch.version,
            plural=plural,
            namespace=metadata.get("namespace") or None,
            name=str(metadata.get("name", "")),
        )
        res = Resource(watch=watch, key=key, body=body)
        uid = res.uid
        self.remove(uid)
        self._by_uid[uid] = res
        self._by_owner.setdefault(res.owner_key, {})[uid] = res
        return res

    def remove(self, uid: str) -> Resource | None:
        """Forget the record of ``uid`` (returned, if there was one)."""
        res = self._by_uid.pop(uid, None)
        if res is not None:
            owned = self._by_owner.get(res.owner_key, {})
            owned.pop(uid, None)
            if not owned:
                self._by_owner.pop(res.owner_key, None)
        return res

    def owners(
        self, group: str, kind: str, namespace: str | None, name: str
    ) -> tuple[Resource, ...]:
        """The records of the objects with this identity (several only while one replaces
        another of the same name: a delete and a create)."""
        return tuple(self._by_owner.get((group, kind, namespace or None, name), {}).values())


def uid_of(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("uid", ""))


def rv(body: Mapping[str, Any]) -> int:
    """resourceVersion as a number, for ordering bodies of one object (0 if unknown).

    NB: resourceVersions are opaque by contract; etcd-backed servers give increasing integers,
    and this is used only to drop bodies older than one already seen.
    """
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0
