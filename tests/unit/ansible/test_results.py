"""ResultBuilder, failure messages and summaries, on events recorded from real ansible-runner runs.

The fixtures in data/events/ were made by data/events/regenerate.py (real playbooks run by
ansible-runner); no Ansible runs here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, cast

import pytest

from bridge.ansible.results import (
    MESSAGE_LIMIT,
    NO_LOG_MESSAGE,
    ResultBuilder,
    describe,
    describe_drift,
    failure_message,
    summarize,
)
from bridge.model.records import (
    ChangedTask,
    FailedTask,
    HostStats,
    RunnerEvent,
    RunResult,
    RunStatus,
)

EVENTS = Path(__file__).parent.parent / "data" / "events"


def load(name: str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((EVENTS / f"{name}.json").read_text()))


def build(
    name: str, *, drop: tuple[str, ...] = (), status: RunStatus | None = None, message: str = ""
) -> RunResult:
    """Feed a fixture's events (without those of the ``drop`` types) and build the result."""
    data = load(name)
    builder = ResultBuilder()
    for event in data["events"]:
        if event["event"] not in drop:
            builder.feed(cast(RunnerEvent, event))
    return builder.result("run-1", status or data["status"], data["rc"], message)


def events_of(name: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in load(name)["events"] if e["event"] == kind]


def test_fixtures_are_real_runner_output() -> None:
    names = sorted(p.stem for p in EVENTS.glob("*.json"))
    assert names == sorted(
        [
            "success",
            "failed",
            "ignore_errors",
            "rescued",
            "rescued_then_failed",
            "no_log",
            "loop",
            "loop_no_log",
            "multihost",
            "timeout",
            "syntax_error",
        ]
    )
    for name in names:
        data = load(name)
        assert data["status"] in ("successful", "failed", "timeout")
        assert all("event" in e and "counter" in e for e in data["events"])


# --- success, counts and outputs ------------------------------------------------------------


def test_success_counts_every_host_from_stats() -> None:
    result = build("success")
    assert result.status == "successful"
    assert result.succeeded
    assert result.rc == 0
    assert dict(result.hosts) == {
        "host1": HostStats(ok=5, changed=2, skipped=1),
        "host2": HostStats(ok=4, changed=1, skipped=1),
    }
    assert result.changed == 3
    assert result.failed_tasks == ()
    assert result.message == ""


def test_success_outputs_are_set_stats_run_data_only() -> None:
    result = build("success")
    # per_host set_stats data is not in artifact_data; only the _run (global) stats are.
    assert result.outputs == {
        "url": "http://app.example.invalid",
        "replicas": 3,
        "nested": {"a": [1, 2]},
    }


def test_outputs_are_a_copy_of_the_event_data() -> None:
    data = load("success")
    builder = ResultBuilder()
    for event in data["events"]:
        builder.feed(event)
    result = builder.result("r", "successful", 0)
    stats = events_of("success", "playbook_on_stats")[0]
    assert result.outputs == stats["event_data"]["artifact_data"]
    assert result.outputs is not stats["event_data"]["artifact_data"]


def test_summarize_success() -> None:
    assert summarize(build("success")) == "succeeded: 3 changed on 2 hosts"
    assert summarize(build("ignore_errors")) == "succeeded: 1 changed on 1 host"


def test_no_outputs_without_set_stats() -> None:
    assert build("failed").outputs == {}


# --- failures -------------------------------------------------------------------------------


def test_failed_task_names_host_play_task_and_command_output() -> None:
    result = build("failed")
    assert result.status == "failed"
    assert result.failed_tasks == (
        FailedTask(
            host="localhost",
            play="Install things",
            task="Install package",
            message="non-zero return code: No package matching nginx-x is available",
        ),
    )
    assert result.hosts["localhost"] == HostStats(ok=1, changed=1, failed=1)
    assert summarize(result) == (
        "failed: task 'Install package' on localhost: "
        "non-zero return code: No package matching nginx-x is available"
    )


