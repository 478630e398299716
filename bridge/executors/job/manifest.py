"""The Kubernetes Job of one run (pure): its manifest, its worker's command line, and the
ansible-runner arguments transmitted to that worker.

Labels and annotations are :mod:`bridge.model.annotations`' names: the resource (uid,
generation) and the run on the Job and its pod, the watch, the resource and the trigger as
annotations of the Job.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bridge.model.annotations import (
    JOB_RESOURCE,
    JOB_TRIGGER,
    JOB_WATCH,
    LABEL_GENERATION,
    LABEL_RESOURCE_UID,
    LABEL_RUN_ID,
)
from bridge.model.records import RunSpec
from bridge.model.watch import JobOptions

#: The Kubernetes label that marks every Job (and its pod) the executor creates.
MANAGED_BY = "app.kubernetes.io/managed-by"
#: The selector of the executor's Jobs.
SELECTOR = f"{MANAGED_BY}=ansible-bridge"
#: The worker's container, and where it unpacks the run (an in-memory emptyDir at /tmp, the
#: image's HOME: the root filesystem stays read-only).
CONTAINER = "worker"
POD_PRIVATE_DIR = "/tmp/runner"
#: Seconds the Job may outlive the run's own timeout before Kubernetes stops it (a backstop
#: when the operator is gone).
DEADLINE_MARGIN = 300

#: ansible-runner arguments that stay with the operator: the processor's side of the run.
_NOT_TRANSMITTED = frozenset(
    {
        "private_data_dir",
        "artifact_dir",
        "rotate_artifacts",
        "event_handler",
        "status_handler",
        "artifacts_handler",
        "finished_callback",
        "cancel_callback",
    }
)
_NAME_RE = re.compile(r"[^a-z0-9-]+")


def job_name(run_id: str) -> str:
    """The Job's name for a run: ``ansible-bridge-run-<run id>`` (a DNS label)."""
    return ("ansible-bridge-run-" + _NAME_RE.sub("-", run_id.lower())).strip("-")[:63]


def worker_command(private_dir: str) -> list[str]:
    """The worker's command line: unpack the transmit stream from stdin into ``private_dir``,
    run it, stream the results to stdout (removing the folder at the end). Its stderr goes to
    a file beside the folder, not into the pod log: the log is the worker stream."""
    return [
        "/bin/sh",
        "-c",
        f'exec ansible-runner worker --private-data-dir "{private_dir}" --delete '
        f'2>>"{private_dir}.stderr"',
    ]


def job_manifest(
    spec: RunSpec,
    options: JobOptions,
    *,
    image: str,
    namespace: str,
    watch_key: str,
) -> dict[str, Any]:
    """The Job of one run (pure): one pod, never restarted or retried, whose container reads
    the run from its stdin; labels tie it to the resource (uid, generation) and the run."""
    labels = {
        MANAGED_BY: "ansible-bridge",
        LABEL_RESOURCE_UID: spec.resource.uid,
        LABEL_GENERATION: str(spec.generation),
        LABEL_RUN_ID: spec.run_id,
    }
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": options.image or image,
        "command": worker_command(POD_PRIVATE_DIR),
        "stdin": True,
        "stdinOnce": True,
        "tty": False,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if options.resources:
        container["resources"] = dict(options.resources)
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        # In memory: the run's extravars (Secrets resolved) never reach the node's disk.
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}],
    }
    if options.service_account:
        pod["serviceAccountName"] = options.service_account
    if options.node_selector:
        pod["nodeSelector"] = dict(options.node_selector)
    if options.tolerations:
        pod["tolerations"] = [dict(t) for t in options.tolerations]
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": options.ttl_seconds_after_finished,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
    }
    if spec.timeout is not None:
        job_spec["activeDeadlineSeconds"] = math.ceil(spec.timeout) + DEADLINE_MARGIN
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(spec.run_id),
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                JOB_WATCH: watch_key,
                JOB_RESOURCE: str(spec.resource),
                JOB_TRIGGER: spec.trigger,
            },
        },
        "spec": job_spec,
    }


def transmit_options(
    options: Mapping[str, Any], private: Path, remote: str, *, drop_env: Iterable[str] = ()
) -> dict[str, Any]:
    """The ansible-runner arguments sent to the worker: those of a local run (see
    :func:`~bridge.executors.plumbing.runner_options`) less the processor's own and the
    ``drop_env`` variables, with every path into the private dir (the role playbook, the
    project folder of a role run, credential files in ``envvars`` and ``cmdline``) moved to
    where the worker unpacks it. The inventory stays: ansible-runner makes it relative to the
    private dir itself."""
    root = os.path.abspath(private)
    options = dict(options)
    if drop_env and isinstance(options.get("envvars"), Mapping):
        options["envvars"] = {k: v for k, v in options["envvars"].items() if k not in drop_env}

    def move(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(rf"{re.escape(root)}(?=/|$|\s|')", lambda _: remote, value)
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    return {
        k: (v if k == "inventory" else move(v))
        for k, v in options.items()
        if k not in _NOT_TRANSMITTED
    }
