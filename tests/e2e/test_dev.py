"""`ansible-bridge dev`: control plane, generated CRDs and the operator in one command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.tools import controlplane
from tests.conftest import REPO
from tests.e2e.conftest import processes_mentioning, wait_for

pytestmark = pytest.mark.e2e


def test_dev_serves_the_watches_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    assets = controlplane.find_assets(dict(os.environ))
    kba = tmp_path / "assets"
    kba.mkdir()
    for name, path in (
        ("etcd", assets.etcd),
        ("kube-apiserver", assets.kube_apiserver),
        ("kubectl", assets.kubectl),
    ):
        (kba / name).symlink_to(path)
    run_dir = tmp_path / "plane"
    secret = REPO / "playbooks" / "samples" / "serviceconfig-secret.yaml"
    sample = REPO / "playbooks" / "samples" / "serviceconfig.yaml"
    log = (tmp_path / "dev.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "dev",
            "--watches",
            str(REPO / "playbooks" / "watches.yaml"),
            "--dir",
            str(run_dir),
            "--artifacts-dir",
            str(tmp_path / "artifacts"),
            "--apply",
            str(secret),
            "--apply",
            str(sample),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "KUBEBUILDER_ASSETS": str(kba), "XDG_CACHE_HOME": str(tmp_path)},
    )
    try:
        wait_for("the KUBECONFIG line", lambda: "export KUBECONFIG" in _read(tmp_path), 180)
        plane = controlplane.status(run_dir)
        assert plane is not None
        env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
        waited = subprocess.run(
            [
                str(plane.kubectl),
                "wait",
                "--for=condition=Ready",
                "--timeout=120s",
                "serviceconfig/shop-frontend",
                "-n",
                "default",
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert waited.returncode == 0, waited.stderr + _read(tmp_path)[-3000:]
        # The generated, typed CRD is the one installed: it refuses an unknown field.
        bad = subprocess.run(
            [str(plane.kubectl), "apply", "-f", "-"],
            input="apiVersion: demo.ansible-bridge.io/v1alpha1\nkind: AppUsers\n"
            "metadata: {name: x, namespace: default}\nspec: {colour: red}\n",
            capture_output=True,
            text=True,
            env=env,
        )
        assert bad.returncode != 0 and "colour" in bad.stderr

        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert not plane.alive()
        assert processes_mentioning(str(tmp_path / "artifacts") + "/") == []
        assert "control plane stopped" in _read(tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        controlplane.stop(run_dir)
        log.close()


def _read(tmp_path: Path) -> str:
    return (tmp_path / "dev.log").read_text(errors="replace")
