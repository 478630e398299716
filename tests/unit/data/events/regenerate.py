"""Re-create the ansible-runner event fixtures in this folder by really running small playbooks.

Run from the repository root with the project's venv (needs ansible-runner, ansible-core and an
``ssh`` client; the unreachable host is 127.0.0.9 port 1, so nothing leaves the machine):

    .venv/bin/python tests/unit/data/events/regenerate.py            # every scenario
    .venv/bin/python tests/unit/data/events/regenerate.py loop no_log  # some of them

Each ``<scenario>.json`` holds ``{"status", "rc", "events"}``: the runner's final status and rc,
and the events exactly as ansible-runner handed them to ``event_handler``, trimmed of keys the
bridge never reads (uuids of parents, timings, line numbers, module invocations) and with the
temporary private data dir replaced by ``<private_data_dir>`` so that re-runs diff cleanly.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

LOCALHOST = "localhost ansible_connection=local\n"
TWO_LOCAL = "host1 ansible_connection=local\nhost2 ansible_connection=local\n"
WITH_UNREACHABLE = (
    TWO_LOCAL + "host3 ansible_host=127.0.0.9 ansible_connection=ssh ansible_port=1\n"
)


@dataclass(frozen=True)
class Scenario:
    playbook: str
    inventory: str = LOCALHOST
    timeout: int | None = None


SCENARIOS: dict[str, Scenario] = {
    # Two hosts, changes on both, set_stats outputs (run_once: set_stats aggregates by default,
    # so without it numbers would add up and strings concatenate across hosts).
    "success": Scenario(
        inventory=TWO_LOCAL,
        playbook="""
        - name: Configure the app
          hosts: all
          gather_facts: false
          tasks:
            - name: Write config
              ansible.builtin.command: "true"
              changed_when: true
            - name: Restart service
              ansible.builtin.command: "true"
              changed_when: inventory_hostname == 'host1'
            - name: Check health
              ansible.builtin.command: "true"
              changed_when: false
            - name: Only on Debian 1
              ansible.builtin.debug:
                msg: never
              when: false
            - name: Publish outputs
              ansible.builtin.set_stats:
                data:
                  url: http://app.example.invalid
                  replicas: 3
                  nested: {a: [1, 2]}
              run_once: true
            - name: Per-host stats are not outputs
              ansible.builtin.set_stats:
                data: {per_host_value: 1}
                per_host: true
        """,
    ),
    "failed": Scenario(
        playbook="""
        - name: Install things
          hosts: all
          gather_facts: false
          tasks:
            - name: Prepare
              ansible.builtin.command: "true"
              changed_when: true
            - name: Install package
              ansible.builtin.command: >-
                sh -c 'echo "No package matching nginx-x is available" >&2; exit 1'
            - name: Never reached
              ansible.builtin.debug:
                msg: unreachable code
        """,
    ),
    "ignore_errors": Scenario(
        playbook="""
        - name: Tolerate a failure
          hosts: all
          gather_facts: false
          tasks:
            - name: Optional cleanup
              ansible.builtin.fail:
                msg: nothing to clean
              ignore_errors: true
            - name: Carry on
              ansible.builtin.command: "true"
              changed_when: true
        """,
    ),
    "rescued": Scenario(
        playbook="""
        - name: Recover from a failure
          hosts: all
          gather_facts: false
          tasks:
            - name: Try and recover
              block:
                - name: Try the fast way
                  ansible.builtin.fail:
                    msg: fast way is broken
              rescue:
                - name: Take the slow way
                  ansible.builtin.command: "true"
                  changed_when: true
        """,
    ),
    "rescued_then_failed": Scenario(
        playbook="""
        - name: Recover, then fail for real
          hosts: all
          gather_facts: false
          tasks:
            - name: Try and recover
              block:
                - name: Try the fast way
                  ansible.builtin.fail:
                    msg: fast way is broken
              rescue:
                - name: Take the slow way
                  ansible.builtin.debug:
                    msg: recovered
            - name: Migrate database
              ansible.builtin.fail:
                msg: migration 42 failed
        """,
    ),
    "no_log": Scenario(
        playbook="""
        - name: Handle a secret
          hosts: all
          gather_facts: false
          tasks:
            - name: Log in with the secret
              ansible.builtin.command: >-
                sh -c 'echo "bad password s3cr3t-pa55" >&2; exit 1'
              no_log: true
        """,
    ),
    "loop": Scenario(
        playbook="""
        - name: Check items
          hosts: all
          gather_facts: false
          tasks:
            - name: Validate item
              ansible.builtin.assert:
                that: item != 'b'
                fail_msg: "item {{ item }} is not allowed"
                success_msg: "item {{ item }} is fine"
              loop: [a, b, c]
        """,
    ),
    "loop_no_log": Scenario(
        playbook="""
        - name: Check secret items
          hosts: all
          gather_facts: false
          tasks:
            - name: Validate secret item
              ansible.builtin.assert:
                that: item != 's3cr3t-b'
                fail_msg: "item {{ item }} is not allowed"
              loop: [s3cr3t-a, s3cr3t-b]
              no_log: true
        """,
    ),
    # host1 succeeds, host2 fails a task, host3 cannot be reached.
    "multihost": Scenario(
        inventory=WITH_UNREACHABLE,
        playbook="""
        - name: Roll out
          hosts: all
          gather_facts: false
          tasks:
            - name: Ping
              ansible.builtin.ping:
            - name: Deploy
              ansible.builtin.command: "true"
              changed_when: true
            - name: Verify
              ansible.builtin.fail:
                msg: "verification failed on {{ inventory_hostname }}"
              when: inventory_hostname == 'host2'
        """,
    ),
    # Stopped by the runner's timeout: no playbook_on_stats event.
    "timeout": Scenario(
        timeout=8,
        playbook="""
        - name: Slow work
          hosts: all
          gather_facts: false
          tasks:
            - name: Quick change
              ansible.builtin.command: "true"
              changed_when: true
            - name: Optional step
              ansible.builtin.fail:
                msg: optional step failed
              ignore_errors: true
            - name: Skipped step
              ansible.builtin.debug:
                msg: never
              when: false
            - name: Wait forever
              ansible.builtin.command: sleep 60
        """,
    ),
    # The playbook cannot be loaded: no task ever runs.
    "syntax_error": Scenario(
        playbook="""
        - name: Broken
          hosts: all
          gather_facts: false
          tasks:
            - name: Use a module that does not exist
              no.such.module:
                x: 1
        """,
    ),
}

#: Top-level event keys kept; the rest (pid, line numbers, runner_ident, parent_uuid) is noise.
KEEP_EVENT_KEYS = ("uuid", "counter", "event", "stdout", "created", "event_data")
#: event_data keys dropped: uuids, timings and paths the bridge never reads.
DROP_DATA_KEYS = (
    "playbook_uuid",
    "play_uuid",
    "task_uuid",
    "task_path",
    "task_args",
    "start",
    "end",
    "duration",
    "uuid",
)


def trim(event: dict[str, Any]) -> dict[str, Any]:
    """Drop the keys the bridge never reads (plain output events keep their stdout)."""
    out = {k: event[k] for k in KEEP_EVENT_KEYS if k in event}
    data = {k: v for k, v in event.get("event_data", {}).items() if k not in DROP_DATA_KEYS}
    res = data.get("res")
    if isinstance(res, dict):
        res = {k: v for k, v in res.items() if k != "invocation"}
        if isinstance(res.get("results"), list):
            res["results"] = [
                {k: v for k, v in item.items() if k != "invocation"}
                if isinstance(item, dict)
                else item
                for item in res["results"]
            ]
        data["res"] = res
    if data or "event_data" in event:
        out["event_data"] = data
    return out


def run(name: str, scenario: Scenario) -> dict[str, Any]:
    import ansible_runner  # only needed here, never at test time

    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any]) -> bool:
        events.append(event)
        return True

    with tempfile.TemporaryDirectory(prefix="bridge-events-") as tmp:
        private = Path(tmp)
        (private / "project").mkdir()
        (private / "project" / "playbook.yml").write_text(textwrap.dedent(scenario.playbook))
        runner = ansible_runner.run(
            private_data_dir=str(private),
            playbook="playbook.yml",
            inventory=scenario.inventory,
            timeout=scenario.timeout,
            quiet=True,
            event_handler=handler,
            envvars={
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_HOST_KEY_CHECKING": "False",
                "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
                "ANSIBLE_RETRY_FILES_ENABLED": "False",
            },
        )
        trimmed = [trim(e) for e in events]
        text = json.dumps(trimmed).replace(str(private), "<private_data_dir>")
    print(f"{name}: {runner.status} rc={runner.rc} events={len(trimmed)}")
    return {"status": runner.status, "rc": runner.rc, "events": json.loads(text)}


def main(argv: list[str]) -> int:
    # ansible-runner looks ansible-playbook up on PATH: use the one beside this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    names = argv or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        return 2
    for name in names:
        data = run(name, SCENARIOS[name])
        (HERE / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
