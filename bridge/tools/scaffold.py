"""``ansible-bridge new``: wrap a role or playbook as a new kind (watches entry, CRD, sample).

It appends the watches entry (comments and all of the file kept), writes the kind's CRD as
``ansible-bridge crd`` would (:mod:`bridge.tools.crdgen`) and a sample resource that the CRD
accepts as
it is: each required field holds a placeholder for its type (the first choice when there are
choices), each optional field with a default shows it, and a required Secret reference comes with
a sample Secret. Nothing is overwritten: when the entry, the CRD file or the sample exists
already, nothing is written and the error names what exists.

:func:`sample_spec` (placeholders from a CRD's ``spec`` schema) is pure and shared with the tests
that prove real roles' CRDs accept such resources.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bridge.config.watches import load_watches
from bridge.config.yamlfile import StrictLoader, read_yaml
from bridge.model.errors import BridgeError, WatchesError
from bridge.model.watch import Watch
from bridge.tools import crdgen

__all__ = [
    "NewResult",
    "ScaffoldError",
    "is_secret_ref",
    "new",
    "sample_manifests",
    "sample_spec",
]

#: The placeholder of a required string (and of a value of any type).
PLACEHOLDER = "changeme"

_WATCHES_HEADER = """\
---
# ansible-bridge watches file (Operator SDK Ansible operator format). Relative paths are
# resolved against this file's folder. Regenerate the CRDs after a change:
#   ansible-bridge crd --watches {watches} --out {out}
"""


class ScaffoldError(BridgeError):
    """``new`` cannot go on: something it would write exists, or its input is wrong."""


def _scaffold_error(message: str, *, path: str) -> ScaffoldError:
    return ScaffoldError(f"{path}: {message}")


# ---------------------------------------------------------------------------------------------
# Sample values (pure)
# ---------------------------------------------------------------------------------------------


def is_secret_ref(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` is a Secret reference (``{secretKeyRef: {name, key}}``)."""
    return set(schema.get("properties", {})) == {"secretKeyRef"} and schema.get("required") == [
        "secretKeyRef"
    ]


