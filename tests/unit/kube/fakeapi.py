"""A fake Kubernetes API server on loopback: pods/attach, pods/log, pods and Jobs, as the real one
speaks them on the wire.

A real aiohttp server in a thread of its own, so the official (blocking) client talks to it
over real sockets: ``pods/attach`` is a websocket upgrade with the ``v5.channel.k8s.io`` or
``v4.channel.k8s.io`` subprotocol (each binary message's first byte is its channel: 0 stdin,
1 stdout, 2 stderr, 3 status; v5 adds 255, close a channel), ``pods/log?follow=true`` a chunked
response streamed over time, refusals a ``Status`` body. What each pod does is scripted per
test; what the server received is recorded for the test's assertions.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import WSMsgType, web

STDIN, STDOUT, STDERR, STATUS, CLOSE = 0, 1, 2, 3, 255
V4, V5 = "v4.channel.k8s.io", "v5.channel.k8s.io"
TOKEN = "fake-token"


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass
class Attach:
    """What one ``pods/attach`` session received."""

    method: str
    query: dict[str, str]
    protocol: str | None
    authorization: str | None
    #: The stdin bytes (channel 0), in the order they arrived.
    stdin: bytearray = field(default_factory=bytearray)
    #: Channels of every message, in order (255 for a v5 close).
    channels: list[int] = field(default_factory=list)
    #: The v5 "close stdin" signal arrived (``255, 0``).
    stdin_closed: bool = False
    #: The client closed the websocket (a close frame).
    closed_by_client: bool = False
    #: The server's handler is done with the session.
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class LogScript:
    """The log of one pod: chunks written in turn; before a chunk whose index is in ``gates``,
    the server waits for :meth:`FakeApi.release` (so a test can read what came before)."""

    chunks: list[bytes]
    gates: frozenset[int] = frozenset()
    #: End the response without its last (zero-length) chunk: a connection cut mid-stream.
    cut: bool = False


PodBehaviour = Literal["attach", "forbidden", "early-close", "v4-only"]


class FakeApi:
    """The server; configure ``pods``, ``logs`` and ``jobs`` before the client calls."""

    def __init__(self) -> None:
        #: Pod name -> how its attach behaves; a pod not listed is a 404.
        self.pods: dict[str, PodBehaviour] = {}
        #: Pod name -> its log; a pod not listed is a 404 (403 for ``"forbidden"`` pods).
        self.logs: dict[str, LogScript] = {}
        #: Pod list of ``GET .../pods`` (for the wait for a running pod).
        self.pod_list: list[dict[str, Any]] = []
        #: Names of Jobs that exist (DELETE of another is a 404).
        self.jobs: set[str] = set()
        #: Every attach session, in order.
        self.attaches: list[Attach] = []
        #: Every Job DELETE: (name, query, parsed JSON body or None).
        self.deletes: list[tuple[str, dict[str, str], Any]] = []
        #: Every log request's query.
        self.log_queries: list[dict[str, str]] = []
        #: For ``"early-close"`` pods: how many stdin bytes to take before closing.
        self.early_close_after = 64 * 1024
        self._loop = asyncio.new_event_loop()
        self._gate = asyncio.Semaphore(0)
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        app = web.Application()
        attach = "/api/v1/namespaces/{namespace}/pods/{pod}/attach"
        app.router.add_route("GET", attach, self._attach)
        app.router.add_route("POST", attach, self._attach)
        app.router.add_get("/api/v1/namespaces/{namespace}/pods/{pod}/log", self._log)
        app.router.add_get("/api/v1/namespaces/{namespace}/pods", self._pods)
        app.router.add_delete("/apis/batch/v1/namespaces/{namespace}/jobs/{name}", self._delete)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def release(self) -> None:
        """Let a log stream go past its next gate."""
        self._loop.call_soon_threadsafe(self._gate.release)

    def kubeconfig(self, folder: Path) -> Path:
        """A kubeconfig naming this server, with a bearer token."""
        path = folder / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": TOKEN}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    # --- handlers ---------------------------------------------------------------------------

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        pod = request.match_info["pod"]
        behaviour = self.pods.get(pod)
        if behaviour is None:
            return _refuse(404, "NotFound", f'pods "{pod}" not found')
        if behaviour == "forbidden":
            return _refuse(
                403, "Forbidden", f'pods "{pod}" is forbidden: cannot create resource "pods/attach"'
            )
        protocols = (V4,) if behaviour == "v4-only" else (V5, V4)
        ws = web.WebSocketResponse(protocols=protocols, max_msg_size=0)
        await ws.prepare(request)
        session = Attach(
            method=request.method,
            query=dict(request.query),
            protocol=ws.ws_protocol,
            authorization=request.headers.get("Authorization"),
        )
        self.attaches.append(session)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                data: bytes = msg.data
                session.channels.append(data[0])
                if data[0] == CLOSE and data[1:] == bytes([STDIN]):
                    session.stdin_closed = True
                elif data[0] == STDIN:
                    session.stdin += data[1:]
                if behaviour == "early-close" and len(session.stdin) >= self.early_close_after:
                    await ws.send_bytes(
                        bytes([STATUS])
                        + json.dumps(status_body(500, "InternalError", "container exited")).encode()
                    )
                    await ws.close()
                    break
            session.closed_by_client = ws.close_code is not None and behaviour != "early-close"
        finally:
            session.done.set()
        return ws

    async def _log(self, request: web.Request) -> web.StreamResponse:
        pod = request.match_info["pod"]
        self.log_queries.append(dict(request.query))
        if self.pods.get(pod) == "forbidden":
            return _refuse(403, "Forbidden", f'pods "{pod}" is forbidden: cannot get "pods/log"')
        script = self.logs.get(pod)
        if script is None:
            return _refuse(404, "NotFound", f'pods "{pod}" not found')
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for index, chunk in enumerate(script.chunks):
            if index in script.gates:
                await self._gate.acquire()
            await response.write(chunk)
        if script.cut:
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write_eof()
        return response

    async def _pods(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "items": self.pod_list})

    async def _delete(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        text = await request.text()
        self.deletes.append((name, dict(request.query), json.loads(text) if text else None))
        if name not in self.jobs:
            return _refuse(404, "NotFound", f'jobs.batch "{name}" not found')
        self.jobs.discard(name)
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}}
        )


def _refuse(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(status_body(code, reason, message), status=code)


@contextmanager
def fake_api() -> Iterator[FakeApi]:
    server = FakeApi()
    server.start()
    try:
        yield server
    finally:
        server.stop()