def test_ignore_errors_is_not_a_failed_task() -> None:
    assert events_of("ignore_errors", "runner_on_failed")  # Ansible does send the failure
    result = build("ignore_errors")
    assert result.failed_tasks == ()
    assert result.hosts["localhost"] == HostStats(ok=2, changed=1, ignored=1)


def test_rescued_failure_is_not_a_failed_task() -> None:
    # The premise: a rescued failure arrives as a plain runner_on_failed, with no mark.
    (failed,) = events_of("rescued", "runner_on_failed")
    assert not failed["event_data"]["ignore_errors"]
    result = build("rescued")
    assert result.status == "successful"
    assert result.failed_tasks == ()
    assert result.hosts["localhost"] == HostStats(ok=1, changed=1, rescued=1)


def test_only_the_unrescued_failure_is_kept() -> None:
    assert len(events_of("rescued_then_failed", "runner_on_failed")) == 2
    result = build("rescued_then_failed")
    assert [(t.task, t.message) for t in result.failed_tasks] == [
        ("Migrate database", "migration 42 failed")
    ]
    assert result.hosts["localhost"] == HostStats(ok=1, failed=1, rescued=1)


def test_loop_message_is_the_failed_items() -> None:
    (failed,) = events_of("loop", "runner_on_failed")
    assert failed["event_data"]["res"]["msg"] == "One or more items failed"
    (task,) = build("loop").failed_tasks
    assert task.task == "Validate item"
    assert task.message == "item b is not allowed"


def test_unreachable_and_failed_hosts() -> None:
    result = build("multihost")
    assert dict(result.hosts) == {
        "host1": HostStats(ok=2, changed=1, skipped=1),
        "host2": HostStats(ok=2, changed=1, failed=1),
        "host3": HostStats(unreachable=1),
    }
    assert [(t.host, t.task) for t in result.failed_tasks] == [
        ("host3", "Ping"),
        ("host2", "Verify"),
    ]
    unreachable, failed = result.failed_tasks
    assert "Failed to connect to the host via ssh" in unreachable.message
    assert "Connection refused" in unreachable.message
    assert failed == FailedTask("host2", "Roll out", "Verify", "verification failed on host2")
    assert summarize(result).startswith("failed: task 'Ping' on host3: ")
    assert summarize(result).endswith(" (+1 more)")


# --- no_log ---------------------------------------------------------------------------------


def test_no_log_failure_hides_everything() -> None:
    result = build("no_log")
    (task,) = result.failed_tasks
    assert task.message == NO_LOG_MESSAGE
    assert "s3cr3t" not in repr(result)
    assert "bad password" not in repr(result)


def test_no_log_loop_hides_the_item_even_though_stdout_leaks_it() -> None:
    # ansible-core 2.19 prints the failed item's message in the event's stdout despite no_log;
    # the builder never reads a task event's stdout.
    assert "s3cr3t-b is not allowed" in (EVENTS / "loop_no_log.json").read_text()
    result = build("loop_no_log")
    (task,) = result.failed_tasks
    assert task.message == NO_LOG_MESSAGE
    assert "s3cr3t" not in repr(result) + summarize(result)


@pytest.mark.parametrize(
    "res",
    [
        {"censored": "hidden", "msg": "s3cr3t"},
        {"_ansible_no_log": True, "msg": "s3cr3t", "stderr": "s3cr3t"},
        {"_ansible_no_log": "True", "msg": "s3cr3t"},
        {"msg": "One or more items failed", "results": [{"censored": "x"}, {"censored": "y"}]},
        {"results": [{"failed": True, "_ansible_no_log": True, "msg": "s3cr3t"}]},
    ],
)
def test_no_log_result_shapes(res: dict[str, Any]) -> None:
    message = failure_message(res)
    assert "s3cr3t" not in message
    assert message in (NO_LOG_MESSAGE, "One or more items failed")


