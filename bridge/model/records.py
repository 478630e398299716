"""Immutable records passed between the bridge's layers: the mapping, a run's inputs and outcome.

Raw payloads from outside (Kubernetes bodies, ansible-runner events) stay plain mappings typed
with TypedDicts; everything the bridge derives from them is a frozen dataclass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

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
    #: Seconds after which the resource is to run again, asked for by the run's first
    #: ``operator_sdk.util.requeue_after`` task (0: no timed run); None: it asked nothing.
    requeue_after: float | None = None

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
