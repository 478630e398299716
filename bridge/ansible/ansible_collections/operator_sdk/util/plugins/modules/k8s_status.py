#!/usr/bin/python
"""operator_sdk.util.k8s_status: merge fields and conditions into a resource's status."""

from __future__ import annotations

import copy
import re
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.operator_sdk.util.plugins.module_utils.osdk_k8s import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    AUTH_ARG_SPEC,
    KUBERNETES_IMPORT_ERROR,
    NAME_ARG_SPEC,
    KubeError,
    api_error,
    dynamic_client,
    find_resource,
    get_object,
    now,
)

DOCUMENTATION = r"""
module: k8s_status
short_description: Merge fields and conditions into the status of a Kubernetes resource
version_added: 0.0.1
author: ansible-bridge contributors
description:
  - Writes the C(status) subresource of a Kubernetes object, typically the custom resource an
    operator's role is reconciling. Fields given in I(status) are merged into the current
    status (a JSON merge patch); I(conditions) are merged by C(type).
  - A condition's C(lastTransitionTime) is set to the current time when the condition is new or
    its C(status) changes, and kept as it is while the C(status) stays the same, whatever else
    changes (C(reason), C(message)). A C(lastTransitionTime) given in I(conditions) is used only
    when the condition does transition.
  - Nothing is written when the status already holds what is asked (C(changed=false)).
  - The write carries the object's C(resourceVersion); when another writer got there first, the
    object is read again and the merge redone.
extends_documentation_fragment:
  - operator_sdk.util.osdk_auth_options
  - operator_sdk.util.osdk_name_options
options:
  status:
    description:
      - 'Fields to set in the status: nested dicts are merged into the current ones, other
        values replace them, and a C(null) value removes the field.'
      - One of I(status) or I(conditions) is expected; with neither, nothing changes (unless
        I(replace) is set, which then empties the status).
      - A C(conditions) list under I(status) is merged by C(type) like I(conditions), without
        their validation; it cannot be combined with I(conditions).
    type: dict
  conditions:
    description:
      - Conditions to set in C(status.conditions), merged with the present ones by C(type);
        conditions of other types are kept.
      - Each is validated following the Kubernetes API conventions.
    type: list
    elements: dict
    suboptions:
      type:
        description: The type of the condition, its identity within the list.
        type: str
        required: true
      status:
        description: The status of the condition.
        type: str
        required: true
        choices: ["True", "False", "Unknown"]
      reason:
        description:
          - Why the condition is in this status, one CamelCase word (letters, digits, C(_),
            C(,) and C(:) after the first letter).
        type: str
      message:
        description: A human-readable explanation of the status.
        type: str
      lastHeartbeatTime:
        description: An RFC 3339 date-time.
        type: str
      lastTransitionTime:
        description:
          - An RFC 3339 date-time; used only when the condition transitions (see above). The
            current time when omitted.
        type: str
      observedGeneration:
        description:
          - The C(metadata.generation) the condition was computed for (an ansible-bridge
            addition, as in C(metav1.Condition)).
        type: int
  replace:
    description:
      - If C(true), the whole status is replaced (C(PUT)) by I(status) and I(conditions);
        fields not given are removed. C(lastTransitionTime) is still kept for conditions whose
        C(status) is unchanged.
    type: bool
    default: false
    aliases: [force]
  replace_lists:
    description:
      - 'Lists other than C(conditions): by default a list whose items are all already in the
        current list counts as no change and the current list is kept; any other list
        replaces the current one.'
      - If C(true), a list given replaces the current one whenever they differ.
    type: bool
    default: false
notes:
  - Supports check mode (the result is the object as it would be) and diff mode.
  - The resource must have the status subresource enabled.
"""

EXAMPLES = r"""
- name: Set custom status fields on the resource being reconciled
  operator_sdk.util.k8s_status:
    api_version: apps.example.com/v1alpha1
    kind: TestCR
    name: "{{ ansible_operator_meta.name }}"
    namespace: "{{ ansible_operator_meta.namespace }}"
    status:
      phase: Deploying
      replicas: 3

- name: Report a condition (lastTransitionTime moves only when its status changes)
  operator_sdk.util.k8s_status:
    api_version: apps.example.com/v1alpha1
    kind: TestCR
    name: "{{ ansible_operator_meta.name }}"
    namespace: "{{ ansible_operator_meta.namespace }}"
    conditions:
      - type: Available
        status: "False"
        reason: PingFailed
        message: The service did not respond to a ping

- name: Replace the whole status
  operator_sdk.util.k8s_status:
    api_version: apps.example.com/v1alpha1
    kind: TestCR
    name: my-test
    namespace: testing
    force: true
    status:
      phase: Reset
"""

