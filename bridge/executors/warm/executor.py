"""The warm executor: each run is forked from a server that has already imported Ansible.

Starting ``ansible-playbook`` costs a new Python importing Ansible and loading its plugin
machinery before the first task, most of a trivial run's time. :class:`WarmExecutor` keeps one
server process (:mod:`bridge.executors.warm.server`) that did that once, and forks a child of
it per run. The child becomes the process ansible-runner would have spawned (own session on a
pseudo-terminal, the run's environment and working folder, ansible-runner's ``awx_display``
stdout callback) and calls Ansible's CLI in-process; the operator reads the terminal and writes
the artifacts with ansible-runner's own ``Runner`` callbacks (:mod:`bridge.executors.warm.client`).
Everything else is as in the local executor (the shared :mod:`bridge.executors.plumbing`): the
private data dir (0700, ``env/extravars`` 0600, the generated role playbook, the localhost
inventory), the artifacts per run id and their rotation, the events streamed to ``on_event`` and
read by :class:`~bridge.ansible.results.ResultBuilder`, the ``ANSIBLE_BRIDGE_RUN_ID`` marker of
every process of the run, cancellation and timeouts (SIGINT the run's processes, SIGKILL after
the grace period, and only then does the caller see the cancellation), secrets scrubbed from the
artifacts.

Global state of Ansible cannot leak from one run into the next: the server never runs anything,
and what a run changes (variables, facts, ``context.CLIARGS``, plugin loader caches and paths,
the collection loader, the ``Display`` singleton) lives and dies in its own child. What Ansible
decided *at import* is shared, so:

* a run whose configuration as read at import differs from the server's (working folder,
  ``ansible.cfg`` found and its content, ``ANSIBLE_*`` and the few other variables read at
  import, the ``ansible-playbook`` on ``PATH``) runs with the local executor instead, and the
  reason is logged (see :mod:`bridge.executors.warm.config`); when only the project's
  ``ansible.cfg`` was edited, the server is restarted to read it, and when several runs in a
  row differ from it in the same way (:attr:`WarmSettings.switch_after`), a server for them
  replaces it;
* per-process state decided at import is redone in the child: the local temporary folder, the
  random part of play/task UUIDs, colours and line buffering for a terminal, the stdout lock
  against forks (see :func:`bridge.executors.warm.server._become_fresh_process`).

The server is started on the first run, in that run's folder and environment (so it serves the
runs of that project); if it dies it is started again, and if it cannot start, runs fall back
to the local executor (a new attempt after :attr:`WarmSettings.retry_after`). ``close()`` stops
it. Runs in flight do not depend on the server: they are its children but report to the
operator directly.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import functools
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.ansible import proctree
from bridge.config.settings import RunnerSettings
from bridge.executors import EventCallback, Executor, bounded
from bridge.executors.plumbing import (
    EventRelay,
    await_run,
    finish_artifacts,
    new_private_dir,
    prepare_private_dir,
    run_outcome,
    runner_options,
    stop_run,
    timeout_message,
)
from bridge.executors.warm.client import RunLost, WarmError, WarmServer, execute, interpreter_of
from bridge.executors.warm.config import PER_RUN, Identity, differences, identity, read_at_import
from bridge.executors.warm.server import PLACEHOLDER
from bridge.model.records import RunResult, RunSpec, RunStatus

logger = logging.getLogger("bridge.executors.warm.executor")

#: Variables of the first run's environment the server keeps besides the operator's own and
#: those read at import (a run's other variables, which may be secrets, are not kept).
_SERVER_VARS = frozenset(
    {"PATH", "ORIGINAL_STDOUT_CALLBACK", "RUNNER_OMIT_EVENTS", "RUNNER_ONLY_FAILED_EVENTS"}
)


@dataclass(frozen=True)
class WarmSettings:
    """How the warm executor runs its server (the rest is :class:`RunnerSettings`)."""

    #: Seconds the server may take to import Ansible before runs fall back to the local executor.
    start_timeout: float = 60.0
    #: Seconds after a failed start before the server is tried again (runs fall back meanwhile).
    retry_after: float = 30.0
    #: Seconds the server has to exit when stopped, before it is killed.
    stop_timeout: float = 5.0
    #: After this many runs in a row that all differ from the server in the same way (another
    #: project folder, another ``ANSIBLE_*`` value), a new server is started for them; 0: never.
    switch_after: int = 3


@dataclass(frozen=True)
class _Fallback:
    """The run was not started warm, for this reason: the local executor runs it."""

    reason: str


class WarmExecutor:
    """Runs playbooks forked from a warm Ansible process; hands the runs it cannot serve warm to
    ``fallback`` (the local executor, built by :mod:`bridge.executors.router`)."""

    #: Check runs (drift) are served: they go to the fallback, with --check --diff.
    supports_check = True

    def __init__(
        self, settings: RunnerSettings, warm: WarmSettings | None = None, *, fallback: Executor
    ) -> None:
        self._settings = settings
        self._warm = warm or WarmSettings()
        self._fallback = fallback
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, settings.max_concurrent_runs) + 2,
            thread_name_prefix="ansible-warm",
        )
        self._cancels: set[threading.Event] = set()
        self._in_flight: set[str] = set()  # run ids
        self._server: WarmServer | None = None
        self._server_lock = threading.Lock()
        self._start_failed: tuple[float, str] | None = None
        self._others: tuple[Identity, int] | None = None  # runs in a row not like the server
        self._closed = False
        #: How many runs were served ``warm`` and how many fell back to ``local``.
        self.counts: collections.Counter[str] = collections.Counter()

    @property
    def server_pid(self) -> int | None:
        """The running server's PID, if there is one."""
        server = self._server
        return server.pid if server is not None and server.alive() else None

    async def close(self) -> None:
        self._closed = True
        in_flight = list(self._in_flight)
        for flag in list(self._cancels):
            flag.set()  # each run's thread SIGKILLs the run's process group
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        await asyncio.to_thread(self._stop_server)
        for run_id in in_flight:  # and what left that group (Ansible's workers)
            await asyncio.to_thread(proctree.stop, run_id, grace=0)
        await self._fallback.close()

    async def run(self, spec: RunSpec, on_event: EventCallback) -> RunResult:
        if spec.check:
            # A drift check (--check --diff): the local executor runs it (the warm server runs
            # the command line of a real run only).
            self.counts["local"] += 1
            logger.info("run %s is a check run: the local executor runs it", spec.run_id)
            return await self._fallback.run(spec, on_event)
        if spec.credentials is not None or spec.inventory_text is not None:
            # ansible-runner's ssh-agent wrapper, password files and the run's own inventory
            # (bridge.executors.plumbing.apply_credentials) are the local executor's; the warm
            # server has none of them.
            self.counts["local"] += 1
            logger.info(
                "run %s has credentials or an inventory from the cluster: the local executor "
                "runs it",
                spec.run_id,
            )
            return await self._fallback.run(spec, on_event)
        cancel = threading.Event()
        relay = EventRelay(asyncio.get_running_loop(), on_event)
        started = time.monotonic()
        self._cancels.add(cancel)
        self._in_flight.add(spec.run_id)
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, self._run_sync, spec, relay.handle, cancel
        )
        try:
            stop = functools.partial(
                stop_run, spec.run_id, cancel, future, grace=self._settings.stop_grace
            )
            outcome, timed_out = await await_run(spec, future, stop)
        finally:
            self._cancels.discard(cancel)
            self._in_flight.discard(spec.run_id)
        if isinstance(outcome, _Fallback) and cancel.is_set() and not timed_out:
            # close() while the run was being set up: it is not started elsewhere either.
            return await relay.result(spec.run_id, "canceled", None, "the run was canceled")
        if isinstance(outcome, _Fallback) and not timed_out:
            self.counts["local"] += 1
            logger.info("run %s runs without the warm server: %s", spec.run_id, outcome.reason)
            if spec.timeout is not None:
                left = max(spec.timeout - (time.monotonic() - started), 0.001)
                spec = dataclasses.replace(spec, timeout=left)
            return await self._fallback.run(spec, on_event)
        status: RunStatus
        if isinstance(outcome, _Fallback):  # timed out before it started
            status, rc, message = "timeout", None, ""
        else:
            status, rc, message = outcome
            self.counts["warm"] += 1
        if timed_out:
            status, message = "timeout", timeout_message(spec)
        return await relay.result(spec.run_id, status, rc, message)

    def _run_sync(
        self, spec: RunSpec, handle: Any, cancel: threading.Event
    ) -> tuple[RunStatus, int | None, str] | _Fallback:
        from ansible_runner.interface import init_runner

        private = new_private_dir(spec)
        fallback: _Fallback | None = None
        try:
            inventory, playbook = prepare_private_dir(private, spec, self._settings)
            # ansible-runner prepares the run exactly as for the local executor (environment,
            # command line, working folder, artifact folder); only the process differs.
            runner = init_runner(
                **runner_options(self._settings, spec, private, inventory, playbook, handle, cancel)
            )
            bounded.bound(runner)  # MAX_EVENT_RES, and the local fallback bounded too
            cwd = Path(runner.config.cwd).resolve()
            if cwd == private.resolve() or private.resolve() in cwd.parents:
                # ansible-runner's choice without a project folder: a new folder every run.
                server, reason = None, "the run has no project folder"
            else:
                server, reason = self._server_for(spec.run_id, runner.config.env, str(cwd))
            if server is None:
                fallback = _Fallback(reason)
                return fallback
            try:
                execute(
                    runner,
                    server,
                    run_id=spec.run_id,
                    rc_file=str(private / "rc"),
                    poll_interval=self._settings.cancel_poll,
                )
            except WarmError as exc:
                fallback = _Fallback(str(exc))
                return fallback
            except RunLost as exc:
                proctree.stop(spec.run_id, grace=0)  # whatever of it may have started
                return "error", None, str(exc)
        except Exception as exc:  # the run could not be started at all
            return "error", None, f"ansible-runner failed: {exc}"
        finally:
            shutil.rmtree(private, ignore_errors=True)
            if fallback is None:
                finish_artifacts(spec)
        return run_outcome(str(runner.status), runner.rc)

    def _server_for(
        self, run_id: str, env: dict[str, str], cwd: str
    ) -> tuple[WarmServer | None, str]:
        """The server for a run with this environment and folder, started if need be; or None
        and why the run cannot be served warm."""
        if len(run_id.encode()) > len(PLACEHOLDER) or "\0" in run_id:
            return None, f"run id {run_id!r} does not fit the process marker"
        wanted = identity(env, cwd)
        if wanted.playbook_bin is None:
            return None, "ansible-playbook is not on the run's PATH"
        with self._server_lock:
            if self._closed:
                return None, "the executor is closing"
            server = self._server
            if server is not None and not server.alive():
                logger.warning("the warm server (pid %s) has gone; starting another", server.pid)
                self._stop_server_locked()
                server = None
            if server is not None:
                found = differences(server.identity, wanted)
                if not found:
                    self._others = None
                    return server, ""
                why = "; ".join(found)
                if server.identity.same_but_config(wanted):
                    logger.info("%s: restarting the warm server", why)
                elif self._steady(wanted):
                    logger.info(
                        "%s, %d runs in a row: restarting the warm server for them",
                        why,
                        self._warm.switch_after,
                    )
                else:
                    return None, why
                self._stop_server_locked()
            if self._start_failed is not None:
                failed_at, why = self._start_failed
                if time.monotonic() - failed_at < self._warm.retry_after:
                    return None, f"the warm server could not start: {why}"
            try:
                self._server = self._start_server(wanted, env)
            except WarmError as exc:
                self._start_failed = (time.monotonic(), str(exc))
                logger.warning("the warm server could not start: %s", exc)
                return None, f"the warm server could not start: {exc}"
            self._start_failed = None
            return self._server, ""

    def _steady(self, wanted: Identity) -> bool:
        """Count runs in a row that differ from the server the same way; True when there have
        been enough of them that the server should serve them instead (one odd first run does
        not make every later run cold; alternating projects do not make the server flap)."""
        count = self._others[1] + 1 if self._others and self._others[0] == wanted else 1
        self._others = (wanted, count)
        if self._warm.switch_after and count >= self._warm.switch_after:
            self._others = None
            return True
        return False

    def _start_server(self, wanted: Identity, env: dict[str, str]) -> WarmServer:
        assert wanted.playbook_bin is not None
        python = interpreter_of(wanted.playbook_bin)
        if python is None:
            raise WarmError(f"cannot tell which Python runs {wanted.playbook_bin}")
        server_env = {
            k: v
            for k, v in env.items()
            if k not in PER_RUN and (k in os.environ or k in _SERVER_VARS or read_at_import(k))
        }
        server = WarmServer(wanted, server_env, python)
        server.start(self._warm.start_timeout)
        read = server.info.get("config_file")
        if _real(read) != _real(wanted.config_file):
            server.close(0)
            raise WarmError(
                f"the server read ansible.cfg {read or '(none)'}, "
                f"expected {wanted.config_file or '(none)'}"
            )
        printed = str(server.info.get("preload_output") or "")
        if printed.strip():
            server.close(0)
            raise WarmError(f"importing Ansible printed what runs would not show: {printed!r}")
        zygote = server.info.get("module_zygote")
        logger.info(
            "warm server (pid %s) ready: ansible-core %s, %s, config %s, module runs %s",
            server.pid,
            server.info.get("ansible_version"),
            wanted.cwd,
            wanted.config_file or "(none)",
            "forked" if zygote is True else f"started as usual ({zygote})",
        )
        return server

    def _stop_server(self) -> None:
        with self._server_lock:
            self._stop_server_locked()

    def _stop_server_locked(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close(self._warm.stop_timeout)


def _real(path: Any) -> str | None:
    return os.path.realpath(path) if isinstance(path, str) else None
