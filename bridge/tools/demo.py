"""``make demo``: a local control plane, the sample CRDs, the operator and a sample resource."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from bridge.model.errors import BridgeError
from bridge.tools import controlplane
from bridge.tools.operator_process import OperatorProcess, bridge_command, stop_pid_file
from bridge.tools.processes import cmdline

#: The repository: the parent of the ``bridge`` package folder.
REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
WATCHES = REPO / "playbooks" / "watches.yaml"
SAMPLES = REPO / "playbooks" / "samples"
SAMPLE = SAMPLES / "serviceconfig.yaml"
#: The Secret the sample's spec.adminPasswordFrom names: applied before the sample.
SAMPLE_SECRET = SAMPLES / "serviceconfig-secret.yaml"
SAMPLE_KIND = "serviceconfig"
SAMPLE_NAME = "shop-frontend"
READY_TIMEOUT = 120
_PATCH = '\'{"spec": {"logLevel": "debug"}}\''
#: How long ``stop`` waits for the operator after SIGTERM before it sends SIGKILL.
STOP_GRACE = 30.0


class DemoError(BridgeError):
    """A step of the demo failed; the message says which and why."""


# --- output ---------------------------------------------------------------------------------


class Clock:
    """Prints numbered steps with the time each one took."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self._step_start = self.start

    def step(self, text: str) -> None:
        self._step_start = time.monotonic()
        print(f"\n==> {text}", flush=True)

    def done(self, text: str) -> None:
        took = time.monotonic() - self._step_start
        print(f"    {text} ({took:.1f}s)", flush=True)

    def total(self) -> float:
        return time.monotonic() - self.start


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.rstrip().splitlines())


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty)"


# --- the operator ---------------------------------------------------------------------------


def _is_demo_operator(pid: int, run_dir: Path) -> bool:
    """True when ``pid`` is an operator started by the demo for ``run_dir`` (not a recycled PID)."""
    args = cmdline(pid)
    if not args:
        return False
    return (
        "bridge" in args
        and "run" in args
        and any(a.startswith(str(run_dir)) for a in args)  # --kubeconfig / --artifacts-dir
    )


def stop_operator(run_dir: Path, grace: float = STOP_GRACE) -> int | None:
    """Stop the demo's operator: SIGTERM, up to ``grace`` seconds, then SIGKILL its group.

    Returns the PID that was stopped, or None when none ran.
    """

    def say_kill(pid: int) -> None:
        print(f"operator (pid {pid}) still runs after {grace:.0f}s: SIGKILL", flush=True)

    return stop_pid_file(
        run_dir / "operator.pid",
        lambda pid: _is_demo_operator(pid, run_dir),
        grace=grace,
        before_kill=say_kill,
    )


def start_operator(
    plane: controlplane.ControlPlane, run_dir: Path, environ: Mapping[str, str]
) -> OperatorProcess:
    """Start ``python -m bridge run`` detached from this process; PID in ``operator.pid``."""
    operator = OperatorProcess(
        bridge_command(WATCHES, kubeconfig=plane.kubeconfig, artifacts_dir=run_dir / "artifacts"),
        log=run_dir / "operator.log",
        # $KUBECONFIG as well as --kubeconfig: whatever reads the client library's default
        # (kopf's login, kubectl or kubernetes.core in a playbook) reaches the demo's plane.
        env={**environ, "KUBECONFIG": str(plane.kubeconfig)},
        cwd=REPO,
        label="the demo's operator",
        append=False,
    ).start()
    operator.write_pid(run_dir / "operator.pid")
    return operator


# --- kubectl --------------------------------------------------------------------------------


class Kubectl:
    """The control plane's kubectl, against its kubeconfig."""

    def __init__(self, plane: controlplane.ControlPlane, environ: Mapping[str, str]) -> None:
        self.path = plane.kubectl
        self.env = {**environ, "KUBECONFIG": str(plane.kubeconfig)}

    def run(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                [str(self.path), *args],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            raise DemoError(f"kubectl {shlex.join(args)}: no answer after {timeout:.0f}s") from e
        if check and proc.returncode != 0:
            raise DemoError(f"kubectl {shlex.join(args)} failed:\n{proc.stderr.strip()}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(self.path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env,
        )


def wait_ready(
    kubectl: Kubectl, operator: OperatorProcess, target: str, timeout: int
) -> tuple[bool, str]:
    """``kubectl wait --for=condition=Ready``, given up early if the operator exits."""
    waiter = kubectl.popen("wait", "--for=condition=Ready", f"--timeout={timeout}s", target)
    try:
        while waiter.poll() is None:
            code = operator.exited()
            if code is not None:
                waiter.kill()
                waiter.communicate()
                return False, f"the operator exited with {code}"
            time.sleep(0.2)
        out, _ = waiter.communicate()
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()
    return waiter.returncode == 0, out.strip()


def show_resource(kubectl: Kubectl) -> None:
    target = f"{SAMPLE_KIND}/{SAMPLE_NAME}"
    print("\n$ kubectl get serviceconfigs")
    print(_indent(kubectl.run("get", "serviceconfigs", check=False).stdout or "(nothing)"))
    got = kubectl.run("get", target, "-o", "json", check=False)
    if got.returncode == 0:
        status: Any = json.loads(got.stdout).get("status", {})
        print(f"\n$ kubectl get {target} -o yaml   # the status part")
        print(_indent(yaml.safe_dump({"status": status}, sort_keys=False, width=100)))
    events = kubectl.run("events", "--for", target, check=False)
    print(f"\n$ kubectl events --for {target}")
    print(_indent(events.stdout if events.returncode == 0 else events.stderr or "(none)"))


# --- the demo -------------------------------------------------------------------------------


def _on_path(folder: Path, environ: Mapping[str, str]) -> bool:
    entries = [Path(p) for p in environ.get("PATH", "").split(os.pathsep) if p]
    return any(e.resolve() == folder.resolve() for e in entries)


def demo(environ: Mapping[str, str]) -> int:
    clock = Clock()
    run_dir = controlplane.default_run_dir(environ).resolve()

    clock.step("Local control plane (etcd + kube-apiserver)")
    assets = controlplane.find_assets(environ)
    plane = controlplane.status(run_dir)
    if plane is not None:
        clock.done(f"reusing the one already running at {plane.server}")
    else:
        plane = controlplane.start(run_dir, assets)  # not tied to us: it outlives `make demo`
        clock.done(f"started at {plane.server}, folder {plane.dir}")
    kubectl = Kubectl(plane, environ)

    clock.step(f"Sample CRDs: kubectl apply -f {CRDS.relative_to(REPO)}/")
    applied = kubectl.run("apply", "-f", str(CRDS), "-o", "name").stdout.split()
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", *applied)
    names = ", ".join(a.rsplit("/", 1)[-1] for a in applied)
    clock.done(f"established: {names}")

    clock.step("The operator: python -m bridge run --watches playbooks/watches.yaml")
    old = stop_operator(run_dir)
    if old is not None:
        print(f"    stopped the operator of a previous demo (pid {old})")
    operator = start_operator(plane, run_dir, environ)
    log_path = run_dir / "operator.log"
    operator.wait_ready(READY_TIMEOUT)  # its /readyz; the error (a BridgeError) shows its log
    clock.done(f"ready, running in the background, pid {operator.pid}, log {log_path}")

    target = f"{SAMPLE_KIND}/{SAMPLE_NAME}"
    clock.step(f"A sample resource: kubectl apply -f {SAMPLE.relative_to(REPO)}")
    kubectl.run("apply", "-f", str(SAMPLE_SECRET))
    applied_sample = kubectl.run("apply", "-f", str(SAMPLE)).stdout
    print(_indent(applied_sample))
    print(f"    $ kubectl wait --for=condition=Ready --timeout={READY_TIMEOUT}s {target}")
    ok, message = wait_ready(kubectl, operator, target, READY_TIMEOUT)
    if message:
        print(_indent(message))
    if ok and "unchanged" in applied_sample:
        clock.done("Ready since a previous demo (a generation already handled is not re-run)")
    elif ok:
        clock.done("the playbook ran and the resource is Ready")
    show_resource(kubectl)

    if not ok:
        sys.stdout.flush()
        print(f"\nERROR: {target} did not become Ready: {message}", file=sys.stderr)
        print(f"\nThe operator's log ({log_path}), last lines:", file=sys.stderr)
        print(_indent(_tail(log_path)), file=sys.stderr)
        print(
            "\nEverything is left running to look into it; `make demo-stop` stops it.",
            file=sys.stderr,
        )
        return 1

    print(f"\nDemo ready in {clock.total():.0f}s.")
    print(next_steps(plane, run_dir, environ))
    return 0


def next_steps(plane: controlplane.ControlPlane, run_dir: Path, environ: Mapping[str, str]) -> str:
    samples = SAMPLES.relative_to(REPO)
    lines = [
        "",
        "Next steps (from the repository's root):",
        "",
        "  # point kubectl at the demo's control plane",
        f"  export KUBECONFIG={plane.kubeconfig}",
    ]
    if not _on_path(plane.kubectl.parent, environ):
        lines.append(f"  export PATH={plane.kubectl.parent}:$PATH")
    lines += [
        "",
        "  kubectl get ansible                     # every kind of the samples: READY, REASON",
        f"  kubectl apply -f {samples}/appusers.yaml",
        "  kubectl wait --for=condition=Ready appusers/wiki-users",
        "",
        "  # a run that fails: Ready=False, reason Failed, the failed task in status and Events",
        f"  kubectl apply -f {samples}/appusers-broken.yaml",
        "  kubectl wait --for=condition=Ready=False appusers/wiki-users-broken",
        "  kubectl describe appusers wiki-users-broken",
        "",
        "  # change a spec: a new generation, the playbook runs again",
        f"  kubectl edit {SAMPLE_KIND} {SAMPLE_NAME}          # e.g. logLevel: debug",
        f"  kubectl patch {SAMPLE_KIND} {SAMPLE_NAME} --type=merge -p {_PATCH}   # the same",
        f"  kubectl get {SAMPLE_KIND} {SAMPLE_NAME} -w",
        f"  cat /tmp/ansible-bridge-demo/default/{SAMPLE_NAME}/service.yaml",
        "",
        "  # delete: the finalizer playbook removes the rendered file before the resource goes",
        f"  kubectl delete {SAMPLE_KIND} {SAMPLE_NAME}",
        f"  kubectl events --for {SAMPLE_KIND}/{SAMPLE_NAME}",
        "",
        f"  The operator's log:  tail -f {run_dir / 'operator.log'}",
        f"  Run artifacts:       {run_dir / 'artifacts'}/",
        "",
        "  Stop everything (operator and control plane):  make demo-stop",
    ]
    return "\n".join(lines)


def stop(environ: Mapping[str, str]) -> int:
    run_dir = controlplane.default_run_dir(environ).resolve()
    pid = stop_operator(run_dir)
    print(f"operator (pid {pid}) stopped" if pid else "no demo operator was running")
    if controlplane.stop(run_dir):
        print(f"control plane in {run_dir} stopped")
    else:
        print(f"no control plane was running in {run_dir}")
    print("Files written by the samples stay in /tmp/ansible-bridge-demo/ (rm -rf to remove).")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.tools.demo",
        description="Start (or stop) the demo: control plane, sample CRDs, operator, a resource.",
    )
    parser.add_argument("action", nargs="?", default="start", choices=["start", "stop"])
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    try:
        return stop(environ) if args.action == "stop" else demo(environ)
    except BridgeError as e:
        sys.stdout.flush()
        print(f"\nERROR: {e}", file=sys.stderr)
        print("`make demo-stop` stops whatever the demo started.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
