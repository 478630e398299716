"""Shared fixtures: one real control plane (etcd + kube-apiserver) per test session.

End-to-end tests talk to a real API server started here; nothing of the Kubernetes API is
mocked on that path. A control plane that cannot be started fails the tests that need it (it
never turns them into skips), and the session fails if any of its processes outlives it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.tools import controlplane

_planes: list[controlplane.ControlPlane] = []


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    assets = controlplane.find_assets(dict(os.environ))
    plane = controlplane.start(tmp_path_factory.mktemp("controlplane"), assets, tie_to_parent=True)
    _planes.append(plane)
    try:
        yield plane
    finally:
        controlplane.stop(plane.dir)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = [p for plane in _planes for p in plane.pids() if plane.alive()]
    if left:
        for plane in _planes:
            controlplane.stop(plane.dir)
        print(f"\nERROR: control plane processes outlived the session: {left}")
        session.exitstatus = 1


class Kubectl:
    """Runs the control plane's kubectl against its kubeconfig."""

    def __init__(self, plane: controlplane.ControlPlane) -> None:
        self.plane = plane
        self.env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.plane.kubectl), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def kubectl(control_plane: controlplane.ControlPlane) -> Kubectl:
    return Kubectl(control_plane)


@pytest.fixture(scope="session")
def api_client(control_plane: controlplane.ControlPlane) -> Iterator[Any]:
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace per test (left Terminating: no namespace controller runs here)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


REPO = Path(__file__).resolve().parent.parent
