"""The run supervisor: a run dies with the operator, whatever kills it, and leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bridge.ansible import proctree
from bridge.executors import lifeline
from bridge.model.process import MARKER
from tests.processes import sleeping


def _gone(needle: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sleeping(needle):
            return True
        time.sleep(0.05)
    return False


def _sleep_arg() -> str:
    return f"600.{os.getpid()}{time.monotonic_ns() % 100000:05d}"


def _kill_all(needle: str) -> None:
    for pid in sleeping(needle):
        os.kill(pid, signal.SIGKILL)


def test_a_run_dies_with_its_operator_even_detached_and_without_its_environment(
    tmp_path: Path,
) -> None:
    escaped, held = _sleep_arg(), _sleep_arg() + "1"
    # A stand-in for the operator: it starts the run under a supervisor, then is SIGKILLed.
    operator = textwrap.dedent(
        f"""
        import subprocess, sys, time
        sys.path.insert(0, {str(Path.cwd())!r})
        from bridge.executors import lifeline
        subprocess.Popen(lifeline.wrap(
            ["sh", "-c", "setsid env -i sleep {escaped} & sleep {held}"]
        ), env={{"PATH": "/usr/bin:/bin", {MARKER!r}: "run-x"}}, start_new_session=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", operator])
    try:
        deadline = time.monotonic() + 10
        while not (sleeping(escaped) and sleeping(held)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleeping(escaped) and sleeping(held), "the run did not start"
        proc.kill()
        proc.wait()
        assert _gone(escaped, timeout=5), "the detached process outlived the operator"
        assert _gone(held, timeout=5), "the run outlived the operator"
    finally:
        proc.kill()
        proc.wait()
        _kill_all(escaped)
        _kill_all(held)


def test_what_a_run_leaves_dies_when_it_ends_and_its_exit_code_is_kept() -> None:
    escaped = _sleep_arg()
    try:
        done = subprocess.run(
            lifeline.wrap(["sh", "-c", f"setsid env -i sleep {escaped} & exit 3"]),
            timeout=30,
        )
        assert done.returncode == 3
        assert _gone(escaped, timeout=5)
    finally:
        _kill_all(escaped)


def test_a_signal_death_of_the_command_is_passed_on() -> None:
    done = subprocess.run(lifeline.wrap(["sh", "-c", "kill -TERM $$"]), timeout=30)
    assert done.returncode == -signal.SIGTERM


def test_nothing_starts_when_the_operator_has_already_ended(tmp_path: Path) -> None:
    flag = tmp_path / "ran"
    pid = os.getpid()
    stale = f"{pid}:{(lifeline.start_time(pid) or 0) + 1}"  # this PID, another start: re-used
    done = subprocess.run(
        lifeline.wrap(["touch", str(flag)], operator=stale), timeout=30, capture_output=True
    )
    assert done.returncode == 137
    assert not flag.exists()


def test_sigterm_to_the_supervisor_kills_the_run_now() -> None:
    held = _sleep_arg()
    proc = subprocess.Popen(lifeline.wrap(["sh", "-c", f"setsid env -i sleep {held}; :"]))
    try:
        deadline = time.monotonic() + 10
        while not sleeping(held) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.terminate()
        assert proc.wait(timeout=10) == 137
        assert _gone(held, timeout=5)
    finally:
        proc.kill()
        _kill_all(held)


def test_sigint_leaves_the_supervisor_to_clean_up_after_the_command() -> None:
    escaped = _sleep_arg()
    proc = subprocess.Popen(
        lifeline.wrap(["sh", "-c", f"setsid env -i sleep {escaped} & exec sleep 600"])
    )
    try:
        deadline = time.monotonic() + 10
        while not sleeping(escaped) and time.monotonic() < deadline:
            time.sleep(0.05)
        # As proctree.stop does: SIGINT to the run's processes, the supervisor among them.
        for pid in [proc.pid, *lifeline.children(proc.pid)]:
            os.kill(pid, signal.SIGINT)
        assert proc.wait(timeout=10) == -signal.SIGINT
        assert _gone(escaped, timeout=5)
    finally:
        proc.kill()
        _kill_all(escaped)


def test_proctree_stops_what_dropped_the_run_marker_below_a_marked_process() -> None:
    escaped = _sleep_arg()
    run_id = f"run-{os.getpid()}-lifeline"
    env = {"PATH": os.environ["PATH"], MARKER: run_id}
    proc = subprocess.Popen(
        lifeline.wrap(["sh", "-c", f"setsid env -i sleep {escaped} & exec sleep 600"]), env=env
    )
    try:
        deadline = time.monotonic() + 10
        while not sleeping(escaped) and time.monotonic() < deadline:
            time.sleep(0.05)
        (pid,) = sleeping(escaped)
        assert pid not in proctree.marked(run_id)
        assert pid in proctree.members(run_id)
        proctree.stop(run_id, grace=5)
        assert _gone(escaped, timeout=5)
        assert proc.wait(timeout=10) is not None
    finally:
        proc.kill()
        _kill_all(escaped)
