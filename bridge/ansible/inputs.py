"""A run's inputs: the variables a playbook receives for a resource, its folder, its RunSpec.

The variables are laid out as the Operator SDK's operator does, following ``makeParameters`` in
``internal/ansible/runner/runner.go`` of github.com/operator-framework/ansible-operator-plugins.
Top-level extra vars, later ones winning:

1. the resource's ``spec`` keys, converted to snake_case at every depth (unless the watch says
   ``snakeCaseParameters: false``);
2. ``ansible_operator_meta: {name, namespace}`` (``namespace`` is ``""`` for cluster-scoped kinds);
3. ``_<group>_<kind>``: the whole object, and ``_<group>_<kind>_spec``: the raw ``spec``;
4. the watch's ``vars`` (so the operator's vars override spec values of the same name);
5. in a finalizer run, the finalizer's ``vars``.

Resource content is data, never code. With ``markUnsafe`` (the bridge's default) every string that
comes from the resource, mapping keys included, is an :class:`Unsafe` and is written with YAML's
``!unsafe`` tag, which Ansible never templates; the watch's vars are written by the operator's
author and stay templatable. On top of the SDK, spec keys named ``ansible_*`` are then dropped from
the top level (they stay readable under ``_<group>_<kind>_spec``): Ansible reads such variables as
its own settings, so ``ansibleShellExecutable`` in a spec would otherwise run a command of the
resource author's choice on the operator's host, unsafe or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bridge.ansible.artifacts import RUNS
from bridge.model.errors import PermanentError
from bridge.model.names import snake_keys
from bridge.model.records import ResourceRef, RunSpec, Trigger
from bridge.model.watch import Watch


class Unsafe(str):
    """A string that came from a resource: data for Ansible, never a template."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Unsafe({str.__repr__(self)})"


def object_var_name(group: str, kind: str) -> str:
    """The extra var holding the whole object: ``_<group>_<kind>`` with ``.`` and ``-`` as ``_``.

    >>> object_var_name("cert-manager.k8s.io", "Certificate")
    '_cert_manager_k8s_io_certificate'
    """
    return f"_{group}_{kind.lower()}".replace(".", "_").replace("-", "_")


def _plain(value: Any) -> Any:
    """A deep copy with mappings as dicts and sequences as lists (what a YAML dump accepts)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _mark_unsafe(value: Any) -> Any:
    """A deep copy with every string, mapping keys included, as an :class:`Unsafe`."""
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, Mapping):
        return {_mark_unsafe(key): _mark_unsafe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mark_unsafe(item) for item in value]
    return value


def _is_ansible_setting(name: Any) -> bool:
    # Variable names are case-sensitive: only ``ansible_*`` is read as a setting.
    return isinstance(name, str) and name.startswith("ansible_")


def build_extravars(
    body: Mapping[str, Any],
    watch: Watch,
    *,
    finalizing: bool = False,
    spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The extra vars for a run on the Kubernetes object ``body`` (see the module docstring).

    ``finalizing``: the run is the finalizer's, so the finalizer's vars apply too. ``spec``: the
    spec to take the parameters from, when not the body's own (Secret references resolved). The
    result shares nothing with ``body`` or ``watch``.
    """
    raw_spec = body.get("spec")
    original: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
    raw_metadata = body.get("metadata")
    metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
    # The resource's content; the names of the variables holding it are the bridge's.
    data = _mark_unsafe if watch.automation.mark_unsafe else _plain

    # ``spec``: the spec with Secret references resolved (bridge.ansible.secrets); the object
    # variables
    # below keep the references, never the values.
    values: Mapping[str, Any] = original if spec is None else spec
    parameters: dict[str, Any] = (
        snake_keys(values) if watch.automation.snake_case_parameters else dict(values)
    )
    if watch.automation.mark_unsafe:
        parameters = {
            key: value for key, value in parameters.items() if not _is_ansible_setting(key)
        }
    extravars: dict[str, Any] = data(parameters)
    extravars["ansible_operator_meta"] = {
        "name": data(metadata.get("name") or ""),
        "namespace": data(metadata.get("namespace") or ""),
    }
    object_key = object_var_name(watch.group, watch.kind)
    extravars[object_key] = data(body)
    extravars[f"{object_key}_spec"] = data(original)

    # As in the SDK, the watch's vars come after the spec: the operator's author has the last
    # word over a resource's values (and over ansible_operator_meta). They are trusted.
    extravars.update(_plain(watch.automation.vars))
    if finalizing and watch.automation.finalizer is not None:
        extravars.update(_plain(watch.automation.finalizer.vars))
    return extravars


class _ExtravarsDumper(yaml.SafeDumper):
    """A SafeDumper that writes :class:`Unsafe` strings with Ansible's ``!unsafe`` tag."""

    def ignore_aliases(self, data: Any) -> bool:
        # The object and its spec share values; spell each out instead of using &anchors.
        return True


