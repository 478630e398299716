"""Argument specs as Ansible reads them, and the watches keys that name and use them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from bridge.config.argspec import (
    ArgumentSpecError,
    find_option,
    iter_options,
    load_argument_specs,
    parse_argument_specs,
    role_argument_spec_file,
    secret_paths,
)
from bridge.config.watches import load_watches
from bridge.model.errors import WatchesError
from bridge.model.watch import EntryPoint, Option

REPO = Path(__file__).resolve().parents[3]
PLAYBOOKS = REPO / "playbooks"


def parse(text: str) -> dict[str, EntryPoint]:
    return parse_argument_specs(yaml.safe_load(textwrap.dedent(text)), "spec.yml")


def options(text: str) -> tuple[Option, ...]:
    specs = parse_argument_specs(yaml.safe_load(textwrap.dedent(text)), "spec.yml")
    return specs["main"].options


# --- parsing ----------------------------------------------------------------------------------


def test_an_option_reads_every_key_ansible_validates_with() -> None:
    (opt,) = options(
        """
        argument_specs:
          main:
            options:
              level:
                type: str
                required: true
                default: info
                choices: [debug, info]
                description: [First paragraph., Second one.]
                no_log: false
                version_added: "1.2.0"
        """
    )
    assert opt == Option(
        name="level",
        type="str",
        required=True,
        default="info",
        has_default=True,
        choices=("debug", "info"),
        description=("First paragraph.", "Second one."),
    )


def test_defaults_as_ansible_reads_them() -> None:
    a, b, c = options(
        """
        argument_specs:
          main:
            options:
              a: {}
              b:
              c: {type: int, default: null, required: "yes", no_log: "True", description: One.}
        """
    )
    assert (a.type, a.required, a.has_default, a.description) == ("str", False, False, ())
    assert b == Option(name="b")
    assert (c.required, c.no_log, c.has_default, c.description) == (True, True, False, ("One.",))


def test_sub_options_are_read_and_ansible_checks_them_for_dicts_only() -> None:
    d, ld, ls, s = options(
        """
        argument_specs:
          main:
            options:
              d: {type: dict, options: {x: {type: int}}}
              ld: {type: list, elements: dict, options: {y: {}}}
              ls: {type: list, elements: str, options: {z: {}}}
              s: {options: {w: {}}}
        """
    )
    assert d.options == (Option(name="x", type="int"),)
    assert ld.options == (Option(name="y"),)
    assert ls.options == (Option(name="z"),)
    assert s.options == (Option(name="w"),)
    assert [o.checks_options for o in (d, ld, ls, s)] == [True, True, False, False]
    free = options("argument_specs: {main: {options: {f: {type: dict}}}}")[0]
    assert free.options is None and not free.checks_options


def test_entry_points_keep_their_documentation_and_order() -> None:
    specs = parse(
        """
        argument_specs:
          main:
            short_description: Does things.
            description: Long text.
          cleanup:
        """
    )
    assert list(specs) == ["main", "cleanup"]
    main = specs["main"]
    assert main.short_description == "Does things."
    assert main.description == ("Long text.",)
    assert specs["cleanup"].options == ()


def test_values_json_cannot_hold_become_strings() -> None:
    (opt,) = options("argument_specs: {main: {options: {d: {default: 2024-05-01}}}}")
    assert opt.default == "2024-05-01"


def test_ansible_tags_are_read_as_plain_values(tmp_path: Path) -> None:
    path = tmp_path / "spec.yml"
    path.write_text(
        "argument_specs:\n  main:\n    options:\n      t: {default: !unsafe '{{ x }}'}\n"
    )
    assert load_argument_specs(path)["main"].options[0].default == "{{ x }}"


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("[]", None, "expected a mapping with the key 'argument_specs'"),
        ("other: 1", None, "no 'argument_specs' key"),
        ("argument_specs: [main]", "argument_specs", "expected a mapping of entry points"),
        ("argument_specs: {main: 3}", "argument_specs.main", "expected a mapping"),
        ("argument_specs: {main: {options: [a]}}", "argument_specs.main.options", "a list"),
        (
            "argument_specs: {main: {options: {a: {type: [str]}}}}",
            "argument_specs.main.options.a.type",
            "expected a type name",
        ),
        (
            "argument_specs: {main: {options: {a: {choices: abc}}}}",
            "argument_specs.main.options.a.choices",
            "expected a list of allowed values",
        ),
        (
            "argument_specs: {main: {options: {a: {required: maybe}}}}",
            "argument_specs.main.options.a.required",
            "expected a boolean",
        ),
        (
            "argument_specs: {main: {options: {d: {type: dict, options: {x: 1}}}}}",
            "argument_specs.main.options.d.options.x",
            "expected a mapping (type, required, default...)",
        ),
    ],
)
def test_what_ansible_cannot_use_is_an_error_naming_the_key(
    text: str, key: str | None, message: str
) -> None:
    with pytest.raises(ArgumentSpecError) as info:
        parse(text)
    assert info.value.key == key
    assert info.value.path == "spec.yml"
    assert message in str(info.value)
    assert str(info.value).startswith(f"spec.yml: {key}: " if key else "spec.yml: ")


def test_a_file_that_is_not_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "spec.yml"
    path.write_text("argument_specs:\n  main: [\n")
    with pytest.raises(ArgumentSpecError, match=r"spec.yml: YAML error at line \d+"):
        load_argument_specs(path)


# --- a role's file ----------------------------------------------------------------------------


def test_the_role_file_is_found_as_ansible_finds_it(tmp_path: Path) -> None:
    role = tmp_path / "role"
    (role / "meta").mkdir(parents=True)
    assert role_argument_spec_file(role) is None
    (role / "meta" / "main.yml").write_text("galaxy_info: {}\n")
    assert role_argument_spec_file(role) is None
    (role / "meta" / "main.yml").write_text("argument_specs: {main: {}}\n")
    assert role_argument_spec_file(role) == role / "meta" / "main.yml"
    (role / "meta" / "argument_specs.yaml").write_text("argument_specs: {main: {}}\n")
    assert role_argument_spec_file(role) == role / "meta" / "argument_specs.yaml"
    (role / "meta" / "argument_specs.yml").write_text("argument_specs: {main: {}}\n")
    assert role_argument_spec_file(role) == role / "meta" / "argument_specs.yml"


def test_the_sample_role_spec() -> None:
    specs = load_argument_specs(
        PLAYBOOKS / "roles" / "service_config" / "meta" / "argument_specs.yml"
    )
    assert list(specs) == ["main", "cleanup"]
    main = specs["main"]
    paths = dict(iter_options(main.options))
    assert paths["upstreams.port"] == Option(
        name="port", type="int", required=True, description=("TCP port of the upstream server.",)
    )
    assert paths["tls.protocols"].choices == ("TLSv1.2", "TLSv1.3")
    assert paths["tls.protocols"].default == ["TLSv1.2", "TLSv1.3"]
    assert secret_paths(main.options) == ("admin_password",)


# --- queries ----------------------------------------------------------------------------------


NESTED = """
argument_specs:
  main:
    options:
      db:
        type: dict
        options:
          password: {no_log: true}
          user: {}
      users:
        type: list
        elements: dict
        options:
          token: {no_log: true, type: dict, options: {inner: {no_log: true}}}
      flat: {type: str}
