"""The operator's settings: a tree of frozen dataclasses, one per concern, built once at start-up.

Each field's default is the operator's default, written once: the command line takes its
options' defaults (and the valid values below) from here. The command line (:mod:`bridge.cli`)
builds the tree from its flags, the environment (the Operator SDK's variables through
:mod:`bridge.config.sdk`) and the watches file (:mod:`bridge.config.watches`), and passes it
down explicitly. Below it no option is read from the environment; the operator's own
environment reaches only the processes of runs (:mod:`bridge.executors` hands it on, with
:attr:`RunnerSettings.env` on top) and the Kubernetes client's look-up of ``$KUBECONFIG``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bridge.model.watch import Watch

#: The log levels of the operator's own loggers (:attr:`OperatorSettings.log_level`).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: How the Job of an ``executor: job`` run is carried out (:attr:`JobSettings.transport`).
JOB_TRANSPORTS = ("pod", "process")


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
    #: Bytes one resource's run artifacts may take (its drift checks' apart, as much again);
    #: after each run the oldest run folders go until under it (never the run just finished).
    #: 0: no size bound, only maxRunnerArtifacts.
    max_artifacts_bytes: int = 50 * 1024 * 1024
    #: The Python that runs modules on the default localhost inventory (the operator's own,
    #: so the ansible-core it ships is the one in use).
    python: str = sys.executable
    #: Prepended to PATH for runs, so ``ansible-playbook`` of this installation is found.
    bin_dir: Path = Path(sys.executable).parent
    #: How often (seconds) the runner thread checks for a cancel request.
    cancel_poll: float = 0.1
    #: Seconds between SIGINT and SIGKILL when a run is canceled or times out.
    stop_grace: float = 5.0
    #: The executor of watches without ``executor`` (``--executor``; one of
    #: :data:`~bridge.model.watch.EXECUTOR_NAMES`): "warm" (default): runs are forked from a
    #: server that has imported Ansible once (falls back to local when it cannot serve a run);
    #: "local": ansible-runner spawns ansible-playbook; "job": a Kubernetes Job per run.
    executor: str = "warm"
    #: Environment every run gets on top of the operator's (the bundled operator_sdk.util
    #: collection on ANSIBLE_COLLECTIONS_PATH; K8S_AUTH_KUBECONFIG only with
    #: ``--inject-owner-ref=false``: by default runs reach the API through the proxy alone).
    env: Mapping[str, str] = field(default_factory=dict)
    #: Extra ``ansible-playbook`` options of every run (``--ansible-args``, shell-quoted).
    ansible_args: str = ""
    #: The ``-v`` count of runs (``--ansible-verbosity``), unless their kind's or resource's says.
    ansible_verbosity: int = 0
    #: Per watch (by :attr:`Watch.key`): the ``-v`` count from ``ANSIBLE_VERBOSITY_<KIND>_<GROUP>``.
    watch_verbosity: Mapping[str, int] = field(default_factory=dict)
    #: Per watch (by :attr:`Watch.key`): runs of that kind in flight at once, from
    #: ``MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>`` (within ``max_concurrent_runs``).
    watch_max_runs: Mapping[str, int] = field(default_factory=dict)


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
    """Back-off: of temporary failures (API errors, a finalizer run that failed) and of the
    retries of a failed run (a watch's ``retry`` overrides the latter)."""

    #: First delay in seconds after a temporary failure; doubled after each failure.
    initial: float = 2.0
    #: Longest delay in seconds, of either back-off.
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
class JobSettings:
    """How watches with ``executor: job`` run: one Kubernetes Job per run
    (bridge.executors.job.executor)."""

    #: One of :data:`JOB_TRANSPORTS`. "pod": the Job's pod runs ``ansible-runner worker``; the
    #: operator attaches to its stdin and follows its log. "process": a local
    #: ``ansible-runner worker`` process stands in for the pod's container (the Job object is
    #: still created); for tests and development.
    transport: str = "pod"
    #: The image of a watch whose ``job.image`` is not set (the operator's own image has
    #: ansible-runner and the automation at the same paths).
    image: str = "ansible-bridge:latest"
    #: Seconds a Job's pod may take to start running (scheduling, image pull) before the run
    #: fails as an error (and is retried).
    start_timeout: float = 300.0


@dataclass(frozen=True)
class LeaderElectionSettings:
    """``--leader-elect``: one active replica holding a coordination.k8s.io Lease, the others
    standing by (client-go's leader election; see :mod:`bridge.kube.leader`)."""

    #: Off: this process is always the active one.
    enabled: bool = False
    #: Namespace of the Lease (the operator's own).
    namespace: str = "default"
    #: Name of the Lease; replicas sharing it share one leader.
    lease_name: str = "ansible-bridge-leader"
    #: This replica's holderIdentity (POD_NAME, or hostname_random).
    identity: str = ""
    #: Seconds a standby waits after the last renewal before taking the Lease over.
    lease_duration: float = 15.0
    #: Seconds the leader keeps trying to renew before it gives up leadership and exits.
    renew_deadline: float = 10.0
    #: Seconds between acquire or renew attempts.
    retry_period: float = 2.0


@dataclass(frozen=True)
class OperatorSettings:
    """The whole settings tree."""

    watches_file: Path
    watches: tuple[Watch, ...]
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    scope: ScopeSettings = field(default_factory=ScopeSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    job: JobSettings = field(default_factory=JobSettings)
    leader_election: LeaderElectionSettings = field(default_factory=LeaderElectionSettings)
    #: The kubeconfig to use ($KUBECONFIG is resolved into it by the CLI); None: the in-cluster
    #: account, else ~/.kube/config.
    kubeconfig: Path | None = None
    #: Log level name for the operator's own loggers (one of :data:`LOG_LEVELS`).
    log_level: str = "INFO"
    #: Give each run the operator's identity through a local API proxy that adds an
    #: ownerReference (or the Operator SDK's primary-resource annotations) to objects the run
    #: creates, and watch those dependents (``--inject-owner-ref``).
    inject_owner_ref: bool = True
