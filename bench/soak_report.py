"""The soak's figures and verdicts: runs counted from what the playbook records, the operator's
RSS per incarnation, leftover processes, and the Markdown report (``bench/results/soak.md``).

Pure functions of what :mod:`bench.soak` collected, so the checks are unit-tested without a
cluster. How runs are judged (``check_runs``): a resource's runs of one generation come at least
``period - jitter`` apart (the next periodic run falls due that long after the previous one
*finished*, :mod:`bridge.controller.scheduling`), so two runs of a generation closer than that
are one run done twice. Such a repeat is a *resume* when an operator SIGKILL falls between the
two (the killed run is run again by the next operator, allowed once per kill) and a
*duplicate* otherwise (never allowed).
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bridge.controller.scheduling import JITTER_CAP, JITTER_FRACTION

MIB = 2**20
#: Seconds of slack on the shortest interval between periodic runs: ``status.lastRun.finishedAt``
#: (what a restarted operator schedules from) has whole seconds.
SLACK = 2.0
#: An interval between runs of a generation longer than this many periods counts as late.
LATE = 1.5
#: An incarnation's RSS is flat when, from one period after its start (every resource has been
#: run by it once) to its end, the mean of its last quarter of samples exceeds the mean of the
#: first quarter by at most this many MiB.
FLAT_MIB = 10.0
#: Fewest samples (from one period after the start) for an incarnation's RSS to be judged.
FLAT_SAMPLES = 8

_LINE = re.compile(r"^(\d+(?:\.\d+)?) gen=(\d+) run=(\S*)$")


@dataclass(frozen=True)
class Run:
    """One run as the playbook recorded it: wall time, generation, run id."""

    at: float
    generation: int
    run_id: str


def parse_runs(text: str) -> list[Run]:
    """The runs of a record file, oldest first; lines that do not parse are skipped."""
    runs = []
    for line in text.splitlines():
        found = _LINE.match(line.strip())
        if found:
            runs.append(Run(float(found.group(1)), int(found.group(2)), found.group(3)))
    return sorted(runs, key=lambda r: r.at)


def shortest_interval(period: float) -> float:
    """Seconds between two periodic runs of a generation, at least (less :data:`SLACK`)."""
    return period - min(period * JITTER_FRACTION, JITTER_CAP) - SLACK


@dataclass(frozen=True)
class RunCheck:
    """The runs of every resource, against what the period allows."""

    resources: int
    runs: int
    #: (resource, generation) pairs that ran.
    generations: int
    #: Runs expected: per generation, one, plus one per whole period until the next generation
    #: (or the end).
    nominal: int
    #: Most runs possible without a repeat: as ``nominal`` with the shortest interval.
    most: int
    #: Runs repeated across an operator SIGKILL (each kill explains one repeat per resource),
    #: and repeated otherwise (must be 0).
    resumes: int
    duplicates: int
    #: Generations that never ran (``name gen N``; must be empty).
    skipped: tuple[str, ...]
    #: Intervals between runs of a generation (the last one to the end included) longer than
    #: :data:`LATE` periods, and the longest interval.
    late: int
    longest: float
    #: Resources that recorded no run at all.
    silent: tuple[str, ...] = ()


def check_runs(
    records: Mapping[str, Sequence[Run]],
    generations: Mapping[str, int],
    *,
    period: float,
    kills: Sequence[float],
    end: float,
) -> RunCheck:
    """Judge the runs ``records`` holds per resource (wall times), given each resource's last
    ``generations``, the watch's ``period``, the wall times of the operator ``kills`` and the
    wall time of the ``end`` (the operator's last stop)."""
    shortest = shortest_interval(period)
    runs = nominal = most = resumes = duplicates = late = 0
    longest = 0.0
    pairs = 0
    skipped: list[str] = []
    silent: list[str] = []
    for name in sorted(set(records) | set(generations)):
        mine = sorted(records.get(name, ()), key=lambda r: r.at)
        if not mine:
            silent.append(name)
        runs += len(mine)
        by_gen: dict[int, list[Run]] = {}
        for run in mine:
            by_gen.setdefault(run.generation, []).append(run)
        last = max([generations.get(name, 0), *by_gen])
        skipped += [f"{name} gen {g}" for g in range(1, last + 1) if g not in by_gen]
        firsts = sorted((gen_runs[0].at, gen) for gen, gen_runs in by_gen.items())
        unused = sorted(kills)
        for i, (first, gen) in enumerate(firsts):
            pairs += 1
            until = firsts[i + 1][0] if i + 1 < len(firsts) else max(end, first)
            span = until - first
            nominal += 1 + math.floor(span / period)
            most += 1 + math.floor(span / shortest)
            starts = [r.at for r in by_gen[gen]]
            for before, after in itertools.pairwise([*starts, until]):
                longest = max(longest, after - before)
                late += after - before > LATE * period
            for before, after in itertools.pairwise(starts):
                if after - before >= shortest:
                    continue
                kill = next((k for k in unused if before <= k <= after), None)
                if kill is not None:
                    unused.remove(kill)
                    resumes += 1
                else:
                    duplicates += 1
    return RunCheck(
        resources=len(set(records) | set(generations)),
        runs=runs,
        generations=pairs,
        nominal=nominal,
        most=most,
        resumes=resumes,
        duplicates=duplicates,
        skipped=tuple(skipped),
        late=late,
        longest=longest,
        silent=tuple(silent),
    )


@dataclass(frozen=True)
class Sample:
    """The operator's RSS (bytes) at ``at`` seconds into the soak, and which start it was."""

    at: float
    incarnation: int
    rss: int


@dataclass(frozen=True)
class Rss:
    """The RSS of one operator incarnation: first, highest and last sample, and its trend from
    one period after its start (mean of the last quarter of those samples less the mean of
    their first quarter; None: too few, the incarnation was too short)."""

    incarnation: int
    samples: int
    seconds: float
    start: int
    most: int
    end: int
    trend: int | None

    @property
    def flat(self) -> bool | None:
        return None if self.trend is None else self.trend <= FLAT_MIB * MIB


def rss_figures(samples: Sequence[Sample], period: float) -> list[Rss]:
    """One :class:`Rss` per incarnation, in the order they started."""
    by_inc: dict[int, list[Sample]] = {}
    for sample in sorted(samples, key=lambda s: s.at):
        by_inc.setdefault(sample.incarnation, []).append(sample)
    found = []
    for inc, mine in sorted(by_inc.items()):
        values = [s.rss for s in mine]
        steady = [s.rss for s in mine if s.at >= mine[0].at + period]
        trend = None
        if len(steady) >= FLAT_SAMPLES:
            q = len(steady) // 4
            trend = round(statistics.fmean(steady[-q:]) - statistics.fmean(steady[:q]))
        found.append(
            Rss(
                incarnation=inc,
                samples=len(values),
                seconds=mine[-1].at - mine[0].at,
                start=values[0],
                most=max(values),
                end=values[-1],
                trend=trend,
            )
        )
    return found


@dataclass(frozen=True)
class Disruption:
    """One disruption as it went: ``kind`` (``apiserver`` or ``operator``), when (seconds into
    the soak), how many resources got a new generation just before, seconds down (signal to
    ``/readyz`` again), and for an operator SIGKILL the processes it had started that were
    still alive ``bound`` seconds later, and the seconds until they were all gone (None: not
    within the bound)."""

    kind: str
    at: float
    updated: int
    down: float
    left: tuple[str, ...] = ()
    gone_after: float | None = 0.0
    note: str = ""


@dataclass
class SoakResults:
    resources: int
    period: float
    seconds: float
    outage: float
    settle: float
    concurrency: int
    started: str = ""
    #: Seconds until all resources were first Ready (the first reconcile, disruptions or not).
    first_ready: float | None = None
    disruptions: list[Disruption] = field(default_factory=list)
    #: Seconds from the end of the last disruption until every resource was Ready for its
    #: generation (None: not within ``settle``), and those that were not.
    settled: float | None = None
    not_ready: list[str] = field(default_factory=list)
    #: Resources whose ``currentRun`` was still set, started over a minute before the settle.
    stale_current: list[str] = field(default_factory=list)
    runs: RunCheck | None = None
    rss: list[Rss] = field(default_factory=list)
    #: Processes of any operator incarnation alive after the last stop.
    leftovers: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)

    def verdicts(self) -> list[tuple[str, str, bool]]:
        """(check, figures, met) of each of the soak's claims."""
        rows = []
        n = self.resources
        ready = n - len(self.not_ready)
        settled = "not" if self.settled is None else f"{self.settled:.0f}s"
        rows.append(
            (
                "every generation ends with its status written",
                f"{ready}/{n} Ready with observedGeneration = generation, {settled} after the "
                f"last disruption (bound {self.settle:.0f}s); stale currentRun: "
                f"{len(self.stale_current)}",
                self.settled is not None and not self.not_ready and not self.stale_current,
            )
        )
        r = self.runs
        if r is not None:
            kills = sum(1 for d in self.disruptions if d.kind == "operator")
            rows.append(
                (
                    "every generation ran",
                    f"{r.generations} generations ran; never ran: {len(r.skipped)}"
                    + (f" ({', '.join(r.skipped[:3])})" if r.skipped else ""),
                    not r.skipped and not r.silent,
                )
            )
            rows.append(
                (
                    "no run repeated beyond one resume per kill",
                    f"{r.runs} runs (nominal {r.nominal}, at most {r.most} without repeats); "
                    f"repeated across one of the {kills} SIGKILLs (at most once each per "
                    f"resource): {r.resumes}; repeated otherwise: {r.duplicates}",
                    r.duplicates == 0 and r.runs <= r.most + r.resumes,
                )
            )
        left = [p for d in self.disruptions for p in d.left] + self.leftovers
        rows.append(
            (
                "no process left",
                f"after each SIGKILL: {_gone(self.disruptions)}; after the last stop: "
                f"{len(self.leftovers)}",
                not left,
            )
        )
        flats = [x.flat for x in self.rss if x.flat is not None]
        trends = ", ".join(
            f"{x.trend / MIB:+.1f}" if x.trend is not None else "n/a" for x in self.rss
        )
        rows.append(
            (
                "operator RSS flat",
                f"trend per incarnation, from one period after its start (MiB, last quarter "
                f"- first quarter): {trends} (flat: <= {FLAT_MIB:g}; n/a: shorter)",
                bool(flats) and all(flats),
            )
        )
        return rows

    @property
    def ok(self) -> bool:
        return not self.errors and all(met for _, _, met in self.verdicts())


