#!/usr/bin/python
"""operator_sdk.util.k8s_event: record a Kubernetes Event about an object."""

from __future__ import annotations

import copy
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.operator_sdk.util.plugins.module_utils.osdk_k8s import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    AUTH_ARG_SPEC,
    KUBERNETES_IMPORT_ERROR,
    KubeError,
    api_error,
    dynamic_client,
    find_resource,
    now,
)

DOCUMENTATION = r"""
module: k8s_event
short_description: Record a Kubernetes Event about an object
version_added: 0.0.1
author: ansible-bridge contributors
description:
  - Creates a core/v1 Event named I(name) in I(namespace), about I(involvedObject); it shows in
    C(kubectl get events) and C(kubectl describe) of that object.
  - When an Event of that name already exists with the same I(reason), it is updated instead
    and counts one more occurrence (C(count) + 1, C(firstTimestamp) kept, C(lastTimestamp)
    now); with another reason it starts again at C(count=1).
  - The involved object's C(uid) and C(resourceVersion) are looked up and filled in when it
    exists.
extends_documentation_fragment:
  - operator_sdk.util.osdk_auth_options
options:
  state:
    description:
      - C(present) records the Event; C(absent) deletes the Event named I(name) if there is one.
    type: str
    choices: [present, absent]
    default: present
  name:
    description:
      - Name of the Event object.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the Event; the involved object's namespace for a namespaced object.
    type: str
    required: true
  merge_type:
    description:
      - Accepted for compatibility with the Operator SDK's collection and not used (an Event
        is always written whole).
    type: list
    elements: str
    choices: [json, merge, strategic-merge]
  message:
    description:
      - A human-readable description of what happened.
    type: str
    required: true
  reason:
    description:
      - A short, machine-readable reason (CamelCase by convention), e.g. C(ScalingUp).
    type: str
    required: true
  reportingComponent:
    description:
      - Name of the controller that emitted the Event, e.g. C(example.com/my-operator).
    type: str
  type:
    description:
      - Type of the Event. C(Normal) when omitted.
    type: str
    choices: [Normal, Warning]
  source:
    description:
      - The component reporting the Event.
    type: dict
    suboptions:
      component:
        description: Name of the reporting component.
        type: str
        required: true
  involvedObject:
    description:
      - The object the Event is about.
    type: dict
    suboptions:
      apiVersion:
        description: API version of the object.
        type: str
        required: true
      kind:
        description: Kind of the object.
        type: str
        required: true
      name:
        description: Name of the object.
        type: str
        required: true
      namespace:
        description: Namespace of the object.
        type: str
        required: true
  appendTimestamp:
    description:
      - If C(true), a unique suffix (C(.<hex nanoseconds since the epoch>), as Kubernetes'
        own event recorders do) is appended to I(name), so every call creates a new Event.
    type: bool
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Tell the resource's readers that a backup was taken
  operator_sdk.util.k8s_event:
    name: "{{ ansible_operator_meta.name }}-backup"
    namespace: "{{ ansible_operator_meta.namespace }}"
    reason: BackupCompleted
    message: "Backup {{ backup_id }} written to {{ bucket }}"
    type: Normal
    reportingComponent: example.com/backup-operator
    source:
      component: backup-operator
    involvedObject:
      apiVersion: example.com/v1alpha1
      kind: Database
      name: "{{ ansible_operator_meta.name }}"
      namespace: "{{ ansible_operator_meta.namespace }}"

- name: One new Event per call
  operator_sdk.util.k8s_event:
    name: restart
    namespace: default
    reason: Restarted
    message: The service was restarted
    appendTimestamp: true
    involvedObject:
      apiVersion: v1
      kind: Service
      name: web
      namespace: default
"""

RETURN = r"""
result:
  description:
    - The Event as stored (in check mode, as it would be written; for C(state=absent), the
      deleted Event, or nothing).
  returned: success
  type: complex
  contains:
    metadata:
      description: The Event's metadata (name, namespace...).
      returned: success
      type: dict
    count:
      description: How many times this Event occurred.
      returned: success
      type: int
    message:
      description: The description of what happened.
      returned: success
      type: str
    reason:
      description: The machine-readable reason.
      returned: success
      type: str
    type:
      description: C(Normal) or C(Warning).
      returned: success
      type: str
    firstTimestamp:
      description: When the Event first occurred.
      returned: success
      type: str
    lastTimestamp:
      description: When the Event last occurred.
      returned: success
      type: str
    involvedObject:
      description: The object the Event is about.
      returned: success
      type: dict
    reportingComponent:
      description: The controller that emitted the Event.
      returned: success
      type: str
    source:
      description: The component reporting the Event.
      returned: success
      type: dict
"""

