"""The job executor without a cluster: the Job it builds, what it transmits, the watches keys,
and whole runs through real ``ansible-runner worker`` processes (ProcessTransport)
with an in-memory stand-in for the Jobs API (the e2e tests use the real API server)."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bridge.ansible import proctree
from bridge.config.settings import JobSettings, RunnerSettings
from bridge.config.watches import load_watches
from bridge.executors.job.executor import JobExecutor
from bridge.executors.job.manifest import job_manifest, job_name, transmit_options
from bridge.executors.local import LocalExecutor
from bridge.model.annotations import LABEL_GENERATION, LABEL_RESOURCE_UID, LABEL_RUN_ID
from bridge.model.errors import WatchesError
from bridge.model.process import MARKER
from bridge.model.records import ResourceRef, RunnerEvent, RunResult, RunSpec
from bridge.model.watch import JobOptions, Watch
from tests.unit.helpers import make_watch

UID = "0b6f3c4e-1111-2222-3333-444455556666"
RESOURCE = ResourceRef("test.io/v1", "Probe", "team-a", "p1", UID)
WATCH_KEY = "Probe.test.io/v1"


def spec_of(tmp: Path, run_id: str = "run0001", **kw: Any) -> RunSpec:
    values: dict[str, Any] = {
        "run_id": run_id,
        "resource": RESOURCE,
        "generation": 3,
        "trigger": "update",
        "playbook": tmp / "pb.yml",
        "extravars": {},
        "inventory": None,
        "artifact_dir": tmp / "artifacts",
        "timeout": 600.0,
    }
    values.update(kw)
    return RunSpec(**values)


# --- the Job --------------------------------------------------------------------------------


def test_job_manifest_has_the_watchs_pod_spec_labels_and_a_stdin_worker(tmp_path: Path) -> None:
    options = JobOptions(
        image="registry.example.com/ee:2",
        resources={"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}},
        service_account="runner",
        node_selector={"pool": "ansible"},
        tolerations=({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},),
        ttl_seconds_after_finished=120,
    )
    job = job_manifest(
        spec_of(tmp_path), options, image="default:1", namespace="jobs", watch_key=WATCH_KEY
    )

    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    meta = job["metadata"]
    assert meta["name"] == "ansible-bridge-run-run0001" and meta["namespace"] == "jobs"
    labels = {LABEL_RESOURCE_UID: UID, LABEL_GENERATION: "3", LABEL_RUN_ID: "run0001"}
    assert labels.items() <= meta["labels"].items()
    assert meta["annotations"]["ansible-bridge.io/watch"] == WATCH_KEY
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 120
    assert spec["activeDeadlineSeconds"] == 600 + 300
    assert labels.items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "runner"
    assert pod["nodeSelector"] == {"pool": "ansible"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"medium": "Memory"}}]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.com/ee:2"
    assert container["resources"] == {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}}
    assert container["stdin"] is True and container["stdinOnce"] is True
    assert container["tty"] is False
    assert "ansible-runner worker --private-data-dir" in container["command"][-1]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_job_manifest_defaults_and_no_secret_in_it(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, timeout=None, extravars={"password": "hunter2"}, secrets=("hunter2",))
    job = job_manifest(spec, JobOptions(), image="default:1", namespace="ns", watch_key=WATCH_KEY)

    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "default:1"
    assert "resources" not in pod["containers"][0]
    assert not {"serviceAccountName", "nodeSelector", "tolerations"} & set(pod)
    assert "activeDeadlineSeconds" not in job["spec"]
    assert job["spec"]["ttlSecondsAfterFinished"] == 300
    assert "hunter2" not in json.dumps(job)


def test_job_names_are_dns_labels() -> None:
    assert job_name("abc123") == "ansible-bridge-run-abc123"
    assert job_name("A_b.C" * 20).startswith("ansible-bridge-run-a-b-c")
    assert len(job_name("x" * 100)) == 63


def test_transmit_options_move_private_paths_to_the_workers_folder() -> None:
    private = Path("/var/runs/run-1")
    options = {
        "private_data_dir": str(private),
        "artifact_dir": "/var/artifacts",
        "rotate_artifacts": 20,
        "event_handler": print,
        "cancel_callback": print,
        "playbook": "/var/runs/run-1/role.yml",
        "project_dir": "/var/runs/run-1",
        "inventory": "/var/runs/run-1/inventory/hosts",
        "envvars": {
            "KEY": "/var/runs/run-1/bridge/ssh_key",
            "OTHER": "/var/runs/run-10",
            "GONE": "x",
        },
        "cmdline": "--check --diff --vault-password-file '/var/runs/run-1/bridge/vault'",
        "ident": "run-1",
    }
    sent = transmit_options(options, private, "/tmp/runner", drop_env={"GONE"})
    assert sent == {
        "playbook": "/tmp/runner/role.yml",
        "project_dir": "/tmp/runner",
        "inventory": "/var/runs/run-1/inventory/hosts",  # ansible-runner makes it relative
        "envvars": {"KEY": "/tmp/runner/bridge/ssh_key", "OTHER": "/var/runs/run-10"},
        "cmdline": "--check --diff --vault-password-file '/tmp/runner/bridge/vault'",
        "ident": "run-1",
    }


# --- watches keys -----------------------------------------------------------------------------


def load(tmp_path: Path, text: str) -> tuple[list[Watch], list[str]]:
    (tmp_path / "pb.yml").write_text("- hosts: localhost\n  tasks: []\n")
    path = tmp_path / "watches.yaml"
    head = "- {group: test.io, version: v1, kind: Probe, playbook: pb.yml}\n"
    path.write_text(head[:-2] + ", " + textwrap.dedent(text).strip() + "}\n" if text else head)
    return load_watches(path, {})


def test_watches_executor_and_job_options(tmp_path: Path) -> None:
    (watch,), warnings = load(
        tmp_path,
        """executor: job, job: {image: "ee:1", resources: {requests: {cpu: 500m, memory: 1Gi},
        limits: {cpu: 2}}, serviceAccount: runner, nodeSelector: {pool: a},
        tolerations: [{key: k, operator: Equal, value: v, effect: NoSchedule}],
        ttlSecondsAfterFinished: 60, namespace: jobs}""",
    )
    assert warnings == []
    assert watch.executor.name == "job"
    assert watch.executor.job == JobOptions(
        image="ee:1",
        resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 2}},
        service_account="runner",
        node_selector={"pool": "a"},
        tolerations=({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},),
        ttl_seconds_after_finished=60,
        namespace="jobs",
    )
    (plain,), _ = load(tmp_path, "")
    assert plain.executor.name is None and plain.executor.job is None
    (defaults,), _ = load(tmp_path, "executor: job")
    assert defaults.executor.job == JobOptions()


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ("executor: pod", "executor", "expected one of local, warm, job"),
        ("executor: job, job: {imag: x}", "job.imag", "did you mean 'image'"),
        (
            "executor: job, job: {resources: {requests: {cpu: lots}}}",
            "job.resources.requests.cpu",
            "not a quantity",
        ),
        ("executor: job, job: {resources: {limit: {}}}", "job.resources.limit", "did you mean"),
        ("executor: job, job: {nodeSelector: {pool: 1}}", "job.nodeSelector", "quote numbers"),
        (
            "executor: job, job: {tolerations: [{effect: Never}]}",
            "job.tolerations[0].effect",
            "expected one of NoSchedule",
        ),
        (
            "executor: job, job: {ttlSecondsAfterFinished: -1}",
            "job.ttlSecondsAfterFinished",
            "0 or more",
        ),
        ("executor: job, job: {namespace: Not_A_Name}", "job.namespace", "not a namespace"),
        ("executor: job, scope: Cluster", "job.namespace", "cluster-scoped"),
    ],
)
def test_watches_job_errors_name_the_key(tmp_path: Path, text: str, key: str, says: str) -> None:
    with pytest.raises(WatchesError) as info:
        load(tmp_path, text)
    assert info.value.key == key and info.value.entry == 1
    assert says in str(info.value)


def test_watches_warn_about_job_options_without_the_job_executor(tmp_path: Path) -> None:
    (watch,), warnings = load(tmp_path, "job: {image: x}")
    assert watch.executor.name is None
    assert any("key 'job'" in w and "executor: job" in w for w in warnings)


# --- whole runs through real ansible-runner worker processes --------------------------------


class MemoryJobs:
    """An in-memory stand-in for :class:`bridge.kube.client.Jobs` (the e2e tests use the API)."""

    def __init__(self, existing: list[dict[str, Any]] | None = None) -> None:
        self.jobs: dict[str, dict[str, Any]] = {j["metadata"]["name"]: j for j in existing or []}
        self.deleted: list[tuple[str, bool]] = []

    async def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.jobs[body["metadata"]["name"]] = dict(body)
        return dict(body)

    async def delete(self, namespace: str, name: str, *, foreground: bool) -> bool:
        self.deleted.append((name, foreground))
        return self.jobs.pop(name, None) is not None

    async def list(self, namespaces: Any, selector: str) -> list[dict[str, Any]]:
        return list(self.jobs.values())

    def close(self) -> None:
        pass


PLAYBOOK = """\
- name: Play
  hosts: all
  gather_facts: false
  tasks:
    - name: Change something
      ansible.builtin.command: "sleep {{ pause | default(0) }}"
      changed_when: true
    - name: Publish
      ansible.builtin.set_stats:
        data: {token: "{{ token }}", n: 2}
        per_host: false
