"""``make demo`` for real: control plane, CRDs, a detached operator, a Ready sample; then stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.tools import controlplane, demo

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent.parent


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@pytest.fixture
def demo_env(tmp_path: Path) -> dict[str, str]:
    """A fresh cache folder, but the binaries already found or built for this machine."""
    assets = controlplane.find_assets(dict(os.environ))
    folder = tmp_path / "assets"
    folder.mkdir()
    for name, path in (
        ("etcd", assets.etcd),
        ("kube-apiserver", assets.kube_apiserver),
        ("kubectl", assets.kubectl),
    ):
        (folder / name).symlink_to(path.resolve())
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env["KUBEBUILDER_ASSETS"] = str(folder)
    env.pop("KUBECONFIG", None)
    return env


def test_demo_starts_everything_detached_and_stop_ends_it(demo_env: dict[str, str]) -> None:
    run_dir = controlplane.default_run_dir(demo_env).resolve()
    cmd = [sys.executable, "-m", "bridge.tools.demo"]
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=demo_env, capture_output=True, text=True, timeout=240
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output
        assert "condition met" in output
        assert "Ready" in output and "True" in output
        assert f"export KUBECONFIG={run_dir / 'kubeconfig'}" in output
        assert f"export PATH={Path(demo_env['KUBEBUILDER_ASSETS'])}:$PATH" in output
        assert "make demo-stop" in output

        # Everything still runs after the demo's own process has returned.
        plane = controlplane.status(run_dir)
        assert plane is not None, f"no control plane running in {run_dir}"
        operator_pid = int((run_dir / "operator.pid").read_text())
        assert _running(operator_pid)
        assert all(_running(pid) for pid in plane.pids())

        got = subprocess.run(
            [str(plane.kubectl), "get", "serviceconfig", "shop-frontend", "-o", "json"],
            env={**demo_env, "KUBECONFIG": str(plane.kubeconfig)},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        conditions = json.loads(got.stdout)["status"]["conditions"]
        assert {c["type"]: c["status"] for c in conditions}["Ready"] == "True"

        stop = subprocess.run(
            [*cmd, "stop"], cwd=REPO, env=demo_env, capture_output=True, text=True, timeout=120
        )
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert f"operator (pid {operator_pid}) stopped" in stop.stdout
        assert not _running(operator_pid)
        for pid in plane.pids():
            assert not _running(pid), f"control plane pid {pid} still runs"
        assert controlplane.status(run_dir) is None
        assert not (run_dir / "operator.pid").exists()
    finally:
        # Whatever happened above, nothing of this demo outlives the test.
        demo.stop_operator(run_dir, grace=10)
        controlplane.stop(run_dir)
