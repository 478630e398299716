"""The parsed watches.yaml entry (:class:`Watch`) as nested records, one per section of an entry.

Built by :mod:`bridge.config.watches`; read by everything below the CLI. Sections: the watched
kind, the automation, the run policy, dependents, the executor and the CRD options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.model.names import plural_of

#: The executors a watch or the operator can name (``executor``, ``--executor``).
EXECUTOR_NAMES = ("local", "warm", "job")
#: The key of a Secret or ConfigMap that holds an inventory, when ``key`` is not given.
DEFAULT_INVENTORY_KEY = "inventory"


@dataclass(frozen=True)
class Option:
    """One option of an entry point (or a sub-option of a dict option), as Ansible reads it."""

    name: str
    #: As written (``str`` when absent); may be a type Ansible does not know.
    type: str = "str"
    required: bool = False
    #: The documented default; meaningful only when ``has_default``.
    default: Any = None
    has_default: bool = False
    #: Allowed values (for a list: of its elements); empty when any value goes.
    choices: tuple[Any, ...] = ()
    #: The type of a list's elements; None when not given.
    elements: str | None = None
    #: Paragraphs, as written (Ansible markup such as ``C(...)`` included).
    description: tuple[str, ...] = ()
    no_log: bool = False
    #: Sub-options (of a ``dict``, or of each element of a ``list``); None: no ``options``.
    options: tuple[Option, ...] | None = None

    @property
    def checks_options(self) -> bool:
        """Whether Ansible validates values against :attr:`options`: only for a ``dict`` or a
        ``list`` of ``dict``; elsewhere they only document the value's shape."""
        return self.options is not None and (
            self.type == "dict" or (self.type == "list" and self.elements == "dict")
        )


@dataclass(frozen=True)
class EntryPoint:
    """One entry point of an argument spec: its documentation and its options."""

    name: str
    short_description: str = ""
    description: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    #: The file the spec was read from (for messages).
    source: str = ""


@dataclass(frozen=True)
class InventorySource:
    """A non-path ``inventory``: inline ``hosts``, or a key of a Secret or ConfigMap."""

    hosts: Mapping[str, Any] | None = None
    secret: str | None = None
    config_map: str | None = None
    key: str = DEFAULT_INVENTORY_KEY

    def describe(self) -> str:
        if self.secret is not None:
            return f"Secret {self.secret} (key '{self.key}')"
        if self.config_map is not None:
            return f"ConfigMap {self.config_map} (key '{self.key}')"
        return "inline hosts"


@dataclass(frozen=True)
class Credentials:
    """A watch's ``credentials``: which Secret, and which of its keys feed what."""

    secret: str | None = None
    secret_field: str | None = None
    ssh_private_key: str | None = None
    become_password: str | None = None
    vault_password: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)


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
class WatchedKind:
    """What is watched: the kind, its CRD names and scope, and which of its resources run."""

    group: str
    version: str
    kind: str
    #: The CRD's plural (``plural``); None: derived from the kind (:func:`plural_of`).
    plural: str | None = None
    #: ``Namespaced`` or ``Cluster`` (``scope``).
    scope: str = "Namespaced"
    #: The CRD's ``shortNames`` (``shortNames``).
    short_names: tuple[str, ...] = ()
    #: A Kubernetes label selector ({matchLabels, matchExpressions}); only matching resources run.
    selector: Mapping[str, Any] | None = None

    @property
    def plural_name(self) -> str:
        """The resource name in API paths: ``plural`` when given, else derived from the kind."""
        return self.plural or plural_of(self.kind)


@dataclass(frozen=True)
class Automation:
    """What runs for a resource, and with what: ``playbook`` or ``role``, variables, inventory,
    credentials, the finalizer's automation."""

    playbook: Path | None = None
    role: Path | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    finalizer: FinalizerSpec | None = None
    #: Gather facts before a role runs (the playbook decides for itself).
    gather_facts: bool = False
    #: Spec keys become snake_case variables (``snakeCaseParameters``).
    snake_case_parameters: bool = True
    #: Strings from a resource are marked unsafe: never templated (``markUnsafe``).
    mark_unsafe: bool = True
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


