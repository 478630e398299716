"""The local executor's adjustments to the libraries under ansible-runner."""

from __future__ import annotations

from ptyprocess import PtyProcess  # type: ignore[import-untyped]

from bridge.executors.local import skip_close_delay


def test_closing_a_reaped_child_does_not_wait() -> None:
    skip_close_delay()
    skip_close_delay()  # once is enough; a second call changes nothing
    child = PtyProcess.spawn(["true"])
    child.wait()
    assert child.terminated
    child.close()
    assert child.closed and child.delayafterclose == 0


def test_closing_a_live_child_still_waits_and_ends_it() -> None:
    skip_close_delay()
    child = PtyProcess.spawn(["sleep", "30"])
    assert child.isalive()
    child.close(force=True)
    assert child.closed and child.delayafterclose == 0.1
    assert not child.isalive() and child.signalstatus is not None
