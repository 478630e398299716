"""What every executor backend shares: a run's private data dir, credential files, runner options,
the event relay, awaiting or stopping a run, and its outcome.

Like ansible-runner's streaming (transmit, worker and process share a format and nothing else),
the local, warm and Job backends share this module and never each other's private methods.

The private data dir (:func:`new_private_dir`, :func:`prepare_private_dir`) is mode 0700, beside
the run's artifacts (not in them: ansible-runner rotates that folder), and removed after the run;
``env/extravars`` is 0600. A run's credentials (:func:`apply_credentials`) go there too, the way
ansible-runner and Ansible take them: the SSH key through ansible-runner's ``ssh_key`` (a FIFO
read once by ``ssh-add`` into a per-run ``ssh-agent``; a 0600 key file and
``ANSIBLE_PRIVATE_KEY_FILE`` when ``ssh-agent`` is missing), the passwords as 0600 files for
``--become-password-file`` and ``--vault-password-file``, ``env`` in the run's environment only.
A run with credentials gets its own SSH ControlPath folder, and the persistent SSH connections it
opened are stopped when it ends (:func:`cleanup_credentials`): no later run can reuse its logins.

A drift check (:attr:`RunSpec.check`) runs with ansible-runner's ``cmdline="--check --diff"``;
the command line is built per run from its spec alone (:func:`runner_cmdline`; the operator's
``--ansible-args`` follow, for every run), and nothing of it is written to a file that another
run could read, so check mode cannot reach a real run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import shlex
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from bridge.ansible import artifacts, proctree, secrets
from bridge.ansible.inputs import dump_extravars
from bridge.ansible.results import ResultBuilder
from bridge.config.sdk import combine_cmdline
from bridge.config.settings import RunnerSettings
from bridge.executors import EventCallback
from bridge.model.process import MARKER
from bridge.model.records import RunnerEvent, RunResult, RunSpec, RunStatus

logger = logging.getLogger("bridge.executors.plumbing")

T = TypeVar("T")

#: The extra ansible-playbook options of a drift check run.
CHECK_CMDLINE = "--check --diff"
#: ansible-runner's FIFO for the SSH key, in the run's artifact folder.
SSH_FIFO = "ssh_key_data"

_STATUSES: dict[str, RunStatus] = {
    "successful": "successful",
    "failed": "failed",
    "canceled": "canceled",
    "timeout": "timeout",
}


# --- the run's options and outcome ------------------------------------------------------------


def runner_cmdline(spec: RunSpec, ansible_args: str = "") -> str | None:
    """The ``cmdline`` for ansible-runner: :data:`CHECK_CMDLINE` for a check run, then the
    operator's ``--ansible-args`` (for every run); None when both are empty."""
    return combine_cmdline(CHECK_CMDLINE if spec.check is True else None, ansible_args)