"""


def test_secret_paths_are_dotted_and_stop_at_a_secret() -> None:
    assert secret_paths(options(NESTED)) == ("db.password", "users.token")


def test_find_option_walks_dicts_and_lists_of_dicts() -> None:
    opts = options(NESTED)
    found = find_option(opts, "users.token.inner")
    assert isinstance(found, Option) and found.name == "inner"
    assert find_option(opts, "db.nope") == (
        "option 'db' has no option 'nope' (options: password, user)"
    )
    assert find_option(opts, "nope") == (
        "the argument spec has no option 'nope' (options: db, flat, users)"
    )
    assert find_option(opts, "flat.x") == (
        "option 'flat' is a str without sub-options, so it has no 'x'"
    )


# --- watches keys -----------------------------------------------------------------------------

SPEC = """\
argument_specs:
  main:
    options:
      password: {type: str}
      db:
        type: dict
        options:
          secret: {type: str, no_log: true}
          host: {type: str}
  other:
    options:
      token: {no_log: true}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "play.yml").write_text("- hosts: localhost\n  tasks: []\n")
    (tmp_path / "play.argspec.yml").write_text(SPEC)
    role = tmp_path / "roles" / "web"
    (role / "tasks").mkdir(parents=True)
    (role / "tasks" / "main.yml").write_text("[]\n")
    (role / "meta").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(SPEC)
    (tmp_path / "roles" / "plain" / "tasks").mkdir(parents=True)
    return tmp_path


def watches(project: Path, entry: str) -> Path:
    path = project / "watches.yaml"
    head = "- group: web.example.com\n  version: v1\n  kind: Site\n"
    path.write_text(head + textwrap.indent(textwrap.dedent(entry), "  "))
    return path


def test_a_role_brings_its_spec_and_no_log_options(project: Path) -> None:
    [watch], warnings = load_watches(watches(project, "role: web\n"), {})
    assert warnings == []
    assert watch.crd.argument_spec == project / "roles" / "web" / "meta" / "argument_specs.yml"
    assert watch.crd.entry_point == "main"
    assert watch.crd.arguments is not None and watch.crd.arguments.name == "main"
    assert watch.crd.secret_options == ("db.secret",)
    assert (watch.resource.scope, watch.resource.short_names, watch.resource.plural) == (
        "Namespaced",
        (),
        None,
    )