@dataclass
class _Samples:
    """Builds placeholder values; collects the Secret keys that references point at."""

    secret_name: str
    secret_keys: dict[str, str]

    def value(self, schema: Mapping[str, Any], name: str) -> Any:
        """A value ``schema`` accepts, for a required field called ``name``."""
        if schema.get("enum"):
            return schema["enum"][0]
        if "default" in schema:
            return schema["default"]
        kind = schema.get("type")
        if kind == "object":
            if is_secret_ref(schema):
                key = name[: -len("From")] if name.endswith("From") else name
                self.secret_keys.setdefault(key, PLACEHOLDER)
                return {"secretKeyRef": {"name": self.secret_name, "key": key}}
            return self.object(schema)
        if kind == "array":
            return [self.value(schema.get("items", {}), name)]
        if kind == "string":
            return PLACEHOLDER
        if kind in ("integer", "number"):
            return 1
        if kind == "boolean":
            return False
        if schema.get("x-kubernetes-int-or-string"):
            return "1"
        return PLACEHOLDER

    def object(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """Required fields with placeholders, optional ones with their defaults."""
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        result: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in required:
                result[name] = self.value(sub, name)
            elif "default" in sub:
                result[name] = sub["default"]
        return result


def sample_spec(
    spec_schema: Mapping[str, Any], secret_name: str = "sample-secrets"
) -> tuple[dict[str, Any], dict[str, str]]:
    """A spec that ``spec_schema`` accepts, and the Secret keys its references use.

    Required fields hold placeholders (``changeme``, ``1``, ``false``, the first choice, one
    element for a list); optional fields with a default show it; others are left out. A
    required Secret reference points at key ``<field>`` of the Secret ``secret_name``.
    """
    samples = _Samples(secret_name, {})
    return samples.object(spec_schema), samples.secret_keys


def _optional_fields(spec_schema: Mapping[str, Any]) -> list[str]:
    properties: Mapping[str, Any] = spec_schema.get("properties", {})
    required = set(spec_schema.get("required", ()))
    return [n for n, s in properties.items() if n not in required and "default" not in s]


def sample_manifests(crd: crdgen.Crd, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The sample resource of ``crd``'s stored version (after a Secret it needs, if any), and
    the optional fields it leaves out."""
    spec = crd.manifest["spec"]
    version = next(v for v in spec["versions"] if v["storage"])
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    secret_name = f"{name}-secrets"
    values, keys = sample_spec(schema, secret_name)
    resource = {
        "apiVersion": f"{spec['group']}/{version['name']}",
        "kind": spec["names"]["kind"],
        "metadata": {"name": name},
        "spec": values,
    }
    manifests: list[dict[str, Any]] = []
    if keys:
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret_name},
                "type": "Opaque",
                "stringData": dict(sorted(keys.items())),
            }
        )
    manifests.append(resource)
    return manifests, _optional_fields(schema)


def _sample_text(crd: crdgen.Crd, name: str) -> str:
    manifests, optional = sample_manifests(crd, name)
    spec = crd.manifest["spec"]
    kind, plural = spec["names"]["kind"], spec["names"]["plural"]
    lines = [
        f"# A sample {kind}, written by `ansible-bridge new`: required fields hold placeholders",
        "# (replace them), optional fields with a default show it.",
    ]
    if optional:
        lines.append(f"# More fields: {', '.join(optional)} (kubectl explain {plural}.spec).")
    if len(manifests) > 1:
        lines.append("# The Secret holds the values of the spec's Secret references.")
    documents = [crdgen.dump(m, comments=()) for m in manifests]
    return "\n".join(lines) + "\n" + "".join(documents)


# ---------------------------------------------------------------------------------------------
# new
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewResult:
    """What ``new`` wrote."""

    watches: Path
    entry: int
    crd: Path
    sample: Path
    warnings: tuple[str, ...] = ()


def _relative(value: str, base: Path) -> str:
    """An existing path relative to ``base`` when inside it, else absolute; anything else (a
    role name) as given."""
    path = Path(value)
    if not path.exists():
        return value
    path = Path(os.path.abspath(path))
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def _entry_text(entry: Mapping[str, Any]) -> str:
    text: str = yaml.safe_dump([dict(entry)], sort_keys=False, default_flow_style=False)
    return text


def new(
    *,
    kind: str,
    group: str,
    version: str = "v1alpha1",
    role: str | None = None,
    playbook: str | None = None,
    argument_spec: str | None = None,
    plural: str | None = None,
    watches: Path,
    out: Path,
    samples: Path,
    environ: Mapping[str, str],
) -> NewResult:
    """Add a watches entry for ``kind`` and write its CRD into ``out`` and a sample resource into
    ``samples`` (see the module docstring). Paths are taken as given (relative to the current
    folder); the entry names them relative to the watches file. Raises :class:`ScaffoldError`
    (or :class:`~bridge.model.errors.WatchesError` for a bad entry) without writing anything."""
    if (role is None) == (playbook is None):
        raise ScaffoldError("give exactly one of --role and --playbook")
    header = _WATCHES_HEADER.format(watches=watches, out=out)
    watches = Path(os.path.abspath(watches))
    base = watches.parent
    entry: dict[str, Any] = {"version": version, "group": group, "kind": kind}
    if role is not None:
        entry["role"] = _relative(role, base)
    if playbook is not None:
        entry["playbook"] = _relative(playbook, base)
    if argument_spec is not None:
        entry["argumentSpec"] = _relative(argument_spec, base)
    if plural is not None:
        entry["plural"] = plural

    existing_text = watches.read_text(encoding="utf-8") if watches.is_file() else ""
    existing = (
        read_yaml(watches, _scaffold_error, loader=StrictLoader) if existing_text.strip() else None
    )
    if existing is not None and not isinstance(existing, list):
        raise ScaffoldError(f"{watches}: expected a list of watches entries")
    entries = list(existing or [])
    exists: list[str] = []
    for n, other in enumerate(entries, start=1):
        if isinstance(other, dict) and (
            other.get("group"),
            other.get("version"),
            other.get("kind"),
        ) == (group, version, kind):
            exists.append(f"{watches} already has {kind}.{group}/{version} (entry {n})")

    if existing is None:
        text = header + _entry_text(entry)
    else:
        text = existing_text if existing_text.endswith("\n") else existing_text + "\n"
        text += "\n" + _entry_text(entry)
    n_entry = len(entries) + 1

    sample_path = samples / f"{kind.lower()}.yaml"
    if exists:
        crd_path = out / f"{group}_{plural or crdgen.plural_of(kind)}.yaml"
        exists.extend(f"{path} exists" for path in (crd_path, sample_path) if path.exists())
        raise ScaffoldError("refusing to overwrite: " + "; ".join(exists))

    # The entry is checked as the loader will read it, from the watches file's folder.
    created = not base.exists()
    base.mkdir(parents=True, exist_ok=True)
    try:
        try:
            found, warnings = _load_candidate(watches, text, environ)
            appended = len(found) == n_entry
        except ScaffoldError:
            appended = False
        if not appended:
            # The entry did not read as one more (a flow-style file, say): write the list anew.
            text = yaml.safe_dump([*entries, entry], sort_keys=False, default_flow_style=False)
            found, warnings = _load_candidate(watches, text, environ)
        crds = crdgen.generate(found)
        crd = next(c for c in crds if c.manifest["spec"]["names"]["kind"] == kind)
        crd_path = out / crd.filename
        exists.extend(f"{path} exists" for path in (crd_path, sample_path) if path.exists())
        if exists:
            raise ScaffoldError("refusing to overwrite: " + "; ".join(exists))
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                base.rmdir()
        raise

    sample = _sample_text(crd, f"{kind.lower()}-sample")
    _write(watches, text)
    out.mkdir(parents=True, exist_ok=True)
    crd_path.write_text(crd.text(), encoding="utf-8")
    samples.mkdir(parents=True, exist_ok=True)
    sample_path.write_text(sample, encoding="utf-8")
    return NewResult(
        watches=watches,
        entry=n_entry,
        crd=crd_path,
        sample=sample_path,
        warnings=(*warnings, *crd.warnings),
    )


def _load_candidate(
    watches: Path, text: str, environ: Mapping[str, str]
) -> tuple[list[Watch], list[str]]:
    """Load ``text`` as the watches file would be loaded (same folder), naming the real file."""
    fd, name = tempfile.mkstemp(prefix=".watches-", suffix=".yaml", dir=watches.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            return load_watches(tmp, environ)
        except WatchesError as exc:
            raise ScaffoldError(str(exc).replace(str(tmp), str(watches))) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _write(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file in its folder, so it is never half written."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if path.exists():
            os.chmod(name, path.stat().st_mode & 0o777)
        else:
            os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
