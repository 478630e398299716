"""The Operator SDK's options and behaviours, without a cluster: its per-kind environment
variables, flags and annotations (bridge.config.sdk), its Running/Successful/Failure conditions
(bridge.controller.status), and requeue_after (bridge.ansible.results,
bridge.controller.reconcile.decide)."""

from __future__ import annotations

import asyncio
import threading
import types
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.ansible.results import requeue_period
from bridge.cli import assembly
from bridge.cli import main as cli
from bridge.config import sdk
from bridge.config.settings import OperatorSettings, RunnerSettings
from bridge.controller.reconcile import Done, decide
from bridge.controller.status import (
    error_patch,
    finished_patch,
    sdk_ansible_result,
    started_patch,
)
from bridge.executors.local import LocalExecutor
from bridge.executors.plumbing import runner_cmdline, runner_options
from bridge.model.annotations import SDK_MAX_RUNNER_ARTIFACTS, SDK_VERBOSITY
from bridge.model.records import FailedTask, HostStats, RunnerEvent, RunResult
from tests.unit.helpers import make_watch, spec_for

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
WATCH = make_watch(group="cache.example.com", version="v1alpha1", kind="Memcached")


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


# --- environment variable names and values ---------------------------------------------------


def test_env_names_are_the_sdks_kind_then_group_upper_case_with_dots_as_underscores() -> None:
    assert sdk.env_names("MAX_CONCURRENT_RECONCILES", "Memcached", "cache.example.com") == (
        "MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM",
    )
    # The SDK keeps a '-' of the group; the name a shell can set comes second.
    assert sdk.env_names("ANSIBLE_VERBOSITY", "App", "my-apps.example.com") == (
        "ANSIBLE_VERBOSITY_APP_MY-APPS_EXAMPLE_COM",
        "ANSIBLE_VERBOSITY_APP_MY_APPS_EXAMPLE_COM",
    )


def test_max_concurrent_reconciles_reads_the_kinds_variable_then_the_deprecated_one() -> None:
    name = "MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM"
    old = "WORKER_MEMCACHED_CACHE_EXAMPLE_COM"
    assert sdk.max_concurrent_reconciles({}, "Memcached", "cache.example.com") is None
    assert sdk.max_concurrent_reconciles({name: "3"}, "Memcached", "cache.example.com") == 3
    assert sdk.max_concurrent_reconciles({old: "2"}, "Memcached", "cache.example.com") == 2
    both = {name: "4", old: "2"}
    assert sdk.max_concurrent_reconciles(both, "Memcached", "cache.example.com") == 4
    other = {"MAX_CONCURRENT_RECONCILES_OTHER_CACHE_EXAMPLE_COM": "9"}
    assert sdk.max_concurrent_reconciles(other, "Memcached", "cache.example.com") is None


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
def test_a_bad_max_concurrent_reconciles_is_an_error_naming_the_variable(value: str) -> None:
    name = "MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM"
    with pytest.raises(sdk.OptionError, match=name):
        sdk.max_concurrent_reconciles({name: value}, "Memcached", "cache.example.com")


def test_ansible_verbosity_per_kind_is_0_to_7() -> None:
    name = "ANSIBLE_VERBOSITY_MEMCACHED_CACHE_EXAMPLE_COM"
    assert sdk.ansible_verbosity({}, "Memcached", "cache.example.com") is None
    assert sdk.ansible_verbosity({name: "0"}, "Memcached", "cache.example.com") == 0
    assert sdk.ansible_verbosity({name: " 7 "}, "Memcached", "cache.example.com") == 7
    for bad in ("8", "-1", "vvv"):
        with pytest.raises(sdk.OptionError, match=name):
            sdk.ansible_verbosity({name: bad}, "Memcached", "cache.example.com")


def test_watch_namespace_is_comma_separated_and_empty_means_all() -> None:
    assert sdk.watch_namespaces("") == ()
    assert sdk.watch_namespaces(" , ") == ()
    assert sdk.watch_namespaces("ns1") == ("ns1",)
    assert sdk.watch_namespaces("ns1, ns2,,ns1") == ("ns1", "ns2")


