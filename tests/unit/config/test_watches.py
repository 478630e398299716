"""The watches.yaml loader: real files in a temporary folder, every rule and every error."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from bridge.config.watches import load_watches, parse_duration
from bridge.model import units
from bridge.model.errors import WatchesError
from bridge.model.watch import EXECUTOR_NAMES, FinalizerSpec, Watch
from tests.unit.helpers import make_watch

HEAD = """\
- group: cache.example.com
  version: v1alpha1
  kind: Memcached
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with a playbook, a finalizer playbook, a role and an inventory."""
    (tmp_path / "playbook.yml").write_text("- hosts: localhost\n  tasks: []\n")
    (tmp_path / "finalize.yml").write_text("- hosts: localhost\n  tasks: []\n")
    make_role(tmp_path / "roles" / "memcached")
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text("all: {}\n")
    return tmp_path


def make_role(folder: Path) -> Path:
    (folder / "tasks").mkdir(parents=True)
    (folder / "tasks" / "main.yml").write_text("- ansible.builtin.debug: msg=hi\n")
    return folder


def write(folder: Path, text: str, name: str = "watches.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def load_one(path: Path, environ: Mapping[str, str] | None = None) -> tuple[Watch, list[str]]:
    watches, warnings = load_watches(path, environ or {})
    assert len(watches) == 1
    return watches[0], warnings


def load_error(
    path: Path,
    *,
    entry: int | None,
    key: str | None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Load ``path`` expecting a WatchesError naming the file, ``entry`` and ``key``."""
    with pytest.raises(WatchesError) as info:
        load_watches(path, environ or {})
    error = info.value
    message = str(error)
    assert error.path == str(path)
    assert error.entry == entry
    assert error.key == key
    assert message.startswith(f"{path}: ")
    if entry is not None:
        assert f"entry {entry}" in message
    if key is not None:
        assert f"key '{key}'" in message
    assert error.reason == "InvalidWatches"
    return message


# --- valid files ------------------------------------------------------------------------------


