"""Run metrics fed through the RunObserver API."""

from __future__ import annotations

from pathlib import Path

from bridge.app.metrics import RunMetrics
from bridge.controller.ports import RunObserver
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
    assert isinstance(RunMetrics(process=False), RunObserver)

    class Partial:  # what the check catches: a method of the protocol missing
        def queued(self, watch: object) -> None:
            pass

    assert not isinstance(Partial(), RunObserver)


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
