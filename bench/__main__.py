"""``python -m bench``: run the scenarios, print the tables, write ``bench/results/latest.md``
(and, for the soak, ``bench/results/soak.md``).

Everything it starts (control plane, operators, ansible processes) is stopped at the end,
also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import FrameType

from bench import peer as peer_mod
from bench import procs, report, scenarios, soak
from bench.cluster import WATCHES, Cluster
from bench.settings import SettingsError, from_env
from bridge.tools.operator_process import OperatorProcessError

#: Where ansible-operator keeps its runs' input and artifacts (fixed), for the bench's group.
PEER_RUNNER_DIR = Path("/tmp/ansible-operator/runner/bench.ansible-bridge.io")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _leftovers(markers: list[str]) -> list[int]:
    """Kill processes whose command line names one of ``markers`` (our folders); their PIDs."""
    killed = []
    for marker in markers:
        for pid in procs.processes_mentioning(marker):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


def main() -> int:
    try:
        settings = from_env(os.environ)
    except SettingsError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    results = report.Results(settings=settings, load_before=scenarios.machine_load())
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ansible-bridge-bench-"))
    env = {"BENCH_OUT_DIR": str(workdir / "out")}
    print(
        f"==> bench: scenarios {', '.join(settings.scenarios)}; work folder {workdir}", flush=True
    )

    peer: peer_mod.Peer | None = None
    peer_missing = ""
    if "peer" in settings.scenarios and {"latency", "throughput"} & set(settings.scenarios):
        print("==> peer: ansible-operator (Operator SDK)", flush=True)
        try:
            peer = peer_mod.prepare(os.environ)
            results.peer = f"ansible-operator {peer.version}"
        except peer_mod.PeerUnavailable as e:
            peer_missing = str(e)
            print(f"    peer unavailable: {e}", flush=True)
    else:
        results.peer = "not run (BENCH_SCENARIOS)"

    cluster: Cluster | None = None
    ctx: scenarios.Context | None = None
    soaked: soak.SoakResults | None = None
    code = 0
    try:
        print("==> control plane", flush=True)
        cluster = Cluster(workdir)
        results.kubernetes = cluster.version
        cluster.install_crds(WATCHES, workdir, env)
        ctx = scenarios.Context(cluster, settings, workdir, env, peer, peer_missing)
        for name in ("latency", "throughput", "scale"):
            if name not in settings.scenarios:
                continue
            print(f"==> {name}", flush=True)
            try:
                if name == "latency":
                    results.latency = scenarios.latency(ctx)
                elif name == "throughput":
                    results.throughput = scenarios.throughput(ctx)
                else:
                    results.scale = scenarios.scale(ctx)
            except (RuntimeError, OSError, OperatorProcessError) as e:
                code = 1
                results.errors.append(f"{name}: {e}")
                print(f"    {name} failed: {e}", file=sys.stderr, flush=True)
                traceback.print_exc()
        results.peer_missing = ctx.peer_missing
        if "soak" in settings.scenarios:
            print("==> soak", flush=True)
            soaked = soak.run(ctx)
            if not soaked.ok:
                code = 1
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping what it started", file=sys.stderr)
        code = 130
    finally:
        if ctx is not None:
            ctx.close()
        if cluster is not None:
            cluster.close()
        killed = _leftovers([str(workdir), str(PEER_RUNNER_DIR)])
        if killed:
            print(f"    killed leftover processes: {killed}", file=sys.stderr)
        if code == 0:
            shutil.rmtree(workdir, ignore_errors=True)
            shutil.rmtree(PEER_RUNNER_DIR, ignore_errors=True)
        else:
            print(f"    kept the work folder for a look: {workdir}", file=sys.stderr)
    if code == 130:
        return code
    if {"latency", "throughput", "scale"} & set(settings.scenarios):
        text = report.render(results)
        print("\n" + text)
        settings.out.parent.mkdir(parents=True, exist_ok=True)
        settings.out.write_text(text)
        print(f"==> written to {settings.out}")
    if soaked is not None:
        machine = [line for line in report.machine(results) if "Settings:" not in line]
        text = soak.render(soaked, machine)
        print("\n" + text)
        settings.soak_out.parent.mkdir(parents=True, exist_ok=True)
        settings.soak_out.write_text(text)
        print(f"==> written to {settings.soak_out}")
    print(f"==> {time.monotonic() - began:.0f}s in all")
    return code


if __name__ == "__main__":
    sys.exit(main())
