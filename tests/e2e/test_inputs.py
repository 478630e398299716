"""What a run receives, end to end: no variable of Ansible's from a resource, and no API access but
the proxy's.

A spec key that would set one of Ansible's own variables (``omit``...) or collide with another
is refused with its own reason, a Warning Event, and no run, while the operator serves the rest;
in the default mode (``--inject-owner-ref``) a run finds neither the operator's kubeconfig nor
``KUBECONFIG`` in its environment, only the API proxy and its own token, and still reaches the API.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.e2e.conftest import DATA, Bridge, wait_for

pytestmark = pytest.mark.e2e

RECORD = str(DATA / "record.yml")

ENV_PLAYBOOK = textwrap.dedent(
    """\
    # Records the environment a run's modules get, then reaches the API with it.
    - name: Record the environment
      hosts: localhost
      gather_facts: false
      tasks:
        - name: The environment, as a module sees it
          ansible.builtin.command: env
          register: module_env
          changed_when: false

        - name: Record it
          ansible.builtin.copy:
            dest: "{{ record_dir }}/{{ ansible_operator_meta.name }}.env"
            content: "{{ module_env.stdout }}\\n"
            mode: "0600"

        - name: Reach the API, through the proxy as there is nothing else
          operator_sdk.util.k8s_status:
            api_version: test.ansible-bridge.io/v1alpha1
            kind: Probe
            name: "{{ ansible_operator_meta.name }}"
            namespace: "{{ ansible_operator_meta.namespace }}"
            status:
              reached: "the API"
    """
)


def ready_condition(obj: dict[str, object]) -> dict[str, str]:
    status = obj["status"]
    assert isinstance(status, dict)
    return dict(next(c for c in status["conditions"] if c["type"] == "Ready"))


def test_a_spec_setting_ansibles_variables_is_refused_and_others_are_served(
    bridge: Bridge,
) -> None:
    bridge.start([{"kind": "Probe", "playbook": RECORD}])
    bridge.create("omits", {"omit": "x", "message": "m"})
    bridge.create("collides", {"fooBar": 1, "foo_bar": 2})
    bridge.create("fine", {"message": "served"})

    omits = bridge.wait_ready("omits", status="False")
    ready = ready_condition(omits)
    assert ready["reason"] == "ReservedVariable"
    assert "spec.omit would set Ansible's magic variable 'omit'" in ready["message"]
    collides = bridge.wait_ready("collides", status="False")
    ready = ready_condition(collides)
    assert ready["reason"] == "VariableCollision"
    assert "spec.fooBar and spec.foo_bar both become 'foo_bar'" in ready["message"]
    for name, reason in (("omits", "ReservedVariable"), ("collides", "VariableCollision")):
        warnings = wait_for(
            f"a Warning Event on {name}",
            lambda name=name: [e for e in bridge.events(name) if e["type"] == "Warning"],
        )
        assert warnings[0]["reason"] == reason
        assert bridge.runs(name) == []  # refused before anything ran

    # The operator keeps serving: the other resource runs, and so does a fixed one.
    fine = bridge.wait_ready("fine")
    assert fine["status"]["outputs"]["message"] == "served"
    bridge.patch("omits", {"spec": {"omit": None}})  # a merge patch: removes the key
    fixed = bridge.wait_ready("omits", generation=2)
    assert fixed["status"]["outputs"]["message"] == "m"
    assert bridge.operator is not None and bridge.operator.proc is not None
    assert bridge.operator.proc.poll() is None


@pytest.mark.parametrize("executor", ["warm", "local"])
def test_default_runs_get_the_proxy_and_no_kubeconfig(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    # The operator is started with both variables set (besides its --kubeconfig), as in a pod
    # or a shell that exported them: a run must get neither.
    kubeconfig = str(bridge.plane.kubeconfig)
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", kubeconfig)
    playbook = bridge.workdir / "env.yml"
    playbook.write_text(ENV_PLAYBOOK)
    bridge.start([{"kind": "Probe", "playbook": str(playbook)}], "--executor", executor)
    bridge.create("env", {})

    obj = bridge.wait_ready("env")
    assert obj["status"]["reached"] == "the API"
    lines = (bridge.records / "env.env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    assert "KUBECONFIG" not in env
    assert "K8S_AUTH_KUBECONFIG" not in env
    assert env["K8S_AUTH_HOST"].startswith("http://127.0.0.1:")
    assert len(env["K8S_AUTH_API_KEY"]) >= 20
    assert sorted(k for k in env if k.startswith("K8S_AUTH_")) == [
        "K8S_AUTH_API_KEY",
        "K8S_AUTH_HOST",
    ]
