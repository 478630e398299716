"""Operator SDK compatibility end to end: its Running/Successful/Failure conditions with
``ansibleResult``, ``requeue_after`` rescheduling the resource, the verbosity annotation and
``ANSIBLE_VERBOSITY_<KIND>_<GROUP>``, and ``MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>``.

The real operator process against the real API server; runs are counted by the playbooks.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import DATA, GROUP, VERSION, Bridge, wait_for

pytestmark = pytest.mark.e2e

RECORD = str(DATA / "record.yml")
REQUEUE = str(DATA / "sdk_requeue.yml")
VERBOSITY = str(DATA / "sdk_verbosity.yml")
VERBOSITY_ANNOTATION = "ansible.sdk.operatorframework.io/verbosity"


def create(bridge: Bridge, name: str, spec: dict[str, Any], **annotations: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Probe",
        "metadata": {"name": name, "annotations": annotations},
        "spec": spec,
    }
    bridge.custom.create_namespaced_custom_object(GROUP, VERSION, bridge.namespace, "probes", body)


def sdk_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c["type"]: c
        for c in (obj.get("status") or {}).get("conditions") or []
        if c["type"] in ("Running", "Successful", "Failure")
    }


def test_sdk_conditions_follow_a_success_then_a_failure(bridge: Bridge) -> None:
    bridge.start([{"kind": "Probe", "playbook": RECORD}])
    bridge.create("p1", {"message": "hello"})
    found = sdk_conditions(bridge.wait_ready("p1"))
    running, successful, failure = found["Running"], found["Successful"], found["Failure"]
    assert (running["status"], running["reason"], running["message"]) == (
        "True",
        "Successful",
        "Awaiting next reconciliation",
    )
    result = running["ansibleResult"]
    assert result["failures"] == 0 and result["ok"] >= 3 and result["changed"] >= 1
    assert result["skipped"] >= 1  # "Hold until released" and "Validate the request"
    assert result["completion"].endswith("+00:00")
    assert (successful["status"], successful["reason"]) == ("True", "Successful")
    assert (failure["status"], failure["reason"], failure["message"]) == ("False", "", "")
    # what the Operator SDK's tooling waits on
    bridge.kubectl(
        "wait", "-n", bridge.namespace, "--for=condition=Successful", "probe/p1", "--timeout=60s"
    )

    bridge.patch_spec("p1", {"failTask": True, "message": "nope"})
    found = sdk_conditions(bridge.wait_ready("p1", status="False", generation=2))
    failure = found["Failure"]
    assert (failure["status"], failure["reason"]) == ("True", "Failed")
    assert failure["message"] == "refusing to apply: nope"
    assert failure["ansibleResult"]["failures"] == 1
    assert found["Successful"]["status"] == "False"
    assert found["Running"]["status"] == "False"


def test_requeue_after_runs_the_resource_again_by_itself(bridge: Bridge) -> None:
    # No reconcilePeriod: only the playbook's requeue_after (2s) brings the next runs.
    bridge.start([{"kind": "Probe", "playbook": REQUEUE}])
    bridge.create("again", {})
    wait_for("three runs of 'again'", lambda: len(bridge.runs("again")) >= 3, timeout=180)
    obj = bridge.get("again") or {}
    last_run = obj["status"]["lastRun"]
    assert last_run["trigger"] == "periodic"
    assert last_run["requeueAfter"] == 2
    assert obj["metadata"]["generation"] == 1  # nothing changed the resource


def test_verbosity_from_the_annotation_and_the_kinds_variable(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK's own name keeps the '-' of the group; the operator inherits the environment.
    monkeypatch.setenv("ANSIBLE_VERBOSITY_PROBE_TEST_ANSIBLE-BRIDGE_IO", "1")
    bridge.start([{"kind": "Probe", "playbook": VERBOSITY}])
    create(bridge, "loud", {}, **{VERBOSITY_ANNOTATION: "3"})
    create(bridge, "plain", {})
    create(bridge, "bad", {}, **{VERBOSITY_ANNOTATION: "very"})
    for name in ("loud", "plain", "bad"):
        bridge.wait_ready(name)
    assert bridge.runs("loud") == ["verbosity=3 flag="]
    assert bridge.runs("plain") == ["verbosity=1 flag="]  # the kind's default
    assert bridge.runs("bad") == ["verbosity=1 flag="]  # a bad annotation: the default applies
    warnings = [e for e in bridge.events("bad") if e["reason"] == "InvalidAnnotation"]
    assert warnings and warnings[0]["type"] == "Warning"
    assert VERBOSITY_ANNOTATION in warnings[0]["message"] and "'very'" in warnings[0]["message"]
    assert not [e for e in bridge.events("loud") if e["reason"] == "InvalidAnnotation"]


def test_max_concurrent_reconciles_of_a_kind_holds_its_other_runs(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_RECONCILES_PROBE_TEST_ANSIBLE_BRIDGE_IO", "1")
    bridge.start([{"kind": "Probe", "playbook": RECORD}], "--max-concurrent-runs", "4")
    bridge.create("h1", {"hold": True})
    bridge.create("h2", {"hold": True})

    def started() -> list[str]:
        return [n for n in ("h1", "h2") if bridge.runs(n)]

    (first,) = wait_for("one of the two runs to start", started, timeout=120)
    second = "h2" if first == "h1" else "h1"

    def queued() -> bool:
        cond = bridge.condition(second, "Reconciling") or {}
        return cond.get("reason") == "Queued"

    wait_for(f"{second} to be queued behind {first}", queued, timeout=60)
    assert started() == [first]  # while the first holds, the second has not run
    (bridge.records / f"{bridge.namespace}.{first}.release").touch()
    bridge.wait_ready(first)
    wait_for(f"{second} to start", lambda: bridge.runs(second), timeout=120)
    (bridge.records / f"{bridge.namespace}.{second}.release").touch()
    bridge.wait_ready(second)


def test_ansible_args_reach_every_run(bridge: Bridge) -> None:
    bridge.start(
        [{"kind": "Probe", "playbook": VERBOSITY}], "--ansible-args", "-e sdk_flag=on --forks 2"
    )
    create(bridge, "args", {})
    bridge.wait_ready("args")
    assert bridge.runs("args") == ["verbosity=0 flag=on"]
