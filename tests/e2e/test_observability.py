"""Seeing what happened, end to end: /readyz, /metrics and run output through `ansible-bridge logs`.

The operator runs with ``--http-port 0`` and the test reads the chosen port from its log.
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import GROUP, VERSION, Bridge, wait_for
from tests.e2e.test_bridge import probe_watch

pytestmark = pytest.mark.e2e


def start(bridge: Bridge, entries: list[dict[str, object]] | None = None) -> str:
    """Start the operator (watching ``entries``, else Probe) on a free loopback port; its base
    URL."""
    bridge.start(entries or [probe_watch()], "--http-host", "127.0.0.1", "--http-port", "0")
    operator = bridge.operator
    assert operator is not None

    def port() -> str | None:
        found = re.search(r"HTTP server on 127\.0\.0\.1:(\d+)", operator.log_text())
        return found.group(1) if found else None

    return f"http://127.0.0.1:{wait_for('the HTTP server', port, timeout=30)}"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode()


def cli_logs(bridge: Bridge, base: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "logs", *args, "-n", bridge.namespace, "--url", base],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_probes_metrics_and_run_output(bridge: Bridge) -> None:
    base = start(bridge)
    assert get(f"{base}/healthz") == (200, "ok\n")
    wait_for("/readyz 200", lambda: get(f"{base}/readyz")[0] == 200, timeout=30)

    bridge.create("p1", {"message": "hello"})
    obj = bridge.wait_ready("p1")

    status, metrics = get(f"{base}/metrics")
    assert status == 200
    labels = f'group="{GROUP}",kind="Probe"'
    assert f'ansible_bridge_runs_total{{{labels},result="successful"}} 1.0' in metrics
    assert f'ansible_bridge_runs_total{{{labels},result="failed"}} 0.0' in metrics
    assert f"ansible_bridge_run_duration_seconds_count{{{labels}}} 1.0" in metrics
    assert f"ansible_bridge_runs_in_flight{{{labels}}} 0.0" in metrics
    assert f"ansible_bridge_runs_queued{{{labels}}} 0.0" in metrics
    assert f"ansible_bridge_last_success_timestamp_seconds{{{labels}}} " in metrics
    assert "p1" not in metrics and bridge.namespace not in metrics  # no resource in labels

    shown = cli_logs(bridge, base, "probe/p1")
    assert shown.returncode == 0, shown.stderr
    assert "TASK [Write the message]" in shown.stdout and "PLAY RECAP" in shown.stdout
    run_id = obj["status"]["lastRun"]["id"]
    by_id = cli_logs(bridge, base, "probes/p1", "--run", run_id)
    assert by_id.returncode == 0 and by_id.stdout == shown.stdout

    missing = cli_logs(bridge, base, "probe/nothing-here")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "not found" in missing.stderr and "nothing-here" in missing.stderr
    assert get(f"{base}/logs/{bridge.namespace}/probe/nothing-here")[0] == 404
    assert get(f"{base}/logs/{bridge.namespace}/probe/p1?run=000000000000")[0] == 404
    assert get(f"{base}/logs/{bridge.namespace}/unknownkind/p1")[0] == 404
    assert get(f"{base}/logs/{bridge.namespace}/probe/p1?run=..%2F..")[0] == 400


def test_follow_streams_a_run_until_it_ends(bridge: Bridge) -> None:
    base = start(bridge)
    bridge.create("held", {"message": "m", "hold": True})
    wait_for("the run to start", lambda: bridge.runs("held"))

    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "logs",
            "probe/held",
            "-n",
            bridge.namespace,
            "--url",
            base,
            "--follow",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout or ()])
    reader.start()
    try:
        seen: list[str] = []

        def holding() -> bool:
            while not lines.empty():
                seen.append(lines.get())
            return any("TASK [Hold until released]" in line for line in seen)

        # Output arrives while the run is still going.
        wait_for("the held task in the followed output", holding, timeout=60)
        assert follower.poll() is None
        assert not any("PLAY RECAP" in line for line in seen)

        (bridge.records / f"{bridge.namespace}.held.release").touch()
        assert follower.wait(timeout=60) == 0, follower.stderr.read() if follower.stderr else ""
        reader.join(timeout=10)
        while not lines.empty():
            seen.append(lines.get())
        assert any("PLAY RECAP" in line for line in seen)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        reader.join(timeout=10)
        if follower.stderr is not None:
            follower.stderr.close()
        follower.stdout.close()
    bridge.wait_ready("held")


#: A kind whose CRD plural (``lights``) is not the one derived from the kind (``beacons``).
BEACON_CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: lights.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: lights, singular: light, kind: Beacon}}
  versions:
    - name: {VERSION}
      served: true
      storage: true
      subresources: {{status: {{}}}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
            status: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def test_logs_find_a_kind_by_the_plural_its_watch_declares(bridge: Bridge) -> None:
    bridge.kubectl("apply", "-f", "-", input=BEACON_CRD)
    bridge.kubectl("wait", "--for=condition=Established", f"crd/lights.{GROUP}", "--timeout=60s")
    playbook = bridge.workdir / "beacon.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Shine\n      ansible.builtin.debug: {msg: shining}\n"
    )
    base = start(bridge, [{"kind": "Beacon", "plural": "lights", "playbook": str(playbook)}])
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Beacon",
        "metadata": {"name": "b1"},
        "spec": {},
    }
    bridge.custom.create_namespaced_custom_object(GROUP, VERSION, bridge.namespace, "lights", body)

    def ran() -> bool:
        obj = bridge.custom.get_namespaced_custom_object(
            GROUP, VERSION, bridge.namespace, "lights", "b1"
        )
        return bool(((obj.get("status") or {}).get("lastRun") or {}).get("id"))

    wait_for("the Beacon's first run", ran, timeout=120)
    shown = cli_logs(bridge, base, "lights/b1")
    assert shown.returncode == 0, shown.stderr
    assert "TASK [Shine]" in shown.stdout and "PLAY RECAP" in shown.stdout
    assert get(f"{base}/logs/{bridge.namespace}/lights.{GROUP}/b1")[0] == 200
    assert get(f"{base}/logs/{bridge.namespace}/beacons/b1")[0] == 404  # not this kind's plural
