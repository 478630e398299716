"""A playbook's variables: the Operator SDK layout, unsafe marking, and a real Ansible run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from yaml.resolver import Resolver

from bridge.ansible.inputs import Unsafe, build_extravars, dump_extravars, object_var_name
from bridge.model.errors import PermanentError
from bridge.model.watch import FinalizerSpec, Watch
from tests.unit.helpers import make_watch as watch_of

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def make_watch(**changes: Any) -> Watch:
    fields: dict[str, Any] = {"group": "example.com", "version": "v1", "kind": "Foo"}
    fields.update(changes)
    return watch_of(**fields)


def make_body(spec: Any = None, **metadata: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "example.com/v1",
        "kind": "Foo",
        "metadata": {"name": "foo-1", "namespace": "ns1", "uid": "u-1", **metadata},
    }
    if spec is not None:
        body["spec"] = spec
    return body


def strings(value: Any) -> Iterator[str]:
    """Every string in ``value``: mapping keys and values, at every depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


# --- the layout ------------------------------------------------------------------------------


def test_operator_sdk_layout() -> None:
    spec = {"replicaCount": 3, "podTemplate": {"nodeSelector": {"diskType": "ssd"}}}
    body = make_body(spec)
    extravars = build_extravars(body, make_watch())
    assert extravars == {
        "replica_count": 3,
        "pod_template": {"node_selector": {"disk_type": "ssd"}},
        "ansible_operator_meta": {"name": "foo-1", "namespace": "ns1"},
        "_example_com_foo": body,
        "_example_com_foo_spec": spec,
    }
    # Spec first, then the SDK's variables, as the SDK builds them.
    assert list(extravars)[:2] == ["replica_count", "pod_template"]


def test_spec_keys_as_they_are_without_snake_case() -> None:
    spec = {"replicaCount": 3, "podTemplate": {"nodeSelector": {}}}
    extravars = build_extravars(make_body(spec), make_watch(snake_case_parameters=False))
    assert extravars["replicaCount"] == 3
    assert extravars["podTemplate"] == {"nodeSelector": {}}
    assert "replica_count" not in extravars
    assert extravars["_example_com_foo_spec"] == spec


@pytest.mark.parametrize(
    ("group", "kind", "expected"),
    [
        ("example.com", "Foo", "_example_com_foo"),
        ("cert-manager.k8s.io", "Certificate", "_cert_manager_k8s_io_certificate"),
        ("cache.example.com", "MemcachedCluster", "_cache_example_com_memcachedcluster"),
        ("", "ConfigMap", "__configmap"),  # the core group: "_" + "" + "_" + kind
    ],
)
def test_object_var_name(group: str, kind: str, expected: str) -> None:
    assert object_var_name(group, kind) == expected
    extravars = build_extravars(make_body({"a": 1}), make_watch(group=group, kind=kind))
    assert extravars[expected]["spec"] == {"a": 1}
    assert extravars[f"{expected}_spec"] == {"a": 1}


def test_the_object_var_follows_the_watch_not_the_body() -> None:
    body = make_body({}) | {"kind": "Other"}
    assert "_example_com_foo" in build_extravars(body, make_watch())


@pytest.mark.parametrize("spec", [None, "a string", ["a", "list"], 42])
def test_a_missing_or_odd_spec_is_empty(spec: Any) -> None:
    body = make_body()
    if spec is not None:
        body["spec"] = spec
    extravars = build_extravars(body, make_watch())
    assert extravars["_example_com_foo_spec"] == {}
    assert set(extravars) == {"ansible_operator_meta", "_example_com_foo", "_example_com_foo_spec"}


def test_cluster_scoped_namespace_is_empty() -> None:
    body = make_body({})
    del body["metadata"]["namespace"]
    assert build_extravars(body, make_watch())["ansible_operator_meta"] == {
        "name": "foo-1",
        "namespace": "",
    }
    assert build_extravars({}, make_watch())["ansible_operator_meta"] == {
        "name": "",
        "namespace": "",
    }


