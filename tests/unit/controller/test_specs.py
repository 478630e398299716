"""Run-spec assembly (bridge.controller.specs): a resource's newest body, Secret references
resolved, becomes the run's inputs."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from bridge.config.settings import OperatorSettings, RunnerSettings
from bridge.controller.registry import Resource
from bridge.controller.specs import SpecBuilder
from bridge.controller.writer import Writer
from bridge.kube.client import ObjectKey
from tests.unit.helpers import FakeKube, make_watch


def build(tmp_path: Path, spec: dict[str, object], secrets: dict[str, dict[str, str]]) -> object:
    playbook = tmp_path / "p.yml"
    playbook.write_text("- hosts: localhost\n  tasks: []\n")
    watch = make_watch(group="a.io", version="v1", kind="A", playbook=playbook)
    kube = FakeKube(spec)
    kube.secrets = secrets
    settings = OperatorSettings(
        watches_file=tmp_path / "watches.yaml",
        watches=(watch,),
        runner=RunnerSettings(artifacts_dir=tmp_path / "artifacts"),
    )
    specs = SpecBuilder(settings, kube, Writer(kube, lambda *args: None))
    key = ObjectKey(group="a.io", version="v1", plural="as", namespace="ns", name="x")
    resource = Resource(watch=watch, key=key, body=kube.body)
    return asyncio.run(specs.build(resource, "r1", "create"))


def test_a_secret_reference_to_an_empty_value_gives_the_empty_value(tmp_path: Path) -> None:
    # Bug: with no non-empty value resolved, the run got the reference itself
    # (passwordFrom: {secretKeyRef: ...}) instead of password: "".
    ref = {"secretKeyRef": {"name": "db", "key": "password"}}
    spec = build(tmp_path, {"passwordFrom": ref, "user": "app"}, {"db": {"password": ""}})
    extravars = spec.extravars  # type: ignore[attr-defined]
    assert extravars["password"] == "" and extravars["user"] == "app"
    assert "password_from" not in extravars


def test_a_secret_reference_gives_the_value_and_keeps_it_secret(tmp_path: Path) -> None:
    value = base64.b64encode(b"s3cret").decode()
    ref = {"secretKeyRef": {"name": "db", "key": "password"}}
    spec = build(tmp_path, {"passwordFrom": ref}, {"db": {"password": value}})
    assert spec.extravars["password"] == "s3cret"  # type: ignore[attr-defined]
    assert spec.secrets == ("s3cret",)  # type: ignore[attr-defined]
