"""A run printing 50 MB end to end (#20 item 8): the operator's memory stays within 50 MB of idle
(peak included) while the run's artifacts keep the whole output."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.e2e.conftest import DATA, Bridge

pytestmark = pytest.mark.e2e

RECORD = str(DATA / "record.yml")
SIZE = 50_000_000
PRINT_A_LOT = f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Make a lot
      ansible.builtin.shell: "head -c {SIZE} /dev/zero | tr '\\\\0' 'x' | fold -w 100"
      register: out
    - name: Print a lot
      ansible.builtin.debug:
        var: out.stdout
"""


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


class _Peak(threading.Thread):
    """Samples a process's RSS until stopped; ``peak`` is the highest seen (MiB)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak = pid, 0.0
        self._stop_flag = threading.Event()

    def run(self) -> None:
        while not self._stop_flag.wait(0.02):
            try:
                self.peak = max(self.peak, _rss_mib(self.pid))
            except (OSError, AssertionError):
                return

    def stop(self) -> float:
        self._stop_flag.set()
        self.join()
        return self.peak


def test_fifty_megabytes_of_output_keep_the_operator_small(bridge: Bridge) -> None:
    playbook = bridge.workdir / "print_a_lot.yml"
    playbook.write_text(PRINT_A_LOT)
    operator = bridge.start(
        [
            {"kind": "Probe", "playbook": RECORD},
            {"kind": "Plain", "playbook": str(playbook)},
        ],
        "--max-artifacts-bytes",
        "200Mi",
    )
    # Idle: after a small run, so that what every run imports is loaded.
    bridge.create("small", {"message": "warm up"})
    bridge.wait_ready("small")
    idle = _rss_mib(operator.pid)

    sampler = _Peak(operator.pid)
    sampler.start()
    bridge.create("big", {}, kind="Plain")
    bridge.wait_ready("big", kind="Plain", timeout=600)
    peak = sampler.stop()
    after = _rss_mib(operator.pid)
    print(f"operator RSS: idle {idle:.0f} MiB, peak {peak:.0f} MiB, after {after:.0f} MiB")
    assert peak - idle < 50, (idle, peak, after)
    assert after - idle < 50, (idle, peak, after)

    # The artifacts keep all of it: the stdout file has every line; the events stay small, the
    # big one with the line that says what it left out.
    stdouts = [p for p in operator.artifacts.rglob("stdout") if "big" in str(p)]
    assert len(stdouts) == 1, stdouts
    stdout = stdouts[0]
    assert stdout.stat().st_size > SIZE
    with stdout.open("rb") as fh:
        fh.seek(-1000, 2)
        tail = fh.read().decode("utf-8", "replace")
    # The end of the 50 MB value, then the play's recap: the output reached the file whole.
    before_recap, recap, _ = tail.partition("PLAY RECAP")
    assert recap and "x" * 40 in before_recap, tail
    events = [json.loads(p.read_text()) for p in (stdout.parent / "job_events").glob("*.json")]
    assert events and all(len(e.get("stdout", "")) < 200_000 for e in events)
    assert any("not kept in memory" in e.get("stdout", "") for e in events)