@pytest.mark.parametrize("mark_unsafe", [True, False])
@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("ansibleOperatorMeta", "ansible_operator_meta"),
        ("_example_com_foo", "_example_com_foo"),
        ("_example_com_foo_spec", "_example_com_foo_spec"),
    ],
)
def test_the_sdk_variables_cannot_be_set_from_the_spec(
    key: str, name: str, mark_unsafe: bool
) -> None:
    # They used to be replaced silently; a resource that tries is now told so.
    with pytest.raises(PermanentError) as refused:
        build_extravars(make_body({key: "x"}), make_watch(mark_unsafe=mark_unsafe))
    assert refused.value.reason == "ReservedVariable"
    assert f"spec.{key} would set the operator's variable '{name}'" in str(refused.value)
    # Not from the spec, they are the bridge's as always.
    extravars = build_extravars(make_body({"size": 1}), make_watch(mark_unsafe=mark_unsafe))
    assert extravars["ansible_operator_meta"] == {"name": "foo-1", "namespace": "ns1"}
    assert extravars["_example_com_foo"]["kind"] == "Foo"


def test_watch_vars_win_over_spec_values() -> None:
    # runner.go makeParameters: the watch vars are copied in after the spec (and after
    # ansible_operator_meta and the object), so they override them.
    watch = make_watch(vars=MappingProxyType({"size": 1, "ansible_operator_meta": "mine"}))
    extravars = build_extravars(make_body({"size": 5, "other": 2}), watch)
    assert extravars["size"] == 1
    assert extravars["other"] == 2
    assert extravars["ansible_operator_meta"] == "mine"


def test_watch_vars_are_trusted_and_kept_as_written() -> None:
    watch = make_watch(vars={"templated": "{{ 6 * 7 }}", "camelCase": {"innerKey": ["x"]}})
    extravars = build_extravars(make_body({}), watch)
    assert extravars["templated"] == "{{ 6 * 7 }}"
    assert extravars["camelCase"] == {"innerKey": ["x"]}
    assert all(type(s) is str for s in strings(extravars["camelCase"]))
    assert type(extravars["templated"]) is str


def test_finalizer_vars_only_in_a_finalizer_run_and_last() -> None:
    finalizer = FinalizerSpec(name="example.com/finalizer", vars={"state": "absent", "extra": 1})
    watch = make_watch(vars={"state": "present"}, finalizer=finalizer)
    body = make_body({"state": "spec"})
    assert build_extravars(body, watch)["state"] == "present"
    assert "extra" not in build_extravars(body, watch)
    finalizing = build_extravars(body, watch, finalizing=True)
    assert finalizing["state"] == "absent"
    assert finalizing["extra"] == 1
    # No finalizer in the watch: a finalizer run gets exactly what any run gets.
    plain = make_watch(vars={"state": "present"})
    assert build_extravars(body, plain, finalizing=True) == build_extravars(body, plain)


def test_the_result_shares_nothing_with_the_body_or_the_watch() -> None:
    spec = {"list": [1], "map": {"key": "value"}}
    body = make_body(spec)
    watch = make_watch(vars={"watchList": [1]})
    for mark in (True, False):
        for snake in (True, False):
            extravars = build_extravars(
                body,
                make_watch(
                    vars=watch.automation.vars, mark_unsafe=mark, snake_case_parameters=snake
                ),
            )
            extravars["list"].append(2)
            extravars["map"]["key"] = "changed"
            extravars["_example_com_foo"]["spec"]["list"].append(3)
            extravars["_example_com_foo_spec"]["map"]["new"] = 1
            extravars["watchList"].append(2)
    assert body == make_body({"list": [1], "map": {"key": "value"}})
    assert watch.automation.vars == {"watchList": [1]}


