"""Turn the job events ansible-runner streams during a run into the run's :class:`RunResult`.

The events are the dicts ansible-runner hands to ``event_handler`` (the same JSON it writes to
``artifacts/<ident>/job_events/``). What is read from them:

* **Per-host counts** come from the ``playbook_on_stats`` event, Ansible's own play recap
  (``ok``, ``changed``, ``failures``, ``dark`` = unreachable, ``skipped``, ``rescued``,
  ``ignored``; each a ``{host: count}`` that leaves out hosts whose count is 0, so the host list
  is the union of all of them and ``processed``). A run that was stopped (timeout, cancel, crash)
  has no stats event; then the counts are rebuilt from the ``runner_on_*`` events, the way
  Ansible's strategy counts them, except that a rescued failure cannot be told from a real one
  and a no_log result does not say whether it changed anything.
* **Failed tasks** come from ``runner_on_failed`` (without ``ignore_errors``) and
  ``runner_on_unreachable``. A failure that a ``block``'s ``rescue`` handles is *also* sent as a
  plain ``runner_on_failed``: the event carries no mark of it, only the stats tell (as
  ``rescued`` instead of ``failures``); likewise an unreachable host on an
  ``ignore_unreachable`` task is sent as ``runner_on_unreachable`` but counted ``ok``/``ignored``.
  Ansible stops running a host at its first failure that nothing rescues or ignores, so that
  failure is the host's last failed event: of each host's failed events only the last
  ``failures[host]`` are kept, and of its unreachable events the last ``dark[host]``. (What can
  still run on a host after its real failure, handlers under ``force_handlers`` or an
  ``always`` section, fails as real failures too and is counted, so the rule holds for them;
  a ``rescue`` nested inside such an ``always`` is the one case it gets wrong.) Without stats,
  every failure is kept.
* **Changed tasks** (what a drift check reports) come from ``runner_on_ok`` events, and from
  failures under ``ignore_errors`` (Ansible counts those as changed too), whose ``res.changed``
  is true: the host, play and task *name*, nothing of the result. A ``no_log`` result is
  censored down to ``{"censored": ...}`` and no longer says whether it changed anything; such a
  task is named only when the stats tell that all of that host's censored tasks changed (its
  ``changed`` count is exactly the named ones plus the censored ones). Otherwise the count in
  the stats (:attr:`RunResult.changed`) exceeds the tasks named, and the difference is what
  ``no_log`` hides.
* **Outputs** are the stats event's ``artifact_data``: ansible-runner's callback fills it with
  ``stats.custom['_run']``, i.e. what ``ansible.builtin.set_stats`` published without
  ``per_host`` (per-host custom stats are not passed on).
* **Requeue**: :func:`requeue_period` reads the ``period`` an ``operator_sdk.util.requeue_after``
  task returned (a Go duration); the first such task's is the result's ``requeue_after``, for
  the controller to schedule the next run (as the SDK does).
* **Messages** never leak a result hidden with ``no_log``: Ansible's callback already replaces
  such a ``res`` with ``{"censored": ...}``, and any result that is censored or still marked
  ``_ansible_no_log`` gives only :data:`NO_LOG_MESSAGE`. The events' ``stdout`` is never read
  (ansible-core 2.19 prints a no_log loop item's failure message there), except Ansible's own
  error text in plain output events (``verbose``/``error``: stdout without a task): the first
  ``[ERROR]: ...`` (ansible-core 2.19) or ``ERROR! ...`` (older) lines and the lines that follow
  them up to a blank one (2.19's ``Origin: file:line:col``), at most :data:`ERROR_LINES` lines and
  :data:`MESSAGE_LIMIT` characters, colour codes removed. They are the message of a run that did
  not succeed when no failed task says why (a syntax error, a missing role or playbook).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.config.watches import parse_duration
from bridge.model.records import (
    ChangedTask,
    FailedTask,
    HostStats,
    RunnerEvent,
    RunResult,
    RunStatus,
)

#: The longest message kept for a failed task (longer ones end with "…").
MESSAGE_LIMIT = 500
#: At most this many changed tasks are kept of a run (its stats still count every change).
MAX_CHANGES = 1000
#: At most this many lines of Ansible's own error text are kept (the first error and its origin).
ERROR_LINES = 4
#: The prefixes of Ansible's error lines: ansible-core >= 2.19, older.
_ERROR_PREFIXES = ("[ERROR]:", "ERROR!")
#: Terminal colour codes (Ansible colours its errors red when it thinks it may).
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: The message of a failed task whose result is hidden with ``no_log``.
NO_LOG_MESSAGE = "the output has been hidden due to no_log: true"

#: playbook_on_stats keys and the HostStats field each one counts.
_STATS_FIELDS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}

_STATUS_WORDS: Mapping[str, str] = {
    "successful": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
    "timeout": "timed out",
    "error": "error",
}


@dataclass(frozen=True)
class _Failure:
    """A failed or unreachable event, before the stats tell whether it counts."""

    unreachable: bool
    task: FailedTask


@dataclass(frozen=True)
class _Change:
    """A task result that changed something (``known``), or a censored one that may have."""

    known: bool
    task: ChangedTask


class ResultBuilder:
    """Collects a run's events as they stream in and builds its :class:`RunResult` at the end.

    One builder per run; :meth:`feed` every event in the order ansible-runner emits them.
    """

    def __init__(self) -> None:
        self._stats: Mapping[str, Any] | None = None
        self._hosts: dict[str, None] = {}  # hosts in order of first appearance
        self._counts: dict[str, dict[str, int]] = {}  # fallback counts, HostStats field names
        self._failures: list[_Failure] = []
        self._changes: list[_Change] = []
        self._error_lines: list[str] = []
        self._in_error = False
        self._requeue_after: float | None = None

    def feed(self, event: RunnerEvent) -> None:
        """Take one event into account; events the bridge does not need are ignored."""
        name = event.get("event", "")
        data = event.get("event_data")
        if not isinstance(data, Mapping):
            data = {}
        if self._requeue_after is None:
            self._requeue_after = requeue_period(event)
        if name == "playbook_on_stats":
            self._stats = data
            return
        if name in ("verbose", "error"):
            stdout = event.get("stdout", "")
            self._note_error_lines(stdout if isinstance(stdout, str) else "")
            return
        if not name.startswith("runner_on_"):
            return
        host = data.get("host")
        if not isinstance(host, str) or not host:
            return
        counts = self._host_counts(host)
        res = data.get("res")
        changed = isinstance(res, Mapping) and res.get("changed") is True
        if name == "runner_on_ok":
            counts["ok"] += 1
            counts["changed"] += int(changed)
            self._note_change(host, data, res, changed)
        elif name == "runner_on_skipped":
            counts["skipped"] += 1
        elif name == "runner_on_failed":
            if data.get("ignore_errors"):
                counts["ok"] += 1
                counts["ignored"] += 1
                counts["changed"] += int(changed)
                self._note_change(host, data, res, changed)
            else:
                counts["failed"] += 1
                self._failures.append(_Failure(False, _failed_task(host, data)))
        elif name == "runner_on_unreachable":
            counts["unreachable"] += 1
            self._failures.append(_Failure(True, _failed_task(host, data)))

    def result(
        self, run_id: str, status: RunStatus, rc: int | None, message: str = ""
    ) -> RunResult:
        """The run's outcome from the events fed so far; ``message`` says why it did not succeed
        when no task does. A failed or errored run that no failed task explains also carries
        Ansible's own error text, after ``message`` ("ansible-playbook exited with 1: the role
        'x' was not found ...")."""
        if self._stats is not None:
            hosts = self._hosts_from_stats(self._stats)
            failed_tasks = self._counted_failures(self._stats)
            changed_tasks = self._counted_changes(self._stats)
            outputs = self._stats.get("artifact_data")
        else:
            hosts = {h: HostStats(**self._counts[h]) for h in self._hosts}
            failed_tasks = tuple(f.task for f in self._failures)
            changed_tasks = tuple(c.task for c in self._changes if c.known)
            outputs = None
        if status in ("failed", "error") and not failed_tasks and self._error_lines:
            text = _shorten(" ".join(self._error_lines))
            message = _shorten(f"{message}: {text}") if message else text
        return RunResult(
            run_id=run_id,
            status=status,
            rc=rc,
            hosts=hosts,
            failed_tasks=failed_tasks,
            outputs=dict(outputs) if isinstance(outputs, Mapping) else {},
            message=message,
            changed_tasks=changed_tasks,
            requeue_after=self._requeue_after,
        )

    def _note_change(self, host: str, data: Mapping[str, Any], res: Any, changed: bool) -> None:
        # Only the names are kept: nothing of a result, censored or not, goes further.
        if changed:
            known = True
        elif isinstance(res, Mapping) and "censored" in res and "changed" not in res:
            known = False  # no_log: whether it changed is told by the stats only
        else:
            return
        if len(self._changes) >= MAX_CHANGES:
            return
        task = ChangedTask(host=host, play=_name(data.get("play")), task=_name(data.get("task")))
        self._changes.append(_Change(known, task))

    def _host_counts(self, host: str) -> dict[str, int]:
        if host not in self._counts:
            self._hosts[host] = None
            self._counts[host] = dict.fromkeys(_STATS_FIELDS.values(), 0)
        return self._counts[host]

    def _note_error_lines(self, stdout: str) -> None:
        """Keep the first error lines: a line with an error prefix and those after it, up to a
        blank line, :data:`ERROR_LINES` in all."""
        for raw in stdout.splitlines():
            if len(self._error_lines) >= ERROR_LINES:
                return
            line = _ANSI.sub("", raw).strip()
            prefix = next((p for p in _ERROR_PREFIXES if line.startswith(p)), None)
            if prefix is not None:
                self._in_error = True
                line = line[len(prefix) :].strip()
            elif not line:
                self._in_error = False
                continue
            if self._in_error and line:
                self._error_lines.append(line[:MESSAGE_LIMIT])

    def _hosts_from_stats(self, stats: Mapping[str, Any]) -> dict[str, HostStats]:
        names = dict(self._hosts)
        for key in ("processed", *_STATS_FIELDS):
            per_host = stats.get(key)
            if isinstance(per_host, Mapping):
                names.update(dict.fromkeys(h for h in per_host if isinstance(h, str)))
        return {
            host: HostStats(**{f: _count(stats, key, host) for key, f in _STATS_FIELDS.items()})
            for host in names
        }

    def _counted_failures(self, stats: Mapping[str, Any]) -> tuple[FailedTask, ...]:
        # Keep the last failures[host] failed and last dark[host] unreachable events of each
        # host: the earlier ones were rescued (or ignore_unreachable); see the module docstring.
        keep: set[int] = set()
        for host in {f.task.host for f in self._failures}:
            for unreachable, key in ((False, "failures"), (True, "dark")):
                indexes = [
                    i
                    for i, f in enumerate(self._failures)
                    if f.task.host == host and f.unreachable is unreachable
                ]
                wanted = _count(stats, key, host)
                if wanted > 0:
                    keep.update(indexes[-wanted:])
        return tuple(f.task for i, f in enumerate(self._failures) if i in keep)

    def _counted_changes(self, stats: Mapping[str, Any]) -> tuple[ChangedTask, ...]:
        # The known changes, and a host's censored (no_log) results when the stats count
        # exactly that many more changes on it: then each of them changed something.
        hidden_changed: set[str] = set()
        for host in {c.task.host for c in self._changes if not c.known}:
            known = sum(1 for c in self._changes if c.known and c.task.host == host)
            censored = sum(1 for c in self._changes if not c.known and c.task.host == host)
            if _count(stats, "changed", host) == known + censored:
                hidden_changed.add(host)
        return tuple(c.task for c in self._changes if c.known or c.task.host in hidden_changed)


