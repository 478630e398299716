"""The operator's JSON log lines (``--log-format json``)."""

from __future__ import annotations

import json
import logging
import sys

from bridge.app.logformat import JsonFormatter


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
