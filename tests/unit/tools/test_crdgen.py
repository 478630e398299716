"""CRD generation: Ansible types to OpenAPI, names, Secret references, status, files, the CLI."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli.main import main
from bridge.config.argspec import iter_options, load_argument_specs, parse_argument_specs
from bridge.config.watches import load_watches
from bridge.model.names import to_camel, to_snake
from bridge.model.watch import EntryPoint, Watch
from bridge.tools import crdgen
from tests.unit.helpers import make_watch

REPO = Path(__file__).resolve().parents[3]
PLAYBOOKS = REPO / "playbooks"
COLLECTIONS = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
COLLECTIONS = COLLECTIONS / "site-packages" / "ansible_collections"


#: Any value (no type).
ANY = {"x-kubernetes-preserve-unknown-fields": True}


def entry(options: str, **extra: Any) -> EntryPoint:
    """The entry point ``main`` with ``options`` (YAML of an options mapping)."""
    data = {"argument_specs": {"main": {"options": yaml.safe_load(textwrap.dedent(options))}}}
    data["argument_specs"]["main"].update(extra)
    return parse_argument_specs(data, "spec.yml")["main"]


def schema(options: str, **kwargs: Any) -> dict[str, Any]:
    result, _ = crdgen.spec_schema(entry(options), **kwargs)
    return result


def props(options: str, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = schema(options, **kwargs)["properties"]
    return result


def warnings(options: str, **kwargs: Any) -> list[str]:
    _, found = crdgen.spec_schema(entry(options), **kwargs)
    return found


def watch(**kwargs: Any) -> Watch:
    values: dict[str, Any] = {
        "group": "web.example.com",
        "version": "v1alpha1",
        "kind": "Website",
        "role": Path("/roles/site"),
        "source": "watches.yaml: entry 1",
    }
    values.update(kwargs)
    return make_watch(**values)


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "plural"),
    [
        ("Website", "websites"),
        ("Proxy", "proxies"),
        ("Gateway", "gateways"),
        ("Box", "boxes"),
        ("Status", "statuses"),
        ("Patch", "patches"),
        ("Mesh", "meshes"),
        ("AppUsers", "appuserses"),
    ],
)
def test_plural(kind: str, plural: str) -> None:
    assert crdgen.plural_of(kind) == plural


def sample_entry_points() -> Iterator[tuple[str, EntryPoint]]:
    role = PLAYBOOKS / "roles" / "service_config" / "meta" / "argument_specs.yml"
    for path in (role, PLAYBOOKS / "app_users.argspec.yml"):
        for name, spec in load_argument_specs(path).items():
            yield f"{path.name}:{name}", spec


def real_role_entry_points() -> Iterator[tuple[str, EntryPoint]]:
    for path in sorted(COLLECTIONS.glob("*/*/roles/*/meta/argument_specs.y*ml")):
        for name, spec in load_argument_specs(path).items():
            yield f"{path.relative_to(COLLECTIONS)}:{name}", spec


@pytest.mark.parametrize(
    "source", [sample_entry_points, real_role_entry_points], ids=["samples", "real-roles"]
)
def test_every_option_round_trips_to_its_exact_name(source: Any) -> None:
    """Each option of each entry point: camelCase in the CRD, its exact name in Ansible."""
    checked = 0
    for where, spec in source():
        for path, option in iter_options(spec.options):
            field = crdgen.field_name(option.name)
            assert field == to_camel(option.name), (where, path)
            assert to_snake(field) == option.name, (where, path, field)
            assert to_snake(crdgen.secret_field(field)[: -len("From")]) == option.name
            checked += 1
    assert checked > (20 if source is sample_entry_points else 500)


@pytest.mark.parametrize(
    ("option", "field"),
    [
        ("listen_port", "listenPort"),
        ("egress_ips", "egressIps"),
        ("my_ip", "myIP"),
        ("url", "URL"),
        ("host_ip_addresses", "hostIPAddresses"),
        ("k8s_version", "k8sVersion"),
        ("x509_cert", "x509Cert"),
        ("_private", "Private"),
        # to_camel would not come back: the option's own name does
        ("http_url", "http_url"),
        ("ip_v6", "ip_v6"),
        ("tls_v1_2", "tls_v1_2"),
        ("x_y", "x_y"),
    ],
)
def test_field_names_come_back_as_the_option(option: str, field: str) -> None:
    assert crdgen.field_name(option) == field
    assert crdgen.reaches(field, option)


def test_an_option_no_field_name_reaches_is_kept_and_said() -> None:
    found = warnings("{fooBar: {type: str}}")
    assert found == [
        "spec.yml: option 'fooBar': Note: the bridge passes this field to Ansible as 'foo_bar', "
        "not as the option 'fooBar'; rename the option or set snakeCaseParameters: false in the "
        "watches entry."
    ]
    assert "Note: the bridge passes" in props("{fooBar: {type: str}}")["fooBar"]["description"]
    assert warnings("{fooBar: {type: str}}", snake_case_parameters=False) == []


def test_without_snake_case_fields_are_the_option_names() -> None:
    result = props("{listen_port: {type: int}, pw: {no_log: true}}", secret_options=["pw"],
                   snake_case_parameters=False)  # fmt: skip
    assert list(result) == ["listen_port", "pwFrom"]


def test_two_options_of_one_field_name_are_an_error() -> None:
    with pytest.raises(crdgen.CrdError, match="options 'fooBar' and 'foo_bar' both become"):
        schema("{fooBar: {}, foo_bar: {}}")
    with pytest.raises(crdgen.CrdError, match="'pw_from' and 'pw' both become the field 'pwFrom'"):
        schema("{pw_from: {}, pw: {no_log: true}}", secret_options=["pw"])


# --- types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{}", {"type": "string"}),
        ("{type: str}", {"type": "string"}),
        ("{type: path}", {"type": "string"}),
        ("{type: int}", {"type": "integer"}),
        ("{type: float}", {"type": "number"}),
        ("{type: bool}", {"type": "boolean"}),
        ("{type: bytes}", {"x-kubernetes-int-or-string": True}),
        ("{type: bits}", {"x-kubernetes-int-or-string": True}),
        ("{type: raw}", ANY),
        ("{type: jsonarg}", ANY),
        ("{type: json}", ANY),
        ("{type: dict}", {"type": "object", **ANY}),
        ("{type: list}", {"type": "array", "items": ANY}),
        ("{type: list, elements: int}", {"type": "array", "items": {"type": "integer"}}),
        ("{type: list, elements: path}", {"type": "array", "items": {"type": "string"}}),
        (
            "{type: list, elements: dict}",
            {"type": "array", "items": {"type": "object", **ANY}},
        ),
        (
            "{type: list, elements: list}",
            {"type": "array", "items": {"type": "array", "items": ANY}},
        ),
        ("{type: str, choices: [a, b, a]}", {"type": "string", "enum": ["a", "b"]}),
        ("{type: str, choices: [1, 2.5, true]}", {"type": "string", "enum": ["1", "2.5", "True"]}),
        ("{type: int, choices: [1, 2]}", {"type": "integer", "enum": [1, 2]}),
        ("{type: bool, choices: [true]}", {"type": "boolean", "enum": [True]}),
        (
            "{type: list, elements: str, choices: [x, y]}",
            {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}},
        ),
        ("{type: raw, choices: [1, a]}", ANY),
        (
            "{type: str, description: [One., Two.]}",
            {"description": "One.\n\nTwo.", "type": "string"},
        ),
    ],
)
def test_ansible_types_to_openapi(spec: str, expected: dict[str, Any]) -> None:
    assert props(f"{{opt: {spec}}}")["opt"] == expected


def test_dict_and_list_of_dict_options_are_closed_objects() -> None:
    result = props(
        """
        db:
          type: dict
          required: true
          options:
            host: {type: str, required: true}
            port: {type: int, default: 5432}
        users:
          type: list
          elements: dict
          options:
            name: {required: true}
            admin: {type: bool}
        """
    )
    assert result["db"] == {
        "type": "object",
        "properties": {
            "host": {"type": "string"},
            "port": {"type": "integer", "default": 5432},
        },
        "required": ["host"],
    }
    assert result["users"] == {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"admin": {"type": "boolean"}, "name": {"type": "string"}},
            "required": ["name"],
        },
    }


def test_required_options_and_spec_required() -> None:
    result = schema("{b: {required: true}, a: {required: true}, c: {}}")
    assert result["required"] == ["a", "b"]
    assert list(result["properties"]) == ["a", "b", "c"]
    assert "default" not in result


def test_unknown_types_accept_anything_with_a_warning() -> None:
    assert props("{a: {type: string}}")["a"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert warnings("{a: {type: string}, b: {type: list, elements: any}}") == [
        "spec.yml: option 'a': unknown type 'string'; any value is accepted",
        "spec.yml: option 'b': unknown elements type 'any'; any value is accepted",
    ]


def test_choices_of_the_wrong_type_are_left_out_with_a_warning() -> None:
    assert props("{a: {type: int, choices: [1, x]}}")["a"]["enum"] == [1]
    assert warnings("{a: {type: int, choices: [1, x]}}") == [
        "spec.yml: option 'a': choice 'x' left out: 'x' is not a valid integer"
    ]


def test_descriptions_lose_ansible_markup() -> None:
    text = crdgen.plain_text(
        [
            "Use C(foo) or V(bar), see O(tls.cert_file) and O(users[].full_name=x).",
            "I(italic) B(bold) M(ansible.builtin.copy) U(https://x.io) L(the docs,https://d.io).",
            "O(ansible.builtin.copy#module:dest) HORIZONTALLINE",
            "Also  spaces\n are   folded. API(v2) stays.",
        ],
        crdgen.field_name,
    )
    assert text == (
        "Use `foo` or `bar`, see `tls.certFile` and `users.fullName=x`.\n\n"
        "italic bold ansible.builtin.copy https://x.io the docs (https://d.io).\n\n"
        "`dest`\n\n"
        "Also spaces are folded. API(v2) stays."
    )


# --- defaults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "default"),
    [
        ("{type: str, default: x}", "x"),
        ("{type: str, default: 8080}", "8080"),
        ("{type: str, default: ''}", ""),
        ("{type: int, default: 0}", 0),
        ("{type: float, default: 1}", 1),
        ("{type: bool, default: false}", False),
        ("{type: bytes, default: 1G}", "1G"),
        ("{type: list, elements: str, default: []}", []),
        ("{type: list, elements: str, default: 'a,b'}", ["a", "b"]),
        ("{type: list, default: 3}", ["3"]),
        ("{type: dict, default: {any_key: 1}}", {"any_key": 1}),
        ("{type: raw, default: [1, a]}", [1, "a"]),
        ("{type: str, choices: [a, b], default: b}", "b"),
        (
            "{type: dict, options: {cert_file: {}, port: {type: int}}, default: {cert_file: c}}",
            {"certFile": "c"},
        ),
        (
            "{type: list, elements: dict, options: {full_name: {}}, default: [{full_name: A}]}",
            [{"fullName": "A"}],
        ),
    ],
)
def test_valid_defaults_are_kept(spec: str, default: Any) -> None:
    result = props(f"{{opt: {spec}}}")["opt"]
    assert result["default"] == default
    assert warnings(f"{{opt: {spec}}}") == []


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("{type: str, default: true}", "True is not a valid string"),
        ("{type: int, default: '80'}", "'80' is not a valid integer"),
        ("{type: int, default: true}", "True is not a valid integer"),
        ("{type: bool, default: 'yes'}", "'yes' is not a valid boolean"),
        ("{type: str, choices: [a], default: b}", "'b' is not one of the choices"),
        ("{type: list, elements: int, default: [a]}", "'a' is not a valid integer"),
        ("{type: dict, options: {a: {}}, default: {b: 1}}", "'b' is not a field of the object"),
        ("{type: dict, options: {a: {required: true}}, default: {}}", "lacks the required field"),
        ("{type: dict, default: [1]}", "not a mapping"),
    ],
)
def test_invalid_defaults_are_left_out_with_a_warning(spec: str, why: str) -> None:
    assert "default" not in props(f"{{opt: {spec}}}")["opt"]
    (warning,) = warnings(f"{{opt: {spec}}}")
    assert warning.startswith("spec.yml: option 'opt': default ")
    assert why in warning


def test_template_defaults_are_only_described() -> None:
    result = props("{host: {type: str, default: '{{ ansible_host }}', description: The host.}}")
    assert result["host"] == {
        "description": "The host.\n\nDefault: '{{ ansible_host }}' (computed by the role).",
        "type": "string",
    }
    assert warnings("{host: {type: str, default: '{{ x }}'}}") == []


def test_a_spec_without_required_fields_defaults_to_empty_so_defaults_apply() -> None:
    assert schema("{a: {type: int, default: 1}}")["default"] == {}
    assert "default" not in schema("{a: {type: int}}")


# --- secrets ----------------------------------------------------------------------------------

SECRETS = """
admin_password: {type: str, no_log: true, required: true, description: The password.}
api_token: {type: str}
db:
  type: dict
  options:
    password: {no_log: true}
