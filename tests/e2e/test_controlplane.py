"""The local control plane is a real Kubernetes API server: CRDs, status, validation, cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bridge.tools import controlplane, processes
from tests.conftest import Kubectl

pytestmark = pytest.mark.e2e

CRD = textwrap.dedent(
    """
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: widgets.test.ansible-bridge.io
    spec:
      group: test.ansible-bridge.io
      scope: Namespaced
      names: {plural: widgets, singular: widget, kind: Widget}
      versions:
        - name: v1
          served: true
          storage: true
          subresources: {status: {}}
          schema:
            openAPIV3Schema:
              type: object
              properties:
                spec:
                  type: object
                  properties:
                    size: {type: integer, minimum: 1}
                status:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
    """
)


@pytest.fixture(scope="module")
def widget_crd(kubectl: Kubectl) -> str:
    kubectl("apply", "-f", "-", input=CRD)
    kubectl(
        "wait", "--for=condition=Established", "crd/widgets.test.ansible-bridge.io", "--timeout=30s"
    )
    return "widgets.test.ansible-bridge.io"


def test_kubectl_reaches_readyz(kubectl: Kubectl) -> None:
    assert kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"


def test_crd_applied_with_kubectl_becomes_established(kubectl: Kubectl, widget_crd: str) -> None:
    crd = json.loads(kubectl("get", "crd", widget_crd, "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"


def test_custom_resource_round_trip_and_status_subresource(
    api_client: Any, namespace: str, widget_crd: str
) -> None:
    from kubernetes import client

    api = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": "test.ansible-bridge.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3},
    }
    api.create_namespaced_custom_object("test.ansible-bridge.io", "v1", namespace, "widgets", body)
    got = api.get_namespaced_custom_object(
        "test.ansible-bridge.io", "v1", namespace, "widgets", "w1"
    )
    assert got["spec"] == {"size": 3}
    assert got["metadata"]["generation"] == 1

    api.patch_namespaced_custom_object_status(
        "test.ansible-bridge.io", "v1", namespace, "widgets", "w1", {"status": {"phase": "Done"}}
    )
    got = api.get_namespaced_custom_object(
        "test.ansible-bridge.io", "v1", namespace, "widgets", "w1"
    )
    assert got["status"] == {"phase": "Done"}
    # A status write through the subresource does not bump the generation.
    assert got["metadata"]["generation"] == 1


def test_schema_violation_is_rejected_with_the_servers_message(
    kubectl: Kubectl, namespace: str, widget_crd: str
) -> None:
    bad = textwrap.dedent(
        """
        apiVersion: test.ansible-bridge.io/v1
        kind: Widget
        metadata: {name: bad}
        spec: {size: "three"}
        """
    )
    proc = kubectl("apply", "-n", namespace, "-f", "-", input=bad, check=False)
    assert proc.returncode != 0
    assert "spec.size" in proc.stderr
    assert 'Invalid value: "string"' in proc.stderr


def test_cli_start_status_stop_leaves_no_process(
    control_plane: controlplane.ControlPlane, tmp_path: Path
) -> None:
    run_dir = tmp_path / "plane"
    cli = [sys.executable, "-m", "bridge", "controlplane"]
    env = dict(os.environ)
    start = subprocess.run(
        [*cli, "start", "--dir", str(run_dir)], capture_output=True, text=True, env=env, timeout=180
    )
    assert start.returncode == 0, start.stderr
    assert f"export KUBECONFIG={run_dir.resolve() / 'kubeconfig'}" in start.stdout
    plane = controlplane.status(run_dir)
    assert plane is not None and plane.alive()
    kube_env = {**env, "KUBECONFIG": str(plane.kubeconfig)}
    readyz = subprocess.run(
        [str(plane.kubectl), "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        env=kube_env,
    )
    assert readyz.stdout.strip() == "ok"
    assert subprocess.run([*cli, "status", "--dir", str(run_dir)], env=env).returncode == 0

    stop = subprocess.run([*cli, "stop", "--dir", str(run_dir)], capture_output=True, text=True)
    assert stop.returncode == 0
    for pid in plane.pids():
        assert not Path(f"/proc/{pid}").exists() or not processes.pid_alive(pid, str(run_dir))
    assert subprocess.run([*cli, "status", "--dir", str(run_dir)], env=env).returncode == 1
