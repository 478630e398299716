"""The settings tree (bridge.config.settings): each default is one of the values it allows."""

from __future__ import annotations

from pathlib import Path

from bridge.config.settings import (
    JOB_TRANSPORTS,
    LOG_LEVELS,
    JobSettings,
    LeaderElectionSettings,
    OperatorSettings,
    RunnerSettings,
)
from bridge.model.watch import EXECUTOR_NAMES


def test_the_defaults_are_valid_values() -> None:
    settings = OperatorSettings(watches_file=Path("watches.yaml"), watches=())
    assert settings.log_level in LOG_LEVELS
    assert JobSettings().transport in JOB_TRANSPORTS
    assert RunnerSettings().executor in EXECUTOR_NAMES
    assert RunnerSettings().max_concurrent_runs >= 1


def test_leader_election_defaults_keep_client_gos_timing_order() -> None:
    election = LeaderElectionSettings()
    assert election.lease_duration > election.renew_deadline > election.retry_period > 0
