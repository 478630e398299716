"""Credentials and inventories from the cluster, against real SSH targets.

The session starts Debian's ``sshd`` (``make sshd`` installs it) on 127.0.0.2 and 127.0.0.3 with
its own config, host key and authorized key, generated for the session; 127.0.0.4 has no sshd.
The client's private key file is deleted as soon as it is generated: the key is kept in memory
only to be put into each test's Kubernetes Secret, from which the operator takes it. Host keys
are checked: the inventory points ssh at a known_hosts file with the session's host key (rather
than turning checking off), as a careful user would.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import DATA, Bridge, ansible_processes, wait_for

pytestmark = pytest.mark.e2e

SSHD = Path("/usr/sbin/sshd")
PLAYBOOK = DATA / "ssh_hosts.yml"
REACHABLE = ("127.0.0.2", "127.0.0.3")
UNREACHABLE = "127.0.0.4"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"


@dataclass(frozen=True)
class SshTargets:
    """The session's SSH servers: where they listen and how to trust them."""

    port: int
    user: str
    known_hosts: Path
    #: The client key, in memory only (its file is gone): each test puts it into a Secret.
    private_key: str

    def group_vars(self) -> dict[str, Any]:
        return {
            "ansible_port": self.port,
            "ansible_user": self.user,
            "ansible_python_interpreter": PYTHON,
            "ansible_ssh_common_args": (
                f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes "
                "-o ConnectTimeout=10"
            ),
        }

    def inventory(self, hosts: tuple[str, ...] = REACHABLE) -> dict[str, Any]:
        """A YAML inventory (as a mapping) of ``hosts``."""
        return {"targets": {"hosts": {h: None for h in hosts}, "vars": self.group_vars()}}

    def ini(self, hosts: tuple[str, ...] = REACHABLE) -> str:
        lines = ["[targets]", *hosts, "", "[targets:vars]"]
        lines += [f"{k}={v}" for k, v in self.group_vars().items()]
        return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    for host in REACHABLE:
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def ssh_targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshTargets]:
    if not SSHD.exists() or shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
        pytest.fail(f"{SSHD}, ssh and ssh-keygen are needed: run `make sshd` (as root)")
    folder = tmp_path_factory.mktemp("sshd")
    folder.chmod(0o700)
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bridge-test", "-f", name],
            cwd=folder,
            check=True,
        )
    private_key = (folder / "client_key").read_text()
    (folder / "client_key").unlink()  # from now on, the key exists in Secrets only
    authorized = folder / "authorized_keys"
    authorized.write_text((folder / "client_key.pub").read_text())
    authorized.chmod(0o600)
    port = _free_port()
    host_public = (folder / "host_key.pub").read_text().split()[:2]
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(
        "".join(f"[{h}]:{port} {' '.join(host_public)}\n" for h in (*REACHABLE, UNREACHABLE))
    )
    config = folder / "sshd_config"
    config.write_text(
        "".join(f"ListenAddress {h}:{port}\n" for h in REACHABLE)
        + f"HostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "Subsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    log = open(folder / "sshd.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        try:
            wait_for(f"sshd on {', '.join(REACHABLE)}:{port}", lambda: _listening(port), 30)
        except AssertionError:
            print((folder / "sshd.log").read_text(errors="replace")[-3000:])
            raise
        yield SshTargets(port, getpass.getuser(), known_hosts, private_key)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError):  # and what it forked for connections
            os.killpg(proc.pid, signal.SIGKILL)


# --- helpers ----------------------------------------------------------------------------------


def unique(label: str) -> str:
    return f"{label}-{os.urandom(8).hex()}"


def create_secret(bridge: Bridge, name: str, data: dict[str, str], namespace: str = "") -> None:
    bridge.core.create_namespaced_secret(
        namespace or bridge.namespace,
        {"metadata": {"name": name}, "type": "Opaque", "stringData": data},
    )


def ssh_watch(kind: str, inventory: Any, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "playbook": str(PLAYBOOK),
        "inventory": inventory,
        "credentials": {
            "secret": "ssh-creds",
            "sshPrivateKey": "ssh-privatekey",
            "env": {"CLOUD_API_KEY": "api-key"},
        },
        "retry": {"limit": 0},
        **extra,
    }


def touched(bridge: Bridge, name: str, host: str) -> str | None:
    path = bridge.records / f"{name}.{host}.touched"
    return path.read_text() if path.exists() else None


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def assert_reached(bridge: Bridge, obj: dict[str, Any], hosts: tuple[str, ...], api: str) -> None:
    """Each host ran the play over SSH: its counts in status, its file written, the env seen."""
    name = obj["metadata"]["name"]
    per_host = obj["status"]["lastRun"]["hosts"]
    for host in hosts:
        counts = per_host[host]
        assert counts["unreachable"] == 0 and counts["failed"] == 0, (host, counts)
        assert counts["ok"] >= 1 and counts["changed"] >= 1, (host, counts)
        content = touched(bridge, name, host)
        assert content is not None, f"nothing written on {host}"
        assert content.startswith(host) and f"env={sha1(api)}" in content


def assert_no_leftovers(bridge: Bridge) -> None:
    """No process of a run, no private dir, no SSH key FIFO, no ControlPath folder is left."""
    assert ansible_processes(bridge) == []
    artifacts = bridge.workdir / "artifacts"
    assert list(artifacts.rglob("run-*")) == []
    assert list(artifacts.rglob("ssh_key_data")) == []
    run_ids = {p.name for p in artifacts.glob("*/*/*/*/*/artifacts/*")}
    assert run_ids
    tmp = Path(tempfile.gettempdir())
    assert [p for p in tmp.glob("ab-ssh-*") if p.name.split("-")[2] in run_ids] == []


# --- tests ------------------------------------------------------------------------------------


def test_ssh_key_from_a_secret_reaches_each_host_and_an_unreachable_one_shows(
    bridge: Bridge, ssh_targets: SshTargets
) -> None:
    api = unique("api")
    create_secret(bridge, "ssh-creds", {"ssh-privatekey": ssh_targets.private_key, "api-key": api})
    bridge.start(
        [
            ssh_watch("Probe", {"hosts": ssh_targets.inventory()}),
            ssh_watch("Plain", {"hosts": ssh_targets.inventory((*REACHABLE, UNREACHABLE))}),
        ]
    )
    bridge.create("reach", {"message": "hello"})
    bridge.create("mixed", {"message": "hello"}, kind="Plain")

    reach = bridge.wait_ready("reach", timeout=180)
    assert set(reach["status"]["lastRun"]["hosts"]) == set(REACHABLE)
    assert_reached(bridge, reach, REACHABLE, api)

    mixed = bridge.wait_ready("mixed", status="False", kind="Plain", timeout=180)
    hosts = mixed["status"]["lastRun"]["hosts"]
    assert set(hosts) == {*REACHABLE, UNREACHABLE}
    assert hosts[UNREACHABLE]["unreachable"] == 1 and hosts[UNREACHABLE]["ok"] == 0
    assert touched(bridge, "mixed", UNREACHABLE) is None
    assert_reached(bridge, mixed, REACHABLE, api)
    assert mixed["status"]["lastRun"]["result"] == "failed"
    assert_no_leftovers(bridge)


def test_no_credential_value_reaches_status_events_logs_metrics_or_artifacts(
    bridge: Bridge, ssh_targets: SshTargets, tmp_path: Path
) -> None:
    import json  # here, not at the top, so this test's edits stay within it

    # A quote, a backslash, lines and non-ASCII: json.dump stores such values escaped, a
    # failure message folds them to one line, and each line of a key can show on its own.
    api = f'{unique("api")}-"q"-\\b\n{unique("line")}-é中文😀'
    become, vault = unique("become"), f'{unique("vault")}-"q"-\\b-é'
    create_secret(
        bridge,
        "ssh-creds",
        {
            "ssh-privatekey": ssh_targets.private_key,
            "api-key": api,
            "become-password": become,
            "vault-password": vault,
        },
    )
    # A vars file encrypted with the vault password (which then exists in the Secret only).
    vault_file = tmp_path / "vaulted.yml"
    vault_file.write_text("vaulted: the-plain-text\n")
    password_file = tmp_path / "vault-pass"
    password_file.write_text(vault)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "encrypt",
            "--vault-password-file",
            str(password_file),
            str(vault_file),
        ],
        check=True,
        capture_output=True,
    )
    password_file.unlink()
    assert vault.encode() not in vault_file.read_bytes()

    watch = ssh_watch("Probe", {"hosts": ssh_targets.inventory()})
    watch["credentials"].update(becomePassword="become-password", vaultPassword="vault-password")
    watch["vars"] = {"vault_file": str(vault_file), "use_become": True}
    bridge.start([watch], "--http-host", "127.0.0.1", "--http-port", "0")
    operator = bridge.operator
    assert operator is not None
    bridge.create("ok", {"message": "hello"})
    bridge.create("bad", {"message": "hello", "failTask": True})
    ok = bridge.wait_ready("ok", timeout=180)
    bad = bridge.wait_ready("bad", status="False", timeout=180)

    # Each credential did its job ...
    assert_reached(bridge, ok, REACHABLE, api)
    for host in REACHABLE:
        assert f"vault={sha1('the-plain-text')}" in (touched(bridge, "ok", host) or "")
        assert (bridge.records / f"ok.{host}.became").read_text() == ssh_targets.user
    failed = bad["status"]["lastRun"]["failedTasks"]
    assert failed and "asked to fail, holding ********" in failed[0]["message"]

    # ... and no value is anywhere the bridge writes, after the success or the failure.
    def port() -> str | None:
        found = re.search(r"HTTP server on 127\.0\.0\.1:(\d+)", operator.log_text())
        return found.group(1) if found else None

    base = f"http://127.0.0.1:{wait_for('the HTTP server', port, timeout=30)}"
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert "ansible_bridge_runs_total" in metrics
    key_lines = [
        line for line in ssh_targets.private_key.splitlines() if line and "-----" not in line
    ]
    values = [api, become, vault, ssh_targets.private_key.strip()]
    planted = [*values, *key_lines, *api.splitlines(), " ".join(api.split())]
    planted += [base64.b64encode(v.encode()).decode() for v in (api, become, vault)]
    # ... and their encoded forms: JSON (ASCII or not, once and twice), repr.
    for value in [*values, *api.splitlines()]:
        once = [json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]]
        planted += [*once, *(json.dumps(v)[1:-1] for v in once), repr(value)[1:-1]]
    objects = [bridge.get("ok"), bridge.get("bad")]
    texts = {
        "status": str(objects) + json.dumps(objects, ensure_ascii=False),
        "events": bridge.kubectl("get", "events", "-n", bridge.namespace, "-o", "yaml").stdout,
        "log": operator.log_text(),
        "metrics": metrics,
    }
    for where, text in texts.items():
        for value in planted:
            assert value not in text, f"a credential is in the {where}"
    files = [p for p in (bridge.workdir / "artifacts").rglob("*") if p.is_file()]
    assert any(p.parent.name == "job_events" for p in files)  # there were files to read
    # The failed task's message held the API key in ansible's own output: scrubbed, not absent.
    assert any(b"asked to fail, holding ********" in p.read_bytes() for p in files)
    for path in files:
        data = path.read_bytes()
        for value in planted:
            assert value.encode() not in data, f"a credential is in {path}"
    assert_no_leftovers(bridge)


