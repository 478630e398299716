"""The run-policy section of a watches entry: when runs happen, retries, drift checks, status.

Reads ``reconcilePeriod``, ``manageStatus``, ``watchAnnotationsChanges``,
``maxRunnerArtifacts``, ``retry`` and ``drift`` into a :class:`~bridge.model.watch.RunPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.config.watches.keys import KeyReader, type_name
from bridge.model.watch import RunPolicy

_DEFAULT_MAX_ARTIFACTS = 20
_DRIFT_KEYS = ("mode", "interval", "remediate")
_DRIFT_MODES = ("check",)
_RETRY_KEYS = ("limit", "backoff")


def read_policy(keys: KeyReader, entry: Mapping[str, Any]) -> RunPolicy:
    """The run policy of ``entry``."""
    drift_interval, drift_remediate = _drift(keys, entry)
    retry_limit, retry_backoff = _retry(keys, entry)
    return RunPolicy(
        reconcile_period=keys.duration(entry, "reconcilePeriod", None),
        manage_status=keys.boolean(entry, "manageStatus", True),
        watch_annotations_changes=keys.boolean(entry, "watchAnnotationsChanges", False),
        max_runner_artifacts=_max_artifacts(keys, entry),
        retry_limit=retry_limit,
        retry_backoff=retry_backoff,
        drift_interval=drift_interval,
        drift_remediate=drift_remediate,
    )


def _max_artifacts(keys: KeyReader, entry: Mapping[str, Any]) -> int:
    value = entry.get("maxRunnerArtifacts")
    if value is None:
        return _DEFAULT_MAX_ARTIFACTS
    if isinstance(value, bool) or not isinstance(value, int):
        keys.fail("maxRunnerArtifacts", f"expected an integer, got {type_name(value)}")
    if value < 1:
        keys.fail("maxRunnerArtifacts", f"must be at least 1, got {value}")
    return value


def _drift(keys: KeyReader, entry: Mapping[str, Any]) -> tuple[float | None, bool]:
    """``drift``: the seconds between checks (None: no checks) and whether to remediate."""
    raw = keys.section(entry, "drift", "a mapping like {mode: check, interval: 10m}", _DRIFT_KEYS)
    if raw is None:
        return None, False
    mode = raw.get("mode")
    if mode is not None and mode not in _DRIFT_MODES:
        keys.fail("drift.mode", f"expected {' or '.join(_DRIFT_MODES)}, got {type_name(mode)}")
    if "interval" not in raw:
        keys.fail("drift.interval", "missing required key 'interval' (a duration like 10m)")
    interval = keys.duration(raw, "interval", None, prefix="drift.")
    if interval is None:
        keys.fail("drift.interval", "expected a duration (like 10m), got null")
    if interval == 0:
        keys.fail("drift.interval", "must be more than 0; leave out 'drift' to turn checks off")
    return interval, keys.boolean(raw, "remediate", False, prefix="drift.")


def _retry(keys: KeyReader, entry: Mapping[str, Any]) -> tuple[int | None, float | None]:
    """``retry``: how often a failed run is retried, and the first back-off in seconds
    (None: the operator's defaults)."""
    raw = keys.section(entry, "retry", "a mapping like {limit: 3, backoff: 10s}", _RETRY_KEYS)
    if raw is None:
        return None, None
    limit = raw.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        keys.fail("retry.limit", f"expected an integer, got {type_name(limit)}")
    if limit is not None and limit < 0:
        keys.fail("retry.limit", f"must be 0 (no retries) or more, got {limit}")
    backoff = keys.duration(raw, "backoff", None, prefix="retry.")
    if backoff is not None and backoff <= 0:
        keys.fail("retry.backoff", "must be more than 0")
    return limit, backoff