@dataclass(frozen=True)
class RunPolicy:
    """When runs happen and what they leave: period, retries, drift checks, status, artifacts."""

    #: Seconds between periodic runs (``reconcilePeriod``); None: none.
    reconcile_period: float | None = None
    #: The bridge writes the resource's status (``manageStatus``).
    manage_status: bool = True
    #: A change of annotations runs the resource again (``watchAnnotationsChanges``).
    watch_annotations_changes: bool = False
    #: Run folders kept per resource (``maxRunnerArtifacts``).
    max_runner_artifacts: int = 20
    #: ``retry.limit``: retries of a failed run; None: the operator's default.
    retry_limit: int | None = None
    #: ``retry.backoff``: seconds before the first retry (doubled each time); None: default.
    retry_backoff: float | None = None
    #: Seconds between drift checks (``drift.interval``: the automation run with ``--check
    #: --diff``); None: no drift checks.
    drift_interval: float | None = None
    #: Run the automation for real when a drift check finds changes (``drift.remediate``).
    drift_remediate: bool = False


@dataclass(frozen=True)
class DependentsPolicy:
    """Which objects a run created are watched, so that their change runs the owner again."""

    #: ``watchDependentResources``: a change to (or the deletion of) an object a run created
    #: through the bridge's API proxy runs its owner again.
    enabled: bool = True
    #: ``watchClusterScopedResources``: also watch cluster-scoped dependents (tracked by the
    #: Operator SDK's primary-resource annotations).
    cluster_scoped: bool = False
    #: ``blacklist``: dependent kinds never watched, as ``(group, version, kind)``.
    blacklist: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class ExecutorChoice:
    """Where runs are carried out (``executor``, and ``job`` for ``executor: job``)."""

    #: ``local``, ``warm`` or ``job`` (:data:`EXECUTOR_NAMES`); None: the operator's
    #: ``--executor``.
    name: str | None = None
    #: The Job of each run when ``name`` is ``job``; None: the defaults.
    job: JobOptions | None = None


@dataclass(frozen=True)
class CrdOptions:
    """What the CRD generator reads: the argument spec, its entry point, the secret options."""

    #: The file the argument spec was read from: ``argumentSpec`` of the entry, else the role's
    #: ``meta/argument_specs.yml`` (or ``meta/main.yml``); None when there is none.
    argument_spec: Path | None = None
    #: The role's entry point (``entryPoint``): whose argument spec applies.
    entry_point: str = "main"
    #: Options whose values come from Secrets, as dotted snake_case paths (``db.password``):
    #: ``secretOptions`` plus every ``no_log: true`` option of the argument spec. A resource
    #: gives each as ``<option>From: {secretKeyRef: {name, key}}`` (see bridge.tools.crdgen).
    secret_options: tuple[str, ...] = ()
    #: The parsed argument spec of ``entry_point``; None when there is none.
    arguments: EntryPoint | None = None


@dataclass(frozen=True)
class Watch:
    """One validated watches.yaml entry: a kind and the automation that reconciles it, in the
    sections of the entry. Paths are absolute (resolved against the watches file's folder at
    load time); durations are in seconds."""

    resource: WatchedKind
    automation: Automation = field(default_factory=Automation)
    policy: RunPolicy = field(default_factory=RunPolicy)
    dependents: DependentsPolicy = field(default_factory=DependentsPolicy)
    executor: ExecutorChoice = field(default_factory=ExecutorChoice)
    crd: CrdOptions = field(default_factory=CrdOptions)
    #: Where the entry came from, for messages: "watches.yaml: entry 2".
    source: str = ""

    @property
    def group(self) -> str:
        return self.resource.group

    @property
    def version(self) -> str:
        return self.resource.version

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def plural(self) -> str:
        """The resource name in API paths (from :attr:`WatchedKind.plural_name`)."""
        return self.resource.plural_name

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The identity of the watched kind: ``Kind.group/version``."""
        return f"{self.kind}.{self.group}/{self.version}"
