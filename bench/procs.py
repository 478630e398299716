"""Processes the benchmark starts: the bridge and the Operator SDK operator, bare
``ansible-playbook`` runs; and what /proc says about them (RSS, CPU time, descendants)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.settings import REPO
from bridge.tools.operator_process import OperatorProcess, bridge_command, http_status

CLK_TCK = os.sysconf("SC_CLK_TCK")
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- /proc ----------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (not of its children)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry.name))
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def processes_mentioning(marker: str) -> list[int]:
    """PIDs of live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = _stat_fields(int(entry.name))[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


# --- operators ------------------------------------------------------------------------------


#: The operator processes the bench starts (the bridge's and the peer's): one helper for both.
Operator = OperatorProcess


def bridge_operator(
    *,
    watches: Path,
    kubeconfig: Path,
    namespaces: Sequence[str],
    workdir: Path,
    executor: str,
    concurrency: int,
    env: Mapping[str, str],
    name: str,
) -> Operator:
    port = free_port()
    cmd = bridge_command(
        watches,
        kubeconfig=kubeconfig,
        artifacts_dir=workdir / f"artifacts-{name}",
        namespaces=namespaces,
        executor=executor,
        http_host="127.0.0.1",
        http_port=port,
        log_level="info",
        extra=("--max-concurrent-runs", str(concurrency)),
    )
    return OperatorProcess(
        cmd,
        env={**os.environ, **env, "KUBECONFIG": str(kubeconfig)},
        log=workdir / f"{name}.log",
        cwd=REPO,
        port=port,
        label=f"ansible-bridge ({executor})",
    )


def runs_started(op: Operator) -> float:
    """Runs finished + in flight + queued, from the bridge's /metrics."""
    status, text = http_status(f"http://127.0.0.1:{op.port}/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics of {op.label} answered {status}")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(
            (
                "ansible_bridge_runs_total{",
                "ansible_bridge_runs_in_flight{",
                "ansible_bridge_runs_queued{",
            )
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- bare ansible-playbook ------------------------------------------------------------------


class Bare:
    """``ansible-playbook`` of the bridge's virtualenv, on the same localhost inventory the
    bridge writes (local connection, the same Python), with the vars the bridge would pass."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "bare"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.inventory = self.dir / "hosts"
        self.inventory.write_text(
            f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        )
        self.playbook_bin = VENV_BIN / "ansible-playbook"

    def vars_file(self, name: str, variables: Mapping[str, Any]) -> Path:
        path = self.dir / f"{name}.json"
        path.write_text(json.dumps(variables))
        return path

    def command(self, playbook: Path, vars_file: Path | str) -> list[str]:
        return [
            str(self.playbook_bin),
            "-i",
            str(self.inventory),
            str(playbook),
            "-e",
            f"@{vars_file}",
        ]

    def run(self, playbook: Path, vars_file: Path) -> float:
        """Wall time of one run (it must succeed)."""
        start = time.monotonic()
        proc = subprocess.run(
            self.command(playbook, vars_file),
            capture_output=True,
            text=True,
            cwd=playbook.parent,
            stdin=subprocess.DEVNULL,
        )
        took = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError(f"bare ansible-playbook {playbook.name} failed:\n{proc.stdout}")
        return took

    def run_many(self, playbook: Path, vars_files: Sequence[Path], parallel: int) -> float:
        """Wall time of ``xargs -P parallel`` running one ansible-playbook per vars file."""
        listing = self.dir / "xargs-input.txt"
        listing.write_text("".join(f"{v}\n" for v in vars_files))
        cmd = [
            "xargs",
            "-P",
            str(parallel),
            "-I{}",
            *self.command(playbook, "{}"),
        ]
        start = time.monotonic()
        with open(listing, "rb") as stdin:
            proc = subprocess.run(
                cmd,
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd=playbook.parent,
            )
        took = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError(
                f"xargs ansible-playbook failed ({proc.returncode}): {proc.stderr.decode()}"
            )
        return took
