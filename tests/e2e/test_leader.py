"""--leader-elect end to end: two real operator processes share one control plane and a Lease.

Exactly one of them runs playbooks; when it dies (SIGKILL of the operator and every process it
started, as when its container dies) the standby takes the Lease over once it expired and
re-runs each interrupted run exactly once; a leader stopped cleanly releases the Lease; a
leader whose Lease is taken stops its runs and exits non-zero. Runs are counted by the
playbook itself (tests/e2e/data/leader_count.yml): one line per start, one per completion.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DATA, Bridge, Operator, processes_mentioning, wait_for

pytestmark = pytest.mark.e2e

COUNT = str(DATA / "leader_count.yml")
#: Short timings, so failover happens within seconds (client-go's defaults are 15s/10s/2s).
FAST = ("--leader-elect-lease=4s", "--leader-elect-renew-deadline=3s")
FAST_RETRY = "--leader-elect-retry-period=0.5s"


def count_watch() -> dict[str, object]:
    return {"kind": "Probe", "playbook": COUNT}


class Replicas:
    """Operator processes of one test, each with its own folder (artifacts, log)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.operators: list[Operator] = []

    def start(self, entries: list[dict[str, Any]], *args: str, count: int = 2) -> list[Operator]:
        watches = self.bridge.write_watches(entries)
        started = []
        for _ in range(count):
            workdir = self.bridge.workdir / f"replica-{len(self.operators)}"
            workdir.mkdir()
            flags = ("--leader-elect", f"--leader-elect-namespace={self.bridge.namespace}", *args)
            operator = Operator(self.bridge.plane, watches, self.bridge.namespace, workdir, flags)
            self.operators.append(operator.start())
            started.append(operator)
        return started

    def stop_all(self) -> None:
        for operator in self.operators:
            operator.stop()


@pytest.fixture
def replicas(bridge: Bridge) -> Iterator[Replicas]:
    found = Replicas(bridge)
    try:
        yield found
    finally:
        found.stop_all()  # before the bridge fixture looks for leftover processes


def identity(operator: Operator) -> str:
    found = re.search(r"bridge\.kube\.leader: (\S+): campaigning", operator.log_text())
    assert found, operator.log_text()[-3000:]
    return found.group(1)


def leads(operator: Operator) -> bool:
    return "became leader" in operator.log_text()


def leader_of(*operators: Operator) -> tuple[Operator, list[Operator]]:
    wait_for("a leader", lambda: any(leads(o) for o in operators), timeout=120)
    leaders = [o for o in operators if leads(o)]
    assert len(leaders) == 1, [o.log_text()[-2000:] for o in operators]
    return leaders[0], [o for o in operators if o is not leaders[0]]


def http(operator: Operator, path: str) -> tuple[int, str]:
    found = re.search(r"HTTP server on [^:]+:(\d+)", operator.log_text())
    assert found, operator.log_text()[-3000:]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{found.group(1)}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(operator: Operator, name: str, labels: str = "") -> float:
    """The sum of a metric's samples whose labels contain ``labels`` (e.g. 'result="failed"')."""
    _, text = http(operator, "/metrics")
    total = 0.0
    for line in text.splitlines():
        found = re.fullmatch(rf"{name}(\{{[^}}]*\}})? (\S+)", line)
        if found and labels in (found.group(1) or ""):
            total += float(found.group(2))
    return total


def run_dirs(operator: Operator) -> dict[str, int]:
    """Runs an operator started, by resource name (its artifacts: one folder per run)."""
    counts: dict[str, int] = {}
    for run in operator.artifacts.glob("*/*/*/*/*/artifacts/*"):
        if run.is_dir():
            name = run.parent.parent.name
            counts[name] = counts.get(name, 0) + 1
    return counts


def records(bridge: Bridge, name: str, what: str) -> list[str]:
    path = bridge.records / f"{bridge.namespace}.{name}.{what}"
    return path.read_text().splitlines() if path.exists() else []


def run_processes(operator: Operator) -> list[str]:
    """Live processes of an operator's runs: by command line, or by the run-id marker."""
    found = processes_mentioning(str(operator.artifacts) + "/")
    run_ids = {p.name.encode() for p in operator.artifacts.glob("*/*/*/*/*/artifacts/*")}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for item in (entry / "environ").read_bytes().split(b"\0"):
                if item.startswith(b"ANSIBLE_BRIDGE_RUN_ID=") and item[22:] in run_ids:
                    found.append(f"{entry.name}: run {item[22:].decode()}")
    return found


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    return children


