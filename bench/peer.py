"""The peer: the Operator SDK's Ansible operator (``ansible-operator``), built once from its Go
module with the machine's Go, with a virtualenv of its own for ansible-runner and the HTTP event
plugin it needs. Both are cached under ``~/.cache/ansible-bridge/bench/``.

NB: the pinned release is the newest one the Go module proxy serves here. The proxy refuses the
module's version list (``@v/list``: 403), so ``go install ...@vX.Y.Z`` fails while looking up
deprecations; the build downloads the module at that version (``go mod download``), copies it
to a writable folder and runs ``go build ./cmd/ansible-operator`` there, with the module's own
go.sum. The Operator SDK's image installs its replacement of ``ansible-runner-http`` from
``images/ansible-operator/ansible_runner_http`` of that same module; so does this virtualenv
(``requests`` and ``requests-unixsocket`` from PyPI). ansible-core and ansible-runner are the
bridge's own versions, so both operators run the very same Ansible.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.procs import Operator, free_port, port_free
from bench.settings import REPO

MODULE = "github.com/operator-framework/ansible-operator-plugins"
VERSION = "v1.42.2"
#: The peer's event API listens on this fixed port (not configurable in ansible-operator).
EVENT_API_PORT = 5050


def cache_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "~")) / ".cache")
    return Path(base).expanduser() / "ansible-bridge" / "bench"


@dataclass(frozen=True)
class Peer:
    binary: Path
    venv: Path
    version: str = VERSION


class PeerUnavailable(RuntimeError):
    """Why the peer cannot run here (the table says so instead of a figure)."""


def _run(cmd: Sequence[str], log: Path, **kwargs: Any) -> None:
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)
    if proc.returncode != 0:
        raise PeerUnavailable(f"`{' '.join(cmd[:4])} ...` failed ({proc.returncode}); see {log}")


def _build(cache: Path, log: Path, environ: Mapping[str, str]) -> Path:
    binary = cache / f"ansible-operator-{VERSION}" / "ansible-operator"
    if binary.is_file():
        return binary
    go = shutil.which("go", path=environ.get("PATH"))
    if go is None:
        raise PeerUnavailable("no `go` on PATH to build ansible-operator")
    env = {**environ, "GOFLAGS": "-mod=mod -buildvcs=false"}
    src = cache / f"src-{VERSION}"
    if not (src / "go.mod").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [go, "mod", "download", "-json", f"{MODULE}@{VERSION}"],
                capture_output=True,
                text=True,
                cwd=tmp,
                env=env,
            )
        if proc.returncode != 0:
            raise PeerUnavailable(
                f"the Go module proxy does not serve {MODULE}@{VERSION}: "
                f"{(proc.stdout + proc.stderr).strip()[:300]}"
            )
        info = json.loads(proc.stdout)
        if src.exists():
            shutil.rmtree(src)
        shutil.copytree(info["Dir"], src)
        for path in [src, *src.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    print(f"    building ansible-operator {VERSION} (once; several minutes on 2 cores)", flush=True)
    binary.parent.mkdir(parents=True, exist_ok=True)
    _run([go, "build", "-o", str(binary), "./cmd/ansible-operator"], log, cwd=src, env=env)
    return binary


def _venv(cache: Path, log: Path) -> Path:
    venv = cache / f"peer-venv-{VERSION}"
    stamp = venv / ".bench-installed"
    wanted = {
        "ansible-core": importlib.metadata.version("ansible-core"),
        "ansible-runner": importlib.metadata.version("ansible-runner"),
    }
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return venv
    print("    virtualenv for the peer (ansible-runner + its HTTP event plugin)", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(venv)], log)
    plugin = cache / f"src-{VERSION}" / "images" / "ansible-operator" / "ansible_runner_http"
    _run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            *[f"{name}=={version}" for name, version in wanted.items()],
            "requests",
            "requests-unixsocket",
            str(plugin),
        ],
        log,
    )
    stamp.write_text(json.dumps(wanted))
    return venv


def prepare(environ: Mapping[str, str]) -> Peer:
    """The built peer and its virtualenv (built/created once); PeerUnavailable says why not."""
    cache = cache_dir(environ)
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / f"build-{VERSION}.log"
    binary = _build(cache, log, environ)
    return Peer(binary=binary, venv=_venv(cache, log))


def watches_for_peer(watches: Path, out: Path, env: Mapping[str, str]) -> Path:
    """The bench's watches file for ansible-operator: absolute playbook paths, ${VAR}s
    expanded, bridge-only keys dropped."""
    entries = yaml.safe_load(watches.read_text())
    peer_entries = []
    for entry in entries:
        # NB: reconcilePeriod goes too: the peer wants a duration string, and its default
        # (10h) means no periodic run during the bench anyway.
        e = {k: entry[k] for k in ("group", "version", "kind") if k in entry}
        e["playbook"] = str((watches.parent / entry["playbook"]).resolve())
        if "vars" in entry:
            e["vars"] = {k: _expand(v, env) for k, v in entry["vars"].items()}
        peer_entries.append(e)
    out.write_text(yaml.safe_dump(peer_entries))
    return out


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    """``${NAME}`` in a string from ``env`` (then the process environment), as the bridge does."""
    if not isinstance(value, str):
        return value
    return re.sub(r"\$\{(\w+)\}", lambda m: env.get(m[1], os.environ.get(m[1], "")), value)


def peer_operator(
    peer: Peer,
    *,
    watches: Path,
    kubeconfig: Path,
    namespace: str,
    workdir: Path,
    concurrency: int,
    env: Mapping[str, str],
) -> Operator:
    """``ansible-operator run`` serving ``namespace`` (WATCH_NAMESPACE), no leader election,
    no metrics server, health probes and its Ansible proxy on free loopback ports."""
    if not port_free(EVENT_API_PORT):
        raise PeerUnavailable(
            f"port {EVENT_API_PORT} is taken; ansible-operator's event API needs it"
        )
    port = free_port()
    peer_watches = watches_for_peer(watches, workdir / "peer-watches.yaml", env)
    cmd = [
        str(peer.binary),
        "run",
        "--watches-file",
        str(peer_watches),
        "--leader-elect=false",
        "--metrics-bind-address=0",
        f"--health-probe-bind-address=127.0.0.1:{port}",
        f"--proxy-port={free_port()}",
        f"--max-concurrent-reconciles={concurrency}",
    ]
    environ = {
        **os.environ,
        **env,
        "KUBECONFIG": str(kubeconfig),
        "WATCH_NAMESPACE": namespace,
        "PATH": f"{peer.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    environ.pop("VIRTUAL_ENV", None)
    return Operator(
        cmd,
        env=environ,
        log=workdir / f"peer-{namespace}.log",
        cwd=REPO,
        port=port,
        label=f"ansible-operator {VERSION}",
    )