def test_any_mapping_is_accepted() -> None:
    body = MappingProxyType(
        {"metadata": MappingProxyType({"name": "n"}), "spec": MappingProxyType({"aB": ("x",)})}
    )
    extravars = build_extravars(body, make_watch())
    assert extravars["ab"] == ["x"]
    assert type(extravars["_example_com_foo"]) is dict
    assert yaml.safe_load(dump_extravars(extravars).replace("!unsafe ", ""))["ab"] == ["x"]


# --- marking the resource's strings unsafe ---------------------------------------------------


def test_every_string_from_the_resource_is_unsafe() -> None:
    spec = {
        "someField": "{{ 7*6 }}",
        "nested": {"innerKey": ["a", 1, 2.5, True, None, {"deepKey": "b"}]},
    }
    body = make_body(spec, labels={"app": "x"})
    extravars = build_extravars(body, make_watch(vars={"fromWatch": "{{ 1 }}"}))

    assert [type(key) for key in extravars] == [Unsafe, Unsafe, str, str, str, str]
    for key in ("some_field", "nested", "_example_com_foo", "_example_com_foo_spec"):
        for s in strings(extravars[key]):
            assert type(s) is Unsafe, s
    # The SDK's variable names are the bridge's, not the resource's; their values are not.
    meta = extravars["ansible_operator_meta"]
    assert [(type(k), type(v)) for k, v in meta.items()] == [(str, Unsafe), (str, Unsafe)]
    assert extravars["nested"]["inner_key"][1:5] == [1, 2.5, True, None]
    assert type(extravars["fromWatch"]) is str
    # Still equal to the plain strings: a playbook sees no difference in the values.
    assert extravars["_example_com_foo"] == body


def test_nothing_is_unsafe_without_mark_unsafe() -> None:
    spec = {"someKey": ["c", {"deepKey": "f"}]}
    extravars = build_extravars(make_body(spec), make_watch(mark_unsafe=False))
    assert extravars["some_key"] == ["c", {"deep_key": "f"}]
    assert all(type(s) is str for s in strings(extravars))


def test_ansible_settings_from_the_spec_are_refused_naming_them() -> None:
    spec = {
        "ansibleShellExecutable": "/bin/evil",
        "ansible_python_interpreter": "/bin/evil",
        "ansibleConnection": "ssh",
        "ansibleBecomeUser": "root",
        "ansibleSshCommonArgs": "-o ProxyCommand=evil",
        "ansibleish": 1,
    }
    with pytest.raises(PermanentError) as refused:
        build_extravars(make_body(spec), make_watch())
    message = str(refused.value)
    assert refused.value.reason == "ReservedVariable"
    assert message.startswith(
        "spec.ansibleShellExecutable would set Ansible's setting 'ansible_shell_executable'; "
        "spec.ansible_python_interpreter would set Ansible's setting 'ansible_python_interpreter'"
    )
    assert "'ansible_connection'" in message and "'ansible_become_user'" in message
    assert "'ansible_ssh_common_args'" in message
    assert "ansibleish" not in message  # not ansible_*
    assert message.endswith(
        ": a resource cannot set Ansible's own variables nor the operator's; rename the field"
    )

    raw = make_watch(snake_case_parameters=False)
    with pytest.raises(PermanentError, match="'ansible_python_interpreter'"):
        build_extravars(make_body({"ansible_python_interpreter": "/bin/evil"}), raw)
    # Names are case-sensitive, and only the snake_case ones are Ansible's.
    harmless = {"ansibleShellExecutable": 1, "ANSIBLE_CONNECTION": "ssh", "ansibleish": 1}
    assert build_extravars(make_body(harmless), raw)["ANSIBLE_CONNECTION"] == "ssh"
    # to_snake gives it a leading "_": not a setting.
    assert "_ansible_connection" in build_extravars(
        make_body({"ANSIBLE_CONNECTION": 1}), make_watch()
    )

    # Without markUnsafe the resource is trusted, exactly as in the SDK: settings are its to set.
    trusted = build_extravars(make_body(spec), make_watch(mark_unsafe=False))
    assert trusted["ansible_shell_executable"] == "/bin/evil"
    assert trusted["ansible_connection"] == "ssh"


