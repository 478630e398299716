"""Start-up recovery (bridge.app.recovery): what a crashed operator left is scrubbed against the
Secrets its resource references, or removed when they cannot be known."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from bridge.ansible.artifacts import is_finished, mark_finished
from bridge.app.recovery import Recovered, recover
from bridge.kube.client import ObjectKey
from tests.unit.helpers import make_watch

SECRET = "s3cr3t-value"
WATCH = make_watch(group="test.io", version="v1", kind="Probe", playbook=Path("/p.yml"))


class FakeCluster:
    def __init__(self, objects: dict[str, dict[str, Any]], secrets: dict[str, dict[str, str]]):
        self.objects = objects
        self.secrets = secrets
        self.keys: list[ObjectKey] = []

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        self.keys.append(key)
        return self.objects.get(key.name)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get(name)


def _run(root: Path, name: str, run_id: str, *, finished: bool = False) -> Path:
    run = root / "test.io" / "v1" / "Probe" / "ns" / name / "artifacts" / run_id
    run.mkdir(parents=True)
    (run / "stdout").write_text(f"value={SECRET}\n")
    (run / "command").write_text(f'{{"env": {{"X": "{SECRET}"}}}}')
    if finished:
        mark_finished(run)
    return run


def _ref(secret: str) -> dict[str, Any]:
    return {"spec": {"tokenFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}}


def _contains_secret(folder: Path) -> bool:
    return any(p.is_file() and SECRET.encode() in p.read_bytes() for p in folder.rglob("*"))


def test_unfinished_runs_are_scrubbed_or_removed_and_private_dirs_go(tmp_path: Path) -> None:
    kept = _run(tmp_path, "kept", "r1")
    finished = _run(tmp_path, "kept", "r0", finished=True)
    gone = _run(tmp_path, "deleted", "r2")  # its resource no longer exists
    missing = _run(tmp_path, "missing", "r3")  # its Secret no longer exists
    private = tmp_path / "test.io" / "v1" / "Probe" / "ns" / "kept" / "run-r1-abcd"
    (private / "env").mkdir(parents=True)
    (private / "env" / "extravars").write_text(f"token: {SECRET}")
    data = {"k": base64.b64encode(SECRET.encode()).decode()}
    cluster = FakeCluster({"kept": _ref("creds"), "missing": _ref("nope")}, {"creds": data})

    done = asyncio.run(recover(tmp_path, [WATCH], cluster))

    assert done == Recovered(private_removed=1, runs_scrubbed=1, runs_removed=2)
    assert not private.exists()
    assert is_finished(kept) and not _contains_secret(kept)
    assert not gone.exists() and not missing.exists()
    assert _contains_secret(finished)  # a finished run is not this recovery's business
    assert {(k.group, k.version, k.plural, k.namespace) for k in cluster.keys} == {
        ("test.io", "v1", "probes", "ns")
    }


def test_runs_of_a_kind_no_longer_watched_are_removed(tmp_path: Path) -> None:
    run = _run(tmp_path, "x", "r1")
    other = make_watch(group="other.io", version="v1", kind="Probe", playbook=Path("/p.yml"))
    done = asyncio.run(recover(tmp_path, [other], FakeCluster({}, {})))
    assert done.runs_removed == 1 and not run.exists()


def test_an_api_failure_removes_rather_than_keeps(tmp_path: Path) -> None:
    run = _run(tmp_path, "x", "r1")

    class Broken(FakeCluster):
        async def get(self, key: ObjectKey) -> dict[str, Any] | None:
            raise RuntimeError("connection refused")

    done = asyncio.run(recover(tmp_path, [WATCH], Broken({}, {})))
    assert done.runs_removed == 1 and not run.exists()


def test_nothing_left_nothing_done(tmp_path: Path) -> None:
    assert asyncio.run(recover(tmp_path / "absent", [WATCH], FakeCluster({}, {}))) == Recovered()
