"""Bounds on what a watched object may hold, checked before anything recursive touches its body.

A resource's spec is user input, and the API server accepts JSON nested thousands of levels
deep: ``json.loads`` (kopf's watch stream, the Kubernetes client) then raises
``RecursionError``, which stops kopf's watch of every kind, and at ~900 levels kopf's own
``deepcopy`` fails and the object is silently never handled. So every body the controller takes
goes through :func:`checked` first: an object whose spec (or any other top-level field besides
apiVersion/kind/metadata) is nested deeper than :data:`MAX_DEPTH` levels or is larger than
:data:`MAX_SPEC_BYTES` of JSON keeps its apiVersion, kind and metadata (without the
``managedFields``, which mirror the spec's nesting) and gets a small marker spec
(:func:`invalid_reason` reads it); the controller then reports ``InvalidSpec`` and runs
nothing. :func:`loads` decodes JSON normally and, when that fails on nesting, with a
non-recursive decoder that stops building containers deeper than :data:`DECODE_DEPTH`.

The limits are far above real playbook input (a Helm-sized values tree is ~10 levels deep and a
few KiB; Kubernetes' own objects stay under ~20 levels), and low enough that the copies a run
makes of its spec (extra vars, the env file, artifacts, kopf's and our own deep copies) stay
well inside Python's recursion limit (1000) and etcd's request limit (1.5 MiB).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: The deepest nesting of a spec (levels of mappings and lists below ``spec``).
MAX_DEPTH = 100
#: The largest spec, as compact JSON.
MAX_SPEC_BYTES = 256 * 1024
#: The non-recursive decoder replaces containers deeper than this (from the document's root)
#: by None; :data:`MAX_DEPTH` below an object in a list in a watch event is well above it.
DECODE_DEPTH = MAX_DEPTH + 10
#: The key of the marker spec of an object that broke a bound; its value says which and why.
INVALID_SPEC = "__ansibleBridgeInvalidSpec__"
#: The condition and Event reason of such an object.
REASON = "InvalidSpec"

_KEPT = ("apiVersion", "kind", "metadata")
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def loads(data: bytes | str) -> Any:
    """``json.loads``, with a non-recursive fallback for documents too deep for it, then every
    object in it (a watch event's ``object``, a list's ``items``) :func:`checked`."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        document = json.loads(text)
    except RecursionError:
        document = shallow_loads(text)
    return _check_document(document, large=len(text) > MAX_SPEC_BYTES)


def _check_document(document: Any, *, large: bool = True) -> Any:
    if not isinstance(document, dict):
        return document
    if isinstance(document.get("object"), dict):  # a watch event
        document["object"] = checked(document["object"], large=large)
    elif isinstance(document.get("items"), list):  # a list
        document["items"] = [
            checked(i, large=large) if isinstance(i, dict) else i for i in document["items"]
        ]
    elif "metadata" in document:  # one object
        document = checked(document, large=large)
    return document


def checked(body: Mapping[str, Any], *, large: bool = True) -> dict[str, Any]:
    """``body`` when it is within the bounds; else its apiVersion, kind and metadata (without
    managedFields) and a marker spec saying why. ``large``: it may be over the size bound (a
    document smaller than :data:`MAX_SPEC_BYTES` cannot be)."""
    if invalid_reason(body) is not None:
        return dict(body)
    for key, value in body.items():
        if key in _KEPT:
            continue
        why = _problem(key, value, large=large)
        if why is not None:
            return _marked(body, why)
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and depth(metadata, MAX_DEPTH + 1) > MAX_DEPTH:
        metadata = {k: v for k, v in metadata.items() if k != "managedFields"}
        return {**body, "metadata": metadata}
    return dict(body)


def _problem(key: str, value: Any, *, large: bool) -> str | None:
    levels = depth(value, MAX_DEPTH + 1)
    if levels > MAX_DEPTH:
        return f"{key} is nested deeper than {MAX_DEPTH} levels"
    if large:
        size = len(json.dumps(value, separators=(",", ":")))
        if size > MAX_SPEC_BYTES:
            return (
                f"{key} is {size // 1024} KiB of JSON, more than the limit of "
                f"{MAX_SPEC_BYTES // 1024} KiB"
            )
    return None


def _marked(body: Mapping[str, Any], why: str) -> dict[str, Any]:
    metadata = body.get("metadata")
    kept: dict[str, Any] = {k: body[k] for k in _KEPT if k in body}
    if isinstance(metadata, Mapping):
        kept["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    kept["spec"] = {INVALID_SPEC: why}
    return kept


def invalid_reason(body: Mapping[str, Any]) -> str | None:
    """Why ``body`` broke a bound (its marker spec), or None when it did not."""
    spec = body.get("spec")
    if isinstance(spec, Mapping) and INVALID_SPEC in spec:
        return str(spec[INVALID_SPEC])
    return None


def depth(value: Any, stop: int) -> int:
    """Levels of mappings and lists in ``value`` (a scalar: 0), counted without recursion and
    no further than ``stop``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest >= stop:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def shallow_loads(text: str) -> Any:
    """Decode JSON ``text`` without recursion; containers deeper than :data:`DECODE_DEPTH` are
    read past and replaced by None (which :func:`checked` then finds too deep)."""
    index = _WS.match(text, 0).end()  # type: ignore[union-attr]
    root: list[Any] = []
    # Each frame: the container being built (None: skipped, too deep), and a pending key.
    stack: list[tuple[Any, list[str | None]]] = [(root, [None])]
    skipped = 0  # nesting inside a skipped container
    while True:
        index = _WS.match(text, index).end()  # type: ignore[union-attr]
        char = text[index : index + 1]
        if not char:
            raise ValueError("truncated JSON")
        container, key = stack[-1]
        if char in "]}":
            index += 1
            if skipped:
                skipped -= 1
                if skipped == 0:
                    _add(stack, None)
                continue
            stack.pop()
            _add(stack, container)
            if len(stack) == 1:
                break
            continue
        if char == ",":
            index += 1
            continue
        if char in "[{":
            index += 1
            if skipped or len(stack) > DECODE_DEPTH:
                skipped += 1
                continue
            stack.append(([] if char == "[" else {}, [None]))
            continue
        # A scalar, or a key: strings through json's own (C) scanner.
        if char == '"':
            value, index = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]
            after = _WS.match(text, index).end()  # type: ignore[union-attr]
            if text[after : after + 1] == ":":
                index = after + 1
                if not skipped:
                    key[0] = value
                continue
        else:
            value, index = _DECODER.raw_decode(text, index)
        if not skipped:
            _add(stack, value)
        if len(stack) == 1:
            break
    if _WS.match(text, index).end() != len(text):  # type: ignore[union-attr]
        raise ValueError("extra data after JSON")
    return root[0]


def _add(stack: list[tuple[Any, list[str | None]]], value: Any) -> None:
    container, key = stack[-1]
    if isinstance(container, dict):
        container[key[0]] = value
        key[0] = None
    else:
        container.append(value)
