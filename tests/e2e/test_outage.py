"""Status writes through a kube-apiserver outage end to end (#20 item 4): runs that end while the
API server is down get their final status once it is back.

The test starts a control plane of its own (the session's serves other tests), stops its
kube-apiserver for ~25 s while runs end, then starts it again with the same command line (same
port, certificates and etcd: only the API server was away)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.tools import controlplane
from bridge.tools.processes import cmdline, set_pdeathsig, spawn
from tests.conftest import Kubectl
from tests.e2e.conftest import DATA, Bridge, wait_for

pytestmark = pytest.mark.e2e

RECORD = str(DATA / "record.yml")


@pytest.fixture
def own_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    assets = controlplane.find_assets(dict(os.environ))
    plane = controlplane.start(tmp_path_factory.mktemp("outage"), assets, tie_to_parent=True)
    try:
        yield plane
    finally:
        controlplane.stop(plane.dir)


def _stop_apiserver(plane: controlplane.ControlPlane) -> list[str]:
    """Stop the API server (its command line returned, to start it again as it was)."""
    state = json.loads((plane.dir / "state.json").read_text())
    pid = int(state["apiserver_pid"])
    args = cmdline(pid)
    assert args, "kube-apiserver is not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while cmdline(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return args


def _start_apiserver(plane: controlplane.ControlPlane, args: list[str]) -> None:
    state_file = plane.dir / "state.json"
    proc = spawn(args, plane.dir / "kube-apiserver.log", append=True, preexec=set_pdeathsig)
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "apiserver_pid": proc.pid}))


def test_final_statuses_written_during_an_outage_arrive_once_it_is_over(
    own_plane: controlplane.ControlPlane, tmp_path: Path
) -> None:
    from kubernetes import config

    kubectl = Kubectl(own_plane)
    kubectl("apply", "-f", str(DATA / "crds.yaml"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", namespace)
    api = config.new_client_from_config(config_file=str(own_plane.kubeconfig))
    bridge = Bridge(own_plane, kubectl, api, namespace, tmp_path)
    try:
        operator = bridge.start([{"kind": "Probe", "playbook": RECORD}])
        names = ("a", "b")  # two runs at once (the default limit on this machine)
        for name in names:
            bridge.create(name, {"message": name, "hold": True})
        for name in names:
            wait_for(f"{name}'s run to start", lambda n=name: bridge.runs(n))
            wait_for(
                f"{name}'s currentRun",
                lambda n=name: (bridge.get(n) or {}).get("status", {}).get("currentRun"),
            )
        # The API server goes away; the runs end during the outage (~25 s).
        args = _stop_apiserver(own_plane)
        for name in names:
            (bridge.records / f"{namespace}.{name}.release").write_text("")
        time.sleep(25)
        _start_apiserver(own_plane, args)
        wait_for(
            "the API server to be back",
            lambda: kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
            60,
        )
        for name in names:
            obj = bridge.wait_ready(name, timeout=120)
            assert "currentRun" not in obj["status"]
            assert obj["status"]["lastRun"]["result"] == "successful"
            assert len(bridge.runs(name)) == 1
        log = operator.log_text()
        assert "status not written yet" in log and "status written after" in log
    finally:
        if bridge.operator is not None:
            bridge.operator.stop()
        api.close()
