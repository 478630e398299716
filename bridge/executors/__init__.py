"""How a run is carried out: the ``Executor`` protocol and its backends.

Every backend takes a :class:`RunSpec`, streams the runner's job events to ``on_event`` as they
happen, and returns a :class:`RunResult`. Cancelling the awaiting task stops the run and its
whole process tree before the cancellation propagates: no ansible process outlives its run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bridge.model.records import RunnerEvent, RunResult, RunSpec

EventCallback = Callable[[RunnerEvent], None]


class Executor(Protocol):
    """Runs one playbook run to completion (or until cancelled)."""

    #: Whether it runs :attr:`RunSpec.check` runs in check mode (``--check --diff``): the
    #: controller checks for drift only with an executor that does.
    supports_check: bool

    async def run(self, spec: RunSpec, on_event: EventCallback) -> RunResult: ...

    async def close(self) -> None:
        """Release what the backend holds (threads, servers); runs in flight are cancelled."""
        ...
