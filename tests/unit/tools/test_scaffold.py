"""``ansible-bridge new``: sample values from a schema, and the files it writes (or refuses to)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli.main import main
from bridge.config.argspec import parse_argument_specs
from bridge.tools import crdgen, scaffold
from bridge.tools.scaffold import ScaffoldError, new, sample_spec
from tests.unit.helpers import make_watch

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "playbooks" / "roles" / "service_config"
PLAYBOOKS = REPO / "playbooks"

REF = crdgen.SECRET_KEY_REF


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


# --- sample values ----------------------------------------------------------------------------


def test_required_fields_get_placeholders_of_their_type() -> None:
    schema = obj(
        {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "e": {"type": "string", "enum": ["x", "y"]},
            "q": {"x-kubernetes-int-or-string": True},
            "r": {"x-kubernetes-preserve-unknown-fields": True},
            "f": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "l": {"type": "array", "items": {"type": "integer", "enum": [3, 4]}},
            "o": obj({"a": {"type": "string"}, "z": {"type": "string"}}, ["a"]),
            "lo": {"type": "array", "items": obj({"k": {"type": "boolean"}}, ["k"])},
            "d": {"type": "integer", "default": 7},
            "optional": {"type": "string"},
        },
        ["s", "i", "n", "b", "e", "q", "r", "f", "l", "o", "lo", "d"],
    )
    values, keys = sample_spec(schema)
    assert values == {
        "s": "changeme",
        "i": 1,
        "n": 1,
        "b": False,
        "e": "x",
        "q": "1",
        "r": "changeme",
        "f": {},
        "l": [3],
        "o": {"a": "changeme"},
        "lo": [{"k": False}],
        "d": 7,
    }
    assert keys == {}


def test_optional_fields_show_their_defaults_only() -> None:
    schema = obj(
        {
            "level": {"type": "string", "default": "info"},
            "tls": obj({"enabled": {"type": "boolean", "default": False}}),
            "tags": {"type": "array", "items": {"type": "string"}, "default": []},
        }
    )
    assert sample_spec(schema) == ({"level": "info", "tags": []}, {})


def test_required_secret_references_point_at_a_sample_secret() -> None:
    schema = obj(
        {
            "passwordFrom": dict(REF),
            "tokenFrom": dict(REF),
            "db": obj({"keyFrom": dict(REF)}, ["keyFrom"]),
        },
        ["passwordFrom", "db"],
    )
    values, keys = sample_spec(schema, "web-secrets")
    assert values == {
        "passwordFrom": {"secretKeyRef": {"name": "web-secrets", "key": "password"}},
        "db": {"keyFrom": {"secretKeyRef": {"name": "web-secrets", "key": "key"}}},
    }
    assert keys == {"password": "changeme", "key": "changeme"}
    assert scaffold.is_secret_ref(REF)


def test_sample_manifests_put_the_secret_first() -> None:
    spec = parse_argument_specs(
        {"argument_specs": {"main": {"options": {"pw": {"required": True}, "x": {}}}}}, "s.yml"
    )["main"]
    watch = make_watch(
        group="a.io",
        version="v1",
        kind="Thing",
        role=Path("/r"),
        arguments=spec,
        secret_options=("pw",),
    )
    (crd,) = crdgen.generate([watch])
    manifests, optional = scaffold.sample_manifests(crd, "thing-sample")
    assert manifests == [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "thing-sample-secrets"},
            "type": "Opaque",
            "stringData": {"pw": "changeme"},
        },
        {
            "apiVersion": "a.io/v1",
            "kind": "Thing",
            "metadata": {"name": "thing-sample"},
            "spec": {"pwFrom": {"secretKeyRef": {"name": "thing-sample-secrets", "key": "pw"}}},
        },
    ]
    assert optional == ["x"]


# --- new --------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder, the current folder, with a copy of the sample role and playbook."""
    shutil.copytree(ROLE, tmp_path / "roles" / "service_config")
    shutil.copy(PLAYBOOKS / "app_users.yml", tmp_path)
    shutil.copy(PLAYBOOKS / "app_users.argspec.yml", tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_new(**kwargs: Any) -> scaffold.NewResult:
    values: dict[str, Any] = {
        "kind": "Website",
        "group": "web.example.com",
        "watches": Path("watches.yaml"),
        "out": Path("crds"),
        "samples": Path("samples"),
        "environ": {},
    }
    values.update(kwargs)
    return new(**values)


def test_new_writes_the_entry_the_crd_and_a_sample(project: Path) -> None:
    result = run_new(role="roles/service_config")
    assert (result.entry, result.watches) == (1, project / "watches.yaml")
    assert result.crd == Path("crds/web.example.com_websites.yaml")
    assert result.sample == Path("samples/website.yaml")
    text = (project / "watches.yaml").read_text()
    assert text.startswith("---\n# ansible-bridge watches file")
    assert yaml.safe_load(text) == [
        {
            "version": "v1alpha1",
            "group": "web.example.com",
            "kind": "Website",
            "role": "roles/service_config",
        }
    ]
    crd = yaml.safe_load(result.crd.read_text())
    assert crd["metadata"]["name"] == "websites.web.example.com"
    assert result.crd.read_text().startswith(crdgen.HEADER + "\n")
    (sample,) = yaml.safe_load_all(result.sample.read_text())
    assert sample["apiVersion"] == "web.example.com/v1alpha1"
    assert sample["metadata"] == {"name": "website-sample"}
    assert sample["spec"]["serverNames"] == ["changeme"]
    assert sample["spec"]["upstreams"] == [
        {"backup": False, "host": "changeme", "name": "changeme", "port": 1, "weight": 1}
    ]
    assert sample["spec"]["logLevel"] == "info"
    assert "More fields: adminPasswordFrom, dataDir" in result.sample.read_text()
    assert result.warnings == ()
    # `ansible-bridge crd` regenerates exactly that CRD
    assert main(["crd", "--check"]) == 0


def test_new_appends_and_keeps_the_file_as_it_was(project: Path) -> None:
    watches = project / "watches.yaml"
    before = (
        "# my operator\n- version: v1\n  group: a.io\n  kind: Old\n  role: roles/service_config\n"
    )
    watches.write_text(before)
    result = run_new(
        kind="AppUsers",
        playbook="app_users.yml",
        argument_spec=str(project / "app_users.argspec.yml"),
        plural="appusers",
    )
    assert result.entry == 2
    text = watches.read_text()
    assert text.startswith(before + "\n- version: v1alpha1\n")
    assert yaml.safe_load(text)[1] == {
        "version": "v1alpha1",
        "group": "web.example.com",
        "kind": "AppUsers",
        "playbook": "app_users.yml",
        "argumentSpec": "app_users.argspec.yml",
        "plural": "appusers",
    }
    assert result.crd == Path("crds/web.example.com_appusers.yaml")
    assert not Path("crds/a.io_olds.yaml").exists()  # only the new kind's CRD is written


def test_a_flow_style_file_is_rewritten_as_a_list(project: Path) -> None:
    (project / "watches.yaml").write_text(
        "[{version: v1, group: a.io, kind: Old, role: roles/service_config}]\n"
    )
    run_new(role="roles/service_config")
    kinds = [e["kind"] for e in yaml.safe_load((project / "watches.yaml").read_text())]
    assert kinds == ["Old", "Website"]


def test_new_refuses_to_overwrite_and_names_what_exists(project: Path) -> None:
    run_new(role="roles/service_config")
    files = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    with pytest.raises(ScaffoldError) as info:
        run_new(role="roles/service_config")
    message = str(info.value)
    assert message.startswith("refusing to overwrite: ")
    assert "watches.yaml already has Website.web.example.com/v1alpha1 (entry 1)" in message
    assert "crds/web.example.com_websites.yaml exists" in message
    assert "samples/website.yaml exists" in message
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == files


def test_new_refuses_when_only_a_file_exists(project: Path) -> None:
    (project / "samples").mkdir()
    (project / "samples" / "website.yaml").write_text("mine\n")
    with pytest.raises(
        ScaffoldError, match=r"^refusing to overwrite: samples/website.yaml exists$"
    ):
        run_new(role="roles/service_config")
    assert not (project / "watches.yaml").exists()
    assert not (project / "crds").exists()
    assert (project / "samples" / "website.yaml").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("text", "says"),
    [("- {group: a.io\n", "line 2"), ("- {a: 1, a: 2}\n", "duplicate key 'a'")],
)
def test_a_broken_watches_file_is_named_and_left_alone(project: Path, text: str, says: str) -> None:
    (project / "watches.yaml").write_text(text)
    with pytest.raises(ScaffoldError, match=r"watches\.yaml: ") as info:
        run_new(role="roles/service_config")
    assert says in str(info.value)
    assert (project / "watches.yaml").read_text() == text
    assert not (project / "crds").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "nope"}, "key 'role': role 'nope' not found"),
        ({"playbook": "nope.yml"}, "key 'playbook': playbook 'nope.yml' not found"),
        ({"role": "roles/service_config", "kind": "website"}, "key 'kind'"),
        ({}, "give exactly one of --role and --playbook"),
    ],
)
def test_bad_input_writes_nothing(project: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ScaffoldError, match=message) as info:
        run_new(**kwargs)
    assert ".watches-" not in str(info.value)
    assert sorted(p.name for p in project.iterdir()) == [
        "app_users.argspec.yml",
        "app_users.yml",
        "roles",
    ]


def test_cli_new(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["new", "--kind", "Website", "--group", "web.example.com", "--role", str(ROLE)]
    assert main([*args, "--watches", "ops/watches.yaml", "--samples", "ops/samples"]) == 0
    out = capsys.readouterr().out
    assert f"added entry 1 (Website) to {project / 'ops' / 'watches.yaml'}" in out
    assert "wrote crds/web.example.com_websites.yaml" in out
    assert "next: kubectl apply -f crds/web.example.com_websites.yaml" in out
    # a role outside the watches file's folder is named by its absolute path
    assert yaml.safe_load((project / "ops" / "watches.yaml").read_text())[0]["role"] == str(ROLE)
    assert main([*args, "--watches", "ops/watches.yaml", "--samples", "ops/samples"]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