def test_no_log_false_is_not_censored() -> None:
    assert failure_message({"_ansible_no_log": False, "msg": "visible"}) == "visible"


# --- failure messages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("res", "message"),
    [
        ({"msg": "boom", "stderr": "ignored"}, "boom"),
        (
            {"msg": "non-zero return code", "rc": 1, "stderr": "oops\n"},
            "non-zero return code: oops",
        ),
        ({"msg": "non-zero return code", "rc": 2, "stdout": "out"}, "non-zero return code: out"),
        ({"msg": "failed: oops", "rc": 1, "stderr": "oops"}, "failed: oops"),
        ({"msg": "m", "rc": 0, "stderr": "warning"}, "m"),
        ({"stderr": "err", "stdout": "out"}, "err"),
        ({"stdout": "out"}, "out"),
        (
            {"failed": True, "reason": "Could not find or access 'x.yml'"},
            "Could not find or access 'x.yml'",
        ),
        ({"msg": ["a", "b"]}, "['a', 'b']"),
        ({"msg": "line one\n  line two\n"}, "line one line two"),
        ({"results": [{"msg": "first"}, {"msg": "second"}]}, "first"),
        (
            {"msg": "One or more items failed", "results": [{"failed": False, "msg": "fine"}]},
            "One or more items failed",
        ),
        (
            {
                "msg": "One or more items failed",
                "results": [
                    {"failed": False, "msg": "fine"},
                    {"failed": True, "msg": "x", "rc": 3, "stderr": "bad item"},
                    {"failed": True, "msg": "later"},
                ],
            },
            "x: bad item",
        ),
        ({"results": [{"censored": "c"}, {"msg": "visible item"}]}, "visible item"),
        ({}, ""),
        (None, ""),
        ("not a mapping", ""),
    ],
)
def test_failure_message(res: Any, message: str) -> None:
    assert failure_message(res) == message


def test_failure_message_is_truncated() -> None:
    message = failure_message({"msg": "x" * 2000})
    assert len(message) == MESSAGE_LIMIT
    assert message.endswith("…")
    assert failure_message({"msg": "y" * MESSAGE_LIMIT}) == "y" * MESSAGE_LIMIT


# --- runs without a stats event (killed) ----------------------------------------------------


def test_timeout_counts_from_runner_events() -> None:
    assert not events_of("timeout", "playbook_on_stats")
    result = build("timeout")
    assert result.status == "timeout"
    assert result.rc == 254
    # Quick change ok+changed, Optional step ok+ignored, Skipped step, Wait forever (started).
    assert dict(result.hosts) == {"localhost": HostStats(ok=2, changed=1, skipped=1, ignored=1)}
    assert result.failed_tasks == ()
    assert result.outputs == {}
    assert summarize(result) == "timed out: the run exceeded its time limit"
    with_message = build("timeout", message="stopped after 8 seconds")
    assert summarize(with_message) == "timed out: stopped after 8 seconds"


def test_fallback_matches_stats_when_nothing_is_rescued() -> None:
    for name in ("success", "failed", "ignore_errors", "loop", "multihost"):
        assert build(name, drop=("playbook_on_stats",)).hosts == build(name).hosts, name
        assert build(name, drop=("playbook_on_stats",)).failed_tasks == build(name).failed_tasks


def test_fallback_cannot_tell_rescued_failures() -> None:
    # Documented limitation: without stats every failure counts (better shown than hidden).
    result = build("rescued", drop=("playbook_on_stats",), status="canceled")
    assert [t.task for t in result.failed_tasks] == ["Try the fast way"]
    assert result.hosts["localhost"] == HostStats(ok=1, changed=1, failed=1)


def test_fallback_no_events_at_all() -> None:
    result = ResultBuilder().result("r", "error", None, "the runner could not start")
    assert result.hosts == {}
    assert result.failed_tasks == ()
    assert summarize(result) == "error: the runner could not start"


