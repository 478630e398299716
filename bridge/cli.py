"""The ``ansible-bridge`` command line: argument parsing and dispatch only, no logic."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge import __version__, controlplane
from bridge.errors import BridgeError, ControlPlaneError, WatchesError


def _controlplane(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    run_dir = Path(args.dir) if args.dir else controlplane.default_run_dir(environ)
    if args.action == "assets":
        assets = controlplane.find_assets(environ)
        print(f"etcd:           {assets.etcd}")
        print(f"kube-apiserver: {assets.kube_apiserver}")
        print(f"kubectl:        {assets.kubectl}")
        print(f"origin:         {assets.origin}")
        return 0
    if args.action == "start":
        assets = controlplane.find_assets(environ)
        plane = controlplane.start(run_dir, assets)
        print(f"control plane ready at {plane.server} (folder {plane.dir})", file=sys.stderr)
        print(f"export KUBECONFIG={plane.kubeconfig}")
        kubectl_dir = plane.kubectl.parent
        if str(kubectl_dir) not in environ.get("PATH", "").split(os.pathsep):
            print(f"export PATH={kubectl_dir}:$PATH")
        return 0
    if args.action == "stop":
        ran = controlplane.stop(run_dir)
        print("stopped" if ran else f"no control plane was running in {run_dir}")
        return 0
    running = controlplane.status(run_dir)
    if running is None:
        print(f"not running ({run_dir})")
        return 1
    print(f"running at {running.server}")
    print(f"  etcd pid {running.etcd_pid}, kube-apiserver pid {running.apiserver_pid}")
    print(f"export KUBECONFIG={running.kubeconfig}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from bridge.operator import run
    from bridge.settings import OperatorSettings, RunnerSettings, ScopeSettings
    from bridge.watches import load_watches

    environ = dict(os.environ)
    watches_file = Path(args.watches).resolve()
    try:
        watches, warnings = load_watches(watches_file, environ)
    except WatchesError as e:
        print(f"ansible-bridge: {e}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"ansible-bridge: warning: {warning}", file=sys.stderr)
    if args.max_concurrent_runs is not None and args.max_concurrent_runs < 1:
        print("ansible-bridge: --max-concurrent-runs must be at least 1", file=sys.stderr)
        return 2
    runner = RunnerSettings(artifacts_dir=Path(args.artifacts_dir).resolve())
    if args.max_concurrent_runs is not None:
        runner = dataclasses.replace(runner, max_concurrent_runs=args.max_concurrent_runs)
    settings = OperatorSettings(
        watches_file=watches_file,
        watches=tuple(watches),
        runner=runner,
        scope=ScopeSettings(namespaces=() if args.all_namespaces else tuple(args.namespace)),
        kubeconfig=Path(args.kubeconfig).resolve() if args.kubeconfig else None,
        log_level=args.log_level.upper(),
    )
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    run(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ansible-bridge",
        description="Drive existing Ansible playbooks and roles from Kubernetes resources.",
    )
    parser.add_argument("--version", action="version", version=f"ansible-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    cp = sub.add_parser(
        "controlplane", help="a local kube-apiserver + etcd for trying things and tests"
    )
    cp.add_argument("action", choices=["start", "stop", "status", "assets"])
    cp.add_argument("--dir", help="the control plane's folder (default: under the cache folder)")
    cp.set_defaults(func=_controlplane)

    run = sub.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument("--watches", default="watches.yaml", help="the watches file")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="a namespace to serve (repeatable)"
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="serve every namespace (default)"
    )
    run.add_argument(
        "--max-concurrent-runs", type=int, help="runs in flight at once (default: CPU count)"
    )
    run.add_argument(
        "--artifacts-dir",
        default="/tmp/ansible-bridge/runner",
        help="where run artifacts are kept, per resource",
    )
    run.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ControlPlaneError as e:
        print(f"ansible-bridge: control plane: {e}", file=sys.stderr)
        return 1
    except BridgeError as e:
        print(f"ansible-bridge: {e}", file=sys.stderr)
        return 1
