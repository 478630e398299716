"""The executor section of a watches entry: where runs are carried out, and the Job of each.

Reads ``executor`` (one of :data:`~bridge.model.watch.EXECUTOR_NAMES`) and ``job`` (the
Kubernetes Job of ``executor: job``) into an :class:`~bridge.model.watch.ExecutorChoice`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bridge.config.watches.keys import GROUP_RE, LABEL_RE, KeyReader, type_name
from bridge.model.watch import EXECUTOR_NAMES, ExecutorChoice, JobOptions

_JOB_KEYS = (
    "image",
    "resources",
    "serviceAccount",
    "nodeSelector",
    "tolerations",
    "ttlSecondsAfterFinished",
    "namespace",
)
_RESOURCES_KEYS = ("requests", "limits")
_TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_QUANTITY_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([numkMGTPE]|[KMGTPE]i|[eE][+-]?\d+)?")
_JOB_NAMESPACE_NEEDED = (
    "a cluster-scoped kind with 'executor: job' needs job.namespace: where its runs' Jobs go"
)


def read_executor(keys: KeyReader, entry: Mapping[str, Any], scope: str) -> ExecutorChoice:
    """``executor`` (None: the operator's ``--executor``) and ``job`` (its Job's options), of
    an entry whose kind has ``scope``."""
    executor = entry.get("executor")
    if executor is not None and executor not in EXECUTOR_NAMES:
        keys.fail(
            "executor",
            f"expected one of {', '.join(EXECUTOR_NAMES)}, got {type_name(executor)}",
        )
    needs_namespace = executor == "job" and scope == "Cluster"
    if entry.get("job") is None:
        if needs_namespace:
            keys.fail("job.namespace", _JOB_NAMESPACE_NEEDED)
        return ExecutorChoice(name=executor, job=JobOptions() if executor == "job" else None)
    if executor != "job":
        keys.warn("job", "job applies to 'executor: job' only; this entry does not set it")
    raw = keys.section(entry, "job", "a mapping like {image: ..., resources: ...}", _JOB_KEYS)
    assert raw is not None
    resources = _resources(keys, raw)
    account = keys.string(raw, "serviceAccount", "job.")
    if account is not None and not GROUP_RE.fullmatch(account):
        keys.fail("job.serviceAccount", f"{account!r} is not a ServiceAccount name")
    selector = raw.get("nodeSelector") or {}
    if not isinstance(selector, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in selector.items()
    ):
        keys.fail(
            "job.nodeSelector",
            "expected a mapping of label names to strings (quote numbers and booleans)",
        )
    tolerations = raw.get("tolerations") or []
    if not isinstance(tolerations, list):
        keys.fail(
            "job.tolerations", f"expected a list of tolerations, got {type_name(tolerations)}"
        )
    for i, toleration in enumerate(tolerations):
        _toleration(keys, toleration, f"job.tolerations[{i}]")
    ttl = raw.get("ttlSecondsAfterFinished", 300)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        keys.fail(
            "job.ttlSecondsAfterFinished",
            f"expected an integer of 0 or more, got {type_name(ttl)}",
        )
    namespace = keys.string(raw, "namespace", "job.")
    if namespace is not None and (not LABEL_RE.fullmatch(namespace) or len(namespace) > 63):
        keys.fail("job.namespace", f"{namespace!r} is not a namespace name")
    if namespace is None and needs_namespace:
        keys.fail("job.namespace", _JOB_NAMESPACE_NEEDED)
    return ExecutorChoice(
        name=executor,
        job=JobOptions(
            image=keys.string(raw, "image", "job."),
            resources=resources,
            service_account=account,
            node_selector=dict(selector),
            tolerations=tuple(dict(t) for t in tolerations),
            ttl_seconds_after_finished=ttl,
            namespace=namespace,
        ),
    )


def _resources(keys: KeyReader, job: Mapping[str, Any]) -> dict[str, Any]:
    """``job.resources``: ``{requests, limits}`` of quantities (``500m``, ``1Gi``, 2)."""
    raw = keys.section(
        job,
        "resources",
        "a mapping with requests and/or limits",
        _RESOURCES_KEYS,
        prefix="job.",
    )
    if raw is None:
        return {}
    for part, amounts in raw.items():
        if not isinstance(amounts, dict):
            keys.fail(
                f"job.resources.{part}",
                f"expected a mapping like {{cpu: 1, memory: 1Gi}}, got {type_name(amounts)}",
            )
        for name, amount in amounts.items():
            ok = isinstance(amount, int | float) and not isinstance(amount, bool)
            if not ok and not (isinstance(amount, str) and _QUANTITY_RE.fullmatch(amount)):
                keys.fail(
                    f"job.resources.{part}.{name}",
                    f"{amount!r} is not a quantity like 500m or 1Gi",
                )
    return dict(raw)


def _toleration(keys: KeyReader, value: object, key: str) -> None:
    if not isinstance(value, dict):
        keys.fail(
            key,
            f"expected a mapping like {{key, operator, effect}}, got {type_name(value)}",
        )
    keys.check_keys(value, _TOLERATION_KEYS, f"{key}.")
    operator = value.get("operator", "Equal")
    if operator not in ("Equal", "Exists"):
        keys.fail(f"{key}.operator", f"expected Equal or Exists, got {type_name(operator)}")
    effect = value.get("effect")
    if effect is not None and effect not in _EFFECTS:
        keys.fail(
            f"{key}.effect", f"expected one of {', '.join(_EFFECTS)}, got {type_name(effect)}"
        )
    for name in ("key", "value"):
        if name in value and not isinstance(value[name], str):
            keys.fail(f"{key}.{name}", f"expected a string, got {type_name(value[name])}")
    seconds = value.get("tolerationSeconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
        keys.fail(f"{key}.tolerationSeconds", f"expected an integer, got {type_name(seconds)}")
