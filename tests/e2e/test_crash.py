"""The operator killed outright (SIGKILL): no process of its runs outlives it, and no Secret value
its interrupted runs wrote survives on disk or is served by ``/logs`` after the restart.

Each test runs with the suite's executor (warm by default, ``BRIDGE_TEST_EXECUTOR=local``).
"""

from __future__ import annotations

import os
import re
import signal
import textwrap
from pathlib import Path

import pytest

from bridge.executors import lifeline
from tests.e2e.conftest import Bridge, Operator, ansible_processes, wait_for
from tests.e2e.test_observability import get
from tests.processes import sleeping

pytestmark = pytest.mark.e2e

#: Seconds within which every process of a run must be gone once the operator is.
BOUND = 15.0


def _playbook(bridge: Bridge, tag: str) -> Path:
    """A playbook that shows its ``message``, starts a detached process without the run's
    environment (``sleep <tag>``), then holds until released (or the run's timeout)."""
    path = bridge.workdir / "detach.yml"
    path.write_text(
        textwrap.dedent(
            f"""\
            - hosts: all
              gather_facts: false
              vars:
                meta: "{{{{ ansible_operator_meta }}}}"
                key: "{{{{ meta.namespace }}}}.{{{{ meta.name }}}}"
              tasks:
                - name: Show the message
                  ansible.builtin.debug:
                    msg: "message={{{{ message | default('') }}}}"
                - name: Detach a process without the run's environment
                  ansible.builtin.shell: setsid env -i sleep {tag} </dev/null >/dev/null 2>&1 &
                - name: Hold until released
                  ansible.builtin.wait_for:
                    path: "{{{{ record_dir }}}}/{{{{ key }}}}.release"
                    timeout: 600
            """
        )
    )
    return path


def _tied_to(token: str) -> list[str]:
    """Processes started for the operator of ``token``: run supervisors (its token in their
    command line), the warm server and its module zygote (its token in their environment)."""
    found = []
    needle = token.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and (needle in cmdline.split(b"\0") or needle in environ):
            shown = cmdline.replace(b"\0", b" ")[:160].decode(errors="replace")
            found.append(f"{entry.name}: {shown}")
    return found


def _kill(tag: str) -> None:
    for pid in sleeping(tag):
        os.kill(pid, signal.SIGKILL)


def _tag() -> str:
    return f"600.{os.getpid()}{os.urandom(3).hex().translate(str.maketrans('abcdef', '123456'))}"


def _sigkill(operator: Operator) -> str:
    """SIGKILL the operator process; its lifeline token (taken while it was alive)."""
    assert operator.proc is not None
    token = lifeline.token(operator.proc.pid)
    operator.stop(signal.SIGKILL)
    return token


def test_sigkill_of_the_operator_ends_every_process_of_its_run(bridge: Bridge) -> None:
    tag = _tag()
    operator = bridge.start([{"kind": "Probe", "playbook": str(_playbook(bridge, tag))}])
    try:
        bridge.create("p", {"message": "m"})
        wait_for("the run to hold", lambda: ansible_processes(bridge) and sleeping(tag))

        token = _sigkill(operator)
        wait_for("no process of the run", lambda: not ansible_processes(bridge), timeout=BOUND)
        wait_for("the detached process to go", lambda: not sleeping(tag), timeout=BOUND)
        # Nor the warm server, its module zygote or a run supervisor.
        wait_for("nothing of the operator", lambda: not _tied_to(token), timeout=BOUND)
    finally:
        _kill(tag)


def test_a_detached_process_without_the_run_environment_ends_with_the_timeout(
    bridge: Bridge,
) -> None:
    tag = _tag()
    bridge.start([{"kind": "Probe", "playbook": str(_playbook(bridge, tag)), "timeout": "8s"}])
    try:
        bridge.create("slow", {"message": "m"})
        wait_for("the detached process", lambda: sleeping(tag))
        obj = bridge.wait_ready("slow", status="False")
        assert obj["status"]["lastRun"]["result"] == "timeout"
        wait_for("the detached process to go", lambda: not sleeping(tag), timeout=BOUND)
        assert ansible_processes(bridge) == []
    finally:
        _kill(tag)


def _files_with(root: Path, value: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and value in p.read_bytes()]


def test_secrets_of_an_interrupted_run_are_not_left_on_disk_nor_served(bridge: Bridge) -> None:
    tag = _tag()
    value = "s3cr3t-" + os.urandom(6).hex()
    bridge.core.create_namespaced_secret(
        bridge.namespace, {"metadata": {"name": "creds"}, "stringData": {"token": value}}
    )
    watch = {"kind": "Probe", "playbook": str(_playbook(bridge, tag))}
    operator = bridge.start([watch], "--http-host", "127.0.0.1")
    artifacts = bridge.workdir / "artifacts"
    try:
        bridge.create("p", {"messageFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}})
        wait_for("the run to hold", lambda: sleeping(tag))
        wait_for(
            "the value in the run's output",
            lambda: any(
                value.encode() in p.read_bytes()
                for p in artifacts.rglob("artifacts/*/stdout")
                if p.is_file()
            ),
        )
        (interrupted,) = [p.name for p in artifacts.glob("*/*/*/*/*/artifacts/*")]
        _sigkill(operator)
        # What the crash leaves: the private data dir and unscrubbed artifacts.
        assert list(artifacts.glob("*/*/*/*/*/run-*")), "no private data dir was left"
        assert _files_with(artifacts, value.encode())

        (bridge.records / f"{bridge.namespace}.p.release").touch()
        log_size = len(operator.log_text())
        bridge.operator = operator.start()
        port = wait_for(
            "the HTTP server",
            lambda: re.findall(
                r"HTTP server on 127\.0\.0\.1:(\d+)", operator.log_text()[log_size:]
            ),
            timeout=60,
        )[0]
        bridge.wait_ready("p")

        assert list(artifacts.glob("*/*/*/*/*/run-*")) == []
        assert _files_with(artifacts, value.encode()) == []
        base = f"http://127.0.0.1:{port}/logs/{bridge.namespace}/probe/p"
        for url in (f"{base}?run={interrupted}", base):
            status, text = get(url)
            assert status in (200, 404) and value not in text, url
        assert value not in operator.log_text()
    finally:
        _kill(tag)