def test_ansible_args_are_shell_split_and_requoted() -> None:
    assert sdk.ansible_args("--forks 10  --diff") == "--forks 10 --diff"
    assert sdk.ansible_args("-e 'a=b c'") == "-e 'a=b c'"
    with pytest.raises(sdk.OptionError, match="--ansible-args"):
        sdk.ansible_args("-e 'unclosed")


# --- annotations -------------------------------------------------------------------------------


def test_annotations_override_verbosity_and_max_artifacts() -> None:
    assert sdk.run_overrides(None) == sdk.RunOverrides()
    assert sdk.run_overrides({"other": "x"}) == sdk.RunOverrides()
    found = sdk.run_overrides({SDK_VERBOSITY: "4", SDK_MAX_RUNNER_ARTIFACTS: "3"})
    assert found == sdk.RunOverrides(verbosity=4, max_artifacts=3)


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (SDK_VERBOSITY, "8"),
        (SDK_VERBOSITY, "loud"),
        (SDK_MAX_RUNNER_ARTIFACTS, "-2"),
        (SDK_MAX_RUNNER_ARTIFACTS, "many"),
    ],
)
def test_a_bad_annotation_is_named_and_the_default_applies(annotation: str, value: str) -> None:
    found = sdk.run_overrides({annotation: value})
    assert (found.verbosity, found.max_artifacts) == (None, None)
    (problem,) = found.problems
    assert annotation in problem and repr(value) in problem


# --- flags -------------------------------------------------------------------------------------


def test_configure_applies_reconcile_period_only_where_the_watch_has_none() -> None:
    fixed = make_watch(WATCH, kind="Fixed", reconcile_period=30.0)
    never = make_watch(WATCH, kind="Never", reconcile_period=0.0)
    watches, runner = sdk.configure(
        [WATCH, fixed, never], RunnerSettings(), {}, reconcile_period="1h2m3s"
    )
    assert [w.policy.reconcile_period for w in watches] == [3723.0, 30.0, 0.0]
    assert runner == RunnerSettings()
    with pytest.raises(sdk.OptionError, match="--reconcile-period"):
        sdk.configure([WATCH], RunnerSettings(), {}, reconcile_period="soon")


def test_configure_reads_per_kind_variables_and_flags() -> None:
    environ = {
        "MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM": "2",
        "ANSIBLE_VERBOSITY_MEMCACHED_CACHE_EXAMPLE_COM": "3",
    }
    other = make_watch(WATCH, kind="Other")
    _, runner = sdk.configure(
        [WATCH, other],
        RunnerSettings(),
        environ,
        ansible_args_flag="--forks  5",
        ansible_verbosity_flag=1,
    )
    assert runner.watch_max_runs == {WATCH.key: 2}
    assert runner.watch_verbosity == {WATCH.key: 3}
    assert (runner.ansible_args, runner.ansible_verbosity) == ("--forks 5", 1)
    with pytest.raises(sdk.OptionError, match="--ansible-verbosity"):
        sdk.configure([WATCH], RunnerSettings(), {}, ansible_verbosity_flag=9)


def operator_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *argv: str, **env: str
) -> OperatorSettings | int:
    playbook = tmp_path / "p.yml"
    playbook.write_text("- hosts: localhost\n  tasks: []\n")
    watches = tmp_path / "watches.yaml"
    watches.write_text(
        yaml.safe_dump(
            [{"group": WATCH.group, "version": "v1", "kind": "Memcached", "playbook": "p.yml"}]
        )
    )
    for name in ("WATCH_NAMESPACE", *env):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = cli.build_parser().parse_args(["run", "--watches", str(watches), *argv])
    return assembly.operator_settings(args, None)