"""


def executor(jobs: MemoryJobs, watches: tuple[Watch, ...] = ()) -> JobExecutor:
    settings = RunnerSettings(max_concurrent_runs=2, stop_grace=2.0)
    return JobExecutor(settings, JobSettings(transport="process"), jobs, watches)  # type: ignore[arg-type]


def files_below(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_a_job_run_gives_the_result_and_artifacts_of_a_local_run(tmp_path: Path) -> None:
    # Kept here (not at the top) so this test's edits stay within it.
    from tests.unit.ansible.secret_forms import SPECIAL_VALUES, encoded_forms

    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    # Quotes, a backslash, lines, non-ASCII: json.dump stores it escaped in the job events.
    value = SPECIAL_VALUES["everything"]
    extravars = {"token": value}
    job_spec = spec_of(tmp_path, "jobrun1", extravars=extravars, secrets=(value,))
    local_spec = spec_of(
        tmp_path,
        "localrun1",
        extravars=extravars,
        secrets=(value,),
        artifact_dir=tmp_path / "local-artifacts",
    )
    jobs = MemoryJobs()
    events: list[RunnerEvent] = []

    async def go() -> tuple[RunResult, RunResult]:
        job_executor, local_executor = executor(jobs), LocalExecutor(RunnerSettings())
        try:
            by_job = await job_executor.run(job_spec, events.append)
            by_local = await local_executor.run(local_spec, lambda e: None)
        finally:
            await job_executor.close()
            await local_executor.close()
        return by_job, by_local

    by_job, by_local = asyncio.run(go())
    assert by_job.status == "successful" and by_job.rc == 0
    assert by_job.hosts == by_local.hosts and by_job.hosts["localhost"].changed == 1
    assert by_job.outputs == by_local.outputs == {"token": value, "n": 2}
    assert [t.task for t in by_job.changed_tasks] == ["Change something"]
    assert any(e.get("event") == "playbook_on_stats" for e in events)
    job_files = {p.name for p in (tmp_path / "artifacts" / "jobrun1").iterdir()}
    local_files = {p.name for p in (tmp_path / "local-artifacts" / "localrun1").iterdir()}
    assert job_files == local_files and {"stdout", "rc", "status", "job_events"} <= job_files
    assert len(list((tmp_path / "artifacts" / "jobrun1" / "job_events").iterdir())) == len(events)
    # The Job was created, then deleted once the run ended (Background: it is over).
    assert jobs.deleted == [("ansible-bridge-run-jobrun1", False)]
    # Secrets: scrubbed from the artifacts (every form: the set_stats result holds the value);
    # the private dir and worker folder are gone.
    files = files_below(tmp_path / "artifacts") + files_below(tmp_path / "local-artifacts")
    assert len(files) >= 2 * len(events)
    for path in files_below(tmp_path):
        data = path.read_bytes()
        assert [f for f in encoded_forms(value) if f.encode() in data] == [], path
    assert any(b"********" in path.read_bytes() for path in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts", "local-artifacts", "pb.yml"]


def test_timeout_deletes_the_job_in_the_foreground_and_stops_the_worker(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    spec = spec_of(tmp_path, "slowrun1", extravars={"token": "t", "pause": 120}, timeout=3.0)
    jobs = MemoryJobs()

    async def go() -> RunResult:
        job_executor = executor(jobs)
        try:
            return await job_executor.run(spec, lambda e: None)
        finally:
            await job_executor.close()

    result = asyncio.run(go())
    assert result.status == "timeout" and "timeout of 3s" in result.message
    assert jobs.deleted == [("ansible-bridge-run-slowrun1", True)]
    assert proctree.marked("slowrun1") == []


def test_cancel_deletes_the_job_and_leaves_no_process_before_it_propagates(
    tmp_path: Path,
) -> None:
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    spec = spec_of(tmp_path, "cancel01", extravars={"token": "t", "pause": 120})
    jobs = MemoryJobs()

    async def go() -> list[int]:
        started = asyncio.Event()

        def on_event(event: RunnerEvent) -> None:
            if event.get("event") == "runner_on_start":
                started.set()

        job_executor = executor(jobs)
        task = asyncio.create_task(job_executor.run(spec, on_event))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        left = proctree.marked("cancel01")  # right when the caller sees the cancellation
        await job_executor.close()
        return left

    assert asyncio.run(asyncio.wait_for(go(), 120)) == []
    assert jobs.deleted == [("ansible-bridge-run-cancel01", True)]


def test_first_run_deletes_jobs_left_by_an_earlier_operator_for_its_watches(
    tmp_path: Path,
) -> None:
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    watch = make_watch(group="test.io", version="v1", kind="Probe", playbook=tmp_path / "pb.yml")
    ours = job_manifest(
        spec_of(tmp_path, "old1"), JobOptions(), image="i", namespace="ns", watch_key=WATCH_KEY
    )
    theirs = job_manifest(
        spec_of(tmp_path, "old2"), JobOptions(), image="i", namespace="ns", watch_key="X.a.io/v1"
    )
    jobs = MemoryJobs([ours, theirs])

    async def go() -> RunResult:
        job_executor = executor(jobs, (watch,))
        try:
            return await job_executor.run(
                spec_of(tmp_path, "new1", extravars={"token": "t"}), print
            )
        finally:
            await job_executor.close()

    assert asyncio.run(go()).status == "successful"
    assert jobs.deleted == [
        ("ansible-bridge-run-old1", True),  # an earlier operator's: its worker is unreachable
        ("ansible-bridge-run-new1", False),  # this run's, once it ended
    ]
    assert set(jobs.jobs) == {"ansible-bridge-run-old2"}  # another watch's: not ours


class HttpPod(MemoryJobs):
    """Stands in for a Job's pod and the kubelet: a local ``ansible-runner worker`` whose stdin
    is written by ``attach_stdin`` and whose stdout is served over HTTP, read back through
    urllib3 as the kubernetes client reads ``pods/log`` (follow)."""

    def __init__(self, folder: Path, run_id: str) -> None:
        import http.server
        import os
        import subprocess
        import sys
        import threading

        super().__init__()
        env = dict(os.environ, **{MARKER: run_id})
        runner = str(Path(sys.executable).parent / "ansible-runner")
        self.proc = subprocess.Popen(
            [runner, "worker", "--private-data-dir", str(folder / "pod"), "--delete"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        stdout = self.proc.stdout
        assert stdout is not None

        class Log(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                while chunk := stdout.read1(65536):
                    self.wfile.write(chunk)
                    self.wfile.flush()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Log)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.sent = b""

    def wait_pod_running(self, namespace: str, job: str, container: str, **kw: Any) -> str:
        return f"{job}-pod"

    def attach_stdin(self, namespace: str, pod: str, container: str, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.sent = data
        self.proc.stdin.write(data)
        self.proc.stdin.close()

    def follow_log(self, namespace: str, pod: str, container: str) -> Any:
        import urllib3

        url = f"http://127.0.0.1:{self.server.server_address[1]}/log"
        return urllib3.PoolManager().request("GET", url, preload_content=False)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.proc.wait(timeout=60)


def test_pod_transport_sends_stdin_and_processes_the_log_stream(tmp_path: Path) -> None:
    from bridge.executors.job.transport import PodTransport

    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    spec = spec_of(
        tmp_path,
        "podrun01",
        extravars={"token": "via-stdin"},
        secrets=("via-stdin",),
        # The operator's API proxy, on its loopback: meaningless in a pod.
        envvars={"K8S_AUTH_HOST": "http://127.0.0.1:9", "K8S_AUTH_API_KEY": "proxy-token"},
    )
    pod = HttpPod(tmp_path, "podrun01")

    async def go() -> RunResult:
        settings = RunnerSettings(max_concurrent_runs=2)
        transport = PodTransport(pod, JobSettings())  # type: ignore[arg-type]
        job_executor = JobExecutor(settings, JobSettings(), pod, (), transport=transport)  # type: ignore[arg-type]
        try:
            return await job_executor.run(spec, lambda e: None)
        finally:
            await job_executor.close()
            pod.stop()

    result = asyncio.run(go())
    assert result.status == "successful" and result.rc == 0
    assert result.outputs == {"token": "via-stdin", "n": 2}
    assert pod.sent.startswith(b'{"kwargs": ') and pod.sent.rstrip().endswith(b'{"eof": true}')
    kwargs = json.loads(pod.sent.split(b"\n", 1)[0])["kwargs"]
    assert not {"K8S_AUTH_HOST", "K8S_AUTH_API_KEY"} & set(kwargs["envvars"])
    assert kwargs["envvars"][MARKER] == "podrun01"
    files = {p.name for p in (tmp_path / "artifacts" / "podrun01").iterdir()}
    assert {"stdout", "rc", "status", "job_events"} <= files
    assert pod.deleted == [("ansible-bridge-run-podrun01", False)]