def _gone(disruptions: Sequence[Disruption]) -> str:
    kills = [d for d in disruptions if d.kind == "operator"]
    if not kills:
        return "no kill"
    parts = []
    for d in kills:
        if d.gone_after is None:
            parts.append(f"{len(d.left)} left")
        else:
            parts.append(f"all gone in {d.gone_after:.1f}s")
    return ", ".join(parts)


def _mib(value: int) -> str:
    return f"{value / MIB:.0f}"


def render(results: SoakResults, machine: Sequence[str]) -> str:
    """The report: the machine, the settings and their timing, the verdicts, the disruptions,
    the RSS per incarnation, and what was left or went wrong."""
    r = results
    load = r.resources / r.period
    lines = [
        "## Soak: periodic runs through API server restarts and operator SIGKILLs",
        "",
        *machine,
        f"- Soak: {r.resources} resources (BENCH_SOAK_RESOURCES), reconcilePeriod "
        f"{r.period:g}s (BENCH_SOAK_PERIOD; {load:.1f} periodic runs/s asked), trivial "
        f"playbook that records each run, warm executor, {r.concurrency} runs at once; "
        f"{r.seconds:g}s (BENCH_SOAK_SECONDS), disruptions in its first half: API server down "
        f"{r.outage:g}s (BENCH_SOAK_OUTAGE) x3, operator SIGKILL x2; settle bound "
        f"{r.settle:g}s (BENCH_SOAK_SETTLE). Started {r.started}, {r.elapsed / 60:.1f} min "
        "in all.",
        "",
        "| check | figures | met |",
        "|---|---|---|",
    ]
    for check, figures, met in r.verdicts():
        lines.append(f"| {check} | {figures} | {'yes' if met else '**no**'} |")
    lines += [
        "",
        "| # | at s | disruption | resources updated just before | down s "
        "| processes of the killed operator |",
        "|---:|---:|---|---:|---:|---|",
    ]
    for i, d in enumerate(r.disruptions, 1):
        what = "kube-apiserver stopped and started" if d.kind == "apiserver" else "operator SIGKILL"
        procs = ""
        if d.kind == "operator":
            procs = (
                f"{len(d.left)} left after the bound"
                if d.gone_after is None
                else f"all gone {d.gone_after:.1f}s after the kill"
            )
        lines.append(
            f"| {i} | {d.at:.0f} | {what}{f' ({d.note})' if d.note else ''} | {d.updated} | "
            f"{d.down:.1f} | {procs} |"
        )
    lines += [
        "",
        "| operator incarnation | samples | over s | RSS start MiB | max MiB | end MiB "
        "| trend MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for x in r.rss:
        trend = "n/a" if x.trend is None else f"{x.trend / MIB:+.1f}"
        lines.append(
            f"| {x.incarnation} | {x.samples} | {x.seconds:.0f} | {_mib(x.start)} | "
            f"{_mib(x.most)} | {_mib(x.end)} | {trend} |"
        )
    lines.append("")
    if r.first_ready is not None:
        lines += [f"All {r.resources} resources were first Ready {r.first_ready:.0f}s in.", ""]
    if r.runs is not None and r.runs.longest:
        lines += [
            f"Longest interval between runs of a generation: {r.runs.longest:.0f}s "
            f"({r.runs.late} longer than {LATE:g} periods).",
            "",
        ]
    shown = [
        ("Not Ready at the end", r.not_ready),
        ("Stale currentRun", r.stale_current),
        ("Left after the last stop", r.leftovers),
        *[(f"Left after SIGKILL at {d.at:.0f}s", list(d.left)) for d in r.disruptions],
    ]
    for title, items in shown:
        if items:
            lines += [f"{title} ({len(items)}): {', '.join(items[:10])}", ""]
    for error in r.errors:
        lines += [f"**Error**: {error}", ""]
    lines += [NOTES]
    return "\n".join(lines)


NOTES = """\
How it is measured (`make bench BENCH_SCENARIOS=soak`, `python -m bench`):

- One operator (`--executor warm`) serves the soak's namespace; the watch's `reconcilePeriod` is
  BENCH_SOAK_PERIOD. The resources are created at once; five disruptions follow at 10 %, 20 %,
  ... 50 % of BENCH_SOAK_SECONDS: API server restart, operator SIGKILL, API server restart,
  SIGKILL, API server restart. Just before each, a tenth of the resources (a different tenth
  each time) get a new generation, so that runs of new generations are queued, in flight and
  finishing while the API server is down or the operator dies.
- API server restart: SIGKILL to kube-apiserver, down BENCH_SOAK_OUTAGE seconds, started again
  with the same command line (etcd stays up); `down` is signal to `/readyz` 200. The updates
  come 3 s before. Operator SIGKILL: to the operator process only (not its group), 0.5 s after
  the updates; its descendants and every process tied to it (its lifeline token in their
  command line or environment, or the run marker and the bench's folder in their environment)
  must be gone within 15 s; the next operator is started once they are (or after the 15 s).
- Status: after the disruptions, every resource is listed every 2 s until all are Ready=True
  with `observedGeneration` = `metadata.generation`. Runs: the playbook appends one line per
  run to a file per resource (wall time, generation, run id); runs of a generation closer than
  the period less its jitter (10 %) and 2 s are repeats (see `bench/soak_report.py`).
- RSS: `VmRSS` of the operator process (its warm server apart) every 5 s. An incarnation's
  trend counts from one period after its start (by then every resource has been run by it, and
  its per-resource state is built): the mean of the last quarter of those samples less the
  mean of their first quarter. Only the last incarnation lives long enough by default.
- Timing: on this 2-core machine the warm executor does ~3.5-4.5 of these runs/s (less when
  the machine is shared), so the default 500 resources every 180 s (~2.8 runs/s) leave some
  headroom for the catch-up after each disruption; a 60 s period would ask 8 runs/s and only
  measure a queue that never drains. The disruptions fill the first half (the first ones hit
  the initial burst of 500 runs), the second half is quiet: 2 periods for the RSS trend.
"""
