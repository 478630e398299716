"""The local executor: ansible-runner on this machine, one private data dir per run.

ansible-runner is synchronous; each run occupies one thread of a pool sized to the concurrency
limit. Job events cross into the event loop with ``call_soon_threadsafe`` as they stream.
Cancellation sets a flag that ansible-runner polls (``cancel_callback``); it then SIGKILLs the
run's process group (ansible-playbook and its forks), and only then does the cancellation reach
the caller. The private data dir (extravars, inventory, generated playbook) is mode 0700 and
removed after the run; artifacts are kept per resource and rotated.

A drift check (:attr:`RunSpec.check`) runs with ansible-runner's ``cmdline="--check --diff"``;
the command line is built per run from its spec alone (:func:`runner_cmdline`; the operator's
``--ansible-args`` follow, for every run), and nothing of it is written to a file that another
run could read, so check mode cannot reach a real run. The warm executor runs the command line
ansible-runner builds from the same options, so it honours both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import shlex
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, TypeVar

from bridge.ansible import proctree, secrets
from bridge.ansible.inputs import dump_extravars
from bridge.ansible.results import ResultBuilder
from bridge.config import credentials
from bridge.config.sdk import combine_cmdline
from bridge.config.settings import RunnerSettings
from bridge.executors import EventCallback
from bridge.model.records import RunnerEvent, RunResult, RunSpec, RunStatus

logger = logging.getLogger("bridge.executors.local")

T = TypeVar("T")

#: The extra ansible-playbook options of a drift check run.
CHECK_CMDLINE = "--check --diff"

_STATUSES: dict[str, RunStatus] = {
    "successful": "successful",
    "failed": "failed",
    "canceled": "canceled",
    "timeout": "timeout",
}


def runner_cmdline(spec: RunSpec, ansible_args: str = "") -> str | None:
    """The ``cmdline`` for ansible-runner: :data:`CHECK_CMDLINE` for a check run, then the
    operator's ``--ansible-args`` (for every run); None when both are empty."""
    return combine_cmdline(CHECK_CMDLINE if spec.check is True else None, ansible_args)


async def stop_run(
    run_id: str, cancel: threading.Event, future: asyncio.Future[Any], *, grace: float
) -> None:
    """Stop a run in a worker thread: SIGINT its processes, SIGKILL them after ``grace``, tell
    ansible-runner (``cancel``), wait for the thread, and sweep once more."""
    await asyncio.to_thread(proctree.stop, run_id, grace=grace)
    cancel.set()
    await asyncio.wait([future])
    await asyncio.to_thread(proctree.stop, run_id, grace=0)


def run_outcome(runner_status: str, rc: int | None) -> tuple[RunStatus, int | None, str]:
    """A run's (status, rc, message) from ansible-runner's status and ansible-playbook's exit
    code (shared by every executor)."""
    status = _STATUSES.get(runner_status, "error")
    message = ""
    if status == "failed" and rc not in (0, 2, 4):
        # 2: a task failed, 4: a host was unreachable; anything else is ansible itself.
        status, message = "error", f"ansible-playbook exited with {rc}"
    if status == "canceled":
        message = "the run was canceled"
    return status, rc, message


class EventRelay:
    """Carries ansible-runner's events from its thread into the event loop, in order: each one
    feeds the run's :class:`ResultBuilder` and then ``on_event`` (shared by every executor)."""

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


async def await_run(
    spec: RunSpec, cancel: threading.Event, future: asyncio.Future[T], *, grace: float
) -> tuple[T, bool]:
    """Wait for a run's thread within the spec's timeout: ``(outcome, timed_out)``. On timeout
    the run is stopped (:func:`stop_run`) and its outcome still awaited; on cancellation the
    whole process tree is stopped before the cancellation goes on, so when the caller sees it
    no process of the run is left."""
    try:
        return await asyncio.wait_for(asyncio.shield(future), spec.timeout), False
    except TimeoutError:
        await stop_run(spec.run_id, cancel, future, grace=grace)
        logger.info("run %s timed out after %ss", spec.run_id, spec.timeout)
        return await future, True
    except asyncio.CancelledError:
        await stop_run(spec.run_id, cancel, future, grace=grace)
        raise


def timeout_message(spec: RunSpec) -> str:
    return f"the run exceeded its timeout of {spec.timeout:.0f}s and was stopped"


