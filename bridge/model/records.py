"""Immutable records passed between the bridge's layers: the mapping, a run's inputs and outcome.

Raw payloads from outside (Kubernetes bodies, ansible-runner events) stay plain mappings typed
with TypedDicts; everything the bridge derives from them is a frozen dataclass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from bridge.config.argspec import EntryPoint
    from bridge.config.credentials import Credentials, InventorySource

#: How a run ended. ``error`` means the runner itself could not run the playbook.
RunStatus = Literal["successful", "failed", "canceled", "timeout", "error"]

#: What caused a run. ``drift``: a drift check found changes and the watch remediates them (the
#: check runs themselves carry it too, with :attr:`RunSpec.check` set).
Trigger = Literal[
    "create",
    "update",
    "resume",
    "finalize",
    "annotation",
    "periodic",
    "requested",
    "retry",
    "drift",
    "dependent",
]


@dataclass(frozen=True)
class FinalizerSpec:
    """The ``finalizer`` of a watches entry: what runs before a resource may go away."""

    name: str
    playbook: Path | None = None
    role: Path | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobOptions:
    """The ``job`` of a watches entry: the Kubernetes Job each run becomes (``executor: job``).

    Mappings are the Kubernetes fields as written (validated by bridge.config.watches).
    """

    #: The execution-environment image (it runs ``ansible-runner worker``); None: the
    #: operator's ``--job-image``.
    image: str | None = None
    #: The container's ``resources`` ({requests, limits}).
    resources: Mapping[str, Any] = field(default_factory=dict)
    #: The pod's ``serviceAccountName``; None: the namespace's default.
    service_account: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    #: The Job's ``ttlSecondsAfterFinished``: Kubernetes removes a finished Job (and its pod)
    #: that the operator could not delete itself.
    ttl_seconds_after_finished: int = 300
    #: Where the Jobs are created; None: the resource's namespace.
    namespace: str | None = None


@dataclass(frozen=True)
class Watch:
    """One validated watches.yaml entry: a kind and the automation that reconciles it.

    Field names follow the Operator SDK keys, in snake_case. Paths are absolute (resolved
    against the watches file's folder at load time). Durations are in seconds.
    """

    group: str
    version: str
    kind: str
    playbook: Path | None = None
    role: Path | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    reconcile_period: float | None = None
    manage_status: bool = True
    finalizer: FinalizerSpec | None = None
    #: A Kubernetes label selector ({matchLabels, matchExpressions}); only matching resources run.
    selector: Mapping[str, Any] | None = None
    snake_case_parameters: bool = True
    mark_unsafe: bool = True
    max_runner_artifacts: int = 20
    watch_annotations_changes: bool = False
    # --- bridge extensions ---
    #: Seconds a run may take before its process tree is stopped; None: no limit.
    timeout: float | None = 3600.0
    #: An inventory file or folder; None: localhost with the operator's Python.
    inventory: Path | None = None
    #: ``inventory`` given inline or as a Secret/ConfigMap key instead of a path (see
    #: bridge.config.credentials); None: ``inventory`` (or the default) applies.
    inventory_source: InventorySource | None = None
    #: ``credentials``: SSH key, become/vault passwords and environment from a Secret of the
    #: resource's namespace (see bridge.config.credentials); None: none.
    credentials: Credentials | None = None
    #: Gather facts before a role runs (the playbook decides for itself).
    gather_facts: bool = False
    #: Seconds between drift checks (``drift.interval``: the automation run with ``--check
    #: --diff``); None: no drift checks.
    drift_interval: float | None = None
    #: Run the automation for real when a drift check finds changes (``drift.remediate``).
    drift_remediate: bool = False
    #: ``watchDependentResources``: a change to (or the deletion of) an object a run created
    #: through the bridge's API proxy runs its owner again.
    watch_dependent_resources: bool = True
    #: ``watchClusterScopedResources``: also watch cluster-scoped dependents (tracked by the
    #: Operator SDK's primary-resource annotations).
    watch_cluster_scoped_resources: bool = False
    #: ``blacklist``: dependent kinds never watched, as ``(group, version, kind)``.
    blacklist: tuple[tuple[str, str, str], ...] = ()
    #: ``retry.limit``: retries of a failed run; None: the operator's default.
    retry_limit: int | None = None
    #: ``retry.backoff``: seconds before the first retry (doubled each time); None: default.
    retry_backoff: float | None = None
    #: ``executor``: ``local``, ``warm`` or ``job``; None: the operator's ``--executor``.
    executor: str | None = None
    #: ``job``: the Job of each run when ``executor`` is ``job``; None: the defaults.
    job: JobOptions | None = None
    #: Where the entry came from, for messages: "watches.yaml: entry 2".
    source: str = ""
    # --- argument spec and CRD generation (bridge extensions) ---
    #: The file the argument spec was read from: ``argumentSpec`` of the entry, else the role's
    #: ``meta/argument_specs.yml`` (or ``meta/main.yml``); None when there is none.
    argument_spec: Path | None = None
    #: The role's entry point (``entryPoint``): whose argument spec applies.
    entry_point: str = "main"
    #: Options whose values come from Secrets, as dotted snake_case paths (``db.password``):
    #: ``secretOptions`` plus every ``no_log: true`` option of the argument spec. A resource
    #: gives each as ``<option>From: {secretKeyRef: {name, key}}`` (see bridge.tools.crdgen).
    secret_options: tuple[str, ...] = ()
    #: ``Namespaced`` or ``Cluster`` (``scope``).
    scope: str = "Namespaced"
    #: The CRD's ``shortNames`` (``shortNames``).
    short_names: tuple[str, ...] = ()
    #: The CRD's plural (``plural``); None: derived from the kind (see
    #: bridge.tools.crdgen.plural_of).
    plural: str | None = None
    #: The parsed argument spec of ``entry_point``; None when there is none.
    arguments: EntryPoint | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The identity of the watched kind: ``Kind.group/version``."""
        return f"{self.kind}.{self.group}/{self.version}"


@dataclass(frozen=True)
class ResourceRef:
    """Which object a run is for."""

    api_version: str
    kind: str
    namespace: str | None
    name: str
    uid: str

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{ns}{self.name}"


@dataclass(frozen=True)
class RunSpec:
    """Everything an executor needs for one run; built by :mod:`bridge.ansible.inputs`."""

    run_id: str
    resource: ResourceRef
    generation: int
    trigger: Trigger
    #: The playbook to run, or None when a role is applied (by a generated playbook).
    playbook: Path | None
    #: Variables for ``--extra-vars``; strings from the resource are already marked unsafe.
    extravars: Mapping[str, Any]
    #: Inventory file or folder, or None for the default localhost inventory.
    inventory: Path | None
    #: Where the run keeps its artifacts (rotated per resource).
    artifact_dir: Path
    max_artifacts: int = 20
    timeout: float | None = None
    envvars: Mapping[str, str] = field(default_factory=dict)
    #: The working folder of the run (where ansible.cfg is looked up): the watches file's.
    project_dir: Path | None = None
    #: The role to apply when ``playbook`` is None, on ``hosts``, gathering facts or not.
    role: Path | None = None
    hosts: str = "localhost"
    gather_facts: bool = False
    #: Values resolved from Secrets: redacted from artifacts (never printed: repr=False).
    secrets: tuple[str, ...] = field(default=(), repr=False)
    #: A drift check: run with ``--check --diff``, changing nothing. Only the controller's
    #: drift checks set it; every other run is a real one.
    check: bool = False
    #: Credentials from the watch's ``credentials`` Secret (their values are in ``secrets``).
    credentials: RunCredentials | None = field(default=None, repr=False)
    #: Inventory content (inline, or read from a Secret/ConfigMap) written 0600 for the run;
    #: it replaces ``inventory``.
    inventory_text: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RunCredentials:
    """What a run gets from the watch's ``credentials`` Secret (never printed: repr=False)."""

    ssh_private_key: str | None = field(default=None, repr=False)
    become_password: str | None = field(default=None, repr=False)
    vault_password: str | None = field(default=None, repr=False)
    #: Environment variables of the run (e.g. cloud API keys).
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class HostStats:
    """Per-host task counts, as in Ansible's play recap."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class FailedTask:
    """A task that failed a host (not ignored, not rescued), with a short message."""

    host: str
    play: str
    task: str
    message: str


@dataclass(frozen=True)
class ChangedTask:
    """A task that reported a change on a host (in a check run: one that would change)."""

    host: str
    play: str
    task: str


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run, derived from the runner's events."""

    run_id: str
    status: RunStatus
    rc: int | None = None
    hosts: Mapping[str, HostStats] = field(default_factory=dict)
    failed_tasks: tuple[FailedTask, ...] = ()
    #: Data the playbook published with ``ansible.builtin.set_stats``.
    outputs: Mapping[str, Any] = field(default_factory=dict)
    #: Why the run did not succeed when no task says it (runner error, timeout, cancel).
    message: str = ""
    #: The tasks that reported a change, per host, in the order they ran (names only: a
    #: ``no_log`` result is never read). ``changed`` may count more (see bridge.ansible.results).
    changed_tasks: tuple[ChangedTask, ...] = ()

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())

    @property
    def succeeded(self) -> bool:
        return self.status == "successful"


class RunnerEvent(TypedDict, total=False):
    """One ansible-runner job event, as streamed to the event handler (only the keys we read)."""

    uuid: str
    counter: int
    event: str
    stdout: str
    event_data: dict[str, Any]
    runner_ident: str
    created: str


def plain(value: Any) -> Any:
    """``value`` as plain JSON-like data: mappings to dicts with string keys, sequences to lists
    (for YAML/JSON dumps and API patches of frozen or read-only structures)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