RETURN = r"""
result:
  description:
    - The object after the write; when nothing changed, the object as it was read. In check
      mode, the object as it would be.
  returned: success
  type: complex
  contains:
    apiVersion:
      description: The object's API version.
      returned: success
      type: str
    kind:
      description: The object's kind.
      returned: success
      type: str
    metadata:
      description: The object's metadata (name, namespace, labels, resourceVersion...).
      returned: success
      type: dict
    spec:
      description: The object's spec.
      returned: success
      type: dict
    status:
      description: The object's status.
      returned: success
      type: dict
"""

CONDITION_SPEC: dict[str, Any] = {
    "type": "list",
    "elements": "dict",
    "options": {
        "type": {"type": "str", "required": True},
        "status": {"type": "str", "required": True, "choices": ["True", "False", "Unknown"]},
        "reason": {"type": "str"},
        "message": {"type": "str"},
        "lastHeartbeatTime": {"type": "str"},
        "lastTransitionTime": {"type": "str"},
        "observedGeneration": {"type": "int"},
    },
}

STATUS_ARG_SPEC: dict[str, Any] = {
    "status": {"type": "dict"},
    "conditions": CONDITION_SPEC,
    "replace": {"type": "bool", "default": False, "aliases": ["force"]},
    "replace_lists": {"type": "bool", "default": False},
}

LTT = "lastTransitionTime"
REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d)?(\.\d+)?([+-]\d\d:\d\d|[Zz])$")
ATTEMPTS = 5  # writes lost to a concurrent writer (409 Conflict) are redone this many times


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = {}
    spec.update(copy.deepcopy(AUTH_ARG_SPEC))
    spec.update(copy.deepcopy(NAME_ARG_SPEC))
    spec.update(copy.deepcopy(STATUS_ARG_SPEC))
    return spec


