"""The control plane's binaries (etcd, kube-apiserver, kubectl): found, or built once from Go.

Binaries come from ``$KUBEBUILDER_ASSETS`` when set (the envtest convention), otherwise they
are built once from the Go modules pinned in ``bridge/tools/controlplane_go/go.mod`` with the
machine's Go and the Go module proxy, into ``~/.cache/ansible-bridge/controlplane/<version>/``.
Nothing is ever downloaded from anywhere but the package registries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.model.errors import ControlPlaneError

__all__ = [
    "ASSET_NAMES",
    "GO_MODULE_DIR",
    "Assets",
    "Versions",
    "cache_root",
    "default_run_dir",
    "find_assets",
    "pinned_versions",
]

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
    """Where ``ansible-bridge controlplane`` and the demo run their control plane."""
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
    """The Kubernetes and etcd versions ``go_mod`` pins."""
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
