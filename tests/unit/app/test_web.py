"""The /logs path checks of the HTTP server: which watch, which resource, which run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.app.routes import CLUSTER_SCOPED
from bridge.app.web import LogsError, find_watch, locate, runs
from tests.unit.helpers import make_watch

PROBE = make_watch(group="test.io", version="v1", kind="Probe", playbook=Path("/p.yml"))
OTHER = make_watch(group="other.io", version="v1", kind="Policy", playbook=Path("/p.yml"))


@pytest.mark.parametrize("kind", ["Probe", "probe", "PROBE", "probes", "probe.test.io"])
def test_kind_is_matched_case_insensitively_or_by_plural(kind: str) -> None:
    assert find_watch([PROBE, OTHER], kind) is PROBE


def test_an_ambiguous_kind_needs_its_group() -> None:
    twin = make_watch(group="twin.io", version="v1", kind="Probe", playbook=Path("/p.yml"))
    with pytest.raises(LogsError) as e:
        find_watch([PROBE, twin], "probe")
    assert e.value.status == 400
    assert find_watch([PROBE, twin], "probes.twin.io") is twin


def test_kind_is_matched_by_the_plural_the_watch_declares() -> None:
    # ``plural: sites`` is not what the kind would derive (``websites``): the API, kubectl and
    # `ansible-bridge logs sites/NAME` use the declared one.
    site = make_watch(group="web.io", version="v1", kind="Website", plural="sites")
    assert find_watch([PROBE, site], "sites") is site
    assert find_watch([PROBE, site], "sites.web.io") is site
    assert find_watch([PROBE, site], "Website") is site
    with pytest.raises(LogsError) as e:
        find_watch([PROBE, site], "websites")
    assert e.value.status == 404


def test_the_run_output_of_a_kind_with_a_declared_plural_is_found(tmp_path: Path) -> None:
    site = make_watch(group="web.io", version="v1", kind="Website", plural="sites")
    run = tmp_path / "web.io" / "v1" / "Website" / "ns1" / "front" / "artifacts" / "run1"
    run.mkdir(parents=True)
    assert locate(tmp_path, [site], "ns1", "sites", "front", None) == run.resolve()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An artifacts root with two runs of Probe ns1/p1 (run2 the newer) and a file outside."""
    artifacts = tmp_path / "root" / "test.io" / "v1" / "Probe" / "ns1" / "p1" / "artifacts"
    for i, run in enumerate(("run1", "run2")):
        (artifacts / run).mkdir(parents=True)
        (artifacts / run / "stdout").write_text(f"output of {run}\n")
        os.utime(artifacts / run, (1000 + i, 1000 + i))
    (tmp_path / "secret").write_text("not to be served")
    return tmp_path / "root"


def test_the_newest_run_is_found_by_mtime(root: Path) -> None:
    found = locate(root, [PROBE], "ns1", "probes", "p1", None)
    assert found.name == "run2" and (found / "stdout").read_text() == "output of run2\n"
    os.utime(found.parent / "run1", (2000, 2000))
    assert locate(root, [PROBE], "ns1", "probe", "p1", None).name == "run1"
    assert [p.name for p in runs(found.parent)] == ["run2", "run1"]


def test_a_run_is_found_by_id(root: Path) -> None:
    assert locate(root, [PROBE], "ns1", "Probe", "p1", "run1").name == "run1"


@pytest.mark.parametrize(
    ("namespace", "kind", "name", "run", "status"),
    [
        ("ns1", "Nope", "p1", None, 404),  # not a watched kind
        ("ns1", "Probe", "p2", None, 404),  # no runs
        ("ns2", "Probe", "p1", None, 404),
        ("ns1", "Probe", "p1", "run9", 404),
        (CLUSTER_SCOPED, "Probe", "p1", None, 404),
        ("..", "Probe", "p1", None, 400),
        ("ns1", "Probe", "..", None, 400),
        ("ns1", "Probe", ".", None, 400),
        ("ns1", "Probe", "p1", "..", 400),
        ("ns1", "Probe", "p1", "../../../../../../../secret", 400),
        ("ns1/../ns1", "Probe", "p1", None, 400),
        ("NS1", "Probe", "p1", None, 400),
        ("ns1", "Probe", "p1/../../p1", None, 400),
        ("ns1", "Probe", "p1\x00", None, 400),
        ("ns1", "Probe", "", None, 400),
        ("ns1", "Probe", "p1", "run1/stdout", 400),
        ("ns1", "Probe", "a" * 254, None, 400),
    ],
)
def test_bad_or_unknown_requests(
    root: Path, namespace: str, kind: str, name: str, run: str | None, status: int
) -> None:
    with pytest.raises(LogsError) as e:
        locate(root, [PROBE], namespace, kind, name, run)
    assert e.value.status == status


def test_a_symlink_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    artifacts = root / "test.io" / "v1" / "Probe" / "ns1" / "p1" / "artifacts"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "stdout").write_text("outside")
    (artifacts / "evil").symlink_to(outside)
    os.utime(artifacts / "evil", (9999, 9999), follow_symlinks=False)
    with pytest.raises(LogsError) as e:
        locate(root, [PROBE], "ns1", "Probe", "p1", "evil")
    assert e.value.status == 400
    # Never a candidate for the newest run either.
    assert locate(root, [PROBE], "ns1", "Probe", "p1", None).name == "run2"
