"""The operator's HTTP server: Prometheus metrics, health and readiness probes, and run logs.

It runs in the operator's event loop (aiohttp), started before kopf and stopped after it:

* ``/metrics``: :class:`~bridge.app.metrics.RunMetrics` in Prometheus' text format;
* ``/healthz``: 200 while the event loop serves requests;
* ``/readyz``: 200 once kopf has started (its ``ready_flag``), 503 before that and when stopping;
* ``/logs/{namespace}/{kind}/{name}``: a run's ``stdout`` from its ansible-runner artifacts, the
  newest run's unless ``?run=ID`` (a run's, or a drift check's); ``?follow=1`` streams what the
  run appends until its ``status`` file appears (ansible-runner writes it after the output is
  complete). ``kind`` is a watched kind, case-insensitively, or its plural (the watch's
  ``plural``), optionally followed by ``.group``; the namespace of a cluster-scoped kind is ``-``.

Nothing from the request becomes a path unchecked: the kind is looked up among the watches, the
namespace, name and run id must be valid Kubernetes names (or run ids), and the resolved path
must stay inside the artifacts root.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from aiohttp import web

from bridge.ansible.artifacts import CHECKS, RUN_ID, RUNS, run_paths
from bridge.ansible.inputs import resource_dir
from bridge.ansible.secrets import redact
from bridge.app import routes
from bridge.app.metrics import RunMetrics
from bridge.app.routes import CLUSTER_SCOPED
from bridge.config.settings import HttpSettings
from bridge.model.errors import BridgeError
from bridge.model.names import DNS_LABEL_RE, DNS_SUBDOMAIN_RE
from bridge.model.records import ResourceRef
from bridge.model.watch import Watch

logger = logging.getLogger("bridge.app.web")

#: Seconds between looks at a followed run's files.
FOLLOW_POLL = 0.25
_CHUNK = 64 * 1024

_TEXT = "text/plain; charset=utf-8"


class LogsError(Exception):
    """A logs request that cannot be served; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def find_watch(watches: Iterable[Watch], kind: str) -> Watch:
    """The watch ``kind`` names: its kind (any case) or its plural (the watch's ``plural``, else
    the derived one), optionally ``.group``-suffixed."""
    wanted, _, group = kind.lower().partition(".")
    found = [
        w
        for w in watches
        if wanted in (w.kind.lower(), w.plural) and (not group or w.group.lower() == group)
    ]
    if not found:
        raise LogsError(404, f"no watched kind {kind!r}")
    if len({(w.group, w.version) for w in found}) > 1:
        names = ", ".join(f"{w.kind}.{w.group}" for w in found)
        raise LogsError(400, f"kind {kind!r} is ambiguous ({names}): add the group")
    return found[0]


def resource_artifacts(root: Path, watch: Watch, namespace: str, name: str) -> Path:
    """The folder of a resource's runs (``<resource_dir>/artifacts``), names checked."""
    if namespace != CLUSTER_SCOPED and not DNS_LABEL_RE.fullmatch(namespace):
        raise LogsError(400, f"invalid namespace {namespace!r}")
    if not DNS_SUBDOMAIN_RE.fullmatch(name):
        raise LogsError(400, f"invalid name {name!r}")
    ref = ResourceRef(
        api_version=watch.api_version,
        kind=watch.kind,
        namespace=None if namespace == CLUSTER_SCOPED else namespace,
        name=name,
        uid="",
    )
    return _inside(root, resource_dir(root, watch, ref) / RUNS)


def _inside(root: Path, path: Path) -> Path:
    """``path`` if, symbolic links resolved, it is below ``root``."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise LogsError(400, "path outside the artifacts folder")
    return resolved


def runs(artifacts: Path) -> list[Path]:
    """The run folders in a resource's artifacts folder, oldest first (by mtime, then name)."""
    return [path for _, path in run_paths(artifacts)]


def run_dir(root: Path, artifacts: Path, run: str | None) -> Path:
    """The folder of run ``run`` (a run, or a drift check kept in the sibling ``checks``
    folder), or of the newest run; LogsError 404 if there is none."""
    if run is None:
        found = runs(artifacts)
        if not found:
            raise LogsError(404, "no runs recorded for this resource")
        return _inside(root, found[-1])
    if not RUN_ID.fullmatch(run):
        raise LogsError(400, f"invalid run id {run!r}")
    path = _inside(root, artifacts / run)
    if not path.is_dir():
        path = _inside(root, artifacts.parent / CHECKS / run)
    if not path.is_dir():
        raise LogsError(404, f"no run {run} recorded for this resource")
    return path