def _count(stats: Mapping[str, Any], key: str, host: str) -> int:
    per_host = stats.get(key)
    value = per_host.get(host, 0) if isinstance(per_host, Mapping) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _failed_task(host: str, data: Mapping[str, Any]) -> FailedTask:
    return FailedTask(
        host=host,
        play=_name(data.get("play")),
        task=_name(data.get("task")),
        message=failure_message(data.get("res")),
    )


def _name(value: Any) -> str:
    """A play's or task's name, at most :data:`MESSAGE_LIMIT` characters (a name may be
    templated from a large value)."""
    text = str(value or "")
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _censored(res: Mapping[str, Any]) -> bool:
    no_log = res.get("_ansible_no_log")
    return "censored" in res or no_log is True or str(no_log).lower() in ("true", "yes", "1")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _own_message(res: Mapping[str, Any]) -> str:
    msg = _text(res.get("msg")) or _text(res.get("reason"))  # "reason": failed includes
    stderr = _text(res.get("stderr"))
    stdout = _text(res.get("stdout"))
    if not msg:
        return stderr or stdout
    # Command-like modules (command, shell, script, raw) say only "non-zero return code":
    # what the command printed is the useful part.
    rc = res.get("rc")
    output = stderr or stdout
    if isinstance(rc, int) and rc != 0 and output and output not in msg:
        return f"{msg}: {output}"
    return msg


