"""Secret references in a resource's spec: find them, resolve them, keep their values out of sight.

A spec field ``<name>From: {secretKeyRef: {name, key}}`` (the shape the generated CRDs give
``no_log`` and ``secretOptions`` options, and Kubernetes' own ``valueFrom`` convention) stands
for the Secret's value, which the playbook receives as ``<name>``. Only Secrets of the resource's
own namespace can be read. Values are known only to the run: they are redacted from every text
the bridge writes (status, Events, logs) and scrubbed from the run's artifacts, in every form
they take on the way (:mod:`bridge.ansible.redaction`, whose functions are re-exported here).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.ansible.redaction import (
    REDACTED,
    Redactor,
    redact,
    redact_data,
    redact_result,
    scrub_tree,
)
from bridge.model.errors import PermanentError

__all__ = [
    "REDACTED",
    "Redactor",
    "Ref",
    "SecretReader",
    "find_refs",
    "redact",
    "redact_data",
    "redact_result",
    "resolve",
    "scrub_tree",
    "where",
]

#: Reads a Secret's ``data`` (base64 values) by namespace and name; None if it does not exist.
SecretReader = Callable[[str, str], Awaitable[Mapping[str, str] | None]]


@dataclass(frozen=True)
class Ref:
    """One reference found in a spec: where it is, and what it points at."""

    path: tuple[str | int, ...]  # path of the ``...From`` field
    secret: str
    key: str
    namespace: str | None = None  # only if the resource tried to name one


def find_refs(spec: Any, path: tuple[str | int, ...] = ()) -> list[Ref]:
    """Every ``<name>From: {secretKeyRef: {...}}`` in ``spec``, depth first."""
    refs: list[Ref] = []
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            ref = _as_ref(key, value, path)
            if ref is not None:
                refs.append(ref)
            else:
                refs.extend(find_refs(value, (*path, key)))
    elif isinstance(spec, list):
        for index, item in enumerate(spec):
            refs.extend(find_refs(item, (*path, index)))
    return refs


def _as_ref(key: Any, value: Any, path: tuple[str | int, ...]) -> Ref | None:
    if not (isinstance(key, str) and key.endswith("From") and len(key) > 4):
        return None
    if not isinstance(value, Mapping) or set(value) != {"secretKeyRef"}:
        return None
    ref = value["secretKeyRef"]
    if not isinstance(ref, Mapping):
        return None
    name, secret_key = ref.get("name"), ref.get("key")
    if not isinstance(name, str) or not isinstance(secret_key, str):
        return None
    namespace = ref.get("namespace")
    return Ref((*path, key), name, secret_key, namespace if isinstance(namespace, str) else None)


def where(ref: Ref) -> str:
    return "spec." + ".".join(str(p) for p in ref.path)


async def resolve(
    spec: Mapping[str, Any], namespace: str | None, read: SecretReader
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``spec`` with each reference replaced by its value under the name without ``From``, and
    the values (to redact). Raises PermanentError naming the field, Secret and key (never a
    value) when a reference cannot be resolved."""
    refs = find_refs(spec)
    if not refs:
        return dict(spec), ()
    cache: dict[str, Mapping[str, str] | None] = {}
    resolved: dict[str, Any] = _copy(spec)
    values: list[str] = []
    for ref in refs:
        if namespace is None:
            raise PermanentError(
                f"{where(ref)}: a cluster-scoped resource cannot reference Secrets",
                reason="SecretNotAllowed",
            )
        if ref.namespace is not None and ref.namespace != namespace:
            raise PermanentError(
                f"{where(ref)}: Secret {ref.namespace}/{ref.secret} is in another namespace; "
                f"only Secrets of {namespace} can be used",
                reason="SecretNotAllowed",
            )
        if ref.secret not in cache:
            cache[ref.secret] = await read(namespace, ref.secret)
        data = cache[ref.secret]
        if data is None:
            raise PermanentError(
                f"{where(ref)}: Secret {namespace}/{ref.secret} does not exist",
                reason="SecretNotFound",
            )
        if ref.key not in data:
            raise PermanentError(
                f"{where(ref)}: Secret {namespace}/{ref.secret} has no key '{ref.key}'",
                reason="SecretKeyNotFound",
            )
        try:
            value = base64.b64decode(data[ref.key], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise PermanentError(
                f"{where(ref)}: key '{ref.key}' of Secret {namespace}/{ref.secret} is not text",
                reason="SecretKeyNotText",
            ) from exc
        _replace(resolved, ref.path, value)
        if value:
            values.append(value)
    return resolved, tuple(sorted(set(values), key=len, reverse=True))


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _replace(tree: Any, path: tuple[str | int, ...], value: str) -> None:
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    field = str(path[-1])
    del parent[field]
    parent[field[: -len("From")]] = value
