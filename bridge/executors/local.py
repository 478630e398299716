"""The local executor: ansible-runner on this machine, one private data dir per run.

ansible-runner is synchronous; each run occupies one thread of a pool sized to the concurrency
limit. Job events cross into the event loop with ``call_soon_threadsafe`` as they stream.
Cancellation sets a flag that ansible-runner polls (``cancel_callback``); it then SIGKILLs the
run's process group (ansible-playbook and its forks), and only then does the cancellation reach
the caller. ``ansible-playbook`` runs under a supervisor (:mod:`bridge.executors.lifeline`) that
kills the whole run when the operator dies, and what the run left when it ends. The private
data dir (extravars, inventory, generated playbook, credential files) is mode 0700 and removed
after the run; artifacts are kept per resource and rotated (see :mod:`bridge.executors.plumbing`,
shared with the other backends). A drift check runs with ``--check --diff``
(:func:`~bridge.executors.plumbing.runner_cmdline`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import shutil
import threading
from typing import Any

from bridge.config.settings import RunnerSettings
from bridge.executors import EventCallback, bounded, lifeline
from bridge.executors.plumbing import (
    CHECK_CMDLINE,
    EventRelay,
    apply_credentials,
    await_run,
    cleanup_credentials,
    finish_artifacts,
    new_private_dir,
    prepare_private_dir,
    run_outcome,
    runner_cmdline,
    runner_options,
    stop_run,
    timeout_message,
)
from bridge.model.records import RunResult, RunSpec, RunStatus

#: NB: imported from here by tests of other packages; their home is bridge.executors.plumbing.
__all__ = ["CHECK_CMDLINE", "LocalExecutor", "runner_cmdline", "runner_options", "skip_close_delay"]


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
            stop = functools.partial(
                stop_run, spec.run_id, cancel, future, grace=self._settings.stop_grace
            )
            (status, rc, message), timed_out = await await_run(spec, future, stop)
        finally:
            self._cancels.discard(cancel)
        if timed_out:
            status, message = "timeout", timeout_message(spec)
        return await relay.result(spec.run_id, status, rc, message)

    def _run_sync(
        self, spec: RunSpec, handle: Any, cancel: threading.Event
    ) -> tuple[RunStatus, int | None, str]:
        from ansible_runner.interface import init_runner

        private = new_private_dir(spec)
        try:
            inventory, playbook = prepare_private_dir(private, spec, self._settings)
            options = runner_options(
                self._settings, spec, private, inventory, playbook, handle, cancel
            )
            apply_credentials(options, spec, private)  # inventory text, credentials (0600)
            runner = init_runner(**options)
            bounded.bound(runner)  # output streamed to the artifacts, bounded in memory
            # Its first process is the run's supervisor: nothing of the run outlives it, or us.
            runner.config.command = lifeline.wrap(runner.config.command)
            runner.run()
        except Exception as exc:  # ansible-runner could not start the run at all
            return "error", None, f"ansible-runner failed: {exc}"
        finally:
            cleanup_credentials(spec)
            shutil.rmtree(private, ignore_errors=True)
            finish_artifacts(spec)
        return run_outcome(str(runner.status), runner.rc)