def test_cli_takes_the_sdks_flags_and_watch_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = operator_settings(
        tmp_path,
        monkeypatch,
        "--max-concurrent-reconciles",
        "3",
        "--reconcile-period",
        "90s",
        "--ansible-args",
        "--forks 2",
        WATCH_NAMESPACE="team-a,team-b",
        MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM="1",
    )
    assert isinstance(settings, OperatorSettings)
    assert settings.runner.max_concurrent_runs == 3
    assert settings.watches[0].policy.reconcile_period == 90.0
    assert settings.runner.ansible_args == "--forks 2"
    assert settings.runner.watch_max_runs == {settings.watches[0].key: 1}
    assert settings.scope.namespaces == ("team-a", "team-b")
    # --namespace and --all-namespaces win over WATCH_NAMESPACE.
    flagged = operator_settings(tmp_path, monkeypatch, "-n", "x", WATCH_NAMESPACE="team-a")
    assert isinstance(flagged, OperatorSettings) and flagged.scope.namespaces == ("x",)
    everything = operator_settings(tmp_path, monkeypatch, "-A", WATCH_NAMESPACE="team-a")
    assert isinstance(everything, OperatorSettings) and everything.scope.clusterwide
    empty = operator_settings(tmp_path, monkeypatch, WATCH_NAMESPACE="")
    assert isinstance(empty, OperatorSettings) and empty.scope.clusterwide


def test_cli_refuses_a_bad_sdk_variable_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "ANSIBLE_VERBOSITY_MEMCACHED_CACHE_EXAMPLE_COM"
    assert operator_settings(tmp_path, monkeypatch, **{name: "11"}) == 2
    assert name in capsys.readouterr().err


# --- command line of a run ---------------------------------------------------------------------


def test_ansible_args_follow_check_mode_in_the_cmdline(tmp_path: Path) -> None:
    assert runner_cmdline(spec_for(tmp_path), "--forks 2") == "--forks 2"
    assert runner_cmdline(spec_for(tmp_path, check=True), "--forks 2") == (
        "--check --diff --forks 2"
    )
    assert runner_cmdline(spec_for(tmp_path), "") is None
    settings = RunnerSettings(ansible_args="-e 'x=1 2'")
    options = runner_options(
        settings,
        spec_for(tmp_path),
        tmp_path,
        tmp_path,
        tmp_path / "p.yml",
        None,
        threading.Event(),
    )
    assert options["cmdline"] == "-e 'x=1 2'"
    plain = runner_options(
        RunnerSettings(),
        spec_for(tmp_path),
        tmp_path,
        tmp_path,
        tmp_path / "p.yml",
        None,
        threading.Event(),
    )
    assert "cmdline" not in plain