def locate(
    root: Path, watches: Iterable[Watch], namespace: str, kind: str, name: str, run: str | None
) -> Path:
    """The run folder a ``/logs`` request asks for (raises LogsError)."""
    watch = find_watch(watches, kind)
    artifacts = resource_artifacts(root, watch, namespace, name)
    try:
        return run_dir(root, artifacts, run)
    except LogsError as exc:
        if exc.status != 404:
            raise
        ns = "" if namespace == CLUSTER_SCOPED else f"{namespace}/"
        raise LogsError(404, f"{watch.kind} {ns}{name}: {exc}") from None


def _read(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read(_CHUNK)
    except FileNotFoundError:
        return b""


class WebServer:
    """The HTTP server; :meth:`start` and :meth:`stop` it with the operator."""

    def __init__(
        self,
        settings: HttpSettings,
        *,
        metrics: RunMetrics,
        ready: asyncio.Event,
        watches: Iterable[Watch],
        artifacts_root: Path,
        secrets_of: Callable[[str], tuple[str, ...]] = lambda run_id: (),
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._ready = ready
        self._watches = tuple(watches)
        self._root = artifacts_root
        #: The Secret values of a run in flight (its files are scrubbed only when it ends).
        self._secrets_of = secrets_of
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        #: The port listened on (the chosen one when the setting is 0), once started.
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(routes.METRICS, self._get_metrics)
        app.router.add_get(routes.HEALTHZ, self._get_healthz)
        app.router.add_get(routes.READYZ, self._get_readyz)
        app.router.add_get(routes.LOGS_ROUTE, self._get_logs)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self) -> int:
        """Listen; returns the port. Raises BridgeError when the address cannot be bound."""
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, self._settings.host, self._settings.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise BridgeError(
                f"cannot listen on {self._settings.host}:{self._settings.port}: {exc.strerror}"
            ) from exc
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        logger.info(
            "HTTP server on %s:%d (/metrics, /healthz, /readyz, /logs)",
            self._settings.host,
            self.port,
        )
        return self.port

    async def stop(self) -> None:
        """Stop listening; streams being followed end."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing.set()

    # --- handlers ---------------------------------------------------------------------------

    async def _get_metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.exposition(),
            headers={"Content-Type": self._metrics.content_type},
        )

    async def _get_healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _get_readyz(self, request: web.Request) -> web.Response:
        if self._ready.is_set() and not self._closing.is_set():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not ready\n")

    async def _get_logs(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        run = request.query.get("run") or None
        follow = request.query.get("follow", "").lower() in ("1", "true", "yes")
        try:
            folder = await asyncio.to_thread(
                locate,
                self._root,
                self._watches,
                info["namespace"],
                info["kind"],
                info["name"],
                run,
            )
        except LogsError as exc:
            return web.Response(status=exc.status, text=f"{exc}\n")
        response = web.StreamResponse(headers={"Content-Type": _TEXT, "X-Run-Id": folder.name})
        await response.prepare(request)
        try:
            await self._stream(response, folder, follow=follow)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away
        return response

    async def _stream(self, response: web.StreamResponse, folder: Path, *, follow: bool) -> None:
        """Write the run's stdout; when following, until the run ends (or is superseded).

        Output is sent in whole lines, each redacted of the Secret values of a run in flight
        (a value cannot straddle two writes); a finished run's files are already scrubbed.
        """
        stdout, offset, pending = folder / "stdout", 0, b""
        while True:
            # Looked at before reading: once ``status`` exists, the output is complete.
            finished = (folder / "status").exists()
            chunk = await asyncio.to_thread(_read, stdout, offset)
            if chunk:
                offset += len(chunk)
                pending += chunk
                complete, _, pending = pending.rpartition(b"\n")
                if complete:
                    await response.write(self._redacted(folder.name, complete + b"\n"))
                continue
            if not follow or finished or self._closing.is_set():
                if pending:
                    await response.write(self._redacted(folder.name, pending))
                return
            # A newer run of the resource, or this one rotated away: this one is over (an
            # operator stopped mid-run leaves a run without a status file).
            newest = await asyncio.to_thread(runs, folder.parent)
            if not newest or newest[-1].name != folder.name:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), FOLLOW_POLL)

    def _redacted(self, run_id: str, data: bytes) -> bytes:
        values = self._secrets_of(run_id)
        if not values:
            return data
        return redact(data.decode("utf-8", "replace"), values).encode()
