"""Leader election without a cluster: Lease records, the expiry rule, timings, identity, and the
elector's campaign/renew/release against an in-memory Lease store with resourceVersions."""

from __future__ import annotations

import argparse
import asyncio
import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.cli.assembly import leader_election as leader_election_settings
from bridge.cli.main import build_parser
from bridge.config.settings import LeaderElectionSettings
from bridge.kube.leader import (
    LeaderElector,
    LeaseRecord,
    can_acquire,
    claim,
    default_namespace,
    expired,
    format_time,
    lease_body,
    lease_seconds,
    make_identity,
    parse_time,
    read_record,
    released,
    timing_error,
)
from bridge.model.errors import ConflictError, TemporaryError

T0 = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


# --- records ---------------------------------------------------------------------------------


def test_times_are_micro_times_in_utc_and_parse_back() -> None:
    assert format_time(T0) == "2026-01-02T03:04:05.000006Z"
    assert format_time(T0.replace(microsecond=0)) == "2026-01-02T03:04:05.000000Z"
    assert parse_time(format_time(T0)) == T0
    assert parse_time("2026-01-02T03:04:05Z") == T0.replace(microsecond=0)
    assert parse_time("2026-01-02T04:04:05.000006+01:00") == T0
    for bad in (None, "", "yesterday", 5):
        assert parse_time(bad) is None


def test_lease_body_round_trips_through_read_record() -> None:
    record = LeaseRecord("pod-a", 15, T0, T0 + timedelta(seconds=2), 3)
    body = lease_body("ops", "bridge-leader", record, "42")
    assert body["apiVersion"] == "coordination.k8s.io/v1" and body["kind"] == "Lease"
    assert body["metadata"] == {
        "name": "bridge-leader",
        "namespace": "ops",
        "resourceVersion": "42",
    }
    assert body["spec"] == {
        "holderIdentity": "pod-a",
        "leaseDurationSeconds": 15,
        "leaseTransitions": 3,
        "acquireTime": "2026-01-02T03:04:05.000006Z",
        "renewTime": "2026-01-02T03:04:07.000006Z",
    }
    assert read_record(body) == record
    assert "resourceVersion" not in lease_body("ops", "l", record)["metadata"]


def test_a_lease_with_missing_or_odd_fields_reads_as_empty() -> None:
    assert read_record({}) == LeaseRecord()
    odd = {"spec": {"leaseDurationSeconds": "x", "leaseTransitions": None, "renewTime": "?"}}
    assert read_record(odd) == LeaseRecord()


# --- the expiry rule -------------------------------------------------------------------------


def test_a_lease_expires_after_renew_time_plus_duration_when_unchanged_that_long() -> None:
    record = LeaseRecord("pod-a", 15, T0, T0, 0)
    assert not expired(record, T0 + timedelta(seconds=14.9), unchanged_for=14.9)
    assert not expired(record, T0 + timedelta(seconds=15), unchanged_for=15)
    assert expired(record, T0 + timedelta(seconds=15.1), unchanged_for=15.1)


def test_a_standby_does_not_trust_old_timestamps_until_it_saw_the_lease_still_that_long() -> None:
    # The holder's clock may lag ours (or we just started): its renewTime looks old, but the
    # record must also stay unchanged for a whole lease duration as this replica sees it.
    record = LeaseRecord("pod-a", 15, T0, T0, 0)
    later = T0 + timedelta(hours=1)
    assert not expired(record, later, unchanged_for=3)
    assert expired(record, later, unchanged_for=16)
    assert expired(LeaseRecord("pod-a", 15), later, unchanged_for=16)  # no renewTime at all


def test_who_may_acquire() -> None:
    held = LeaseRecord("pod-a", 15, T0, T0, 0)
    soon = T0 + timedelta(seconds=1)
    assert not can_acquire(held, "pod-b", soon, unchanged_for=1)
    assert can_acquire(held, "pod-a", soon, unchanged_for=1)  # ours: a renewal
    assert can_acquire(released(held, T0), "pod-b", soon, unchanged_for=0)  # released: at once
    assert can_acquire(held, "pod-b", T0 + timedelta(seconds=20), unchanged_for=20)