def test_unsafe_is_a_str() -> None:
    value = Unsafe("{{ x }}")
    assert value == "{{ x }}"
    assert hash(value) == hash("{{ x }}")
    assert {"{{ x }}": 1}[value] == 1
    assert json.dumps({value: [value]}) == '{"{{ x }}": ["{{ x }}"]}'
    assert repr(value) == "Unsafe('{{ x }}')"
    assert type(value.upper()) is str  # str methods give plain (unmarked) strings


# --- the extravars file ----------------------------------------------------------------------


def test_dump_tags_unsafe_strings_only() -> None:
    text = dump_extravars(
        {
            Unsafe("spec_key"): Unsafe("{{ 7*6 }}"),
            "plain": "text",
            "numbers": [1, 2.5, True, None],
            "mixed": {Unsafe("k"): "v"},
        }
    )
    assert text == textwrap.dedent(
        """\
        !unsafe "spec_key": !unsafe "{{ 7*6 }}"
        plain: text
        numbers:
        - 1
        - 2.5
        - true
        - null
        mixed:
          !unsafe "k": v
        """
    )


def test_dump_writes_shared_values_out_in_full() -> None:
    shared = {"a": [1]}
    text = dump_extravars({"one": shared, "two": shared})
    assert "&" not in text
    assert "*" not in text


def test_dump_accepts_any_mapping_and_sequence() -> None:
    class Name(str):
        pass

    text = dump_extravars(MappingProxyType({Name("k"): (1, MappingProxyType({"x": Name("y")}))}))
    assert yaml.safe_load(text) == {"k": [1, {"x": "y"}]}


TRICKY = [
    "",
    " ",
    "yes",
    "no",
    "on",
    "null",
    "~",
    "1e3",
    "0x10",
    "012",
    "1_000",
    "2024-01-01",
    "<<",
    "=",
    "- x",
    "a: b",
    "#not a comment",
    "!unsafe",
    "&anchor",
    "*alias",
    "'single'",
    '"double"',
    "back\\slash",
    "line\nbreak\n",
    "tab\there",
    "\x00\x07\x1b",
    "日本語 ünïcode 🙂",
    "{{ 7*6 }}",
    "{% if true %}42{% endif %}",
    "{# comment #}",
    "x" * 300,
]


def ansible_load(text: str, tmp_path: Path) -> Any:
    """Load ``text`` as ``ansible-playbook -e @file`` does (2.19: trusted as templates)."""
    from ansible.parsing.dataloader import DataLoader

    path = tmp_path / "extravars"
    path.write_text(text, encoding="utf-8")
    loader = DataLoader()
    try:
        return loader.load_from_file(str(path), trusted_as_template=True)
    except TypeError:  # ansible-core before 2.19
        return loader.load_from_file(str(path))


def is_template(value: str) -> bool:
    """Whether Ansible would template ``value``, as loaded by :func:`ansible_load`."""
    try:
        from ansible.template import is_trusted_as_template
    except ImportError:  # ansible-core before 2.19: unsafe is a type
        from ansible.utils.unsafe_proxy import AnsibleUnsafe

        return not isinstance(value, AnsibleUnsafe)
    return bool(is_trusted_as_template(value))


def reads_as_str(value: str) -> bool:
    """Whether YAML reads ``value``, written unquoted, as a string (not true, 12, null...)."""
    resolver: Any = Resolver()  # PyYAML's resolve() is untyped
    tag = resolver.resolve(yaml.ScalarNode, value, (True, False))
    return bool(tag == "tag:yaml.org,2002:str")


