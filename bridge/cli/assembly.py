"""The settings tree of ``run`` and ``dev``: options, environment and watches file, checked once.

Every mistake is said here, before anything starts, as one ``ansible-bridge: ...`` line and exit
code 2; everything below receives the finished :class:`~bridge.config.settings.OperatorSettings`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping
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


def _error(message: str) -> int:
    print(f"ansible-bridge: {message}", file=sys.stderr)
    return 2


def operator_settings(args: argparse.Namespace, kubeconfig: Path | None) -> OperatorSettings | int:
    """The settings tree from ``run``/``dev`` options, or an exit code after a clear error."""
    from bridge.ansible.artifacts import parse_size
    from bridge.config import sdk
    from bridge.config.watches import load_watches

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
        env=run_environment(environ, kubeconfig),
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


def run_environment(environ: Mapping[str, str], kubeconfig: Path | None) -> dict[str, str]:
    """What every run gets on top of the operator's environment: the bundled operator_sdk.util
    collection first on ANSIBLE_COLLECTIONS_PATH, and the operator's kubeconfig for modules."""
    bundled = str(Path(__file__).resolve().parents[1] / "ansible")  # holds ansible_collections/
    paths = environ.get("ANSIBLE_COLLECTIONS_PATH") or environ.get("ANSIBLE_COLLECTIONS_PATHS")
    env = {"ANSIBLE_COLLECTIONS_PATH": bundled + (f":{paths}" if paths else "")}
    if kubeconfig is not None:
        env[AUTH_KUBECONFIG] = str(kubeconfig)
    elif environ.get("KUBECONFIG"):
        env[AUTH_KUBECONFIG] = environ["KUBECONFIG"]
    return env
