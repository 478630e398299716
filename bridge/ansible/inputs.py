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
author and stay templatable.

On top of the SDK, a spec whose top-level keys would set one of Ansible's own variables is refused
(:class:`~bridge.model.errors.PermanentError`, reason ``ReservedVariable``): ``omit``,
``groups``, ``inventory_hostname``... (:mod:`bridge.ansible.reserved`), the operator's own
``ansible_operator_meta`` and ``_<group>_<kind>[_spec]``, and with ``markUnsafe`` every
``ansible_*`` name, which Ansible reads as its own settings (``ansibleShellExecutable`` in a spec
would otherwise run a command of the resource author's choice on the operator's host, unsafe or
not). So is a spec with two keys that would become the same name (``fooBar`` and ``foo_bar``,
``password`` and ``passwordFrom``), at any depth: reason ``VariableCollision``. Only names are
checked, after the snake_case conversion and the Secret references' renaming; values never are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bridge.ansible.artifacts import RUNS
from bridge.ansible.reserved import refusal
from bridge.ansible.secrets import find_refs
from bridge.model.errors import PermanentError
from bridge.model.names import snake_keys, to_snake
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


def operator_variables(watch: Watch) -> frozenset[str]:
    """The variables the operator sets itself for ``watch``'s runs, as the Operator SDK does:
    ``ansible_operator_meta``, ``_<group>_<kind>`` and ``_<group>_<kind>_spec``."""
    object_key = object_var_name(watch.group, watch.kind)
    return frozenset({"ansible_operator_meta", object_key, f"{object_key}_spec"})


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


#: A refusal names at most this many keys (and says how many more there are).
_NAMED_AT_MOST = 5
#: A key longer than this is shortened in messages.
_KEY_SHOWN = 80

_Path = tuple[str | int, ...]


def _shown(text: str) -> str:
    return text if len(text) <= _KEY_SHOWN else text[: _KEY_SHOWN - 1] + "\u2026"


def _where(path: _Path) -> str:
    return _shown("spec." + ".".join(str(step) for step in path))


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:_NAMED_AT_MOST])
    if len(items) > _NAMED_AT_MOST:
        shown += f"; and {len(items) - _NAMED_AT_MOST} more"
    return shown


def _names(
    value: Any, renamed: frozenset[_Path], snake: bool, path: _Path, collisions: list[str]
) -> dict[str, list[str]]:
    """The names the keys of mapping ``value`` (at ``path`` in the spec) become, each with the
    keys that become it; collisions found below ``value`` are added to ``collisions``."""
    names: dict[str, list[str]] = {}
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _names(item, renamed, snake, (*path, index), collisions)
            collisions.extend(_collided(found, (*path, index)))
        return names
    if not isinstance(value, Mapping):
        return names
    for key, item in value.items():
        if not isinstance(key, str):
            continue
        step = (*path, key)
        name = key[: -len("From")] if step in renamed else key
        names.setdefault(to_snake(name) if snake else name, []).append(key)
        if step not in renamed:  # a Secret reference becomes a string: nothing below it
            found = _names(item, renamed, snake, step, collisions)
            collisions.extend(_collided(found, step))
    return names


def _collided(names: Mapping[str, list[str]], path: _Path) -> list[str]:
    return [
        " and ".join(_where((*path, key)) for key in keys) + f" both become '{_shown(name)}'"
        for name, keys in names.items()
        if len(keys) > 1
    ]


def check_variable_names(
    original: Mapping[str, Any], watch: Watch, *, resolved: bool = False
) -> None:
    """Refuse a spec (``original``: Secret references as written) whose keys would set one of
    Ansible's or the operator's own variables, or collide (see the module docstring).
    ``resolved``: the run receives the spec with its Secret references resolved (``<name>From``
    becomes ``<name>``). Raises PermanentError naming the keys, reason ``VariableCollision`` or
    ``ReservedVariable``.
    """
    renamed = frozenset(ref.path for ref in find_refs(original)) if resolved else frozenset()
    snake = watch.automation.snake_case_parameters
    collisions: list[str] = []
    top = _names(original, renamed, snake, (), collisions)
    collisions[:0] = _collided(top, ())
    if collisions:
        raise PermanentError(
            f"{_listed(collisions)}: one would silently replace the other; rename one of them",
            reason="VariableCollision",
        )
    own = operator_variables(watch)
    reserved = []
    for name, (key,) in top.items():
        why = "the operator's variable" if name in own else None
        why = why or refusal(name, trusted=not watch.automation.mark_unsafe)
        if why is not None:
            reserved.append(f"{_where((key,))} would set {why} '{_shown(name)}'")
    if reserved:
        raise PermanentError(
            f"{_listed(reserved)}: a resource cannot set Ansible's own variables nor the "
            "operator's; rename the field",
            reason="ReservedVariable",
        )


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
    result shares nothing with ``body`` or ``watch``. Raises PermanentError (reasons
    ``VariableCollision``, ``ReservedVariable``) for a spec whose keys cannot be variables
    (:func:`check_variable_names`).
    """
    raw_spec = body.get("spec")
    original: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
    raw_metadata = body.get("metadata")
    metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
    # The resource's content; the names of the variables holding it are the bridge's.
    data = _mark_unsafe if watch.automation.mark_unsafe else _plain

    check_variable_names(original, watch, resolved=spec is not None)
    # ``spec``: the spec with Secret references resolved (bridge.ansible.secrets); the object
    # variables below keep the references, never the values.
    values: Mapping[str, Any] = original if spec is None else spec
    parameters: dict[str, Any] = (
        snake_keys(values) if watch.automation.snake_case_parameters else dict(values)
    )
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
