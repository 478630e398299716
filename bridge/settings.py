"""The operator's settings: one small tree of frozen dataclasses, built once at start-up.

CLI flags, environment variables and the watches file are read in :mod:`bridge.cli`; everything
below receives the finished tree explicitly. Nothing deeper in the code reads the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bridge.structs import Watch


def _default_concurrency() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class RunnerSettings:
    """How playbooks are run."""

    #: Runs in flight at once across all resources (each one is an ansible-playbook process
    #: tree); more wait in a queue. Default: the CPU count.
    max_concurrent_runs: int = field(default_factory=_default_concurrency)
    #: Where run artifacts are kept, one folder per resource (rotated by maxRunnerArtifacts).
    artifacts_dir: Path = Path("/tmp/ansible-bridge/runner")
    #: The Python that runs modules on the default localhost inventory (the operator's own,
    #: so the ansible-core it ships is the one in use).
    python: str = sys.executable
    #: Prepended to PATH for runs, so ``ansible-playbook`` of this installation is found.
    bin_dir: Path = Path(sys.executable).parent
    #: How often (seconds) the runner thread checks for a cancel request.
    cancel_poll: float = 0.1
    #: Seconds between SIGINT and SIGKILL when a run is canceled or times out.
    stop_grace: float = 5.0
    #: "local": ansible-runner spawns ansible-playbook per run; "warm": runs are forked from a
    #: server that has imported Ansible once (falls back to local when it cannot serve a run).
    executor: str = "local"
    #: Environment every run gets on top of the operator's (the bundled operator_sdk.util
    #: collection on ANSIBLE_COLLECTIONS_PATH, K8S_AUTH_KUBECONFIG for modules that call the API).
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScopeSettings:
    """Which resources the operator serves."""

    #: Namespaces to watch; empty means all namespaces (cluster-wide).
    namespaces: tuple[str, ...] = ()

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


@dataclass(frozen=True)
class RetrySettings:
    """Back-off for temporary failures (API errors, a finalizer run that failed)."""

    #: First delay in seconds; doubled after each failure.
    initial: float = 2.0
    #: Longest delay in seconds.
    maximum: float = 300.0
    #: How often a failed run (failed, error, timeout) of one generation is retried.
    run_limit: int = 3
    #: First delay in seconds before retrying a failed run; doubled after each retry.
    run_backoff: float = 10.0


@dataclass(frozen=True)
class HttpSettings:
    """The operator's HTTP server: metrics, health and readiness probes, run logs."""

    #: Address to listen on.
    host: str = "0.0.0.0"
    #: Port to listen on; 0 picks a free one (logged at start-up).
    port: int = 8080


@dataclass(frozen=True)
class OperatorSettings:
    """The whole settings tree."""

    watches_file: Path
    watches: tuple[Watch, ...]
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    scope: ScopeSettings = field(default_factory=ScopeSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    #: The kubeconfig to use; None: $KUBECONFIG, ~/.kube/config or the in-cluster account.
    kubeconfig: Path | None = None
    #: Log level name for the operator's own loggers.
    log_level: str = "INFO"