def kill_like_a_pod(operator: Operator) -> None:
    """SIGKILL the operator and every process it started, as when its container dies: first
    all are stopped (SIGSTOP, so no run can finish meanwhile), then all are killed."""
    assert operator.proc is not None
    frozen: list[int] = []
    todo = [operator.proc.pid]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
            frozen.append(pid)
        todo += [c for c in _children().get(pid, []) if c not in frozen]
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    operator.stop(signal.SIGKILL)  # reaps it
    # A container's end kills all of its processes, also one that the walk above missed
    # because it was moved to another parent while the walk went on (orphans go to their
    # nearest subreaper): the run's processes, found by their marker or command line.
    for entry in run_processes(operator):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(entry.split(":", 1)[0]), signal.SIGKILL)


def lease(api_client: Any, namespace: str) -> Any:
    from kubernetes import client

    return client.CoordinationV1Api(api_client).read_namespaced_lease(
        "ansible-bridge-leader", namespace
    )


def apply_probes(bridge: Bridge, names: list[str], spec: str = "{}") -> None:
    bridge.apply(
        "".join(
            textwrap.dedent(
                f"""\
                ---
                apiVersion: test.ansible-bridge.io/v1alpha1
                kind: Probe
                metadata: {{name: {name}}}
                spec: {spec}
                """
            )
            for name in names
        )
    )


@pytest.mark.timeout(900)  # 50 runs on a shared 2-core machine
def test_two_replicas_one_leader_fifty_resources_each_run_exactly_once(
    bridge: Bridge, replicas: Replicas
) -> None:
    a, b = replicas.start([count_watch()], "--max-concurrent-runs", "4")
    leader, (standby,) = leader_of(a, b)
    wait_for("the standby to see the leader", lambda: "standing by" in standby.log_text())
    assert identity(leader) in standby.log_text()  # "... is held by <leader>"
    # A standby is healthy and ready (so rolling updates proceed), and says it does not lead.
    assert http(standby, "/healthz")[0] == 200
    assert http(standby, "/readyz")[0] == 200
    assert metric(standby, "ansible_bridge_leader") == 0
    assert metric(leader, "ansible_bridge_leader") == 1

    names = [f"bulk-{i:02d}" for i in range(50)]
    apply_probes(bridge, names)
    for name in names:
        bridge.wait_ready(name, timeout=600)

    started = {n: len(records(bridge, n, "started")) for n in names}
    done = {n: len(records(bridge, n, "done")) for n in names}
    assert started == dict.fromkeys(names, 1)
    assert done == dict.fromkeys(names, 1)
    assert run_dirs(leader) == dict.fromkeys(names, 1)
    assert run_dirs(standby) == {}
    assert metric(leader, "ansible_bridge_runs_total", 'result="successful"') == 50
    assert metric(standby, "ansible_bridge_runs_total") == 0
    assert not leads(standby)
    assert a.proc is not None and a.proc.poll() is None
    assert b.proc is not None and b.proc.poll() is None