def test_inventory_from_a_config_map_and_from_a_secret(
    bridge: Bridge, ssh_targets: SshTargets
) -> None:
    api = unique("api")
    create_secret(bridge, "ssh-creds", {"ssh-privatekey": ssh_targets.private_key, "api-key": api})
    bridge.core.create_namespaced_config_map(
        bridge.namespace,
        {
            "metadata": {"name": "targets"},
            "data": {"hosts.yml": yaml.safe_dump(ssh_targets.inventory(REACHABLE[:1]))},
        },
    )
    create_secret(bridge, "hidden-targets", {"inventory": ssh_targets.ini(REACHABLE)})
    bridge.start(
        [
            ssh_watch("Probe", {"configMap": "targets", "key": "hosts.yml"}),
            ssh_watch("Plain", {"secret": "hidden-targets"}),
        ]
    )
    bridge.create("from-cm", {"message": "hello"})
    bridge.create("from-secret", {"message": "hello"}, kind="Plain")
    from_cm = bridge.wait_ready("from-cm", timeout=180)
    assert set(from_cm["status"]["lastRun"]["hosts"]) == {REACHABLE[0]}
    assert_reached(bridge, from_cm, REACHABLE[:1], api)
    from_secret = bridge.wait_ready("from-secret", kind="Plain", timeout=180)
    assert set(from_secret["status"]["lastRun"]["hosts"]) == set(REACHABLE)
    assert_reached(bridge, from_secret, REACHABLE, api)