_STR_TAG = "tag:yaml.org,2002:str"


def _represent_unsafe(dumper: yaml.SafeDumper, data: Unsafe) -> yaml.ScalarNode:
    text = str(data)
    # ansible-core 2.19 reads an !unsafe scalar as if it were plain, quotes or not: "yes" would
    # load as True, "" as None, "012" as 10, "<<" would fail the whole file. Only such strings
    # (booleans, numbers, dates, null, "<<", "=", "!", "&", "*") are affected, and none of them
    # can hold a template, so they are written as ordinary quoted strings.
    resolver: Any = dumper  # PyYAML's resolve() is untyped
    if resolver.resolve(yaml.ScalarNode, text, (True, False)) != _STR_TAG:
        return dumper.represent_str(text)
    return dumper.represent_scalar("!unsafe", text, style='"')


_ExtravarsDumper.add_representer(Unsafe, _represent_unsafe)


def _dumpable(value: Any) -> Any:
    """Like :func:`_plain`; :class:`Unsafe` stays, any other str subclass becomes a str."""
    if isinstance(value, str):
        return value if type(value) in (str, Unsafe) else str(value)
    if isinstance(value, Mapping):
        return {_dumpable(key): _dumpable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_dumpable(item) for item in value]
    return value


def dump_extravars(extravars: Mapping[str, Any]) -> str:
    """YAML text for ansible-runner's ``env/extravars`` file, with ``!unsafe`` on Unsafe strings.

    ansible-runner passes the file as ``-e @env/extravars``; Ansible trusts such a file's plain
    strings as templates and never templates the ``!unsafe`` ones. An Unsafe string that YAML
    would read as another type (``yes``, ``012``, ``""``...) is written as a quoted plain string
    instead: ansible-core 2.19 would convert it despite the quotes, and it cannot hold a template.
    """
    text: str = yaml.dump(
        _dumpable(extravars),
        Dumper=_ExtravarsDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 30,
    )
    return text


def resource_ref(body: Mapping[str, Any]) -> ResourceRef:
    """Which object ``body`` is, for run records and messages."""
    metadata = body.get("metadata") or {}
    return ResourceRef(
        api_version=str(body.get("apiVersion", "")),
        kind=str(body.get("kind", "")),
        namespace=metadata.get("namespace") or None,
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
    )


def resource_dir(artifacts_root: Path, watch: Watch, ref: ResourceRef) -> Path:
    """A resource's own folder for run artifacts (the Operator SDK's layout, by uid-free name)."""
    return (
        artifacts_root
        / (watch.group or "core")
        / watch.version
        / watch.kind
        / (ref.namespace or "_cluster")
        / ref.name
    )


def run_spec(
    body: Mapping[str, Any],
    watch: Watch,
    *,
    run_id: str,
    trigger: Trigger,
    artifacts_root: Path,
    project_dir: Path,
    finalizing: bool = False,
    spec: Mapping[str, Any] | None = None,
    secrets: tuple[str, ...] = (),
    envvars: Mapping[str, str] | None = None,
) -> RunSpec:
    """Everything an executor needs to run ``watch``'s automation for ``body``.

    A finalizer run uses the finalizer's playbook or role when it names one, otherwise the main
    one (with the finalizer's vars on top, as the Operator SDK does). Raises PermanentError with
    reason ``PlaybookNotFound`` when the playbook or role has gone since start-up.
    """
    playbook, role = watch.automation.playbook, watch.automation.role
    if (
        finalizing
        and watch.automation.finalizer is not None
        and (
            watch.automation.finalizer.playbook is not None
            or watch.automation.finalizer.role is not None
        )
    ):
        playbook, role = watch.automation.finalizer.playbook, watch.automation.finalizer.role
    target = playbook or role
    if target is None or not target.exists():
        raise PermanentError(
            f"{watch.source}: {'playbook' if playbook else 'role'} {target} does not exist",
            reason="PlaybookNotFound",
        )
    ref = resource_ref(body)
    metadata = body.get("metadata") or {}
    return RunSpec(
        run_id=run_id,
        resource=ref,
        generation=int(metadata.get("generation") or 0),
        trigger=trigger,
        playbook=playbook,
        role=role,
        hosts="all" if watch.automation.inventory is not None else "localhost",
        gather_facts=watch.automation.gather_facts,
        extravars=build_extravars(body, watch, finalizing=finalizing, spec=spec),
        secrets=secrets,
        envvars=dict(envvars or {}),
        inventory=watch.automation.inventory,
        artifact_dir=resource_dir(artifacts_root, watch, ref) / RUNS,
        max_artifacts=watch.policy.max_runner_artifacts,
        timeout=watch.automation.timeout,
        project_dir=project_dir,
    )