def test_claiming_a_new_lease_a_held_one_and_taking_one_over() -> None:
    new = claim(None, "pod-a", 15, T0)
    assert new == LeaseRecord("pod-a", 15, T0, T0, 0)
    later = T0 + timedelta(seconds=2)
    renewed = claim(new, "pod-a", 15, later)
    assert renewed == LeaseRecord("pod-a", 15, T0, later, 0)  # acquireTime kept
    taken = claim(renewed, "pod-b", 10, later)
    assert taken == LeaseRecord("pod-b", 10, later, later, 1)  # one more transition


def test_releasing_empties_the_holder_and_shortens_the_lease_to_one_second() -> None:
    record = LeaseRecord("pod-a", 15, T0, T0, 4)
    later = T0 + timedelta(seconds=9)
    assert released(record, later) == LeaseRecord("", 1, later, later, 4)


def test_lease_seconds_round_up_to_whole_seconds() -> None:
    assert [lease_seconds(s) for s in (0.2, 1, 1.5, 15)] == [1, 1, 2, 15]


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "problem"),
    [
        (15, 10, 2, None),
        (4, 3, 0.5, None),
        (10, 10, 2, "--leader-elect-lease must be longer than --leader-elect-renew-deadline"),
        (15, 2.4, 2, "--leader-elect-renew-deadline must be longer than 1.2 x"),
        (15, 10, 0, "--leader-elect-retry-period must be more than 0"),
    ],
)
def test_timings_are_checked_as_client_go_does(
    lease: float, renew: float, retry: float, problem: str | None
) -> None:
    found = timing_error(lease, renew, retry)
    assert found == problem if problem is None else found is not None and problem in found


# --- identity, namespace, flags --------------------------------------------------------------


def test_identity_is_the_pod_name_else_hostname_and_suffix() -> None:
    assert make_identity({"POD_NAME": "bridge-7d9-x2"}, "host", "ab12") == "bridge-7d9-x2"
    assert make_identity({}, "host", "ab12") == "host_ab12"


def test_namespace_is_pod_namespace_else_service_account_else_default(tmp_path: Path) -> None:
    account = tmp_path / "namespace"
    assert default_namespace({"POD_NAMESPACE": "ops"}, account) == "ops"
    assert default_namespace({}, account) == "default"
    account.write_text("from-account\n")
    assert default_namespace({}, account) == "from-account"
    assert default_namespace({"POD_NAMESPACE": "ops"}, account) == "ops"


def _run_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *flags])


def test_flags_give_the_settings_with_client_go_defaults(monkeypatch: Any) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "node1")
    assert leader_election_settings(_run_args(), {}) == LeaderElectionSettings()
    settings = leader_election_settings(_run_args("--leader-elect"), {"POD_NAMESPACE": "ops"})
    assert isinstance(settings, LeaderElectionSettings)
    assert settings.enabled and settings.namespace == "ops"
    assert settings.lease_name == "ansible-bridge-leader"
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (15, 10, 2)
    assert settings.identity.startswith("node1_") and len(settings.identity) > len("node1_")
    tuned = leader_election_settings(
        _run_args(
            "--leader-elect",
            "--leader-elect-namespace=sys",
            "--leader-elect-id=mine",
            "--leader-elect-lease=4s",
            "--leader-elect-renew-deadline=3",
            "--leader-elect-retry-period=500ms",
        ),
        {"POD_NAME": "pod-0"},
    )
    assert tuned == LeaderElectionSettings(True, "sys", "mine", "pod-0", 4.0, 3.0, 0.5)


