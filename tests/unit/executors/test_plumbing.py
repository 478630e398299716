"""The plumbing every executor backend shares: the private data dir, credential files (0600,
ssh-agent, environment, cleaned up after), the runner options, the event relay, awaiting and
stopping a run, and its outcome."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from bridge.config.settings import RunnerSettings
from bridge.executors import plumbing
from bridge.model.records import ResourceRef, RunCredentials, RunSpec

KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


# --- credentials and inventories from the cluster ----------------------------------------------


def spec_with(tmp_path: Path, creds: RunCredentials | None, inventory: str | None) -> RunSpec:
    return RunSpec(
        run_id="abc123",
        resource=ResourceRef("v1", "K", "ns", "n", "u"),
        generation=1,
        trigger="create",
        playbook=None,
        extravars={},
        inventory=None,
        artifact_dir=tmp_path / "artifacts",
        credentials=creds,
        inventory_text=inventory,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_apply_writes_passwords_and_inventory_0600_and_sets_env(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    creds = RunCredentials(
        ssh_private_key=KEY + "\n",
        become_password="b3c0me",
        vault_password="v4ult",
        env={"CLOUD_API_KEY": "api-key-value"},
    )
    spec = spec_with(tmp_path, creds, "[web]\n10.0.0.1\n")
    options: dict[str, Any] = {"envvars": {"PATH": os.environ["PATH"]}, "cmdline": "--check"}
    plumbing.apply_credentials(options, spec, private)
    try:
        inventory = Path(options["inventory"])
        assert inventory.read_text() == "[web]\n10.0.0.1\n" and mode(inventory) == 0o600
        assert options["cmdline"].startswith("--check --become-password-file ")
        words = options["cmdline"].split()
        become = Path(words[words.index("--become-password-file") + 1])
        vault = Path(words[words.index("--vault-password-file") + 1])
        assert become.read_text() == "b3c0me" and mode(become) == 0o600
        assert vault.read_text() == "v4ult" and mode(vault) == 0o600
        assert private in become.parents and private in vault.parents
        assert options["envvars"]["CLOUD_API_KEY"] == "api-key-value"
        # ssh-agent is on PATH here: the key goes to ansible-runner's ssh_key (a FIFO), no file.
        assert options["ssh_key"] == KEY + "\n"
        assert "ANSIBLE_PRIVATE_KEY_FILE" not in options["envvars"]
        control = Path(options["envvars"]["ANSIBLE_SSH_CONTROL_PATH_DIR"])
        assert control.is_dir() and mode(control) == 0o700
    finally:
        plumbing.cleanup_credentials(spec)
    assert not control.exists()


def test_without_ssh_agent_the_key_is_a_0600_file(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    spec = spec_with(tmp_path, RunCredentials(ssh_private_key=KEY + "\n"), None)
    options: dict[str, Any] = {"envvars": {"PATH": str(tmp_path / "empty")}}
    plumbing.apply_credentials(options, spec, private)
    try:
        key = Path(options["envvars"]["ANSIBLE_PRIVATE_KEY_FILE"])
        assert key.read_text() == KEY + "\n" and mode(key) == 0o600
        assert "ssh_key" not in options and "cmdline" not in options
    finally:
        plumbing.cleanup_credentials(spec)


def test_apply_leaves_runs_without_credentials_alone(tmp_path: Path) -> None:
    options: dict[str, Any] = {"envvars": {}}
    plumbing.apply_credentials(options, spec_with(tmp_path, None, None), tmp_path)
    assert options == {"envvars": {}}
    assert list(tmp_path.iterdir()) == []


def test_cleanup_releases_a_fifo_nobody_read(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, RunCredentials(ssh_private_key=KEY + "\n"), None)
    run_dir = spec.artifact_dir / spec.run_id
    run_dir.mkdir(parents=True)
    fifo = run_dir / "ssh_key_data"
    os.mkfifo(fifo, 0o600)

    def write() -> None:  # what ansible-runner's writer thread does
        with open(fifo, "wb") as fh:
            fh.write(KEY.encode())

    writer = threading.Thread(target=write)
    writer.start()
    plumbing.cleanup_credentials(spec)
    writer.join(timeout=10)
    assert not writer.is_alive()
    assert not fifo.exists()


# --- the private data dir -----------------------------------------------------------------------


def run_spec(tmp_path: Path, **kw: Any) -> RunSpec:
    values: dict[str, Any] = {
        "run_id": "prep01",
        "resource": ResourceRef("v1", "K", "ns", "n", "u"),
        "generation": 1,
        "trigger": "create",
        "playbook": None,
        "role": tmp_path / "roles" / "web",
        "extravars": {"size": 3},
        "inventory": None,
        "artifact_dir": tmp_path / "artifacts",
    }
    values.update(kw)
    return RunSpec(**values)


def test_private_dir_is_0700_beside_the_artifacts_with_extravars_0600(tmp_path: Path) -> None:
    spec = run_spec(tmp_path)
    private = plumbing.new_private_dir(spec)
    assert private.parent == spec.artifact_dir.parent and mode(private) == 0o700
    inventory, playbook = plumbing.prepare_private_dir(private, spec, RunnerSettings())
    extravars = private / "env" / "extravars"
    assert mode(extravars) == 0o600 and "size" in extravars.read_text()
    assert playbook == private / "role.yml" and str(spec.role) in playbook.read_text()
    assert inventory == private / "inventory" / "hosts"
    assert f"ansible_remote_tmp={private / 'tmp'}" in inventory.read_text()


def test_private_tmp_can_be_left_to_ansible_and_a_watchs_inventory_is_kept(tmp_path: Path) -> None:
    spec = run_spec(tmp_path)
    private = plumbing.new_private_dir(spec)
    inventory, _ = plumbing.prepare_private_dir(private, spec, RunnerSettings(), private_tmp=False)
    assert "ansible_remote_tmp" not in inventory.read_text()
    own = tmp_path / "hosts.ini"
    spec = run_spec(tmp_path, inventory=own, run_id="prep02")
    inventory, _ = plumbing.prepare_private_dir(
        plumbing.new_private_dir(spec), spec, RunnerSettings()
    )
    assert inventory == own


# --- outcome, awaiting and stopping ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "rc", "expected"),
    [
        ("successful", 0, ("successful", 0, "")),
        ("failed", 2, ("failed", 2, "")),
        ("failed", 4, ("failed", 4, "")),
        ("failed", 1, ("error", 1, "ansible-playbook exited with 1")),
        ("canceled", 254, ("canceled", 254, "the run was canceled")),
        ("timeout", None, ("timeout", None, "")),
        ("starting", None, ("error", None, "")),
    ],
)
def test_run_outcome(status: str, rc: int | None, expected: tuple[str, int | None, str]) -> None:
    assert plumbing.run_outcome(status, rc) == expected


def test_await_run_stops_a_run_that_times_out_and_still_gives_its_outcome(tmp_path: Path) -> None:
    stopped: list[str] = []

    async def go() -> tuple[str, bool]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def stop() -> None:
            stopped.append("stop")
            future.set_result("stopped")

        return await plumbing.await_run(run_spec(tmp_path, timeout=0.05), future, stop)

    assert asyncio.run(go()) == ("stopped", True)
    assert stopped == ["stop"]


def test_await_run_stops_the_run_before_a_cancellation_goes_on(tmp_path: Path) -> None:
    events: list[str] = []

    async def go() -> None:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def stop() -> None:
            events.append("stopped")
            future.set_result("stopped")

        task = asyncio.create_task(plumbing.await_run(run_spec(tmp_path), future, stop))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        events.append("cancelled")

    asyncio.run(go())
    assert events == ["stopped", "cancelled"]