users:
  type: list
  elements: dict
  options:
    password_hash: {no_log: true, required: true}
"""


def test_secret_options_become_secret_references() -> None:
    opts = entry(SECRETS).options
    secret = ["admin_password", "api_token", "db.password", "users.password_hash"]
    result, _ = crdgen.spec_schema(entry(SECRETS), secret_options=secret)
    fields = result["properties"]
    assert set(fields) == {"adminPasswordFrom", "apiTokenFrom", "db", "users"}
    assert result["required"] == ["adminPasswordFrom"]
    ref = {k: v for k, v in fields["adminPasswordFrom"].items() if k != "description"}
    assert ref == crdgen.SECRET_KEY_REF
    assert fields["adminPasswordFrom"]["description"].startswith("The password.\n\nThe 'admin")
    assert set(fields["db"]["properties"]) == {"passwordFrom"}
    items = fields["users"]["items"]
    assert set(items["properties"]) == {"passwordHashFrom"}
    assert items["required"] == ["passwordHashFrom"]
    assert len(opts) == 4


def test_only_listed_options_are_secret() -> None:
    """spec_schema takes the list (the watches loader adds the no_log ones to it)."""
    assert set(props(SECRETS)) == {"adminPassword", "apiToken", "db", "users"}


# --- whole CRDs -------------------------------------------------------------------------------


def sample_crds() -> list[crdgen.Crd]:
    loaded, _ = load_watches(PLAYBOOKS / "watches.yaml", {})
    return crdgen.generate(loaded)


def test_the_sample_crds_are_the_generated_ones() -> None:
    """What `make crd-check` checks: crds/ holds exactly what the generator writes."""
    for crd in sample_crds():
        assert (REPO / "crds" / crd.filename).read_text() == crd.text(), crd.filename


def test_a_crd_names_scope_columns_and_status() -> None:
    (crd,) = crdgen.generate(
        [
            watch(
                short_names=("site",),
                arguments=entry("{port: {type: int, required: true}}", short_description="Sites."),
            )
        ]
    )
    manifest = crd.manifest
    assert crd.filename == "web.example.com_websites.yaml"
    assert manifest["metadata"] == {"name": "websites.web.example.com"}
    assert manifest["spec"]["names"] == {
        "kind": "Website",
        "listKind": "WebsiteList",
        "plural": "websites",
        "singular": "website",
        "shortNames": ["site"],
        "categories": ["ansible"],
    }
    assert manifest["spec"]["scope"] == "Namespaced"
    (version,) = manifest["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Ready",
        "Reason",
        "Changed",
        "Last Run",
        "Age",
    ]
    root = version["schema"]["openAPIV3Schema"]
    assert root["required"] == ["spec"]
    assert root["description"].startswith("Sites.\n\nReconciled by ansible-bridge with the role")
    status = root["properties"]["status"]
    assert "x-kubernetes-preserve-unknown-fields" not in status
    assert set(status["properties"]) == {
        "conditions",
        "currentRun",
        "lastCheck",
        "lastRun",
        "observedGeneration",
        "outputs",
        "runs",
    }
    last_run = status["properties"]["lastRun"]
    assert last_run["x-kubernetes-preserve-unknown-fields"] is True
    assert last_run["properties"]["hosts"]["x-kubernetes-preserve-unknown-fields"] is True
    assert status["properties"]["conditions"]["items"]["properties"]["lastTransitionTime"] == {
        "type": "string",
        "format": "date-time",
    }
    assert crd.warnings == ()


def test_a_playbook_owned_status_is_free_form() -> None:
    assert crdgen.status_schema(False)["x-kubernetes-preserve-unknown-fields"] is True


def test_no_spec_is_free_form_with_a_warning_saying_how_to_add_one() -> None:
    (crd,) = crdgen.generate([watch()])
    spec = crd.manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["x-kubernetes-preserve-unknown-fields"] is True
    assert "properties" not in spec
    (warning,) = crd.warnings
    assert "no argument spec" in warning
    assert "add meta/argument_specs.yml to the role" in warning
    (playbook,) = crdgen.generate([watch(role=None, playbook=Path("/p/site.yml"))])
    assert "name it with 'argumentSpec' in the watches entry" in playbook.warnings[0]


def test_ansible_and_vars_options_are_not_fields() -> None:
    options = "{ansible_operator_meta: {type: dict}, ansible_port: {}, region: {}, size: {}}"
    (crd,) = crdgen.generate([watch(arguments=entry(options), vars={"region": "eu"})])
    spec = crd.manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert list(spec["properties"]) == ["size"]
    assert crd.warnings == (
        "watches.yaml: entry 1: option 'ansible_port': not a spec field: an ansible_* variable "
        "is Ansible's or the bridge's to set",
        "watches.yaml: entry 1: option 'region': not a spec field: the watches entry's vars set it",
    )


def test_cluster_scope_and_plural() -> None:
    (crd,) = crdgen.generate([watch(scope="Cluster", plural="sitez")])
    assert crd.manifest["spec"]["scope"] == "Cluster"
    assert crd.name == "sitez.web.example.com"
    (secret,) = crdgen.generate(
        [watch(scope="Cluster", secret_options=("pw",), arguments=entry("{pw: {}}"))]
    )
    assert any("cluster-scoped" in w for w in secret.warnings)


def test_versions_of_a_kind_share_a_crd_and_the_highest_is_stored() -> None:
    crds = crdgen.generate(
        [watch(version=v) for v in ("v1alpha1", "v1", "v1beta2", "v2alpha1", "v1beta10")]
    )
    (crd,) = crds
    versions = crd.manifest["spec"]["versions"]
    assert [(v["name"], v["storage"]) for v in versions] == [
        ("v1", True),
        ("v1beta10", False),
        ("v1beta2", False),
        ("v2alpha1", False),
        ("v1alpha1", False),
    ]
    with pytest.raises(crdgen.CrdError, match="another scope"):
        crdgen.generate([watch(), watch(version="v1", scope="Cluster")])


def test_two_kinds_of_one_crd_name_are_an_error() -> None:
    with pytest.raises(crdgen.CrdError, match="already generated for Website"):
        crdgen.generate([watch(plural="sites"), watch(kind="Site")])


def test_output_is_deterministic_with_a_header() -> None:
    first = [crd.text() for crd in sample_crds()]
    second = [crd.text() for crd in sample_crds()]
    assert first == second
    for text in first:
        lines = text.splitlines()
        assert lines[0] == crdgen.HEADER
        assert lines[1].startswith("# from v1alpha1: ")
        assert lines[2] == "---"
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"


def test_the_sample_crds() -> None:
    service, users = (
        crd.manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for crd in sorted(sample_crds(), key=lambda c: c.name, reverse=True)
    )
    assert service["required"] == ["serverNames", "upstreams"]
    assert "adminPassword" not in service["properties"]
    assert service["properties"]["adminPasswordFrom"]["required"] == ["secretKeyRef"]
    assert "ansibleOperatorMeta" not in service["properties"]
    assert service["properties"]["logLevel"]["enum"] == ["debug", "info", "warning", "error"]
    tls = service["properties"]["tls"]["properties"]
    assert tls["protocols"]["items"]["enum"] == ["TLSv1.2", "TLSv1.3"]
    items = users["properties"]["users"]["items"]
    assert items["required"] == ["name"]
    assert items["properties"]["shell"]["default"] == "/bin/bash"
    assert users["properties"]["userGroups"]["default"] == []


# --- files ------------------------------------------------------------------------------------


def test_sync_writes_checks_and_removes_only_generated_files(tmp_path: Path) -> None:
    crds = sample_crds()
    out = tmp_path / "crds"
    report = crdgen.sync(crds, out, check=True)
    assert report.stale and len(report.written) == 2 and not out.exists()
    report = crdgen.sync(crds, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(report.written)
    assert crdgen.sync(crds, out, check=True) == crdgen.SyncReport(unchanged=report.written)
    (out / "old.yaml").write_text(crdgen.HEADER + "\n---\n{}\n")
    (out / "mine.yaml").write_text("# hand-written\n")
    (out / crds[0].filename).write_text("changed\n")
    stale = crdgen.sync(crds, out, check=True)
    assert (stale.written, stale.removed) == ((crds[0].filename,), ("old.yaml",))
    assert (out / "old.yaml").exists()
    crdgen.sync(crds, out)
    assert not (out / "old.yaml").exists()
    assert (out / "mine.yaml").exists()
    assert (out / crds[0].filename).read_text() == crds[0].text()


def test_cli_crd_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    watches = str(PLAYBOOKS / "watches.yaml")
    out = tmp_path / "crds"
    assert main(["crd", "--watches", watches, "--out", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert "stale or missing" in err and "run: ansible-bridge crd --watches" in err
    assert main(["crd", "--watches", watches, "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("wrote ") == 2
    assert main(["crd", "--watches", watches, "--out", str(out), "--check"]) == 0
    assert "up to date (2 CRDs)" in capsys.readouterr().out
    assert main(["crd", "--watches", watches, "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("unchanged ") == 2


def test_cli_crd_warns_and_fails_on_bad_watches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "play.yml").write_text("[]\n")
    watches = tmp_path / "watches.yaml"
    watches.write_text("- {group: a.io, version: v1, kind: A, playbook: play.yml}\n")
    assert main(["crd", "--watches", str(watches), "--out", str(tmp_path / "crds")]) == 0
    assert "warning: " in capsys.readouterr().err
    watches.write_text("- {group: a.io, version: v1, kind: A, playbook: nope.yml}\n")
    assert main(["crd", "--watches", str(watches), "--out", str(tmp_path / "crds")]) == 2
    assert "key 'playbook'" in capsys.readouterr().err


def test_a_list_documented_with_sub_options_takes_objects() -> None:
    """Real roles (telekom_mms.icinga_director) write ``elements: str`` with ``options`` for a
    list of dicts; Ansible ignores those options, so the documented fields are typed and others
    kept."""
    spec = (
        "{hosts: {type: list, elements: str, options: {name: {required: true}, port: {type: int}}}}"
    )
    assert props(spec)["hosts"] == {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
            "x-kubernetes-preserve-unknown-fields": True,
        },
    }
    (warning,) = warnings(spec)
    assert "elements is str but sub-options are given" in warning
    assert props("{s: {type: str, options: {a: {}}}}")["s"] == {"type": "string"}
    assert "sub-options of a str are ignored" in warnings("{s: {type: str, options: {a: {}}}}")[0]