def runner_options(
    settings: RunnerSettings,
    spec: RunSpec,
    private: Path,
    inventory: Path,
    playbook: Path,
    handle: Any,
    cancel: threading.Event,
) -> dict[str, Any]:
    """ansible-runner's arguments for a run: the private data dir, the project folder as
    working folder, rotated artifacts, the run's environment with the process marker, events
    streamed to ``handle``."""
    env = {"PATH": f"{settings.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(spec.envvars)
    env[MARKER] = spec.run_id
    options: dict[str, Any] = {
        "private_data_dir": str(private),
        "project_dir": str(spec.project_dir or playbook.parent),
        "playbook": str(playbook),
        "inventory": str(inventory),
        "ident": spec.run_id,
        "artifact_dir": str(spec.artifact_dir),
        "rotate_artifacts": max(1, spec.max_artifacts),
        "envvars": env,
        "event_handler": handle,
        "cancel_callback": cancel.is_set,
        "quiet": True,
        "json_mode": False,
        "suppress_env_files": True,
    }
    cmdline = runner_cmdline(spec, settings.ansible_args)
    if cmdline is not None:
        options["cmdline"] = cmdline
    return options


def run_outcome(runner_status: str, rc: int | None) -> tuple[RunStatus, int | None, str]:
    """A run's (status, rc, message) from ansible-runner's status and ansible-playbook's exit
    code."""
    status = _STATUSES.get(runner_status, "error")
    message = ""
    if status == "failed" and rc not in (0, 2, 4):
        # 2: a task failed, 4: a host was unreachable; anything else is ansible itself.
        status, message = "error", f"ansible-playbook exited with {rc}"
    if status == "canceled":
        message = "the run was canceled"
    return status, rc, message


def timeout_message(spec: RunSpec) -> str:
    return f"the run exceeded its timeout of {spec.timeout:.0f}s and was stopped"


# --- events -------------------------------------------------------------------------------------


class EventRelay:
    """Carries ansible-runner's events from its thread into the event loop, in order: each one
    feeds the run's :class:`ResultBuilder` and then ``on_event``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_event: EventCallback) -> None:
        self._loop = loop
        self._on_event = on_event
        self._builder = ResultBuilder()

    def _deliver(self, event: RunnerEvent) -> None:
        self._builder.feed(event)
        self._on_event(event)

    def handle(self, event: dict[str, Any]) -> bool:
        """ansible-runner's ``event_handler`` (called in the run's thread)."""
        self._loop.call_soon_threadsafe(self._deliver, RunnerEvent(**event))  # type: ignore[typeddict-item]
        return True  # keep it in the artifacts too

    async def result(
        self, run_id: str, status: RunStatus, rc: int | None, message: str
    ) -> RunResult:
        """The run's result, once the events queued by ``call_soon_threadsafe`` have arrived."""
        await asyncio.sleep(0)
        return self._builder.result(run_id, status, rc, message)


# --- awaiting and stopping a run ----------------------------------------------------------------


async def stop_run(
    run_id: str, cancel: threading.Event, future: asyncio.Future[Any], *, grace: float
) -> None:
    """Stop a run in a worker thread: SIGINT its processes, SIGKILL them after ``grace``, tell
    ansible-runner (``cancel``), wait for the thread, and sweep once more."""
    await asyncio.to_thread(proctree.stop, run_id, grace=grace)
    cancel.set()
    await asyncio.wait([future])
    await asyncio.to_thread(proctree.stop, run_id, grace=0)


async def await_run(
    spec: RunSpec, future: asyncio.Future[T], stop: Callable[[], Awaitable[None]]
) -> tuple[T, bool]:
    """Wait for a run's thread within the spec's timeout: ``(outcome, timed_out)``. On timeout
    the run is stopped (``stop()``, which returns once the run's thread has ended, e.g.
    :func:`stop_run`) and its outcome still awaited; on cancellation the whole run is stopped
    before the cancellation goes on, so when the caller sees it no process of the run is
    left."""
    try:
        return await asyncio.wait_for(asyncio.shield(future), spec.timeout), False
    except TimeoutError:
        await stop()
        logger.info("run %s timed out after %ss", spec.run_id, spec.timeout)
        return await future, True
    except asyncio.CancelledError:
        await stop()
        raise


# --- the private data dir -----------------------------------------------------------------------


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to a new file readable by its owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def new_private_dir(spec: RunSpec) -> Path:
    """A new private data dir for the run (0700), beside its artifacts, not in them:
    ansible-runner rotates that folder. The caller removes it after the run."""
    spec.artifact_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Path(tempfile.mkdtemp(prefix=f"run-{spec.run_id}-", dir=spec.artifact_dir.parent))


def prepare_private_dir(
    private: Path, spec: RunSpec, settings: RunnerSettings, *, private_tmp: bool = True
) -> tuple[Path, Path]:
    """Write env/extravars (0600), a playbook applying the role (for a role), and a
    localhost inventory (without one of the watch's); return the inventory and playbook.

    With ``private_tmp`` the localhost inventory puts Ansible's remote temporary folder
    (module payloads, which carry their arguments) in the private data dir, which goes
    with the run even when it is killed, instead of ``~/.ansible/tmp``."""
    private.chmod(0o700)
    env_dir = private / "env"
    env_dir.mkdir(mode=0o700)
    # NB: ansible-runner drops a ``settings=`` argument when env/settings is absent.
    (env_dir / "settings").write_text(json.dumps({"pexpect_timeout": settings.cancel_poll}))
    write_private(env_dir / "extravars", dump_extravars(spec.extravars))
    playbook = spec.playbook
    if playbook is None:
        if spec.role is None:
            raise ValueError(f"run {spec.run_id}: neither a playbook nor a role")
        playbook = private / "role.yml"
        play = {
            "hosts": spec.hosts,
            "gather_facts": spec.gather_facts,
            "roles": [{"role": str(spec.role)}],
        }
        playbook.write_text(json.dumps([play], indent=2))
    if spec.inventory is not None:
        return spec.inventory, playbook
    inventory_dir = private / "inventory"
    inventory_dir.mkdir(mode=0o700)
    hosts = inventory_dir / "hosts"
    line = f"localhost ansible_connection=local ansible_python_interpreter={settings.python}"
    if private_tmp:
        tmp = private / "tmp"
        tmp.mkdir(mode=0o700)
        line += f" ansible_remote_tmp={shlex.quote(str(tmp))}"
    hosts.write_text(line + "\n")
    return hosts, playbook


