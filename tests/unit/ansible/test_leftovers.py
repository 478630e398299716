"""What a crashed operator left in the artifacts folder (bridge.ansible.leftovers), and the
mark a finished run's folder gets (bridge.ansible.artifacts, bridge.executors.plumbing)."""

from __future__ import annotations

from pathlib import Path

from bridge.ansible import leftovers
from bridge.ansible.artifacts import FINISHED, is_finished, mark_finished
from bridge.ansible.leftovers import ResourcePath
from bridge.executors.plumbing import finish_artifacts
from tests.unit.helpers import spec_for

SECRET = "s3cr3t-value"


def _resource(root: Path, namespace: str = "ns", name: str = "x") -> Path:
    folder = root / "test.io" / "v1" / "Probe" / namespace / name
    folder.mkdir(parents=True)
    return folder


def _run(folder: Path, run_id: str, *, finished: bool, sub: str = "artifacts") -> Path:
    run = folder / sub / run_id
    (run / "job_events").mkdir(parents=True)
    (run / "stdout").write_text(f"TASK [x] value={SECRET}\n")
    (run / "job_events" / "1-a.json").write_text(f'{{"stdout": "{SECRET}"}}')
    if finished:
        mark_finished(run)
    return run


def test_find_names_private_dirs_and_unfinished_runs_and_checks(tmp_path: Path) -> None:
    folder = _resource(tmp_path)
    private = folder / "run-r2-abc123"
    (private / "env").mkdir(parents=True)
    (private / "env" / "extravars").write_text(f"token: {SECRET}\n")
    worker = folder / "worker-r3-xyz"
    worker.mkdir()
    _run(folder, "r1", finished=True)
    r2 = _run(folder, "r2", finished=False)
    c1 = _run(folder, "c1", finished=False, sub="checks")
    cluster = _resource(tmp_path, namespace="_cluster", name="y")
    r4 = _run(cluster, "r4", finished=False)

    found = leftovers.find(tmp_path)

    assert sorted(found.private_dirs) == sorted([private, worker])
    assert dict(found.unfinished) == {
        ResourcePath("test.io", "v1", "Probe", "ns", "x"): (r2, c1),
        ResourcePath("test.io", "v1", "Probe", None, "y"): (r4,),
    }


def test_find_ignores_links_and_names_that_are_not_run_folders(tmp_path: Path) -> None:
    folder = _resource(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (folder / "run-r1-link").symlink_to(outside)
    (folder / "artifacts").mkdir()
    (folder / "artifacts" / ".hidden").mkdir()
    found = leftovers.find(tmp_path)
    assert found.private_dirs == () and found.unfinished == ()


def test_scrub_redacts_every_file_and_marks_the_run_finished(tmp_path: Path) -> None:
    run = _run(_resource(tmp_path), "r1", finished=False)
    assert leftovers.scrub(run, (SECRET,)) == 2
    assert is_finished(run)
    for path in run.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes()
    assert leftovers.find(tmp_path).unfinished == ()


def test_a_run_end_scrubs_its_artifacts_then_marks_them_finished(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, secrets=(SECRET,))
    run = spec.artifact_dir / spec.run_id
    (run / "job_events").mkdir(parents=True)
    (run / "stdout").write_text(SECRET)
    finish_artifacts(spec)
    assert (run / FINISHED).exists()
    assert (run / "stdout").read_text() == "********"


def test_a_run_that_never_wrote_artifacts_gets_no_folder(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    finish_artifacts(spec)
    assert not (spec.artifact_dir / spec.run_id).exists()