# --- playbook errors before any task ---------------------------------------------------------


def test_error_line_when_no_task_failed() -> None:
    result = build("syntax_error")
    assert result.status == "failed"
    assert result.rc == 4
    assert result.hosts == {}
    assert result.message.startswith("couldn't resolve module/action 'no.such.module'.")
    assert summarize(result) == f"failed: {result.message}"


def test_given_message_is_followed_by_the_error_text() -> None:
    message = build("syntax_error", message="playbook is broken").message
    assert message.startswith("playbook is broken: couldn't resolve module/action")


def test_error_text_keeps_the_origin_and_leaves_out_warnings_and_the_excerpt() -> None:
    message = build("syntax_error").message
    assert "Origin: <private_data_dir>/project/playbook.yml:6:7" in message
    assert "WARNING" not in message and "column" not in message


def test_error_text_without_colour_codes() -> None:
    builder = ResultBuilder()
    red = "\x1b[0;31m[ERROR]: the role 'nope' was not found in /x\x1b[0m"
    builder.feed({"event": "verbose", "stdout": red})
    builder.feed({"event": "verbose", "stdout": "\x1b[0;31mOrigin: /p.yml:4:7\x1b[0m"})
    builder.feed({"event": "verbose", "stdout": "\x1b[0;31m\x1b[0m"})
    builder.feed({"event": "verbose", "stdout": "\x1b[0;31m4     - nope\x1b[0m"})
    result = builder.result("r", "error", 1, "ansible-playbook exited with 1")
    assert result.message == (
        "ansible-playbook exited with 1: the role 'nope' was not found in /x Origin: /p.yml:4:7"
    )


def test_error_text_is_bounded() -> None:
    builder = ResultBuilder()
    for n in range(100):
        builder.feed({"event": "verbose", "stdout": f"[ERROR]: problem {n} " + "x" * 300})
    message = builder.result("r", "failed", 4).message
    assert len(message) <= MESSAGE_LIMIT
    assert message.startswith("problem 0 ")


def test_error_text_not_used_for_a_timeout() -> None:
    builder = ResultBuilder()
    builder.feed({"event": "verbose", "stdout": "[ERROR]: interrupted"})
    assert builder.result("r", "timeout", None, "too long").message == "too long"


def test_error_line_not_used_when_a_task_says_why() -> None:
    builder = ResultBuilder()
    builder.feed({"event": "verbose", "stdout": "[ERROR]: something else"})
    for event in load("failed")["events"]:
        builder.feed(event)
    assert builder.result("r", "failed", 2).message == ""


def test_legacy_error_prefix() -> None:
    builder = ResultBuilder()
    builder.feed({"event": "error", "stdout": "ERROR! the playbook: x.yml could not be found"})
    assert builder.result("r", "failed", 1).message == "the playbook: x.yml could not be found"


# --- the last-N rule on synthetic streams ---------------------------------------------------


def _failed(host: str, task: str, *, unreachable: bool = False, **extra: Any) -> RunnerEvent:
    kind = "runner_on_unreachable" if unreachable else "runner_on_failed"
    data = {"host": host, "play": "p", "task": task, "res": {"msg": task}, **extra}
    return {"event": kind, "event_data": data}


def _stats(**per_key: dict[str, int]) -> RunnerEvent:
    data: dict[str, Any] = {
        k: {}
        for k in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed")
    }
    data.update(per_key)
    data["artifact_data"] = {}
    return {"event": "playbook_on_stats", "event_data": data}


def test_ignore_unreachable_then_real_unreachable() -> None:
    builder = ResultBuilder()
    builder.feed(_failed("h", "first", unreachable=True))  # ignore_unreachable: ok + ignored
    builder.feed(_failed("h", "second", unreachable=True))
    builder.feed(_stats(dark={"h": 1}, ok={"h": 1}, ignored={"h": 1}))
    assert [t.task for t in builder.result("r", "failed", 4).failed_tasks] == ["second"]


