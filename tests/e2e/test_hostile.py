"""Hostile resources end to end (#20 items 1 and 6): a spec nested thousands of levels deep or
too large is reported InvalidSpec while the operator keeps serving the others; once deletion has
begun, updates do not cancel the finalizer run."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.e2e.conftest import DATA, GROUP, VERSION, Bridge, wait_for

pytestmark = pytest.mark.e2e

RECORD = str(DATA / "record.yml")


def _create_raw(bridge: Bridge, name: str, spec_json: str) -> None:
    """Create a Probe from raw JSON (the Python client cannot encode what is too deep for it)."""
    path = bridge.workdir / f"{name}.json"
    path.write_text(
        f'{{"apiVersion": "{GROUP}/{VERSION}", "kind": "Probe", '
        f'"metadata": {{"name": "{name}"}}, "spec": {spec_json}}}'
    )
    bridge.kubectl("create", "-n", bridge.namespace, "-f", str(path))


def _ready(bridge: Bridge, name: str) -> dict[str, str] | None:
    """The Ready condition, read through kubectl (the object may be too deep for Python)."""
    out = bridge.kubectl(
        "get", "probes", name, "-n", bridge.namespace, "-o", "jsonpath={.status.conditions}"
    ).stdout
    for condition in json.loads(out) if out.strip() else []:
        if condition["type"] == "Ready":
            return dict(condition)
    return None


def test_deep_and_large_specs_are_invalid_and_the_operator_serves_the_others(
    bridge: Bridge,
) -> None:
    operator = bridge.start([{"kind": "Probe", "playbook": RECORD}])
    _create_raw(bridge, "deep3000", '{"a": ' * 3000 + "1" + "}" * 3000)
    _create_raw(bridge, "deep900", '{"a": ' + "[" * 900 + "]" * 900 + "}")
    bridge.create("large", {"message": "x" * (300 * 1024)})
    bridge.create("fine", {"message": "hello"})

    assert bridge.wait_ready("fine")["status"]["outputs"]["message"] == "hello"
    for name, why in (
        ("deep3000", "nested deeper than 100 levels"),
        ("deep900", "nested deeper than 100 levels"),
        ("large", "more than the limit of 256 KiB"),
    ):
        ready = wait_for(f"{name} InvalidSpec", lambda n=name: _ready(bridge, n), 60)
        assert ready["status"] == "False" and ready["reason"] == "InvalidSpec", ready
        assert why in ready["message"]
        warnings = [e for e in bridge.events(name) if e["reason"] == "InvalidSpec"]
        assert warnings and warnings[0]["type"] == "Warning" and why in warnings[0]["message"]
        assert bridge.runs(name) == []
    # Still serving: a new resource runs, and the process never restarted.
    bridge.create("after", {"message": "still here"})
    bridge.wait_ready("after")
    assert operator.proc is not None and operator.proc.poll() is None
    log = operator.log_text()
    assert "maximum recursion depth" not in log and "RecursionError" not in log


HOLDING_FINALIZER = """
- name: Finalize slowly
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Record the start
      ansible.builtin.lineinfile:
        path: "{{ record_dir }}/{{ ansible_operator_meta.name }}.finalizing"
        line: started
        create: true
        mode: "0600"
    - name: Hold until released
      ansible.builtin.wait_for:
        path: "{{ record_dir }}/{{ ansible_operator_meta.name }}.release"
        timeout: 120
"""


def test_updates_while_the_finalizer_runs_do_not_cancel_it(bridge: Bridge) -> None:
    finalize = bridge.workdir / "finalize_hold.yml"
    finalize.write_text(textwrap.dedent(HOLDING_FINALIZER))
    finalizer = "test.ansible-bridge.io/cleanup"
    bridge.start(
        [
            {
                "kind": "Probe",
                "playbook": RECORD,
                "finalizer": {"name": finalizer, "playbook": str(finalize)},
            }
        ]
    )
    bridge.create("p", {"message": "x"})
    bridge.wait_ready("p")
    bridge.delete("p")
    started = bridge.records / "p.finalizing"
    wait_for("the finalizer to start", started.exists)
    bridge.patch("p", {"metadata": {"labels": {"team": "b"}, "annotations": {"note": "1"}}})
    bridge.patch("p", {"metadata": {"annotations": {"note": "2"}}})
    wait_for("the updates to arrive", lambda: "note" in str(bridge.get("p")))
    (bridge.records / "p.release").write_text("")
    wait_for("the object to go", lambda: bridge.get("p") is None, 60)
    assert started.read_text().splitlines() == ["started"]  # one finalizer run, not restarted
    reasons = [e["reason"] for e in bridge.events("p")]
    assert "FinalizerFailed" not in reasons and "Finalized" in reasons
