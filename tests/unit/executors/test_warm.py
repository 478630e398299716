"""The warm executor, on real playbook runs on localhost, against the local executor.

Every run here really runs Ansible: forked from the warm server, or spawned by ansible-runner
for the local executor. The playbooks are in data/warm/project/ (see its README), copied to a
temporary project folder. Most tests share one warm server on purpose: whatever an earlier run
left in Ansible's global state would show in the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.ansible import proctree
from bridge.ansible.inputs import Unsafe
from bridge.config.settings import RunnerSettings
from bridge.executors.local import LocalExecutor
from bridge.executors.warm import config as _warm_config
from bridge.executors.warm.executor import WarmExecutor, WarmSettings
from bridge.model.process import MARKER
from bridge.model.records import FailedTask, HostStats, ResourceRef, RunnerEvent, RunResult, RunSpec

DATA = Path(__file__).parent.parent / "data" / "warm" / "project"
RESOURCE = ResourceRef("demo.example/v1", "Thing", "default", "thing", "uid-1")


def settings_for(root: Path) -> RunnerSettings:
    return RunnerSettings(artifacts_dir=root / "artifacts", stop_grace=1.0, max_concurrent_runs=4)


def copy_project(root: Path) -> Path:
    project = root / "project"
    shutil.copytree(DATA, project)
    return project


def warm_executor(settings: RunnerSettings, warm: WarmSettings | None = None) -> WarmExecutor:
    """A warm executor as the router builds it: its own local executor as the fallback."""
    return WarmExecutor(settings, warm, fallback=LocalExecutor(settings))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("warm"))


@pytest.fixture(scope="module")
def warm(project: Path) -> Iterator[WarmExecutor]:
    executor = warm_executor(settings_for(project.parent))
    yield executor
    asyncio.run(executor.close())
    assert executor.server_pid is None


@pytest.fixture(scope="module")
def local(project: Path) -> Iterator[LocalExecutor]:
    executor = LocalExecutor(settings_for(project.parent))
    yield executor
    asyncio.run(executor.close())


def spec_for(
    project: Path,
    playbook: str | None = None,
    *,
    role: str | None = None,
    inventory: str | None = None,
    extravars: dict[str, Any] | None = None,
    envvars: dict[str, str] | None = None,
    timeout: float = 120.0,
    secrets: tuple[str, ...] = (),
) -> RunSpec:
    return RunSpec(
        run_id=uuid.uuid4().hex[:12],
        resource=RESOURCE,
        generation=1,
        trigger="create",
        playbook=project / playbook if playbook else None,
        role=project / "roles" / role if role else None,
        extravars=extravars or {},
        inventory=project / inventory if inventory else None,
        artifact_dir=project.parent / "artifacts" / "thing",
        max_artifacts=200,
        timeout=timeout,
        envvars=envvars or {},
        project_dir=project,
        secrets=secrets,
    )


def run(
    executor: WarmExecutor | LocalExecutor, spec: RunSpec, events: list[RunnerEvent] | None = None
) -> RunResult:
    sink: list[RunnerEvent] = [] if events is None else events
    return asyncio.run(executor.run(spec, sink.append))


def run_warm(
    warm: WarmExecutor, spec: RunSpec, events: list[RunnerEvent] | None = None
) -> RunResult:
    """A run that must have been served warm."""
    before = warm.counts["warm"]
    result = run(warm, spec, events)
    assert warm.counts["warm"] == before + 1, "the run fell back to the local executor"
    return result


def comparable(result: RunResult) -> RunResult:
    """Without the run id, and with per-host tuples (failed tasks...) sorted: hosts run in
    parallel, so their events come in either order, with either executor."""
    fields = {
        f.name: tuple(sorted(value, key=repr))
        for f in dataclasses.fields(result)
        if isinstance(value := getattr(result, f.name), tuple)
    }
    return dataclasses.replace(result, run_id="", **fields)


def run_dir(spec: RunSpec) -> Path:
    return spec.artifact_dir / spec.run_id


def job_events(spec: RunSpec) -> list[dict[str, Any]]:
    files = sorted(
        (run_dir(spec) / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-")[0])
    )
    return [json.loads(p.read_text()) for p in files]


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --- the same outcome as the local executor --------------------------------------------------

CASES: dict[str, Callable[[Path], RunSpec]] = {
    "failures, ignored, rescued, outputs, two hosts": lambda p: spec_for(
        p,
        "outcomes.yml",
        inventory="two_hosts.ini",
        extravars={"who": Unsafe("{{ lookup('pipe', 'id') }}")},
    ),
    "role through a generated playbook": lambda p: spec_for(
        p, role="greet", extravars={"who": "bridge"}
    ),
    "unknown host pattern warning": lambda p: spec_for(p, "warning.yml"),
    "filter plugins of other playbooks are unknown": lambda p: spec_for(p, "c/play.yml"),
    "modules of other playbooks are unknown": lambda p: spec_for(p, "c/module.yml"),
    "syntax error": lambda p: spec_for(p, "two_hosts.ini"),
}


@pytest.mark.parametrize("case", CASES)
def test_same_result_as_local(
    case: str, project: Path, warm: WarmExecutor, local: LocalExecutor
) -> None:
    warm_spec, local_spec = CASES[case](project), CASES[case](project)
    warm_events: list[RunnerEvent] = []
    local_events: list[RunnerEvent] = []
    result = run_warm(warm, warm_spec, warm_events)
    expected = run(local, local_spec, local_events)
    assert comparable(result) == comparable(expected)
    assert sorted(e["event"] for e in warm_events) == sorted(e["event"] for e in local_events)


def test_outcomes_are_read_from_the_run(project: Path, warm: WarmExecutor) -> None:
    result = run_warm(warm, CASES["failures, ignored, rescued, outputs, two hosts"](project))
    assert result.status == "failed" and result.rc == 2
    assert result.hosts == {
        "host1": HostStats(ok=5, changed=2, skipped=2, rescued=1, ignored=1),
        "host2": HostStats(ok=3, changed=2, failed=1, skipped=1, rescued=1, ignored=1),
    }
    assert result.failed_tasks == (
        FailedTask(
            "host2", "Outcomes", "Fail on host2", "non-zero return code: disk full on host2"
        ),
    )
    # The resource's string reached the playbook as data, never templated.
    assert result.outputs == {"who": "{{ lookup('pipe', 'id') }}", "numbers": [1, 2]}


@pytest.mark.parametrize("name", ["plain", "pem key", "everything"])
def test_secrets_are_scrubbed(name: str, project: Path, warm: WarmExecutor) -> None:
    # Kept here (not at the top) so this test's edits stay within it.
    from tests.unit.ansible.secret_forms import SPECIAL_VALUES, encoded_forms

    # Quotes, a backslash, lines (a PEM-like key), non-ASCII: stored escaped by json.dump.
    value = {"plain": "s3cr3t-value", **SPECIAL_VALUES}[name]
    spec = spec_for(project, role="greet", extravars={"who": value}, secrets=(value,))
    result = run_warm(warm, spec)
    assert result.succeeded
    files = [p for p in run_dir(spec).rglob("*") if p.is_file()]
    assert run_dir(spec) / "stdout" in files  # files were read: stdout and job events
    assert any(p.parent.name == "job_events" for p in files)
    for path in files:
        data = path.read_bytes()
        assert [f for f in encoded_forms(value) if f.encode() in data] == [], path
    # The value was printed (the greeting), and scrubbed.
    assert b"hello ********" in (run_dir(spec) / "stdout").read_bytes()


# --- artifacts ------------------------------------------------------------------------------


def test_artifacts_as_ansible_runner_writes_them(
    project: Path, warm: WarmExecutor, local: LocalExecutor
) -> None:
    warm_spec, local_spec = spec_for(project, "warning.yml"), spec_for(project, "warning.yml")
    streamed: list[RunnerEvent] = []
    run_warm(warm, warm_spec, streamed)
    run(local, local_spec)
    ours, theirs = run_dir(warm_spec), run_dir(local_spec)

    assert sorted(os.listdir(ours)) == sorted(os.listdir(theirs))
    assert {"command", "job_events", "rc", "status", "stdout", "stderr"} <= set(os.listdir(ours))
    for name in ("rc", "status", "stderr"):
        assert (ours / name).read_text() == (theirs / name).read_text(), name
    # The same terminal output: line ends, colours, banners.
    assert (ours / "stdout").read_text() == (theirs / "stdout").read_text()

    events, expected = job_events(warm_spec), job_events(local_spec)
    assert [e["event"] for e in events] == [e["event"] for e in expected]
    for event, other in zip(events, expected, strict=True):
        assert event.keys() == other.keys()
        assert event["event_data"].keys() == other["event_data"].keys()
        assert (event["stdout"], event["start_line"], event["end_line"]) == (
            other["stdout"],
            other["start_line"],
            other["end_line"],
        )
        assert event["runner_ident"] == warm_spec.run_id
    names = sorted(p.name for p in (ours / "job_events").iterdir())
    assert names == sorted(f"{e['counter']}-{e['uuid']}.json" for e in events)
    # What was streamed is what was written, in order.
    assert [e["uuid"] for e in streamed] == [e["uuid"] for e in events]

    command, other_command = (json.loads((d / "command").read_text()) for d in (ours, theirs))
    assert command["cwd"] == other_command["cwd"] == str(project)
    assert command["command"][0] == "ansible-playbook"
    assert command["command"][-1] == other_command["command"][-1]
    assert command["env"][MARKER] == warm_spec.run_id
    for path in [ours / "command", *(ours / "job_events").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # The private data dir is gone.
    assert not list(warm_spec.artifact_dir.parent.glob(f"run-{warm_spec.run_id}-*"))


# --- cancellation and timeouts -------------------------------------------------------------


def test_cancel_leaves_no_process(project: Path, warm: WarmExecutor) -> None:
    spec = spec_for(project, "sleep.yml")
    run_warm(warm, spec_for(project, "warning.yml"))
    server = warm.server_pid

    async def scenario() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(
            warm.run(spec, lambda e: e.get("event") == "runner_on_start" and started.set())
        )
        await asyncio.wait_for(started.wait(), 60)
        deadline = time.monotonic() + 30
        while not any(cmdline(p).startswith("sleep 60") for p in proctree.marked(spec.run_id)):
            assert time.monotonic() < deadline, "no sleep process was marked"
            await asyncio.sleep(0.05)
        pids = proctree.marked(spec.run_id)
        # The run's main process is the server's child, marked like everything below it.
        assert [p for p in pids if ppid(p) == server]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert proctree.marked(spec.run_id) == []

    asyncio.run(scenario())
    assert warm.server_pid == server  # the server is untouched, and serves the next run
    assert run_warm(warm, spec_for(project, "warning.yml")).succeeded


def test_timeout(project: Path, warm: WarmExecutor) -> None:
    spec = spec_for(project, "sleep.yml", timeout=5)
    events: list[RunnerEvent] = []
    started = time.monotonic()
    result = run_warm(warm, spec, events)
    assert time.monotonic() - started < 30
    assert result.status == "timeout"
    assert result.message == "the run exceeded its timeout of 5s and was stopped"
    assert "runner_on_start" in [e["event"] for e in events]
    assert proctree.marked(spec.run_id) == []


def test_close_cancels_runs_in_flight(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    executor = warm_executor(settings_for(tmp_path))
    spec = spec_for(project, "sleep.yml")

    async def scenario() -> RunResult:
        started = asyncio.Event()
        task = asyncio.create_task(
            executor.run(spec, lambda e: e.get("event") == "runner_on_start" and started.set())
        )
        await asyncio.wait_for(started.wait(), 60)
        servers.append(executor.server_pid)
        # `sleep 60` runs in a module child of the module zygote, a child of the server.
        deadline = time.monotonic() + 60
        while not (
            sleeps := [p for p in proctree.marked(spec.run_id) if cmdline(p).strip() == "sleep 60"]
        ):
            assert time.monotonic() < deadline, "the task's sleep never started"
            await asyncio.sleep(0.05)
        zygote = ppid(ppid(sleeps[0]))
        zygotes.append((zygote, cmdline(zygote)))
        await executor.close()
        return await task

    servers: list[int | None] = []
    zygotes: list[tuple[int, str]] = []
    result = asyncio.run(scenario())
    assert servers[0] is not None and not Path(f"/proc/{servers[0]}").exists()
    zygote, zygote_cmdline = zygotes[0]
    assert "warm/server.py" in zygote_cmdline  # the module's parent: the zygote, not a shell
    deadline = time.monotonic() + 10
    while Path(f"/proc/{zygote}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{zygote}").exists(), "the module zygote outlived its server"
    assert result.status == "canceled" and result.rc == 254
    assert (run_dir(spec) / "status").read_text() == "canceled"
    assert proctree.marked(spec.run_id) == []
    assert executor.server_pid is None


# --- the server's life ---------------------------------------------------------------------


def test_a_dead_server_is_replaced(project: Path, warm: WarmExecutor) -> None:
    assert run_warm(warm, spec_for(project, "warning.yml")).succeeded
    server = warm.server_pid
    assert server is not None
    os.kill(server, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while warm.server_pid is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run_warm(warm, spec_for(project, "warning.yml")).succeeded
    assert warm.server_pid not in (None, server)


def test_a_run_outlives_its_server(project: Path, warm: WarmExecutor) -> None:
    (project / "sleep_short.yml").write_text(
        (project / "sleep.yml").read_text().replace("sleep 60", "sleep 2")
    )
    spec = spec_for(project, "sleep_short.yml")

    async def scenario() -> RunResult:
        started = asyncio.Event()
        task = asyncio.create_task(
            warm.run(spec, lambda e: e.get("event") == "runner_on_start" and started.set())
        )
        await asyncio.wait_for(started.wait(), 60)
        server = warm.server_pid
        assert server is not None
        os.kill(server, signal.SIGKILL)
        return await task

    before = warm.counts["warm"]
    result = asyncio.run(scenario())
    assert warm.counts["warm"] == before + 1
    assert (result.status, result.rc) == ("successful", 0)
    assert (run_dir(spec) / "rc").read_text() == "0"
    assert proctree.marked(spec.run_id) == []


def test_a_server_that_cannot_start_means_local_runs(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    executor = warm_executor(settings_for(tmp_path), WarmSettings(start_timeout=0.01))
    try:
        result = run(executor, spec_for(project, role="greet"))
        assert result.succeeded and result.outputs == {"greeting": "hello nobody"}
        assert executor.counts == {"local": 1}
        assert executor.server_pid is None
    finally:
        asyncio.run(executor.close())


def test_concurrent_runs(project: Path, warm: WarmExecutor) -> None:
    specs = [spec_for(project, "probe.yml", extravars={"who": f"run{i}"}) for i in range(3)]

    async def scenario() -> list[RunResult]:
        return await asyncio.gather(*(warm.run(s, lambda e: None) for s in specs))

    before = warm.counts["warm"]
    results = asyncio.run(scenario())
    assert warm.counts["warm"] == before + 3
    assert [r.outputs["who"] for r in results] == ["run0", "run1", "run2"]
    assert all(r.succeeded for r in results)


# --- configuration read at import: fall back, or restart the server -------------------------


def test_a_different_config_falls_back_to_local(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.executors.warm.executor")
    project = copy_project(tmp_path)
    other = copy_project(tmp_path / "other")
    (other / "ansible.cfg").write_text("[defaults]\nforks = 7\n")
    executor = warm_executor(settings_for(tmp_path))
    try:
        first = run_warm(executor, spec_for(project, "probe.yml"))
        assert first.outputs["forks"] == 5
        server = executor.server_pid

        # Another project's ansible.cfg: the local executor runs it, and honours it.
        result = run(executor, spec_for(other, "probe.yml"))
        assert result.outputs["forks"] == 7
        assert result.outputs["config_file"] == str(other / "ansible.cfg")
        assert executor.counts == {"warm": 1, "local": 1}
        assert f"ansible.cfg {other / 'ansible.cfg'} is not the warm server's" in caplog.text

        # A setting in the environment, read at import: the same.
        result = run(executor, spec_for(project, "probe.yml", envvars={"ANSIBLE_FORKS": "9"}))
        assert result.outputs["forks"] == 9
        assert executor.counts == {"warm": 1, "local": 2}
        assert "differs: ANSIBLE_FORKS" in caplog.text

        # Other variables are the run's own business: still warm.
        result = run_warm(
            executor, spec_for(project, "probe.yml", envvars={"BRIDGE_WARM_PROBE": "x"})
        )
        assert result.outputs["probe_env"] == "x"
        assert executor.server_pid == server

        # The project's own ansible.cfg is edited: a new server reads it.
        (project / "ansible.cfg").write_text("[defaults]\nforks = 6\n")
        result = run_warm(executor, spec_for(project, "probe.yml"))
        assert result.outputs["forks"] == 6
        assert result.outputs["config_file"] == str(project / "ansible.cfg")
        assert executor.server_pid not in (None, server)
        assert "restarting the warm server" in caplog.text
        # ...and an edit of it too.
        (project / "ansible.cfg").write_text("[defaults]\nforks = 4\n")
        assert run_warm(executor, spec_for(project, "probe.yml")).outputs["forks"] == 4
    finally:
        asyncio.run(executor.close())


def test_config_file_lookup(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = {"HOME": str(home)}
    find = _warm_config.find_config_file
    system = "/etc/ansible/ansible.cfg" if os.path.exists("/etc/ansible/ansible.cfg") else None
    assert find(env, str(cwd)) == system
    (home / ".ansible.cfg").write_text("")
    assert find(env, str(cwd)) == str(home / ".ansible.cfg")
    (cwd / "ansible.cfg").write_text("")
    assert find(env, str(cwd)) == str(cwd / "ansible.cfg")
    cwd.chmod(0o777)  # a world-writable folder's ansible.cfg is ignored, as Ansible does
    assert find(env, str(cwd)) == str(home / ".ansible.cfg")
    cwd.chmod(0o755)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "ansible.cfg").write_text("")
    assert find({**env, "ANSIBLE_CONFIG": "../conf"}, str(cwd)) == str(
        tmp_path / "conf" / "ansible.cfg"
    )
    assert find({**env, "ANSIBLE_CONFIG": "$HOME/.ansible.cfg"}, str(cwd)) == str(
        home / ".ansible.cfg"
    )
    a = _warm_config.identity({**env, "ANSIBLE_FORKS": "3", "LANG": "C.UTF-8", "X": "1"}, str(cwd))
    b = _warm_config.identity({**env, "ANSIBLE_FORKS": "4", "Y": "1"}, str(cwd))
    assert _warm_config.differences(a, a) == []
    assert _warm_config.differences(a, b) == [
        "environment read by Ansible at import differs: ANSIBLE_FORKS, LANG"
    ]


# --- global state of Ansible does not leak from one run into the next ----------------------


def test_facts_do_not_leak(project: Path, warm: WarmExecutor) -> None:
    spec = spec_for(project, "set_fact.yml")
    assert run_warm(warm, spec).succeeded
    # The fact cache is the run's own (ANSIBLE_CACHE_PLUGIN_CONNECTION is read per run).
    cached = [p.read_text() for p in (run_dir(spec) / "fact_cache").iterdir()]
    assert any("from-an-earlier-run" in text for text in cached)
    assert run_warm(warm, spec_for(project, "probe.yml")).outputs["leaked"] == "none"


def test_cli_args_do_not_leak(
    project: Path, warm: WarmExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """context.CLIARGS, the Display's verbosity: the first run in check mode with -vvv, its own
    inventory and extra vars; the next one sees none of it."""
    import ansible_runner.interface

    original = ansible_runner.interface.init_runner
    first = spec_for(project, "probe.yml", inventory="two_hosts.ini", extravars={"who": "one"})

    def init_runner(**kwargs: Any) -> Any:
        runner = original(**kwargs)
        if kwargs["ident"] == first.run_id:
            runner.config.command[-1:-1] = ["--check", "-vvv"]
        return runner

    monkeypatch.setattr(ansible_runner.interface, "init_runner", init_runner)
    result = run_warm(warm, first)
    assert result.outputs == {
        "check_mode": True,
        "verbosity": 3,
        "forks": 5,
        "config_file": result.outputs["config_file"],
        "probe_env": "",
        "leaked": "none",
        "who": "one",
        "hosts": ["host1", "host2"],
    }
    result = run_warm(warm, spec_for(project, "probe.yml", extravars={"who": "two"}))
    assert (result.outputs["check_mode"], result.outputs["verbosity"]) == (False, 0)
    assert (result.outputs["who"], result.outputs["hosts"]) == ("two", ["localhost"])


def test_adjacent_plugins_do_not_leak(
    project: Path, warm: WarmExecutor, local: LocalExecutor
) -> None:
    """Plugin loader paths and caches, sys.modules, the collection loader: each run sees only
    the plugins next to its own playbook."""
    a = run_warm(warm, spec_for(project, "a/play.yml"))
    assert a.outputs == {"tag": "A", "module": "a", "collection": "x and more"}
    # Same filter name, another file: not the module the first run loaded.
    assert run_warm(warm, spec_for(project, "b/play.yml")).outputs == {"tag": "B"}
    for playbook in ("c/play.yml", "c/module.yml"):
        result = run_warm(warm, spec_for(project, playbook))
        assert result.status in ("failed", "error"), result
        assert comparable(result) == comparable(run(local, spec_for(project, playbook)))
    result = run_warm(warm, spec_for(project, "c/play.yml"))
    assert result.hosts["localhost"].ignored == 1  # the filter tag is unknown
    assert "leak.probe.more" in result.failed_tasks[0].message


def test_environment_does_not_leak(project: Path, warm: WarmExecutor) -> None:
    spec = spec_for(project, "probe.yml", envvars={"BRIDGE_WARM_PROBE": "first"})
    assert run_warm(warm, spec).outputs["probe_env"] == "first"
    assert run_warm(warm, spec_for(project, "probe.yml")).outputs["probe_env"] == ""


def test_per_process_state_is_the_run_own(project: Path, warm: WarmExecutor) -> None:
    """What Ansible decides per process at import: redone for each run."""
    specs = [spec_for(project, "warning.yml") for _ in range(2)]
    for spec in specs:
        assert run_warm(warm, spec).succeeded
    events = [job_events(spec) for spec in specs]
    # Play and task UUIDs have a random part drawn at import: each run draws its own.
    plays = [next(e["uuid"] for e in ev if e["event"] == "playbook_on_play_start") for ev in events]
    assert plays[0] != plays[1]
    # Display's once-only warnings: every run warns.
    for spec in specs:
        assert "Could not match supplied host pattern" in (run_dir(spec) / "stdout").read_text()
    # Each run had a local temporary folder of its own, removed when it ended; the server's
    # is still there.
    server = warm._server
    assert server is not None
    local_tmp = Path(server.info["local_tmp"])
    assert local_tmp.is_dir()
    for ev in events:
        pid = ev[0]["pid"]
        assert pid != server.pid
        assert not [
            p for p in local_tmp.parent.iterdir() if re.match(rf"ansible-local-{pid}\D", p.name)
        ]


def test_the_server_follows_a_steady_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server is started for the first run; when later runs keep differing from it in the
    same way, a server for them replaces it."""
    caplog.set_level(logging.INFO, logger="bridge.executors.warm.executor")
    project = copy_project(tmp_path)
    executor = warm_executor(settings_for(tmp_path), WarmSettings(switch_after=2))
    try:
        odd = spec_for(project, "probe.yml", envvars={"ANSIBLE_FORKS": "9"})
        assert run_warm(executor, odd).outputs["forks"] == 9
        first = executor.server_pid
        assert run(executor, spec_for(project, "probe.yml")).outputs["forks"] == 5
        assert executor.counts == {"warm": 1, "local": 1}
        assert run_warm(executor, spec_for(project, "probe.yml")).outputs["forks"] == 5
        assert executor.server_pid not in (None, first)
        assert "2 runs in a row: restarting the warm server" in caplog.text
    finally:
        asyncio.run(executor.close())