def test_minimal_entry_gets_the_defaults(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n")
    watch, warnings = load_one(path)
    assert watch == make_watch(
        group="cache.example.com",
        version="v1alpha1",
        kind="Memcached",
        playbook=project / "playbook.yml",
        source=f"{path}: entry 1",
    )
    assert watch.automation.playbook is not None and watch.automation.playbook.is_absolute()
    assert watch.automation.role is None
    assert watch.automation.vars == {}
    assert watch.policy.reconcile_period is None
    assert watch.policy.manage_status is True
    assert watch.automation.finalizer is None
    assert watch.resource.selector is None
    assert watch.automation.snake_case_parameters is True
    assert watch.automation.mark_unsafe is True
    assert watch.policy.max_runner_artifacts == 20
    assert watch.policy.watch_annotations_changes is False
    assert watch.automation.timeout == 3600.0
    assert watch.automation.inventory is None
    assert watch.automation.gather_facts is False
    assert warnings == []


def test_full_entry_with_every_key(project: Path) -> None:
    path = write(
        project,
        HEAD
        + """\
  role: memcached
  vars:
    size: 3
    nested: {a: [1, two]}
  reconcilePeriod: 1m30s
  manageStatus: false
  finalizer:
    name: cache.example.com/finalizer
    playbook: finalize.yml
    vars:
      state: absent
  selector:
    matchLabels:
      app: memcached
    matchExpressions:
      - {key: tier, operator: In, values: [cache, db]}
      - {key: legacy, operator: DoesNotExist}
  snakeCaseParameters: false
  markUnsafe: false
  maxRunnerArtifacts: 5
  watchAnnotationsChanges: true
  blacklist:
    - {group: apps, version: v1, kind: Deployment}
  watchDependentResources: false
  watchClusterScopedResources: true
  timeout: 10m
  inventory: inventory
  gatherFacts: true
""",
    )
    watch, warnings = load_one(path)
    assert watch == make_watch(
        group="cache.example.com",
        version="v1alpha1",
        kind="Memcached",
        role=project / "roles" / "memcached",
        vars={"size": 3, "nested": {"a": [1, "two"]}},
        reconcile_period=90.0,
        manage_status=False,
        finalizer=FinalizerSpec(
            name="cache.example.com/finalizer",
            playbook=project / "finalize.yml",
            vars={"state": "absent"},
        ),
        selector={
            "matchLabels": {"app": "memcached"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["cache", "db"]},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        },
        snake_case_parameters=False,
        mark_unsafe=False,
        max_runner_artifacts=5,
        watch_annotations_changes=True,
        watch_dependent_resources=False,
        watch_cluster_scoped_resources=True,
        blacklist=(("apps", "v1", "Deployment"),),
        timeout=600.0,
        inventory=project / "inventory",
        gather_facts=True,
        source=f"{path}: entry 1",
    )
    assert len(warnings) == 1  # markUnsafe


def test_several_entries_keep_their_order_and_source(project: Path) -> None:
    path = write(
        project,
        HEAD
        + """\
  playbook: playbook.yml
- group: cache.example.com
  version: v1
  kind: Memcached
  role: memcached
""",
    )
    watches, _ = load_watches(path, {})
    assert [(w.version, w.source) for w in watches] == [
        ("v1alpha1", f"{path}: entry 1"),
        ("v1", f"{path}: entry 2"),
    ]


def test_null_optional_keys_take_their_defaults(project: Path) -> None:
    path = write(
        project,
        HEAD
        + """\
  playbook: playbook.yml
  vars:
  manageStatus:
  snakeCaseParameters:
  markUnsafe:
  maxRunnerArtifacts:
  reconcilePeriod:
  finalizer:
  selector:
""",
    )
    watch, warnings = load_one(path)
    assert (
        watch.automation.vars,
        watch.policy.manage_status,
        watch.automation.snake_case_parameters,
    ) == ({}, True, True)
    assert (watch.automation.mark_unsafe, watch.policy.max_runner_artifacts) == (True, 20)
    assert (watch.policy.reconcile_period, watch.automation.finalizer, watch.resource.selector) == (
        None,
        None,
        None,
    )
    assert warnings == []


def test_finalizer_with_only_vars_or_a_role(project: Path) -> None:
    path = write(
        project,
        HEAD
        + """\
  role: memcached
  finalizer:
    name: cache.example.com/finalizer
    vars: {state: absent}
- group: cache.example.com
  version: v1
  kind: Memcached
  playbook: playbook.yml
  finalizer:
    name: cache.example.com/finalizer
    role: memcached
""",
    )
    watches, _ = load_watches(path, {})
    assert watches[0].automation.finalizer == FinalizerSpec(
        name="cache.example.com/finalizer", vars={"state": "absent"}
    )
    assert watches[1].automation.finalizer == FinalizerSpec(
        name="cache.example.com/finalizer", role=project / "roles" / "memcached"
    )


def test_paths_are_relative_to_the_watches_file_not_the_working_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (project / "sub").mkdir()
    path = write(project / "sub", HEAD + "  playbook: ../playbook.yml\n")
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    watch, _ = load_one(path)
    assert watch.automation.playbook == project / "playbook.yml"


def test_label_keys_and_values_kubernetes_accepts_are_accepted(project: Path) -> None:
    selector = (
        '{matchLabels: {app.kubernetes.io/name: web, a_b.c-d: "", x: A.b-C_d},'
        " matchExpressions: [{key: example.com/tier, operator: In, values: [front, back]}]}"
    )
    path = write(project, HEAD + f"  playbook: playbook.yml\n  selector: {selector}\n")
    (watch,), _ = load_watches(path, {})
    assert watch.resource.selector is not None
    assert watch.resource.selector["matchLabels"]["app.kubernetes.io/name"] == "web"


def test_empty_selector_means_no_selector(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  selector: {matchLabels: {}}\n")
    watch, _ = load_one(path)
    assert watch.resource.selector is None


# --- role lookup ------------------------------------------------------------------------------


def test_role_as_a_path_relative_to_the_watches_file(project: Path) -> None:
    make_role(project / "elsewhere" / "myrole")
    path = write(project, HEAD + "  role: elsewhere/myrole\n")
    watch, _ = load_one(path)
    assert watch.automation.role == project / "elsewhere" / "myrole"


def test_role_as_an_absolute_path(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    role = make_role(tmp_path_factory.mktemp("outside") / "myrole")
    path = write(project, HEAD + f"  role: {role}\n")
    watch, _ = load_one(path)
    assert watch.automation.role == role


def test_role_by_name_in_the_roles_folder(project: Path) -> None:
    path = write(project, HEAD + "  role: memcached\n")
    watch, _ = load_one(path)
    assert watch.automation.role == project / "roles" / "memcached"


def test_role_by_name_in_ansible_roles_path(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    first = tmp_path_factory.mktemp("first")
    second = tmp_path_factory.mktemp("second")
    make_role(second / "other")
    make_role(second / "roles" / "third")
    path = write(
        project, HEAD + "  role: other\n- {group: b.com, version: v1, kind: B, role: third}\n"
    )
    watches, _ = load_watches(path, {"ANSIBLE_ROLES_PATH": f"{first}::{second}"})
    assert [w.automation.role for w in watches] == [second / "other", second / "roles" / "third"]


def test_ansible_roles_path_may_use_home_and_relative_folders(project: Path) -> None:
    make_role(project / "home" / "roles-here" / "homed")
    make_role(project / "vendored" / "relative")
    path = write(
        project, HEAD + "  role: homed\n- {group: b.com, version: v1, kind: B, role: relative}\n"
    )
    environ = {"HOME": str(project / "home"), "ANSIBLE_ROLES_PATH": "~/roles-here:vendored"}
    watches, _ = load_watches(path, environ)
    assert [w.automation.role for w in watches] == [
        project / "home" / "roles-here" / "homed",
        project / "vendored" / "relative",
    ]


@pytest.mark.parametrize("variable", ["ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"])
def test_collection_role_in_ansible_collections_path(
    project: Path, tmp_path_factory: pytest.TempPathFactory, variable: str
) -> None:
    root = tmp_path_factory.mktemp("collections")
    role = make_role(root / "ansible_collections" / "acme" / "cache" / "roles" / "memcached")
    path = write(project, HEAD + "  role: acme.cache.memcached\n")
    watch, _ = load_one(path, {variable: f"/nonexistent:{root}"})
    assert watch.automation.role == role


def test_collection_role_when_the_path_names_ansible_collections_itself(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("collections") / "ansible_collections"
    role = make_role(root / "acme" / "cache" / "roles" / "memcached")
    path = write(project, HEAD + "  role: acme.cache.memcached\n")
    watch, _ = load_one(path, {"ANSIBLE_COLLECTIONS_PATH": str(root)})
    assert watch.automation.role == role


def test_collection_role_next_to_the_watches_file(project: Path) -> None:
    role = make_role(
        project / "collections" / "ansible_collections" / "acme" / "cache" / "roles" / "memcached"
    )
    path = write(project, HEAD + "  role: acme.cache.memcached\n")
    watch, _ = load_one(path)
    assert watch.automation.role == role


def test_collection_role_in_the_home_collections(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("home")
    role = make_role(home / ".ansible/collections/ansible_collections/acme/cache/roles/memcached")
    path = write(project, HEAD + "  role: acme.cache.memcached\n")
    watch, _ = load_one(path, {"HOME": str(home)})
    assert watch.automation.role == role


def test_a_path_wins_over_the_roles_folder(project: Path) -> None:
    make_role(project / "memcached")
    path = write(project, HEAD + "  role: memcached\n")
    watch, _ = load_one(path)
    assert watch.automation.role == project / "memcached"


def test_role_not_found_names_every_place_looked(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    roles = tmp_path_factory.mktemp("roles")
    colls = tmp_path_factory.mktemp("colls")
    path = write(project, HEAD + "  role: acme.cache.missing\n")
    environ = {"ANSIBLE_ROLES_PATH": str(roles), "ANSIBLE_COLLECTIONS_PATH": str(colls)}
    message = load_error(path, entry=1, key="role", environ=environ)
    assert "role 'acme.cache.missing' not found; looked in: " in message
    for place in [
        project / "acme.cache.missing",
        project / "roles" / "acme.cache.missing",
        roles / "acme.cache.missing",
        roles / "roles" / "acme.cache.missing",
        colls / "ansible_collections/acme/cache/roles/missing",
        project / "collections/ansible_collections/acme/cache/roles/missing",
        Path("/usr/share/ansible/collections/ansible_collections/acme/cache/roles/missing"),
    ]:
        assert str(place) in message


def test_a_role_that_is_a_file_is_not_found(project: Path) -> None:
    (project / "roles" / "flat").write_text("not a role folder\n")
    path = write(project, HEAD + "  role: flat\n")
    assert "role 'flat' not found" in load_error(path, entry=1, key="role")


def test_missing_finalizer_role_names_the_finalizer_key(project: Path) -> None:
    path = write(
        project,
        HEAD + "  playbook: playbook.yml\n  finalizer: {name: a.com/f, role: nowhere}\n",
    )
    assert "role 'nowhere' not found" in load_error(path, entry=1, key="finalizer.role")


# --- environment variables --------------------------------------------------------------------


def test_env_variables_are_expanded_in_every_string(project: Path) -> None:
    (project / "pb-prod.yml").write_text("- hosts: localhost\n")
    path = write(
        project,
        """\
        - group: ${GROUP}
          version: v1
          kind: Memcached
          playbook: pb-${STAGE}.yml
          reconcilePeriod: ${PERIOD}
          vars:
            image: "${REGISTRY}/memcached:1.6"
            list: ["${STAGE}", 3]
            nested: {deep: "x-${STAGE}-y"}
          selector:
            matchLabels: {stage: "${STAGE}"}
        """,
    )
    environ = {"GROUP": "cache.example.com", "STAGE": "prod", "PERIOD": "2m", "REGISTRY": "r.io"}
    watch, _ = load_one(path, environ)
    assert watch.group == "cache.example.com"
    assert watch.automation.playbook == project / "pb-prod.yml"
    assert watch.policy.reconcile_period == 120.0
    assert watch.automation.vars == {
        "image": "r.io/memcached:1.6",
        "list": ["prod", 3],
        "nested": {"deep": "x-prod-y"},
    }
    assert watch.resource.selector == {"matchLabels": {"stage": "prod"}}


def test_only_braced_variables_expand_and_double_dollar_escapes(project: Path) -> None:
    path = write(
        project,
        HEAD + "  playbook: playbook.yml\n  vars: {a: '$HOME', b: '$${HOME}', c: 'cost $5'}\n",
    )
    watch, _ = load_one(path, {"HOME": "/root"})
    assert watch.automation.vars == {"a": "$HOME", "b": "${HOME}", "c": "cost $5"}


def test_undefined_env_variable_names_it_and_the_key(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  vars: {db: {host: '${DB_HOST}'}}\n")
    message = load_error(path, entry=1, key="vars.db.host", environ={"OTHER": "x"})
    assert "environment variable 'DB_HOST' is not defined" in message


def test_malformed_variable_reference_is_an_error(project: Path) -> None:
    path = write(project, HEAD + "  playbook: 'pb-${STAGE.yml'\n")
    message = load_error(path, entry=1, key="playbook", environ={"STAGE": "x"})
    assert "bad variable reference" in message


def test_the_environment_is_taken_from_the_argument_only(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONLY_IN_OS_ENVIRON", "x")
    path = write(project, HEAD + "  playbook: playbook.yml\n  vars: {a: '${ONLY_IN_OS_ENVIRON}'}\n")
    message = load_error(path, entry=1, key="vars.a")
    assert "'ONLY_IN_OS_ENVIRON' is not defined" in message


# --- file-level errors ------------------------------------------------------------------------


def test_unreadable_file(tmp_path: Path) -> None:
    message = load_error(tmp_path / "missing.yaml", entry=None, key=None)
    assert "cannot read the file: No such file or directory" in message


def test_yaml_syntax_error_gives_the_line(project: Path) -> None:
    path = write(project, HEAD + "  playbook: [unclosed\n")
    message = load_error(path, entry=None, key=None)
    assert "YAML error at line 5" in message


def test_duplicate_yaml_key_is_an_error_with_both_lines(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  kind: Other\n")
    message = load_error(path, entry=None, key=None)
    assert "YAML error at line 5" in message
    assert "duplicate key 'kind' (first set at line 3)" in message


def test_yaml_merge_keys_may_be_overridden(project: Path) -> None:
    path = write(
        project,
        """\
        - &base
          group: cache.example.com
          version: v1
          kind: Memcached
          playbook: playbook.yml
        - <<: *base
          kind: Other
        """,
    )
    watches, _ = load_watches(path, {})
    assert [w.kind for w in watches] == ["Memcached", "Other"]


def test_empty_file(project: Path) -> None:
    path = write(project, "# nothing yet\n")
    assert "the file is empty" in load_error(path, entry=None, key=None)


def test_not_a_list(project: Path) -> None:
    path = write(project, "group: cache.example.com\n")
    message = load_error(path, entry=None, key=None)
    assert "expected a list of watches entries, got a mapping" in message


def test_empty_list(project: Path) -> None:
    path = write(project, "[]\n")
    assert "the list of watches entries is empty" in load_error(path, entry=None, key=None)


# --- entry errors -----------------------------------------------------------------------------


def test_entry_not_a_mapping(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n- just a string\n")
    message = load_error(path, entry=2, key=None)
    assert "expected a mapping of watches keys, got a string ('just a string')" in message


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("reconcilePeriode", "reconcilePeriod"),
        ("reconcile_period", "reconcilePeriod"),
        ("managestatus", "manageStatus"),
        ("playbok", "playbook"),
        ("maxRunnerArtefacts", "maxRunnerArtifacts"),
    ],
)
def test_unknown_key_suggests_the_nearest(project: Path, typo: str, meant: str) -> None:
    path = write(project, HEAD + f"  playbook: playbook.yml\n  {typo}: 1\n")
    message = load_error(path, entry=1, key=typo)
    assert f"unknown key '{typo}'; did you mean '{meant}'?" in message


def test_unknown_key_without_a_near_one_lists_the_valid_keys(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  zzz: 1\n")
    message = load_error(path, entry=1, key="zzz")
    assert "unknown key 'zzz'; valid keys: group, version, kind, playbook, role" in message


def test_unknown_finalizer_key(project: Path) -> None:
    path = write(
        project,
        HEAD + "  playbook: playbook.yml\n  finalizer: {name: a.com/f, playbok: finalize.yml}\n",
    )
    message = load_error(path, entry=1, key="finalizer.playbok")
    assert "did you mean 'playbook'?" in message


@pytest.mark.parametrize("missing", ["group", "version", "kind"])
def test_missing_required_key(project: Path, missing: str) -> None:
    lines = [f"{k}: {v}" for k, v in [("group", "a.com"), ("version", "v1"), ("kind", "A")]]
    body = [line for line in lines if not line.startswith(missing)] + ["playbook: playbook.yml"]
    path = write(project, "- " + "\n  ".join(body) + "\n")
    message = load_error(path, entry=1, key=missing)
    assert f"missing required key '{missing}'" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("kind", "42", "expected a string, got an integer (42)"),
        ("version", "[v1]", "expected a string, got a list"),
        ("playbook", "{a: b}", "expected a string, got a mapping"),
        ("manageStatus", "'yes please'", "expected a boolean (true or false), got a string"),
        ("markUnsafe", "0", "expected a boolean (true or false), got an integer (0)"),
        ("vars", "[a, b]", "expected a mapping, got a list"),
        ("maxRunnerArtifacts", "'5'", "expected an integer, got a string ('5')"),
        ("maxRunnerArtifacts", "true", "expected an integer, got a boolean (true)"),
        ("reconcilePeriod", "true", "expected a duration (like 30s, 5m, 1h30m)"),
        ("inventory", "3", "expected a string, got an integer (3)"),
    ],
)
def test_wrong_type_says_what_was_expected_and_got(
    project: Path, key: str, value: str, expected: str
) -> None:
    entry = {"group": "a.com", "version": "v1", "kind": "A", "playbook": "playbook.yml"}
    entry[key] = value
    path = write(project, "- " + "\n  ".join(f"{k}: {v}" for k, v in entry.items()) + "\n")
    assert expected in load_error(path, entry=1, key=key)


def test_variable_names_must_be_strings(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  vars: {1: one}\n")
    assert "variable names must be strings" in load_error(path, entry=1, key="vars")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("group", "Cache.Example.com", "'Cache.Example.com' is not a lowercase DNS subdomain"),
        ("group", "''", "must not be empty"),
        ("version", "V1", "'V1' is not a lowercase name like v1 or v1alpha1"),
        ("kind", "memcached", "'memcached' is not a CamelCase name like Memcached"),
        ("maxRunnerArtifacts", "0", "must be at least 1, got 0"),
        ("playbook", "'  '", "must not be empty"),
    ],
)
def test_bad_value(project: Path, key: str, value: str, expected: str) -> None:
    entry = {"group": "a.com", "version": "v1", "kind": "A", "playbook": "playbook.yml"}
    entry[key] = value
    path = write(project, "- " + "\n  ".join(f"{k}: {v}" for k, v in entry.items()) + "\n")
    assert expected in load_error(path, entry=1, key=key)


def test_both_playbook_and_role(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  role: memcached\n")
    message = load_error(path, entry=1, key=None)
    assert "both 'playbook' and 'role' are set" in message


def test_neither_playbook_nor_role(project: Path) -> None:
    path = write(project, HEAD)
    message = load_error(path, entry=1, key=None)
    assert "neither 'playbook' nor 'role' is set" in message


def test_duplicate_group_version_kind_names_both_entries(project: Path) -> None:
    path = write(
        project,
        HEAD
        + "  playbook: playbook.yml\n"
        + "- {group: b.com, version: v1, kind: B, role: memcached}\n"
        + HEAD
        + "  role: memcached\n",
    )
    message = load_error(path, entry=3, key=None)
    assert "watches Memcached cache.example.com/v1alpha1, as entry 1 already does" in message


def test_missing_playbook_names_the_resolved_path(project: Path) -> None:
    path = write(project, HEAD + "  playbook: nope.yml\n")
    message = load_error(path, entry=1, key="playbook")
    assert f"playbook 'nope.yml' not found: {project / 'nope.yml'} does not exist" in message


def test_playbook_that_is_a_folder(project: Path) -> None:
    path = write(project, HEAD + "  playbook: roles\n")
    assert "is a folder, not a file" in load_error(path, entry=1, key="playbook")


def test_missing_finalizer_playbook(project: Path) -> None:
    path = write(
        project, HEAD + "  role: memcached\n  finalizer: {name: a.com/f, playbook: gone.yml}\n"
    )
    assert "playbook 'gone.yml' not found" in load_error(path, entry=1, key="finalizer.playbook")


def test_missing_inventory(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  inventory: hosts.ini\n")
    assert "inventory 'hosts.ini' not found" in load_error(path, entry=1, key="inventory")


def test_inventory_may_be_a_file(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  inventory: inventory/hosts.yml\n")
    watch, _ = load_one(path)
    assert watch.automation.inventory == project / "inventory" / "hosts.yml"


@pytest.mark.parametrize(
    ("finalizer", "key", "expected"),
    [
        ("{playbook: finalize.yml}", "finalizer.name", "missing required key 'name'"),
        ("{name: a.com/f}", "finalizer", "needs 'playbook', 'role' or 'vars' besides 'name'"),
        ("{name: a.com/f, vars: {}}", "finalizer", "needs 'playbook', 'role' or 'vars'"),
        ("{name: 'has space', vars: {a: 1}}", "finalizer.name", "is not a qualified name"),
        ("{name: a.com/f, vars: [1]}", "finalizer.vars", "expected a mapping, got a list"),
        ("[a.com/f]", "finalizer", "expected a mapping with 'name', got a list"),
        (
            "{name: a.com/f, playbook: finalize.yml, role: memcached}",
            "finalizer",
            "both 'playbook' and 'role' are set",
        ),
    ],
)
def test_bad_finalizer(project: Path, finalizer: str, key: str, expected: str) -> None:
    path = write(project, HEAD + f"  playbook: playbook.yml\n  finalizer: {finalizer}\n")
    assert expected in load_error(path, entry=1, key=key)


@pytest.mark.parametrize(
    ("selector", "key", "expected"),
    [
        ("app=memcached", "selector", "expected a mapping with matchLabels and/or"),
        ("{matchLabel: {app: x}}", "selector.matchLabel", "did you mean 'matchLabels'?"),
        ("{matchLabels: [app]}", "selector.matchLabels", "expected a mapping of label names"),
        ("{matchLabels: {replicas: 3}}", "selector.matchLabels.replicas", "expected a string"),
        ("{matchExpressions: {key: a}}", "selector.matchExpressions", "expected a list of"),
        (
            "{matchExpressions: [app]}",
            "selector.matchExpressions[0]",
            "expected a mapping with key, operator, values",
        ),
        (
            "{matchExpressions: [{key: a, operator: Equals, values: [b]}]}",
            "selector.matchExpressions[0].operator",
            "expected one of In, NotIn, Exists, DoesNotExist, got 'Equals'",
        ),
        (
            "{matchExpressions: [{operator: Exists}]}",
            "selector.matchExpressions[0].key",
            "expected a label name, got null",
        ),
        (
            "{matchExpressions: [{key: a, operator: In}]}",
            "selector.matchExpressions[0].values",
            "operator In needs a non-empty list of values",
        ),
        (
            "{matchExpressions: [{key: a, operator: Exists, values: [b]}]}",
            "selector.matchExpressions[0].values",
            "operator Exists takes no values",
        ),
        (
            "{matchExpressions: [{key: a, operator: In, values: [1]}]}",
            "selector.matchExpressions[0].values",
            "expected a list of strings",
        ),
        (
            "{matchExpressions: [{key: a, operator: In, value: [b]}]}",
            "selector.matchExpressions[0].value",
            "did you mean 'values'?",
        ),
        # Label keys and values as Kubernetes takes them (#20: a key with a space was accepted).
        ('{matchLabels: {"a b": x}}', "selector.matchLabels", "label key 'a b': the name must"),
        ("{matchLabels: {-a: x}}", "selector.matchLabels", "label key '-a'"),
        ('{matchLabels: {"Ex ample.com/a": x}}', "selector.matchLabels", "the prefix must be"),
        ('{matchLabels: {a: "b c"}}', "selector.matchLabels.a", "label value 'b c'"),
        (
            '{matchExpressions: [{key: "a b", operator: Exists}]}',
            "selector.matchExpressions[0].key",
            "label key 'a b'",
        ),
        (
            '{matchExpressions: [{key: a, operator: In, values: [ok, "not ok"]}]}',
            "selector.matchExpressions[0].values[1]",
            "label value 'not ok'",
        ),
    ],
)
def test_bad_selector_shape(project: Path, selector: str, key: str, expected: str) -> None:
    path = write(project, HEAD + f"  playbook: playbook.yml\n  selector: {selector}\n")
    assert expected in load_error(path, entry=1, key=key)


def test_the_first_error_is_raised(project: Path) -> None:
    path = write(
        project,
        HEAD
        + "  playbook: nope.yml\n"
        + "- {group: b.com, version: v1, kind: B, role: memcached, reconcilePeriod: soon}\n",
    )
    load_error(path, entry=1, key="playbook")


def test_a_group_with_a_label_over_63_characters_is_refused(project: Path) -> None:
    # The API server's RFC 1123 subdomain rule (bridge.model.names.DNS_SUBDOMAIN_RE).
    group = "a" * 64 + ".example.com"
    path = write(project, HEAD.replace("cache.example.com", group) + "  playbook: playbook.yml\n")
    message = load_error(path, entry=1, key="group")
    assert "is not a lowercase DNS subdomain" in message


@pytest.mark.parametrize("name", EXECUTOR_NAMES)
def test_every_executor_name_is_accepted(project: Path, name: str) -> None:
    path = write(project, HEAD + f"  playbook: playbook.yml\n  executor: {name}\n")
    watch, _ = load_one(path)
    assert watch.executor.name == name


# --- durations (parsed by bridge.model.units, see tests/unit/model/test_units.py) -------------


def test_parse_duration_is_still_importable_from_the_watches_loader() -> None:
    assert parse_duration is units.parse_duration


def test_reconcile_period_as_an_integer_of_seconds(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  reconcilePeriod: 45\n")
    watch, _ = load_one(path)
    assert watch.policy.reconcile_period == 45.0


def test_bad_reconcile_period_names_the_value(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  reconcilePeriod: 5 minutes\n")
    message = load_error(path, entry=1, key="reconcilePeriod")
    assert "'5 minutes' is not a duration like 30s, 5m, 1h30m" in message


def test_negative_timeout_is_an_error(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  timeout: -10\n")
    assert "negative" in load_error(path, entry=1, key="timeout")


@pytest.mark.parametrize(
    ("value", "timeout"), [("0", None), ("0s", None), ("", None), ("90", 90.0)]
)
def test_timeout_zero_or_null_means_no_limit(
    project: Path, value: str, timeout: float | None
) -> None:
    path = write(project, HEAD + f"  playbook: playbook.yml\n  timeout: {value}\n")
    watch, _ = load_one(path)
    assert watch.automation.timeout == timeout


# --- warnings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("blacklist", "[{group: apps, version: v1, kind: Deployment}]"),
        ("watchDependentResources", "true"),
        ("watchClusterScopedResources", "false"),
    ],
)
def test_dependents_keys_are_accepted_without_a_warning(
    project: Path, key: str, value: str
) -> None:
    path = write(project, HEAD + f"  playbook: playbook.yml\n  {key}: {value}\n")
    _, warnings = load_one(path)
    assert warnings == []


def test_mark_unsafe_false_warns_about_jinja(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  markUnsafe: false\n")
    watch, warnings = load_one(path)
    assert watch.automation.mark_unsafe is False
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{path}: entry 1: key 'markUnsafe': ")
    assert "Memcached resources will be evaluated as Jinja templates" in warnings[0]


def test_mark_unsafe_true_does_not_warn(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  markUnsafe: true\n")
    assert load_one(path)[1] == []


def test_gather_facts_with_a_playbook_warns(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  gatherFacts: true\n")
    watch, warnings = load_one(path)
    assert watch.automation.gather_facts is True
    assert warnings == [
        f"{path}: entry 1: key 'gatherFacts': gatherFacts applies to roles only; "
        "a playbook decides itself"
    ]


# --- drift ------------------------------------------------------------------------------------


def test_drift_with_every_key(project: Path) -> None:
    path = write(
        project,
        HEAD + "  playbook: playbook.yml\n  drift: {mode: check, interval: 10m, remediate: true}\n",
    )
    watch, warnings = load_one(path)
    assert (watch.policy.drift_interval, watch.policy.drift_remediate) == (600.0, True)
    assert warnings == []


def test_drift_mode_and_remediate_have_defaults(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  drift: {interval: 90}\n")
    watch, _ = load_one(path)
    assert (watch.policy.drift_interval, watch.policy.drift_remediate) == (90.0, False)
    path = write(project, HEAD + "  playbook: playbook.yml\n  drift: {mode: null, interval: 1h}\n")
    assert load_one(path)[0].policy.drift_interval == 3600.0


def test_no_drift_means_no_checks(project: Path) -> None:
    for text in ("", "  drift: null\n"):
        watch, _ = load_one(write(project, HEAD + "  playbook: playbook.yml\n" + text))
        assert (watch.policy.drift_interval, watch.policy.drift_remediate) == (None, False)


def test_drift_interval_from_the_environment(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  drift: {interval: '${EVERY}'}\n")
    assert load_one(path, {"EVERY": "2s"})[0].policy.drift_interval == 2.0


@pytest.mark.parametrize(
    ("drift", "key", "expected"),
    [
        ("{interval: soon}", "drift.interval", "'soon' is not a duration like 30s, 5m, 1h30m"),
        ("{interval: -5}", "drift.interval", "-5 is negative"),
        ("{interval: true}", "drift.interval", "expected a duration (like 30s, 5m, 1h30m)"),
        ("{interval: 0s}", "drift.interval", "must be more than 0; leave out 'drift'"),
        ("{interval: null}", "drift.interval", "expected a duration (like 10m), got null"),
        ("{mode: check}", "drift.interval", "missing required key 'interval'"),
        ("{interval: 1m, intervall: 2m}", "drift.intervall", "did you mean 'interval'?"),
        ("{interval: 1m, remediation: true}", "drift.remediation", "did you mean 'remediate'?"),
        ("{interval: 1m, zzz: 1}", "drift.zzz", "valid keys: mode, interval, remediate"),
        ("{mode: apply, interval: 1m}", "drift.mode", "expected check, got a string ('apply')"),
        ("{mode: 1, interval: 1m}", "drift.mode", "expected check, got an integer (1)"),
        ("{interval: 1m, remediate: 'yes'}", "drift.remediate", "expected a boolean"),
        ("10m", "drift", "expected a mapping like {mode: check, interval: 10m}, got a string"),
        ("[check]", "drift", "got a list"),
    ],
)
def test_bad_drift(project: Path, drift: str, key: str, expected: str) -> None:
    path = write(project, HEAD + f"  playbook: playbook.yml\n  drift: {drift}\n")
    assert expected in load_error(path, entry=1, key=key)


def test_drift_typo_at_the_top_suggests_drift(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  drfit: {interval: 1m}\n")
    assert "did you mean 'drift'?" in load_error(path, entry=1, key="drfit")


def test_retry_limit_and_backoff(project: Path) -> None:
    path = write(project, HEAD + "  playbook: playbook.yml\n  retry: {limit: 5, backoff: 30s}\n")
    watch, _ = load_one(path)
    assert (watch.policy.retry_limit, watch.policy.retry_backoff) == (5, 30.0)
    watch, _ = load_one(write(project, HEAD + "  playbook: playbook.yml\n"))
    assert (watch.policy.retry_limit, watch.policy.retry_backoff) == (None, None)
    watch, _ = load_one(write(project, HEAD + "  playbook: playbook.yml\n  retry: {limit: 0}\n"))
    assert (watch.policy.retry_limit, watch.policy.retry_backoff) == (0, None)


@pytest.mark.parametrize(
    ("retry", "key", "expected"),
    [
        ("{limit: many}", "retry.limit", "expected an integer"),
        ("{limit: -1}", "retry.limit", "0 (no retries) or more"),
        ("{backoff: soon}", "retry.backoff", "is not a duration"),
        ("{limt: 3}", "retry.limt", "did you mean 'limit'?"),
        ("3", "retry", "expected a mapping"),
    ],
)
def test_bad_retry_names_the_key(project: Path, retry: str, key: str, expected: str) -> None:
    path = write(project, HEAD + f"  playbook: playbook.yml\n  retry: {retry}\n")
    assert expected in load_error(path, entry=1, key=key)
