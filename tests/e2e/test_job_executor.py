"""``executor: job`` end to end: the operator creates each run's Job in the real API server and
runs it through ansible-runner's transmit -> worker -> process streams, with a real local
``ansible-runner worker`` process standing in for the pod's container (``--job-transport
process``: the test control plane has no nodes, so no pod ever runs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.executors.job.manifest import job_manifest
from bridge.model.records import ResourceRef, RunSpec
from bridge.model.watch import JobOptions
from tests.e2e.conftest import DATA, GROUP, VERSION, Bridge, ansible_processes, wait_for

pytestmark = pytest.mark.e2e

RECORD = str(DATA / "record.yml")
TRANSPORT = ("--job-transport", "process", "--job-image", "example.com/ansible-ee:7")
JOB_OPTIONS = {
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    "serviceAccount": "ansible-runs",
    "nodeSelector": {"pool": "automation"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ansible"}],
    "ttlSecondsAfterFinished": 90,
}


def job_watch(**extra: Any) -> dict[str, Any]:
    return {"kind": "Probe", "playbook": RECORD, "executor": "job", **extra}


def jobs(bridge: Bridge) -> dict[str, dict[str, Any]]:
    found = bridge.json("get", "jobs", "-n", bridge.namespace)
    return {j["metadata"]["name"]: j for j in found["items"]}


def run_jobs(bridge: Bridge, name: str) -> dict[str, dict[str, Any]]:
    """The Jobs of resource ``name`` (by its uid label), by run id."""
    obj = bridge.get(name) or {}
    uid = obj.get("metadata", {}).get("uid")
    return {
        j["metadata"]["labels"]["ansible-bridge.io/run-id"]: j
        for j in jobs(bridge).values()
        if j["metadata"]["labels"].get("ansible-bridge.io/resource-uid") == uid
    }


def release(bridge: Bridge, name: str) -> None:
    (bridge.records / f"{bridge.namespace}.{name}.release").write_text("go")


def deleting_or_gone(bridge: Bridge, job: str, *, foreground: bool) -> bool:
    current = jobs(bridge).get(job)
    if current is None:
        return True
    meta = current["metadata"]
    # No garbage collector runs here: a Foreground deletion stays pending on its finalizer.
    return bool(meta.get("deletionTimestamp")) and (
        not foreground or "foregroundDeletion" in (meta.get("finalizers") or [])
    )


def artifacts_of(bridge: Bridge, kind: str, name: str, run_id: str) -> Path:
    return (
        bridge.workdir
        / "artifacts"
        / GROUP
        / VERSION
        / kind
        / bridge.namespace
        / name
        / "artifacts"
        / run_id
    )


def test_a_job_run_creates_its_job_and_reports_like_a_local_run(bridge: Bridge) -> None:
    bridge.start(
        [
            job_watch(job=JOB_OPTIONS),
            {"kind": "Plain", "playbook": RECORD, "executor": "local"},
        ],
        *TRANSPORT,
    )
    # The same input through the local executor, to compare with (holding too, released at
    # once: the same tasks run).
    release(bridge, "local")
    bridge.create("local", {"message": "hello", "hold": True}, kind="Plain")
    bridge.create("p", {"message": "hello", "hold": True})

    (job,) = wait_for("the run's Job", lambda: list(run_jobs(bridge, "p").values()))
    obj = bridge.get("p") or {}
    labels = job["metadata"]["labels"]
    assert labels["ansible-bridge.io/resource-uid"] == obj["metadata"]["uid"]
    assert labels["ansible-bridge.io/generation"] == "1"
    run_id = labels["ansible-bridge.io/run-id"]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 90
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "ansible-runs"
    assert pod["nodeSelector"] == {"pool": "automation"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ansible"}]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert job["spec"]["template"]["metadata"]["labels"]["ansible-bridge.io/run-id"] == run_id
    (container,) = pod["containers"]
    assert container["image"] == "example.com/ansible-ee:7"
    assert container["stdin"] is True and container["stdinOnce"] is True
    assert container["resources"] == JOB_OPTIONS["resources"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "hello" not in json.dumps(job)  # the run's inputs go through stdin only

    release(bridge, "p")
    status = bridge.wait_ready("p")["status"]
    local = bridge.wait_ready("local", kind="Plain")["status"]
    assert status["lastRun"]["id"] == run_id
    assert status["lastRun"]["result"] == "successful"
    assert status["lastRun"]["hosts"] == local["lastRun"]["hosts"]
    assert status["outputs"] == local["outputs"] == {"message": "hello", "hosts": 1}
    assert (bridge.records / f"{bridge.namespace}.p.localhost.message").read_text() == "hello"
    files = {p.name for p in artifacts_of(bridge, "Probe", "p", run_id).iterdir()}
    local_files = {
        p.name for p in artifacts_of(bridge, "Plain", "local", local["lastRun"]["id"]).iterdir()
    }
    assert files == local_files and {"stdout", "rc", "status", "job_events"} <= files
    assert "Succeeded" in [e["reason"] for e in bridge.events("p")]
    # The operator deletes the Job of a run that ended (ttlSecondsAfterFinished is the backstop).
    wait_for("the Job to go", lambda: deleting_or_gone(bridge, job_name(job), foreground=False))
    assert ansible_processes(bridge) == []


def job_name(job: dict[str, Any]) -> str:
    return str(job["metadata"]["name"])


def test_spec_change_mid_run_deletes_the_stale_job_in_the_foreground(bridge: Bridge) -> None:
    bridge.start([job_watch()], *TRANSPORT)
    bridge.create("p", {"message": "old", "hold": True})
    (first,) = wait_for("the first Job", lambda: list(run_jobs(bridge, "p").values()))
    wait_for("the worker to run ansible", lambda: ansible_processes(bridge))

    bridge.patch_spec("p", {"message": "new", "hold": False})
    obj = bridge.wait_ready("p", generation=2)
    assert obj["status"]["outputs"]["message"] == "new"
    assert deleting_or_gone(bridge, job_name(first), foreground=True)
    assert "Canceled" in [e["reason"] for e in bridge.events("p")]
    assert ansible_processes(bridge) == []


def test_timeout_deletes_the_job_and_leaves_no_process(bridge: Bridge) -> None:
    bridge.start([job_watch(timeout="3s", retry={"limit": 0})], *TRANSPORT)
    bridge.create("slow", {"message": "m", "hold": True})
    (job,) = wait_for("the Job", lambda: list(run_jobs(bridge, "slow").values()))

    obj = bridge.wait_ready("slow", status="False")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Timeout"
    assert obj["status"]["lastRun"]["result"] == "timeout"
    assert deleting_or_gone(bridge, job_name(job), foreground=True)
    assert ansible_processes(bridge) == []


def test_the_first_run_deletes_a_job_left_by_an_earlier_operator(bridge: Bridge) -> None:
    # What an operator that died mid-run leaves: its Job, whose worker nobody can reach.
    stale = job_manifest(
        RunSpec(
            run_id="earlier0run1",
            resource=ResourceRef(f"{GROUP}/{VERSION}", "Probe", bridge.namespace, "p", "uid-0"),
            generation=1,
            trigger="create",
            playbook=Path(RECORD),
            extravars={},
            inventory=None,
            artifact_dir=bridge.workdir,
        ),
        JobOptions(),
        image="example.com/ansible-ee:7",
        namespace=bridge.namespace,
        watch_key=f"Probe.{GROUP}/{VERSION}",
    )
    bridge.apply(json.dumps(stale))
    assert job_name(stale) in jobs(bridge)

    operator = bridge.start([job_watch()], *TRANSPORT)
    bridge.create("p", {"message": "after"})
    bridge.wait_ready("p")
    assert deleting_or_gone(bridge, job_name(stale), foreground=True)
    assert "left by an earlier operator" in operator.log_text()


# --- the pod transport's wait for the pod, against the real API server ---------------------
# (No kubelet runs here: the test writes the pod's status as a kubelet would.)


def make_pod(bridge: Bridge, job: str, state: dict[str, Any]) -> None:
    core = bridge.core
    bridge.kubectl("create", "serviceaccount", "default", "-n", bridge.namespace, check=False)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{job}-x1y2z", "labels": {"job-name": job}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [{"name": "worker", "image": "example.com/ansible-ee:7"}],
        },
    }
    core.create_namespaced_pod(bridge.namespace, pod)
    status = {
        "status": {
            "phase": "Running" if "running" in state else "Pending",
            "containerStatuses": [
                {
                    "name": "worker",
                    "ready": "running" in state,
                    "restartCount": 0,
                    "image": "example.com/ansible-ee:7",
                    "imageID": "",
                    "state": state,
                }
            ],
        }
    }
    core.patch_namespaced_pod_status(f"{job}-x1y2z", bridge.namespace, status)


def test_pod_transport_finds_the_running_pod_of_a_job_or_says_why_not(bridge: Bridge) -> None:
    from bridge.kube.client import Jobs
    from bridge.model.errors import PermanentError, TemporaryError

    jobs = Jobs(bridge.core.api_client)
    make_pod(bridge, "run-ok", {"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    found = jobs.wait_pod_running(bridge.namespace, "run-ok", "worker", timeout=60)
    assert found == "run-ok-x1y2z"

    make_pod(bridge, "run-bad", {"waiting": {"reason": "ImagePullBackOff", "message": "nope"}})
    with pytest.raises(PermanentError, match="ImagePullBackOff: nope"):
        jobs.wait_pod_running(bridge.namespace, "run-bad", "worker", timeout=60)

    with pytest.raises(TemporaryError, match="did not start in 2s: no pod yet"):
        jobs.wait_pod_running(bridge.namespace, "run-none", "worker", timeout=2)
    with pytest.raises(TemporaryError, match="stopped waiting"):
        jobs.wait_pod_running(
            bridge.namespace, "run-none", "worker", timeout=60, stopping=lambda: True
        )
