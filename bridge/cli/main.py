"""The ``ansible-bridge`` command line: argument parsing and dispatch only, no logic."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bridge import __version__
from bridge.app.logs import DEFAULT_URL
from bridge.config.settings import LeaderElectionSettings, OperatorSettings
from bridge.model.errors import BridgeError, ControlPlaneError, WatchesError
from bridge.tools import controlplane


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


def _operator_settings(args: argparse.Namespace, kubeconfig: Path | None) -> OperatorSettings | int:
    """The settings tree from ``run``/``dev`` options, or an exit code after a clear error."""
    from bridge.config.settings import (
        HttpSettings,
        JobSettings,
        OperatorSettings,
        RunnerSettings,
        ScopeSettings,
    )
    from bridge.config.watches import load_watches

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
    if not 0 <= args.http_port <= 65535:
        print("ansible-bridge: --http-port must be between 0 and 65535", file=sys.stderr)
        return 2
    from bridge.ansible.artifacts import parse_size

    try:
        max_artifacts_bytes = parse_size(args.max_artifacts_bytes)
    except ValueError as e:
        print(f"ansible-bridge: --max-artifacts-bytes: {e}", file=sys.stderr)
        return 2
    runner = RunnerSettings(
        artifacts_dir=Path(args.artifacts_dir).resolve(),
        max_artifacts_bytes=max_artifacts_bytes,
        executor=args.executor,
        env=run_environment(environ, kubeconfig),
    )
    if args.max_concurrent_runs is not None:
        runner = dataclasses.replace(runner, max_concurrent_runs=args.max_concurrent_runs)
    from bridge.config import sdk

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
        print(f"ansible-bridge: {e}", file=sys.stderr)
        return 2
    watches = list(configured)
    namespaces = () if getattr(args, "all_namespaces", True) else tuple(args.namespace)
    if not namespaces and not getattr(args, "all_namespaces", True):
        # Neither --namespace nor --all-namespaces: the Operator SDK's WATCH_NAMESPACE.
        namespaces = sdk.watch_namespaces(environ.get("WATCH_NAMESPACE", ""))
    election = _leader_election(args, environ)
    if isinstance(election, int):
        return election
    return OperatorSettings(
        watches_file=watches_file,
        watches=tuple(watches),
        runner=runner,
        scope=ScopeSettings(namespaces=namespaces),
        http=HttpSettings(host=args.http_host, port=args.http_port),
        job=JobSettings(transport=args.job_transport, image=args.job_image),
        leader_election=election,
        kubeconfig=kubeconfig,
        log_level=args.log_level.upper(),
        inject_owner_ref=args.inject_owner_ref,
    )


def _leader_election(
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
            print(f"ansible-bridge: {option}: {e}", file=sys.stderr)
            return 2
    problem = leader.timing_error(
        seconds["lease"], seconds["renew_deadline"], seconds["retry_period"]
    )
    if problem:
        print(f"ansible-bridge: {problem}", file=sys.stderr)
        return 2
    return LeaderElectionSettings(
        enabled=True,
        namespace=args.leader_elect_namespace or leader.default_namespace(environ),
        lease_name=args.leader_elect_id,
        identity=leader.make_identity(environ, socket.gethostname(), secrets.token_hex(4)),
        lease_duration=seconds["lease"],
        renew_deadline=seconds["renew_deadline"],
        retry_period=seconds["retry_period"],
    )


def _leader_options(parser: argparse.ArgumentParser) -> None:
    """``--leader-elect`` and its tuning (client-go's defaults)."""
    parser.add_argument(
        "--leader-elect",
        action="store_true",
        help="run as one of several replicas: only the holder of a Lease runs playbooks",
    )
    parser.add_argument(
        "--leader-elect-namespace",
        help="namespace of the Lease (default: $POD_NAMESPACE, else the service account's, "
        "else default)",
    )
    parser.add_argument(
        "--leader-elect-id",
        default="ansible-bridge-leader",
        help="name of the Lease; one per operator sharing a namespace (default: %(default)s)",
    )
    parser.add_argument(
        "--leader-elect-lease",
        default="15s",
        metavar="DURATION",
        help="how long a standby waits after the last renewal to take over (default: 15s)",
    )
    parser.add_argument(
        "--leader-elect-renew-deadline",
        default="10s",
        metavar="DURATION",
        help="how long the leader tries to renew before it stops (default: 10s)",
    )
    parser.add_argument(
        "--leader-elect-retry-period",
        default="2s",
        metavar="DURATION",
        help="time between attempts to acquire or renew (default: 2s)",
    )


def run_environment(environ: Mapping[str, str], kubeconfig: Path | None) -> dict[str, str]:
    """What every run gets on top of the operator's environment: the bundled operator_sdk.util
    collection first on ANSIBLE_COLLECTIONS_PATH, and the operator's kubeconfig for modules."""
    bundled = str(Path(__file__).resolve().parents[1] / "ansible")  # holds ansible_collections/
    paths = environ.get("ANSIBLE_COLLECTIONS_PATH") or environ.get("ANSIBLE_COLLECTIONS_PATHS")
    env = {"ANSIBLE_COLLECTIONS_PATH": bundled + (f":{paths}" if paths else "")}
    if kubeconfig is not None:
        env["K8S_AUTH_KUBECONFIG"] = str(kubeconfig)
    elif environ.get("KUBECONFIG"):
        env["K8S_AUTH_KUBECONFIG"] = environ["KUBECONFIG"]
    return env


def _setup_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler()
    if args.log_format == "json":
        from bridge.app.logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])


