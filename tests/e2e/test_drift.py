"""Drift detection end to end: checks with --check --diff, Drifted, remediation.

The playbook (data/drift.yml) manages one file with the spec's ``content`` and records every
execution with Ansible's ``ansible_check_mode``, so the tests see which runs were checks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DATA, GROUP, VERSION, Bridge, wait_for
from tests.e2e.test_observability import get

pytestmark = pytest.mark.e2e

DRIFT = str(DATA / "drift.yml")


def drift_watch(**drift: object) -> dict[str, object]:
    return {"kind": "Probe", "playbook": DRIFT, "drift": {"mode": "check", **drift}}


def managed(bridge: Bridge, name: str) -> Path:
    return bridge.records / f"{bridge.namespace}.{name}.conf"


def executions(bridge: Bridge, name: str) -> list[str]:
    path = bridge.records / f"{bridge.namespace}.{name}.executions"
    return path.read_text().splitlines() if path.exists() else []


def drifted(bridge: Bridge, name: str, status: str, reason: str) -> Any:
    def check() -> dict[str, Any] | None:
        cond = bridge.condition(name, "Drifted")
        if cond and cond["status"] == status and cond["reason"] == reason:
            return cond
        return None

    try:
        return wait_for(f"Drifted={status} ({reason})", check, timeout=60)
    except AssertionError:
        print(bridge.operator.log_text()[-6000:] if bridge.operator else "")
        raise


def test_a_change_behind_the_bridges_back_is_reported_not_reverted(bridge: Bridge) -> None:
    bridge.start([drift_watch(interval="2s")])
    bridge.create("p", {"content": "one"})
    ready = bridge.wait_ready("p")
    assert managed(bridge, "p").read_text() == "one"

    managed(bridge, "p").write_text("tampered")
    cond = drifted(bridge, "p", "True", "Drifted")
    assert cond["message"] == "1 task would change: 'Render config' on localhost"
    obj = bridge.get("p") or {}
    status = obj["status"]
    assert status["lastCheck"]["drifted"] == [{"host": "localhost", "task": "Render config"}]
    assert status["lastCheck"]["result"] == "successful"
    assert status["lastCheck"]["generation"] == 1
    # The check changed nothing: neither the file nor the run record, outputs or Ready.
    assert managed(bridge, "p").read_text() == "tampered"
    for key in ("observedGeneration", "lastRun", "runs", "outputs"):
        assert status.get(key) == ready["status"].get(key), key
    assert bridge.condition("p", "Ready") == next(
        c for c in ready["status"]["conditions"] if c["type"] == "Ready"
    )
    runs = executions(bridge, "p")
    assert runs[0] == "gen=1 check=False"
    assert len(runs) >= 2 and set(runs[1:]) == {"gen=1 check=True"}
    # Check runs keep their artifacts apart: the runs' folder holds the one real run.
    resource = bridge.workdir / "artifacts" / GROUP / VERSION / "Probe" / bridge.namespace / "p"
    assert [d.name for d in (resource / "artifacts").iterdir()] == [status["lastRun"]["id"]]
    assert status["lastCheck"]["id"] in [d.name for d in (resource / "checks").iterdir()]
    warnings = wait_for(
        "a Drifted event", lambda: [e for e in bridge.events("p") if e["reason"] == "Drifted"]
    )
    assert warnings[0]["type"] == "Warning"
    assert "'Render config' on localhost" in warnings[0]["message"]

    # Put it back by hand: the next check finds nothing to change.
    managed(bridge, "p").write_text("one")
    cond = drifted(bridge, "p", "False", "InSync")
    assert "found nothing to change" in cond["message"]
    assert (bridge.get("p") or {})["status"]["lastCheck"]["drifted"] == []
    assert set(executions(bridge, "p")[1:]) == {"gen=1 check=True"}


def test_remediate_runs_the_playbook_for_real_after_drift(bridge: Bridge) -> None:
    bridge.start([drift_watch(interval="2s", remediate=True)])
    bridge.create("p", {"content": "one"})
    bridge.wait_ready("p")

    managed(bridge, "p").write_text("tampered")
    wait_for("the file to be restored", lambda: managed(bridge, "p").read_text() == "one")

    def remediated() -> dict[str, Any] | None:
        obj = bridge.get("p") or {}
        last_run = (obj.get("status") or {}).get("lastRun") or {}
        return obj if last_run.get("trigger") == "drift" else None

    obj = wait_for("the remediation run in lastRun", remediated)
    assert obj["status"]["lastRun"]["result"] == "successful"
    assert obj["status"]["observedGeneration"] == 1
    drifted(bridge, "p", "False", "InSync")
    assert bridge.condition("p", "Ready")["status"] == "True"  # type: ignore[index]
    reasons = [(e["type"], e["reason"]) for e in bridge.events("p")]
    assert ("Warning", "Drifted") in reasons
    runs = executions(bridge, "p")
    real = [i for i, line in enumerate(runs) if line == "gen=1 check=False"]
    assert len(real) == 2  # create, then the remediation
    assert runs[real[1] - 1] == "gen=1 check=True"  # right after the check that found drift


def test_the_run_after_a_check_is_not_in_check_mode(bridge: Bridge) -> None:
    bridge.start([drift_watch(interval="2s")])
    bridge.create("p", {"content": "one"})
    bridge.wait_ready("p")
    wait_for("a check", lambda: "gen=1 check=True" in executions(bridge, "p"))
    wait_for("its lastCheck", lambda: "lastCheck" in ((bridge.get("p") or {})["status"]))

    bridge.patch_spec("p", {"content": "two"})
    obj = bridge.wait_ready("p", generation=2)
    assert managed(bridge, "p").read_text() == "two"
    assert obj["status"]["lastRun"]["trigger"] == "update"
    assert "gen=2 check=False" in executions(bridge, "p")
    cond = bridge.condition("p", "Drifted") or {}
    assert (cond.get("status"), cond.get("reason")) == ("False", "InSync")


def test_a_check_that_fails_makes_drifted_unknown_and_leaves_ready(bridge: Bridge) -> None:
    bridge.start([drift_watch(interval="2s")])
    bridge.create("p", {"content": "one", "failInCheck": True})
    bridge.wait_ready("p")

    cond = drifted(bridge, "p", "Unknown", "CheckFailed")
    assert "Refuse check mode" in cond["message"]
    assert "this task cannot run in check mode" in cond["message"]
    obj = bridge.get("p") or {}
    assert obj["status"]["lastCheck"]["result"] == "failed"
    assert obj["status"]["lastRun"]["trigger"] == "create"
    assert bridge.condition("p", "Ready")["status"] == "True"  # type: ignore[index]
    assert managed(bridge, "p").read_text() == "one"


def checks_total(metrics: str, result: str) -> float:
    """``ansible_bridge_checks_total`` of the Probe kind for ``result`` (0 when absent)."""
    wanted = ('kind="Probe"', f'group="{GROUP}"', f'result="{result}"')
    for line in metrics.splitlines():
        if line.startswith("ansible_bridge_checks_total{") and all(w in line for w in wanted):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_check_runs_are_counted_and_their_output_is_served(bridge: Bridge) -> None:
    bridge.start([drift_watch(interval="2s")], "--http-host", "127.0.0.1")
    operator = bridge.operator
    assert operator is not None
    port = wait_for(
        "the HTTP server",
        lambda: re.findall(r"HTTP server on 127\.0\.0\.1:(\d+)", operator.log_text()),
        timeout=30,
    )[0]
    base = f"http://127.0.0.1:{port}"
    bridge.create("p", {"content": "one"})
    ready = bridge.wait_ready("p")
    managed(bridge, "p").write_text("tampered")
    drifted(bridge, "p", "True", "Drifted")

    metrics = get(f"{base}/metrics")[1]
    assert checks_total(metrics, "drifted") >= 1
    assert checks_total(metrics, "failed") == 0
    # Checks are not runs: the one run is the create.
    assert re.search(r'ansible_bridge_runs_total\{[^}]*result="successful"[^}]*\} 1\.0', metrics)

    # A check's output, by its id: the --diff of the tampered file.
    check_id = (bridge.get("p") or {})["status"]["lastCheck"]["id"]
    status, output = get(f"{base}/logs/{bridge.namespace}/probe/p?run={check_id}")
    assert status == 200, output
    assert "TASK [Render config]" in output and "tampered" in output
    # The newest run shown by default is still the real one.
    newest = get(f"{base}/logs/{bridge.namespace}/probe/p")
    run_id = ready["status"]["lastRun"]["id"]
    assert newest == get(f"{base}/logs/{bridge.namespace}/probe/p?run={run_id}")
    assert newest[0] == 200 and "tampered" not in newest[1]

    managed(bridge, "p").write_text("one")
    drifted(bridge, "p", "False", "InSync")
    assert checks_total(get(f"{base}/metrics")[1], "clean") >= 1
