"""Load an Operator SDK watches.yaml file and validate it into the bridge's :class:`Watch` records.

The file is a YAML list of entries, accepted as the Ansible operator of the Operator SDK writes
it. Each entry maps one kind (``group``, ``version``, ``kind``) to exactly one of ``playbook``
or ``role``, with the optional keys ``vars``, ``reconcilePeriod``, ``manageStatus``,
``finalizer`` (``name`` and at least one of ``playbook``, ``role``, ``vars``), ``selector``
(``matchLabels`` / ``matchExpressions``), ``snakeCaseParameters``, ``markUnsafe``,
``maxRunnerArtifacts``, ``watchAnnotationsChanges``, ``watchDependentResources``,
``watchClusterScopedResources`` and ``blacklist`` (a list of ``{group, version, kind}``: dependent
kinds never watched; see bridge.kube.dependents). Unlike the Operator SDK, ``markUnsafe`` defaults
to
true: strings from the resource are never evaluated as Jinja templates unless an entry sets
``markUnsafe: false`` (warned about).

Bridge extensions, per entry:

``timeout``
    How long a run may take (a duration, see below); default ``1h``; ``0`` or null: no limit.
``inventory``
    An inventory file or folder, relative to the watches file; default: localhost only. Or
    ``{hosts: ...}`` (an inline YAML inventory), ``{secret: NAME, key: KEY}`` or
    ``{configMap: NAME, key: KEY}`` (read at run time in the resource's namespace; ``key``
    defaults to ``inventory``); see :mod:`bridge.config.credentials`.
``credentials``
    An SSH key, become and vault passwords and environment variables from keys of a Secret of
    the resource's namespace (``secret``, or a spec field naming it: ``secretField``); see
    :mod:`bridge.config.credentials`.
``gatherFacts``
    Whether to gather facts before a ``role`` runs; default false (a playbook decides itself).
``drift``
    Drift detection: ``{mode: check, interval: 10m, remediate: false}``. Every ``interval``
    (a duration, required, more than 0) after the resource's last run or check, the automation
    runs with ``--check --diff``; a task that would change something is drift (status
    ``Drifted``). ``mode`` is ``check`` (the default, and the only mode for now);
    ``remediate`` (default false) then runs the automation for real.
``executor``
    ``local``, ``warm`` or ``job``: how this entry's runs are carried out; default: the
    operator's ``--executor``. ``job``: each run is a Kubernetes Job
    (bridge.executors.job.executor).
``job``
    The Job of ``executor: job``: ``image`` (default: the operator's ``--job-image``),
    ``resources`` (``{requests, limits}``), ``serviceAccount``, ``nodeSelector``,
    ``tolerations``, ``ttlSecondsAfterFinished`` (default 300) and ``namespace`` (default: the
    resource's; required for a cluster-scoped kind).

For the CRD (``ansible-bridge crd``, see :mod:`bridge.tools.crdgen`) and Secret references:

``argumentSpec``
    An argument-spec file (the format of a role's ``meta/argument_specs.yml``), relative to the
    watches file: the spec of a ``playbook``, or one that replaces a role's own.
``entryPoint``
    The role's entry point whose argument spec applies; default ``main``.
``secretOptions``
    Options (snake_case, as in the spec; ``db.password`` for a nested one) whose values come
    from Secrets, besides the spec's ``no_log: true`` options; checked against the spec.
``scope``
    ``Namespaced`` (default) or ``Cluster``.
``shortNames``
    The CRD's short names (lowercase, such as ``svccfg``).
``plural``
    The CRD's plural, when the derived one (``kind`` lower-cased + ``s``/``es``/``ies``) is wrong.

The argument spec (the ``argumentSpec`` file, else the role's own) is read at load time: an
``entryPoint`` it lacks is an error, and :attr:`~bridge.model.records.Watch.secret_options` gets
every
``no_log: true`` option of it (dotted paths) besides ``secretOptions``.

Values:

- Durations (``reconcilePeriod``, ``timeout``, ``drift.interval``) are Go durations (``30s``,
  ``1m30s``, ``1.5h``, ``500ms``) or a number of seconds; see :func:`parse_duration`.
- ``${VAR}`` in any string value (nested ``vars`` included) is replaced by ``VAR`` from the
  environment given to :func:`load_watches`; an undefined variable is an error. ``$${`` stands
  for a literal ``${``. Only the braced form is expanded: a bare ``$VAR`` stays as it is.
- Paths (``playbook``, ``role``, ``inventory`` and the finalizer's) are relative to the watches
  file's folder and must exist; they are returned absolute (normalized, symlinks kept).
- A ``role`` is looked up as the Operator SDK and Ansible do: as a path to a role folder, then
  in ``<watches folder>/roles/``, then in each folder of ``ANSIBLE_ROLES_PATH`` (and its
  ``roles/`` subfolder), then, for a ``namespace.collection.role`` name, under
  ``ansible_collections/<namespace>/<collection>/roles/<role>`` in each folder of
  ``ANSIBLE_COLLECTIONS_PATH`` and ``ANSIBLE_COLLECTIONS_PATHS``, ``<watches folder>/collections``,
  ``$HOME/.ansible/collections`` and ``/usr/share/ansible/collections``. Relative folders in those
  variables are taken relative to the watches file's folder.

The loader is pure: it reads the one file and the folders it names, and takes the environment as
an argument. The first problem found is raised as a :class:`~bridge.model.errors.WatchesError`
naming
the file, the entry (1-based) and the key; problems that do not stop the bridge are returned as
warning strings.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Hashable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml

from bridge.config.argspec import (
    ArgumentSpecError,
    find_option,
    load_argument_specs,
    role_argument_spec_file,
    secret_paths,
)
from bridge.config.credentials import CredentialsError, parse_credentials, parse_inventory
from bridge.model.errors import WatchesError
from bridge.model.watch import (
    Automation,
    CrdOptions,
    DependentsPolicy,
    EntryPoint,
    ExecutorChoice,
    FinalizerSpec,
    JobOptions,
    RunPolicy,
    Watch,
    WatchedKind,
)

__all__ = ["ENTRY_KEYS", "IGNORED_KEYS", "load_watches", "parse_duration"]

T = TypeVar("T")

#: Every key a watches entry may have, in the order they are validated.
ENTRY_KEYS: tuple[str, ...] = (
    "group",
    "version",
    "kind",
    "playbook",
    "role",
    "vars",
    "reconcilePeriod",
    "manageStatus",
    "finalizer",
    "selector",
    "snakeCaseParameters",
    "markUnsafe",
    "maxRunnerArtifacts",
    "watchAnnotationsChanges",
    "blacklist",
    "watchDependentResources",
    "watchClusterScopedResources",
    # bridge extensions
    "timeout",
    "inventory",
    "gatherFacts",
    "argumentSpec",
    "entryPoint",
    "secretOptions",
    "scope",
    "shortNames",
    "plural",
    "drift",
    "retry",
    "executor",
    "job",
    "credentials",
)

#: Operator SDK keys that are accepted so existing files load, but have no effect yet.
IGNORED_KEYS: tuple[str, ...] = ()
_GVK_KEYS = ("group", "version", "kind")

_FINALIZER_KEYS = ("name", "playbook", "role", "vars")
_DRIFT_KEYS = ("mode", "interval", "remediate")
_RETRY_KEYS = ("limit", "backoff")
_EXECUTORS = ("local", "warm", "job")
_JOB_KEYS = (
    "image",
    "resources",
    "serviceAccount",
    "nodeSelector",
    "tolerations",
    "ttlSecondsAfterFinished",
    "namespace",
)
_TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_QUANTITY_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([numkMGTPE]|[KMGTPE]i|[eE][+-]?\d+)?")
_JOB_NAMESPACE_NEEDED = (
    "a cluster-scoped kind with 'executor: job' needs job.namespace: where its runs' Jobs go"
)
_DRIFT_MODES = ("check",)
_SELECTOR_KEYS = ("matchLabels", "matchExpressions")
_EXPRESSION_KEYS = ("key", "operator", "values")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

_DEFAULT_TIMEOUT = 3600.0
_DEFAULT_MAX_ARTIFACTS = 20

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_GROUP_RE = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_VERSION_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_KIND_RE = re.compile(r"[A-Z][A-Za-z0-9]*")
_QUALIFIED_NAME_RE = re.compile(
    rf"({_DNS_LABEL}(\.{_DNS_LABEL})*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
_FQCN_RE = re.compile(r"([A-Za-z_]\w*)\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)")
_SCOPES = ("Namespaced", "Cluster")
_LABEL_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_ENTRY_POINT_RE = re.compile(r"[A-Za-z0-9_][-A-Za-z0-9_.]*")
_OPTION_PATH_RE = re.compile(r"[^.\s]+(\.[^.\s]+)*")

# ---------------------------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------------------------

#: Nanoseconds per Go duration unit (``µs`` is U+00B5 MICRO SIGN, ``μs`` U+03BC GREEK MU).
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION_RE = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_SECONDS_RE = re.compile(_NUMBER)
_DURATION_HINT = "is not a duration like 30s, 5m, 1h30m"


def parse_duration(value: str | float) -> float:
    """Return the seconds in a Go duration (``1h30m``, ``1.5h``, ``250ms``) or a number of seconds.

    Units are ``h``, ``m``, ``s``, ``ms``, ``us`` (or ``µs``) and ``ns``, combined largest first
    or in any order as Go allows; a plain number, or a string holding one (``"30"``), is seconds.
    Raises :class:`ValueError` for anything else, and for negative or infinite values (no
    duration in the bridge can be negative).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} {_DURATION_HINT}")
    if isinstance(value, str):
        text = value.strip()
        if _SECONDS_RE.fullmatch(text):
            return float(Fraction(text))
        if not _DURATION_RE.fullmatch(text):
            raise ValueError(f"{value!r} {_DURATION_HINT}")
        ns = sum(
            (Fraction(number) * _UNIT_NS[unit] for number, unit in _DURATION_PART.findall(text)),
            Fraction(0),
        )
        return float(ns / 1_000_000_000)
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} {_DURATION_HINT}")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative; a duration cannot be")
    return seconds


