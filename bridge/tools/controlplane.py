"""A real local Kubernetes control plane (etcd + kube-apiserver on loopback) for tests and dev.

This is what controller-runtime calls envtest: no kubelet, no controller-manager, but the real
API server with CRD validation, the status subresource, watches, conflicts and finalizers.

Binaries come from ``$KUBEBUILDER_ASSETS`` when set (the envtest convention), otherwise they
are built once from the Go modules pinned in ``bridge/tools/controlplane_go/go.mod`` with the
machine's Go and the Go module proxy, into ``~/.cache/ansible-bridge/controlplane/<version>/``.
Nothing is ever downloaded from anywhere but the package registries.

A running control plane is a folder: certificates, etcd data, logs, a kubeconfig and a
``state.json`` with the PIDs, so ``stop`` works from another process. NB: PIDs are checked
against ``/proc/<pid>/cmdline`` before they are signalled, so a recycled PID is never killed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.model.errors import ControlPlaneError

GO_MODULE_DIR = Path(__file__).parent / "controlplane_go"
ASSET_NAMES = ("etcd", "kube-apiserver", "kubectl")
_GO_PACKAGES = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
}


def cache_root(environ: Mapping[str, str]) -> Path:
    """The bridge's cache folder: ``$XDG_CACHE_HOME/ansible-bridge`` or ``~/.cache/...``."""
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "~")) / ".cache")
    return Path(base).expanduser() / "ansible-bridge"


def default_run_dir(environ: Mapping[str, str]) -> Path:
    return cache_root(environ) / "controlplane" / "run"


@dataclass(frozen=True)
class Versions:
    """The pinned versions, read from the one file that pins them (the go.mod)."""

    kubernetes: str
    etcd: str

    @property
    def tag(self) -> str:
        return f"k8s-{self.kubernetes}-etcd-{self.etcd}"

    @property
    def minor(self) -> int:
        return int(self.kubernetes.lstrip("v").split(".")[1])


def pinned_versions(go_mod: Path = GO_MODULE_DIR / "go.mod") -> Versions:
    text = go_mod.read_text()
    k8s = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", text, re.M)
    etcd = re.search(r"^\s*go\.etcd\.io/etcd/server/v3 (v\S+)", text, re.M)
    if not k8s or not etcd:
        raise ControlPlaneError(f"{go_mod}: cannot find the pinned kubernetes/etcd versions")
    return Versions(kubernetes=k8s.group(1), etcd=etcd.group(1))


@dataclass(frozen=True)
class Assets:
    """Paths of the three binaries and where they came from."""

    etcd: Path
    kube_apiserver: Path
    kubectl: Path
    origin: str


