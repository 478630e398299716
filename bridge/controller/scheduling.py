"""When runs happen across resources: jitter of periodic wake-ups, and prioritised run slots.

* :func:`jitter`: a resource's periodic runs and drift checks fall due up to 10 % of the period
  (at most :data:`JITTER_CAP` seconds) *earlier* than the period says, by an amount fixed per
  resource (derived from its uid). So resources created together do not all re-run in the same
  second, and the period stays an upper bound: a resource is reconciled at least that often.
  Deterministic, so :func:`bridge.controller.reconcile.decide` stays a pure function of its inputs.
* :class:`PrioritySlots`: the global ``--max-concurrent-runs`` slots. When runs wait for a slot,
  a freed slot goes to the waiter of the most urgent class (:func:`priority`: runs for new or
  changed resources, requests, resumes, finalizers and annotation changes before periodic runs,
  drift checks and remediations, and retries), first come first served within a class. A
  waiter can be promoted while it waits (its resource changed).

NB: background runs can wait indefinitely while urgent ones keep coming; that is the point
(periodic runs never delay runs for new or changed resources).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
from typing import Final

from bridge.model.records import Trigger

#: Share of the period by which a periodic wake-up may come early.
JITTER_FRACTION: Final = 0.1
#: Seconds a periodic wake-up comes early at most, whatever the period.
JITTER_CAP: Final = 300.0

#: Priority classes of a run waiting for a slot (lower goes first).
URGENT: Final = 0
BACKGROUND: Final = 1

#: Triggers of runs that nobody is waiting for: they yield slots to every other run.
BACKGROUND_TRIGGERS: Final = frozenset({"periodic", "drift", "retry"})


def priority(trigger: Trigger) -> int:
    """The priority class of a run with ``trigger`` (:data:`URGENT` or :data:`BACKGROUND`)."""
    return BACKGROUND if trigger in BACKGROUND_TRIGGERS else URGENT


def jitter(
    period: float, key: str, *, fraction: float = JITTER_FRACTION, cap: float = JITTER_CAP
) -> float:
    """Seconds by which periodic wake-ups of the resource ``key`` (its uid) come early.

    Uniformly spread over ``[0, min(period * fraction, cap))`` across keys, the same for the
    same key and period; 0 without a key or a period.

    >>> jitter(600.0, "") == 0.0 and 0.0 <= jitter(600.0, "uid-1") < 60.0
    True
    """
    if not key or period <= 0:
        return 0.0
    digest = hashlib.sha256(key.encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64  # in [0, 1)
    return unit * min(period * fraction, cap)


class Ticket:
    """One claim on a run slot: its class and arrival order (see :meth:`PrioritySlots.ticket`)."""

    __slots__ = ("_future", "priority", "seq")

    def __init__(self, priority: int, seq: int) -> None:
        self.priority = priority
        self.seq = seq
        self._future: asyncio.Future[None] | None = None

    @property
    def waiting(self) -> bool:
        """Queued for a slot and not granted one yet."""
        return self._future is not None and not self._future.done()


class PrioritySlots:
    """A semaphore of ``capacity`` slots whose waiters are served by priority, then arrival.

    Use from one event loop: ``ticket = slots.ticket(p)``, ``await slots.acquire(ticket)``,
    ``slots.release()``. A freed slot is handed straight to the next waiter, so a newcomer never
    overtakes a queue.
    """

    def __init__(self, capacity: int) -> None:
        self._free = max(1, capacity)
        # (priority, seq, ticket); entries whose ticket moved on (promoted, served, canceled)
        # are skipped when they come up.
        self._queue: list[tuple[int, int, Ticket]] = []
        self._seq = itertools.count()

    def ticket(self, priority: int) -> Ticket:
        """A place in line, by arrival now, for :meth:`acquire`."""
        return Ticket(priority, next(self._seq))

    def locked(self) -> bool:
        """Whether an :meth:`acquire` now would wait."""
        return self._free <= 0

    @property
    def waiting(self) -> int:
        """Waiters queued now."""
        return sum(1 for p, _, t in self._queue if t.waiting and t.priority == p)

    async def acquire(self, ticket: Ticket) -> None:
        """Take a slot, waiting for one (served by ``ticket``'s priority, then its arrival).

        Canceled while waiting: the place is given up (and a slot granted meanwhile passed on).
        """
        if self._free > 0:
            self._free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        ticket._future = future
        heapq.heappush(self._queue, (ticket.priority, ticket.seq, ticket))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted just before the cancel arrived: pass it on
            else:
                future.cancel()
            raise

    def promote(self, ticket: Ticket, priority: int) -> None:
        """Move a waiting ``ticket`` into the more urgent class ``priority`` (keeping its
        arrival order there); nothing if it is not waiting or already as urgent."""
        if not ticket.waiting or priority >= ticket.priority:
            return
        ticket.priority = priority  # its old entry is now stale
        heapq.heappush(self._queue, (priority, ticket.seq, ticket))

    def release(self) -> None:
        """Give a slot back: to the first waiter of the most urgent class, else to the pool."""
        while self._queue:
            entry_priority, _, ticket = heapq.heappop(self._queue)
            future = ticket._future
            if entry_priority != ticket.priority or future is None or future.done():
                continue
            future.set_result(None)
            return
        self._free += 1
