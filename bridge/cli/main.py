"""The ``ansible-bridge`` command line: every command's options, and the dispatch to it.

Parsing only: what a command does is in :mod:`bridge.cli.commands`, how ``run`` and ``dev``
options become the operator's settings in :mod:`bridge.cli.assembly`. Defaults come from the
settings dataclasses (:mod:`bridge.cli.defaults`), the executor names from
:data:`bridge.model.watch.EXECUTOR_NAMES`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bridge import __version__
from bridge.app.routes import CLUSTER_SCOPED
from bridge.cli import commands
from bridge.cli.defaults import default_of, duration, size
from bridge.cli.logs import DEFAULT_URL
from bridge.config.settings import (
    JOB_TRANSPORTS,
    LOG_LEVELS,
    HttpSettings,
    JobSettings,
    LeaderElectionSettings,
    OperatorSettings,
    RunnerSettings,
)
from bridge.model.errors import BridgeError, ControlPlaneError
from bridge.model.watch import EXECUTOR_NAMES

#: The file and folders the project commands (run, dev, crd, new) work with by default.
WATCHES_FILE = "watches.yaml"
CRDS_DIR = "crds"
SAMPLES_DIR = "samples"


def _leader_options(parser: argparse.ArgumentParser) -> None:
    """``--leader-elect`` and its tuning (client-go's defaults, kept in LeaderElectionSettings)."""

    def default(name: str) -> str:
        return duration(default_of(LeaderElectionSettings, name))

    parser.add_argument(
        "--leader-elect",
        action="store_true",
        help="run as one of several replicas: only the holder of a Lease runs playbooks",
    )
    parser.add_argument(
        "--leader-elect-namespace",
        help="namespace of the Lease (default: $POD_NAMESPACE, else the service account's, "
        f"else {default_of(LeaderElectionSettings, 'namespace')})",
    )
    parser.add_argument(
        "--leader-elect-id",
        default=default_of(LeaderElectionSettings, "lease_name"),
        help="name of the Lease; one per operator sharing a namespace (default: %(default)s)",
    )
    parser.add_argument(
        "--leader-elect-lease",
        default=default("lease_duration"),
        metavar="DURATION",
        help="how long a standby waits after the last renewal to take over (default: %(default)s)",
    )
    parser.add_argument(
        "--leader-elect-renew-deadline",
        default=default("renew_deadline"),
        metavar="DURATION",
        help="how long the leader tries to renew before it stops (default: %(default)s)",
    )
    parser.add_argument(
        "--leader-elect-retry-period",
        default=default("retry_period"),
        metavar="DURATION",
        help="time between attempts to acquire or renew (default: %(default)s)",
    )


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
    inject_owner_ref = default_of(OperatorSettings, "inject_owner_ref")
    parser.add_argument(
        "--watches",
        "--watches-file",  # the Operator SDK's name
        dest="watches",
        default=WATCHES_FILE,
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
        help="-v count (0-7) of runs whose kind or resource does not set one (default: "
        f"{default_of(RunnerSettings, 'ansible_verbosity')})",
    )
    parser.add_argument(
        "--artifacts-dir",
        default=str(default_of(RunnerSettings, "artifacts_dir")),
        help="where run artifacts are kept, per resource (default: %(default)s)",
    )
    parser.add_argument(
        "--max-artifacts-bytes",
        default=size(default_of(RunnerSettings, "max_artifacts_bytes")),
        metavar="SIZE",
        help="disk bound on one resource's run artifacts, oldest runs removed first "
        "(e.g. 50Mi, 1G; 0: only maxRunnerArtifacts; default: %(default)s)",
    )
    parser.add_argument(
        "--inject-owner-ref",
        type=_flag_bool,
        nargs="?",
        const=True,
        default=inject_owner_ref,
        metavar="true|false",
        help="give runs the operator's identity through an API proxy that adds an "
        f"ownerReference to what they create, and watch those dependents "
        f"(default: {str(inject_owner_ref).lower()})",
    )
    parser.add_argument(
        "--executor",
        default=default_of(RunnerSettings, "executor"),
        choices=EXECUTOR_NAMES,
        help="of the watches without 'executor' (default: %(default)s): warm: runs forked from "
        "a server with Ansible imported, falling back to local for a run it cannot serve; "
        "local: ansible-runner per run; job: a Kubernetes Job per run",
    )
    parser.add_argument(
        "--job-transport",
        default=default_of(JobSettings, "transport"),
        choices=JOB_TRANSPORTS,
        help="watches with 'executor: job': pod (the Job's pod runs the worker) or process "
        "(a local ansible-runner worker stands in for the pod; tests and development)",
    )
    parser.add_argument(
        "--job-image",
        default=default_of(JobSettings, "image"),
        help="the image of 'executor: job' runs whose watch sets no job.image "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default=default_of(OperatorSettings, "log_level").lower(),
        choices=[level.lower() for level in LOG_LEVELS],
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="log lines as text, or as one JSON object per line",
    )
    parser.add_argument(
        "--http-host",
        default=default_of(HttpSettings, "host"),
        help="address of /metrics, /healthz, /readyz, /logs (default: %(default)s)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=http_port,
        help="port of the HTTP server (0: any free port; default %(default)s)",
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
    cp.set_defaults(func=commands.controlplane_command)

    run = sub.add_parser("run", help="run the operator against the current kubeconfig")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="a namespace to serve (repeatable)"
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="serve every namespace (default)"
    )
    run.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    _operator_options(run, http_port=default_of(HttpSettings, "port"))
    _leader_options(run)
    run.set_defaults(func=commands.run_command)

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
    dev_cmd.set_defaults(func=commands.dev_command)

    logs_cmd = sub.add_parser(
        "logs", help="show a resource's run output (from the operator's HTTP server)"
    )
    logs_cmd.add_argument("resource", metavar="KIND/NAME", help="e.g. serviceconfig/shop")
    logs_cmd.add_argument(
        "--namespace",
        "-n",
        default="default",
        help=f"namespace ({CLUSTER_SCOPED} for a cluster-scoped kind; default: %(default)s)",
    )
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
    logs_cmd.set_defaults(func=commands.logs_command)

    crd = sub.add_parser(
        "crd", help="generate the CRDs of a watches file (typed from the argument specs)"
    )
    crd.add_argument("--watches", default=WATCHES_FILE, help="the watches file")
    crd.add_argument(
        "--out", default=CRDS_DIR, help="the folder of the CRD files (default: %(default)s)"
    )
    crd.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file in --out is missing or not what it would be",
    )
    crd.set_defaults(func=commands.crd_command)

    new = sub.add_parser(
        "new", help="wrap a role or playbook as a new kind: watches entry, CRD, sample resource"
    )
    new.add_argument("--kind", required=True, help="the kind, in CamelCase (Website)")
    new.add_argument("--group", required=True, help="the API group (web.example.com)")
    new.add_argument("--version", default="v1alpha1", help="the API version (default: %(default)s)")
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
        "--watches", default=WATCHES_FILE, help="the watches file (created if missing)"
    )
    new.add_argument(
        "--out", default=CRDS_DIR, help="the folder of the CRD files (default: %(default)s)"
    )
    new.add_argument(
        "--samples",
        default=SAMPLES_DIR,
        help="the folder of sample resources (default: %(default)s)",
    )
    new.set_defaults(func=commands.new_command)

    manifests = sub.add_parser(
        "manifests",
        help="generate least-privilege RBAC for the operator from the watches file",
        add_help=False,  # bridge.tools.manifests has its own parser (and --help)
    )
    manifests.add_argument("args", nargs=argparse.REMAINDER)
    manifests.set_defaults(func=commands.manifests_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["manifests"]:
        # Its options are its own parser's (argparse.REMAINDER would not take them).
        return commands.manifests_command(argparse.Namespace(args=words[1:]))
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
