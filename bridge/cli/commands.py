"""What each ``ansible-bridge`` command does with its parsed options; the exit code it returns.

:mod:`bridge.cli.main` parses the command line and calls one of these; the operator's settings
come from :mod:`bridge.cli.assembly`. Heavy imports (the operator, the tools) happen inside the
command that needs them, so ``ansible-bridge logs`` starts quickly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bridge.cli.assembly import (
    check_kubeconfig,
    kubeconfig_path,
    operator_settings,
    withhold_credentials,
)
from bridge.model.errors import WatchesError
from bridge.tools import controlplane


def controlplane_command(args: argparse.Namespace) -> int:
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


def setup_logging(args: argparse.Namespace) -> None:
    """The operator's log lines on stderr: ``--log-format`` text or JSON, at ``--log-level``."""
    handler = logging.StreamHandler()
    if args.log_format == "json":
        from bridge.app.logformat import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])


def run_command(args: argparse.Namespace) -> int:
    from bridge.app.operator import run

    kubeconfig = kubeconfig_path(args.kubeconfig, os.environ)
    if isinstance(kubeconfig, int):
        return kubeconfig
    settings = operator_settings(args, kubeconfig)
    if isinstance(settings, int):
        return settings
    unusable = check_kubeconfig(settings.kubeconfig)
    if unusable is not None:
        return unusable
    withhold_credentials(settings, os.environ)  # runs inherit the operator's environment
    setup_logging(args)
    run(settings)
    return 0


def dev_command(args: argparse.Namespace) -> int:
    from bridge.cli import dev

    # Validate everything before anything starts.
    checked = operator_settings(args, None)
    if isinstance(checked, int):
        return checked
    environ = dict(os.environ)
    run_dir = Path(args.dir) if args.dir else controlplane.default_run_dir(environ)
    # The operator uses the control plane's kubeconfig; runs must not get the user's either.
    withhold_credentials(checked, os.environ)
    setup_logging(args)
    return dev.dev(checked, run_dir, [Path(p) for p in args.apply], environ)


def logs_command(args: argparse.Namespace) -> int:
    from bridge.cli import logs

    kind, _, name = args.resource.partition("/")
    if not kind or not name or "/" in name:
        print("ansible-bridge logs: give the resource as KIND/NAME", file=sys.stderr)
        return 2
    try:
        return logs.show(args.url, args.namespace, kind, name, run=args.run, follow=args.follow)
    except KeyboardInterrupt:
        return 130


def crd_command(args: argparse.Namespace) -> int:
    from bridge.config.watches import load_watches
    from bridge.tools import crdgen

    watches_file = Path(args.watches)
    try:
        watches, warnings = load_watches(watches_file.resolve(), dict(os.environ))
    except WatchesError as e:
        print(f"ansible-bridge: {e}", file=sys.stderr)
        return 2
    crds = crdgen.generate(watches)
    for warning in [*warnings, *(w for crd in crds for w in crd.warnings)]:
        print(f"ansible-bridge: warning: {warning}", file=sys.stderr)
    out = Path(args.out)
    report = crdgen.sync(crds, out, check=args.check)
    if args.check:
        if not report.stale:
            print(f"{out}: up to date ({len(report.unchanged)} CRDs)")
            return 0
        for name in report.written:
            print(f"{out / name}: stale or missing", file=sys.stderr)
        for name in report.removed:
            print(f"{out / name}: generated for a kind no longer watched", file=sys.stderr)
        print(
            f"ansible-bridge: {out} is stale; run: ansible-bridge crd --watches {args.watches} "
            f"--out {args.out}",
            file=sys.stderr,
        )
        return 1
    for name in report.written:
        print(f"wrote {out / name}")
    for name in report.unchanged:
        print(f"unchanged {out / name}")
    for name in report.removed:
        print(f"removed {out / name} (no watched kind has it any more)")
    return 0


def new_command(args: argparse.Namespace) -> int:
    from bridge.tools import scaffold

    result = scaffold.new(
        kind=args.kind,
        group=args.group,
        version=args.version,
        role=args.role,
        playbook=args.playbook,
        argument_spec=args.argument_spec,
        plural=args.plural,
        watches=Path(args.watches),
        out=Path(args.out),
        samples=Path(args.samples),
        environ=dict(os.environ),
    )
    for warning in result.warnings:
        print(f"ansible-bridge: warning: {warning}", file=sys.stderr)
    print(f"added entry {result.entry} ({args.kind}) to {result.watches}")
    print(f"wrote {result.crd}")
    print(f"wrote {result.sample}")
    print(f"next: kubectl apply -f {result.crd} && kubectl apply -f {result.sample}")
    return 0


def manifests_command(args: argparse.Namespace) -> int:
    from bridge.tools.manifests import main as manifests_main

    return manifests_main(args.args)
