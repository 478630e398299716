"""When runs happen across resources (bridge.controller.scheduling): jitter and prioritised run
slots."""

from __future__ import annotations

import asyncio
import copy
import statistics
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.config.settings import OperatorSettings, RunnerSettings
from bridge.controller import scheduling
from bridge.controller.reconcile import Controller, decide
from bridge.controller.scheduling import BACKGROUND, URGENT, PrioritySlots, jitter, priority
from bridge.executors import EventCallback
from bridge.kube.client import ObjectKey
from bridge.model.records import HostStats, RunResult, RunSpec
from tests.unit.helpers import make_watch

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
WATCH = make_watch(group="a.io", version="v1", kind="A", playbook=Path("/p.yml"))


# --- jitter -----------------------------------------------------------------------------------


def test_jitter_is_fixed_per_resource_and_within_a_tenth_of_the_period() -> None:
    values = [jitter(600.0, f"uid-{i}") for i in range(1000)]
    assert all(0.0 <= v < 60.0 for v in values)
    assert values == [jitter(600.0, f"uid-{i}") for i in range(1000)]  # deterministic
    # Spread over the whole range, not bunched: 1,000 resources hardly share a second.
    assert min(values) < 1.0 and max(values) > 59.0
    assert 25.0 < statistics.mean(values) < 35.0
    assert len({int(v) for v in values}) == 60


def test_jitter_is_capped_for_long_periods() -> None:
    values = [jitter(86400.0, f"uid-{i}") for i in range(200)]
    assert all(0.0 <= v < scheduling.JITTER_CAP for v in values)
    assert max(values) > scheduling.JITTER_CAP * 0.9


def test_no_key_or_no_period_means_no_jitter() -> None:
    assert jitter(600.0, "") == 0.0
    assert jitter(0.0, "uid") == 0.0


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def ran(uid: str, ago: float) -> dict[str, Any]:
    """A resource whose generation 1 ran successfully ``ago`` seconds before NOW."""
    last_run = {
        "generation": 1,
        "result": "successful",
        "finishedAt": stamp(NOW - timedelta(0, ago)),
    }
    return {
        "metadata": {"generation": 1, "uid": uid},
        "status": {"observedGeneration": 1, "lastRun": last_run},
    }


def test_periodic_runs_fall_due_early_by_the_resources_jitter() -> None:
    watch = make_watch(WATCH, reconcile_period=600.0)
    wakes = set()
    for uid in ("a", "b", "c", "d"):
        offset = jitter(600.0, uid)
        assert offset > 0
        waiting = decide(ran(uid, 0), watch, done=None, now=NOW)
        assert waiting.kind == "none"
        assert waiting.wake_at == NOW + timedelta(seconds=600 - offset)
        wakes.add(waiting.wake_at)
        # Due at that moment, not before; never later than the period.
        before = decide(ran(uid, 0), watch, done=None, now=waiting.wake_at - timedelta(0, 0.01))
        assert before.kind == "none"
        due = decide(ran(uid, 0), watch, done=None, now=waiting.wake_at)
        assert (due.kind, due.trigger) == ("run", "periodic")
    assert len(wakes) == 4  # created together, due apart


def test_drift_checks_fall_due_early_by_the_resources_jitter() -> None:
    watch = make_watch(WATCH, drift_interval=1000.0)
    waiting = decide(ran("x", 0), watch, done=None, now=NOW)
    assert waiting.wake_at == NOW + timedelta(seconds=1000 - jitter(1000.0, "x"))
    due = decide(ran("x", 0), watch, done=None, now=NOW + timedelta(seconds=1000))
    assert due.kind == "check"


# --- priority classes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trigger", ["create", "update", "requested", "resume", "finalize", "annotation", "dependent"]
)
def test_runs_for_new_or_changed_resources_are_urgent(trigger: Any) -> None:
    assert priority(trigger) == URGENT


@pytest.mark.parametrize("trigger", ["periodic", "drift", "retry"])
def test_periodic_drift_and_retry_runs_are_background(trigger: Any) -> None:
    assert priority(trigger) == BACKGROUND


# --- the slots (pure asyncio) -----------------------------------------------------------------


def run(script: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(script(), timeout=30))


