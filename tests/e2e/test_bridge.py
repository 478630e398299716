"""The bridge end to end: watches.yaml -> kopf -> ansible-runner -> status and Events.

Every test runs the real operator process against the real API server; runs are counted by the
test playbook itself (one line per run in a record file).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.conftest import DATA, Bridge, ansible_processes, wait_for

pytestmark = pytest.mark.e2e

RECORD = str(DATA / "record.yml")
FINALIZE = str(DATA / "finalize.yml")


def probe_watch(**extra: object) -> dict[str, object]:
    return {"kind": "Probe", "playbook": RECORD, **extra}


def test_create_runs_once_and_reports_every_hosts_counts_and_outputs(bridge: Bridge) -> None:
    inventory = bridge.workdir / "hosts"
    inventory.write_text(
        "".join(
            f"{h} ansible_connection=local ansible_python_interpreter={sys.executable}\n"
            for h in ("web1", "web2")
        )
    )
    bridge.start([probe_watch(inventory=str(inventory))])
    bridge.create("p1", {"message": "hello"})

    obj = bridge.wait_ready("p1")
    status = obj["status"]
    assert set(status["lastRun"]["hosts"]) == {"web1", "web2"}
    for host in ("web1", "web2"):
        counts = status["lastRun"]["hosts"][host]
        assert counts["failed"] == 0 and counts["unreachable"] == 0
        assert counts["ok"] >= 1 and counts["changed"] >= 1 and counts["skipped"] >= 1
    assert status["lastRun"]["result"] == "successful"
    assert status["lastRun"]["trigger"] == "create"
    assert status["outputs"] == {"message": "hello", "hosts": 2}
    assert status["observedGeneration"] == 1
    assert len(bridge.runs("p1")) == 1
    assert (bridge.records / f"{bridge.namespace}.p1.web2.message").read_text() == "hello"
    reasons = [e["reason"] for e in bridge.events("p1")]
    assert "Started" in reasons and "Succeeded" in reasons


def test_failing_task_sets_ready_false_names_the_task_and_warns(bridge: Bridge) -> None:
    bridge.start([probe_watch()])
    bridge.create("bad", {"message": "nope", "failTask": True})

    obj = bridge.wait_ready("bad", status="False")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Failed"
    assert "Validate the request" in ready["message"]
    assert "refusing to apply: nope" in ready["message"]
    failed = obj["status"]["lastRun"]["failedTasks"]
    assert failed == [
        {
            "host": "localhost",
            "play": "Record and report",
            "task": "Validate the request",
            "message": "refusing to apply: nope",
        }
    ]
    warnings = wait_for(
        "a Warning event",
        lambda: [e for e in bridge.events("bad") if e["type"] == "Warning"],
    )
    assert warnings[0]["reason"] == "Failed"
    assert "Validate the request" in warnings[0]["message"]


def test_spec_update_runs_again_with_new_values(bridge: Bridge) -> None:
    bridge.start([probe_watch()])
    bridge.create("p", {"message": "one"})
    bridge.wait_ready("p")
    bridge.patch_spec("p", {"message": "two"})

    obj = bridge.wait_ready("p", generation=2)
    assert obj["status"]["observedGeneration"] == 2
    assert obj["status"]["outputs"]["message"] == "two"
    assert obj["status"]["lastRun"]["trigger"] == "update"
    runs = bridge.runs("p")
    assert len(runs) == 2
    assert "gen=1 message=one" in runs[0] and "gen=2 message=two" in runs[1]


def test_status_only_patch_triggers_no_run(bridge: Bridge) -> None:
    bridge.start([probe_watch()])
    bridge.create("p", {"message": "one"})
    bridge.wait_ready("p")
    bridge.custom.patch_namespaced_custom_object_status(
        "test.ansible-bridge.io",
        "v1alpha1",
        bridge.namespace,
        "probes",
        "p",
        {"status": {"note": "written by someone else"}},
    )
    bridge.patch(  # a metadata-only change does not bump the generation either
        "p", {"metadata": {"labels": {"touched": "yes"}}}
    )
    # Events of one object are handled in order: once generation 2 has run, anything the status
    # and label patches could have caused would already be recorded.
    bridge.patch_spec("p", {"message": "two"})
    bridge.wait_ready("p", generation=2)
    assert [r.split(" ", 1)[1] for r in bridge.runs("p")] == [
        "gen=1 message=one",
        "gen=2 message=two",
    ]


def test_delete_with_finalizer_runs_it_then_the_object_goes(bridge: Bridge) -> None:
    finalizer = "test.ansible-bridge.io/cleanup"
    bridge.start([probe_watch(finalizer={"name": finalizer, "playbook": FINALIZE})])
    bridge.create("p", {"message": "x"})
    obj = bridge.wait_ready("p")
    assert finalizer in obj["metadata"]["finalizers"]

    bridge.delete("p")
    wait_for("the object to go", lambda: bridge.get("p") is None)
    mark = bridge.records / f"{bridge.namespace}.p.finalized"
    assert mark.read_text() == "finalized p\n"
    assert "Finalized" in [e["reason"] for e in bridge.events("p")]


def test_without_a_finalizer_entry_deletion_is_immediate_and_runs_nothing(
    bridge: Bridge,
) -> None:
    bridge.start([probe_watch()])
    bridge.create("p", {"message": "x"})
    obj = bridge.wait_ready("p")
    assert not obj["metadata"].get("finalizers")
    bridge.delete("p")
    assert bridge.get("p") is None
    # Only once the operator has handled the DELETE event does "no run" mean anything.
    operator = bridge.operator
    assert operator is not None
    forgotten = f"{bridge.namespace}/p: deleted; forgotten"
    wait_for("the operator to forget p", lambda: forgotten in operator.log_text())
    assert len(bridge.runs("p")) == 1


def test_delete_mid_run_cancels_it_runs_the_finalizer_and_leaves_no_process(
    bridge: Bridge,
) -> None:
    finalizer = "test.ansible-bridge.io/cleanup"
    bridge.start([probe_watch(finalizer={"name": finalizer, "playbook": FINALIZE})])
    bridge.create("p", {"message": "x", "hold": True})
    wait_for("the run to start", lambda: bridge.runs("p"))
    wait_for("ansible to run", lambda: ansible_processes(bridge))

    bridge.delete("p")
    wait_for("the object to go", lambda: bridge.get("p") is None)
    assert (bridge.records / f"{bridge.namespace}.p.finalized").exists()
    assert not (bridge.records / f"{bridge.namespace}.p.localhost.message").exists()
    assert ansible_processes(bridge) == []
    assert "Canceled" in [e["reason"] for e in bridge.events("p")]


def test_spec_change_mid_run_cancels_the_stale_run_and_runs_the_newest(bridge: Bridge) -> None:
    bridge.start([probe_watch()])
    bridge.create("p", {"message": "old", "hold": True})
    wait_for("the first run to start", lambda: bridge.runs("p"))

    bridge.patch_spec("p", {"message": "new", "hold": False})
    obj = bridge.wait_ready("p", generation=2)
    assert obj["status"]["outputs"]["message"] == "new"
    runs = bridge.runs("p")
    assert [r.split(" ", 1)[1] for r in runs] == ["gen=1 message=old", "gen=2 message=new"]
    assert (bridge.records / f"{bridge.namespace}.p.localhost.message").read_text() == "new"
    assert "Canceled" in [e["reason"] for e in bridge.events("p")]


def test_restart_does_not_rerun_completed_generations(bridge: Bridge) -> None:
    operator = bridge.start([probe_watch()])
    bridge.create("done", {"message": "once"})
    bridge.wait_ready("done")
    assert operator.stop() == 0

    bridge.operator = operator.start()
    # A resource created after the restart proves the new operator is serving; the existing
    # one came in its initial listing, before this one's creation.
    bridge.create("later", {"message": "after restart"})
    bridge.wait_ready("later")
    assert len(bridge.runs("done")) == 1
    assert "serving" in operator.log_text()


def test_restart_resumes_a_run_that_was_interrupted(bridge: Bridge) -> None:
    operator = bridge.start([probe_watch()])
    bridge.create("p", {"message": "m", "hold": True})
    wait_for("the run to start", lambda: bridge.runs("p"))
    wait_for("ansible to run", lambda: ansible_processes(bridge))

    assert operator.stop(signal.SIGTERM) == 0
    assert ansible_processes(bridge) == []
    obj = bridge.get("p")
    assert obj is not None and obj["status"].get("currentRun")  # interrupted, not finished

    (bridge.records / f"{bridge.namespace}.p.release").touch()
    bridge.operator = operator.start()
    obj = bridge.wait_ready("p")
    assert obj["status"]["lastRun"]["trigger"] == "resume"
    assert len(bridge.runs("p")) == 2


def test_injected_template_reaches_the_playbook_literally(bridge: Bridge) -> None:
    pwned = bridge.workdir / "pwned"
    payload = "{{ lookup('ansible.builtin.pipe', 'touch " + str(pwned) + "') }} {{ 6 * 7 }}"
    bridge.start([probe_watch()])
    bridge.create("evil", {"message": payload})

    obj = bridge.wait_ready("evil")
    written = (bridge.records / f"{bridge.namespace}.evil.localhost.message").read_text()
    assert written == payload
    assert obj["status"]["outputs"]["message"] == payload
    assert not pwned.exists()


def test_manage_status_false_writes_only_bookkeeping(bridge: Bridge) -> None:
    bridge.start([probe_watch(manageStatus=False)])
    bridge.create("p", {"message": "m"})

    def observed() -> dict[str, object] | None:
        obj = bridge.get("p") or {}
        status = obj.get("status") or {}
        return status if status.get("observedGeneration") == 1 else None

    status = wait_for("observedGeneration", observed)
    assert "conditions" not in status and "outputs" not in status
    assert status["lastRun"]["result"] == "successful"
    assert "hosts" not in status["lastRun"]


def test_selector_limits_the_resources_that_run(bridge: Bridge) -> None:
    bridge.start([probe_watch(selector={"matchLabels": {"team": "ops"}})])
    bridge.create("other", {"message": "skip me"}, labels={"team": "dev"})
    bridge.create("mine", {"message": "run me"}, labels={"team": "ops"})
    bridge.wait_ready("mine")
    bridge.patch_spec("mine", {"message": "again"})
    bridge.wait_ready("mine", generation=2)
    assert bridge.runs("other") == []
    assert (bridge.get("other") or {}).get("status") is None


def test_fifty_resources_at_once_all_ready_each_run_exactly_once(bridge: Bridge) -> None:
    bridge.start([probe_watch()], "--max-concurrent-runs", "4")
    manifest = "".join(
        textwrap.dedent(
            f"""\
            ---
            apiVersion: test.ansible-bridge.io/v1alpha1
            kind: Probe
            metadata: {{name: bulk-{i:02d}}}
            spec: {{message: "n{i}"}}
            """
        )
        for i in range(50)
    )
    bridge.apply(manifest)
    for i in range(50):
        bridge.wait_ready(f"bulk-{i:02d}", timeout=600)
    counts = {i: len(bridge.runs(f"bulk-{i:02d}")) for i in range(50)}
    assert counts == dict.fromkeys(range(50), 1)


@pytest.mark.parametrize(
    ("watches", "expected"),
    [
        ("- {group: a.io, version: v1, kind: A, playbok: x.yml}\n", "entry 1: key 'playbok'"),
        (
            "- {group: a.io, version: v1, kind: A, playbook: x.yml}\n",
            "entry 1: key 'playbook'",
        ),
        (
            "- {group: a.io, version: v1, kind: A, playbook: p.yml, reconcilePeriod: soon}\n",
            "entry 1: key 'reconcilePeriod'",
        ),
        (
            "- {group: a.io, version: v1, kind: A, playbook: p.yml}\n"
            "- {group: a.io, version: v1, kind: A, playbook: p.yml}\n",
            "entry 2",
        ),
    ],
    ids=["unknown-key", "missing-playbook", "bad-duration", "duplicate-kind"],
)
def test_bad_watches_file_exits_2_naming_file_entry_and_key(
    tmp_path: Path, watches: str, expected: str
) -> None:
    (tmp_path / "p.yml").write_text("- hosts: localhost\n  tasks: []\n")
    path = tmp_path / "watches.yaml"
    path.write_text(watches)
    # A kubeconfig pointing nowhere: the watches file must be refused before any API call.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "
        "'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, "
        "context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "run",
            "--watches",
            str(path),
            "--kubeconfig",
            str(kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert proc.returncode == 2, proc.stderr
    assert str(path) in proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_reconcile_period_runs_again_without_a_change(bridge: Bridge) -> None:
    bridge.start([probe_watch(reconcilePeriod="2s")])
    bridge.create("p", {"message": "m"})
    bridge.wait_ready("p")

    def periodic() -> bool:
        obj = bridge.get("p") or {}
        return (obj.get("status") or {}).get("lastRun", {}).get("trigger") == "periodic"

    wait_for("a periodic run", periodic, timeout=60)
    assert len(bridge.runs("p")) >= 2


def test_watched_annotation_change_runs_again(bridge: Bridge) -> None:
    bridge.start([probe_watch(watchAnnotationsChanges=True)])
    bridge.create("p", {"message": "m"})
    bridge.wait_ready("p")
    bridge.patch("p", {"metadata": {"annotations": {"example.com/rotate": "1"}}})

    def annotation_run() -> bool:
        obj = bridge.get("p") or {}
        last = (obj.get("status") or {}).get("lastRun", {})
        return last.get("trigger") == "annotation" and last.get("result") == "successful"

    wait_for("a run for the annotation change", annotation_run)
    assert len(bridge.runs("p")) == 2


def test_timeout_stops_the_run_and_leaves_no_process(bridge: Bridge) -> None:
    bridge.start([probe_watch(timeout="3s")])
    bridge.create("slow", {"message": "m", "hold": True})

    obj = bridge.wait_ready("slow", status="False")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Timeout"
    assert obj["status"]["lastRun"]["result"] == "timeout"
    assert ansible_processes(bridge) == []


def test_run_requested_annotation_runs_once_per_new_value(bridge: Bridge) -> None:
    bridge.start([probe_watch()])
    bridge.create("p", {"message": "m"})
    bridge.wait_ready("p")
    bridge.patch("p", {"metadata": {"annotations": {"ansible-bridge.io/run-requested": "t1"}}})

    def requested() -> bool:
        last = ((bridge.get("p") or {}).get("status") or {}).get("lastRun", {})
        return last.get("trigger") == "requested" and last.get("result") == "successful"

    wait_for("the requested run", requested)
    # The same value again is no new request: a spec change shows what ran since.
    bridge.patch("p", {"metadata": {"annotations": {"ansible-bridge.io/run-requested": "t1"}}})
    bridge.patch_spec("p", {"message": "n"})
    obj = bridge.wait_ready("p", generation=2)
    assert len(bridge.runs("p")) == 3
    assert [r["trigger"] for r in obj["status"]["runs"]] == ["update", "requested", "create"]


def test_suspend_holds_runs_until_removed(bridge: Bridge) -> None:
    bridge.start([probe_watch()])
    bridge.create("p", {"message": "m"})
    bridge.wait_ready("p")
    bridge.patch("p", {"metadata": {"annotations": {"ansible-bridge.io/suspend": "true"}}})
    wait_for(
        "Suspended=True",
        lambda: (bridge.condition("p", "Suspended") or {}).get("status") == "True",
    )
    bridge.patch_spec("p", {"message": "while suspended"})
    # The operator has seen generation 2 (and held it) once the condition says so.
    wait_for(
        "Suspended for generation 2",
        lambda: (bridge.condition("p", "Suspended") or {}).get("observedGeneration") == 2,
    )
    assert len(bridge.runs("p")) == 1
    # Resume: the held generation runs exactly once.
    bridge.patch("p", {"metadata": {"annotations": {"ansible-bridge.io/suspend": None}}})
    obj = bridge.wait_ready("p", generation=2)
    assert (bridge.condition("p", "Suspended") or {}).get("status") == "False"
    assert len(bridge.runs("p")) == 2
    assert obj["status"]["outputs"]["message"] == "while suspended"


def test_secret_reference_reaches_the_playbook_and_nowhere_else(bridge: Bridge) -> None:
    import json  # here, not at the top, so this test's edits stay within it

    # A PEM-like key whose lines hold a quote, a backslash and non-ASCII: json.dump stores it
    # escaped, a failure message folds it to one line, each line can show on its own.
    tag = os.urandom(6).hex()
    lines = [f'k3y-{tag}-"q"-\\b', f"{tag}-é中文😀-line"]
    value = "-----BEGIN TEST KEY-----\n" + "\n".join(lines) + "\n-----END TEST KEY-----"
    forms = {value, " ".join(value.split()), *lines}
    forms |= {json.dumps(f, ensure_ascii=a)[1:-1] for f in list(forms) for a in (True, False)}
    forms |= {json.dumps(f)[1:-1] for f in list(forms)} | {repr(f)[1:-1] for f in list(forms)}
    bridge.core.create_namespaced_secret(
        bridge.namespace,
        {"metadata": {"name": "creds"}, "stringData": {"token": value}},
    )
    bridge.start([probe_watch()])
    ref = {"secretKeyRef": {"name": "creds", "key": "token"}}
    bridge.create("ok", {"messageFrom": ref})
    bridge.create("bad", {"messageFrom": ref, "failTask": True})
    ok = bridge.wait_ready("ok")
    bad = bridge.wait_ready("bad", status="False")

    # The playbook got the value ...
    assert (bridge.records / f"{bridge.namespace}.ok.localhost.message").read_text() == value
    # ... and it is nowhere the bridge writes: status, Events, its log, the artifacts.
    assert ok["status"]["outputs"]["message"] == "********"
    assert "********" in bad["status"]["lastRun"]["failedTasks"][0]["message"]
    assert bridge.operator is not None
    events = bridge.events("ok") + bridge.events("bad")
    texts = {
        "status": str([ok, bad]) + json.dumps([ok, bad], ensure_ascii=False),
        "events": str(events) + json.dumps(events, ensure_ascii=False, default=str),
        "log": bridge.operator.log_text(),
    }
    for where, text in texts.items():
        assert [f for f in forms if f in text] == [], where
    files = [p for p in (bridge.workdir / "artifacts").rglob("*") if p.is_file()]
    assert any(p.parent.name == "job_events" for p in files)  # there were files to read
    for path in files:
        data = path.read_bytes()
        assert [f for f in forms if f.encode() in data] == [], path


def test_missing_secret_is_a_clear_reason_and_is_picked_up_when_created(bridge: Bridge) -> None:
    bridge.start([probe_watch()])
    bridge.create("p", {"messageFrom": {"secretKeyRef": {"name": "later", "key": "k"}}})
    obj = bridge.wait_ready("p", status="False")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "SecretNotFound"
    assert "spec.messageFrom" in ready["message"] and "later" in ready["message"]
    assert bridge.runs("p") == []

    bridge.core.create_namespaced_secret(
        bridge.namespace, {"metadata": {"name": "later"}, "stringData": {"k": "v"}}
    )
    obj = bridge.wait_ready("p", timeout=60)
    assert obj["status"]["lastRun"]["trigger"] == "retry"
    assert len(bridge.runs("p")) == 1


def test_operator_sdk_playbook_writes_status_with_the_bundled_k8s_status(bridge: Bridge) -> None:
    bridge.start([{"kind": "Probe", "playbook": str(DATA / "sdk_status.yml")}])
    bridge.create("sdk", {"message": "three"})
    obj = bridge.wait_ready("sdk")
    assert obj["status"]["size"] == "three"
    deployed = bridge.condition("sdk", "Deployed")
    assert deployed is not None and deployed["status"] == "True"
    # The bridge's own conditions are still there next to the playbook's.
    assert (bridge.condition("sdk", "Ready") or {}).get("status") == "True"