def test_the_local_executor_gives_ansible_runner_the_ansible_args(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ansible_runner.interface

    calls: list[dict[str, Any]] = []

    class Finished:
        status, rc = "successful", 0
        config = types.SimpleNamespace(command=["ansible-playbook"])

        def run(self) -> None:
            pass

    def fake_init(**kwargs: Any) -> Finished:
        calls.append(kwargs)
        return Finished()

    # The local executor prepares the run with init_runner (to put the run's supervisor first).
    monkeypatch.setattr(ansible_runner.interface, "init_runner", fake_init)
    executor = LocalExecutor(RunnerSettings(max_concurrent_runs=1, ansible_args="--forks 3"))
    try:
        executor._run_sync(spec_for(tmp_path, check=True), lambda event: True, threading.Event())
    finally:
        asyncio.run(executor.close())
    (kwargs,) = calls
    assert kwargs["cmdline"] == "--check --diff --forks 3"


# --- requeue_after -----------------------------------------------------------------------------


def requeue_event(
    period: Any, action: str = "operator_sdk.util.requeue_after", event: str = "runner_on_ok"
) -> RunnerEvent:
    return RunnerEvent(
        event=event,
        event_data={"task_action": action, "host": "localhost", "res": {"period": period}},
    )


@pytest.mark.parametrize(
    ("period", "seconds"), [("2s", 2.0), ("1h2m3s", 3723.0), ("500ms", 0.5), ("0", 0.0)]
)
def test_requeue_period_reads_the_modules_go_duration(period: str, seconds: float) -> None:
    assert requeue_period(requeue_event(period)) == seconds


def test_requeue_period_takes_only_a_successful_requeue_after_task() -> None:
    assert requeue_period(requeue_event("5s", action="requeue_after")) == 5.0
    resolved = RunnerEvent(
        event="runner_on_ok",
        event_data={
            "task_action": "x",
            "resolved_action": "operator_sdk.util.requeue_after",
            "res": {"period": "5s"},
        },
    )
    assert requeue_period(resolved) == 5.0
    assert requeue_period(requeue_event("5s", event="runner_on_failed")) is None
    assert requeue_period(requeue_event("5s", action="ansible.builtin.debug")) is None
    assert requeue_period(requeue_event("soon")) is None
    assert requeue_period(requeue_event(5)) is None
    assert requeue_period(RunnerEvent(event="runner_on_ok")) is None


def body(status: dict[str, Any] | None = None, **annotations: str) -> dict[str, Any]:
    return {"metadata": {"generation": 1, "annotations": annotations}, "status": status or {}}


def test_requeue_after_replaces_the_period_for_the_next_run() -> None:
    hourly = make_watch(WATCH, reconcile_period=3600.0)
    done = Done(generation=1, finished_at=NOW, succeeded=True, requeue_after=2.0)
    assert decide(body(), hourly, done=done, now=at(1)).wake_at == at(2)
    action = decide(body(), hourly, done=done, now=at(2))
    assert (action.kind, action.trigger) == ("run", "periodic")
    # Without it, the watch's period.
    plain = replace(done, requeue_after=None)
    assert decide(body(), hourly, done=plain, now=at(2)).wake_at == at(3600)
    # 0: no timed run at all (changes still run).
    never = replace(done, requeue_after=0.0)
    assert decide(body(), hourly, done=never, now=at(7200)) == decide(
        body(), make_watch(WATCH, reconcile_period=None), done=plain, now=at(7200)
    )


def test_requeue_after_is_read_back_from_the_last_run_after_a_restart() -> None:
    status = {
        "observedGeneration": 1,
        "lastRun": {"generation": 1, "finishedAt": "2026-01-01T12:00:00Z", "requeueAfter": 30},
    }
    assert decide(body(status), WATCH, done=None, now=at(10)).wake_at == at(30)
    assert decide(body(status), WATCH, done=None, now=at(30)).kind == "run"


# --- the SDK's conditions ----------------------------------------------------------------------


def merge(status: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(status)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def sdk_conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c["type"]: c
        for c in status.get("conditions") or []
        if c["type"] in ("Running", "Successful", "Failure")
    }


OK = RunResult(
    "r1",
    "successful",
    0,
    hosts={"localhost": HostStats(ok=4, changed=2, skipped=1)},
)
FAILED = RunResult(
    "r2",
    "failed",
    2,
    hosts={"localhost": HostStats(ok=1, failed=1)},
    failed_tasks=(
        FailedTask("localhost", "play", "Install", "no such package"),
        FailedTask("localhost", "play", "Other", "second failure"),
    ),
)


def run(status: dict[str, Any], result: RunResult, start: int, **kw: Any) -> dict[str, Any]:
    status = merge(status, started_patch(status, result.run_id, 1, "update", at(start), **kw))
    return merge(
        status, finished_patch(status, result, 1, "update", at(start), at(start + 5), **kw)
    )


def test_a_started_run_sets_running_as_the_sdk() -> None:
    status = merge({}, started_patch({}, "r1", 1, "create", NOW))
    assert sdk_conditions(status) == {
        "Running": {
            "type": "Running",
            "status": "True",
            "reason": "Running",
            "message": "Running reconciliation",
            "lastTransitionTime": "2026-01-01T12:00:00Z",
        }
    }


def test_a_successful_run_sets_running_successful_and_failure_with_ansible_result() -> None:
    status = run({}, OK, 0)
    found = sdk_conditions(status)
    assert found["Running"] == {
        "type": "Running",
        "status": "True",
        "reason": "Successful",
        "message": "Awaiting next reconciliation",
        "lastTransitionTime": "2026-01-01T12:00:00Z",  # True since the run started
        "ansibleResult": {
            "ok": 4,
            "changed": 2,
            "skipped": 1,
            "failures": 0,
            "completion": "2026-01-01T12:00:05+00:00",
        },
    }
    assert found["Successful"] == {
        "type": "Successful",
        "status": "True",
        "reason": "Successful",
        "message": "Last reconciliation succeeded",
        "lastTransitionTime": "2026-01-01T12:00:05Z",
    }
    assert found["Failure"] == {
        "type": "Failure",
        "status": "False",
        "reason": "",
        "message": "",
        "lastTransitionTime": "2026-01-01T12:00:05Z",
    }


def test_the_next_start_lowers_successful_and_a_failure_sets_failure_with_the_messages() -> None:
    status = run({}, OK, 0)
    started = merge(status, started_patch(status, "r2", 1, "update", at(100)))
    successful = sdk_conditions(started)["Successful"]
    assert (successful["status"], successful["reason"]) == ("False", "Successful")
    assert successful["lastTransitionTime"] == "2026-01-01T12:01:40Z"
    status = merge(started, finished_patch(started, FAILED, 1, "update", at(100), at(105)))
    found = sdk_conditions(status)
    assert (found["Running"]["status"], found["Running"]["reason"]) == ("False", "Running")
    assert found["Failure"]["status"] == "True"
    assert found["Failure"]["reason"] == "Failed"
    assert found["Failure"]["message"] == "no such package\nsecond failure"
    assert found["Failure"]["ansibleResult"]["failures"] == 1
    assert found["Failure"]["ansibleResult"]["ok"] == 1
    assert (found["Successful"]["status"], found["Successful"]["message"]) == ("False", "")


def test_a_timeout_is_a_failure_and_a_canceled_run_leaves_the_sdk_conditions() -> None:
    status = run({}, RunResult("r3", "timeout", None, message="the run exceeded its timeout"), 0)
    failure = sdk_conditions(status)["Failure"]
    assert (failure["status"], failure["message"]) == ("True", "the run exceeded its timeout")
    started = merge({}, started_patch({}, "r4", 1, "update", NOW))
    canceled = merge(
        started, finished_patch(started, RunResult("r4", "canceled"), 1, "update", NOW, at(1))
    )
    assert sdk_conditions(canceled) == sdk_conditions(started)


def test_a_permanent_error_is_a_failure_as_the_sdks_mark_error() -> None:
    status = run({}, OK, 0)
    status = merge(status, error_patch(status, 2, "PlaybookNotFound", "no playbook", at(50)))
    found = sdk_conditions(status)
    assert (found["Failure"]["status"], found["Failure"]["reason"]) == ("True", "Failed")
    assert found["Failure"]["message"] == "no playbook"
    assert found["Running"]["status"] == "False"
    assert found["Successful"]["status"] == "False"


def test_without_manage_status_no_sdk_condition_is_written() -> None:
    assert sdk_conditions(run({}, OK, 0, manage_status=False)) == {}


def test_ansible_result_sums_hosts_and_keeps_the_sdks_completion_format() -> None:
    result = RunResult(
        "r", "successful", 0, hosts={"a": HostStats(ok=1, changed=1), "b": HostStats(ok=2)}
    )
    found = sdk_ansible_result(result, datetime(2026, 1, 1, 12, 0, 0, 123400, tzinfo=UTC))
    assert found == {
        "ok": 3,
        "changed": 1,
        "skipped": 0,
        "failures": 0,
        "completion": "2026-01-01T12:00:00.1234+00:00",
    }


def test_the_sdks_watches_file_flag_names_the_watches_file(tmp_path: Path) -> None:
    watches = tmp_path / "w.yaml"
    args = cli.build_parser().parse_args(["run", "--watches-file", str(watches)])
    assert args.watches == str(watches)
