"""The Operator SDK's (ansible-operator's) options, read its way: per-kind environment variables,
per-resource annotations, ``WATCH_NAMESPACE`` and ``--ansible-args``. Pure: no I/O, no state.

What the SDK reads, and how it is taken here:

* ``MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>`` (and its deprecated name ``WORKER_<KIND>_<GROUP>``):
  how many resources of one kind run at once. The name is the SDK's: ``<KIND>_<GROUP>``
  upper-cased with ``.`` as ``_`` (a ``-`` of the group stays, as in the SDK; the name with ``-``
  as ``_``, which a shell can set, is read too). A value that is not a positive integer is an
  error here (the SDK logs it and uses its default).
* ``ANSIBLE_VERBOSITY_<KIND>_<GROUP>``: the ``-v`` count (0-7) of that kind's runs.
* ``WATCH_NAMESPACE``: comma-separated namespaces to serve; empty means all.
* ``--ansible-args``: extra ``ansible-playbook`` options for every run (one shell-quoted string).
* ``--reconcile-period`` (watches without ``reconcilePeriod``), ``--ansible-verbosity``, and
  ``--max-concurrent-reconciles`` (an alias of ``--max-concurrent-runs``, in
  :mod:`bridge.cli.main`):
  applied by :func:`configure`.
* The annotations ``ansible.sdk.operatorframework.io/verbosity`` (0-7) and
  ``ansible.sdk.operatorframework.io/max-runner-artifacts`` (an integer >= 0) override the kind's
  values for one resource; a bad value is reported and the default applies (as in the SDK).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.config.settings import RunnerSettings
from bridge.model.annotations import SDK_MAX_RUNNER_ARTIFACTS, SDK_VERBOSITY
from bridge.model.units import parse_duration
from bridge.model.watch import Watch

#: Ansible's highest meaningful verbosity (``-vvvvvvv``), as the SDK bounds it.
MAX_VERBOSITY = 7

_INTEGER = re.compile(r"^[+-]?\d+$")


class OptionError(ValueError):
    """A bad value of an SDK environment variable or flag; the message names it."""


def env_names(prefix: str, kind: str, group: str) -> tuple[str, ...]:
    """The environment variable names the SDK reads for a kind, its own first:
    ``MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM``. For a group with ``-`` the name
    with ``-`` as ``_`` follows (a shell cannot set the SDK's)."""
    name = f"{prefix}_{kind}_{group}".replace(".", "_").upper()
    names = [name]
    if "-" in name:
        names.append(name.replace("-", "_"))
    return tuple(names)


def _integer(name: str, text: str) -> int:
    text = text.strip()
    if not _INTEGER.match(text):
        raise OptionError(f"{name}={text!r}: not an integer")
    return int(text)


def _lookup(environ: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        if name in environ:
            return name, environ[name]
    return None


def max_concurrent_reconciles(environ: Mapping[str, str], kind: str, group: str) -> int | None:
    """The kind's run limit from ``MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>`` (or the deprecated
    ``WORKER_<KIND>_<GROUP>``); None when neither is set. Raises :class:`OptionError`."""
    found = _lookup(environ, env_names("MAX_CONCURRENT_RECONCILES", kind, group))
    found = found or _lookup(environ, env_names("WORKER", kind, group))
    if found is None:
        return None
    name, text = found
    value = _integer(name, text)
    if value < 1:
        raise OptionError(f"{name}={text!r}: must be at least 1")
    return value


def check_verbosity(name: str, value: int) -> int:
    """``value`` if it is a valid ``-v`` count (0-7), else :class:`OptionError` naming ``name``."""
    if not 0 <= value <= MAX_VERBOSITY:
        raise OptionError(f"{name}={value}: must be between 0 and {MAX_VERBOSITY}")
    return value


def ansible_verbosity(environ: Mapping[str, str], kind: str, group: str) -> int | None:
    """The kind's ``-v`` count from ``ANSIBLE_VERBOSITY_<KIND>_<GROUP>``; None when unset.
    Raises :class:`OptionError`."""
    found = _lookup(environ, env_names("ANSIBLE_VERBOSITY", kind, group))
    if found is None:
        return None
    name, text = found
    return check_verbosity(name, _integer(name, text))


def watch_namespaces(value: str) -> tuple[str, ...]:
    """``WATCH_NAMESPACE``: comma-separated namespaces (blanks ignored); () means all."""
    return tuple(dict.fromkeys(ns.strip() for ns in value.split(",") if ns.strip()))


def ansible_args(value: str) -> str:
    """``--ansible-args`` checked: a shell-quoted string of ``ansible-playbook`` options, returned
    normalized (re-quoted); raises :class:`OptionError` when it cannot be split."""
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise OptionError(f"--ansible-args {value!r}: {exc}") from None
    return shlex.join(words)


def combine_cmdline(*parts: str | None) -> str | None:
    """ansible-runner's ``cmdline`` from several option strings (None when all are empty)."""
    joined = " ".join(p.strip() for p in parts if p and p.strip())
    return joined or None


@dataclass(frozen=True)
class RunOverrides:
    """What a resource's SDK annotations set for its runs, and what was wrong with them."""

    #: The ``-v`` count (None: the annotation is absent or bad).
    verbosity: int | None = None
    #: Artifact folders kept (None: the annotation is absent or bad).
    max_artifacts: int | None = None
    #: One message per bad annotation, naming it and its value.
    problems: tuple[str, ...] = ()


def run_overrides(annotations: Mapping[str, object] | None) -> RunOverrides:
    """The run options a resource's SDK annotations set (see the module docstring)."""
    annotations = annotations or {}
    verbosity: int | None = None
    max_artifacts: int | None = None
    problems: list[str] = []
    if SDK_VERBOSITY in annotations:
        text = str(annotations[SDK_VERBOSITY]).strip()
        if _INTEGER.match(text) and 0 <= int(text) <= MAX_VERBOSITY:
            verbosity = int(text)
        else:
            problems.append(
                f"annotation {SDK_VERBOSITY}: {text!r} is not a verbosity from 0 to "
                f"{MAX_VERBOSITY}; the default applies"
            )
    if SDK_MAX_RUNNER_ARTIFACTS in annotations:
        text = str(annotations[SDK_MAX_RUNNER_ARTIFACTS]).strip()
        if _INTEGER.match(text) and int(text) >= 0:
            max_artifacts = int(text)
        else:
            problems.append(
                f"annotation {SDK_MAX_RUNNER_ARTIFACTS}: {text!r} is not a number of artifact "
                "folders (an integer >= 0); the watch's maxRunnerArtifacts applies"
            )
    return RunOverrides(verbosity, max_artifacts, tuple(problems))


def configure(
    watches: Sequence[Watch],
    runner: RunnerSettings,
    environ: Mapping[str, str],
    *,
    reconcile_period: str | None = None,
    ansible_args_flag: str | None = None,
    ansible_verbosity_flag: int | None = None,
) -> tuple[tuple[Watch, ...], RunnerSettings]:
    """The watches and runner settings with the SDK's flags and per-kind variables applied:
    ``--reconcile-period`` for watches without ``reconcilePeriod``, ``--ansible-args``,
    ``--ansible-verbosity``, ``ANSIBLE_VERBOSITY_<KIND>_<GROUP>`` and
    ``MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>``. Raises :class:`OptionError` naming the flag or
    variable."""
    result = tuple(watches)
    if reconcile_period is not None:
        try:
            period = parse_duration(reconcile_period)
        except ValueError as exc:
            raise OptionError(f"--reconcile-period: {exc}") from None
        result = tuple(
            (
                dataclasses.replace(
                    w, policy=dataclasses.replace(w.policy, reconcile_period=period)
                )
                if w.policy.reconcile_period is None
                else w
            )
            for w in result
        )
    changes: dict[str, object] = {}
    if ansible_args_flag:
        changes["ansible_args"] = ansible_args(ansible_args_flag)
    if ansible_verbosity_flag is not None:
        changes["ansible_verbosity"] = check_verbosity(
            "--ansible-verbosity", ansible_verbosity_flag
        )
    verbosity: dict[str, int] = {}
    max_runs: dict[str, int] = {}
    for watch in result:
        level = ansible_verbosity(environ, watch.kind, watch.group)
        if level is not None:
            verbosity[watch.key] = level
        limit = max_concurrent_reconciles(environ, watch.kind, watch.group)
        if limit is not None:
            max_runs[watch.key] = limit
    if verbosity:
        changes["watch_verbosity"] = verbosity
    if max_runs:
        changes["watch_max_runs"] = max_runs
    return result, dataclasses.replace(runner, **changes)  # type: ignore[arg-type]
