"""Prometheus metrics of the bridge's runs, kept in a registry of their own by a RunObserver.

Labels are the watched kind and its API group only: never a resource's name, namespace or
content, so the number of series is bounded by the watches file and nothing of a resource leaks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from bridge.model.records import RunResult, RunStatus
from bridge.model.watch import Watch

#: Seconds; playbook runs take from about a second to hours.
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

_LABELS = ("kind", "group")
#: The results of ``ansible_bridge_checks_total`` (see bridge.controller.ports.CheckVerdict).
CHECK_VERDICTS = ("drifted", "clean", "failed")


def _labels(watch: Watch) -> tuple[str, str]:
    return watch.kind, watch.group


class RunMetrics:
    """A :class:`~bridge.controller.ports.RunObserver` that counts, times and gauges runs per
    kind."""

    #: The Content-Type of :meth:`exposition` (Prometheus' text format).
    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        watches: Iterable[Watch] = (),
        *,
        process: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Series of every kind in ``watches`` start at 0; ``process``: add the process's
        CPU, memory and file descriptor metrics (``process_*``)."""
        self.registry = CollectorRegistry()
        self._clock = clock
        self.runs = Counter(
            "ansible_bridge_runs",
            "Runs finished, by result (successful, failed, timeout, canceled, error).",
            (*_LABELS, "result"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "ansible_bridge_run_duration_seconds",
            "How long runs took, from the runner's start to its result.",
            _LABELS,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ansible_bridge_runs_in_flight",
            "Runs executing now.",
            _LABELS,
            registry=self.registry,
        )
        self.queued_runs = Gauge(
            "ansible_bridge_runs_queued",
            "Runs waiting for one of the --max-concurrent-runs slots.",
            _LABELS,
            registry=self.registry,
        )
        self.last_success = Gauge(
            "ansible_bridge_last_success_timestamp_seconds",
            "Unix time of the last successful run (absent until there is one).",
            _LABELS,
            registry=self.registry,
        )
        self.checks = Counter(
            "ansible_bridge_checks",
            "Drift checks (--check --diff runs) finished, by verdict (drifted, clean, failed).",
            (*_LABELS, "result"),
            registry=self.registry,
        )
        self.leader = Gauge(
            "ansible_bridge_leader",
            "1 while this replica leads and runs playbooks (always, without --leader-elect); "
            "0 while it stands by.",
            registry=self.registry,
        )
        if process:
            ProcessCollector(registry=self.registry)
        # Run ids in flight, so a stray or repeated finished() never drives the gauge below 0.
        self._running: dict[str, tuple[str, str]] = {}
        for watch in watches:
            labels = _labels(watch)
            for result in get_args(RunStatus):
                self.runs.labels(*labels, result)
            self.duration.labels(*labels)
            self.in_flight.labels(*labels)
            self.queued_runs.labels(*labels)
            if watch.policy.drift_interval is not None:
                for verdict in CHECK_VERDICTS:
                    self.checks.labels(*labels, verdict)

    # --- RunObserver ------------------------------------------------------------------------

    def queued(self, watch: Watch) -> None:
        self.queued_runs.labels(*_labels(watch)).inc()

    def dequeued(self, watch: Watch) -> None:
        self.queued_runs.labels(*_labels(watch)).dec()

    def started(self, watch: Watch, run_id: str) -> None:
        labels = _labels(watch)
        if run_id not in self._running:
            self._running[run_id] = labels
            self.in_flight.labels(*labels).inc()

    def finished(self, watch: Watch, result: RunResult, seconds: float) -> None:
        labels = _labels(watch)
        started = self._running.pop(result.run_id, None)
        if started is not None:
            self.in_flight.labels(*started).dec()
        self.runs.labels(*labels, result.status).inc()
        self.duration.labels(*labels).observe(max(0.0, seconds))
        if result.succeeded:
            self.last_success.labels(*labels).set(self._clock())

    def checked(self, watch: Watch, verdict: str, seconds: float) -> None:
        self.checks.labels(*_labels(watch), verdict).inc()

    # --- exposition -------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format (the body of ``/metrics``)."""
        return generate_latest(self.registry)
