"""Run metrics fed through the RunObserver API, the /logs path checks, and the JSON log format."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest

from bridge.app.logs import AnsiStripper, JsonFormatter, logs_url
from bridge.app.metrics import RunMetrics
from bridge.app.web import CLUSTER_SCOPED, LogsError, find_watch, locate, plural, runs
from bridge.controller.reconcile import RunObserver
from bridge.model.records import RunResult
from bridge.model.watch import Watch
from tests.unit.helpers import make_watch

PROBE = make_watch(group="test.io", version="v1", kind="Probe", playbook=Path("/p.yml"))
OTHER = make_watch(group="other.io", version="v1", kind="Policy", playbook=Path("/p.yml"))


def sample(metrics: RunMetrics, name: str, watch: Watch = PROBE, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(
        name, {"kind": watch.kind, "group": watch.group, **labels}
    )


def test_metrics_is_a_run_observer() -> None:
    observer: RunObserver = RunMetrics(process=False)
    assert observer is not None


def test_series_of_every_watched_kind_start_at_zero() -> None:
    metrics = RunMetrics([PROBE, OTHER], process=False)
    for watch in (PROBE, OTHER):
        for result in ("successful", "failed", "timeout", "canceled", "error"):
            assert sample(metrics, "ansible_bridge_runs_total", watch, result=result) == 0
        assert sample(metrics, "ansible_bridge_runs_in_flight", watch) == 0
        assert sample(metrics, "ansible_bridge_runs_queued", watch) == 0
        assert sample(metrics, "ansible_bridge_run_duration_seconds_count", watch) == 0
        # Absent, not 0: "never succeeded" is not "succeeded in 1970".
        assert sample(metrics, "ansible_bridge_last_success_timestamp_seconds", watch) is None


def test_runs_are_counted_timed_and_gauged() -> None:
    metrics = RunMetrics([PROBE], process=False, clock=lambda: 1_700_000_000.0)
    metrics.queued(PROBE)
    metrics.queued(PROBE)
    assert sample(metrics, "ansible_bridge_runs_queued") == 2
    metrics.dequeued(PROBE)
    metrics.started(PROBE, "run1")
    assert sample(metrics, "ansible_bridge_runs_queued") == 1
    assert sample(metrics, "ansible_bridge_runs_in_flight") == 1
    metrics.finished(PROBE, RunResult(run_id="run1", status="successful"), 3.0)
    metrics.dequeued(PROBE)
    metrics.started(PROBE, "run2")
    metrics.finished(PROBE, RunResult(run_id="run2", status="failed"), 40.0)

    assert sample(metrics, "ansible_bridge_runs_queued") == 0
    assert sample(metrics, "ansible_bridge_runs_in_flight") == 0
    assert sample(metrics, "ansible_bridge_runs_total", result="successful") == 1
    assert sample(metrics, "ansible_bridge_runs_total", result="failed") == 1
    assert sample(metrics, "ansible_bridge_run_duration_seconds_count") == 2
    assert sample(metrics, "ansible_bridge_run_duration_seconds_sum") == 43.0
    assert sample(metrics, "ansible_bridge_run_duration_seconds_bucket", le="5.0") == 1
    assert sample(metrics, "ansible_bridge_last_success_timestamp_seconds") == 1_700_000_000.0


def test_a_failed_run_leaves_the_last_success_alone() -> None:
    times = iter([10.0, 20.0])
    metrics = RunMetrics([PROBE], process=False, clock=lambda: next(times))
    metrics.started(PROBE, "a")
    metrics.finished(PROBE, RunResult(run_id="a", status="successful"), 1.0)
    metrics.started(PROBE, "b")
    metrics.finished(PROBE, RunResult(run_id="b", status="timeout"), 1.0)
    assert sample(metrics, "ansible_bridge_last_success_timestamp_seconds") == 10.0


def test_in_flight_never_goes_below_zero() -> None:
    metrics = RunMetrics([PROBE], process=False)
    metrics.started(PROBE, "a")
    metrics.finished(PROBE, RunResult(run_id="a", status="canceled"), 1.0)
    metrics.finished(PROBE, RunResult(run_id="a", status="canceled"), 1.0)
    metrics.finished(PROBE, RunResult(run_id="never-started", status="error"), 0.0)
    assert sample(metrics, "ansible_bridge_runs_in_flight") == 0
    assert sample(metrics, "ansible_bridge_runs_total", result="canceled") == 2


def test_kinds_are_counted_apart_and_exposed_as_text() -> None:
    metrics = RunMetrics([PROBE, OTHER])
    metrics.started(OTHER, "x")
    metrics.finished(OTHER, RunResult(run_id="x", status="successful"), 2.0)
    text = metrics.exposition().decode()
    assert (
        'ansible_bridge_runs_total{group="other.io",kind="Policy",result="successful"} 1.0' in text
    )
    assert 'ansible_bridge_runs_total{group="test.io",kind="Probe",result="successful"} 0.0' in text
    assert "process_resident_memory_bytes" in text or not Path("/proc/self/stat").exists()
    assert metrics.content_type.startswith("text/plain")


# --- /logs path checks -----------------------------------------------------------------------


def test_default_plurals() -> None:
    assert [plural(k) for k in ("Probe", "Ingress", "Policy", "Gateway", "Box", "Mesh")] == [
        "probes",
        "ingresses",
        "policies",
        "gateways",
        "boxes",
        "meshes",
    ]


@pytest.mark.parametrize("kind", ["Probe", "probe", "PROBE", "probes", "probe.test.io"])
def test_kind_is_matched_case_insensitively_or_by_plural(kind: str) -> None:
    assert find_watch([PROBE, OTHER], kind) is PROBE


def test_an_ambiguous_kind_needs_its_group() -> None:
    twin = make_watch(group="twin.io", version="v1", kind="Probe", playbook=Path("/p.yml"))
    with pytest.raises(LogsError) as e:
        find_watch([PROBE, twin], "probe")
    assert e.value.status == 400
    assert find_watch([PROBE, twin], "probes.twin.io") is twin


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An artifacts root with two runs of Probe ns1/p1 (run2 the newer) and a file outside."""
    artifacts = tmp_path / "root" / "test.io" / "v1" / "Probe" / "ns1" / "p1" / "artifacts"
    for i, run in enumerate(("run1", "run2")):
        (artifacts / run).mkdir(parents=True)
        (artifacts / run / "stdout").write_text(f"output of {run}\n")
        os.utime(artifacts / run, (1000 + i, 1000 + i))
    (tmp_path / "secret").write_text("not to be served")
    return tmp_path / "root"


