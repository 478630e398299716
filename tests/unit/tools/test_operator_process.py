"""The operator process helper: command, readiness by /readyz, stop by SIGTERM then SIGKILL.

A small Python script stands in for the operator: it logs the line the bridge logs when its HTTP
server listens and answers ``/readyz``; told to, it ignores SIGTERM or exits at once.
"""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import pytest

from bridge.tools.operator_process import (
    OperatorProcess,
    OperatorProcessError,
    bridge_command,
    stop_pid_file,
)
from bridge.tools.processes import cmdline, pid_alive

FAKE = textwrap.dedent(
    """
    import http.server, signal, sys, time

    mode = sys.argv[1]
    if mode == "exit":
        print("cannot start: no watches", flush=True)
        sys.exit(3)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass


    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    print(f"bridge.app.web: HTTP server on 127.0.0.1:{server.server_port} (/readyz)", flush=True)
    server.serve_forever()
    """
)


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    path = tmp_path / "fake_operator.py"
    path.write_text(FAKE)
    return path


def process(fake: Path, mode: str, **kwargs: object) -> OperatorProcess:
    return OperatorProcess(
        [sys.executable, str(fake), mode],
        log=fake.parent / "operator.log",
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_bridge_command_has_the_options_given() -> None:
    cmd = bridge_command(
        Path("/w.yaml"),
        kubeconfig=Path("/k"),
        artifacts_dir=Path("/a"),
        namespaces=["one", "two"],
        executor="local",
        http_port=0,
        extra=("--max-concurrent-runs", "4"),
    )
    assert cmd == [
        sys.executable,
        "-m",
        "bridge",
        "run",
        "--watches",
        "/w.yaml",
        "--kubeconfig",
        "/k",
        "--namespace",
        "one",
        "--namespace",
        "two",
        "--artifacts-dir",
        "/a",
        "--executor",
        "local",
        "--http-port",
        "0",
        "--max-concurrent-runs",
        "4",
    ]


def test_ready_by_the_port_its_log_names_then_stopped_by_sigterm(fake: Path) -> None:
    op = process(fake, "serve").start()
    try:
        took = op.wait_ready(timeout=30)
        assert 0 < took < 30
        port = op.http_port()
        assert port is not None and port > 0
        assert op.log_text().startswith(f"$ {sys.executable} {fake} serve\n")
        assert op.exited() is None
    finally:
        code = op.stop(grace=10)
    assert code == 0  # its SIGTERM handler's exit
    assert op.proc is None and op.stop() is None


def test_an_operator_that_ignores_sigterm_gets_sigkill_after_the_grace(fake: Path) -> None:
    op = process(fake, "stubborn").start()
    op.wait_ready(timeout=30)
    assert op.stop(grace=0.5) == -signal.SIGKILL


def test_one_that_exits_is_an_error_with_its_log(fake: Path) -> None:
    op = process(fake, "exit").start()
    with pytest.raises(OperatorProcessError, match=r"(?s)exited \(3\).*no watches"):
        op.wait_ready(timeout=30)
    assert op.stop() == 3


def test_a_restart_appends_to_the_log_unless_told_not(fake: Path) -> None:
    op = process(fake, "exit")
    for _ in range(2):
        op.start()
        assert op.proc is not None
        op.proc.wait()
        op.stop()
    assert op.log_text().count("no watches") == 2
    fresh = process(fake, "exit", append=False)
    fresh.start().stop()
    assert fresh.log_text().count("$ ") == 1


def test_stop_pid_file_stops_only_a_process_that_is_ours(fake: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "operator.pid"
    detached = process(fake, "stubborn").start()  # in its own session, as the demo's
    try:
        detached.wait_ready(timeout=30)  # SIGTERM is ignored from now on
        detached.write_pid(pid_file)
        assert stop_pid_file(pid_file, lambda pid: False) is None  # not ours: left alone
        assert not pid_file.exists()
        assert detached.running()

        detached.write_pid(pid_file)
        killed: list[int] = []
        ours = str(fake)
        stopped = stop_pid_file(
            pid_file, lambda pid: pid_alive(pid, ours), grace=0.5, before_kill=killed.append
        )
        assert stopped == detached.pid and killed == [detached.pid]
        assert cmdline(detached.pid) is None
    finally:
        detached.stop(grace=0)
    assert stop_pid_file(pid_file, lambda pid: True) is None  # no file: nothing ran
