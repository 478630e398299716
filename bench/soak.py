"""The soak scenario: many resources with periodic runs while the API server is restarted three
times and the operator is SIGKILLed twice; then status, runs, processes and RSS are checked.

It drives the disruptions and collects what happened; :mod:`bench.soak_report` judges it and
writes the report. See ``soak_report.NOTES`` for the exact procedure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench import procs
from bench.cluster import GROUP, VERSION, bridge_ready
from bench.scenarios import Context
from bench.settings import DATA
from bench.soak_report import (
    Disruption,
    Run,
    Sample,
    SoakResults,
    check_runs,
    parse_runs,
    render,
    rss_figures,
)
from bridge.model.process import MARKER
from bridge.tools.operator_process import OperatorProcessError

__all__ = ["SoakResults", "plan", "render", "run"]

KIND = "Soak"
PLAYBOOK = DATA / "soak.yml"
#: Seconds within which every process of a killed operator must be gone.
BOUND = 15.0
#: Seconds between a tenth of the resources' update and the disruption that follows: their runs
#: are queued or in flight when the operator is killed, and end while the API server is down.
LEAD = {"apiserver": 3.0, "operator": 0.5}
#: Seconds between two listings of the resources while waiting.
POLL = 5.0
#: The lifeline's variable (bridge.executors.lifeline.ENV): the operator's token in the
#: environment of its warm server and of the processes that server forks.
LIFELINE = "ANSIBLE_BRIDGE_LIFELINE"


@dataclass(frozen=True)
class Step:
    """A disruption ``at`` seconds into the soak, after updating resources ``first`` to
    ``first + count - 1`` (modulo their number)."""

    at: float
    kind: str
    first: int
    count: int


def plan(seconds: float, resources: int) -> list[Step]:
    """Five disruptions evenly spaced over the first half of ``seconds`` (API server, operator,
    API server, operator, API server), each after a new generation for a different tenth of
    the resources; the second half is quiet, so that the last operator runs for over half the
    soak and its RSS can be judged after a full period."""
    kinds = ("apiserver", "operator", "apiserver", "operator", "apiserver")
    count = max(1, resources // 10)
    return [
        Step(at=seconds * (i + 1) / 10, kind=kind, first=i * count, count=count)
        for i, kind in enumerate(kinds)
    ]


def names(resources: int) -> list[str]:
    return [f"soak-{i:05d}" for i in range(resources)]


def write_watches(path: Path, period: float, record_dir: Path) -> Path:
    """The soak's watches file: one kind, its period, the folder its playbook records into."""
    entry = {
        "group": GROUP,
        "version": VERSION,
        "kind": KIND,
        "playbook": str(PLAYBOOK),
        "reconcilePeriod": f"{period:g}s",
        "maxRunnerArtifacts": 1,
        "vars": {"record_dir": str(record_dir)},
    }
    path.write_text(yaml.safe_dump([entry], sort_keys=False))
    return path


def read_records(record_dir: Path) -> dict[str, list[Run]]:
    """The runs each resource recorded (``<name>.runs`` files)."""
    return {p.stem: parse_runs(p.read_text()) for p in sorted(record_dir.glob("*.runs"))}


# --- /proc ----------------------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """A process's start time (``/proc/<pid>/stat`` field 22), None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def token(pid: int) -> str:
    """The operator's lifeline token, ``<pid>:<start time>`` (bridge.executors.lifeline)."""
    return f"{pid}:{start_time(pid)}"


