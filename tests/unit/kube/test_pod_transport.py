"""The Job executor's pod transport on the wire: ``pods/attach`` stdin and ``pods/log`` follow.

The real kubernetes client (:func:`bridge.kube.client.api_client` from a kubeconfig, and
:class:`Jobs`) talks to a fake API server on loopback (:mod:`tests.unit.kube.fakeapi`) that
speaks the websocket channel protocols and streams a chunked log over time; the server records
what it received. The log is read as :class:`PodTransport` reads it: a ``BufferedReader``
(ansible-runner's processor reads it by lines).
"""

from __future__ import annotations

import concurrent.futures
import io
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bridge.config.settings import JobSettings
from bridge.executors.job.manifest import CONTAINER
from bridge.executors.job.transport import PodTransport
from bridge.kube.client import Jobs, api_client
from bridge.model.errors import BridgeError, PermanentError, TemporaryError
from tests.unit.kube.fakeapi import CLOSE, STDIN, TOKEN, V4, V5, FakeApi, LogScript, fake_api

T = TypeVar("T")
MiB = 1024 * 1024


def started(fn: Callable[[], T]) -> concurrent.futures.Future[T]:
    """``fn()`` running in a daemon thread (a read the test expects to block for a while)."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the test
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


def within(fn: Callable[[], T]) -> T:
    """``fn()``, failing the test (not hanging it) if it blocks for 10 s."""
    return started(fn).result(timeout=10)


def payload(size: int) -> bytes:
    """Bytes no shorter pattern repeats in, so a lost, doubled or reordered chunk shows."""
    return random.Random(size).randbytes(size)


# --- stdin: pods/attach -------------------------------------------------------------------------


def test_attach_delivers_several_mib_in_order_then_ends_stdin(api: FakeApi, jobs: Jobs) -> None:
    api.pods["worker-pod"] = "attach"
    data = payload(5 * MiB + 12345)  # the transmit stream of a run's private data dir

    jobs.attach_stdin("ns", "worker-pod", CONTAINER, data)

    (session,) = api.attaches
    assert session.done.wait(10)
    assert bytes(session.stdin) == data
    assert session.protocol == V5
    # The end of stdin: v5's close of channel 0, after the last byte, then the websocket close.
    assert session.stdin_closed
    assert session.channels[-1] == CLOSE and set(session.channels[:-1]) == {STDIN}
    assert session.closed_by_client
    assert session.query == {
        "container": CONTAINER,
        "stdin": "true",
        "stdout": "false",
        "stderr": "false",
        "tty": "false",
    }
    assert session.method in ("GET", "POST")
    assert session.authorization == f"Bearer {TOKEN}"


def test_attach_with_v4_ends_stdin_by_closing_the_websocket(api: FakeApi, jobs: Jobs) -> None:
    api.pods["old-kubelet"] = "v4-only"
    data = payload(MiB + 1)

    jobs.attach_stdin("ns", "old-kubelet", CONTAINER, data)

    (session,) = api.attaches
    assert session.done.wait(10)
    assert session.protocol == V4
    assert bytes(session.stdin) == data
    assert set(session.channels) == {STDIN}  # v4 has no close channel
    assert session.closed_by_client


@pytest.mark.parametrize(
    ("pod", "code", "message"),
    [
        ("gone", 404, 'pods "gone" not found'),
        ("locked", 403, 'pods "locked" is forbidden: cannot create resource "pods/attach"'),
    ],
)
def test_a_refused_attach_is_a_permanent_error_with_the_servers_status(
    api: FakeApi, jobs: Jobs, pod: str, code: int, message: str
) -> None:
    api.pods["locked"] = "forbidden"  # "gone" is not a pod of the server

    with pytest.raises(PermanentError) as raised:
        jobs.attach_stdin("ns", pod, CONTAINER, b"data")

    assert str(raised.value) == f"attach to pod ns/{pod}: HTTP {code}: {message}"
    assert raised.value.reason == "APIRefused"
    assert raised.value.__cause__ is not None  # the client's exception stays visible
    assert api.attaches == []


def test_a_stream_closed_early_is_a_temporary_error_naming_what_was_sent(
    api: FakeApi, jobs: Jobs
) -> None:
    api.pods["dying"] = "early-close"
    api.early_close_after = 64 * 1024
    data = payload(8 * MiB)

    with pytest.raises(TemporaryError) as raised:
        jobs.attach_stdin("ns", "dying", CONTAINER, data)

    message = str(raised.value)
    assert message.startswith("attach to pod ns/dying: ")
    assert f"of {len(data)} bytes" in message
    assert message.endswith(": container exited")  # what the server said on channel 3
    (session,) = api.attaches
    assert session.done.wait(10)
    assert len(session.stdin) < len(data)
    assert bytes(session.stdin) == data[: len(session.stdin)]


def test_an_unreachable_server_is_a_temporary_error(tmp_path: Path) -> None:
    with fake_api() as gone:
        kubeconfig = gone.kubeconfig(tmp_path)
    jobs = Jobs(api_client(kubeconfig))
    try:
        with pytest.raises(TemporaryError, match=r"^attach to pod ns/p: "):
            jobs.attach_stdin("ns", "p", CONTAINER, b"data")
        with pytest.raises(TemporaryError, match=r"^log of pod ns/p: "):
            jobs.follow_log("ns", "p", CONTAINER)
    finally:
        jobs.close()


# --- output: pods/log?follow=true ---------------------------------------------------------------


def test_log_yields_each_line_as_the_server_sends_it_until_it_ends(
    api: FakeApi, jobs: Jobs
) -> None:
    # The server sends chunk 0, then waits for the test before chunk 1, and before chunk 3.
    api.logs["worker-pod"] = LogScript(
        [b'{"event": 1}\n', b'{"eve', b'nt": 2}\n{"ev', b'ent": 3}\n'], gates=frozenset({1, 3})
    )

    log = jobs.follow_log("ns", "worker-pod", CONTAINER)
    log.auto_close = False  # as the transport sets it
    lines = io.BufferedReader(log)

    # Read before the server sent anything more: the line is not held back for a full buffer.
    assert within(lines.readline) == b'{"event": 1}\n'
    api.release()
    assert within(lines.readline) == b'{"event": 2}\n'  # split across two chunks
    third = started(lines.readline)
    api.release()
    assert third.result(timeout=10) == b'{"event": 3}\n'  # and its tail in a later chunk
    assert within(lines.readline) == b""  # the server ended the log
    assert within(lines.read) == b""
    ended_but_open = not log.closed  # what BufferedReader buffered stays readable
    assert ended_but_open
    log.close()
    assert log.closed
    assert api.log_queries == [{"container": CONTAINER, "follow": "true"}]


def test_a_large_log_arrives_whole_and_in_order(api: FakeApi, jobs: Jobs) -> None:
    body = b"".join(b"%08d %s\n" % (n, b"x" * (n % 300)) for n in range(20000))
    cuts = sorted(random.Random(7).sample(range(1, len(body)), 500))
    api.logs["worker-pod"] = LogScript(
        [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    )

    lines = io.BufferedReader(jobs.follow_log("ns", "worker-pod", CONTAINER))

    assert within(lines.readlines) == body.splitlines(keepends=True)


def test_closing_the_log_ends_a_read_blocked_in_another_thread(api: FakeApi, jobs: Jobs) -> None:
    """What the transport's ``stop``/``close`` rely on while the processor reads the log."""
    api.logs["worker-pod"] = LogScript([b"first\n", b"never sent\n"], gates=frozenset({1}))
    log = jobs.follow_log("ns", "worker-pod", CONTAINER)
    lines = io.BufferedReader(log)
    assert within(lines.readline) == b"first\n"
    blocked = started(lines.readline)  # the server sends nothing more until released

    within(log.close)

    assert blocked.result(timeout=10) == b""
    assert log.closed


