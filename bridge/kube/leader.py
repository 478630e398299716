"""Leader election over a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

One replica holds the Lease and runs the controllers; the others stand by and try to acquire it
every retry period. The rules (client-go, controller-runtime):

* a candidate acquires the Lease when it is absent, released (empty ``holderIdentity``), already
  held by this identity, or expired: ``renewTime + leaseDurationSeconds`` is past *and* this
  replica has seen the record unchanged for ``leaseDurationSeconds`` on its own monotonic clock
  (client-go's guard against clock skew: a standby never trusts another machine's clock alone);
* every write carries the resourceVersion it read (optimistic concurrency), so two candidates
  cannot both win; ``leaseTransitions`` counts the changes of holder;
* the leader renews every retry period; when no renewal has succeeded for the renew deadline,
  or the Lease is seen held by another identity, leadership is lost: the operator stops its
  runs and exits non-zero (the Pod restarts and stands by);
* on a clean stop, once its runs have stopped, the leader releases the Lease (empty
  ``holderIdentity``, ``leaseDurationSeconds: 1``, client-go's ReleaseOnCancel), so a standby
  takes over at its next attempt instead of after the lease duration.

The renew deadline is shorter than the lease duration, so a leader that cannot renew stops
its runs before a standby may start (the difference is the margin for stopping them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from bridge.config.settings import LeaderElectionSettings
from bridge.model.errors import BridgeError, ConflictError

logger = logging.getLogger("bridge.kube.leader")

#: The namespace file of the in-cluster service account (the operator's namespace in a Pod).
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: client-go's JitterFactor: attempts to acquire are spread over retry * [1, 1.2].
JITTER = 1.2
#: A Lease's times are MicroTime: RFC 3339 with microseconds, in UTC.
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class LeadershipLost(BridgeError):
    """This replica led and lost the Lease: the operator stopped and exits non-zero."""


class LeaseAPI(Protocol):
    """The Lease calls the elector makes (:class:`bridge.kube.client.Leases`)."""

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None: ...

    async def replace(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


# --- pure parts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRecord:
    """The spec of a Lease, as leader election reads and writes it."""

    holder: str = ""
    #: Whole seconds (the API's leaseDurationSeconds is an integer).
    lease_duration: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0


def format_time(moment: datetime) -> str:
    """A MicroTime: ``2026-01-02T03:04:05.000006Z``."""
    return moment.astimezone(UTC).strftime(MICRO_TIME)


def parse_time(value: Any) -> datetime | None:
    """A Lease time (RFC 3339, any precision) as an aware datetime; None if absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_record(lease: Mapping[str, Any]) -> LeaseRecord:
    """The :class:`LeaseRecord` of a Lease object (missing fields are empty, as in the API)."""
    spec = lease.get("spec") or {}
    try:
        duration = int(spec.get("leaseDurationSeconds") or 0)
    except (TypeError, ValueError):
        duration = 0
    try:
        transitions = int(spec.get("leaseTransitions") or 0)
    except (TypeError, ValueError):
        transitions = 0
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration=duration,
        acquire_time=parse_time(spec.get("acquireTime")),
        renew_time=parse_time(spec.get("renewTime")),
        transitions=transitions,
    )


