"""Generate a watched kind's CustomResourceDefinition: names, versions, columns and schemas.

One CRD per watched group and kind; each watches entry of it is a version (the highest one is
stored). Its ``spec`` schema comes from the entry's argument spec (:mod:`bridge.tools.specschema`,
which says how Ansible types map to OpenAPI v3), free-form with a warning saying how to add one
when there is none; its ``status`` schema is the one next to the code that writes the status
(:mod:`bridge.controller.schema`). Field names are the options' names in camelCase
(:func:`bridge.model.names.to_camel`), chosen so that the bridge's snake_case conversion of a
resource's spec gives the option's exact name back (see :func:`field_name`). Top-level options
named ``ansible_*`` (Ansible's own settings, or the bridge's ``ansible_operator_meta``) and
options the watches entry's ``vars`` set are not spec fields.

Generation is pure (:func:`generate`); :mod:`bridge.tools.crdfiles` turns CRDs into files
(:func:`dump`, :func:`sync`). The names of both modules stay importable from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.controller import schema as status_schemas
from bridge.model.names import plural_of
from bridge.model.watch import Watch
from bridge.tools.crdfiles import HEADER, SyncReport, dump, sync
from bridge.tools.specschema import (
    SECRET_KEY_REF,
    CrdError,
    field_name,
    ordered,
    plain_text,
    reaches,
    secret_field,
    spec_schema,
)

__all__ = [
    "HEADER",
    "SECRET_KEY_REF",
    "Crd",
    "CrdError",
    "SyncReport",
    "automation_name",
    "dump",
    "field_name",
    "generate",
    "plain_text",
    "plural_of",
    "printer_columns",
    "reaches",
    "secret_field",
    "spec_schema",
    "status_schema",
    "sync",
]


@dataclass(frozen=True)
class Crd:
    """One generated CRD: its file name in the output folder, its manifest and the warnings."""

    name: str
    filename: str
    manifest: Mapping[str, Any]
    #: What the file's second comment line says it was made from.
    origin: str
    warnings: tuple[str, ...] = ()

    def text(self) -> str:
        """The file's content (see :func:`dump`)."""
        return dump(self.manifest, comments=(HEADER, f"# from {self.origin}"))


def status_schema(manage_status: bool = True) -> dict[str, Any]:
    """The ``status`` schema of :mod:`bridge.controller.schema`, its keys in the output order."""
    return ordered(status_schemas.status_schema(manage_status))