async def settle() -> None:
    """Let every ready task run until none is (a few loop turns)."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_free_slots_are_taken_at_once_then_waiters_queue() -> None:
    async def script() -> None:
        slots = PrioritySlots(2)
        await slots.acquire(slots.ticket(BACKGROUND))
        assert not slots.locked()
        await slots.acquire(slots.ticket(BACKGROUND))
        assert slots.locked()
        third = asyncio.create_task(slots.acquire(slots.ticket(URGENT)))
        await settle()
        assert not third.done() and slots.waiting == 1
        slots.release()
        await settle()
        assert third.done() and slots.waiting == 0 and slots.locked()
        slots.release()
        slots.release()
        assert not slots.locked()

    run(script)


def test_urgent_waiters_go_before_background_ones_fifo_within_a_class() -> None:
    order: list[str] = []

    async def script() -> None:
        slots = PrioritySlots(1)
        await slots.acquire(slots.ticket(URGENT))  # busy

        async def wait(name: str, prio: int) -> None:
            await slots.acquire(slots.ticket(prio))
            order.append(name)
            await settle()
            slots.release()

        waiters = []
        for name, prio in [
            ("periodic-1", BACKGROUND),
            ("periodic-2", BACKGROUND),
            ("create-1", URGENT),
            ("periodic-3", BACKGROUND),
            ("update-1", URGENT),
        ]:
            waiters.append(asyncio.create_task(wait(name, prio)))
            await settle()  # arrival order
        assert order == []
        slots.release()
        await asyncio.gather(*waiters)

    run(script)
    assert order == ["create-1", "update-1", "periodic-1", "periodic-2", "periodic-3"]


def test_a_newcomer_never_overtakes_the_queue() -> None:
    async def script() -> None:
        slots = PrioritySlots(1)
        await slots.acquire(slots.ticket(URGENT))
        waiter = asyncio.create_task(slots.acquire(slots.ticket(BACKGROUND)))
        await settle()
        slots.release()  # handed to the waiter, not back to the pool
        assert slots.locked()
        late = asyncio.create_task(slots.acquire(slots.ticket(URGENT)))
        await settle()
        assert waiter.done() and not late.done()
        slots.release()
        await settle()
        assert late.done()

    run(script)


def test_a_promoted_waiter_moves_up_keeping_its_arrival_order() -> None:
    order: list[str] = []

    async def script() -> None:
        slots = PrioritySlots(1)
        await slots.acquire(slots.ticket(URGENT))
        tickets = {}

        async def wait(name: str, prio: int) -> None:
            tickets[name] = ticket = slots.ticket(prio)
            await slots.acquire(ticket)
            order.append(name)
            slots.release()

        tasks = []
        for name, prio in [("bg-1", BACKGROUND), ("bg-2", BACKGROUND), ("urgent", URGENT)]:
            tasks.append(asyncio.create_task(wait(name, prio)))
            await settle()
        slots.promote(tickets["bg-2"], URGENT)  # e.g. its resource changed meanwhile
        slots.promote(tickets["bg-2"], URGENT)  # twice is once
        slots.promote(tickets["urgent"], BACKGROUND)  # never demoted
        assert slots.waiting == 3
        slots.release()
        await asyncio.gather(*tasks)

    run(script)
    assert order == ["bg-2", "urgent", "bg-1"]


def test_a_canceled_waiter_gives_up_its_place() -> None:
    async def script() -> None:
        slots = PrioritySlots(1)
        await slots.acquire(slots.ticket(URGENT))
        gone = asyncio.create_task(slots.acquire(slots.ticket(URGENT)))
        stays = asyncio.create_task(slots.acquire(slots.ticket(BACKGROUND)))
        await settle()
        gone.cancel()
        await settle()
        assert gone.cancelled() and slots.waiting == 1
        slots.release()
        await settle()
        assert stays.done()
        slots.release()
        assert not slots.locked()

    run(script)


def test_a_slot_granted_to_a_waiter_canceled_before_it_ran_is_passed_on() -> None:
    async def script() -> None:
        slots = PrioritySlots(1)
        await slots.acquire(slots.ticket(URGENT))
        first = asyncio.create_task(slots.acquire(slots.ticket(URGENT)))
        second = asyncio.create_task(slots.acquire(slots.ticket(URGENT)))
        await settle()
        slots.release()  # granted to first...
        first.cancel()  # ...which is canceled before it resumes
        await settle()
        assert first.cancelled()
        assert second.done() and not second.cancelled()
        slots.release()
        assert not slots.locked()

    run(script)


def test_capacity_is_at_least_one() -> None:
    async def script() -> None:
        slots = PrioritySlots(0)
        assert not slots.locked()
        await slots.acquire(slots.ticket(URGENT))
        assert slots.locked()

    run(script)


# --- through the controller (fake cluster and executor) ---------------------------------------


class Cluster:
    """Objects in memory by name; status patches merge into them."""

    def __init__(self) -> None:
        self.bodies: dict[str, dict[str, Any]] = {}

    def add(self, name: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
        self.bodies[name] = {
            "apiVersion": "a.io/v1",
            "kind": "A",
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": f"uid-{name}",
                "generation": 1,
                "resourceVersion": "1",
            },
            "spec": {},
            "status": status or {},
        }
        return copy.deepcopy(self.bodies[name])

    def change(self, name: str) -> dict[str, Any]:
        metadata = self.bodies[name]["metadata"]
        metadata["generation"] += 1
        metadata["resourceVersion"] = str(int(metadata["resourceVersion"]) + 1)
        return copy.deepcopy(self.bodies[name])

    async def patch_status(self, key: ObjectKey, status: Mapping[str, Any]) -> dict[str, Any]:
        body = self.bodies[key.name]
        body["status"] = {**body.get("status", {}), **copy.deepcopy(dict(status))}
        metadata = body["metadata"]
        metadata["resourceVersion"] = str(int(metadata["resourceVersion"]) + 1)
        return copy.deepcopy(body)

    async def get(self, key: ObjectKey) -> dict[str, Any]:
        return copy.deepcopy(self.bodies[key.name])

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return None

    async def set_finalizers(
        self, key: ObjectKey, finalizers: list[str], resource_version: str
    ) -> dict[str, Any]:
        return copy.deepcopy(self.bodies[key.name])


class GatedExecutor:
    """Each run waits until the test lets it end; records the order runs started in."""

    supports_check = True

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self.gates: list[asyncio.Event] = []
        self.moved = asyncio.Event()  # set when a run starts

    async def run(self, spec: RunSpec, on_event: EventCallback) -> RunResult:
        gate = asyncio.Event()
        self.started.append((spec.resource.name, spec.trigger))
        self.gates.append(gate)
        self.moved.set()
        await gate.wait()
        return RunResult(spec.run_id, "successful", 0, {"localhost": HostStats(ok=1)})

    async def close(self) -> None:
        pass


def test_the_controller_serves_new_and_changed_resources_before_periodic_runs(
    tmp_path: Path,
) -> None:
    playbook = tmp_path / "p.yml"
    playbook.write_text("- hosts: localhost\n  tasks: []\n")
    watch = make_watch(
        group="a.io", version="v1", kind="A", playbook=playbook, reconcile_period=60.0
    )
    cluster, executor = Cluster(), GatedExecutor()
    settings = OperatorSettings(
        watches_file=tmp_path / "watches.yaml",
        watches=(watch,),
        runner=RunnerSettings(max_concurrent_runs=1, artifacts_dir=tmp_path / "artifacts"),
    )
    long_ago = {
        "observedGeneration": 1,
        "lastRun": {"generation": 1, "result": "successful", "finishedAt": "2020-01-01T00:00:00Z"},
    }

    async def started(count: int) -> None:
        while len(executor.started) < count:
            executor.moved.clear()
            await executor.moved.wait()

    async def script() -> None:
        controller = Controller(settings, executor, cluster, lambda *args: None)
        try:
            controller.observe(watch, "as", None, cluster.add("busy"))
            await started(1)  # holds the only slot
            for name in ("old1", "old2", "old3"):  # periodic runs due: they queue
                controller.observe(watch, "as", None, cluster.add(name, long_ago))
                await settle()
            controller.observe(watch, "as", None, cluster.add("fresh"))
            await settle()
            # old3 changes while it waits: it moves up, ahead of what came after it.
            controller.observe(watch, "as", "MODIFIED", cluster.change("old3"))
            await settle()
            for count in range(2, 6):
                executor.gates[-1].set()
                await started(count)
            executor.gates[-1].set()
            await asyncio.sleep(0.05)
        finally:
            await controller.shutdown()

    run(script)
    assert executor.started == [
        ("busy", "create"),
        ("old3", "update"),
        ("fresh", "create"),
        ("old1", "periodic"),
        ("old2", "periodic"),
    ]