def test_failures_are_counted_per_host_and_kind() -> None:
    builder = ResultBuilder()
    builder.feed(_failed("a", "a-rescued"))
    builder.feed(_failed("b", "b-fails"))
    builder.feed(_failed("a", "a-fails"))
    builder.feed(_failed("a", "a-handler-fails"))  # force_handlers: a second real failure
    builder.feed(_failed("c", "c-rescued"))
    builder.feed(_failed("c", "c-unreachable", unreachable=True))
    builder.feed(_failed("d", "d-ignored", ignore_errors=True))
    builder.feed(
        _stats(
            failures={"a": 2, "b": 1},
            dark={"c": 1},
            rescued={"a": 1, "c": 1},
            ignored={"d": 1},
        )
    )
    result = builder.result("r", "failed", 2)
    assert [t.task for t in result.failed_tasks] == [
        "b-fails",
        "a-fails",
        "a-handler-fails",
        "c-unreachable",
    ]
    assert result.hosts["a"] == HostStats(failed=2, rescued=1)
    assert result.hosts["d"] == HostStats(ignored=1)


def test_stats_counting_more_failures_than_events_keeps_them_all() -> None:
    builder = ResultBuilder()
    builder.feed(_failed("h", "only"))
    builder.feed(_stats(failures={"h": 3}))
    assert [t.task for t in builder.result("r", "failed", 2).failed_tasks] == ["only"]


def test_hosts_only_in_stats_are_listed() -> None:
    builder = ResultBuilder()
    builder.feed(_stats(processed={"quiet": 1}, ok={"busy": 2}))
    assert dict(builder.result("r", "successful", 0).hosts) == {
        "quiet": HostStats(),
        "busy": HostStats(ok=2),
    }


def test_odd_events_are_ignored() -> None:
    builder = ResultBuilder()
    builder.feed({})
    builder.feed({"event": "runner_on_ok"})
    builder.feed({"event": "runner_on_ok", "event_data": {"host": ""}})
    builder.feed(cast(RunnerEvent, {"event": "runner_on_failed", "event_data": None}))
    builder.feed({"event": "playbook_on_task_start", "event_data": {"task": "x"}})
    builder.feed({"event": "verbose", "stdout": "just output"})
    result = builder.result("r", "successful", 0)
    assert result.hosts == {}
    assert result.failed_tasks == ()
    assert result.message == ""


def test_stats_with_odd_values() -> None:
    builder = ResultBuilder()
    builder.feed(_stats(ok=cast(dict[str, int], {"h": "3"}), changed={"h": True}))
    assert builder.result("r", "successful", 0).hosts["h"] == HostStats()


def test_feeding_does_not_mutate_events_and_result_can_be_repeated() -> None:
    data = load("multihost")
    before = copy.deepcopy(data)
    builder = ResultBuilder()
    for event in data["events"]:
        builder.feed(event)
    first = builder.result("r", "failed", 4)
    assert builder.result("r", "failed", 4) == first
    assert data == before


# --- summaries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "line"),
    [
        (RunResult("r", "successful"), "succeeded: 0 changed on 0 hosts"),
        (
            RunResult("r", "successful", 0, {"h": HostStats(changed=1)}),
            "succeeded: 1 changed on 1 host",
        ),
        (RunResult("r", "failed", 2), "failed: ansible-playbook exited with rc 2"),
        (RunResult("r", "failed"), "failed"),
        (RunResult("r", "failed", 1, message="bad playbook"), "failed: bad playbook"),
        (RunResult("r", "canceled"), "canceled: the run was canceled"),
        (RunResult("r", "canceled", message="resource deleted"), "canceled: resource deleted"),
        (RunResult("r", "timeout"), "timed out: the run exceeded its time limit"),
        (RunResult("r", "error"), "error: the runner could not run the playbook"),
        (
            RunResult("r", "canceled", failed_tasks=(FailedTask("h", "p", "t", "m"),)),
            "canceled: task 't' on h: m",
        ),
        (
            RunResult(
                "r",
                "failed",
                2,
                failed_tasks=(FailedTask("h", "p", "t", "m"),),
                message="ignored when a task says why",
            ),
            "failed: task 't' on h: m",
        ),
    ],
)
def test_summarize(result: RunResult, line: str) -> None:
    assert summarize(result) == line
    assert describe(result) == line.partition(": ")[2]


