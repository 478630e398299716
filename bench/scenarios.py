"""The scenarios: latency, throughput and scale, each measured side by side with its baseline
in the same run. Each returns plain result records; :mod:`bench.report` turns them into tables."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.cluster import (
    GROUP,
    VERSION,
    WATCHES,
    Cluster,
    ReadyWatch,
    bridge_ready,
    has_status,
    sdk_ready,
)
from bench.peer import Peer, PeerUnavailable, peer_operator
from bench.settings import DATA, BenchSettings
from bridge.tools.operator_process import OperatorProcessError

KINDS = ("Trivial", "Realistic")
PLAYBOOKS = {"Trivial": DATA / "trivial.yml", "Realistic": DATA / "realistic.yml"}
SPECS: dict[str, dict[str, Any]] = {
    "Trivial": {"message": "bench"},
    "Realistic": {
        "replicas": 3,
        "logLevel": "info",
        "settings": {"cache": "on", "timeout": "30s", "workers": 4},
        "listeners": [{"name": "http", "port": 8080}, {"name": "https", "port": 8443, "tls": True}],
    },
}
#: Seconds a single resource may take to become Ready before the bench gives up.
READY_TIMEOUT = 300.0


def snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return out.lstrip("_")


def bare_vars(kind: str, name: str, namespace: str, out_dir: Path) -> dict[str, Any]:
    """What the bridge passes a playbook for such a resource: spec keys in snake_case, the
    meta, the whole object and spec, and the watch's vars."""
    spec = SPECS[kind]
    obj = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": spec,
    }
    prefix = "_" + GROUP.replace(".", "_").replace("-", "_") + "_" + kind.lower()
    variables: dict[str, Any] = {snake(k): v for k, v in spec.items()}
    variables.update(
        {
            "ansible_operator_meta": {"name": name, "namespace": namespace},
            prefix: obj,
            f"{prefix}_spec": spec,
        }
    )
    if kind == "Realistic":
        variables["out_dir"] = str(out_dir)
    return variables


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, 10th and 90th percentiles (inclusive method; min/max below 10 values)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return statistics.median(values), deciles[0], deciles[-1]