EVENT_ARG_SPEC: dict[str, Any] = {
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "merge_type": {
        "type": "list",
        "elements": "str",
        "choices": ["json", "merge", "strategic-merge"],
    },
    "message": {"type": "str", "required": True},
    "reason": {"type": "str", "required": True},
    "reportingComponent": {"type": "str"},
    "type": {"type": "str", "choices": ["Normal", "Warning"]},
    "appendTimestamp": {"type": "bool"},
    "source": {
        "type": "dict",
        "options": {"component": {"type": "str", "required": True}},
    },
    "involvedObject": {
        "type": "dict",
        "options": {
            "apiVersion": {"type": "str", "required": True},
            "kind": {"type": "str", "required": True},
            "name": {"type": "str", "required": True},
            "namespace": {"type": "str", "required": True},
        },
    },
}
ATTEMPTS = 3  # an Event recorded concurrently by another writer (409 Conflict) is retried


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = {}
    spec.update(copy.deepcopy(AUTH_ARG_SPEC))
    spec.update(copy.deepcopy(EVENT_ARG_SPEC))
    return spec


def event_name(name: str, append_timestamp: bool) -> str:
    return f"{name}.{time.time_ns():x}" if append_timestamp else name


def involved_object(client: Any, given: dict[str, Any] | None, module: Any) -> dict[str, Any]:
    """The involvedObject reference, with the object's uid and resourceVersion if it exists."""
    if not given:
        return {}
    ref = {k: v for k, v in given.items() if v is not None}
    try:
        resource = find_resource(client, ref["apiVersion"], ref["kind"])
        found = client.get(
            resource,
            name=ref["name"],
            namespace=ref.get("namespace") if resource.namespaced else None,
        ).to_dict()
    except KubeError as exc:
        module.warn(f"involvedObject: {exc.msg}")
        return ref
    except Exception as exc:
        if getattr(exc, "status", None) != 404:
            module.warn(f"involvedObject: cannot read it: {getattr(exc, 'reason', exc)}")
        return ref
    metadata = found.get("metadata") or {}
    ref["uid"] = metadata.get("uid")
    ref["resourceVersion"] = metadata.get("resourceVersion")
    return {k: v for k, v in ref.items() if v is not None}


def read_event(events: Any, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return dict(events.get(name=name, namespace=namespace).to_dict())
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise KubeError(
            f"Failed to read Event {namespace}/{name}: {getattr(exc, 'reason', exc)}",
            error=api_error(exc),
        ) from exc


def record(module: Any) -> dict[str, Any]:
    params = module.params
    client = dynamic_client(params, module.tmpdir)
    events = find_resource(client, "v1", "Event")
    namespace: str = params["namespace"]
    name = event_name(params["name"], bool(params["appendTimestamp"]))
    prior = None if params["appendTimestamp"] else read_event(events, name, namespace)

    if params["state"] == "absent":
        if prior is None:
            return {"changed": False, "result": {}}
        if not module.check_mode:
            try:
                events.delete(name=name, namespace=namespace)
            except Exception as exc:
                if getattr(exc, "status", None) != 404:
                    raise KubeError(
                        f"Unable to delete event: {getattr(exc, 'reason', exc)}",
                        error=api_error(exc),
                    ) from exc
        return {"changed": True, "result": prior}

    for attempt in range(1, ATTEMPTS + 1):
        try:
            return write(module, client, events, name, prior)
        except Exception as exc:
            if getattr(exc, "status", None) == 409 and attempt < ATTEMPTS:
                # Recorded by someone else meanwhile: count on from theirs.
                prior = read_event(events, name, namespace)
                continue
            if getattr(exc, "status", None) is None:
                raise
            raise KubeError(
                f"Unable to create event: {getattr(exc, 'reason', exc)}", error=api_error(exc)
            ) from exc
    raise AssertionError("unreachable")


def write(
    module: Any, client: Any, events: Any, name: str, prior: dict[str, Any] | None
) -> dict[str, Any]:
    """Create the Event, or count one more occurrence of ``prior``."""
    params = module.params
    namespace: str = params["namespace"]
    stamp = now()
    count, first = 1, stamp
    if prior is not None and prior.get("reason") == params["reason"]:
        count = int(prior.get("count") or 1) + 1
        first = prior.get("firstTimestamp") or stamp
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "message": params["message"],
        "reason": params["reason"],
        "type": params["type"] or "Normal",
        "count": count,
        "firstTimestamp": first,
        "lastTimestamp": stamp,
        "involvedObject": involved_object(client, params["involvedObject"], module),
    }
    if params["reportingComponent"]:
        body["reportingComponent"] = params["reportingComponent"]
    if params["source"]:
        body["source"] = {k: v for k, v in params["source"].items() if v is not None}
    if module.check_mode:
        return {"changed": True, "result": body}
    if prior is None:
        written = events.create(body=body, namespace=namespace)
    else:
        body["metadata"]["resourceVersion"] = prior["metadata"]["resourceVersion"]
        written = events.replace(body=body, name=name, namespace=namespace)
    return {"changed": True, "result": dict(written.to_dict())}


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if KUBERNETES_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    try:
        module.exit_json(**record(module))
    except KubeError as exc:
        module.fail_json(msg=exc.msg, **exc.details)


if __name__ == "__main__":
    main()
