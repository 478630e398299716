"""What the controller needs from outside, as Protocols: API, Events, run identities, metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

from bridge.kube.client import ObjectKey
from bridge.model.records import RunResult
from bridge.model.watch import Watch

#: How a drift check ended, for metrics: changes found, none, or no verdict (failed, error).
CheckVerdict = Literal["drifted", "clean", "failed"]


class EventPoster(Protocol):
    """Posts a Kubernetes Event about an object (kopf's poster in the operator)."""

    def __call__(self, body: Mapping[str, Any], type: str, reason: str, message: str) -> None: ...


class StatusWriter(Protocol):
    """The Kubernetes writes a reconcile needs (implemented by :class:`bridge.kube.client.Kube`)."""

    async def patch_status(
        self, key: ObjectKey, status: Mapping[str, Any]
    ) -> dict[str, Any] | None: ...

    async def get(self, key: ObjectKey) -> dict[str, Any] | None: ...

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None: ...

    async def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None: ...

    async def set_finalizers(
        self, key: ObjectKey, finalizers: list[str], resource_version: str
    ) -> dict[str, Any] | None: ...


class RunIdentities(Protocol):
    """Gives runs their own credentials for the Kubernetes API (bridge.kube.proxy: a token of the
    operator's API proxy that knows the run's owner); every method must return at once."""

    def issue(self, watch: Watch, body: Mapping[str, Any]) -> Mapping[str, str]:
        """Environment variables for a run of ``body``; empty when there is nothing to give."""
        ...

    def revoke(self, env: Mapping[str, str]) -> None:
        """The run given ``env`` has ended: its credentials stop working."""
        ...


@runtime_checkable
class RunObserver(Protocol):
    """Told about runs as they happen (metrics); every method must return at once."""

    def queued(self, watch: Watch) -> None: ...

    def dequeued(self, watch: Watch) -> None: ...

    def started(self, watch: Watch, run_id: str) -> None: ...

    def finished(self, watch: Watch, result: RunResult, seconds: float) -> None: ...

    def checked(self, watch: Watch, verdict: CheckVerdict, seconds: float) -> None: ...


class NoObserver:
    """A :class:`RunObserver` that ignores everything."""

    def queued(self, watch: Watch) -> None:
        pass

    def dequeued(self, watch: Watch) -> None:
        pass

    def started(self, watch: Watch, run_id: str) -> None:
        pass

    def finished(self, watch: Watch, result: RunResult, seconds: float) -> None:
        pass

    def checked(self, watch: Watch, verdict: CheckVerdict, seconds: float) -> None:
        pass
