"""The settings tree of ``run`` and ``dev``: options, environment and watches file, checked once.

Every mistake is said here, before anything starts, as one ``ansible-bridge: ...`` line and exit
code 2; everything below receives the finished :class:`~bridge.config.settings.OperatorSettings`.

The kubeconfig is found as controller-runtime and kubectl find it: ``--kubeconfig``, then
``$KUBECONFIG``, then (``None``) the in-cluster service account or ``~/.kube/config``. A run's
access to the API is the operator's to give: with ``--inject-owner-ref`` (the default) only the
API proxy and the run's own token (:mod:`bridge.kube.proxy`), so the operator's kubeconfig and
every ``K8S_AUTH_*`` variable it was started with are kept from runs (:func:`withhold_credentials`);
with ``--inject-owner-ref=false``, the operator's kubeconfig as ``K8S_AUTH_KUBECONFIG``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from bridge.config.settings import (
    HttpSettings,
    JobSettings,
    LeaderElectionSettings,
    OperatorSettings,
    RunnerSettings,
    ScopeSettings,
)
from bridge.kube.client import AUTH_KUBECONFIG
from bridge.model.errors import WatchesError

#: The Kubernetes clients' variable naming kubeconfig files (``os.pathsep``-separated).
KUBECONFIG = "KUBECONFIG"
#: The prefix of the variables through which Kubernetes modules take credentials.
AUTH_PREFIX = "K8S_AUTH_"


def _error(message: str) -> int:
    print(f"ansible-bridge: {message}", file=sys.stderr)
    return 2


def _file_problem(path: Path) -> str | None:
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a file"
    if not os.access(path, os.R_OK):
        return "not readable"
    return None


def kubeconfig_path(option: str | None, environ: Mapping[str, str]) -> Path | int | None:
    """The operator's kubeconfig: ``--kubeconfig`` (``option``), else the files of
    ``$KUBECONFIG`` that exist (kept ``os.pathsep``-joined when several: the client merges them),
    else None (the in-cluster account or ``~/.kube/config``); or exit code 2 after one line
    naming the file that is missing."""
    if option:
        path = Path(option).expanduser().resolve()
        problem = _file_problem(path)
        return _error(f"--kubeconfig {option}: {problem}") if problem else path
    listed = environ.get(KUBECONFIG, "")
    if not listed:
        return None
    paths = [Path(p).expanduser().resolve() for p in listed.split(os.pathsep) if p]
    usable = [p for p in paths if _file_problem(p) is None]
    if not usable:
        problem = _file_problem(paths[0]) if len(paths) == 1 else "none of its files exists"
        return _error(f"{KUBECONFIG}={listed}: {problem}")
    return Path(os.pathsep.join(str(p) for p in usable))


def check_kubeconfig(kubeconfig: Path | None) -> int | None:
    """None when the client can load ``kubeconfig`` (None: the in-cluster account or
    ``~/.kube/config``), else exit code 2 after one line saying why (nothing is sent to the API
    server)."""
    from bridge.kube.client import credentials

    try:
        credentials(kubeconfig)
    except Exception as exc:  # the client's errors, whatever the file holds: said in one line
        reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        reason = reason or type(exc).__name__
        if kubeconfig is None:
            return _error(
                "no Kubernetes credentials: give --kubeconfig or set KUBECONFIG (neither an "
                f"in-cluster service account nor ~/.kube/config could be used: {reason})"
            )
        return _error(f"kubeconfig {kubeconfig}: not usable: {reason}")
    return None


def withhold_credentials(settings: OperatorSettings, environ: MutableMapping[str, str]) -> None:
    """With ``--inject-owner-ref``, remove from the operator's own environment ``environ`` (which
    every run inherits: ansible-runner, the warm server and a Job's local worker start from it)
    ``KUBECONFIG`` and every ``K8S_AUTH_*`` variable: a run reaches the API through the proxy
    with its own token, and nothing else. The operator itself no longer needs them: its
    kubeconfig is ``settings.kubeconfig``, read from ``$KUBECONFIG`` already."""
    if not settings.inject_owner_ref:
        return
    for name in [n for n in environ if n == KUBECONFIG or n.startswith(AUTH_PREFIX)]:
        del environ[name]


def operator_settings(args: argparse.Namespace, kubeconfig: Path | None) -> OperatorSettings | int:
    """The settings tree from ``run``/``dev`` options, or an exit code after a clear error."""
    from bridge.config import sdk
    from bridge.config.watches import load_watches
    from bridge.model.units import parse_size

    environ = dict(os.environ)
    watches_file = Path(args.watches).resolve()
    try:
        watches, warnings = load_watches(watches_file, environ)
    except WatchesError as e:
        return _error(str(e))
    for warning in warnings:
        print(f"ansible-bridge: warning: {warning}", file=sys.stderr)
    if args.max_concurrent_runs is not None and args.max_concurrent_runs < 1:
        return _error("--max-concurrent-runs must be at least 1")
    if not 0 <= args.http_port <= 65535:
        return _error("--http-port must be between 0 and 65535")
    try:
        max_artifacts_bytes = parse_size(args.max_artifacts_bytes)
    except ValueError as e:
        return _error(f"--max-artifacts-bytes: {e}")
    runner = RunnerSettings(
        artifacts_dir=Path(args.artifacts_dir).resolve(),
        max_artifacts_bytes=max_artifacts_bytes,
        executor=args.executor,
        env=run_environment(environ, kubeconfig, inject_owner_ref=args.inject_owner_ref),
    )
    if args.max_concurrent_runs is not None:
        runner = dataclasses.replace(runner, max_concurrent_runs=args.max_concurrent_runs)
    try:  # the Operator SDK's flags and per-kind environment variables
        configured, runner = sdk.configure(
            watches,
            runner,
            environ,
            reconcile_period=args.reconcile_period,
            ansible_args_flag=args.ansible_args,
            ansible_verbosity_flag=args.ansible_verbosity,
        )
    except sdk.OptionError as e:
        return _error(str(e))
    namespaces = () if getattr(args, "all_namespaces", True) else tuple(args.namespace)
    if not namespaces and not getattr(args, "all_namespaces", True):
        # Neither --namespace nor --all-namespaces: the Operator SDK's WATCH_NAMESPACE.
        namespaces = sdk.watch_namespaces(environ.get("WATCH_NAMESPACE", ""))
    election = leader_election(args, environ)
    if isinstance(election, int):
        return election
    return OperatorSettings(
        watches_file=watches_file,
        watches=tuple(configured),
        runner=runner,
        scope=ScopeSettings(namespaces=namespaces),
        http=HttpSettings(host=args.http_host, port=args.http_port),
        job=JobSettings(transport=args.job_transport, image=args.job_image),
        leader_election=election,
        kubeconfig=kubeconfig,
        log_level=args.log_level.upper(),
        inject_owner_ref=args.inject_owner_ref,
    )


def leader_election(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> LeaderElectionSettings | int:
    """``--leader-elect*`` (``run`` only) as settings, or exit code 2 after a clear error."""
    import secrets
    import socket

    from bridge.config.watches import parse_duration
    from bridge.kube import leader

    if not getattr(args, "leader_elect", False):
        return LeaderElectionSettings()
    seconds = {}
    for flag in ("lease", "renew_deadline", "retry_period"):
        option = "--leader-elect-" + flag.replace("_", "-")
        try:
            seconds[flag] = parse_duration(getattr(args, f"leader_elect_{flag}"))
        except ValueError as e:
            return _error(f"{option}: {e}")
    problem = leader.timing_error(
        seconds["lease"], seconds["renew_deadline"], seconds["retry_period"]
    )
    if problem:
        return _error(problem)
    return LeaderElectionSettings(
        enabled=True,
        namespace=args.leader_elect_namespace or leader.default_namespace(environ),
        lease_name=args.leader_elect_id,
        identity=leader.make_identity(environ, socket.gethostname(), secrets.token_hex(4)),
        lease_duration=seconds["lease"],
        renew_deadline=seconds["renew_deadline"],
        retry_period=seconds["retry_period"],
    )


def run_environment(
    environ: Mapping[str, str], kubeconfig: Path | None, *, inject_owner_ref: bool = True
) -> dict[str, str]:
    """What every run gets on top of the operator's environment: the bundled operator_sdk.util
    collection first on ANSIBLE_COLLECTIONS_PATH; with ``inject_owner_ref`` false, the
    operator's kubeconfig for modules (``K8S_AUTH_KUBECONFIG``; otherwise runs get the API
    proxy and a token of their own, per run, from the controller)."""
    bundled = str(Path(__file__).resolve().parents[1] / "ansible")  # holds ansible_collections/
    paths = environ.get("ANSIBLE_COLLECTIONS_PATH") or environ.get("ANSIBLE_COLLECTIONS_PATHS")
    env = {"ANSIBLE_COLLECTIONS_PATH": bundled + (f":{paths}" if paths else "")}
    if inject_owner_ref:
        return env
    if kubeconfig is not None:
        env[AUTH_KUBECONFIG] = str(kubeconfig)
    elif environ.get(KUBECONFIG):
        env[AUTH_KUBECONFIG] = environ[KUBECONFIG]
    return env