def validate_conditions(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conditions without unset fields; ValueError for one breaking the API conventions."""
    valid = []
    for given in conditions:
        cond = {k: v for k, v in given.items() if v is not None}
        if not cond.get("type"):
            raise ValueError("a condition's `type` must be set")
        if cond.get("status") not in ("True", "False", "Unknown"):
            raise ValueError(
                f"condition {cond['type']}: `status` must be one of True, False, Unknown, "
                f"not {cond.get('status')!r}"
            )
        if "reason" in cond and not REASON.match(cond["reason"]):
            raise ValueError(
                f"condition {cond['type']}: `reason` must be a single CamelCase word, "
                f"not {cond['reason']!r}"
            )
        for key in ("lastHeartbeatTime", LTT):
            if key in cond:
                if not RFC3339.match(cond[key]):
                    raise ValueError(
                        f"condition {cond['type']}: `{key}` must be an RFC 3339 date-time, "
                        f"not {cond[key]!r}"
                    )
                cond[key] = cond[key][:10] + "T" + cond[key][11:]
        valid.append(cond)
    return valid


def is_condition_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(c, dict) and c.get("type") and "status" in c for c in value
    )


def settle(old: dict[str, Any] | None, new: dict[str, Any], stamp: str) -> dict[str, Any]:
    """``new`` as it is to be stored, given the stored condition of its type (if any)."""
    if isinstance(old, dict) and old.get(LTT):
        if {k: v for k, v in old.items() if k != LTT} == {k: v for k, v in new.items() if k != LTT}:
            return old  # only the time differs: nothing to change
        if old.get("status") == new.get("status"):
            return {**new, LTT: old[LTT]}
    return new if new.get(LTT) else {**new, LTT: stamp}


def _find(conditions: list[Any], type_: str) -> int | None:
    return next(
        (i for i, c in enumerate(conditions) if isinstance(c, dict) and c.get("type") == type_),
        None,
    )


def merge_conditions(old: Any, new: list[dict[str, Any]], stamp: str) -> list[Any]:
    """Conditions merged by type: the given ones settled, the others kept in place."""
    merged = copy.deepcopy(old) if isinstance(old, list) else []
    for cond in new:
        idx = _find(merged, cond["type"])
        if idx is None:
            merged.append(settle(None, cond, stamp))
        else:
            merged[idx] = settle(merged[idx], cond, stamp)
    return merged


def replace_conditions(old: Any, new: list[dict[str, Any]], stamp: str) -> list[Any]:
    """Exactly the given conditions, each keeping its lastTransitionTime if it did not move."""
    old_list = old if isinstance(old, list) else []
    result: list[Any] = []
    for cond in new:
        idx = _find(old_list, cond["type"])
        result.append(settle(None if idx is None else old_list[idx], cond, stamp))
    return result


def merge_value(old: Any, new: Any, replace_lists: bool) -> Any:
    """JSON merge patch semantics, except for lists already contained in the current ones."""
    if isinstance(new, dict):
        merged = copy.deepcopy(old) if isinstance(old, dict) else {}
        for key, value in new.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = merge_value(merged.get(key), value, replace_lists)
        return merged
    if (
        isinstance(new, list)
        and isinstance(old, list)
        and not replace_lists
        and all(item in old for item in new)
    ):
        return copy.deepcopy(old)
    return copy.deepcopy(new)


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    return copy.deepcopy(value)


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch turning ``old`` into ``new``."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key in old and old[key] == value:
            continue
        if isinstance(value, dict) and isinstance(old.get(key), dict):
            patch[key] = merge_patch(old[key], value)
        else:
            patch[key] = value
    return patch


def desired_status(
    current: dict[str, Any],
    fields: dict[str, Any],
    conditions: list[dict[str, Any]] | None,
    *,
    replace: bool,
    replace_lists: bool,
    stamp: str,
) -> dict[str, Any]:
    """The status to store, from the current one and the module's arguments."""
    if replace:
        wanted = drop_nulls(fields)
        if conditions is not None:
            wanted["conditions"] = replace_conditions(current.get("conditions"), conditions, stamp)
        return dict(wanted)
    merged = merge_value(current, fields, replace_lists)
    if conditions is not None:
        merged["conditions"] = merge_conditions(current.get("conditions"), conditions, stamp)
    return dict(merged)


class StatusWriter:
    def __init__(self, module: Any) -> None:
        self.module = module
        params = module.params
        self.kind: str = params["kind"]
        self.api_version: str = params["api_version"]
        self.name: str = params["name"]
        self.namespace: str | None = params["namespace"]
        self.replace: bool = params["replace"]
        self.replace_lists: bool = params["replace_lists"]
        self.fields: dict[str, Any] = copy.deepcopy(params["status"] or {})
        self.conditions: list[dict[str, Any]] | None = None
        if params["conditions"] is not None:
            if "conditions" in self.fields:
                module.fail_json(
                    msg="You cannot specify conditions in both the 'status' and 'conditions' "
                    "parameters"
                )
            try:
                self.conditions = validate_conditions(params["conditions"])
            except ValueError as exc:
                module.fail_json(
                    msg="The specified conditions failed to validate", error=to_native(exc)
                )
        elif is_condition_list(self.fields.get("conditions")):
            given = self.fields.pop("conditions")
            self.conditions = [
                {k: v for k, v in c.items() if v is not None} for c in given if isinstance(c, dict)
            ]
        self.stamp = now()

    def run(self) -> dict[str, Any]:
        client = dynamic_client(self.module.params, self.module.tmpdir)
        resource = find_resource(client, self.api_version, self.kind)
        if not resource.subresources or "status" not in resource.subresources:
            raise KubeError(
                f"Resource {resource.api_version}.{resource.kind} does not support the status "
                "subresource"
            )
        for attempt in range(1, ATTEMPTS + 1):
            instance = get_object(client, resource, self.name, self.namespace)
            try:
                return self.write(resource, instance)
            except Exception as exc:
                if getattr(exc, "status", None) == 409 and attempt < ATTEMPTS:
                    continue  # someone else wrote the object meanwhile: merge again
                if getattr(exc, "status", None) is None:
                    raise
                raise KubeError(
                    f"Failed to {'replace' if self.replace else 'patch'} the status: "
                    f"{getattr(exc, 'reason', exc)}",
                    error=api_error(exc),
                ) from exc
        raise AssertionError("unreachable")

    def write(self, resource: Any, instance: dict[str, Any]) -> dict[str, Any]:
        current = instance.get("status")
        current = current if isinstance(current, dict) else {}
        if not self.replace and not self.fields and self.conditions is None:
            return {"changed": False, "result": instance}
        wanted = desired_status(
            current,
            self.fields,
            self.conditions,
            replace=self.replace,
            replace_lists=self.replace_lists,
            stamp=self.stamp,
        )
        if wanted == current:
            return {"changed": False, "result": instance}
        outcome: dict[str, Any] = {"changed": True}
        if self.module._diff:
            outcome["diff"] = {"before": {"status": current}, "after": {"status": wanted}}
        if self.module.check_mode:
            outcome["result"] = {**instance, "status": wanted}
            return outcome
        namespace = self.namespace if resource.namespaced else None
        if self.replace:
            body = {**instance, "status": wanted}
            written = resource.status.replace(body=body, name=self.name, namespace=namespace)
        else:
            body = {
                "metadata": {"resourceVersion": instance["metadata"]["resourceVersion"]},
                "status": merge_patch(current, wanted),
            }
            written = resource.status.patch(
                body=body,
                name=self.name,
                namespace=namespace,
                content_type="application/merge-patch+json",
            )
        outcome["result"] = dict(written.to_dict())
        return outcome


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if KUBERNETES_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    try:
        module.exit_json(**StatusWriter(module).run())
    except KubeError as exc:
        module.fail_json(msg=exc.msg, **exc.details)


if __name__ == "__main__":
    main()