def test_secret_options_add_to_the_no_log_ones(project: Path) -> None:
    path = watches(project, "role: web\nsecretOptions: [password, db.host, password]\n")
    [watch], _ = load_watches(path, {})
    assert watch.crd.secret_options == ("db.host", "db.secret", "password")


def test_an_entry_point_picks_its_spec(project: Path) -> None:
    [watch], _ = load_watches(watches(project, "role: web\nentryPoint: other\n"), {})
    assert watch.crd.entry_point == "other"
    assert watch.crd.secret_options == ("token",)


def test_a_playbook_takes_its_spec_from_argument_spec(project: Path) -> None:
    path = watches(project, "playbook: play.yml\nargumentSpec: play.argspec.yml\n")
    [watch], _ = load_watches(path, {})
    assert watch.crd.argument_spec == project / "play.argspec.yml"
    assert watch.crd.secret_options == ("db.secret",)
    [bare], _ = load_watches(watches(project, "playbook: play.yml\n"), {})
    assert (bare.crd.argument_spec, bare.crd.arguments, bare.crd.secret_options) == (None, None, ())


def test_a_role_without_a_spec_has_none(project: Path) -> None:
    [watch], warnings = load_watches(watches(project, "role: plain\nsecretOptions: [pw]\n"), {})
    assert (watch.crd.argument_spec, watch.crd.arguments, warnings) == (None, None, [])
    assert watch.crd.secret_options == ("pw",)


def test_crd_keys(project: Path) -> None:
    path = watches(project, "role: web\nscope: Cluster\nshortNames: [st, s]\nplural: sitez\n")
    [watch], _ = load_watches(path, {})
    assert (watch.resource.scope, watch.resource.short_names, watch.resource.plural) == (
        "Cluster",
        ("st", "s"),
        "sitez",
    )


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ("role: web\nsecretOptions: [nope]\n", "secretOptions[0]", "has no option 'nope'"),
        ("role: web\nsecretOptions: [db.nope]\n", "secretOptions[0]", "option 'db' has no"),
        ("role: web\nsecretOptions: password\n", "secretOptions", "expected a list"),
        ("role: web\nsecretOptions: [1]\n", "secretOptions[0]", "expected a string"),
        ("role: web\nentryPoint: nope\n", "entryPoint", "has no entry point 'nope'"),
        ("role: plain\nentryPoint: main\n", "entryPoint", "the role has no argument spec"),
        ("playbook: play.yml\nentryPoint: main\n", "entryPoint", "no argumentSpec"),
        ("playbook: play.yml\nargumentSpec: nope.yml\n", "argumentSpec", "does not exist"),
        ("playbook: play.yml\nargumentSpec: roles\n", "argumentSpec", "is a folder"),
        ("playbook: play.yml\nargumentSpec: play.yml\n", "argumentSpec", "invalid argument spec"),
        ("role: web\nscope: Global\n", "scope", "expected Namespaced or Cluster"),
        ("role: web\nshortNames: [Site]\n", "shortNames[0]", "is not a lowercase name"),
        ("role: web\nshortNames: [s, s]\n", "shortNames[1]", "listed twice"),
        ("role: web\nplural: Sites\n", "plural", "is not a lowercase name"),
        ("role: web\nsecretoptions: [a]\n", "secretoptions", "did you mean 'secretOptions'"),
    ],
)
def test_bad_keys_name_the_file_entry_and_key(
    project: Path, entry: str, key: str, message: str
) -> None:
    path = watches(project, entry)
    with pytest.raises(WatchesError) as info:
        load_watches(path, {})
    assert (info.value.path, info.value.entry, info.value.key) == (str(path), 1, key)
    assert message in str(info.value)


def test_a_broken_role_spec_is_an_error_on_role(project: Path) -> None:
    (project / "roles" / "web" / "meta" / "argument_specs.yml").write_text(
        "argument_specs: {main: {options: [x]}}\n"
    )
    with pytest.raises(WatchesError) as info:
        load_watches(watches(project, "role: web\n"), {})
    assert info.value.key == "role"
    assert "argument_specs.main.options: expected a mapping" in str(info.value)


def test_the_sample_watches_file() -> None:
    loaded, warnings = load_watches(PLAYBOOKS / "watches.yaml", {})
    assert warnings == []
    service, users = loaded
    assert service.crd.secret_options == ("admin_password",)
    assert service.resource.short_names == ("svccfg", "scfg")
    assert users.crd.argument_spec == PLAYBOOKS / "app_users.argspec.yml"
    assert (users.resource.plural, users.crd.secret_options) == ("appusers", ())