def _run(args: argparse.Namespace) -> int:
    from bridge.app.operator import run

    settings = _operator_settings(
        args, Path(args.kubeconfig).resolve() if args.kubeconfig else None
    )
    if isinstance(settings, int):
        return settings
    _setup_logging(args)
    run(settings)
    return 0


def _dev(args: argparse.Namespace) -> int:
    from bridge.cli import dev

    # Validate everything before anything starts.
    checked = _operator_settings(args, None)
    if isinstance(checked, int):
        return checked
    environ = dict(os.environ)
    run_dir = Path(args.dir) if args.dir else controlplane.default_run_dir(environ)
    _setup_logging(args)
    return dev.dev(checked, run_dir, [Path(p) for p in args.apply], environ)


def _logs(args: argparse.Namespace) -> int:
    from bridge.app import logs

    kind, _, name = args.resource.partition("/")
    if not kind or not name or "/" in name:
        print("ansible-bridge logs: give the resource as KIND/NAME", file=sys.stderr)
        return 2
    try:
        return logs.show(args.url, args.namespace, kind, name, run=args.run, follow=args.follow)
    except KeyboardInterrupt:
        return 130


def _crd(args: argparse.Namespace) -> int:
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


def _new(args: argparse.Namespace) -> int:
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


def _flag_bool(value: str) -> bool:
    """A boolean flag's value as Go's flag package takes it (``--inject-owner-ref=false``)."""
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true", "yes"):
        return True
    if lowered in ("0", "f", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _operator_options(parser: argparse.ArgumentParser, *, http_port: int) -> None:
    """The options ``run`` and ``dev`` share."""
    parser.add_argument(
        "--watches",
        "--watches-file",  # the Operator SDK's name
        dest="watches",
        default="watches.yaml",
        help="the watches file",
    )
    parser.add_argument(
        "--max-concurrent-runs",
        "--max-concurrent-reconciles",
        type=int,
        help="runs in flight at once (default: CPU count)",
    )
    parser.add_argument(
        "--reconcile-period",
        metavar="DURATION",
        help="period of the watches without reconcilePeriod (e.g. 10m; default: none)",
    )
    parser.add_argument(
        "--ansible-args",
        metavar="ARGS",
        help="extra ansible-playbook options for every run, e.g. '--forks 10 --diff'",
    )
    parser.add_argument(
        "--ansible-verbosity",
        type=int,
        metavar="N",
        help="-v count (0-7) of runs whose kind or resource does not set one (default: 0)",
    )
    parser.add_argument(
        "--artifacts-dir",
        default="/tmp/ansible-bridge/runner",
        help="where run artifacts are kept, per resource",
    )
    parser.add_argument(
        "--max-artifacts-bytes",
        default="50Mi",
        metavar="SIZE",
        help="disk bound on one resource's run artifacts, oldest runs removed first "
        "(e.g. 50Mi, 1G; 0: only maxRunnerArtifacts; default: %(default)s)",
    )
    parser.add_argument(
        "--inject-owner-ref",
        type=_flag_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="true|false",
        help="give runs the operator's identity through an API proxy that adds an "
        "ownerReference to what they create, and watch those dependents (default: true)",
    )
    parser.add_argument(
        "--executor",
        default="warm",
        choices=["local", "warm"],
        help="warm (default): runs forked from a server with Ansible imported, falling back to "
        "local for a run it cannot serve; local: ansible-runner per run",
    )
    parser.add_argument(
        "--job-transport",
        default="pod",
        choices=["pod", "process"],
        help="watches with 'executor: job': pod (the Job's pod runs the worker) or process "
        "(a local ansible-runner worker stands in for the pod; tests and development)",
    )
    parser.add_argument(
        "--job-image",
        default="ansible-bridge:latest",
        help="the image of 'executor: job' runs whose watch sets no job.image "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="log lines as text, or as one JSON object per line",
    )
    parser.add_argument(
        "--http-host", default="0.0.0.0", help="address of /metrics, /healthz, /readyz, /logs"
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=http_port,
        help=f"port of the HTTP server (0: any free port; default {http_port})",
    )


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
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="a namespace to serve (repeatable)"
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="serve every namespace (default)"
    )
    run.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    _operator_options(run, http_port=8080)
    _leader_options(run)
    run.set_defaults(func=_run)

    dev_cmd = sub.add_parser(
        "dev",
        help="try it with no cluster: local control plane, generated CRDs, the operator in the "
        "foreground (Ctrl-C stops all)",
    )
    dev_cmd.add_argument(
        "--apply", action="append", default=[], help="a manifest file or folder to apply first"
    )
    dev_cmd.add_argument("--dir", help="the control plane's folder (default: the cache folder)")
    _operator_options(dev_cmd, http_port=0)
    dev_cmd.set_defaults(func=_dev)

    logs_cmd = sub.add_parser(
        "logs", help="show a resource's run output (from the operator's HTTP server)"
    )
    logs_cmd.add_argument("resource", metavar="KIND/NAME", help="e.g. serviceconfig/shop")
    logs_cmd.add_argument("--namespace", "-n", default="default", help="namespace (- for none)")
    logs_cmd.add_argument(
        "--run",
        help="a run id (status.lastRun.id, or status.lastCheck.id for a drift check); "
        "default: the newest run",
    )
    logs_cmd.add_argument(
        "--follow", "-f", action="store_true", help="stream the output until the run ends"
    )
    logs_cmd.add_argument(
        "--url",
        default=DEFAULT_URL,
        help="the operator's HTTP server, e.g. through kubectl port-forward (default: %(default)s)",
    )
    logs_cmd.set_defaults(func=_logs)

    crd = sub.add_parser(
        "crd", help="generate the CRDs of a watches file (typed from the argument specs)"
    )
    crd.add_argument("--watches", default="watches.yaml", help="the watches file")
    crd.add_argument("--out", default="crds", help="the folder of the CRD files (default: crds)")
    crd.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file in --out is missing or not what it would be",
    )
    crd.set_defaults(func=_crd)

    new = sub.add_parser(
        "new", help="wrap a role or playbook as a new kind: watches entry, CRD, sample resource"
    )
    new.add_argument("--kind", required=True, help="the kind, in CamelCase (Website)")
    new.add_argument("--group", required=True, help="the API group (web.example.com)")
    new.add_argument("--version", default="v1alpha1", help="the API version (default: v1alpha1)")
    automation = new.add_mutually_exclusive_group(required=True)
    automation.add_argument("--role", metavar="PATH", help="the role: a folder, or a role name")
    automation.add_argument("--playbook", metavar="PATH", help="the playbook")
    new.add_argument(
        "--argument-spec",
        metavar="PATH",
        help="an argument-spec file for the playbook (the format of meta/argument_specs.yml)",
    )
    new.add_argument("--plural", help="the CRD's plural, if not the kind lower-cased + s/es/ies")
    new.add_argument(
        "--watches", default="watches.yaml", help="the watches file (created if missing)"
    )
    new.add_argument("--out", default="crds", help="the folder of the CRD files (default: crds)")
    new.add_argument(
        "--samples", default="samples", help="the folder of sample resources (default: samples)"
    )
    new.set_defaults(func=_new)

    manifests = sub.add_parser(
        "manifests",
        help="generate least-privilege RBAC for the operator from the watches file",
        add_help=False,  # bridge.tools.manifests has its own parser (and --help)
    )
    manifests.add_argument("args", nargs=argparse.REMAINDER)
    manifests.set_defaults(func=_manifests)
    return parser


def _manifests(args: argparse.Namespace) -> int:
    from bridge.tools.manifests import main as manifests_main

    return manifests_main(args.args)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["manifests"]:  # its options are its own parser's (argparse.REMAINDER
        return _manifests(argparse.Namespace(args=words[1:]))  # would not take them)
    parser = build_parser()
    args = parser.parse_args(words)
    try:
        result: int = args.func(args)
        return result
    except ControlPlaneError as e:
        print(f"ansible-bridge: control plane: {e}", file=sys.stderr)
        return 1
    except BridgeError as e:
        print(f"ansible-bridge: {e}", file=sys.stderr)
        return 1