def check_unsafe(value: str) -> None:
    """``value``, loaded from an Unsafe, is never templated."""
    if reads_as_str(value):
        assert not is_template(value), value
    else:
        # Written without !unsafe (ansible-core 2.19 would read "yes" as True): such strings
        # (booleans, numbers, dates, null...) cannot hold a template.
        assert not any(mark in value for mark in ("{{", "{%", "{#")), value


def test_strings_yaml_would_not_read_as_strings() -> None:
    assert [s for s in TRICKY if not reads_as_str(s)] == [
        "",
        "yes",
        "no",
        "on",
        "null",
        "~",
        "0x10",
        "012",
        "1_000",
        "2024-01-01",
        "<<",
        "=",
    ]
    text = dump_extravars({Unsafe("<<"): [Unsafe(""), Unsafe("yes"), Unsafe("{{ x }}")]})
    assert text == "'<<':\n- ''\n- 'yes'\n- !unsafe \"{{ x }}\"\n"


def test_round_trip_through_ansibles_loader(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "unsafe": {Unsafe(s): Unsafe(s) for s in TRICKY},
        "plain": {s: s for s in TRICKY},
        "list": [Unsafe(s) for s in TRICKY] + [s for s in TRICKY],
        "scalars": [0, -1, 2**70, 1.5, -0.0, 1e300, True, False, None],
        "empty": [{}, []],
    }
    loaded = ansible_load(dump_extravars(data), tmp_path)
    assert loaded == data
    for s in strings(loaded["unsafe"]):
        check_unsafe(s)
    for s in loaded["list"][: len(TRICKY)]:
        check_unsafe(s)
    for s in [*strings(loaded["plain"]), *loaded["list"][len(TRICKY) :]]:
        assert is_template(s), s
    # What the flags are for: the templates themselves are marked.
    assert not is_template(loaded["unsafe"]["{{ 7*6 }}"])
    assert not is_template(next(k for k in loaded["unsafe"] if k == "{{ 7*6 }}"))


def test_built_extravars_round_trip(tmp_path: Path) -> None:
    spec = {"someField": "{{ 7*6 }}", "nested": {"{{key}}": ["yes", 1, None]}}
    extravars = build_extravars(make_body(spec), make_watch(vars={"w": "{{ 1 }}"}))
    loaded = ansible_load(dump_extravars(extravars), tmp_path)
    assert loaded == extravars
    for key in ("_example_com_foo", "_example_com_foo_spec", "some_field", "nested"):
        for s in strings(loaded[key]):
            check_unsafe(s)
    assert not is_template(loaded["ansible_operator_meta"]["name"])
    assert not is_template(loaded["some_field"])
    assert is_template(loaded["w"])


# --- a real ansible-playbook run -------------------------------------------------------------

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: a spec value
      ansible.builtin.copy:
        content: "{{ some_field }}"
        dest: "{{ out }}/some_field"
    # Ansible 2.19 does not template mapping keys in place, but a key used as a value keeps
    # its trust: through set_fact or a loop, a trusted key is templated.
    - name: keys that are templates, through set_fact
      ansible.builtin.set_fact:
        spec_keys: "{{ jinja_keys | dict2items | map(attribute='key') | list }}"
    - name: keys that are templates, through a loop
      ansible.builtin.set_fact:
        looped_keys: "{{ looped_keys | default([]) + [item] }}"
      loop: "{{ jinja_keys.keys() | list }}"
    - name: everything else, in one file (each module run takes a second or two)
      ansible.builtin.copy:
        content: "{{ seen | to_json }}"
        dest: "{{ out }}/seen.json"
      vars:
        seen:
          answer: "{{ answer }}"
          nested: "{{ nested.inner_value }}"
          entry: "{{ nested.entries[0] }}"
          spec_keys: "{{ spec_keys }}"
          looped_keys: "{{ looped_keys }}"
          sdk:
            - "{{ ansible_operator_meta.name }}"
            - "{{ ansible_operator_meta.namespace }}"
            - "{{ _example_com_foo_spec.someField }}"
            - "{{ _example_com_foo.metadata.name }}"
            - "{{ _example_com_foo.kind }}"
          from_watch: "{{ from_watch }}"
