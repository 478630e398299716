"""Unit tests of the benchmark's parts that need no cluster: settings, statistics, bare runs and
the vars they get, the peer's watches file, the tables; the soak's plan, run counting, RSS
figures, process search and report. In ``make test`` (pytest's testpaths)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench import report, scenarios, soak, soak_report
from bench.peer import watches_for_peer
from bench.procs import Bare
from bench.settings import DATA, SettingsError, from_env
from bridge.model.process import MARKER


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


# --- the soak -------------------------------------------------------------------------------


def test_soak_settings_defaults_and_environment() -> None:
    s = from_env({})
    assert "soak" not in s.scenarios  # asked for by name only
    assert (s.soak_resources, s.soak_period, s.soak_seconds) == (500, 180.0, 720.0)
    s = from_env(
        {
            "BENCH_SCENARIOS": "soak",
            "BENCH_SOAK_RESOURCES": "20",
            "BENCH_SOAK_PERIOD": "30",
            "BENCH_SOAK_SECONDS": "250",
            "BENCH_SOAK_OUTAGE": "10",
            "BENCH_SOAK_OUT": "/tmp/x.md",
        }
    )
    assert s.scenarios == ("soak",)
    assert (s.soak_resources, s.soak_period, s.soak_seconds, s.soak_outage) == (20, 30, 250, 10)
    assert s.soak_out == Path("/tmp/x.md")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BENCH_SOAK_PERIOD": "1m"}, "BENCH_SOAK_PERIOD='1m': not a number"),
        ({"BENCH_SOAK_PERIOD": "nan"}, "must be at least 5"),
        ({"BENCH_SOAK_SECONDS": "400"}, "40s apart, need at least BENCH_SOAK_OUTAGE \\+ 15 = 45s"),
    ],
)
def test_bad_soak_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        from_env(env)


def test_soak_plan_spreads_five_disruptions_over_the_first_half() -> None:
    steps = soak.plan(720, 500)
    assert [s.kind for s in steps] == ["apiserver", "operator"] * 2 + ["apiserver"]
    assert [s.at for s in steps] == [72, 144, 216, 288, 360]
    assert [(s.first, s.count) for s in steps] == [(i * 50, 50) for i in range(5)]
    assert [s.count for s in soak.plan(600, 3)] == [1] * 5


def _runs(*spec: tuple[float, int]) -> list[soak_report.Run]:
    return [soak_report.Run(at, gen, f"r{i}") for i, (at, gen) in enumerate(spec)]


def test_parse_runs_reads_the_playbook_s_lines() -> None:
    text = "1700000010.5 gen=2 run=b\njunk\n1700000000.25 gen=1 run=a\n\n"
    assert soak_report.parse_runs(text) == [
        soak_report.Run(1700000000.25, 1, "a"),
        soak_report.Run(1700000010.5, 2, "b"),
    ]


def test_periodic_runs_on_time_are_no_repeats() -> None:
    # Period 100 s: runs may come 100 - 10 (jitter) - 2 (slack) = 88 s apart at the least.
    assert soak_report.shortest_interval(100) == 88
    got = soak_report.check_runs(
        {"a": _runs((0, 1), (95, 1), (190, 1)), "b": _runs((0, 1), (100, 1), (130, 2))},
        {"a": 1, "b": 2},
        period=100,
        kills=[],
        end=250,
    )
    assert (got.resources, got.runs, got.generations) == (2, 6, 3)
    # a: 1 + 250 // 100; b gen 1: 1 + 130 // 100; b gen 2: 1 + 120 // 100
    assert got.nominal == 3 + 2 + 2
    assert got.most == (1 + 250 // 88) + (1 + 130 // 88) + (1 + 120 // 88)
    assert (got.resumes, got.duplicates, got.skipped) == (0, 0, ())
    assert got.late == 0 and got.longest == 120  # b: 130 -> the end


def test_a_run_repeated_across_a_kill_is_a_resume_and_otherwise_a_duplicate() -> None:
    got = soak_report.check_runs(
        {"a": _runs((0, 1), (50, 1), (60, 1)), "b": _runs((0, 1), (5, 1))},
        {},
        period=100,
        kills=[55.0],
        end=100,
    )
    assert (got.resumes, got.duplicates) == (1, 2)  # a: 50 -> 60 across the kill; a: 0 -> 50, b
    twice = soak_report.check_runs(
        {"a": _runs((0, 1), (1, 1), (2, 1))}, {}, period=100, kills=[0.5, 1.5], end=3
    )
    assert (twice.resumes, twice.duplicates) == (2, 0)


def test_a_kill_explains_one_repeat_per_resource() -> None:
    got = soak_report.check_runs(
        {"a": _runs((0, 1), (1, 1), (2, 1)), "b": _runs((0, 1), (1, 1))},
        {},
        period=100,
        kills=[1.0],
        end=3,
    )
    assert (got.resumes, got.duplicates) == (2, 1)  # a: 0 -> 1 or 1 -> 2, not both; b: 0 -> 1


def test_skipped_generations_silent_resources_and_late_runs_are_counted() -> None:
    got = soak_report.check_runs(
        {"a": _runs((0, 1), (400, 3))}, {"a": 3, "b": 1}, period=100, kills=[], end=500
    )
    assert got.skipped == ("a gen 2", "b gen 1")
    assert got.silent == ("b",)
    assert got.late == 1 and got.longest == 400  # 0 -> 400; 400 -> 500 is on time


def _samples(incarnation: int, values: list[int]) -> list[soak_report.Sample]:
    return [soak_report.Sample(5.0 * i, incarnation, v * 2**20) for i, v in enumerate(values)]


def test_rss_per_incarnation_start_max_end_and_trend_after_a_period() -> None:
    # Samples 5 s apart, period 20 s: the trend counts from the fifth sample on.
    flat = _samples(1, [60, 70, 80, 90, 95, 96, 95, 94, 96, 95, 95, 96])
    growing = _samples(2, [60, 70, 75, 80, 85, 90, 95, 100, 105, 110, 115, 120])
    short = _samples(3, [70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80])  # 7 after 20 s
    got = soak_report.rss_figures(flat + growing + short, period=20)
    assert [x.incarnation for x in got] == [1, 2, 3]
    one, two, three = got
    assert (one.start, one.most, one.end, one.samples) == (60 * 2**20, 96 * 2**20, 96 * 2**20, 12)
    assert one.seconds == 55 and one.trend == 0 and one.flat is True  # 95.5 - 95.5
    assert two.trend == (117.5 - 87.5) * 2**20 and two.flat is False
    assert three.trend is None and three.flat is None


def _soak_results(**changes: object) -> soak_report.SoakResults:
    runs = soak_report.check_runs(
        {"a": _runs((0, 1), (1, 1))}, {"a": 1}, period=100, kills=[0.5], end=10
    )
    results = soak_report.SoakResults(
        resources=1,
        period=100,
        seconds=600,
        outage=30,
        settle=300,
        concurrency=2,
        first_ready=3.0,
        settled=12.0,
        runs=runs,
        disruptions=[
            soak_report.Disruption("apiserver", 100, 50, 32.5),
            soak_report.Disruption("operator", 200, 50, 1.5, (), 0.4),
        ],
        rss=soak_report.rss_figures(_samples(1, [80] * 10), period=1),
    )
    for key, value in changes.items():
        setattr(results, key, value)
    return results


def test_soak_report_says_each_check_and_its_figures() -> None:
    results = _soak_results()
    assert results.ok
    text = soak.render(results, ["- Machine: test"])
    assert "| every generation ends with its status written | 1/1 Ready" in text
    assert "across one of the 1 SIGKILLs (at most once each per resource): 1; repeated" in text
    assert "repeated otherwise: 0 | yes |" in text
    assert "after each SIGKILL: all gone in 0.4s; after the last stop: 0 | yes |" in text
    assert "| 2 | 200 | operator SIGKILL | 50 | 1.5 | all gone 0.4s after the kill |" in text
    assert "| 1 | 10 | 45 | 80 | 80 | 80 | +0.0 |" in text
    assert text.isascii() and all(line.isprintable() for line in text.splitlines())
    assert all(line.endswith("|") for line in text.splitlines() if line.startswith("|"))


def test_soak_report_fails_on_any_broken_claim() -> None:
    assert not _soak_results(not_ready=["a"], settled=None).ok
    assert not _soak_results(leftovers=["123: ansible-playbook"]).ok
    assert not _soak_results(rss=soak_report.rss_figures(_samples(1, [80] * 5 + [99] * 5), 1)).ok
    assert not _soak_results(errors=["boom"]).ok
    duplicated = soak_report.check_runs(
        {"a": _runs((0, 1), (1, 1))}, {"a": 1}, period=100, kills=[], end=10
    )
    text = soak.render(_soak_results(runs=duplicated), [])
    assert "repeated otherwise: 1 | **no** |" in text


def test_soak_playbook_records_one_parsable_line_per_run(tmp_path: Path) -> None:
    bare = Bare(tmp_path)
    obj = {"metadata": {"name": "s1", "namespace": "ns", "generation": 4}}
    variables = {
        "record_dir": str(tmp_path),
        "ansible_operator_meta": {"name": "s1", "namespace": "ns"},
        "_bench_ansible_bridge_io_soak": obj,
    }
    vars_file = bare.vars_file("s1", variables)
    bare.run(soak.PLAYBOOK, vars_file)
    bare.run(soak.PLAYBOOK, vars_file)
    runs = soak.read_records(tmp_path)["s1"]
    assert [r.generation for r in runs] == [4, 4]
    assert runs[0].at < runs[1].at <= time.time()


def test_soak_watches_file_gives_its_crd(tmp_path: Path) -> None:
    watches = soak.write_watches(tmp_path / "soak.yaml", 30, tmp_path / "runs")
    entry = yaml.safe_load(watches.read_text())[0]
    assert (entry["kind"], entry["reconcilePeriod"]) == ("Soak", "30s")
    assert entry["vars"] == {"record_dir": str(tmp_path / "runs")}
    proc = subprocess.run(
        [sys.executable, "-m", "bridge", "crd", "--watches", str(watches), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "bench.ansible-bridge.io_soaks.yaml").exists()


def test_processes_tied_to_an_operator_token_are_found_until_gone(tmp_path: Path) -> None:
    token = f"{os.getpid()}:123"
    env = {**os.environ, soak.LIFELINE: token}
    child = subprocess.Popen(["sleep", "30"], env=env)
    marked = subprocess.Popen(
        ["sleep", "31"], env={**os.environ, MARKER: "run-1", "X": str(tmp_path / "a")}
    )
    try:
        found = soak.tied_to([token], {}, tmp_path)
        assert [line.split(":")[0] for line in found] == sorted(
            [str(child.pid), str(marked.pid)], key=int
        )
        assert soak.tied_to(["1:1"], {}, tmp_path / "other") == []
        snapshot = {child.pid: soak.start_time(child.pid) or 0}
        assert soak.tied_to(["1:1"], snapshot, tmp_path / "other") == [f"{child.pid}: sleep 30"]
        gone, left = soak.wait_gone([token], {}, tmp_path, bound=0.3)
        assert gone is None and len(left) == 2
    finally:
        child.kill()
        marked.kill()
        child.wait()
        marked.wait()
    gone, left = soak.wait_gone([token], {}, tmp_path, bound=5)
    assert gone is not None and left == []