# --- changed tasks (what a drift check reports) ----------------------------------------------

CENSORED = {"censored": "the output has been hidden due to the fact that 'no_log: true' ..."}


def _ok(host: str, task: str, res: dict[str, Any]) -> RunnerEvent:
    return {
        "event": "runner_on_ok",
        "event_data": {"host": host, "play": "p", "task": task, "res": res},
    }


def feed_all(*events: RunnerEvent) -> RunResult:
    builder = ResultBuilder()
    for event in events:
        builder.feed(event)
    return builder.result("run-1", "successful", 0)


def per_host(tasks: tuple[ChangedTask, ...]) -> dict[str, list[tuple[str, str]]]:
    """Changed tasks grouped by host, in the order each host ran them: two hosts run in
    parallel, so how their events interleave differs from one recording to the next."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for t in tasks:
        grouped.setdefault(t.host, []).append((t.play, t.task))
    return grouped


def test_changed_tasks_are_the_ok_results_that_changed_in_order() -> None:
    result = build("success")
    assert per_host(result.changed_tasks) == {
        "host1": [("Configure the app", "Write config"), ("Configure the app", "Restart service")],
        "host2": [("Configure the app", "Write config")],
    }
    assert result.changed == len(result.changed_tasks)
    counts = {h: sum(t.host == h for t in result.changed_tasks) for h in result.hosts}
    assert counts == {h: s.changed for h, s in result.hosts.items()}


def test_changed_tasks_include_ignored_failures_that_changed_only() -> None:
    assert [t.task for t in build("ignore_errors").changed_tasks] == ["Carry on"]
    assert [t.task for t in build("rescued").changed_tasks] == ["Take the slow way"]
    assert [t.task for t in build("multihost").changed_tasks] == ["Deploy", "Deploy"]
    ignored = _failed("h", "Try it", ignore_errors=True)
    ignored["event_data"]["res"] = {"changed": True, "msg": "no"}
    result = feed_all(ignored, _failed("h", "Give up"), _stats(changed={"h": 1}, failures={"h": 1}))
    assert [t.task for t in result.changed_tasks] == ["Try it"]


def test_changed_tasks_without_stats_are_the_known_ones() -> None:
    result = build("success", drop=("playbook_on_stats",), status="canceled")
    assert per_host(result.changed_tasks) == {
        "host1": [("Configure the app", "Write config"), ("Configure the app", "Restart service")],
        "host2": [("Configure the app", "Write config")],
    }


def test_a_censored_result_is_named_only_when_the_stats_account_for_it() -> None:
    events = (_ok("h", "Render config", {"changed": True}), _ok("h", "Set password", CENSORED))
    named = feed_all(*events, _stats(ok={"h": 2}, changed={"h": 2}))
    assert [t.task for t in named.changed_tasks] == ["Render config", "Set password"]
    unchanged = feed_all(*events, _stats(ok={"h": 2}, changed={"h": 1}))
    assert [t.task for t in unchanged.changed_tasks] == ["Render config"]
    # Two censored results, one change: which one cannot be told; it is only counted.
    two = (*events, _ok("h", "Set token", CENSORED))
    unknown = feed_all(*two, _stats(ok={"h": 3}, changed={"h": 2}))
    assert [t.task for t in unknown.changed_tasks] == ["Render config"]
    assert unknown.changed == 2
    assert describe_drift(unknown) == (
        "1 task would change: 'Render config' on h; 1 more change hidden by no_log"
    )
    without_stats = feed_all(*events)
    assert [t.task for t in without_stats.changed_tasks] == ["Render config"]


def test_changed_tasks_keep_nothing_of_a_result() -> None:
    secret = {
        "changed": True,
        "diff": {"after": "s3cret"},
        "msg": "s3cret",
        "_ansible_no_log": True,
    }
    result = feed_all(_ok("h", "Write the key", secret), _stats(changed={"h": 1}))
    assert result.changed_tasks == (ChangedTask("h", "p", "Write the key"),)
    assert "s3cret" not in repr(result)


def drift_result(*pairs: tuple[str, str], hidden: int = 0) -> RunResult:
    tasks = tuple(ChangedTask(host, "p", task) for host, task in pairs)
    per_host: dict[str, int] = {}
    for t in tasks:
        per_host[t.host] = per_host.get(t.host, 0) + 1
    per_host["h0"] = per_host.get("h0", 0) + hidden
    hosts = {h: HostStats(changed=n) for h, n in per_host.items()}
    return RunResult("c", "successful", 0, hosts=hosts, changed_tasks=tasks)


@pytest.mark.parametrize(
    ("result", "text"),
    [
        (drift_result(), ""),
        (
            drift_result(("localhost", "Render config")),
            "1 task would change: 'Render config' on localhost",
        ),
        (
            drift_result(("web1", "A"), ("web2", "A"), ("web1", "B")),
            "2 tasks would change: 'A' on web1, web2; 'B' on web1",
        ),
        (
            drift_result(*[(f"web{i}", "A") for i in range(1, 6)]),
            "1 task would change: 'A' on web1, web2, web3 (+2 more)",
        ),
        (
            drift_result(*[("h", t) for t in "ABCDE"]),
            "5 tasks would change: 'A' on h; 'B' on h; 'C' on h (+2 more)",
        ),
        (drift_result(hidden=2), "2 changes would be made (hidden by no_log)"),
        (
            drift_result(("h", "A"), hidden=1),
            "1 task would change: 'A' on h; 1 more change hidden by no_log",
        ),
    ],
)
def test_describe_drift(result: RunResult, text: str) -> None:
    assert describe_drift(result) == text


# --- real ansible-playbook runs that fail before any task ------------------------------------


def _real_run(tmp_path: Path, playbook: str) -> RunResult:
    """``playbook`` run by ansible-playbook through the local executor (colours and all)."""
    import asyncio

    from bridge.config.settings import RunnerSettings
    from bridge.executors.local import LocalExecutor
    from tests.unit.helpers import spec_for

    path = tmp_path / "broken.yml"
    path.write_text(playbook)

    async def run() -> RunResult:
        executor = LocalExecutor(RunnerSettings(max_concurrent_runs=1))
        try:
            return await executor.run(spec_for(tmp_path, playbook=path), lambda event: None)
        finally:
            await executor.close()

    return asyncio.run(run())


def test_a_real_syntax_error_names_the_cause(tmp_path: Path) -> None:
    playbook = (
        "- hosts: localhost\n  tasks:\n    - name: x\n      debug: msg=hi\n     bad: indent\n"
    )
    result = _real_run(tmp_path, playbook)
    assert result.status == "failed"
    assert "YAML parsing failed" in result.message or "Syntax Error" in result.message
    assert "broken.yml" in result.message  # where: Ansible's origin line
    assert "\x1b" not in result.message
    assert summarize(result) == f"failed: {result.message}"


def test_a_real_missing_role_names_the_role(tmp_path: Path) -> None:
    playbook = "- hosts: localhost\n  gather_facts: false\n  roles:\n    - no_such_role\n"
    result = _real_run(tmp_path, playbook)
    assert result.status == "error"
    assert "the role 'no_such_role' was not found" in result.message
    assert result.message.startswith("ansible-playbook exited with 1: ")
    assert len(result.message) <= MESSAGE_LIMIT
