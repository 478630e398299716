"""Load an Operator SDK watches.yaml file and validate it into the bridge's :class:`Watch` records.

The file is a YAML list of entries, accepted as the Ansible operator of the Operator SDK writes
it. Each entry maps one kind (``group``, ``version``, ``kind``) to exactly one of ``playbook``
or ``role``, with the optional keys ``vars``, ``reconcilePeriod``, ``manageStatus``,
``finalizer`` (``name`` and at least one of ``playbook``, ``role``, ``vars``), ``selector``
(``matchLabels`` / ``matchExpressions``), ``snakeCaseParameters``, ``markUnsafe``,
``maxRunnerArtifacts``, ``watchAnnotationsChanges``, ``watchDependentResources``,
``watchClusterScopedResources`` and ``blacklist`` (a list of ``{group, version, kind}``: dependent
kinds never watched; see bridge.kube.dependents). Unlike the Operator SDK, ``markUnsafe`` defaults
to true: strings from the resource are never evaluated as Jinja templates unless an entry sets
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
``entryPoint`` it lacks is an error, and :attr:`~bridge.model.watch.CrdOptions.secret_options`
gets every ``no_log: true`` option of it (dotted paths) besides ``secretOptions``.

Values:

- Durations (``reconcilePeriod``, ``timeout``, ``drift.interval``) are Go durations (``30s``,
  ``1m30s``, ``1.5h``, ``500ms``) or a number of seconds; see
  :func:`bridge.model.units.parse_duration`.
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
naming the file, the entry (1-based) and the key; problems that do not stop the bridge are
returned as warning strings.

This package reads an entry the way :class:`~bridge.model.watch.Watch` is built: a key reader
for the primitives (:mod:`.keys`) and one reader per section (:mod:`.resource`,
:mod:`.automation`, :mod:`.policy`, :mod:`.dependents`, :mod:`.executor`, :mod:`.crd`), composed
here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.config.watches.automation import read_automation
from bridge.config.watches.crd import read_crd
from bridge.config.watches.dependents import read_dependents
from bridge.config.watches.executor import read_executor
from bridge.config.watches.keys import KeyReader, type_name
from bridge.config.watches.policy import read_policy
from bridge.config.watches.resource import read_resource
from bridge.config.yamlfile import StrictLoader, read_yaml
from bridge.model.errors import WatchesError
from bridge.model.units import parse_duration
from bridge.model.watch import Watch

__all__ = ["ENTRY_KEYS", "IGNORED_KEYS", "load_watches", "parse_duration"]

#: Every key a watches entry may have, in the order unknown-key messages list them.
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


def load_watches(path: Path, environ: Mapping[str, str]) -> tuple[list[Watch], list[str]]:
    """Read and validate the watches file at ``path``; return its watches and any warnings.

    ``environ`` supplies ``${VAR}`` values and the Ansible search paths (``ANSIBLE_ROLES_PATH``,
    ``ANSIBLE_COLLECTIONS_PATH(S)``, ``HOME``). Raises :class:`~bridge.model.errors.WatchesError`
    for the first problem found.
    """
    file = str(path)
    data = read_yaml(path, WatchesError, loader=StrictLoader)
    if data is None:
        raise WatchesError("the file is empty; expected a list of watches entries", path=file)
    if not isinstance(data, list):
        raise WatchesError(f"expected a list of watches entries, got {type_name(data)}", path=file)
    if not data:
        raise WatchesError("the list of watches entries is empty", path=file)

    base = Path(os.path.abspath(path)).parent
    watches: list[Watch] = []
    warnings: list[str] = []
    first_entry: dict[str, int] = {}
    for n, raw in enumerate(data, start=1):
        watch = read_entry(KeyReader(file, n, base, environ, warnings), raw)
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


def read_entry(keys: KeyReader, raw: object) -> Watch:
    """One entry, read section by section (the first problem found is raised by ``keys``)."""
    if not isinstance(raw, dict):
        keys.fail(None, f"expected a mapping of watches keys, got {type_name(raw)}")
    keys.check_keys(raw, ENTRY_KEYS, "")
    entry: dict[str, Any] = {key: keys.expand(value, key) for key, value in raw.items()}
    for key in IGNORED_KEYS:
        if key in entry:
            keys.warn(key, f"{key} is accepted but ignored in this version")
    resource = read_resource(keys, entry)
    automation = read_automation(keys, entry, resource.kind)
    return Watch(
        resource=resource,
        automation=automation,
        crd=read_crd(keys, entry, automation),
        policy=read_policy(keys, entry),
        dependents=read_dependents(keys, entry),
        executor=read_executor(keys, entry, resource.scope),
        source=f"{keys.file}: entry {keys.n}",
    )
