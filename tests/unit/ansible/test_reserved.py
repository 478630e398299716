"""Names a resource cannot set: Ansible's own variables, the operator's, and colliding keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.ansible import reserved
from bridge.ansible.inputs import build_extravars, operator_variables, run_spec
from bridge.model.errors import PermanentError
from bridge.model.watch import Watch
from tests.unit.helpers import make_watch as watch_of


def make_watch(**changes: Any) -> Watch:
    return watch_of(**{"group": "example.com", "version": "v1", "kind": "Foo", **changes})


def make_body(spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Foo",
        "metadata": {"name": "foo-1", "namespace": "ns1", "uid": "u-1"},
        "spec": spec,
    }


# --- the lists ------------------------------------------------------------------------------------

#: The magic variables of Ansible's documentation of special variables ("Magic variables" and
#: "Facts" sections).
DOCUMENTED_MAGIC = {
    "ansible_check_mode",
    "ansible_collection_name",
    "ansible_config_file",
    "ansible_dependent_role_names",
    "ansible_diff_mode",
    "ansible_forks",
    "ansible_index_var",
    "ansible_inventory_sources",
    "ansible_limit",
    "ansible_loop",
    "ansible_loop_var",
    "ansible_parent_role_names",
    "ansible_parent_role_paths",
    "ansible_play_batch",
    "ansible_play_hosts",
    "ansible_play_hosts_all",
    "ansible_play_name",
    "ansible_play_role_names",
    "ansible_playbook_python",
    "ansible_role_name",
    "ansible_role_names",
    "ansible_run_tags",
    "ansible_search_path",
    "ansible_skip_tags",
    "ansible_verbosity",
    "ansible_version",
    "group_names",
    "groups",
    "hostvars",
    "inventory_dir",
    "inventory_file",
    "inventory_hostname",
    "inventory_hostname_short",
    "omit",
    "play_hosts",
    "playbook_dir",
    "role_name",
    "role_names",
    "role_path",
    "ansible_facts",
    "ansible_local",
}


def test_the_frozen_lists_cover_the_installed_ansible_core() -> None:
    # The operator never imports Ansible; this test does, so that a name a new ansible-core
    # reserves has to be sorted into bridge.ansible.reserved.
    from ansible import constants
    from ansible._internal._templating._engine import TemplateEngine
    from ansible.vars.reserved import get_reserved_names

    known = reserved.MAGIC_VARIABLES | reserved.TEMPLATE_GLOBALS | reserved.KEYWORDS
    assert not get_reserved_names() - known
    assert not set(constants.INTERNAL_STATIC_VARS) - reserved.MAGIC_VARIABLES
    assert set(TemplateEngine().environment.globals) == reserved.TEMPLATE_GLOBALS
    assert not DOCUMENTED_MAGIC - reserved.MAGIC_VARIABLES
    # Every one is refused, but the keywords (Ansible only warns about those).
    for name in reserved.MAGIC_VARIABLES | reserved.TEMPLATE_GLOBALS:
        assert reserved.refusal(name, trusted=True) is not None, name
    for name in reserved.KEYWORDS:
        assert reserved.refusal(name) is None, name
    assert not reserved.KEYWORDS & (reserved.MAGIC_VARIABLES | reserved.TEMPLATE_GLOBALS)


@pytest.mark.parametrize("mark_unsafe", [True, False])
@pytest.mark.parametrize(
    ("key", "name", "what"),
    [
        ("omit", "omit", "Ansible's magic variable"),
        ("inventoryHostname", "inventory_hostname", "Ansible's magic variable"),
        ("groupNames", "group_names", "Ansible's magic variable"),
        ("groups", "groups", "Ansible's magic variable"),
        ("hostvars", "hostvars", "Ansible's magic variable"),
        ("inventoryFile", "inventory_file", "Ansible's magic variable"),
        ("inventoryDir", "inventory_dir", "Ansible's magic variable"),
        ("rolePath", "role_path", "Ansible's magic variable"),
        ("playbookDir", "playbook_dir", "Ansible's magic variable"),
        ("ansibleCheckMode", "ansible_check_mode", "Ansible's magic variable"),
        ("lookup", "lookup", "Ansible's template global"),
        ("namespace", "namespace", "Ansible's template global"),
    ],
)
def test_a_spec_setting_ansibles_own_variables_is_refused_naming_the_key(
    key: str, name: str, what: str, mark_unsafe: bool
) -> None:
    body = make_body({"size": 1, key: "x"})
    with pytest.raises(PermanentError) as refused:
        build_extravars(body, make_watch(mark_unsafe=mark_unsafe))
    assert refused.value.reason == "ReservedVariable"
    assert str(refused.value) == (
        f"spec.{key} would set {what} '{name}': a resource cannot set Ansible's own variables "
        "nor the operator's; rename the field"
    )
    # The same name with the spec's keys as they are.
    raw = make_watch(mark_unsafe=mark_unsafe, snake_case_parameters=False)
    with pytest.raises(PermanentError, match=f"would set {what} '{name}'"):
        build_extravars(make_body({name: "x"}), raw)


def test_playbook_keywords_and_nested_names_stay_allowed() -> None:
    # Ansible only warns about variables named like keywords; Operator SDK resources have them.
    spec = {"name": "n", "port": 80, "timeout": 5, "tags": ["a"], "vars": {}, "environment": "x"}
    assert build_extravars(make_body(spec), make_watch())["port"] == 80
    # Keys below the top level are values, not variables.
    nested = {"config": {"omit": 1, "ansibleConnection": "ssh", "groups": [{"hostvars": 1}]}}
    extravars = build_extravars(make_body(nested), make_watch())
    assert extravars["config"] == {
        "omit": 1,
        "ansible_connection": "ssh",
        "groups": [{"hostvars": 1}],
    }


def test_keys_that_become_the_same_name_are_refused_naming_both() -> None:
    with pytest.raises(PermanentError) as refused:
        build_extravars(make_body({"fooBar": 1, "size": 2, "foo_bar": 3}), make_watch())
    assert refused.value.reason == "VariableCollision"
    assert str(refused.value) == (
        "spec.fooBar and spec.foo_bar both become 'foo_bar': one would silently replace the "
        "other; rename one of them"
    )
    # At any depth, in lists too: a value would be lost just the same.
    spec = {
        "template": {"nodeSelector": {}, "node_selector": {}},
        "hosts": [{"fooBar": 1, "foo_bar": 2}],
    }
    with pytest.raises(PermanentError) as nested:
        build_extravars(make_body(spec), make_watch(mark_unsafe=False))
    assert str(nested.value).startswith(
        "spec.template.nodeSelector and spec.template.node_selector both become "
        "'node_selector'; spec.hosts.0.fooBar and spec.hosts.0.foo_bar both become 'foo_bar'"
    )
    # Without the snake_case conversion, they are different names.
    raw = build_extravars(
        make_body({"fooBar": 1, "foo_bar": 3}), make_watch(snake_case_parameters=False)
    )
    assert (raw["fooBar"], raw["foo_bar"]) == (1, 3)


def test_a_secret_reference_and_the_field_it_fills_collide() -> None:
    ref = {"secretKeyRef": {"name": "s", "key": "k"}}
    spec = {"password": "plain", "passwordFrom": ref}
    resolved = {"password": "from the secret"}  # what bridge.ansible.secrets.resolve returns
    with pytest.raises(PermanentError) as refused:
        build_extravars(make_body(spec), make_watch(), spec=resolved)
    assert refused.value.reason == "VariableCollision"
    assert "spec.password and spec.passwordFrom both become 'password'" in str(refused.value)
    # A reference that fills a reserved name is refused like the name itself.
    with pytest.raises(PermanentError, match=r"spec\.omitFrom would set .* 'omit'"):
        build_extravars(make_body({"omitFrom": ref}), make_watch(), spec={"omit": "x"})
    # Unresolved (the run gets the reference as written), nothing collides.
    unresolved = build_extravars(make_body(spec), make_watch())
    assert unresolved["password_from"] == {"secret_key_ref": {"name": "s", "key": "k"}}


def test_a_refusal_names_a_bounded_number_of_keys() -> None:
    spec = {name: 1 for name in sorted(reserved.MAGIC_VARIABLES)}
    with pytest.raises(PermanentError) as refused:
        build_extravars(make_body(spec), make_watch())
    message = str(refused.value)
    assert message.count("would set") == 5
    assert f"; and {len(spec) - 5} more: a resource cannot set" in message
    long_key = "x" * 5000
    with pytest.raises(PermanentError) as long:
        build_extravars(make_body({f"{long_key}Y": 1, f"{long_key}_y": 2}), make_watch())
    assert len(str(long.value)) < 400


def test_run_spec_refuses_a_reserved_key(tmp_path: Path) -> None:
    playbook = tmp_path / "p.yml"
    playbook.write_text("- hosts: localhost\n  tasks: []\n")
    with pytest.raises(PermanentError) as refused:
        run_spec(
            make_body({"omit": "x"}),
            make_watch(playbook=playbook),
            run_id="r1",
            trigger="create",
            artifacts_root=tmp_path,
            project_dir=tmp_path,
        )
    assert refused.value.reason == "ReservedVariable"


def test_the_operators_own_variables_follow_the_watch() -> None:
    assert operator_variables(make_watch(group="cert-manager.k8s.io", kind="Certificate")) == {
        "ansible_operator_meta",
        "_cert_manager_k8s_io_certificate",
        "_cert_manager_k8s_io_certificate_spec",
    }
