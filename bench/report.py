"""The result tables (Markdown): the machine and versions, then one table per scenario with the
ratios the issue's targets are about."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.scenarios import Scale, Series, Throughput, spread
from bench.settings import BenchSettings

MIB = 2**20
#: Targets of issue #7 on a 2-core machine.
LATENCY_TARGETS = {"ansible-bridge local": 1.15, "ansible-bridge warm": 0.5}
THROUGHPUT_TARGETS = {"ansible-bridge local": 1.0, "ansible-bridge warm": 2.0}
SCALE_RSS_MIB, SCALE_READY_S = 150, 15.0


@dataclass
class Results:
    settings: BenchSettings
    kubernetes: str = "?"
    peer: str = "?"
    peer_missing: str = ""
    load_before: str = "?"
    started: float = field(default_factory=time.time)
    latency: list[Series] = field(default_factory=list)
    throughput: list[Throughput] = field(default_factory=list)
    scale: list[Scale] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _ok(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "**no**")


def machine(results: Results) -> list[str]:
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    s = results.settings
    return [
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(results.started))}",
        f"- Machine: {os.cpu_count()} cores, {_cpu_model()}, {mem / 2**30:.1f} GiB RAM, "
        f"load average {results.load_before} at the start",
        f"- Python {platform.python_version()}, ansible-core {_version('ansible-core')}, "
        f"ansible-runner {_version('ansible-runner')}, kopf {_version('kopf')}, "
        f"kubernetes client {_version('kubernetes')}",
        f"- Kubernetes {results.kubernetes} (local kube-apiserver + etcd); peer: {results.peer}",
        f"- Settings: BENCH_REPS={s.reps} BENCH_THROUGHPUT={s.throughput} "
        f"BENCH_SCALE={','.join(map(str, s.scale))} BENCH_IDLE_SECONDS={s.idle_seconds:g} "
        f"BENCH_CONCURRENCY={s.concurrency}",
    ]


def latency_table(series: Sequence[Series], reps: int) -> list[str]:
    lines = [
        f"### Latency: create -> Ready, median of {reps}",
        "",
        "| playbook | system | median s | p10-p90 s | ratio to bare | target | met |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for kind in dict.fromkeys(s.kind for s in series):
        rows = [s for s in series if s.kind == kind]
        bare = next((s for s in rows if s.system.startswith("bare")), None)
        bare_median = spread(bare.values)[0] if bare else None
        for s in rows:
            med, lo, hi = spread(s.values)
            ratio = med / bare_median if bare_median else None
            target = LATENCY_TARGETS.get(s.system)
            met = None if target is None or ratio is None else ratio <= target
            lines.append(
                f"| {kind.lower()} | {s.system} | {med:.2f} | {lo:.2f}-{hi:.2f} | "
                f"{'' if ratio is None else f'{ratio:.2f}x'} | "
                f"{'' if target is None else f'<= {target}x'} | {_ok(met)} |"
            )
    return lines


def throughput_table(rows: Sequence[Throughput], concurrency: int) -> list[str]:
    lines = [
        f"### Throughput: resources created at once -> all Ready ({concurrency} runs at once)",
        "",
        "| system | resources | wall s | runs/s | bare time / time | target | met |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    bare = next((r for r in rows if r.system.startswith("bare")), None)
    for r in rows:
        ratio = bare.seconds / r.seconds if bare else None
        target = THROUGHPUT_TARGETS.get(r.system)
        met = None if target is None or ratio is None else ratio >= target
        lines.append(
            f"| {r.system} | {r.count} | {r.seconds:.1f} | {r.count / r.seconds:.2f} | "
            f"{'' if ratio is None else f'{ratio:.2f}x'} | "
            f"{'' if target is None else f'>= {target}x'} | {_ok(met)} |"
        )
    return lines


def scale_table(rows: Sequence[Scale]) -> list[str]:
    lines = [
        "### Scale: ansible-bridge (warm executor) with many reconciled resources",
        "",
        "| resources | reconciled in s | operator RSS MiB | warm server RSS MiB "
        "| idle CPU operator "
        "| idle CPU warm server | restart: start -> /readyz s | start -> all listed s "
        "| re-runs of done generations | met |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        met = (
            r.operator_rss <= SCALE_RSS_MIB * MIB
            and r.observed_seconds <= SCALE_READY_S
            and r.reruns == 0
            and r.runs_after_restart <= 1
        )
        reruns = max(r.reruns, int(r.runs_after_restart) - 1)
        lines.append(
            f"| {r.count} | {r.reconcile_seconds:.0f} | {r.operator_rss / MIB:.0f} | "
            f"{r.server_rss / MIB:.0f} | {100 * r.operator_cpu:.1f}% | "
            f"{100 * r.server_cpu:.1f}% | {r.ready_seconds:.1f} | {r.observed_seconds:.1f} | "
            f"{reruns} | {_ok(met)} |"
        )
    return lines


NOTES = """\
How it is measured (`make bench`, `python -m bench`):

- Everything runs on this machine against a local kube-apiserver + etcd the bench starts and
  stops; operators serve one namespace each. Playbooks: `bench/data/trivial.yml` (one debug task)
  and `bench/data/realistic.yml` (a folder, two templates with a loop, a link, stat, assert), on
  localhost with the same Python. Runs write below a temporary folder.
- Latency: the resource is created with the Python client and the time ends at the watch event
  that carries Ready=True for its generation (the Operator SDK's `Successful=True`); no kubectl
  start-up in it. Bare: the wall time of `ansible-playbook -i <localhost inventory> <playbook>
  -e @vars.json` with the vars the bridge passes. The systems alternate, their order rotating per
  repetition; one untimed warm-up each first (page cache, the warm server's start).
- Throughput: all resources created at once (8 API requests in flight) with
  `--max-concurrent-runs` (`--max-concurrent-reconciles` for the peer) = BENCH_CONCURRENCY,
  against as many bare runs through `xargs -P BENCH_CONCURRENCY`, run before and after the
  operators (the faster of the two counts). One system at a time, one untimed warm-up resource.
- Scale: the resources are reconciled for real (trivial playbook, warm executor), then the
  operator idles for BENCH_IDLE_SECONDS: RSS from /proc (operator; its warm server and forks
  apart), CPU from /proc utime+stime over that time (100% = one core). Restart: SIGTERM, one new
  resource named to be listed last is created, the operator is started again; `all listed` is
  the time to that resource's first status write; re-runs are resources whose `lastRun` changed
  plus runs counted on /metrics beyond that one (target: 0).
- The peer is `ansible-operator` built from `github.com/operator-framework/ansible-operator-plugins`
  with the machine's Go; its own virtualenv has the same ansible-core and ansible-runner plus
  the ansible-runner HTTP event plugin its image ships. It runs with its defaults otherwise
  (e.g. `--ansible-verbosity 2`).
"""


def render(results: Results) -> str:
    s = results.settings
    lines = ["## Benchmark results", "", *machine(results), ""]
    if results.latency:
        lines += [*latency_table(results.latency, s.reps), ""]
    if results.throughput:
        lines += [*throughput_table(results.throughput, s.concurrency), ""]
    if results.scale:
        lines += [*scale_table(results.scale), ""]
    if results.peer_missing:
        lines += [f"Operator SDK peer row missing: {results.peer_missing}", ""]
    for error in results.errors:
        lines += [f"**Not measured**: {error}", ""]
    lines += [NOTES]
    return "\n".join(lines)