def runner_options(
    settings: RunnerSettings,
    spec: RunSpec,
    private: Path,
    inventory: Path,
    playbook: Path,
    handle: Any,
    cancel: threading.Event,
) -> dict[str, Any]:
    """ansible-runner's arguments for a run (shared by the local and warm executors): the
    private data dir, the project folder as working folder, rotated artifacts, the run's
    environment with the process marker, events streamed to ``handle``."""
    env = {"PATH": f"{settings.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(spec.envvars)
    env[proctree.MARKER] = spec.run_id
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


def skip_close_delay() -> None:
    """Drop ptyprocess's 0.1 s sleep in ``close()`` once the child has been reaped.

    The sleep gives the kernel time to update the process status before ``close()`` checks
    whether the child is alive; ansible-runner closes only after ansible-playbook has exited
    and been reaped (``isalive()`` is False), where it is idle time in every run's slot.
    """
    from ptyprocess import ptyprocess  # type: ignore[import-untyped]

    cls = ptyprocess.PtyProcess
    if getattr(cls.close, "bridge_no_delay", False):
        return
    original = cls.close

    def close(self: Any, force: bool = True) -> None:
        if not self.closed and self.terminated:
            self.delayafterclose = 0
        original(self, force)

    close.bridge_no_delay = True  # type: ignore[attr-defined]
    cls.close = close


class LocalExecutor:
    """Runs playbooks with ansible-runner in threads of this process."""

    #: It runs :attr:`RunSpec.check` runs in check mode (the controller checks for drift only
    #: with executors that say so).
    supports_check = True

    def __init__(self, settings: RunnerSettings) -> None:
        self._settings = settings
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, settings.max_concurrent_runs) + 2,
            thread_name_prefix="ansible-runner",
        )
        self._cancels: set[threading.Event] = set()
        skip_close_delay()

    async def close(self) -> None:
        for flag in list(self._cancels):
            flag.set()
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    async def run(self, spec: RunSpec, on_event: EventCallback) -> RunResult:
        cancel = threading.Event()
        relay = EventRelay(asyncio.get_running_loop(), on_event)
        self._cancels.add(cancel)
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, self._run_sync, spec, relay.handle, cancel
        )
        try:
            (status, rc, message), timed_out = await await_run(
                spec, cancel, future, grace=self._settings.stop_grace
            )
        finally:
            self._cancels.discard(cancel)
        if timed_out:
            status, message = "timeout", timeout_message(spec)
        return await relay.result(spec.run_id, status, rc, message)

    def _run_sync(
        self, spec: RunSpec, handle: Any, cancel: threading.Event
    ) -> tuple[RunStatus, int | None, str]:
        import ansible_runner

        spec.artifact_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Beside the artifacts, not in them: ansible-runner rotates that folder.
        private = Path(tempfile.mkdtemp(prefix=f"run-{spec.run_id}-", dir=spec.artifact_dir.parent))
        try:
            inventory, playbook = self._prepare(private, spec)
            options = runner_options(
                self._settings, spec, private, inventory, playbook, handle, cancel
            )
            credentials.apply(options, spec, private)  # inventory text, credentials (0600)
            runner = ansible_runner.run(**options)
        except Exception as exc:  # ansible-runner could not start the run at all
            return "error", None, f"ansible-runner failed: {exc}"
        finally:
            credentials.cleanup(spec)
            shutil.rmtree(private, ignore_errors=True)
            secrets.scrub_tree(spec.artifact_dir / spec.run_id, spec.secrets)
        return run_outcome(str(runner.status), runner.rc)

    def _prepare(
        self, private: Path, spec: RunSpec, *, private_tmp: bool = True
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
        (env_dir / "settings").write_text(
            json.dumps({"pexpect_timeout": self._settings.cancel_poll})
        )
        extravars = env_dir / "extravars"
        fd = os.open(extravars, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(dump_extravars(spec.extravars))
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
        python = self._settings.python
        line = f"localhost ansible_connection=local ansible_python_interpreter={python}"
        if private_tmp:
            tmp = private / "tmp"
            tmp.mkdir(mode=0o700)
            line += f" ansible_remote_tmp={shlex.quote(str(tmp))}"
        hosts.write_text(line + "\n")
        return hosts, playbook