def printer_columns() -> list[dict[str, Any]]:
    """READY, REASON, CHANGED, LAST RUN and AGE for ``kubectl get``."""
    ready = '.status.conditions[?(@.type=="Ready")]'
    return [
        {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
        {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason"},
        {"name": "Changed", "type": "integer", "jsonPath": ".status.lastRun.changed"},
        {"name": "Last Run", "type": "date", "jsonPath": ".status.lastRun.finishedAt"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def automation_name(watch: Watch) -> str:
    """``role service_config (entry point main)`` or ``playbook app_users.yml``."""
    if watch.automation.role is not None:
        return f"role {watch.automation.role.name} (entry point {watch.crd.entry_point})"
    assert watch.automation.playbook is not None
    return f"playbook {watch.automation.playbook.name}"


def _spec_for(watch: Watch) -> tuple[dict[str, Any], list[str]]:
    where = watch.source or watch.key
    if watch.crd.arguments is None:
        if watch.automation.role is not None:
            how = (
                f"add meta/argument_specs.yml to the role ({watch.automation.role}) "
                f"with an entry point "
                f"{watch.crd.entry_point!r}"
            )
        else:
            how = (
                "write an argument-spec file (the format of a role's meta/argument_specs.yml) "
                "and name it with 'argumentSpec' in the watches entry"
            )
        warning = (
            f"{where}: {watch.kind}: no argument spec, so the CRD accepts any spec "
            f"(x-kubernetes-preserve-unknown-fields); for a typed schema, {how}"
        )
        schema: dict[str, Any] = {
            "type": "object",
            "description": (
                f"Variables for the Ansible {automation_name(watch)}, in camelCase; free-form "
                "(no argument spec declares them)."
            ),
            "x-kubernetes-preserve-unknown-fields": True,
        }
        return ordered(schema), [warning]
    excluded: dict[str, str] = {}
    for option in watch.crd.arguments.options:
        if option.name.startswith("ansible_"):
            excluded[option.name] = "an ansible_* variable is Ansible's or the bridge's to set"
        elif option.name in watch.automation.vars:
            excluded[option.name] = "the watches entry's vars set it"
    schema, warnings = spec_schema(
        watch.crd.arguments,
        secret_options=watch.crd.secret_options,
        snake_case_parameters=watch.automation.snake_case_parameters,
        excluded=excluded,
        where=where,
    )
    intro = f"Variables for the Ansible {automation_name(watch)}, in camelCase."
    schema["description"] = "\n\n".join(filter(None, [intro, schema.get("description")]))
    field = (
        watch.automation.credentials.secret_field
        if watch.automation.credentials is not None
        else None
    )
    if field is not None:
        if field in schema["properties"]:
            warnings.append(
                f"{where}: credentials.secretField {field!r} is also an option of the argument "
                "spec; the option's schema is kept"
            )
        else:
            schema["properties"][field] = {
                "description": (
                    "The name of a Secret of this resource's namespace holding the "
                    "credentials of its runs (SSH key, passwords, environment)."
                ),
                "type": "string",
                "maxLength": 253,
                "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
            }
            schema["properties"] = dict(sorted(schema["properties"].items()))
    return ordered(schema), warnings


def _version(watch: Watch, storage: bool) -> tuple[dict[str, Any], list[str]]:
    spec, warnings = _spec_for(watch)
    title = ""
    if watch.crd.arguments is not None:
        title = watch.crd.arguments.short_description
    description = "\n\n".join(
        filter(None, [title, f"Reconciled by ansible-bridge with the {automation_name(watch)}."])
    )
    root: dict[str, Any] = {
        "description": description,
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status_schema(watch.policy.manage_status),
        },
    }
    if spec.get("required"):
        root["required"] = ["spec"]
    if watch.resource.scope == "Cluster" and watch.crd.secret_options:
        warnings.append(
            f"{watch.source or watch.key}: {watch.kind} is cluster-scoped: its Secret references "
            f"({', '.join(watch.crd.secret_options)}) cannot be resolved "
            f"(a cluster-scoped resource "
            "has no namespace to read Secrets from)"
        )
    version = {
        "name": watch.version,
        "served": True,
        "storage": storage,
        "subresources": {"status": {}},
        "additionalPrinterColumns": printer_columns(),
        "schema": {"openAPIV3Schema": root},
    }
    return version, warnings


_VERSION_RE = re.compile(r"v(\d+)(?:(alpha|beta)(\d+))?")


def _version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version order: GA > beta > alpha, higher numbers first; others last."""
    match = _VERSION_RE.fullmatch(version)
    if match is None:
        return (0, 0, 0, version)
    stage = {"alpha": 1, "beta": 2, None: 3}[match.group(2)]
    return (stage, int(match.group(1)), int(match.group(3) or 0), version)


def generate(watches: Sequence[Watch]) -> list[Crd]:
    """One CRD per watched kind (entries of one group and kind are its versions; the highest
    version is stored), sorted by file name. Raises :class:`CrdError` when entries clash."""
    groups: dict[tuple[str, str], list[Watch]] = {}
    for watch in watches:
        groups.setdefault((watch.group, watch.kind), []).append(watch)
    crds: list[Crd] = []
    names: dict[str, str] = {}
    for (group, kind), entries in groups.items():
        first = entries[0]
        plural = first.plural
        for other in entries[1:]:
            for what, a, b in (
                ("plural", plural, other.plural),
                ("scope", first.resource.scope, other.resource.scope),
                ("shortNames", first.resource.short_names, other.resource.short_names),
            ):
                if a != b:
                    raise CrdError(
                        f"{other.source}: {kind}.{group} is also watched by {first.source} with "
                        f"another {what} ({b!r} here, {a!r} there); the versions of a kind share "
                        "one CRD"
                    )
        name = f"{plural}.{group}"
        if name in names:
            raise CrdError(f"{first.source}: the CRD {name} is already generated for {names[name]}")
        names[name] = f"{kind} ({first.source})"
        ordered = sorted(entries, key=lambda w: _version_priority(w.version), reverse=True)
        versions: list[dict[str, Any]] = []
        warnings: list[str] = []
        for index, watch in enumerate(ordered):
            version, found = _version(watch, storage=index == 0)
            versions.append(version)
            warnings.extend(found)
        names_block: dict[str, Any] = {
            "kind": kind,
            "listKind": f"{kind}List",
            "plural": plural,
            "singular": kind.lower(),
        }
        if first.resource.short_names:
            names_block["shortNames"] = list(first.resource.short_names)
        names_block["categories"] = ["ansible"]
        manifest = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": group,
                "names": names_block,
                "scope": first.resource.scope,
                "versions": versions,
            },
        }
        origin = "; ".join(f"{w.version}: {automation_name(w)}" for w in ordered)
        crds.append(
            Crd(
                name=name,
                filename=f"{group}_{plural}.yaml",
                manifest=manifest,
                origin=origin,
                warnings=tuple(warnings),
            )
        )
    return sorted(crds, key=lambda c: c.filename)
