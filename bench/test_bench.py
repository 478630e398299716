"""Unit tests of the benchmark's parts that need no cluster: settings, statistics, bare runs and
the vars they get, the peer's watches file, the tables. In ``make test`` (pytest's testpaths)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench import report, scenarios
from bench.peer import watches_for_peer
from bench.procs import Bare
from bench.settings import DATA, SettingsError, from_env


def test_settings_defaults_are_the_issue_s() -> None:
    s = from_env({})
    assert (s.reps, s.throughput, s.scale) == (20, 200, (1000, 5000))
    assert s.scenarios == ("latency", "throughput", "scale", "peer")


def test_settings_from_environment() -> None:
    s = from_env(
        {
            "BENCH_REPS": "3",
            "BENCH_THROUGHPUT": "20",
            "BENCH_SCALE": "500,200",
            "BENCH_SCENARIOS": "scale,latency",
            "BENCH_IDLE_SECONDS": "2.5",
        }
    )
    assert (s.reps, s.throughput, s.scale, s.idle_seconds) == (3, 20, (200, 500), 2.5)
    assert s.scenarios == ("latency", "scale")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BENCH_REPS": "many"}, "BENCH_REPS='many': not an integer"),
        ({"BENCH_THROUGHPUT": "0"}, "BENCH_THROUGHPUT='0': must be at least 1"),
        ({"BENCH_SCALE": "1k"}, "BENCH_SCALE='1k': not a list of integers"),
        ({"BENCH_SCENARIOS": "latency,speed"}, "unknown speed"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        from_env(env)


def test_spread_is_median_and_deciles() -> None:
    values = [float(v) for v in range(1, 12)]  # 1..11
    median, p10, p90 = scenarios.spread(values)
    assert (median, p10, p90) == (6.0, 2.0, 10.0)
    assert scenarios.spread([1.5]) == (1.5, 1.5, 1.5)


def test_bare_vars_are_what_the_bridge_passes(tmp_path: Path) -> None:
    got = scenarios.bare_vars("Realistic", "r1", "ns", tmp_path)
    assert got["log_level"] == "info"  # spec key in snake_case
    assert got["ansible_operator_meta"] == {"name": "r1", "namespace": "ns"}
    assert got["_bench_ansible_bridge_io_realistic_spec"]["logLevel"] == "info"
    assert got["_bench_ansible_bridge_io_realistic"]["metadata"]["name"] == "r1"
    assert got["out_dir"] == str(tmp_path)


def test_bare_run_of_the_realistic_playbook_renders_its_files(tmp_path: Path) -> None:
    bare = Bare(tmp_path)
    vars_file = bare.vars_file("r1", scenarios.bare_vars("Realistic", "r1", "ns", tmp_path))
    before = time.monotonic()
    took = bare.run(DATA / "realistic.yml", vars_file)
    assert took <= time.monotonic() - before  # the run's own wall time, nothing else's
    conf = (tmp_path / "ns" / "r1" / "app.conf").read_text()
    assert "replicas = 3" in conf and "workers = 4" in conf
    assert "tls on" in (tmp_path / "ns" / "r1" / "conf.d" / "https.conf").read_text()


def test_bare_runs_through_xargs_run_each_vars_file(tmp_path: Path) -> None:
    bare = Bare(tmp_path)
    files = [
        bare.vars_file(f"r{i}", scenarios.bare_vars("Realistic", f"r{i}", "ns", tmp_path))
        for i in range(3)
    ]
    before = time.monotonic()
    took = bare.run_many(DATA / "realistic.yml", files, parallel=2)
    assert took <= time.monotonic() - before
    for i in range(3):
        assert "replicas = 3" in (tmp_path / "ns" / f"r{i}" / "app.conf").read_text()


def test_a_failing_bare_run_raises_with_its_output(tmp_path: Path) -> None:
    bare = Bare(tmp_path)
    playbook = tmp_path / "fail.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.fail: {msg: the bench stops here}\n"
    )
    with pytest.raises(RuntimeError, match="the bench stops here"):
        bare.run(playbook, bare.vars_file("x", {}))


def test_peer_watches_are_absolute_and_expanded(tmp_path: Path) -> None:
    out = watches_for_peer(DATA / "watches.yaml", tmp_path / "w.yaml", {"BENCH_OUT_DIR": "/o"})
    entries = yaml.safe_load(out.read_text())
    assert [e["kind"] for e in entries] == ["Trivial", "Realistic"]
    assert entries[0]["playbook"] == str(DATA / "trivial.yml")
    assert entries[1]["vars"] == {"out_dir": "/o"}
    assert all("maxRunnerArtifacts" not in e for e in entries)


def test_bench_watches_file_gives_crds(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "crd",
            "--watches",
            str(DATA / "watches.yaml"),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={"BENCH_OUT_DIR": "/o", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bench.ansible-bridge.io_realistics.yaml",
        "bench.ansible-bridge.io_trivials.yaml",
    ]


def test_report_tables_and_targets() -> None:
    results = report.Results(settings=from_env({"BENCH_REPS": "2"}))
    results.latency = [
        scenarios.Series("bare ansible-playbook", "Trivial", [1.0, 1.0]),
        scenarios.Series("ansible-bridge local", "Trivial", [1.1, 1.1]),
        scenarios.Series("ansible-bridge warm", "Trivial", [0.6, 0.6]),
    ]
    results.throughput = [
        scenarios.Throughput("bare ansible-playbook, xargs -P 2", 10, 10.0),
        scenarios.Throughput("ansible-bridge warm", 10, 4.0),
    ]
    results.scale = [
        scenarios.Scale(1000, 200, 100 * 2**20, 80 * 2**20, 0.01, 0.0, 2.0, 5.0, 0, 1.0)
    ]
    text = report.render(results)
    assert "| trivial | ansible-bridge local | 1.10 | 1.10-1.10 | 1.10x | <= 1.15x | yes |" in text
    assert "| trivial | ansible-bridge warm | 0.60 | 0.60-0.60 | 0.60x | <= 0.5x | **no** |" in text
    assert "| ansible-bridge warm | 10 | 4.0 | 2.50 | 2.50x | >= 2.0x | yes |" in text
    assert "| 1000 | 200 | 100 | 80 | 1.0% | 0.0% | 2.0 | 5.0 | 0 | yes |" in text
    assert text.isascii() and all(line.isprintable() for line in text.splitlines())
    tables = [line for line in text.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in tables)