def finish_artifacts(spec: RunSpec) -> None:
    """After a run (its private data dir removed): scrub its Secret values from its artifacts,
    then mark the folder finished (:func:`bridge.ansible.artifacts.mark_finished`): the
    operator's start-up tells a crashed run's folder by the mark's absence."""
    folder = spec.artifact_dir / spec.run_id
    secrets.scrub_tree(folder, spec.secrets)
    artifacts.mark_finished(folder)


# --- credentials and inventories from the cluster -------------------------------------------------


def _control_dirs(run_id: str) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"ab-ssh-{run_id}-*"))


def apply_credentials(options: dict[str, Any], spec: RunSpec, private: Path) -> None:
    """Add ``spec``'s inventory text and credentials to ansible-runner's ``options`` for a run
    whose private dir (0700, removed after the run) is ``private``. Call
    :func:`cleanup_credentials` after the run, whatever happened."""
    if spec.inventory_text is None and spec.credentials is None:
        return
    folder = private / "bridge"
    folder.mkdir(mode=0o700, exist_ok=True)
    if spec.inventory_text is not None:
        options["inventory"] = str(write_private(folder / "inventory", spec.inventory_text))
    creds = spec.credentials
    if creds is None:
        return
    env: dict[str, str] = dict(options.get("envvars") or {})
    env.update(creds.env)
    args: list[str] = []
    if creds.ssh_private_key is not None:
        path = env.get("PATH")
        if shutil.which("ssh-agent", path=path) and shutil.which("ssh-add", path=path):
            options["ssh_key"] = creds.ssh_private_key
        else:
            key = write_private(folder / "ssh_key", creds.ssh_private_key)
            env["ANSIBLE_PRIVATE_KEY_FILE"] = str(key)
    if creds.become_password is not None:
        args += [
            "--become-password-file",
            str(write_private(folder / "become", creds.become_password)),
        ]
    if creds.vault_password is not None:
        args += [
            "--vault-password-file",
            str(write_private(folder / "vault", creds.vault_password)),
        ]
    # SSH connections of this run are its own: ansible's persistent connections (ControlPersist)
    # live in a folder of the run (short: socket paths are limited), never shared with others.
    env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = tempfile.mkdtemp(prefix=f"ab-ssh-{spec.run_id}-")
    options["envvars"] = env
    if args:
        options["cmdline"] = " ".join(
            filter(None, [options.get("cmdline"), " ".join(shlex.quote(a) for a in args)])
        )


def cleanup_credentials(spec: RunSpec) -> None:
    """After a run with credentials: stop what it left (persistent SSH connections, its
    ssh-agent), remove its SSH ControlPath folder, and release and remove ansible-runner's SSH
    key FIFO if nothing read it (its writer thread would wait forever)."""
    if spec.credentials is None:
        return
    proctree.stop(spec.run_id, grace=0)
    for folder in _control_dirs(spec.run_id):
        shutil.rmtree(folder, ignore_errors=True)
    fifo = spec.artifact_dir / spec.run_id / SSH_FIFO
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISFIFO(fifo.lstat().st_mode):
            _drain(fifo)
        fifo.unlink()


def _drain(fifo: Path, timeout: float = 2.0) -> None:
    """Read ``fifo`` to its end (or for ``timeout`` seconds), so that its writer finishes."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        seen = False
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if chunk:
                seen = True
            elif seen:
                return  # the writer wrote and closed
    finally:
        os.close(fd)