@dataclass
class Context:
    """What every scenario shares; operators started through it are stopped by :meth:`close`."""

    cluster: Cluster
    settings: BenchSettings
    workdir: Path
    env: dict[str, str]
    peer: Peer | None
    peer_missing: str
    operators: list[procs.Operator] = field(default_factory=list)
    watches_: list[ReadyWatch] = field(default_factory=list)
    _counter: int = 0

    def log(self, text: str) -> None:
        print(f"    [{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def namespace(self, prefix: str) -> str:
        self._counter += 1
        return self.cluster.namespace(f"{prefix}-{self._counter}")

    def bridge(self, namespaces: list[str], executor: str, name: str) -> procs.Operator:
        op = procs.bridge_operator(
            watches=WATCHES,
            kubeconfig=self.cluster.kubeconfig,
            namespaces=namespaces,
            workdir=self.workdir,
            executor=executor,
            concurrency=self.settings.concurrency,
            env=self.env,
            name=name,
        )
        self.operators.append(op)
        return op.start()

    def sdk(self, namespace: str) -> procs.Operator:
        assert self.peer is not None
        op = peer_operator(
            self.peer,
            watches=WATCHES,
            kubeconfig=self.cluster.kubeconfig,
            namespace=namespace,
            workdir=self.workdir,
            concurrency=self.settings.concurrency,
            env=self.env,
        )
        self.operators.append(op)
        return op.start()

    def watch(self, namespace: str, kind: str, predicate: Callable[..., bool]) -> ReadyWatch:
        w = ReadyWatch(self.cluster, namespace, kind, predicate)
        self.watches_.append(w)
        return w

    @contextlib.contextmanager
    def running(self, op: procs.Operator) -> Iterator[procs.Operator]:
        try:
            yield op
        finally:
            op.stop()

    def close(self) -> None:
        for w in self.watches_:
            w.close()
        for op in self.operators:
            op.stop(grace=20)


# --- latency --------------------------------------------------------------------------------


@dataclass
class Series:
    system: str
    kind: str
    values: list[float] = field(default_factory=list)


def _systems(ctx: Context) -> list[tuple[str, str]]:
    """(label, executor or 'peer') of the operators measured."""
    systems = [("ansible-bridge local", "local"), ("ansible-bridge warm", "warm")]
    if ctx.peer is not None and "peer" in ctx.settings.scenarios:
        systems.append((f"ansible-operator {ctx.peer.version}", "peer"))
    return systems


def _start_or_note_peer(
    ctx: Context, executor: str, namespace: str, name: str
) -> procs.Operator | None:
    """A started, ready system; None (and the reason noted) when it is the peer and it cannot
    be started. Any other system's failure is raised."""
    try:
        op = _start_system(ctx, executor, namespace, name)
        op.wait_ready()
    except (PeerUnavailable, OperatorProcessError, RuntimeError) as exc:
        if executor != "peer":
            raise
        ctx.peer_missing = str(exc).splitlines()[0]
        ctx.log(f"peer unavailable: {exc}")
        return None
    return op


def _start_system(ctx: Context, executor: str, namespace: str, name: str) -> procs.Operator:
    if executor == "peer":
        return ctx.sdk(namespace)
    return ctx.bridge([namespace], executor, name)


def latency(ctx: Context) -> list[Series]:
    """Create one resource, wait for the Ready event; bare ansible-playbook in between. The
    order of the systems rotates from one repetition to the next."""
    bare = procs.Bare(ctx.workdir)
    out_dir = Path(ctx.env["BENCH_OUT_DIR"])
    measured: dict[tuple[str, str], Series] = {}
    runners: dict[str, Callable[[str, str], float]] = {}

    def bare_runner(kind: str, name: str) -> float:
        vars_file = bare.vars_file(name, bare_vars(kind, name, "bare", out_dir))
        return bare.run(PLAYBOOKS[kind], vars_file)

    runners["bare ansible-playbook"] = bare_runner
    ops = []
    for label, executor in _systems(ctx):
        ns = ctx.namespace(f"lat-{executor}")
        op = _start_or_note_peer(ctx, executor, ns, f"latency-{executor}")
        if op is None:
            continue
        ops.append(op)
        predicate = sdk_ready if executor == "peer" else bridge_ready
        watches = {kind: ctx.watch(ns, kind, predicate) for kind in KINDS}

        def runner(
            kind: str, name: str, ns: str = ns, watches: dict[str, ReadyWatch] = watches
        ) -> float:
            start = time.monotonic()
            ctx.cluster.create(ns, kind, name, SPECS[kind])
            return watches[kind].wait([name], READY_TIMEOUT)[name] - start

        runners[label] = runner
    try:
        labels = list(runners)
        for kind in KINDS:  # warm-up, not measured: page cache, the warm server's start
            for label in labels:
                runners[label](kind, "warmup")
        ctx.log(f"latency: warmed up {', '.join(labels)}")
        for rep in range(ctx.settings.reps):
            order = labels[rep % len(labels) :] + labels[: rep % len(labels)]
            for kind in KINDS:
                for label in order:
                    took = runners[label](kind, f"rep-{rep:03d}")
                    measured.setdefault((label, kind), Series(label, kind)).values.append(took)
            ctx.log(f"latency: repetition {rep + 1}/{ctx.settings.reps} done")
    finally:
        for op in ops:
            op.stop()
    return list(measured.values())


# --- throughput -----------------------------------------------------------------------------


@dataclass
class Throughput:
    system: str
    count: int
    seconds: float


def throughput(ctx: Context) -> list[Throughput]:
    """``count`` resources created at once -> all Ready, per system, one system at a time;
    the baseline is as many bare runs through ``xargs -P <concurrency>``."""
    n = ctx.settings.throughput
    kind = "Trivial"
    results = []
    bare = procs.Bare(ctx.workdir)
    out_dir = Path(ctx.env["BENCH_OUT_DIR"])
    vars_files = [
        bare.vars_file(f"tp-{i:05d}", bare_vars(kind, f"tp-{i:05d}", "bare", out_dir))
        for i in range(n)
    ]
    before = bare.run_many(PLAYBOOKS[kind], vars_files, ctx.settings.concurrency)
    ctx.log(f"throughput: bare {n} runs in {before:.1f}s (before)")
    for label, executor in _systems(ctx):
        if executor == "peer" and ctx.peer_missing:
            continue
        ns = ctx.namespace(f"tp-{executor}")
        op = _start_or_note_peer(ctx, executor, ns, f"throughput-{executor}")
        if op is None:
            continue
        watch = ctx.watch(ns, kind, sdk_ready if executor == "peer" else bridge_ready)
        with ctx.running(op):
            ctx.cluster.create(ns, kind, "warmup", SPECS[kind])
            watch.wait(["warmup"], READY_TIMEOUT)
            names = [f"tp-{i:05d}" for i in range(n)]
            start = time.monotonic()
            ctx.cluster.create_many(ns, kind, names, SPECS[kind])
            ready = watch.wait(names, READY_TIMEOUT + 10 * n)
            took = max(ready.values()) - start
        results.append(Throughput(label, n, took))
        ctx.log(f"throughput: {label} {n} resources in {took:.1f}s")
    # NB: the baseline runs again after the operators, and the faster of its two runs counts,
    # so a load that drifts over the minutes of this scenario does not flatter the operators.
    again = bare.run_many(PLAYBOOKS[kind], vars_files, ctx.settings.concurrency)
    ctx.log(f"throughput: bare {n} runs in {again:.1f}s (after)")
    label = f"bare ansible-playbook, xargs -P {ctx.settings.concurrency} (faster of 2)"
    return [Throughput(label, n, min(before, again)), *results]


# --- scale ----------------------------------------------------------------------------------


@dataclass
class Scale:
    count: int
    reconcile_seconds: float
    operator_rss: int
    server_rss: int
    operator_cpu: float
    server_cpu: float
    ready_seconds: float
    observed_seconds: float
    reruns: int
    runs_after_restart: float


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += procs.cpu_seconds(pid)
    return total


def _rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += procs.rss_bytes(pid)
    return total


def _last_runs(ctx: Context, ns: str) -> dict[str, Any]:
    return {
        item["metadata"]["name"]: ((item.get("status") or {}).get("lastRun") or {}).get("id")
        for item in ctx.cluster.list(ns, "Trivial")
    }


def scale(ctx: Context) -> list[Scale]:
    """Resources reconciled for real (trivial playbook, warm executor), then: idle RSS and CPU
    of the operator and of its warm server, and a restart: start -> /readyz, start -> the
    last-listed resource picked up, and runs started for generations already done."""
    kind = "Trivial"
    ns = ctx.namespace("scale")
    ready_watch = ctx.watch(ns, kind, bridge_ready)
    status_watch = ctx.watch(ns, kind, has_status)
    results = []
    have = 0  # resources created so far, sentinels apart
    op = ctx.bridge([ns], "warm", "scale-0")
    op.wait_ready()
    try:
        for step, count in enumerate(ctx.settings.scale):
            names = [f"s-{i:05d}" for i in range(have, count)]
            start = time.monotonic()
            ctx.cluster.create_many(ns, kind, names, SPECS[kind])
            ready = ready_watch.wait(names, READY_TIMEOUT + 5 * len(names))
            reconcile = max(ready.values()) - start
            have = count
            ctx.log(f"scale: {len(names)} more resources reconciled in {reconcile:.1f}s")

            time.sleep(5)  # let the last status patches and Events settle before idling
            servers = procs.descendants(op.pid)
            cpu0, scpu0, t0 = _cpu([op.pid]), _cpu(servers), time.monotonic()
            time.sleep(ctx.settings.idle_seconds)
            cpu1, scpu1, t1 = _cpu([op.pid]), _cpu(servers), time.monotonic()
            rss, server_rss = _rss([op.pid]), _rss(procs.descendants(op.pid))
            ctx.log(f"scale: idle {count}: RSS {rss / 2**20:.0f} MiB, CPU {cpu1 - cpu0:.2f}s")

            before = _last_runs(ctx, ns)
            op.stop()
            # A resource created while the operator is down, named to be listed last: its
            # first status write marks the moment the restarted operator got through the list.
            sentinel = f"zz-sentinel-{step}"
            ctx.cluster.create(ns, kind, sentinel, SPECS[kind])
            op = ctx.bridge([ns], "warm", f"scale-{step + 1}")
            ready_s = op.wait_ready(timeout=300)
            status_watch.wait([sentinel], READY_TIMEOUT)
            observed_s = status_watch.seen[sentinel] - op.started_at
            ready_watch.wait([sentinel], READY_TIMEOUT)
            time.sleep(5)  # runs that would (wrongly) start for done generations show up here
            runs = procs.runs_started(op)
            after = _last_runs(ctx, ns)
            reruns = sum(1 for name, run in before.items() if after.get(name) != run)
            results.append(
                Scale(
                    count=count,
                    reconcile_seconds=reconcile,
                    operator_rss=rss,
                    server_rss=server_rss,
                    operator_cpu=(cpu1 - cpu0) / (t1 - t0),
                    server_cpu=(scpu1 - scpu0) / (t1 - t0),
                    ready_seconds=ready_s,
                    observed_seconds=observed_s,
                    reruns=reruns,
                    runs_after_restart=runs,
                )
            )
            ctx.log(
                f"scale: restart with {count}: ready {ready_s:.1f}s, all listed "
                f"{observed_s:.1f}s, runs started {runs:.0f} (1 is the sentinel), "
                f"re-runs {reruns}"
            )
    finally:
        op.stop()
    return results


def machine_load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def describe(env: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in env.items())