def lease_body(
    namespace: str, name: str, record: LeaseRecord, resource_version: str | None = None
) -> dict[str, Any]:
    """A Lease object holding ``record``; with ``resource_version`` for an update."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    spec: dict[str, Any] = {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration,
        "leaseTransitions": record.transitions,
    }
    if record.acquire_time is not None:
        spec["acquireTime"] = format_time(record.acquire_time)
    if record.renew_time is not None:
        spec["renewTime"] = format_time(record.renew_time)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": spec,
    }


def expired(record: LeaseRecord, now: datetime, unchanged_for: float) -> bool:
    """Whether the holder let the Lease lapse: ``renewTime + leaseDurationSeconds`` is before
    ``now`` and the record has not changed for ``leaseDurationSeconds`` as this replica saw it
    (``unchanged_for``, seconds on its own monotonic clock)."""
    if unchanged_for < record.lease_duration:
        return False
    if record.renew_time is None:
        return True
    return (now - record.renew_time).total_seconds() > record.lease_duration


def can_acquire(record: LeaseRecord, identity: str, now: datetime, unchanged_for: float) -> bool:
    """Whether ``identity`` may write itself as the holder of ``record``."""
    return not record.holder or record.holder == identity or expired(record, now, unchanged_for)


def claim(
    record: LeaseRecord | None, identity: str, lease_duration: int, now: datetime
) -> LeaseRecord:
    """The record that makes ``identity`` the holder: a renewal when it holds it already, else
    an acquisition (a new ``acquireTime``, one more transition unless the Lease is new)."""
    if record is None:
        return LeaseRecord(identity, lease_duration, now, now, 0)
    if record.holder == identity:
        return replace(
            record,
            lease_duration=lease_duration,
            acquire_time=record.acquire_time or now,
            renew_time=now,
        )
    return LeaseRecord(identity, lease_duration, now, now, record.transitions + 1)


def released(record: LeaseRecord, now: datetime) -> LeaseRecord:
    """The record a leader leaves when it stops cleanly (client-go's ReleaseOnCancel)."""
    return LeaseRecord("", 1, now, now, record.transitions)


def lease_seconds(seconds: float) -> int:
    """``leaseDurationSeconds`` for a duration: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds))


def timing_error(lease_duration: float, renew_deadline: float, retry_period: float) -> str | None:
    """What is wrong with the three durations (client-go's checks), or None."""
    if retry_period <= 0:
        return "--leader-elect-retry-period must be more than 0"
    if lease_duration <= renew_deadline:
        return "--leader-elect-lease must be longer than --leader-elect-renew-deadline"
    if renew_deadline <= JITTER * retry_period:
        return (
            f"--leader-elect-renew-deadline must be longer than {JITTER} x "
            "--leader-elect-retry-period"
        )
    return None


def default_namespace(
    environ: Mapping[str, str], service_account_file: Path = SERVICE_ACCOUNT_NAMESPACE
) -> str:
    """The Lease's namespace: $POD_NAMESPACE, else the in-cluster service account's, else the
    settings' default (``default``)."""
    if environ.get("POD_NAMESPACE"):
        return environ["POD_NAMESPACE"]
    try:
        found = service_account_file.read_text().strip()
    except OSError:
        found = ""
    return found or LeaderElectionSettings().namespace


def make_identity(environ: Mapping[str, str], hostname: str, suffix: str) -> str:
    """This replica's holderIdentity: $POD_NAME, else ``<hostname>_<suffix>``."""
    return environ.get("POD_NAME") or f"{hostname}_{suffix}"


# --- the elector -----------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """Campaigns for the Lease, renews it while leading, releases it on a clean stop.

    :meth:`campaign` waits until this replica leads (or is stopped by SIGINT/SIGTERM);
    :meth:`start_renewing` then keeps the Lease, setting :attr:`halt` when leadership is lost
    (give it to kopf as its stop flag); :meth:`close`, once the runs have stopped, releases it.
    """

    def __init__(
        self,
        settings: LeaderElectionSettings,
        leases: LeaseAPI,
        *,
        on_change: Callable[[bool], None] = lambda leading: None,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._leases = leases
        self._on_change = on_change
        self._clock = clock
        self._monotonic = monotonic
        self._duration = lease_seconds(settings.lease_duration)
        self._seen_version: str | None = None
        self._seen_at = monotonic()
        self._won_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        #: True while this replica holds the Lease.
        self.is_leader = False
        #: Why leadership was lost, once it was.
        self.lost: str | None = None
        #: Set when the operator must stop: leadership lost, a signal, the external stop flag.
        self.halt = asyncio.Event()

    @property
    def where(self) -> str:
        return f"Lease {self._settings.namespace}/{self._settings.lease_name}"

    @property
    def identity(self) -> str:
        return self._settings.identity

    async def _attempt(self) -> str:
        """One acquire-or-renew: the holder afterwards (this identity when it won)."""
        settings = self._settings
        lease = await self._leases.get(settings.namespace, settings.lease_name)
        now, mono = self._clock(), self._monotonic()
        if lease is None:
            record = claim(None, self.identity, self._duration, now)
            body = lease_body(settings.namespace, settings.lease_name, record)
            created = await self._leases.create(settings.namespace, body)
            self._see(created, mono)
            return self.identity
        record = read_record(lease)
        version = (lease.get("metadata") or {}).get("resourceVersion")
        if version != self._seen_version:
            self._seen_version, self._seen_at = version, mono
        if not can_acquire(record, self.identity, now, mono - self._seen_at):
            return record.holder
        ours = claim(record, self.identity, self._duration, now)
        body = lease_body(settings.namespace, settings.lease_name, ours, version)
        updated = await self._leases.replace(settings.namespace, body)
        if updated is None:
            raise BridgeError(f"{self.where} was deleted while being acquired")
        self._see(updated, mono)
        return self.identity

    def _see(self, lease: Mapping[str, Any] | None, mono: float) -> None:
        if lease is not None:
            self._seen_version = (lease.get("metadata") or {}).get("resourceVersion")
            self._seen_at = mono

    async def campaign(self, ready: asyncio.Event | None = None) -> bool:
        """Try to acquire the Lease every retry period until this replica leads (True) or
        SIGINT/SIGTERM arrives first (False). ``ready`` is set once the API answered."""
        self._catch_signals()
        logger.info("%s: campaigning for %s", self.identity, self.where)
        said: str | None = None
        while not self.halt.is_set():
            started = self._monotonic()
            try:
                holder = await asyncio.wait_for(self._attempt(), self._settings.renew_deadline)
            except ConflictError:
                logger.debug("%s: another replica wrote %s first", self.identity, self.where)
            except (BridgeError, TimeoutError) as exc:
                message = str(exc) or "timed out"
                if message != said:
                    logger.warning("%s: cannot acquire %s: %s", self.identity, self.where, message)
                    said = message
            else:
                if ready is not None:
                    ready.set()
                if holder == self.identity:
                    self._won_at = started
                    self._lead()
                    return True
                if holder != said:
                    logger.info(
                        "%s: standing by; %s is held by %s", self.identity, self.where, holder
                    )
                    said = holder
            delay = self._settings.retry_period * random.uniform(1.0, JITTER)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.halt.wait(), delay)
        return False

    def _lead(self) -> None:
        self.is_leader = True
        self._on_change(True)
        logger.info("%s: became leader (%s)", self.identity, self.where)

    def _catch_signals(self) -> None:
        """Until kopf installs its own handlers, SIGINT/SIGTERM stop the operator cleanly."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._signalled, sig)

    def _signalled(self, sig: signal.Signals) -> None:
        logger.info("%s: %s received; stopping", self.identity, sig.name)
        self.halt.set()

    def start_renewing(self, stop_flag: asyncio.Event | asyncio.Future[Any] | None = None) -> None:
        """Keep the Lease in the background; :attr:`halt` is set when it is lost, or when
        ``stop_flag`` is set. Call before starting kopf (kopf cancels tasks started after it)."""
        self._tasks.append(asyncio.create_task(self._renew(), name="leader election: renew"))
        if stop_flag is not None:
            self._tasks.append(
                asyncio.create_task(self._follow(stop_flag), name="leader election: stop flag")
            )

    async def _follow(self, flag: asyncio.Event | asyncio.Future[Any]) -> None:
        if isinstance(flag, asyncio.Event):
            await flag.wait()
        else:
            await flag
        self.halt.set()

    async def _renew(self) -> None:
        settings = self._settings
        renewed = self._won_at
        while True:
            left = renewed + settings.renew_deadline - self._monotonic()
            await asyncio.sleep(max(0.0, min(settings.retry_period, left)))
            started = self._monotonic()
            left = renewed + settings.renew_deadline - started
            if left <= 0:
                self._lose(f"not renewed for {settings.renew_deadline:g}s")
                return
            try:
                holder = await asyncio.wait_for(self._attempt(), left)
            except (BridgeError, TimeoutError) as exc:
                logger.warning(
                    "%s: cannot renew %s: %s", self.identity, self.where, str(exc) or "timed out"
                )
                continue
            if holder == self.identity:
                renewed = started
            else:
                self._lose(f"it is held by {holder}")
                return

    def _lose(self, why: str) -> None:
        self.is_leader = False
        self.lost = f"{self.identity}: lost leadership of {self.where}: {why}"
        self._on_change(False)
        logger.error("%s; stopping", self.lost)
        self.halt.set()

    async def close(self) -> None:
        """Stop renewing and release the Lease if this replica still holds it. Call after the
        runs have stopped: until then the Lease is kept, so no standby starts early."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        try:
            if self.is_leader:
                self.is_leader = False
                self._on_change(False)
                try:
                    await asyncio.wait_for(self._release(), self._settings.renew_deadline)
                except (BridgeError, TimeoutError) as exc:
                    logger.warning(
                        "%s: could not release %s (a standby takes over when it expires): %s",
                        self.identity,
                        self.where,
                        str(exc) or "timed out",
                    )
        finally:
            self._leases.close()

    async def _release(self) -> None:
        settings = self._settings
        lease = await self._leases.get(settings.namespace, settings.lease_name)
        if lease is None:
            return
        record = read_record(lease)
        if record.holder != self.identity:
            return
        version = (lease.get("metadata") or {}).get("resourceVersion")
        body = lease_body(
            settings.namespace, settings.lease_name, released(record, self._clock()), version
        )
        await self._leases.replace(settings.namespace, body)
        logger.info("%s: released %s", self.identity, self.where)