def test_the_newest_run_is_found_by_mtime(root: Path) -> None:
    found = locate(root, [PROBE], "ns1", "probes", "p1", None)
    assert found.name == "run2" and (found / "stdout").read_text() == "output of run2\n"
    os.utime(found.parent / "run1", (2000, 2000))
    assert locate(root, [PROBE], "ns1", "probe", "p1", None).name == "run1"
    assert [p.name for p in runs(found.parent)] == ["run2", "run1"]


def test_a_run_is_found_by_id(root: Path) -> None:
    assert locate(root, [PROBE], "ns1", "Probe", "p1", "run1").name == "run1"


@pytest.mark.parametrize(
    ("namespace", "kind", "name", "run", "status"),
    [
        ("ns1", "Nope", "p1", None, 404),  # not a watched kind
        ("ns1", "Probe", "p2", None, 404),  # no runs
        ("ns2", "Probe", "p1", None, 404),
        ("ns1", "Probe", "p1", "run9", 404),
        (CLUSTER_SCOPED, "Probe", "p1", None, 404),
        ("..", "Probe", "p1", None, 400),
        ("ns1", "Probe", "..", None, 400),
        ("ns1", "Probe", ".", None, 400),
        ("ns1", "Probe", "p1", "..", 400),
        ("ns1", "Probe", "p1", "../../../../../../../secret", 400),
        ("ns1/../ns1", "Probe", "p1", None, 400),
        ("NS1", "Probe", "p1", None, 400),
        ("ns1", "Probe", "p1/../../p1", None, 400),
        ("ns1", "Probe", "p1\x00", None, 400),
        ("ns1", "Probe", "", None, 400),
        ("ns1", "Probe", "p1", "run1/stdout", 400),
        ("ns1", "Probe", "a" * 254, None, 400),
    ],
)
def test_bad_or_unknown_requests(
    root: Path, namespace: str, kind: str, name: str, run: str | None, status: int
) -> None:
    with pytest.raises(LogsError) as e:
        locate(root, [PROBE], namespace, kind, name, run)
    assert e.value.status == status


def test_a_symlink_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    artifacts = root / "test.io" / "v1" / "Probe" / "ns1" / "p1" / "artifacts"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "stdout").write_text("outside")
    (artifacts / "evil").symlink_to(outside)
    os.utime(artifacts / "evil", (9999, 9999), follow_symlinks=False)
    with pytest.raises(LogsError) as e:
        locate(root, [PROBE], "ns1", "Probe", "p1", "evil")
    assert e.value.status == 400
    # Never a candidate for the newest run either.
    assert locate(root, [PROBE], "ns1", "Probe", "p1", None).name == "run2"


def test_logs_url_quotes_every_part() -> None:
    assert logs_url("http://h:1/", "ns", "probe", "p1") == "http://h:1/logs/ns/probe/p1"
    assert (
        logs_url("http://h:1", "ns", "a/b", "..", run="r 1", follow=True)
        == "http://h:1/logs/ns/a%2Fb/..?run=r+1&follow=1"
    )


def test_colour_codes_are_stripped_across_chunk_boundaries() -> None:
    text = b"\x1b[0;33mchanged: [localhost]\x1b[0m\nok=2 \x1b[0;31mfailed=1\x1b[0m\n"
    for size in (1, 2, 3, 5, 64):
        stripper = AnsiStripper()
        out = b"".join(stripper.feed(text[i : i + size]) for i in range(0, len(text), size))
        assert out + stripper.end() == b"changed: [localhost]\nok=2 failed=1\n"


# --- JSON log lines ----------------------------------------------------------------------------


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "bridge.controller.reconcile", logging.INFO, __file__, 1, "run %s", ("x",), None
    )
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_the_run_context_when_given() -> None:
    line = JsonFormatter().format(_record(run_id="abc", resource="probes.test.io/ns/p1"))
    entry = json.loads(line)
    assert entry["level"] == "INFO" and entry["logger"] == "bridge.controller.reconcile"
    assert entry["message"] == "run x"
    assert entry["run_id"] == "abc" and entry["resource"] == "probes.test.io/ns/p1"
    assert entry["time"].endswith("Z")
    assert "\n" not in line


def test_json_lines_without_context_or_with_an_exception() -> None:
    entry = json.loads(JsonFormatter().format(_record()))
    assert "run_id" not in entry and "resource" not in entry
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record()
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exception"]
