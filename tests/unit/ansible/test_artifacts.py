"""The disk bound on run artifacts (bridge.ansible.artifacts), and finding a drift check's
output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.ansible.artifacts import (
    RunFolder,
    prune,
    run_folders,
    to_remove,
    tree_size,
)
from bridge.app.web import LogsError, run_dir
from bridge.cli.assembly import operator_settings
from bridge.cli.main import build_parser, main
from bridge.config.settings import OperatorSettings, RunnerSettings


def runs(*sizes: int) -> list[RunFolder]:
    """Runs r0, r1, ... oldest first, of ``sizes`` bytes."""
    return [RunFolder(Path(f"/a/r{i}"), i, size) for i, size in enumerate(sizes)]


def names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_within_both_bounds_nothing_goes() -> None:
    assert to_remove(runs(10, 10, 10), max_count=3, max_bytes=30, keep="r2") == []


def test_past_the_count_the_oldest_go() -> None:
    assert names(to_remove(runs(1, 1, 1, 1), max_count=2, max_bytes=0, keep="r3")) == ["r0", "r1"]


def test_past_the_size_the_oldest_go_until_under_it() -> None:
    removed = to_remove(runs(40, 30, 20, 10), max_count=20, max_bytes=35, keep="r3")
    assert names(removed) == ["r0", "r1"]  # 20 + 10 = 30 left
    removed = to_remove(runs(40, 30, 20, 10), max_count=20, max_bytes=30, keep="r3")
    assert names(removed) == ["r0", "r1"]  # exactly at the bound is within it


def test_the_run_just_finished_stays_even_alone_over_the_bound() -> None:
    assert names(to_remove(runs(5, 5, 100), max_count=20, max_bytes=50, keep="r2")) == ["r0", "r1"]
    # Not the newest by time (clock skew): still kept, the others go.
    assert names(to_remove(runs(100, 5, 5), max_count=1, max_bytes=50, keep="r0")) == ["r1", "r2"]


def test_zero_bytes_means_no_size_bound() -> None:
    assert to_remove(runs(10**9, 10**9), max_count=5, max_bytes=0, keep="r1") == []


def make_run(folder: Path, name: str, size: int, mtime: int) -> Path:
    run = folder / name
    (run / "job_events").mkdir(parents=True)
    (run / "stdout").write_bytes(b"x" * size)
    (run / "job_events" / "1-a.json").write_bytes(b"{}")
    os.utime(run, (mtime, mtime))
    return run


def test_prune_removes_the_oldest_run_folders_on_disk(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    for i, size in enumerate((3000, 2000, 1000, 500)):
        make_run(artifacts, f"run{i}", size, 1_700_000_000 + i)
    (artifacts / "not a run").mkdir()  # not a run id: never touched
    assert [r.path.name for r in run_folders(artifacts)] == ["run0", "run1", "run2", "run3"]
    assert tree_size(artifacts / "run0") == 3002

    removed = prune(artifacts, max_count=20, max_bytes=4000, keep="run3")
    assert names(removed) == ["run0"]
    assert sorted(p.name for p in artifacts.iterdir()) == ["not a run", "run1", "run2", "run3"]
    removed = prune(artifacts, max_count=2, max_bytes=0, keep="run3")
    assert names(removed) == ["run1"]
    assert sorted(p.name for p in artifacts.iterdir()) == ["not a run", "run2", "run3"]


def test_prune_of_a_missing_folder_does_nothing(tmp_path: Path) -> None:
    assert prune(tmp_path / "nothing", max_count=1, max_bytes=1, keep="x") == []


def test_links_are_neither_followed_nor_removed_as_runs(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    make_run(outside, "big", 10_000, 1_700_000_000)
    artifacts = tmp_path / "artifacts"
    run = make_run(artifacts, "run0", 10, 1_700_000_001)
    (run / "link").symlink_to(outside / "big")
    (artifacts / "linked").symlink_to(outside / "big")
    assert [r.path.name for r in run_folders(artifacts)] == ["run0"]
    assert tree_size(run) < 100
    assert prune(artifacts, max_count=1, max_bytes=1, keep="run0") == []
    assert (outside / "big" / "stdout").exists()


# --- /logs finds a drift check's output by its id ---------------------------------------------


def test_a_check_run_is_found_by_id_beside_the_runs(tmp_path: Path) -> None:
    resource = tmp_path / "g" / "v1" / "Kind" / "ns" / "name"
    real = make_run(resource / "artifacts", "run1", 10, 1_700_000_000)
    check = make_run(resource / "checks", "check1", 10, 1_700_000_100)
    artifacts = resource / "artifacts"
    assert run_dir(tmp_path, artifacts, "check1") == check.resolve()
    assert run_dir(tmp_path, artifacts, "run1") == real.resolve()
    # The newest is the newest real run, however recent a check.
    assert run_dir(tmp_path, artifacts, None) == real.resolve()
    with pytest.raises(LogsError) as info:
        run_dir(tmp_path, artifacts, "nothing")
    assert info.value.status == 404


# --- the operator flag --------------------------------------------------------------------------


def test_a_bad_max_artifacts_bytes_stops_the_operator_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.yml").write_text("- hosts: localhost\n  tasks: []\n")
    watches = tmp_path / "watches.yaml"
    watches.write_text("- {group: a.io, version: v1, kind: A, playbook: p.yml}\n")
    code = main(["run", "--watches", str(watches), "--max-artifacts-bytes", "lots"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--max-artifacts-bytes" in err and "invalid size 'lots'" in err


def test_max_artifacts_bytes_reaches_the_settings(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text("- hosts: localhost\n  tasks: []\n")
    watches = tmp_path / "watches.yaml"
    watches.write_text("- {group: a.io, version: v1, kind: A, playbook: p.yml}\n")
    parser = build_parser()
    default = operator_settings(parser.parse_args(["run", "--watches", str(watches)]), None)
    assert isinstance(default, OperatorSettings)
    assert default.runner.max_artifacts_bytes == RunnerSettings().max_artifacts_bytes == 50 << 20
    args = parser.parse_args(["run", "--watches", str(watches), "--max-artifacts-bytes", "1Gi"])
    custom = operator_settings(args, None)
    assert isinstance(custom, OperatorSettings)
    assert custom.runner.max_artifacts_bytes == 1 << 30