def _kubectl_minor(kubectl: str) -> int | None:
    try:
        out = subprocess.run(
            [kubectl, "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        minor = json.loads(out)["clientVersion"]["minor"]
        return int(re.sub(r"\D.*", "", str(minor)))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None


def find_assets(environ: Mapping[str, str], *, build: bool = True, log: bool = True) -> Assets:
    """Locate (or build once) etcd, kube-apiserver and kubectl.

    Order: ``$KUBEBUILDER_ASSETS``; the cache folder for the pinned versions; a build from the
    pinned Go modules (when ``build`` is true and ``go`` is on PATH).
    """
    assets_env = environ.get("KUBEBUILDER_ASSETS")
    if assets_env:
        folder = Path(assets_env)
        missing = [n for n in ASSET_NAMES if not (folder / n).is_file()]
        if missing:
            raise ControlPlaneError(
                f"KUBEBUILDER_ASSETS={folder} lacks {', '.join(missing)} "
                "(it must hold etcd, kube-apiserver and kubectl)"
            )
        return Assets(folder / "etcd", folder / "kube-apiserver", folder / "kubectl", "envtest")

    versions = pinned_versions()
    folder = cache_root(environ) / "controlplane" / versions.tag
    needed = ["etcd", "kube-apiserver"]
    system_kubectl = shutil.which("kubectl", path=environ.get("PATH"))
    use_system_kubectl = False
    if system_kubectl and not (folder / "kubectl").is_file():
        minor = _kubectl_minor(system_kubectl)
        use_system_kubectl = minor is not None and abs(minor - versions.minor) <= 1
    if not use_system_kubectl:
        needed.append("kubectl")
    missing = [n for n in needed if not (folder / n).is_file()]
    if missing:
        if not build:
            raise ControlPlaneError(f"control plane binaries not built yet: {folder}")
        _build(folder, missing, versions, environ, log=log)
    kubectl = Path(system_kubectl) if use_system_kubectl and system_kubectl else folder / "kubectl"
    return Assets(folder / "etcd", folder / "kube-apiserver", kubectl, f"built {versions.tag}")


def _build(
    folder: Path, names: list[str], versions: Versions, environ: Mapping[str, str], *, log: bool
) -> None:
    go = shutil.which("go", path=environ.get("PATH"))
    if go is None:
        raise ControlPlaneError(
            "no control plane binaries: set KUBEBUILDER_ASSETS to a folder with etcd, "
            "kube-apiserver and kubectl (e.g. from `setup-envtest use`), or install Go "
            f"(>= 1.25) so the bridge can build {versions.tag} from the Go module proxy"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / ".build.lock"):
        names = [n for n in names if not (folder / n).is_file()]  # another process built them
        if not names:
            return
        k8s = versions.kubernetes
        major, minor = k8s.lstrip("v").split(".")[:2]
        stamp = " ".join(
            f"-X {pkg}.{key}={value}"
            for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
            for key, value in (
                ("gitVersion", k8s),
                ("gitMajor", major),
                ("gitMinor", minor),
                ("gitTreeState", "clean"),
            )
        )
        env = dict(environ)
        env.setdefault("CGO_ENABLED", "0")
        env["GOFLAGS"] = "-mod=readonly -buildvcs=false"
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
        try:
            for name in names:
                if log:
                    print(f"building {name} ({versions.tag}) with {go} ...", flush=True)
                started = time.monotonic()
                cmd = [go, "build", "-trimpath", "-ldflags", f"-s -w {stamp}"]
                cmd += ["-o", str(staging / name), _GO_PACKAGES[name]]
                proc = subprocess.run(
                    cmd, cwd=GO_MODULE_DIR, env=env, capture_output=True, text=True
                )
                if proc.returncode != 0:
                    raise ControlPlaneError(
                        f"`{' '.join(cmd)}` failed in {GO_MODULE_DIR}:\n{proc.stderr[-4000:]}"
                    )
                os.replace(staging / name, folder / name)
                if log:
                    print(f"built {name} in {time.monotonic() - started:.0f}s", flush=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- certificates -------------------------------------------------------------------------


def _write_pki(certs: Path) -> None:
    """A CA, the API server's serving cert, an admin client cert and the service-account keys."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    certs.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = dt.datetime.now(dt.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    def save_key(k: ec.EllipticCurvePrivateKey, filename: str) -> None:
        data = k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = certs / filename
        path.write_bytes(data)
        path.chmod(0o600)

    def save_cert(c: x509.Certificate, filename: str) -> None:
        (certs / filename).write_bytes(c.public_bytes(serialization.Encoding.PEM))

    ca_key = key()
    ca_name = name("ansible-bridge-controlplane-ca")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def issue(
        cn: str, org: str | None, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        k = key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn, org))
            .issuer_name(ca_name)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), k

    from cryptography.x509.oid import ExtendedKeyUsageOID

    serving, serving_key = issue(
        "kube-apiserver",
        None,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
    )
    admin, admin_key = issue("admin", "system:masters", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    sa_key = key()

    save_cert(ca, "ca.crt")
    save_key(ca_key, "ca.key")
    save_cert(serving, "apiserver.crt")
    save_key(serving_key, "apiserver.key")
    save_cert(admin, "admin.crt")
    save_key(admin_key, "admin.key")
    save_key(sa_key, "sa.key")
    (certs / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _b64(path: Path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


# --- processes ----------------------------------------------------------------------------


def _pid_alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs and its command line mentions ``marker`` (our run folder)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # a zombie has exited already
        return False
    return marker.encode() in cmdline


def _stop_pid(pid: int, marker: str, grace: float = 10.0) -> None:
    if not _pid_alive(pid, marker):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not _pid_alive(pid, marker):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _pid_alive(pid, marker) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    # SIGKILL: a test plane has nothing to save, and a kube-apiserver whose etcd went first can
    # hang in its graceful shutdown.
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


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
        return any(_pid_alive(p, str(self.dir)) for p in self.pids())


def _spawn(
    log: Path, preexec: Callable[[], None] | None, cmd: list[str]
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session, output to ``log``, stdin closed."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=preexec,
        )


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
    _write_pki(certs)
    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    preexec = _set_pdeathsig if tie_to_parent else None

    etcd = _spawn(
        run_dir / "etcd.log",
        preexec,
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
    )
    apiserver = _spawn(
        run_dir / "kube-apiserver.log",
        preexec,
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
    _write_kubeconfig(plane)
    try:
        _wait_ready(plane, {"etcd": etcd, "kube-apiserver": apiserver}, ready_timeout)
    except BaseException:
        stop(run_dir)
        raise
    return plane


def _write_kubeconfig(plane: ControlPlane) -> None:
    certs = plane.dir / "certs"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "ansible-bridge",
                "cluster": {
                    "server": plane.server,
                    "certificate-authority-data": _b64(certs / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": _b64(certs / "admin.crt"),
                    "client-key-data": _b64(certs / "admin.key"),
                },
            }
        ],
        "contexts": [
            {
                "name": "ansible-bridge",
                "context": {"cluster": "ansible-bridge", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "ansible-bridge",
    }
    plane.kubeconfig.write_text(json.dumps(config, indent=2))
    plane.kubeconfig.chmod(0o600)


def ssl_context(run_dir: Path) -> ssl.SSLContext:
    """A TLS context that trusts the plane's CA and presents the admin client certificate."""
    certs = run_dir / "certs"
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    ctx.load_cert_chain(str(certs / "admin.crt"), str(certs / "admin.key"))
    return ctx


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
    if all(_pid_alive(p, str(run_dir)) for p in plane.pids()):
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
        if pid and _pid_alive(pid, marker):
            ran = True
            _stop_pid(pid, marker)
    with contextlib.suppress(OSError):
        (run_dir / "state.json").unlink()
    shutil.rmtree(run_dir / "etcd-data", ignore_errors=True)
    return ran