@pytest.mark.parametrize(
    ("pod", "code", "message"),
    [
        ("gone", 404, 'pods "gone" not found'),
        ("locked", 403, 'pods "locked" is forbidden: cannot get "pods/log"'),
    ],
)
def test_a_refused_log_is_a_permanent_error_with_the_servers_status(
    api: FakeApi, jobs: Jobs, pod: str, code: int, message: str
) -> None:
    api.pods["locked"] = "forbidden"

    with pytest.raises(PermanentError) as raised:
        jobs.follow_log("ns", pod, CONTAINER)

    assert str(raised.value) == f"log of pod ns/{pod}: HTTP {code}: {message}"
    assert raised.value.__cause__ is not None


def test_a_log_cut_mid_stream_is_a_temporary_error(api: FakeApi, jobs: Jobs) -> None:
    api.logs["worker-pod"] = LogScript([b"whole line\n", b"half a li"], cut=True)

    lines = io.BufferedReader(jobs.follow_log("ns", "worker-pod", CONTAINER))

    assert within(lines.readline) == b"whole line\n"
    with pytest.raises(TemporaryError, match=r"^log of pod ns/worker-pod: the stream broke"):
        within(lines.readline)


# --- the transport over both ---------------------------------------------------------------------


def test_pod_transport_waits_for_the_pod_sends_stdin_and_streams_its_output(
    api: FakeApi, jobs: Jobs
) -> None:
    api.pod_list = [
        {
            "metadata": {"name": "run-1-abcde"},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": CONTAINER,
                        "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                    }
                ],
            },
        }
    ]
    api.pods["run-1-abcde"] = "attach"
    api.logs["run-1-abcde"] = LogScript(
        [b'{"status": "starting"}\n{"stat', b'us": "successful"}\n', b'{"eof": true}\n'],
        gates=frozenset({1}),
    )
    job: dict[str, Any] = {"metadata": {"namespace": "ns", "name": "run-1"}}
    transmit = payload(3 * MiB)

    channel = PodTransport(jobs, JobSettings(start_timeout=10)).open(
        job,
        None,  # type: ignore[arg-type]  # the pod transport does not read the spec
        lambda: False,
    )
    try:
        assert within(channel.output.readline) == b'{"status": "starting"}\n'
        within(lambda: channel.send(transmit))
        api.release()
        assert within(channel.output.readline) == b'{"status": "successful"}\n'
        assert within(channel.output.readline) == b'{"eof": true}\n'
        assert within(channel.output.readline) == b""
    finally:
        within(channel.close)

    (session,) = api.attaches
    assert session.done.wait(10)
    assert bytes(session.stdin) == transmit and session.stdin_closed
    assert session.query["container"] == CONTAINER


def test_errors_are_the_bridges_own(api: FakeApi, jobs: Jobs) -> None:
    """Nothing of the client library escapes: callers catch :class:`BridgeError`."""
    api.pods["locked"] = "forbidden"
    api.pods["dying"] = "early-close"
    calls: list[Callable[[], Any]] = [
        lambda: jobs.attach_stdin("ns", "gone", CONTAINER, b"x"),
        lambda: jobs.attach_stdin("ns", "locked", CONTAINER, b"x"),
        lambda: jobs.attach_stdin("ns", "dying", CONTAINER, payload(4 * MiB)),
        lambda: jobs.follow_log("ns", "gone", CONTAINER),
        lambda: jobs.follow_log("ns", "locked", CONTAINER),
    ]
    for call in calls:
        with pytest.raises(BridgeError):
            call()
