"""The OpenAPI v3 schema of ``.status``: every key :mod:`bridge.controller.status` writes.

It lives next to the code that writes the status so that the two change together;
:mod:`bridge.tools.crdgen` puts it into every generated CRD, and a unit test builds real status
patches and checks each key they write against it. Pure data: nothing here talks to the API.

``currentRun``, ``lastRun`` and ``lastCheck`` keep room for more keys
(``x-kubernetes-preserve-unknown-fields``): the scheduler adds its own bookkeeping to ``lastRun``
(the annotations digest, a run request, ``requeueAfter``), and a resource written by an older
bridge keeps what it has. With ``manageStatus: false`` the playbook owns the status, so it is
free-form as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["status_schema"]

_TIME: Mapping[str, Any] = {"type": "string", "format": "date-time"}

_RESULT = {
    "type": "string",
    "description": "successful, failed, canceled, timeout or error.",
}


def _run_schema(description: str) -> dict[str, Any]:
    """A run record: ``currentRun`` (its first keys only) and ``lastRun``."""
    return {
        "type": "object",
        "description": description,
        "properties": {
            "changed": {"type": "integer", "description": "Tasks that changed something."},
            "failedTasks": {
                "type": "array",
                "description": "Tasks that failed a host (the first few).",
                "items": {
                    "type": "object",
                    "properties": {
                        "host": {"type": "string"},
                        "message": {"type": "string"},
                        "play": {"type": "string"},
                        "task": {"type": "string"},
                    },
                },
            },
            "finishedAt": dict(_TIME),
            "generation": {"type": "integer", "description": "The generation the run was for."},
            "hosts": {
                "type": "object",
                "description": "Task counts per host (ok, changed, failed, skipped...).",
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "id": {"type": "string"},
            "result": dict(_RESULT),
            "startedAt": dict(_TIME),
            "trigger": {"type": "string", "description": "What started the run."},
        },
        "x-kubernetes-preserve-unknown-fields": True,
    }


def _check_schema(description: str) -> dict[str, Any]:
    """A drift check record: ``lastCheck``."""
    return {
        "type": "object",
        "description": description,
        "properties": {
            "changed": {
                "type": "integer",
                "description": "Changes the check found it would make.",
            },
            "drifted": {
                "type": "array",
                "description": "Tasks that would change a host (the first few, in the order "
                "they ran).",
                "items": {
                    "type": "object",
                    "properties": {
                        "host": {"type": "string"},
                        "task": {"type": "string"},
                    },
                },
            },
            "finishedAt": dict(_TIME),
            "generation": {
                "type": "integer",
                "description": "The generation the check was for.",
            },
            "id": {"type": "string"},
            "result": {
                "type": "string",
                "description": "Of the check run itself: successful, failed, canceled, timeout "
                "or error.",
            },
            "startedAt": dict(_TIME),
        },
        "x-kubernetes-preserve-unknown-fields": True,
    }


def _condition_schema() -> dict[str, Any]:
    """One of ``conditions``: kstatus' and the Operator SDK's (with its ``ansibleResult``)."""
    return {
        "type": "object",
        "properties": {
            "ansibleResult": {
                "type": "object",
                "description": "The Operator SDK's run counts (its Running and Failure).",
                "properties": {
                    "changed": {"type": "integer"},
                    "completion": {"type": "string"},
                    "failures": {"type": "integer"},
                    "ok": {"type": "integer"},
                    "skipped": {"type": "integer"},
                },
            },
            "lastTransitionTime": dict(_TIME),
            "message": {"type": "string"},
            "observedGeneration": {"type": "integer"},
            "reason": {"type": "string"},
            "status": {"type": "string", "description": "True, False or Unknown."},
            "type": {
                "type": "string",
                "description": "Ready, Reconciling, Stalled..., and the Operator SDK's Running, "
                "Successful, Failure.",
            },
        },
    }


def status_schema(manage_status: bool = True) -> dict[str, Any]:
    """The ``status`` schema of a watched kind (free-form besides when the playbook manages the
    status itself, ``manage_status`` False). A new value at each call: callers may change it."""
    schema: dict[str, Any] = {
        "type": "object",
        "description": "Written by ansible-bridge: the outcome of the playbook's runs.",
        "properties": {
            "conditions": {
                "type": "array",
                "description": "Ready, Reconciling and Stalled (kstatus), and others.",
                "items": _condition_schema(),
            },
            "currentRun": _run_schema("The run in flight, if any."),
            "lastCheck": _check_schema(
                "The last drift check (a --check --diff run) and what it found would change."
            ),
            "lastRun": _run_schema("The last run that finished."),
            "observedGeneration": {
                "type": "integer",
                "description": "The last generation the bridge has handled.",
            },
            "outputs": {
                "type": "object",
                "description": "What the last successful run published with set_stats.",
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "runs": {
                "type": "array",
                "description": "The last few runs, newest first.",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
    }
    if not manage_status:
        schema["description"] = "Written by the playbook (manageStatus: false) and ansible-bridge."
        schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema
