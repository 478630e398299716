"""A real local Kubernetes control plane (etcd + kube-apiserver on loopback) for tests and dev.

This is what controller-runtime calls envtest: no kubelet, no controller-manager, but the real
API server with CRD validation, the status subresource, watches, conflicts and finalizers. This
module starts, finds and stops the processes; the binaries come from
:mod:`bridge.tools.controlplane_assets` and the certificates and kubeconfig from
:mod:`bridge.tools.controlplane_certs` (the names users need are importable from here).

A running control plane is a folder: certificates, etcd data, logs, a kubeconfig and a
``state.json`` with the PIDs, so ``stop`` works from another process. NB: PIDs are checked
against ``/proc/<pid>/cmdline`` before they are signalled, so a recycled PID is never killed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.model.errors import ControlPlaneError
from bridge.tools.controlplane_assets import (
    ASSET_NAMES,
    GO_MODULE_DIR,
    Assets,
    Versions,
    cache_root,
    default_run_dir,
    find_assets,
    pinned_versions,
)
from bridge.tools.controlplane_certs import ssl_context, write_kubeconfig, write_pki
from bridge.tools.processes import pid_alive, reap, set_pdeathsig, spawn, terminate

__all__ = [
    "ASSET_NAMES",
    "GO_MODULE_DIR",
    "Assets",
    "ControlPlane",
    "Versions",
    "cache_root",
    "default_run_dir",
    "find_assets",
    "pinned_versions",
    "ssl_context",
    "start",
    "status",
    "stop",
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_pid(pid: int, marker: str, grace: float = 10.0) -> None:
    def alive() -> bool:
        reap(pid)
        return pid_alive(pid, marker)

    terminate(pid, alive, grace=grace)


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    # SIGKILL: a test plane has nothing to save, and a kube-apiserver whose etcd went first can
    # hang in its graceful shutdown.
    set_pdeathsig()


@dataclass(frozen=True)
class ControlPlane:
    """A started control plane: where it lives and how to reach it."""

    dir: Path
    server: str
    kubeconfig: Path
    etcd_pid: int
    apiserver_pid: int
    kubectl: Path

    def pids(self) -> tuple[int, int]:
        return self.etcd_pid, self.apiserver_pid

    def alive(self) -> bool:
        return any(pid_alive(p, str(self.dir)) for p in self.pids())


def start(
    run_dir: Path,
    assets: Assets,
    *,
    tie_to_parent: bool = False,
    ready_timeout: float = 90.0,
) -> ControlPlane:
    """Start etcd and kube-apiserver in ``run_dir`` and return once ``/readyz`` answers ok.

    ``tie_to_parent``: the processes get SIGKILL when the calling process dies (tests), so an
    interrupted session leaves nothing behind. A folder that already runs a control plane is
    reused as it is.
    """
    run_dir = run_dir.resolve()
    existing = status(run_dir)
    if existing is not None:
        return existing
    stop(run_dir)  # leftovers of a crashed one
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for leftover in ("etcd-data", "certs", "state.json", "kubeconfig"):
        target = run_dir / leftover
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    certs = run_dir / "certs"
    write_pki(certs)
    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    preexec = _set_pdeathsig if tie_to_parent else None

    etcd = spawn(
        [
            str(assets.etcd),
            "--name=ansible-bridge",
            f"--data-dir={run_dir / 'etcd-data'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=ansible-bridge=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        run_dir / "etcd.log",
        preexec=preexec,
    )
    apiserver = spawn(
        [
            str(assets.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            f"--cert-dir={certs}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--tls-cert-file={certs / 'apiserver.crt'}",
            f"--tls-private-key-file={certs / 'apiserver.key'}",
            f"--client-ca-file={certs / 'ca.crt'}",
            f"--service-account-key-file={certs / 'sa.pub'}",
            f"--service-account-signing-key-file={certs / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            # No controller-manager mints service-account tokens here.
            "--disable-admission-plugins=ServiceAccount",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=1",
        ],
        run_dir / "kube-apiserver.log",
        preexec=preexec,
    )
    server = f"https://127.0.0.1:{api_port}"
    plane = ControlPlane(
        dir=run_dir,
        server=server,
        kubeconfig=run_dir / "kubeconfig",
        etcd_pid=etcd.pid,
        apiserver_pid=apiserver.pid,
        kubectl=assets.kubectl,
    )
    (run_dir / "state.json").write_text(
        json.dumps(
            {
                "server": server,
                "etcd_pid": etcd.pid,
                "apiserver_pid": apiserver.pid,
                "kubectl": str(assets.kubectl),
            }
        )
    )
    write_kubeconfig(plane.kubeconfig, plane.server, certs)
    try:
        _wait_ready(plane, {"etcd": etcd, "kube-apiserver": apiserver}, ready_timeout)
    except BaseException:
        stop(run_dir)
        raise
    return plane


def _wait_ready(
    plane: ControlPlane, procs: Mapping[str, subprocess.Popen[bytes]], timeout: float
) -> None:
    ctx = ssl_context(plane.dir)
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                log = (plane.dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(f"{plane.server}/readyz", context=ctx, timeout=2) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, urllib.error.URLError) as e:
            last = str(e)
        time.sleep(0.2)
    raise ControlPlaneError(f"kube-apiserver not ready after {timeout:.0f}s ({last})")


def status(run_dir: Path) -> ControlPlane | None:
    """The control plane running in ``run_dir``, or None when none is."""
    run_dir = run_dir.resolve()
    try:
        state = json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None
    plane = ControlPlane(
        dir=run_dir,
        server=state["server"],
        kubeconfig=run_dir / "kubeconfig",
        etcd_pid=int(state["etcd_pid"]),
        apiserver_pid=int(state["apiserver_pid"]),
        kubectl=Path(state.get("kubectl", "kubectl")),
    )
    if all(pid_alive(p, str(run_dir)) for p in plane.pids()):
        return plane
    return None


def stop(run_dir: Path) -> bool:
    """Stop the control plane in ``run_dir`` (API server first, then etcd); True if one ran."""
    run_dir = run_dir.resolve()
    try:
        state = json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return False
    marker = str(run_dir)
    ran = False
    for key in ("apiserver_pid", "etcd_pid"):
        pid = int(state.get(key, 0))
        if pid and pid_alive(pid, marker):
            ran = True
            _stop_pid(pid, marker)
    with contextlib.suppress(OSError):
        (run_dir / "state.json").unlink()
    shutil.rmtree(run_dir / "etcd-data", ignore_errors=True)
    return ran