# ---------------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key repeated in one mapping (YAML keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.Node) -> dict[Hashable, Any]:
    assert isinstance(node, yaml.MappingNode)
    seen: dict[Hashable, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first set at line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WatchesError(f"cannot read the file: {exc.strerror or exc}", path=file) from exc
    except UnicodeDecodeError as exc:
        raise WatchesError(f"cannot read the file: not UTF-8 text ({exc})", path=file) from exc
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise WatchesError(f"YAML error{where}: {problem}", path=file) from exc
    except yaml.YAMLError as exc:
        raise WatchesError(f"YAML error: {exc}", path=file) from exc


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load_watches(path: Path, environ: Mapping[str, str]) -> tuple[list[Watch], list[str]]:
    """Read and validate the watches file at ``path``; return its watches and any warnings.

    ``environ`` supplies ``${VAR}`` values and the Ansible search paths (``ANSIBLE_ROLES_PATH``,
    ``ANSIBLE_COLLECTIONS_PATH(S)``, ``HOME``). Raises :class:`~bridge.model.errors.WatchesError`
    for
    the first problem found.
    """
    file = str(path)
    data = _read_yaml(path)
    if data is None:
        raise WatchesError("the file is empty; expected a list of watches entries", path=file)
    if not isinstance(data, list):
        raise WatchesError(f"expected a list of watches entries, got {_type_name(data)}", path=file)
    if not data:
        raise WatchesError("the list of watches entries is empty", path=file)

    base = Path(os.path.abspath(path)).parent
    watches: list[Watch] = []
    warnings: list[str] = []
    first_entry: dict[str, int] = {}
    for n, raw in enumerate(data, start=1):
        watch = _EntryReader(file, n, base, environ, warnings).read(raw)
        first = first_entry.setdefault(watch.key, n)
        if first != n:
            raise WatchesError(
                f"watches {watch.kind} {watch.api_version}, as entry {first} already does; "
                "each group/version/kind may appear in one entry only",
                path=file,
                entry=n,
            )
        watches.append(watch)
    return watches, warnings


class _EntryReader:
    """Validates one entry; every failure names the file, the entry and the key."""

    def __init__(
        self, file: str, n: int, base: Path, environ: Mapping[str, str], warnings: list[str]
    ) -> None:
        self.file = file
        self.n = n
        self.base = base
        self.environ = environ
        self.warnings = warnings

    # --- reporting ----------------------------------------------------------------------------

    def fail(self, key: str | None, message: str) -> NoReturn:
        raise WatchesError(message, path=self.file, entry=self.n, key=key)

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{self.file}: entry {self.n}: key '{key}': {message}")

    # --- the entry ----------------------------------------------------------------------------

    def read(self, raw: object) -> Watch:
        if not isinstance(raw, dict):
            self.fail(None, f"expected a mapping of watches keys, got {_type_name(raw)}")
        self.check_keys(raw, ENTRY_KEYS, "")
        entry: dict[str, Any] = {key: self.expand(value, key) for key, value in raw.items()}

        group = self.name(
            entry, "group", _GROUP_RE, "a lowercase DNS subdomain like cache.example.com"
        )
        version = self.name(entry, "version", _VERSION_RE, "a lowercase name like v1 or v1alpha1")
        kind = self.name(entry, "kind", _KIND_RE, "a CamelCase name like Memcached")

        playbook, role = self.automation(entry, "")
        if playbook is None and role is None:
            self.fail(None, "neither 'playbook' nor 'role' is set; set exactly one")

        for key in IGNORED_KEYS:
            if key in entry:
                self.warn(key, f"{key} is accepted but ignored in this version")
        mark_unsafe = self.boolean(entry, "markUnsafe", True)
        if not mark_unsafe:
            self.warn(
                "markUnsafe",
                f"markUnsafe is false: strings in {kind} resources will be evaluated as Jinja "
                "templates, so anyone who can edit one can run code in the operator",
            )
        gather_facts = self.boolean(entry, "gatherFacts", False)
        if gather_facts and playbook is not None:
            self.warn("gatherFacts", "gatherFacts applies to roles only; a playbook decides itself")

        timeout = self.duration(entry, "timeout", _DEFAULT_TIMEOUT)
        raw_inventory = entry.get("inventory")
        inventory = None if isinstance(raw_inventory, dict) else self.string(entry, "inventory")
        entry_point = self.entry_point(entry, playbook)
        spec_file, arguments = self.arguments(entry, role, entry_point)
        listed = self.names(entry, "secretOptions", _OPTION_PATH_RE, "a dotted option path")
        if arguments is not None:
            for i, path in enumerate(listed):
                found = find_option(arguments.options, path)
                if isinstance(found, str):
                    self.fail(f"secretOptions[{i}]", f"{found}, in {spec_file}")
        from_spec = secret_paths(arguments.options) if arguments is not None else ()
        drift_interval, drift_remediate = self.drift(entry)
        retry_limit, retry_backoff = self.retry(entry)
        executor, job = self.executor(entry)
        return Watch(
            resource=WatchedKind(
                group=group,
                version=version,
                kind=kind,
                plural=self.plural(entry),
                scope=self.scope(entry),
                short_names=self.names(
                    entry, "shortNames", _LABEL_RE, "a lowercase name like svccfg", unique=True
                ),
                selector=self.selector(entry),
            ),
            automation=Automation(
                playbook=playbook,
                role=role,
                vars=self.variables(entry, "vars"),
                finalizer=self.finalizer(entry),
                gather_facts=gather_facts,
                snake_case_parameters=self.boolean(entry, "snakeCaseParameters", True),
                mark_unsafe=mark_unsafe,
                timeout=timeout or None,
                inventory=None if inventory is None else self.inventory(inventory),
                inventory_source=(
                    self.access(parse_inventory, raw_inventory)
                    if isinstance(raw_inventory, dict)
                    else None
                ),
                credentials=(
                    None
                    if entry.get("credentials") is None
                    else self.access(parse_credentials, entry["credentials"])
                ),
            ),
            policy=RunPolicy(
                reconcile_period=self.duration(entry, "reconcilePeriod", None),
                manage_status=self.boolean(entry, "manageStatus", True),
                watch_annotations_changes=self.boolean(entry, "watchAnnotationsChanges", False),
                max_runner_artifacts=self.max_artifacts(entry),
                retry_limit=retry_limit,
                retry_backoff=retry_backoff,
                drift_interval=drift_interval,
                drift_remediate=drift_remediate,
            ),
            dependents=DependentsPolicy(
                enabled=self.boolean(entry, "watchDependentResources", True),
                cluster_scoped=self.boolean(entry, "watchClusterScopedResources", False),
                blacklist=self.blacklist(entry),
            ),
            executor=ExecutorChoice(name=executor, job=job),
            crd=CrdOptions(
                argument_spec=spec_file,
                entry_point=entry_point,
                secret_options=tuple(sorted(set(listed) | set(from_spec))),
                arguments=arguments,
            ),
            source=f"{self.file}: entry {self.n}",
        )

    # --- argument spec and CRD keys -----------------------------------------------------------

    def entry_point(self, entry: Mapping[str, Any], playbook: Path | None) -> str:
        value = self.string(entry, "entryPoint")
        if value is None:
            return "main"
        if not _ENTRY_POINT_RE.fullmatch(value):
            self.fail("entryPoint", f"{value!r} is not an entry point name like main or cleanup")
        if playbook is not None and "argumentSpec" not in entry:
            self.fail(
                "entryPoint",
                "entryPoint picks an entry point of a role's argument spec or of argumentSpec; "
                "this entry has a playbook and no argumentSpec",
            )
        return value

    def arguments(
        self, entry: Mapping[str, Any], role: Path | None, entry_point: str
    ) -> tuple[Path | None, EntryPoint | None]:
        """The argument-spec file and its entry point's spec: ``argumentSpec``, else the role's."""
        named = self.string(entry, "argumentSpec")
        key = "argumentSpec" if named is not None else "role"
        if named is not None:
            path = self.local(named)
            if not path.is_file():
                what = "is a folder, not a file" if path.is_dir() else "does not exist"
                self.fail(key, f"argument spec {named!r} not found: {path} {what}")
        elif role is not None:
            try:
                found = role_argument_spec_file(role)
            except ArgumentSpecError as exc:
                self.fail(key, f"the role's argument spec cannot be read: {exc}")
            if found is None:
                if "entryPoint" in entry:
                    self.fail(
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
            self.fail(key, f"invalid argument spec: {exc}")
        if entry_point not in specs:
            # A role without a spec for ``main`` just has none; anything else is a mistake.
            if named is None and "entryPoint" not in entry:
                return path, None
            known = ", ".join(specs) or "none"
            self.fail(
                "entryPoint" if "entryPoint" in entry else key,
                f"{path} has no entry point {entry_point!r} (entry points: {known})",
            )
        return path, specs[entry_point]

    def names(
        self,
        mapping: Mapping[str, Any],
        key: str,
        pattern: re.Pattern[str],
        like: str,
        *,
        unique: bool = False,
    ) -> tuple[str, ...]:
        """An optional list of strings matching ``pattern``; () when absent or null."""
        value = mapping.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(key, f"expected a list of strings, got {_type_name(value)}")
        seen: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{key}[{i}]", f"expected a string, got {_type_name(item)}")
            if not pattern.fullmatch(item) or len(item) > 63:
                self.fail(f"{key}[{i}]", f"{item!r} is not {like}")
            if unique and item in seen:
                self.fail(f"{key}[{i}]", f"{item!r} is listed twice")
            seen.add(item)
        return tuple(dict.fromkeys(value))

    def scope(self, entry: Mapping[str, Any]) -> str:
        value = entry.get("scope")
        if value is None:
            return "Namespaced"
        if value not in _SCOPES:
            self.fail("scope", f"expected Namespaced or Cluster, got {_type_name(value)}")
        return str(value)

    def plural(self, entry: Mapping[str, Any]) -> str | None:
        value = self.string(entry, "plural")
        if value is not None and (not _LABEL_RE.fullmatch(value) or len(value) > 63):
            self.fail("plural", f"{value!r} is not a lowercase name like websites")
        return value

    def finalizer(self, entry: Mapping[str, Any]) -> FinalizerSpec | None:
        raw = entry.get("finalizer")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.fail("finalizer", f"expected a mapping with 'name', got {_type_name(raw)}")
        self.check_keys(raw, _FINALIZER_KEYS, "finalizer.")
        name = self.name(
            raw,
            "name",
            _QUALIFIED_NAME_RE,
            "a qualified name like cache.example.com/finalizer",
            prefix="finalizer.",
        )
        playbook, role = self.automation(raw, "finalizer.")
        if playbook is None and role is None and not raw.get("vars"):
            self.fail("finalizer", "needs 'playbook', 'role' or 'vars' besides 'name'")
        return FinalizerSpec(
            name=name, playbook=playbook, role=role, vars=self.variables(raw, "vars", "finalizer.")
        )

    def drift(self, entry: Mapping[str, Any]) -> tuple[float | None, bool]:
        """``drift``: the seconds between checks (None: no checks) and whether to remediate."""
        raw = entry.get("drift")
        if raw is None:
            return None, False
        if not isinstance(raw, dict):
            self.fail(
                "drift",
                f"expected a mapping like {{mode: check, interval: 10m}}, got {_type_name(raw)}",
            )
        self.check_keys(raw, _DRIFT_KEYS, "drift.")
        mode = raw.get("mode")
        if mode is not None and mode not in _DRIFT_MODES:
            self.fail("drift.mode", f"expected {' or '.join(_DRIFT_MODES)}, got {_type_name(mode)}")
        if "interval" not in raw:
            self.fail("drift.interval", "missing required key 'interval' (a duration like 10m)")
        interval = self.duration(raw, "interval", None, prefix="drift.")
        if interval is None:
            self.fail("drift.interval", "expected a duration (like 10m), got null")
        if interval == 0:
            self.fail("drift.interval", "must be more than 0; leave out 'drift' to turn checks off")
        return interval, self.boolean(raw, "remediate", False, prefix="drift.")

    def executor(self, entry: Mapping[str, Any]) -> tuple[str | None, JobOptions | None]:
        """``executor`` (None: the operator's ``--executor``) and ``job`` (its Job's options)."""
        executor = entry.get("executor")
        if executor is not None and executor not in _EXECUTORS:
            self.fail(
                "executor", f"expected one of {', '.join(_EXECUTORS)}, got {_type_name(executor)}"
            )
        raw = entry.get("job")
        if raw is None:
            if executor == "job" and self.scope(entry) == "Cluster":
                self.fail("job.namespace", _JOB_NAMESPACE_NEEDED)
            return executor, JobOptions() if executor == "job" else None
        if executor != "job":
            self.warn("job", "job applies to 'executor: job' only; this entry does not set it")
        if not isinstance(raw, dict):
            self.fail(
                "job",
                f"expected a mapping like {{image: ..., resources: ...}}, got {_type_name(raw)}",
            )
        self.check_keys(raw, _JOB_KEYS, "job.")
        resources = self.job_resources(raw.get("resources"))
        account = self.string(raw, "serviceAccount", "job.")
        if account is not None and not _GROUP_RE.fullmatch(account):
            self.fail("job.serviceAccount", f"{account!r} is not a ServiceAccount name")
        selector = raw.get("nodeSelector") or {}
        if not isinstance(selector, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in selector.items()
        ):
            self.fail(
                "job.nodeSelector",
                "expected a mapping of label names to strings (quote numbers and booleans)",
            )
        tolerations = raw.get("tolerations") or []
        if not isinstance(tolerations, list):
            self.fail(
                "job.tolerations", f"expected a list of tolerations, got {_type_name(tolerations)}"
            )
        for i, toleration in enumerate(tolerations):
            self.toleration(toleration, f"job.tolerations[{i}]")
        ttl = raw.get("ttlSecondsAfterFinished", 300)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            self.fail(
                "job.ttlSecondsAfterFinished",
                f"expected an integer of 0 or more, got {_type_name(ttl)}",
            )
        namespace = self.string(raw, "namespace", "job.")
        if namespace is not None and (not _LABEL_RE.fullmatch(namespace) or len(namespace) > 63):
            self.fail("job.namespace", f"{namespace!r} is not a namespace name")
        if namespace is None and executor == "job" and self.scope(entry) == "Cluster":
            self.fail("job.namespace", _JOB_NAMESPACE_NEEDED)
        return executor, JobOptions(
            image=self.string(raw, "image", "job."),
            resources=resources,
            service_account=account,
            node_selector=dict(selector),
            tolerations=tuple(dict(t) for t in tolerations),
            ttl_seconds_after_finished=ttl,
            namespace=namespace,
        )

    def job_resources(self, raw: object) -> dict[str, Any]:
        """``job.resources``: ``{requests, limits}`` of quantities (``500m``, ``1Gi``, 2)."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.fail(
                "job.resources",
                f"expected a mapping with requests and/or limits, got {_type_name(raw)}",
            )
        self.check_keys(raw, ("requests", "limits"), "job.resources.")
        for part, amounts in raw.items():
            if not isinstance(amounts, dict):
                self.fail(
                    f"job.resources.{part}",
                    f"expected a mapping like {{cpu: 1, memory: 1Gi}}, got {_type_name(amounts)}",
                )
            for name, amount in amounts.items():
                ok = isinstance(amount, int | float) and not isinstance(amount, bool)
                if not ok and not (isinstance(amount, str) and _QUANTITY_RE.fullmatch(amount)):
                    self.fail(
                        f"job.resources.{part}.{name}",
                        f"{amount!r} is not a quantity like 500m or 1Gi",
                    )
        return dict(raw)

    def toleration(self, value: object, key: str) -> None:
        if not isinstance(value, dict):
            self.fail(
                key,
                f"expected a mapping like {{key, operator, effect}}, got {_type_name(value)}",
            )
        self.check_keys(value, _TOLERATION_KEYS, f"{key}.")
        operator = value.get("operator", "Equal")
        if operator not in ("Equal", "Exists"):
            self.fail(f"{key}.operator", f"expected Equal or Exists, got {_type_name(operator)}")
        effect = value.get("effect")
        if effect is not None and effect not in _EFFECTS:
            self.fail(
                f"{key}.effect", f"expected one of {', '.join(_EFFECTS)}, got {_type_name(effect)}"
            )
        for name in ("key", "value"):
            if name in value and not isinstance(value[name], str):
                self.fail(f"{key}.{name}", f"expected a string, got {_type_name(value[name])}")
        seconds = value.get("tolerationSeconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
            self.fail(f"{key}.tolerationSeconds", f"expected an integer, got {_type_name(seconds)}")

    def retry(self, entry: Mapping[str, Any]) -> tuple[int | None, float | None]:
        """``retry``: how often a failed run is retried, and the first back-off in seconds
        (None: the operator's defaults)."""
        raw = entry.get("retry")
        if raw is None:
            return None, None
        if not isinstance(raw, dict):
            self.fail(
                "retry",
                f"expected a mapping like {{limit: 3, backoff: 10s}}, got {_type_name(raw)}",
            )
        self.check_keys(raw, _RETRY_KEYS, "retry.")
        limit = raw.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            self.fail("retry.limit", f"expected an integer, got {_type_name(limit)}")
        if limit is not None and limit < 0:
            self.fail("retry.limit", f"must be 0 (no retries) or more, got {limit}")
        backoff = self.duration(raw, "backoff", None, prefix="retry.")
        if backoff is not None and backoff <= 0:
            self.fail("retry.backoff", "must be more than 0")
        return limit, backoff

    def access(self, parse: Callable[[object], T], raw: object) -> T:
        """``inventory`` (a mapping) or ``credentials``, parsed by bridge.config.credentials."""
        try:
            return parse(raw)
        except CredentialsError as exc:
            self.fail(exc.key, str(exc))

    # --- keys and values ----------------------------------------------------------------------

    def check_keys(self, mapping: Mapping[Any, Any], allowed: tuple[str, ...], prefix: str) -> None:
        for key in mapping:
            if key in allowed:
                continue
            suggestion = _nearest(key, allowed) if isinstance(key, str) else None
            if suggestion:
                message = f"unknown key {key!r}; did you mean {suggestion!r}?"
            else:
                message = f"unknown key {key!r}; valid keys: {', '.join(allowed)}"
            self.fail(f"{prefix}{key}", message)

    def expand(self, value: Any, key: str) -> Any:
        """Expand ``${VAR}`` in every string inside ``value``."""
        if isinstance(value, str):
            return self.expand_string(value, key)
        if isinstance(value, list):
            return [self.expand(item, f"{key}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.expand(item, f"{key}.{k}") for k, item in value.items()}
        return value

    def expand_string(self, text: str, key: str) -> str:
        parts: list[str] = []
        end = 0
        for match in _VAR_REF.finditer(text):
            parts.append(text[end : match.start()])
            end = match.end()
            if match.group(0) == "$${":
                parts.append("${")
                continue
            name = match.group(1)
            if name is None:
                self.fail(
                    key,
                    f"bad variable reference in {text!r}: '${{' must be followed by a variable "
                    "name and '}' (write '$${' for a literal '${')",
                )
            if name not in self.environ:
                self.fail(key, f"environment variable {name!r} is not defined (used in {text!r})")
            parts.append(self.environ[name])
        parts.append(text[end:])
        return "".join(parts)

    def string(self, mapping: Mapping[str, Any], key: str, prefix: str = "") -> str | None:
        """An optional non-empty string; None when absent or null."""
        value = mapping.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(prefix + key, f"expected a string, got {_type_name(value)}")
        if not value.strip():
            self.fail(prefix + key, "must not be empty")
        return value

    def name(
        self,
        mapping: Mapping[str, Any],
        key: str,
        pattern: re.Pattern[str],
        like: str,
        *,
        prefix: str = "",
    ) -> str:
        """A required string matching ``pattern``."""
        if key not in mapping:
            self.fail(prefix + key, f"missing required key '{key}'")
        value = mapping[key]
        if not isinstance(value, str):
            self.fail(prefix + key, f"expected a string, got {_type_name(value)}")
        if not value:
            self.fail(prefix + key, "must not be empty")
        if not pattern.fullmatch(value) or len(value) > 253:
            self.fail(prefix + key, f"{value!r} is not {like}")
        return value

    def boolean(
        self, mapping: Mapping[str, Any], key: str, default: bool, *, prefix: str = ""
    ) -> bool:
        value = mapping.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(prefix + key, f"expected a boolean (true or false), got {_type_name(value)}")
        return value

    def duration(
        self, mapping: Mapping[str, Any], key: str, default: float | None, *, prefix: str = ""
    ) -> float | None:
        """A duration in seconds; ``default`` when absent, None when null."""
        if key not in mapping:
            return default
        value = mapping[key]
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(
                prefix + key,
                f"expected a duration (like 30s, 5m, 1h30m) or a number of seconds, "
                f"got {_type_name(value)}",
            )
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(prefix + key, str(exc))

    def max_artifacts(self, mapping: Mapping[str, Any]) -> int:
        value = mapping.get("maxRunnerArtifacts")
        if value is None:
            return _DEFAULT_MAX_ARTIFACTS
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail("maxRunnerArtifacts", f"expected an integer, got {_type_name(value)}")
        if value < 1:
            self.fail("maxRunnerArtifacts", f"must be at least 1, got {value}")
        return value

    def variables(self, mapping: Mapping[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
        value = mapping.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(prefix + key, f"expected a mapping, got {_type_name(value)}")
        for name in value:
            if not isinstance(name, str):
                self.fail(
                    prefix + key, f"variable names must be strings, got {_type_name(name)} {name!r}"
                )
        return value

    def blacklist(self, entry: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
        """``blacklist``: ``[{group, version, kind}]`` (group empty or absent: the core group)."""
        value = entry.get("blacklist")
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(
                "blacklist",
                f"expected a list of {{group, version, kind}}, got {_type_name(value)}",
            )
        found = []
        for i, item in enumerate(value):
            key = f"blacklist[{i}]"
            if not isinstance(item, dict):
                self.fail(
                    key, f"expected a mapping with group, version, kind, got {_type_name(item)}"
                )
            self.check_keys(item, _GVK_KEYS, f"{key}.")
            group = item.get("group") or ""
            if group:
                group = self.name(item, "group", _GROUP_RE, "an API group", prefix=f"{key}.")
            version = self.name(item, "version", _VERSION_RE, "a version like v1", prefix=f"{key}.")
            kind = self.name(item, "kind", _KIND_RE, "a CamelCase kind", prefix=f"{key}.")
            found.append((group, version, kind))
        return tuple(found)

    def selector(self, entry: Mapping[str, Any]) -> dict[str, Any] | None:
        value = entry.get("selector")
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(
                "selector",
                f"expected a mapping with matchLabels and/or matchExpressions, "
                f"got {_type_name(value)}",
            )
        self.check_keys(value, _SELECTOR_KEYS, "selector.")
        labels = value.get("matchLabels")
        if labels is not None:
            if not isinstance(labels, dict):
                self.fail(
                    "selector.matchLabels",
                    f"expected a mapping of label names to values, got {_type_name(labels)}",
                )
            for label, label_value in labels.items():
                if not isinstance(label, str):
                    self.fail("selector.matchLabels", f"label names must be strings, got {label!r}")
                if not isinstance(label_value, str):
                    self.fail(
                        f"selector.matchLabels.{label}",
                        f"expected a string, got {_type_name(label_value)} "
                        "(quote numbers and booleans)",
                    )
        expressions = value.get("matchExpressions")
        if expressions is not None:
            if not isinstance(expressions, list):
                self.fail(
                    "selector.matchExpressions",
                    f"expected a list of {{key, operator, values}}, got {_type_name(expressions)}",
                )
            for i, expression in enumerate(expressions):
                self.expression(expression, f"selector.matchExpressions[{i}]")
        if not labels and not expressions:
            return None
        return value

    def expression(self, value: object, key: str) -> None:
        if not isinstance(value, dict):
            self.fail(
                key, f"expected a mapping with key, operator, values, got {_type_name(value)}"
            )
        self.check_keys(value, _EXPRESSION_KEYS, f"{key}.")
        label = value.get("key")
        if not isinstance(label, str) or not label:
            self.fail(f"{key}.key", f"expected a label name, got {_type_name(label)}")
        operator = value.get("operator")
        if operator not in _OPERATORS:
            self.fail(
                f"{key}.operator",
                f"expected one of {', '.join(_OPERATORS)}, got {operator!r}",
            )
        values = value.get("values")
        if values is not None and (
            not isinstance(values, list) or not all(isinstance(v, str) for v in values)
        ):
            self.fail(f"{key}.values", f"expected a list of strings, got {values!r}")
        if operator in ("In", "NotIn") and not values:
            self.fail(f"{key}.values", f"operator {operator} needs a non-empty list of values")
        if operator in ("Exists", "DoesNotExist") and values:
            self.fail(f"{key}.values", f"operator {operator} takes no values")

    # --- paths --------------------------------------------------------------------------------

    def automation(
        self, mapping: Mapping[str, Any], prefix: str
    ) -> tuple[Path | None, Path | None]:
        """The ``playbook`` or ``role`` of ``mapping`` (the entry or its finalizer), resolved."""
        playbook = self.string(mapping, "playbook", prefix)
        role = self.string(mapping, "role", prefix)
        if playbook is not None and role is not None:
            self.fail(prefix.rstrip(".") or None, "both 'playbook' and 'role' are set; use one")
        return (
            None if playbook is None else self.playbook(playbook, prefix + "playbook"),
            None if role is None else self.role(role, prefix + "role"),
        )

    def local(self, value: str) -> Path:
        """``value`` as an absolute path, relative to the watches file's folder."""
        return Path(os.path.normpath(self.base / value))

    def playbook(self, value: str, key: str) -> Path:
        path = self.local(value)
        if path.is_file():
            return path
        if path.is_dir():
            self.fail(key, f"playbook {value!r} is a folder, not a file: {path}")
        self.fail(key, f"playbook {value!r} not found: {path} does not exist")

    def inventory(self, value: str) -> Path:
        path = self.local(value)
        if not path.exists():
            self.fail("inventory", f"inventory {value!r} not found: {path} does not exist")
        return path

    def role(self, value: str, key: str) -> Path:
        candidates = list(dict.fromkeys(self.role_candidates(value)))
        for candidate in candidates:
            if candidate.is_dir():
                return candidate
        looked = ", ".join(str(c) for c in candidates)
        self.fail(key, f"role {value!r} not found; looked in: {looked}")

    def role_candidates(self, value: str) -> Iterator[Path]:
        """Where the role named ``value`` may be, in the order the Operator SDK looks."""
        if os.path.isabs(value):
            yield Path(os.path.normpath(value))
            return
        yield self.local(value)
        yield self.local(os.path.join("roles", value))
        for folder in self.env_paths("ANSIBLE_ROLES_PATH"):
            yield Path(os.path.normpath(folder / value))
            yield Path(os.path.normpath(folder / "roles" / value))
        fqcn = _FQCN_RE.fullmatch(value)
        if fqcn is None:
            return
        namespace, collection, role = fqcn.groups()
        roots = [
            *self.env_paths("ANSIBLE_COLLECTIONS_PATH"),
            *self.env_paths("ANSIBLE_COLLECTIONS_PATHS"),
            self.base / "collections",
        ]
        home = self.environ.get("HOME")
        if home:
            roots.append(Path(home) / ".ansible" / "collections")
        roots.append(Path("/usr/share/ansible/collections"))
        for root in roots:
            if root.name != "ansible_collections":
                root = root / "ansible_collections"
            yield Path(os.path.normpath(root / namespace / collection / "roles" / role))

    def env_paths(self, name: str) -> list[Path]:
        """The folders of a colon-separated path variable: ``~`` expanded, relative to the base."""
        home = self.environ.get("HOME")
        folders = []
        for item in self.environ.get(name, "").split(":"):
            if not item:
                continue
            if home and (item == "~" or item.startswith("~/")):
                item = home + item[1:]
            folders.append(self.local(item))
        return folders


_VAR_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")


def _nearest(key: str, allowed: tuple[str, ...]) -> str | None:
    """The valid key ``key`` was probably meant to be, if one is close enough."""

    def fold(s: str) -> str:
        return s.replace("_", "").replace("-", "").lower()

    folded = {fold(k): k for k in allowed}
    if fold(key) in folded:
        return folded[fold(key)]
    match = difflib.get_close_matches(fold(key), list(folded), n=1, cutoff=0.6)
    return folded[match[0]] if match else None


def _type_name(value: object) -> str:
    """How a YAML value's type is named in messages: "a string", "an integer", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__} ({value})"