def failure_message(res: Any) -> str:
    """A one-line message for a failed result (``res`` of a runner_on_failed event).

    ``msg`` (with the command's output when a command failed), else stderr/stdout, else for a
    loop the first failed item's message; at most :data:`MESSAGE_LIMIT` characters. A result
    hidden with ``no_log`` gives :data:`NO_LOG_MESSAGE` and nothing of its content.
    """
    if not isinstance(res, Mapping):
        return ""
    if _censored(res):
        return NO_LOG_MESSAGE
    items = res.get("results")
    items = [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
    # A loop's own msg is only "One or more items failed": its first failed item says what.
    failed = [i for i in items if i.get("failed") is True or i.get("unreachable") is True]
    if failed and _censored(failed[0]):
        return NO_LOG_MESSAGE
    message = _own_message(failed[0]) if failed else ""
    message = message or _own_message(res)
    for item in items:
        if message:
            break
        if not _censored(item):
            message = _own_message(item)
    return _shorten(message)


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def describe(result: RunResult) -> str:
    """What happened, without the outcome word: "3 changed on 2 hosts", "task 'X' on h: msg"."""
    if result.succeeded:
        return f"{result.changed} changed on {_plural(len(result.hosts), 'host')}"
    tasks = ""
    if result.failed_tasks:
        first = result.failed_tasks[0]
        tasks = f"task '{first.task}' on {first.host}: {first.message}"
        more = len(result.failed_tasks) - 1
        if more:
            tasks += f" (+{more} more)"
    if result.status == "failed":
        if tasks:
            return tasks
        if result.message:
            return result.message
        return f"ansible-playbook exited with rc {result.rc}" if result.rc is not None else ""
    defaults = {
        "canceled": "the run was canceled",
        "timeout": "the run exceeded its time limit",
        "error": "the runner could not run the playbook",
    }
    return result.message or tasks or defaults.get(result.status, "")


#: At most this many tasks, and hosts per task, are named in a drift message.
_DRIFT_TASKS = 3
_DRIFT_HOSTS = 3


def describe_drift(result: RunResult) -> str:
    """What a check run would change, short: "2 tasks would change: 'Render config' on
    localhost; 'Write motd' on web1, web2" ("" when nothing). Changes counted by the stats but
    hidden by ``no_log`` are only counted."""
    by_task: dict[tuple[str, str], list[str]] = {}
    for change in result.changed_tasks:
        hosts = by_task.setdefault((change.play, change.task), [])
        if change.host not in hosts:
            hosts.append(change.host)
    hidden = result.changed - len(result.changed_tasks)
    if not by_task:
        if hidden <= 0:
            return ""
        return f"{_plural(hidden, 'change')} would be made (hidden by no_log)"
    parts = []
    for (_, task), hosts in list(by_task.items())[:_DRIFT_TASKS]:
        named = ", ".join(hosts[:_DRIFT_HOSTS])
        if len(hosts) > _DRIFT_HOSTS:
            named += f" (+{len(hosts) - _DRIFT_HOSTS} more)"
        parts.append(f"'{task}' on {named}")
    text = f"{_plural(len(by_task), 'task')} would change: {'; '.join(parts)}"
    if len(by_task) > _DRIFT_TASKS:
        text += f" (+{len(by_task) - _DRIFT_TASKS} more)"
    if hidden > 0:
        text += f"; {_plural(hidden, 'more change')} hidden by no_log"
    return text


#: The ``task_action`` (or ``resolved_action``) names of the Operator SDK's requeue_after module.
REQUEUE_ACTIONS = frozenset({"operator_sdk.util.requeue_after", "requeue_after"})


def requeue_period(event: RunnerEvent) -> float | None:
    """Seconds after which the resource is to run again, when ``event`` is the successful result
    of an ``operator_sdk.util.requeue_after`` task (its ``period``, a Go duration), else None.
    A ``period`` that is not a duration is ignored (the module refuses one)."""
    if event.get("event") != "runner_on_ok":
        return None
    data = event.get("event_data")
    if not isinstance(data, Mapping):
        return None
    if not {data.get("task_action"), data.get("resolved_action")} & REQUEUE_ACTIONS:
        return None
    res = data.get("res")
    period = res.get("period") if isinstance(res, Mapping) else None
    if not isinstance(period, str):
        return None
    try:
        return parse_duration(period)
    except ValueError:
        return None


def summarize(result: RunResult) -> str:
    """One line for a Kubernetes Event: "succeeded: 3 changed on 2 hosts",
    "failed: task 'Install package' on web1: <message>", "timed out: <message>"."""
    word = _STATUS_WORDS.get(result.status, result.status)
    detail = describe(result)
    return f"{word}: {detail}" if detail else word
