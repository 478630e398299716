"""The CRD-options section of a watches entry: the argument spec, its entry point, secret options.

Reads ``argumentSpec`` (else the role's own spec, through :mod:`bridge.config.argspec`),
``entryPoint`` and ``secretOptions`` into :class:`~bridge.model.watch.CrdOptions`; the spec is
read at load time, so an entry point it lacks or a secret option it does not have is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.config.argspec import (
    ArgumentSpecError,
    find_option,
    load_argument_specs,
    role_argument_spec_file,
    secret_paths,
)
from bridge.config.watches.keys import KeyReader
from bridge.model.watch import Automation, CrdOptions, EntryPoint

_ENTRY_POINT_RE = re.compile(r"[A-Za-z0-9_][-A-Za-z0-9_.]*")
_OPTION_PATH_RE = re.compile(r"[^.\s]+(\.[^.\s]+)*")


def read_crd(keys: KeyReader, entry: Mapping[str, Any], automation: Automation) -> CrdOptions:
    """The CRD options of ``entry``, whose playbook or role ``automation`` holds."""
    entry_point = _entry_point(keys, entry, automation.playbook)
    spec_file, arguments = _arguments(keys, entry, automation.role, entry_point)
    listed = keys.names(entry, "secretOptions", _OPTION_PATH_RE, "a dotted option path")
    if arguments is not None:
        for i, path in enumerate(listed):
            found = find_option(arguments.options, path)
            if isinstance(found, str):
                keys.fail(f"secretOptions[{i}]", f"{found}, in {spec_file}")
    from_spec = secret_paths(arguments.options) if arguments is not None else ()
    return CrdOptions(
        argument_spec=spec_file,
        entry_point=entry_point,
        secret_options=tuple(sorted(set(listed) | set(from_spec))),
        arguments=arguments,
    )


def _entry_point(keys: KeyReader, entry: Mapping[str, Any], playbook: Path | None) -> str:
    value = keys.string(entry, "entryPoint")
    if value is None:
        return "main"
    if not _ENTRY_POINT_RE.fullmatch(value):
        keys.fail("entryPoint", f"{value!r} is not an entry point name like main or cleanup")
    if playbook is not None and "argumentSpec" not in entry:
        keys.fail(
            "entryPoint",
            "entryPoint picks an entry point of a role's argument spec or of argumentSpec; "
            "this entry has a playbook and no argumentSpec",
        )
    return value


def _arguments(
    keys: KeyReader, entry: Mapping[str, Any], role: Path | None, entry_point: str
) -> tuple[Path | None, EntryPoint | None]:
    """The argument-spec file and its entry point's spec: ``argumentSpec``, else the role's."""
    named = keys.string(entry, "argumentSpec")
    key = "argumentSpec" if named is not None else "role"
    if named is not None:
        path = keys.local(named)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            keys.fail(key, f"argument spec {named!r} not found: {path} {what}")
    elif role is not None:
        try:
            found = role_argument_spec_file(role)
        except ArgumentSpecError as exc:
            keys.fail(key, f"the role's argument spec cannot be read: {exc}")
        if found is None:
            if "entryPoint" in entry:
                keys.fail(
                    "entryPoint",
                    f"the role has no argument spec (no {role}/meta/argument_specs.yml) "
                    f"to take entry point {entry_point!r} from",
                )
            return None, None
        path = found
    else:
        return None, None
    try:
        specs = load_argument_specs(path)
    except ArgumentSpecError as exc:
        keys.fail(key, f"invalid argument spec: {exc}")
    if entry_point not in specs:
        # A role without a spec for ``main`` just has none; anything else is a mistake.
        if named is None and "entryPoint" not in entry:
            return path, None
        known = ", ".join(specs) or "none"
        keys.fail(
            "entryPoint" if "entryPoint" in entry else key,
            f"{path} has no entry point {entry_point!r} (entry points: {known})",
        )
    return path, specs[entry_point]