def test_a_server_that_prints_at_import_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What importing Ansible prints would be missing from warm runs' output: such a server is
    refused, and the run is a local one."""
    project = copy_project(tmp_path)
    executor = warm_executor(settings_for(tmp_path))
    try:
        result = run(executor, spec_for(project, "probe.yml", envvars={"PYTHONVERBOSE": "1"}))
        assert result.succeeded
        assert executor.counts == {"local": 1}
        assert "importing Ansible printed what runs would not show" in caplog.text
        assert executor.server_pid is None
    finally:
        asyncio.run(executor.close())


def test_check_runs_are_left_to_the_local_executor(project: Path, warm: WarmExecutor) -> None:
    spec = dataclasses.replace(spec_for(project, "probe.yml"), check=True)
    before = warm.counts["local"]
    result = run(warm, spec)
    assert warm.counts["local"] == before + 1
    assert result.outputs["check_mode"] is True
    assert run_warm(warm, spec_for(project, "probe.yml")).outputs["check_mode"] is False


# --- module runs forked by the module zygote -------------------------------------------------


def lines_of(result: RunResult) -> dict[str, str]:
    return dict(line.split("=", 1) for line in result.outputs["where"])


def test_module_runs_are_forked_and_see_what_a_new_process_sees(
    project: Path, warm: WarmExecutor, local: LocalExecutor
) -> None:
    envvars = {"BRIDGE_WARM_PROBE": "probe-value"}
    warm_spec = spec_for(project, "d/modules.yml", envvars=envvars)
    local_spec = spec_for(project, "d/modules.yml", envvars=envvars)
    forked, started = run_warm(warm, warm_spec), run(local, local_spec)
    assert forked.status == started.status == "successful"
    seen, expected = lines_of(forked), lines_of(started)
    # The built-in shell module ran in a child of the zygote (forked from the warm server's
    # interpreter), not in a new Python under /bin/sh as with the local executor.
    assert "warm/server.py" in seen.pop("parent")
    assert "_warm_server.py" not in expected.pop("parent")
    assert seen.pop("marker") == f"ANSIBLE_BRIDGE_RUN_ID={warm_spec.run_id}"
    assert expected.pop("marker") == f"ANSIBLE_BRIDGE_RUN_ID={local_spec.run_id}"
    assert seen == expected
    assert seen["probe"] == "probe-value" and seen["stdin"] == "''"
    # The playbook's own `ping` ran, not the built-in one the zygote has imported.
    assert forked.outputs["shadowed"] == started.outputs["shadowed"] == "shadowed"
    assert forked.outputs["failing_rc"] == started.outputs["failing_rc"] == 1


@pytest.mark.parametrize("which", ["warm", "local"])
def test_a_killed_run_leaves_no_module_payload(
    which: str, project: Path, warm: WarmExecutor, local: LocalExecutor
) -> None:
    """Module payloads carry their arguments: they go to the run's private folder (removed with
    the run), not to ~/.ansible/tmp, where a killed run would leave them."""
    executor: WarmExecutor | LocalExecutor = warm if which == "warm" else local
    marker = uuid.uuid4().hex
    spec = spec_for(project, "d/sleep_marker.yml", extravars={"marker": marker})
    home_tmp = Path.home() / ".ansible" / "tmp"

    def payloads(root: Path) -> list[Path]:
        found = []
        # os.walk skips what other processes remove meanwhile (Path.rglob would raise).
        for folder, _, files in os.walk(root):
            for name in files:
                path = Path(folder) / name
                if name.startswith("AnsiballZ_"):
                    with contextlib.suppress(OSError):
                        if marker in path.read_text(errors="replace"):
                            found.append(path)
        return found

    async def scenario() -> list[Path]:
        task = asyncio.create_task(executor.run(spec, lambda e: None))
        deadline = time.monotonic() + 60
        while not any(marker in cmdline(p) for p in proctree.marked(spec.run_id)):
            assert time.monotonic() < deadline, "the task never started"
            await asyncio.sleep(0.05)
        during = payloads(spec.artifact_dir.parent)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return during

    during = asyncio.run(scenario())
    assert during, "the payload was not in the run's private folder while it ran"
    assert all(f"run-{spec.run_id}-" in str(p) for p in during)
    assert payloads(spec.artifact_dir.parent) == []  # the private folder went with the run
    assert payloads(home_tmp) == []
    assert proctree.marked(spec.run_id) == []
