"""The benchmark's knobs, read once from the environment (``BENCH_*``) into a frozen value."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: The repository's root (the parent of the ``bench`` package).
REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("latency", "throughput", "scale", "peer", "soak")
#: The scenarios run when ``BENCH_SCENARIOS`` is not set (the soak takes its own 10-15 minutes
#: and is asked for by name: ``BENCH_SCENARIOS=soak``).
DEFAULT_SCENARIOS = ("latency", "throughput", "scale", "peer")


class SettingsError(ValueError):
    """A ``BENCH_*`` variable has a value the benchmark cannot use; the message names it."""


@dataclass(frozen=True)
class BenchSettings:
    #: Repetitions per system and playbook in the latency scenario (the median is reported).
    reps: int = 20
    #: Resources created at once in the throughput scenario (and bare runs through xargs).
    throughput: int = 200
    #: Resource counts of the scale scenario, ascending; each step adds to the previous one.
    scale: tuple[int, ...] = (1000, 5000)
    #: Seconds of idle over which CPU use is measured in the scale scenario.
    idle_seconds: float = 30.0
    #: Scenarios to run, in this order.
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    #: Runs in flight at once: the operators' --max-concurrent-runs and xargs -P.
    concurrency: int = os.cpu_count() or 1
    #: Where the result table is written.
    out: Path = RESULTS / "latest.md"
    #: Soak: resources, each run every ``soak_period`` seconds (its watch's reconcilePeriod).
    #: NB: 500 resources every 180 s ask ~2.8 runs/s of the ~4.5 a 2-core machine sustains with
    #: the warm executor: enough headroom for the catch-up after each disruption.
    soak_resources: int = 500
    soak_period: float = 180.0
    #: Soak: seconds from the resources' creation to the end; the five disruptions (API server
    #: restart, operator SIGKILL, restart, SIGKILL, restart) come at 10 %, 20 %, ... 50 % of it.
    soak_seconds: float = 720.0
    #: Soak: seconds the API server stays down at each of its restarts.
    soak_outage: float = 30.0
    #: Soak: seconds after the last disruption within which every resource must be Ready.
    soak_settle: float = 300.0
    #: Soak: seconds between two samples of the operator's RSS.
    soak_sample: float = 5.0
    #: Soak: where its report is written.
    soak_out: Path = RESULTS / "soak.md"


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: not a number") from None
    if not value >= minimum:  # NB: also refuses nan
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum:g}")
    return value


def from_env(environ: Mapping[str, str]) -> BenchSettings:
    """``BENCH_REPS``, ``BENCH_THROUGHPUT``, ``BENCH_SCALE`` (comma-separated counts),
    ``BENCH_IDLE_SECONDS``, ``BENCH_SCENARIOS`` (comma-separated), ``BENCH_CONCURRENCY``,
    ``BENCH_OUT`` (the result file); the soak's ``BENCH_SOAK_RESOURCES``, ``BENCH_SOAK_PERIOD``,
    ``BENCH_SOAK_SECONDS``, ``BENCH_SOAK_OUTAGE``, ``BENCH_SOAK_SETTLE`` (seconds),
    ``BENCH_SOAK_OUT`` (its report)."""
    scale_raw = environ.get("BENCH_SCALE", "")
    scale: tuple[int, ...] = BenchSettings.scale
    if scale_raw:
        try:
            scale = tuple(sorted({int(p) for p in scale_raw.split(",") if p.strip()}))
        except ValueError:
            raise SettingsError(f"BENCH_SCALE={scale_raw!r}: not a list of integers") from None
        if not scale or scale[0] < 1:
            raise SettingsError(f"BENCH_SCALE={scale_raw!r}: counts must be at least 1")
    scenarios = BenchSettings.scenarios
    scenarios_raw = environ.get("BENCH_SCENARIOS", "")
    if scenarios_raw:
        wanted = [s.strip() for s in scenarios_raw.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in SCENARIOS]
        if unknown:
            raise SettingsError(
                f"BENCH_SCENARIOS={scenarios_raw!r}: unknown {', '.join(unknown)} "
                f"(known: {', '.join(SCENARIOS)})"
            )
        scenarios = tuple(s for s in SCENARIOS if s in wanted)
    idle_raw = environ.get("BENCH_IDLE_SECONDS", "")
    try:
        idle = float(idle_raw) if idle_raw else BenchSettings.idle_seconds
    except ValueError:
        raise SettingsError(f"BENCH_IDLE_SECONDS={idle_raw!r}: not a number") from None
    defaults = BenchSettings()
    soak_seconds = _float(environ, "BENCH_SOAK_SECONDS", defaults.soak_seconds, 60.0)
    soak_outage = _float(environ, "BENCH_SOAK_OUTAGE", defaults.soak_outage, 1.0)
    if soak_seconds / 10 < soak_outage + 15:
        raise SettingsError(
            f"BENCH_SOAK_SECONDS={soak_seconds:g}: the five disruptions, {soak_seconds / 10:.0f}s "
            f"apart, need at least BENCH_SOAK_OUTAGE + 15 = {soak_outage + 15:g}s each"
        )
    return BenchSettings(
        reps=_int(environ, "BENCH_REPS", BenchSettings.reps),
        throughput=_int(environ, "BENCH_THROUGHPUT", BenchSettings.throughput),
        scale=scale,
        idle_seconds=idle,
        scenarios=scenarios,
        concurrency=_int(environ, "BENCH_CONCURRENCY", BenchSettings.concurrency),
        out=Path(environ.get("BENCH_OUT") or BenchSettings.out),
        soak_resources=_int(environ, "BENCH_SOAK_RESOURCES", defaults.soak_resources),
        soak_period=_float(environ, "BENCH_SOAK_PERIOD", defaults.soak_period, 5.0),
        soak_seconds=soak_seconds,
        soak_outage=soak_outage,
        soak_settle=_float(environ, "BENCH_SOAK_SETTLE", defaults.soak_settle, 10.0),
        soak_out=Path(environ.get("BENCH_SOAK_OUT") or defaults.soak_out),
    )
