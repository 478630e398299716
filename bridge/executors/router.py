"""Picks each run's executor by its watch: ``executor: local|warm|job`` per watches entry.

An entry without ``executor`` runs with the operator's ``--executor``. :func:`build_executor`
makes only the executors the watches use, and returns the one executor itself when all
watches use the same one (so the common case has no router in between). :data:`BACKENDS` maps
each name of :data:`~bridge.model.watch.EXECUTOR_NAMES` to the factory of its backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from bridge.config.settings import OperatorSettings
from bridge.executors import EventCallback, Executor
from bridge.model.records import RunResult, RunSpec
from bridge.model.watch import Watch

#: Makes one backend from the operator's settings and the watches it runs.
BackendFactory = Callable[[OperatorSettings, Sequence[Watch]], Executor]


def watch_key(spec: RunSpec) -> str:
    """The key of the watch a run is for (:attr:`bridge.model.records.Watch.key`)."""
    return f"{spec.resource.kind}.{spec.resource.api_version}"


class ExecutorRouter:
    """Hands each run to the executor of its watch (``default`` for a kind not listed)."""

    #: Drift checks go to the backends only if every one of them runs them in check mode.
    supports_check: bool

    def __init__(self, by_watch: Mapping[str, Executor], default: Executor) -> None:
        self._by_watch = dict(by_watch)
        self._default = default
        backends = [default, *self._by_watch.values()]
        self._backends = list({id(e): e for e in backends}.values())
        self.supports_check = all(e.supports_check for e in self._backends)

    def executor_for(self, spec: RunSpec) -> Executor:
        return self._by_watch.get(watch_key(spec), self._default)

    async def run(self, spec: RunSpec, on_event: EventCallback) -> RunResult:
        return await self.executor_for(spec).run(spec, on_event)

    async def close(self) -> None:
        for backend in self._backends:
            await backend.close()


def _local(settings: OperatorSettings, watches: Sequence[Watch]) -> Executor:
    from bridge.executors.local import LocalExecutor

    return LocalExecutor(settings.runner)


def _warm(settings: OperatorSettings, watches: Sequence[Watch]) -> Executor:
    from bridge.executors.local import LocalExecutor
    from bridge.executors.warm.executor import WarmExecutor

    # Its own local executor for the runs it cannot serve warm.
    return WarmExecutor(settings.runner, fallback=LocalExecutor(settings.runner))


def _job(settings: OperatorSettings, watches: Sequence[Watch]) -> Executor:
    from bridge.executors.job.executor import JobExecutor
    from bridge.kube.client import Jobs, api_client

    return JobExecutor(
        settings.runner,
        settings.job,
        Jobs(api_client(settings.kubeconfig)),
        watches,
        namespaces=settings.scope.namespaces,
    )


#: The backend of each executor name (the keys are :data:`~bridge.model.watch.EXECUTOR_NAMES`).
BACKENDS: Mapping[str, BackendFactory] = {"local": _local, "warm": _warm, "job": _job}


def build_executor(settings: OperatorSettings) -> Executor:
    """The executor of the operator: the ``--executor`` one, or a router over those the
    watches name."""
    default_name = settings.runner.executor
    names = {w.key: (w.executor.name or default_name) for w in settings.watches}
    made: dict[str, Executor] = {}

    def make(name: str) -> Executor:
        if name not in made:
            if name not in BACKENDS:
                raise ValueError(f"unknown executor {name!r}; known: {', '.join(BACKENDS)}")
            watches = [w for w in settings.watches if names[w.key] == name]
            made[name] = BACKENDS[name](settings, watches)
        return made[name]

    used = set(names.values())
    if used <= {default_name}:
        return make(default_name)
    by_watch = {key: make(name) for key, name in names.items()}
    default = made[default_name] if default_name in made else make(default_name)
    return ExecutorRouter(by_watch, default)
