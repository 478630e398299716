"""Secret references in specs: found, resolved from the resource's namespace, redacted."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from pathlib import Path

import pytest

from bridge.ansible import secrets
from bridge.model.errors import PermanentError
from bridge.model.records import FailedTask, RunResult

STORE = {("ns", "db"): {"password": base64.b64encode(b"hunter2").decode()}}


async def read(namespace: str, name: str) -> Mapping[str, str] | None:
    return STORE.get((namespace, name))


def ref(name: str = "db", key: str = "password", **extra: str) -> dict[str, object]:
    return {"secretKeyRef": {"name": name, "key": key, **extra}}


def test_references_are_found_at_any_depth() -> None:
    spec = {"passwordFrom": ref(), "db": {"users": [{"tokenFrom": ref("t", "k")}]}}
    found = secrets.find_refs(spec)
    assert [(r.path, r.secret, r.key) for r in found] == [
        (("passwordFrom",), "db", "password"),
        (("db", "users", 0, "tokenFrom"), "t", "k"),
    ]


def test_look_alikes_are_not_references() -> None:
    spec = {"From": ref(), "copyFrom": {"secretKeyRef": "x"}, "valueFrom": {"other": 1}}
    assert secrets.find_refs(spec) == []


def test_resolve_replaces_the_reference_with_the_value() -> None:
    spec = {"user": "app", "passwordFrom": ref()}
    resolved, values = asyncio.run(secrets.resolve(spec, "ns", read))
    assert resolved == {"user": "app", "password": "hunter2"}
    assert values == ("hunter2",)
    assert spec == {"user": "app", "passwordFrom": ref()}  # the input is left alone


@pytest.mark.parametrize(
    ("spec", "namespace", "reason", "text"),
    [
        ({"passwordFrom": ref("nope")}, "ns", "SecretNotFound", "Secret ns/nope does not exist"),
        ({"passwordFrom": ref(key="k")}, "ns", "SecretKeyNotFound", "has no key 'k'"),
        ({"passwordFrom": ref(namespace="other")}, "ns", "SecretNotAllowed", "another namespace"),
        ({"passwordFrom": ref()}, None, "SecretNotAllowed", "cluster-scoped"),
    ],
)
def test_unresolvable_references_name_field_secret_and_key(
    spec: dict[str, object], namespace: str | None, reason: str, text: str
) -> None:
    with pytest.raises(PermanentError) as err:
        asyncio.run(secrets.resolve(spec, namespace, read))
    assert err.value.reason == reason
    assert text in str(err.value) and "spec.passwordFrom" in str(err.value)


def test_redaction_of_results_and_files(tmp_path: Path) -> None:
    result = RunResult(
        run_id="r",
        status="failed",
        failed_tasks=(FailedTask("h", "p", "t", "bad password hunter2!"),),
        outputs={"dsn": "postgres://app:hunter2@db", "n": 1},
        message="hunter2",
    )
    clean = secrets.redact_result(result, ("hunter2",))
    assert clean.failed_tasks[0].message == "bad password ********!"
    assert clean.outputs == {"dsn": "postgres://app:********@db", "n": 1}
    assert clean.message == "********"
    (tmp_path / "job_events").mkdir()
    (tmp_path / "job_events" / "1.json").write_text('{"stdout": "hunter2"}')
    (tmp_path / "stdout").write_text("nothing here")
    assert secrets.scrub_tree(tmp_path, ("hunter2",)) == 1
    assert "hunter2" not in (tmp_path / "job_events" / "1.json").read_text()