def test_bad_leader_flags_exit_2_naming_the_flag(capsys: Any) -> None:
    assert (
        leader_election_settings(_run_args("--leader-elect", "--leader-elect-lease=soon"), {}) == 2
    )
    assert "--leader-elect-lease: 'soon' is not a duration" in capsys.readouterr().err
    args = _run_args(
        "--leader-elect", "--leader-elect-lease=5s", "--leader-elect-renew-deadline=8s"
    )
    assert leader_election_settings(args, {}) == 2
    assert "must be longer than --leader-elect-renew-deadline" in capsys.readouterr().err


# --- the elector against an in-memory store --------------------------------------------------


class Store:
    """Leases in memory, with the API server's resourceVersion check on replace."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 0
        self.failing = False
        self.writes: list[str] = []

    def _check(self) -> None:
        if self.failing:
            raise TemporaryError("API server unavailable")

    def _stored(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = copy.deepcopy(dict(body))
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.writes.append(obj["spec"]["holderIdentity"])
        return obj

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        found = self.leases.get((namespace, name))
        return copy.deepcopy(found) if found else None

    async def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        self._check()
        key = (namespace, body["metadata"]["name"])
        if key in self.leases:
            raise ConflictError("already exists")
        self.leases[key] = self._stored(body)
        return copy.deepcopy(self.leases[key])

    async def replace(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        self._check()
        key = (namespace, body["metadata"]["name"])
        current = self.leases.get(key)
        if current is None:
            return None
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ConflictError("the object has been modified")
        self.leases[key] = self._stored(body)
        return copy.deepcopy(self.leases[key])

    def close(self) -> None:
        pass

    def record(self) -> LeaseRecord:
        return read_record(self.leases[("ops", "leader")])


def settings(identity: str, lease: float = 1.0, renew: float = 0.6, retry: float = 0.1) -> Any:
    return LeaderElectionSettings(True, "ops", "leader", identity, lease, renew, retry)


def test_one_candidate_leads_and_the_other_stands_by_until_it_releases() -> None:
    async def scenario() -> None:
        store = Store()
        changes: list[tuple[str, bool]] = []
        a = LeaderElector(settings("a"), store, on_change=lambda v: changes.append(("a", v)))
        b = LeaderElector(settings("b"), store, on_change=lambda v: changes.append(("b", v)))
        ready = asyncio.Event()
        assert await a.campaign(ready) and a.is_leader and ready.is_set()
        a.start_renewing()
        b_campaign = asyncio.create_task(b.campaign())
        await asyncio.sleep(1.5)  # longer than the lease: only renewals keep b out
        assert not b_campaign.done() and not b.is_leader
        assert store.record().holder == "a" and store.record().transitions == 0
        await a.close()  # releases: b takes over at its next attempt
        assert store.record().holder in ("", "b")
        assert await asyncio.wait_for(b_campaign, 1.0)
        assert store.record().holder == "b" and store.record().transitions == 1
        assert changes == [("a", True), ("a", False), ("b", True)]
        await b.close()
        assert store.record().holder == ""

    asyncio.run(scenario())


class _VirtualSelector:
    """A selector that never waits: a select() with a timeout and nothing ready moves the
    loop's virtual clock forward by that timeout instead (the store is in memory, no I/O)."""

    def __init__(self, real: Any, loop: VirtualTimeLoop) -> None:
        self._real, self._loop = real, loop

    def select(self, timeout: float | None = None) -> Any:
        ready = self._real.select(0)
        if not ready and timeout is not None and timeout > 0:
            self._loop.now += timeout
        return ready

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is virtual: timers fire in order, at once, and ``time()`` says
    when they were due. Timings are then exact, whatever the machine's load."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self._selector = _VirtualSelector(self._selector, self)  # type: ignore[has-type]

    def time(self) -> float:
        return self.now