def _describe(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return f"{pid}: ?"
    return f"{pid}: {cmdline[:120].decode(errors='replace').strip()}"


def tied_to(tokens: Sequence[str], snapshot: Mapping[int, int], workdir: Path) -> list[str]:
    """Live processes of the operators of ``tokens``: those of ``snapshot`` (PID -> start time,
    taken before the operator ended) still running, those naming a token in their command line
    or ``ANSIBLE_BRIDGE_LIFELINE``, and run processes (the run marker in their environment) that
    mention ``workdir``."""
    found = {pid for pid, started in snapshot.items() if start_time(pid) == started}
    needles = [t.encode() for t in tokens]
    lifelines = [f"{LIFELINE}={t}".encode() for t in tokens]
    ours = str(workdir).encode()
    marker = f"{MARKER}=".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if start_time(int(entry.name)) is None:
            continue
        mentions = any(ours in part for part in [*cmdline, *environ])
        if (
            any(n in cmdline for n in needles)
            or any(item in lifelines for item in environ)
            or (mentions and any(item.startswith(marker) for item in environ))
        ):
            found.add(int(entry.name))
    return [_describe(pid) for pid in sorted(found)]


def wait_gone(
    tokens: Sequence[str], snapshot: Mapping[int, int], workdir: Path, bound: float
) -> tuple[float | None, list[str]]:
    """Seconds until no process of ``tokens`` is left (None: some still are after ``bound``),
    and those left."""
    began = time.monotonic()
    while True:
        left = tied_to(tokens, snapshot, workdir)
        took = time.monotonic() - began
        if not left:
            return took, []
        if took > bound:
            return None, left
        time.sleep(0.25)


# --- RSS ------------------------------------------------------------------------------------


class Sampler:
    """Samples the RSS of the operator it follows every ``interval`` seconds, in a thread."""

    def __init__(self, interval: float, origin: float) -> None:
        self.interval = interval
        self.origin = origin
        self.samples: list[Sample] = []
        self._target: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-rss", daemon=True)
        self._thread.start()

    def follow(self, pid: int | None, incarnation: int = 0) -> None:
        with self._lock:
            self._target = None if pid is None else (pid, incarnation)
        if pid is not None:
            self._sample()

    def _sample(self) -> None:
        with self._lock:
            target = self._target
            if target is None:
                return
            with contextlib.suppress(OSError, ValueError):
                rss = procs.rss_bytes(target[0])
                self.samples.append(Sample(time.monotonic() - self.origin, target[1], rss))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def last(self) -> int:
        return self.samples[-1].rss if self.samples else 0

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


# --- the scenario ---------------------------------------------------------------------------


class Soak:
    """One soak run against ``ctx``'s cluster; :meth:`run` returns its results."""

    def __init__(self, ctx: Context) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.results = SoakResults(
            resources=s.soak_resources,
            period=s.soak_period,
            seconds=s.soak_seconds,
            outage=s.soak_outage,
            settle=s.soak_settle,
            concurrency=s.concurrency,
            started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        )
        self.names = names(s.soak_resources)
        self.record_dir = ctx.workdir / "soak-runs"
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.watches = write_watches(ctx.workdir / "soak.yaml", s.soak_period, self.record_dir)
        self.origin = time.monotonic()
        self.sampler = Sampler(s.soak_sample, self.origin)
        self.kills: list[float] = []
        self.tokens: list[str] = []
        self.incarnation = 0
        self.items: dict[str, dict[str, Any]] = {}
        self.ns = ""
        self.op: procs.Operator | None = None
        self._last_log = 0.0

    def log(self, text: str) -> None:
        self.ctx.log(f"soak {self.now():4.0f}s: {text}")

    def now(self) -> float:
        return time.monotonic() - self.origin

    def run(self) -> SoakResults:
        began = time.monotonic()
        try:
            self._run()
        except (RuntimeError, OSError, OperatorProcessError) as exc:
            self.log(f"failed: {exc}")
            traceback.print_exc()
            self.results.errors.append(str(exc).splitlines()[0] if str(exc) else repr(exc))
        finally:
            self.sampler.close()
            self.results.rss = rss_figures(self.sampler.samples, self.results.period)
            self.results.elapsed = time.monotonic() - began
        return self.results

    def _run(self) -> None:
        ctx, s, r = self.ctx, self.ctx.settings, self.results
        ctx.cluster.install_crds(self.watches, ctx.workdir, ctx.env)
        self.ns = ctx.namespace("soak")
        self.op = procs.bridge_operator(
            watches=self.watches,
            kubeconfig=ctx.cluster.kubeconfig,
            namespaces=[self.ns],
            workdir=ctx.workdir,
            executor="warm",
            concurrency=s.concurrency,
            env=ctx.env,
            name="soak",
        )
        ctx.operators.append(self.op)
        self._start_operator()
        self.origin = time.monotonic()  # the plan's times count from the resources' creation
        ctx.cluster.create_many(self.ns, KIND, self.names, {"message": "soak", "round": 0})
        self.log(f"{len(self.names)} resources created")
        last_end = 0.0
        for step in plan(s.soak_seconds, len(self.names)):
            self._wait(step.at - LEAD[step.kind])
            updated = self._update(step)
            self._wait(step.at)
            if step.kind == "apiserver":
                self.log(f"kube-apiserver stopped ({updated} resources just updated)")
                took, down = ctx.cluster.restart_apiserver(s.soak_outage)
                r.disruptions.append(
                    Disruption("apiserver", step.at, updated, down, note=f"exited in {took:.1f}s")
                )
                self.log(f"kube-apiserver ready again after {down:.1f}s")
            else:
                r.disruptions.append(self._kill_operator(step, updated))
            last_end = self.now()
        self._settle(last_end)
        self._wait(s.soak_seconds)
        self._finish()

    def _start_operator(self) -> None:
        assert self.op is not None
        self.op.start()
        self.op.wait_ready(timeout=300)
        self.incarnation += 1
        self.tokens.append(token(self.op.pid))
        self.sampler.follow(self.op.pid, self.incarnation)

    def _kill_operator(self, step: Step, updated: int) -> Disruption:
        assert self.op is not None
        pid = self.op.pid
        snapshot = {p: t for p in procs.descendants(pid) if (t := start_time(p)) is not None}
        began = time.monotonic()
        self.sampler.follow(None)
        self.kills.append(time.time())
        self.op.stop(signal.SIGKILL, grace=5)
        self.log(
            f"operator SIGKILLed ({updated} resources just updated, {len(snapshot)} "
            "processes below it)"
        )
        gone, left = wait_gone(self.tokens[-1:], snapshot, self.ctx.workdir, BOUND)
        self.log(
            f"processes of the killed operator: all gone in {gone:.1f}s"
            if gone is not None
            else f"{len(left)} processes of the killed operator left: {left[:3]}"
        )
        self._start_operator()
        down = time.monotonic() - began
        self.log(f"operator {self.incarnation} ready {down:.1f}s after the kill")
        return Disruption("operator", step.at, updated, down, tuple(left), gone)

    def _update(self, step: Step) -> int:
        """A new generation for the step's resources; how many got one."""
        chosen = [self.names[(step.first + i) % len(self.names)] for i in range(step.count)]
        spec = {"message": "soak", "round": step.first // max(1, step.count) + 1}

        def patch(name: str) -> bool:
            try:
                self.ctx.cluster.patch_spec(self.ns, KIND, name, spec)
            except Exception as exc:  # counted, and said once below
                self.log(f"update of {name} failed: {exc}")
                return False
            return True

        with ThreadPoolExecutor(max_workers=8) as pool:
            return sum(pool.map(patch, chosen))

    def _list(self) -> bool:
        """Refresh ``items`` from the API; False when the API did not answer."""
        try:
            got = self.ctx.cluster.list(self.ns, KIND)
        except Exception:
            return False
        self.items = {str(item["metadata"]["name"]): item for item in got}
        return True

    def _not_ready(self) -> list[str]:
        return [n for n in self.names if n not in self.items or not bridge_ready(self.items[n])]

    def _progress(self) -> None:
        """List the resources; note when all are first Ready; log now and then. An operator
        that exited on its own is a finding (an error of the soak): it is started again."""
        if self.op is not None and not self.op.running():
            self.results.errors.append(
                f"operator {self.incarnation} exited on its own ({self.op.exited()}) "
                f"{self.now():.0f}s in; its log: {self.op.log}"
            )
            self.log(self.results.errors[-1])
            self.sampler.follow(None)
            self._start_operator()
        if not self._list():
            return
        missing = self._not_ready()
        if not missing and self.results.first_ready is None:
            self.results.first_ready = self.now()
            self.log("all resources Ready for the first time")
        if time.monotonic() - self._last_log >= 30:
            self._last_log = time.monotonic()
            runs = sum(len(v) for v in read_records(self.record_dir).values())
            self.log(
                f"Ready {len(self.names) - len(missing)}/{len(self.names)}, {runs} runs "
                f"recorded, operator RSS {self.sampler.last() / 2**20:.0f} MiB"
            )

    def _wait(self, until: float, check: Callable[[], bool] | None = None) -> bool:
        """Wait until ``until`` seconds into the soak, following progress; with ``check``,
        stop early (True) as soon as it holds."""
        while True:
            self._progress()
            if check is not None and check():
                return True
            left = until - self.now()
            if left <= 0:
                return False
            time.sleep(min(left, 2.0 if check is not None else POLL))

    def _settle(self, since: float) -> None:
        r = self.results
        settled = self._wait(since + r.settle, check=lambda: not self._not_ready())
        r.not_ready = self._not_ready()
        if settled:
            r.settled = self.now() - since
            self.log(f"all resources Ready {r.settled:.0f}s after the last disruption")
        else:
            self.log(f"{len(r.not_ready)} resources not Ready {r.settle:.0f}s after it")
        now = datetime.now(UTC)
        for name, item in sorted(self.items.items()):
            current = (item.get("status") or {}).get("currentRun") or {}
            started = current.get("startedAt")
            with contextlib.suppress(TypeError, ValueError):
                at = datetime.strptime(str(started), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                if (now - at).total_seconds() > 60:
                    r.stale_current.append(f"{name} (run {current.get('id')} since {started})")

    def _finish(self) -> None:
        assert self.op is not None
        r = self.results
        self._list()
        generations = {
            n: int(item["metadata"].get("generation") or 0) for n, item in self.items.items()
        }
        snapshot = {
            p: t for p in procs.descendants(self.op.pid) if (t := start_time(p)) is not None
        }
        end = time.time()
        self.sampler.follow(None)
        self.op.stop(grace=30)
        gone, left = wait_gone(self.tokens, snapshot, self.ctx.workdir, BOUND)
        r.leftovers = left
        self.log(
            "operator stopped; "
            + ("nothing left" if gone is not None else f"{len(left)} processes left")
        )
        records = read_records(self.record_dir)
        r.runs = check_runs(records, generations, period=r.period, kills=self.kills, end=end)
        self.log(
            f"{r.runs.runs} runs (nominal {r.runs.nominal}), {r.runs.resumes} resumed across a "
            f"kill, {r.runs.duplicates} repeated otherwise"
        )


def run(ctx: Context) -> SoakResults:
    """The soak scenario (``BENCH_SCENARIOS=soak``)."""
    return Soak(ctx).run()
