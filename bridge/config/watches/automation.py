"""The automation section of a watches entry: what runs, with which variables, hosts and secrets.

Reads ``playbook`` / ``role`` (resolved as the Operator SDK and Ansible look them up),
``vars``, ``finalizer``, ``gatherFacts``, ``snakeCaseParameters``, ``markUnsafe``, ``timeout``,
``inventory`` and ``credentials`` into an :class:`~bridge.model.watch.Automation`. A mapping
``inventory`` and ``credentials`` are handed to :mod:`bridge.config.credentials`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from bridge.config.credentials import CredentialsError, parse_credentials, parse_inventory
from bridge.config.watches.keys import KeyReader
from bridge.model.names import DNS_LABEL
from bridge.model.watch import Automation, FinalizerSpec

T = TypeVar("T")


_DEFAULT_TIMEOUT = 3600.0
_FINALIZER_KEYS = ("name", "playbook", "role", "vars")
_QUALIFIED_NAME_RE = re.compile(
    rf"({DNS_LABEL}(\.{DNS_LABEL})*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
_FQCN_RE = re.compile(r"([A-Za-z_]\w*)\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)")


def read_automation(keys: KeyReader, entry: Mapping[str, Any], kind: str) -> Automation:
    """The automation of ``entry`` (a watch of ``kind``, named in warnings)."""
    playbook, role = read_playbook_or_role(keys, entry, "")
    if playbook is None and role is None:
        keys.fail(None, "neither 'playbook' nor 'role' is set; set exactly one")
    mark_unsafe = keys.boolean(entry, "markUnsafe", True)
    if not mark_unsafe:
        keys.warn(
            "markUnsafe",
            f"markUnsafe is false: strings in {kind} resources will be evaluated as Jinja "
            "templates, so anyone who can edit one can run code in the operator",
        )
    gather_facts = keys.boolean(entry, "gatherFacts", False)
    if gather_facts and playbook is not None:
        keys.warn("gatherFacts", "gatherFacts applies to roles only; a playbook decides itself")
    timeout = keys.duration(entry, "timeout", _DEFAULT_TIMEOUT)
    raw_inventory = entry.get("inventory")
    inventory = None if isinstance(raw_inventory, dict) else keys.string(entry, "inventory")
    return Automation(
        playbook=playbook,
        role=role,
        vars=keys.variables(entry, "vars"),
        finalizer=_finalizer(keys, entry),
        gather_facts=gather_facts,
        snake_case_parameters=keys.boolean(entry, "snakeCaseParameters", True),
        mark_unsafe=mark_unsafe,
        timeout=timeout or None,
        inventory=None if inventory is None else _inventory_path(keys, inventory),
        inventory_source=(
            _access(keys, parse_inventory, raw_inventory)
            if isinstance(raw_inventory, dict)
            else None
        ),
        credentials=(
            None
            if entry.get("credentials") is None
            else _access(keys, parse_credentials, entry["credentials"])
        ),
    )


def read_playbook_or_role(
    keys: KeyReader, mapping: Mapping[str, Any], prefix: str
) -> tuple[Path | None, Path | None]:
    """The ``playbook`` or ``role`` of ``mapping`` (the entry or its finalizer), resolved."""
    playbook = keys.string(mapping, "playbook", prefix)
    role = keys.string(mapping, "role", prefix)
    if playbook is not None and role is not None:
        keys.fail(prefix.rstrip(".") or None, "both 'playbook' and 'role' are set; use one")
    return (
        None if playbook is None else _playbook(keys, playbook, prefix + "playbook"),
        None if role is None else _role(keys, role, prefix + "role"),
    )


def _finalizer(keys: KeyReader, entry: Mapping[str, Any]) -> FinalizerSpec | None:
    raw = keys.section(entry, "finalizer", "a mapping with 'name'", _FINALIZER_KEYS)
    if raw is None:
        return None
    name = keys.name(
        raw,
        "name",
        _QUALIFIED_NAME_RE,
        "a qualified name like cache.example.com/finalizer",
        prefix="finalizer.",
    )
    playbook, role = read_playbook_or_role(keys, raw, "finalizer.")
    if playbook is None and role is None and not raw.get("vars"):
        keys.fail("finalizer", "needs 'playbook', 'role' or 'vars' besides 'name'")
    return FinalizerSpec(
        name=name, playbook=playbook, role=role, vars=keys.variables(raw, "vars", "finalizer.")
    )


def _access(keys: KeyReader, parse: Callable[[object], T], raw: object) -> T:
    """``inventory`` (a mapping) or ``credentials``, parsed by bridge.config.credentials."""
    try:
        return parse(raw)
    except CredentialsError as exc:
        keys.fail(exc.key, str(exc))


# --- paths ------------------------------------------------------------------------------------


def _playbook(keys: KeyReader, value: str, key: str) -> Path:
    path = keys.local(value)
    if path.is_file():
        return path
    if path.is_dir():
        keys.fail(key, f"playbook {value!r} is a folder, not a file: {path}")
    keys.fail(key, f"playbook {value!r} not found: {path} does not exist")


def _inventory_path(keys: KeyReader, value: str) -> Path:
    path = keys.local(value)
    if not path.exists():
        keys.fail("inventory", f"inventory {value!r} not found: {path} does not exist")
    return path


def _role(keys: KeyReader, value: str, key: str) -> Path:
    candidates = list(dict.fromkeys(role_candidates(value, keys.base, keys.environ)))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    keys.fail(key, f"role {value!r} not found; looked in: {looked}")


def role_candidates(value: str, base: Path, environ: Mapping[str, str]) -> Iterator[Path]:
    """Where the role named ``value`` may be, in the order the Operator SDK looks: relative to
    ``base`` (the watches file's folder), then the Ansible search paths of ``environ``."""
    if os.path.isabs(value):
        yield Path(os.path.normpath(value))
        return
    yield Path(os.path.normpath(base / value))
    yield Path(os.path.normpath(base / "roles" / value))
    for folder in _env_paths(environ, "ANSIBLE_ROLES_PATH", base):
        yield Path(os.path.normpath(folder / value))
        yield Path(os.path.normpath(folder / "roles" / value))
    fqcn = _FQCN_RE.fullmatch(value)
    if fqcn is None:
        return
    namespace, collection, role = fqcn.groups()
    roots = [
        *_env_paths(environ, "ANSIBLE_COLLECTIONS_PATH", base),
        *_env_paths(environ, "ANSIBLE_COLLECTIONS_PATHS", base),
        base / "collections",
    ]
    home = environ.get("HOME")
    if home:
        roots.append(Path(home) / ".ansible" / "collections")
    roots.append(Path("/usr/share/ansible/collections"))
    for root in roots:
        if root.name != "ansible_collections":
            root = root / "ansible_collections"
        yield Path(os.path.normpath(root / namespace / collection / "roles" / role))


def _env_paths(environ: Mapping[str, str], name: str, base: Path) -> list[Path]:
    """The folders of a colon-separated path variable: ``~`` expanded, relative to ``base``."""
    home = environ.get("HOME")
    folders = []
    for item in environ.get(name, "").split(":"):
        if not item:
            continue
        if home and (item == "~" or item.startswith("~/")):
            item = home + item[1:]
        folders.append(Path(os.path.normpath(base / item)))
    return folders