"""

KEY_LOOKUP = "{{lookup('pipe','>pwnedkey')}}"  # no space, capital, "_" or "-": to_snake keeps it


def run_playbook(tmp_path: Path, mark_unsafe: bool) -> tuple[str, dict[str, Any]]:
    """Run PLAYBOOK on localhost with a hostile resource: the some_field file and seen.json."""
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.fail(f"{ANSIBLE_PLAYBOOK} is missing")
    out = tmp_path / "out"
    out.mkdir()
    spec = {
        "someField": f"{{{{ lookup('pipe', 'touch {tmp_path}/pwned') }}}}",
        "answer": "{{ 7*6 }}",
        "nested": {"innerValue": "{{ 7*6 }}", "entries": ["{{ 7*6 }}", 3]},
        "jinjaKeys": {"{{7*6}}": 1, KEY_LOOKUP: 2},
    }
    if not mark_unsafe:  # refused with markUnsafe: test_ansible_settings_from_the_spec_are_refused
        spec["ansibleShellExecutable"] = f"/bin/sh -c 'touch {tmp_path}/pwnedshell'; /bin/sh"
    watch = make_watch(mark_unsafe=mark_unsafe, vars={"out": str(out), "from_watch": "{{ 6 * 7 }}"})
    extravars = build_extravars(make_body(spec), watch)
    assert set(extravars["jinja_keys"]) == {"{{7*6}}", KEY_LOOKUP}

    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "extravars").write_text(dump_extravars(extravars), encoding="utf-8")
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    (tmp_path / "ansible.cfg").write_text("")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_HOME": str(tmp_path / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / ".ansible" / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    proc = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(tmp_path / "hosts"),
            "-e",
            f"@{tmp_path / 'env' / 'extravars'}",  # as ansible-runner passes env/extravars
            str(tmp_path / "playbook.yml"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads((out / "seen.json").read_text(encoding="utf-8"))
    return (out / "some_field").read_text(encoding="utf-8"), seen


def test_ansible_never_templates_the_resource(tmp_path: Path) -> None:
    field, seen = run_playbook(tmp_path, mark_unsafe=True)

    assert field == f"{{{{ lookup('pipe', 'touch {tmp_path}/pwned') }}}}"
    assert seen["answer"] == "{{ 7*6 }}"
    assert seen["nested"] == "{{ 7*6 }}"
    assert seen["entry"] == "{{ 7*6 }}"
    assert seen["spec_keys"] == ["{{7*6}}", KEY_LOOKUP]
    assert seen["looped_keys"] == ["{{7*6}}", KEY_LOOKUP]
    for name in ("answer", "nested", "entry", "spec_keys", "looped_keys"):
        assert "42" not in json.dumps(seen[name]), name
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "pwnedkey").exists()
    assert not (tmp_path / "pwnedshell").exists()

    # The Operator SDK's variables arrive, and the operator's own vars are still templated.
    assert seen["sdk"] == ["foo-1", "ns1", field, "foo-1", "Foo"]
    assert seen["from_watch"] == 42


def test_control_without_mark_unsafe_the_resource_is_templated(tmp_path: Path) -> None:
    # The same run with markUnsafe off shows the test above can fail: Ansible does template
    # the very same extravars file when its strings are not tagged !unsafe.
    field, seen = run_playbook(tmp_path, mark_unsafe=False)

    assert field == ""  # the lookup's output
    assert (tmp_path / "pwned").exists()
    assert (tmp_path / "pwnedkey").exists()
    assert (tmp_path / "pwnedshell").exists()
    assert seen["answer"] == 42
    assert seen["nested"] == 42
    assert seen["entry"] == 42
    assert 42 in seen["spec_keys"]
    assert 42 in seen["looped_keys"]
    assert seen["from_watch"] == 42