def test_missing_inventory_config_map_is_a_clear_reason_and_is_picked_up_when_created(
    bridge: Bridge, ssh_targets: SshTargets
) -> None:
    create_secret(bridge, "ssh-creds", {"ssh-privatekey": ssh_targets.private_key, "api-key": "x"})
    bridge.start([ssh_watch("Probe", {"configMap": "later"}, retry={"limit": 3})])
    bridge.create("p", {"message": "hello"})
    obj = bridge.wait_ready("p", status="False")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ConfigMapNotFound"
    assert f"ConfigMap {bridge.namespace}/later" in ready["message"]

    bridge.core.create_namespaced_config_map(
        bridge.namespace,
        {"metadata": {"name": "later"}, "data": {"inventory": ssh_targets.ini(REACHABLE)}},
    )
    obj = bridge.wait_ready("p", timeout=120)
    assert obj["status"]["lastRun"]["trigger"] == "retry"
    assert set(obj["status"]["lastRun"]["hosts"]) == set(REACHABLE)


def test_secret_field_picks_a_secret_of_the_namespace_and_refuses_another_namespace(
    bridge: Bridge, ssh_targets: SshTargets
) -> None:
    api = unique("api")
    create_secret(bridge, "team-creds", {"ssh-privatekey": ssh_targets.private_key, "api-key": api})
    stolen = unique("stolen")
    create_secret(
        bridge,
        f"stolen-{bridge.namespace}",
        {"ssh-privatekey": stolen, "api-key": stolen},
        "default",
    )
    watch = ssh_watch("Probe", {"hosts": ssh_targets.inventory()})
    watch["credentials"] = {
        "secretField": "credentialsSecret",
        "sshPrivateKey": "ssh-privatekey",
        "env": {"CLOUD_API_KEY": "api-key"},
    }
    try:
        bridge.start([watch])
        bridge.create("mine", {"credentialsSecret": "team-creds"})
        bridge.create("theirs", {"credentialsSecret": f"default/stolen-{bridge.namespace}"})
        mine = bridge.wait_ready("mine", timeout=180)
        assert_reached(bridge, mine, REACHABLE, api)

        theirs = bridge.wait_ready("theirs", status="False")
        ready = next(c for c in theirs["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "SecretNotAllowed"
        assert "spec.credentialsSecret" in ready["message"]
        assert "'default'" in ready["message"] and bridge.namespace in ready["message"]
        assert not list(bridge.records.glob("theirs.*"))
        reasons = [e["reason"] for e in bridge.events("theirs")]
        assert "SecretNotAllowed" in reasons
        assert bridge.operator is not None and stolen not in bridge.operator.log_text()
    finally:
        bridge.core.delete_namespaced_secret(f"stolen-{bridge.namespace}", "default")
