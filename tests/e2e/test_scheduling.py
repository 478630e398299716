"""When runs happen across resources, and what they leave on disk, end to end.

Runs are counted by the test playbook (data/record.yml): one line per run, starting with the
time (nanoseconds) its first task ran, in a record file per resource.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest

from tests.e2e.conftest import DATA, GROUP, VERSION, Bridge, wait_for

pytestmark = pytest.mark.e2e

RECORD = str(DATA / "record.yml")
BUSY = 2  # periodic resources waiting for the one run slot
PERIODIC = {"ansible-bridge.io/reconcile-period": "1s"}


def run_times(bridge: Bridge, name: str) -> list[int]:
    return [int(line.split()[0]) for line in bridge.runs(name)]


def queued_runs(base: str) -> float | None:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(r"^ansible_bridge_runs_queued\{[^}]*\} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_a_new_resource_runs_before_queued_periodic_runs(bridge: Bridge) -> None:
    bridge.start(
        [{"kind": "Probe", "playbook": RECORD}],
        "--max-concurrent-runs",
        "1",
        "--http-host",
        "127.0.0.1",
    )
    operator = bridge.operator
    assert operator is not None
    port = wait_for(
        "the HTTP server",
        lambda: re.findall(r"HTTP server on 127\.0\.0\.1:(\d+)", operator.log_text()),
        timeout=60,
    )[0]
    base = f"http://127.0.0.1:{port}"
    busy = [f"busy{i}" for i in range(BUSY)]
    for name in busy:
        bridge.apply(
            json.dumps(
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Probe",
                    "metadata": {"name": name, "annotations": PERIODIC},
                    "spec": {"message": name},
                }
            )
        )
    wait_for("every busy resource's first run", lambda: all(bridge.runs(n) for n in busy), 300)

    # A run that holds the only slot; meanwhile every busy resource's periodic run falls due
    # and queues. Then a new resource arrives, last in line.
    bridge.create("blocker", {"message": "b", "hold": True})
    wait_for("the blocker's run", lambda: bridge.runs("blocker"), timeout=300)
    wait_for(f"{BUSY} periodic runs queued", lambda: queued_runs(base) == BUSY, timeout=120)
    bridge.create("fresh", {"message": "new"})
    wait_for("the new resource's run queued", lambda: queued_runs(base) == BUSY + 1)

    released = time.time_ns()
    (bridge.records / f"{bridge.namespace}.blocker.release").touch()

    def first_after_release() -> tuple[int, str] | None:
        times = [(t, n) for n in (*busy, "fresh") for t in run_times(bridge, n) if t > released]
        return min(times) if times else None

    first = wait_for("the first run after the blocker's", first_after_release, timeout=240)
    # It arrived after the periodic runs but went first: first come, first served would have
    # run them before it.
    assert first[1] == "fresh", f"{first[1]}'s periodic run went first"
    obj = bridge.wait_ready("fresh", timeout=120)
    assert obj["status"]["lastRun"]["trigger"] == "create"
    # A periodic run comes next: queued behind, not dropped.
    wait_for(
        "a periodic run after the new resource's",
        lambda: any(t > first[0] for n in busy for t in run_times(bridge, n)),
        timeout=120,
    )


def test_old_run_artifacts_go_past_the_size_bound(bridge: Bridge) -> None:
    # Each run leaves some kilobytes (stdout, job events): a 1-byte bound keeps only the newest.
    bridge.start([{"kind": "Probe", "playbook": RECORD}], "--max-artifacts-bytes", "1")
    bridge.create("p", {"message": "one"})
    bridge.wait_ready("p")
    bridge.patch_spec("p", {"message": "two"})
    bridge.wait_ready("p", generation=2)
    bridge.patch_spec("p", {"message": "three"})
    obj = bridge.wait_ready("p", generation=3)
    assert len(bridge.runs("p")) == 3

    folder = bridge.workdir / "artifacts" / GROUP / VERSION / "Probe" / bridge.namespace / "p"
    kept = [d.name for d in (folder / "artifacts").iterdir()]
    assert kept == [obj["status"]["lastRun"]["id"]]
    assert (folder / "artifacts" / kept[0] / "stdout").stat().st_size > 1  # kept, though over


def test_without_a_size_bound_maxrunnerartifacts_alone_applies(bridge: Bridge) -> None:
    bridge.start(
        [{"kind": "Probe", "playbook": RECORD, "maxRunnerArtifacts": 2}],
        "--max-artifacts-bytes",
        "0",
    )
    bridge.create("p", {"message": "one"})
    bridge.wait_ready("p")
    for generation, message in ((2, "two"), (3, "three")):
        bridge.patch_spec("p", {"message": message})
        obj = bridge.wait_ready("p", generation=generation)
    folder = bridge.workdir / "artifacts" / GROUP / VERSION / "Probe" / bridge.namespace / "p"
    kept = sorted(d.name for d in (folder / "artifacts").iterdir())
    assert len(kept) == 2 and obj["status"]["lastRun"]["id"] in kept