def test_a_leader_that_cannot_renew_loses_after_the_renew_deadline() -> None:
    loop = VirtualTimeLoop()
    lost_at: list[float] = []

    async def scenario() -> None:
        store = Store()
        a = LeaderElector(
            settings("a"),
            store,
            monotonic=loop.time,
            on_change=lambda leading: None if leading else lost_at.append(loop.time()),
        )
        assert await a.campaign()
        won = loop.time()
        a.start_renewing()
        store.failing = True
        await asyncio.wait_for(a.halt.wait(), 5.0)
        # Not before the renew deadline (0.6 s: renewals may still succeed until then), and
        # before the lease (1 s) could expire for a standby: it stops first.
        assert 0.6 <= lost_at[0] - won < 1.0
        assert not a.is_leader and a.lost and "not renewed for 0.6s" in a.lost
        store.failing = False
        await a.close()  # lost: nothing to release
        assert store.record().holder == "a"

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()


def test_a_leader_that_sees_another_holder_loses_at_once() -> None:
    async def scenario() -> None:
        store = Store()
        a = LeaderElector(settings("a", lease=30, renew=20), store)
        assert await a.campaign()
        a.start_renewing()
        lease = store.leases[("ops", "leader")]
        stolen = claim(store.record(), "intruder", 30, datetime.now(UTC))
        store.leases[("ops", "leader")] = store._stored(
            lease_body("ops", "leader", stolen, lease["metadata"]["resourceVersion"])
        )
        await asyncio.wait_for(a.halt.wait(), 2.0)
        assert a.lost and "held by intruder" in a.lost
        await a.close()
        assert store.record().holder == "intruder"

    asyncio.run(scenario())


def test_an_expired_lease_is_taken_over_by_exactly_one_of_two_candidates() -> None:
    async def scenario() -> None:
        store = Store()
        dead = LeaderElector(settings("dead"), store)
        assert await dead.campaign()  # never renews: as if killed
        b = LeaderElector(settings("b"), store)
        c = LeaderElector(settings("c"), store)
        loop = asyncio.get_running_loop()
        started = loop.time()
        campaigns = {asyncio.create_task(b.campaign()), asyncio.create_task(c.campaign())}
        done, pending = await asyncio.wait(campaigns, return_when=asyncio.FIRST_COMPLETED)
        assert loop.time() - started >= 1.0  # not before the lease expired
        winner = b if b.is_leader else c
        winner.start_renewing()
        await asyncio.sleep(1.5)
        assert len(done) == 1 and len(pending) == 1 and [b.is_leader, c.is_leader].count(True) == 1
        assert store.record().holder == winner.identity and store.record().transitions == 1
        loser = c if winner is b else b
        loser.halt.set()
        assert await pending.pop() is False
        await winner.close()

    asyncio.run(scenario())


def test_an_update_with_a_stale_resource_version_does_not_win() -> None:
    class Racing(Store):
        async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
            found = await super().get(namespace, name)
            # Someone else writes between our read and our update.
            current = self.leases[(namespace, name)]
            self.leases[(namespace, name)] = self._stored(current)
            return found

    async def scenario() -> None:
        store = Racing()
        store.leases[("ops", "leader")] = store._stored(
            lease_body("ops", "leader", LeaseRecord("", 1, T0, T0, 2))
        )
        b = LeaderElector(settings("b"), store)
        with pytest.raises(ConflictError):
            await b._attempt()
        assert not b.is_leader and store.record().holder == ""

    asyncio.run(scenario())


def test_a_signal_while_standing_by_ends_the_campaign() -> None:
    async def scenario() -> None:
        store = Store()
        a = LeaderElector(settings("a", lease=30, renew=20), store)
        assert await a.campaign()
        b = LeaderElector(settings("b", lease=30, renew=20), store)
        campaign = asyncio.create_task(b.campaign())
        await asyncio.sleep(0.3)
        b.halt.set()  # what the SIGTERM handler does
        assert await asyncio.wait_for(campaign, 1.0) is False
        assert store.record().holder == "a"

    asyncio.run(scenario())
