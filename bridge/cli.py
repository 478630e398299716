"""The ``ansible-bridge`` command line: argument parsing and dispatch only, no logic."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge import __version__, controlplane
from bridge.errors import BridgeError, ControlPlaneError


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