def test_failover_the_standby_reruns_each_interrupted_run_exactly_once(
    bridge: Bridge, replicas: Replicas, api_client: Any
) -> None:
    a, b = replicas.start([count_watch()], *FAST, FAST_RETRY, "--max-concurrent-runs", "2")
    leader, (standby,) = leader_of(a, b)
    wait_for("the standby to see the leader", lambda: "standing by" in standby.log_text())
    names = [f"job-{i}" for i in range(6)]
    apply_probes(bridge, names, "{hold: true}")

    def in_flight() -> list[str] | None:
        found = [n for n in names if records(bridge, n, "started")]
        return found if len(found) == 2 else None

    interrupted = wait_for("two runs in flight on the leader", in_flight, timeout=180)
    for name in interrupted:
        assert (bridge.get(name) or {}).get("status", {}).get("currentRun")
    before = lease(api_client, bridge.namespace).spec
    assert before.holder_identity == identity(leader)

    killed = time.monotonic()
    kill_like_a_pod(leader)
    last = lease(api_client, bridge.namespace).spec  # nobody renews it any more
    for name in names:
        (bridge.records / f"{bridge.namespace}.{name}.release").touch()
    # Killed with the pod: gone as soon as the kernel has finished their exit.
    wait_for("the dead leader's run processes to go", lambda: not run_processes(leader), 10)

    wait_for("the standby to lead", lambda: leads(standby), timeout=120, interval=0.05)
    took_over = time.monotonic()
    for name in names:
        bridge.wait_ready(name, timeout=300)
    all_ready = time.monotonic()
    print(
        f"\nfailover (lease 4s, renew deadline 3s, retry 0.5s): SIGKILL -> standby leads in "
        f"{took_over - killed:.1f}s, SIGKILL -> all {len(names)} Ready in {all_ready - killed:.1f}s"
    )

    after = lease(api_client, bridge.namespace).spec
    assert after.holder_identity == identity(standby)
    assert after.lease_transitions == before.lease_transitions + 1
    # Not taken over before it expired: acquired at least leaseDurationSeconds after the dead
    # leader's last renewal (both times written by this machine's clock).
    assert (after.acquire_time - last.renew_time).total_seconds() >= 4
    for name in names:
        obj = bridge.get(name) or {}
        assert len(records(bridge, name, "done")) == 1, name
        if name in interrupted:
            assert len(records(bridge, name, "started")) == 2, name
            assert obj["status"]["lastRun"]["trigger"] == "resume"
        else:
            assert len(records(bridge, name, "started")) == 1, name
            assert obj["status"]["lastRun"]["trigger"] == "create"
        assert "currentRun" not in obj["status"] or not obj["status"]["currentRun"]
    assert run_dirs(standby) == dict.fromkeys(names, 1)


def test_a_leader_stopped_cleanly_releases_the_lease_for_the_standby(
    bridge: Bridge, replicas: Replicas, api_client: Any
) -> None:
    # A long lease: without the release the standby could not lead for 60 s.
    timings = ("--leader-elect-lease=60s", "--leader-elect-renew-deadline=40s", FAST_RETRY)
    a, b = replicas.start([count_watch()], *timings)
    leader, (standby,) = leader_of(a, b)
    wait_for("the standby to see the leader", lambda: "standing by" in standby.log_text())
    apply_probes(bridge, ["before"])
    bridge.wait_ready("before")

    stopped = time.monotonic()
    assert leader.stop(signal.SIGTERM) == 0
    assert "released Lease" in leader.log_text()
    assert lease(api_client, bridge.namespace).spec.holder_identity in ("", identity(standby))
    wait_for("the standby to lead", lambda: leads(standby), timeout=45, interval=0.05)
    print(f"\nclean stop -> standby leads in {time.monotonic() - stopped:.1f}s (lease 60s)")

    apply_probes(bridge, ["after"])
    bridge.wait_ready("after")
    assert run_dirs(standby) == {"after": 1}
    assert len(records(bridge, "before", "done")) == 1


def test_a_leader_whose_lease_is_taken_stops_its_runs_and_exits_non_zero(
    bridge: Bridge, replicas: Replicas, api_client: Any
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    (operator,) = replicas.start([count_watch()], *FAST, FAST_RETRY, count=1)
    wait_for("it to lead", lambda: leads(operator))
    apply_probes(bridge, ["held"], "{hold: true}")
    wait_for("the run to start", lambda: records(bridge, "held", "started"))
    wait_for("its processes", lambda: run_processes(operator))

    leases = client.CoordinationV1Api(api_client)

    def steal() -> bool:
        current = leases.read_namespaced_lease("ansible-bridge-leader", bridge.namespace)
        current.spec.holder_identity = "intruder"
        current.spec.lease_duration_seconds = 3600
        current.spec.renew_time = datetime.now(UTC)
        try:
            leases.replace_namespaced_lease("ansible-bridge-leader", bridge.namespace, current)
        except ApiException as e:
            if e.status == 409:  # renewed meanwhile: read again
                return False
            raise
        return True

    wait_for("the Lease to be taken", steal)
    assert operator.proc is not None
    wait_for("the operator to exit", lambda: operator.proc.poll() is not None, timeout=120)
    assert operator.proc.returncode == 1
    log = operator.log_text()
    assert "lost leadership" in log and "held by intruder" in log
    assert run_processes(operator) == []
    assert len(records(bridge, "held", "done")) == 0
    obj = bridge.get("held") or {}
    assert obj["status"].get("currentRun")  # interrupted: the next leader resumes it
    assert lease(api_client, bridge.namespace).spec.holder_identity == "intruder"
