"""Secret references in specs: found, resolved from the resource's namespace, redacted."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from bridge.ansible import secrets
from bridge.model.errors import PermanentError
from bridge.model.records import FailedTask, RunResult
from tests.unit.ansible.secret_forms import SPECIAL_VALUES, encoded_forms

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


@pytest.mark.parametrize(
    "value", ["hunter2", *SPECIAL_VALUES.values()], ids=["plain", *SPECIAL_VALUES]
)
def test_redaction_of_results_and_files(value: str, tmp_path: Path) -> None:
    escaped = json.dumps(value)[1:-1]
    result = RunResult(
        run_id="r",
        status="failed",
        failed_tasks=(FailedTask("h", "p", "t", f"bad password {value}!"),),
        outputs={"dsn": f"postgres://app:{value}@db", "n": 1},
        message=" ".join(value.split()),
    )
    clean = secrets.redact_result(result, (value,))
    assert clean.failed_tasks[0].message == "bad password ********!"
    assert clean.outputs == {"dsn": "postgres://app:********@db", "n": 1}
    assert clean.message == "********"
    (tmp_path / "job_events").mkdir()
    with (tmp_path / "job_events" / "1.json").open("w") as stream:
        json.dump({"stdout": f'ok => {{"msg": "{escaped}"}}', "res": {"msg": value}}, stream)
    (tmp_path / "stdout").write_text("nothing here")
    assert secrets.scrub_tree(tmp_path, (value,)) == 1
    data = (tmp_path / "job_events" / "1.json").read_text()
    assert sorted(form for form in encoded_forms(value) if form in data) == []
    assert json.loads(data) == {"stdout": 'ok => {"msg": "********"}', "res": {"msg": "********"}}
