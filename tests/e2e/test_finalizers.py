"""Finalizers end to end: a finalizer playbook that fails keeps the object until it succeeds.

The finalizer playbook (``data/finalize_fail.yml``) records each attempt and fails while a flag
file exists; the test removes the flag and the next retry releases the object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DATA, Bridge, wait_for

pytestmark = pytest.mark.e2e

RECORD = str(DATA / "record.yml")
FINALIZE_FAIL = str(DATA / "finalize_fail.yml")
FINALIZER = "test.ansible-bridge.io/cleanup"


def probe_watch(**extra: object) -> dict[str, object]:
    return {"kind": "Probe", "playbook": RECORD, **extra}


def test_failing_finalizer_keeps_the_object_reports_retries_then_releases_it(
    bridge: Bridge,
) -> None:
    bridge.start([probe_watch(finalizer={"name": FINALIZER, "playbook": FINALIZE_FAIL})])
    key = f"{bridge.namespace}.p"
    attempts = bridge.records / f"{key}.attempts"
    refused = bridge.records / f"{key}.refused"
    flag = bridge.records / f"{key}.block"
    flag.write_text("hold the finalizer\n")
    bridge.create("p", {"message": "x"})
    obj = bridge.wait_ready("p")
    assert FINALIZER in obj["metadata"]["finalizers"]
    assert not attempts.exists()

    bridge.delete("p")

    def count(record: Path) -> int:
        return len(record.read_text().splitlines()) if record.exists() else 0

    def failed_in_status() -> dict[str, Any] | None:
        found = bridge.get("p") or {}
        status = found.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
        last = status.get("lastRun") or {}
        if ready and ready["status"] == "False" and last.get("trigger") == "finalize":
            return found
        return None

    held = wait_for("the finalizer failure in status", failed_in_status)
    status = held["status"]
    assert status["lastRun"]["result"] == "failed"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "Refuse while blocked" in ready["message"]
    assert "blocked by the flag file" in ready["message"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "False" and "runs again" in stalled["message"]
    warnings = wait_for(
        "a FinalizerFailed Warning event",
        lambda: [
            e
            for e in bridge.events("p")
            if e["type"] == "Warning" and e["reason"] == "FinalizerFailed"
        ],
    )
    assert "failed" in warnings[0]["message"]

    # Retried while blocked: the object and its finalizer stay through several attempts.
    wait_for("the finalizer to be refused three times", lambda: count(refused) >= 3)
    still = bridge.get("p")
    assert still is not None
    assert still["metadata"].get("deletionTimestamp")
    assert FINALIZER in still["metadata"]["finalizers"]
    assert not (bridge.records / f"{key}.finalized").exists()

    flag.unlink()
    wait_for("the object to go", lambda: bridge.get("p") is None)
    # Every attempt but the last was refused; the first after the flag went succeeded, and
    # released the object: no attempt came after it.
    assert count(attempts) == count(refused) + 1
    assert (bridge.records / f"{key}.finalized").read_text() == "finalized p\n"
    assert "Finalized" in [e["reason"] for e in bridge.events("p")]
    # The spec's run happened once: the finalizer's retries are not runs of the spec.
    assert len(bridge.runs("p")) == 1
