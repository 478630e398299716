"""Credentials and inventories: parsed from watches.yaml and resolved in the resource's namespace
only (what a run does with them: tests/unit/executors/test_plumbing.py)."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import credentials
from bridge.config.credentials import CredentialsError
from bridge.config.watches import load_watches
from bridge.model.errors import PermanentError, WatchesError
from bridge.model.records import ResourceRef, RunCredentials, RunSpec
from bridge.model.watch import Credentials, InventorySource

KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SECRETS = {
    ("ns", "app"): {
        "ssh-privatekey": b64(KEY),
        "become": b64("b3c0me"),
        "vault": b64("v4ult"),
        "api": b64("api-key-value"),
        "inventory": b64("[web]\n10.0.0.1\n"),
        "binary": base64.b64encode(b"\xff\xfe").decode(),
    },
    ("ns", "other"): {"ssh-privatekey": b64(KEY + "\n")},
}
CONFIG_MAPS = {("ns", "inv"): {"inventory": "all:\n  hosts:\n    a: {}\n"}}


async def read_secret(namespace: str, name: str) -> Mapping[str, str] | None:
    return SECRETS.get((namespace, name))


async def read_config_map(namespace: str, name: str) -> Mapping[str, str] | None:
    return CONFIG_MAPS.get((namespace, name))


FULL = Credentials(
    secret="app",
    ssh_private_key="ssh-privatekey",
    become_password="become",
    vault_password="vault",
    env={"CLOUD_API_KEY": "api"},
)


# --- parsing --------------------------------------------------------------------------------


def test_credentials_keys_are_parsed() -> None:
    raw = {
        "secret": "app",
        "secretField": "credentialsSecret",
        "sshPrivateKey": "ssh-privatekey",
        "becomePassword": "become",
        "vaultPassword": "vault",
        "env": {"CLOUD_API_KEY": "api"},
    }
    assert credentials.parse_credentials(raw) == Credentials(
        secret="app",
        secret_field="credentialsSecret",
        ssh_private_key="ssh-privatekey",
        become_password="become",
        vault_password="vault",
        env={"CLOUD_API_KEY": "api"},
    )


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        ("app", "credentials", "expected a mapping"),
        ({"sshPrivateKey": "k"}, "credentials", "set 'secret'"),
        ({"secret": "app"}, "credentials", "at least one Secret key"),
        ({"secret": "ns/app", "sshPrivateKey": "k"}, "credentials.secret", "object name"),
        ({"secret": "app", "sshKey": "k"}, "credentials.sshKey", "unknown key"),
        ({"secret": "app", "env": {"1X": "k"}}, "credentials.env.1X", "environment variable"),
        ({"secret": "app", "env": {"PATH": "k"}}, "credentials.env.PATH", "set by the bridge"),
        ({"secret": "app", "env": ["A"]}, "credentials.env", "expected a mapping"),
        ({"secretField": "a.b", "env": {"A": "k"}}, "credentials.secretField", "spec field"),
    ],
)
def test_bad_credentials_name_the_key(raw: Any, key: str, fragment: str) -> None:
    with pytest.raises(CredentialsError) as err:
        credentials.parse_credentials(raw)
    assert err.value.key == key
    assert fragment in str(err.value)


def test_inventory_forms_are_parsed() -> None:
    hosts = {"all": {"hosts": {"web1": {"ansible_host": "10.0.0.1"}}}}
    assert credentials.parse_inventory({"hosts": hosts}) == InventorySource(hosts=hosts)
    assert credentials.parse_inventory({"secret": "inv"}) == InventorySource(
        secret="inv", key="inventory"
    )
    assert credentials.parse_inventory({"configMap": "inv", "key": "hosts.yml"}) == (
        InventorySource(config_map="inv", key="hosts.yml")
    )


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        ({}, "inventory", "exactly one"),
        ({"secret": "a", "configMap": "b"}, "inventory", "got secret, configMap"),
        ({"hosts": ["a"]}, "inventory.hosts", "YAML inventory"),
        ({"hosts": {"all": ["a"]}}, "inventory.hosts.all", "each group"),
        ({"hosts": {"all": {}}, "key": "k"}, "inventory.key", "goes with"),
        ({"configMap": "Bad_Name"}, "inventory.configMap", "object name"),
        ({"secret": "s", "path": "x"}, "inventory.path", "unknown key"),
    ],
)
def test_bad_inventory_names_the_key(raw: Any, key: str, fragment: str) -> None:
    with pytest.raises(CredentialsError) as err:
        credentials.parse_inventory(raw)
    assert err.value.key == key
    assert fragment in str(err.value)


def test_watches_file_reads_credentials_and_inventory_and_names_bad_keys(tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text("- hosts: all\n  tasks: []\n")
    entry = {
        "group": "x.example.com",
        "version": "v1",
        "kind": "Thing",
        "playbook": "site.yml",
        "inventory": {"configMap": "inv"},
        "credentials": {"secret": "app", "sshPrivateKey": "ssh-privatekey"},
    }
    path = tmp_path / "watches.yaml"
    path.write_text(yaml.safe_dump([entry]))
    [watch], _ = load_watches(path, {})
    assert watch.automation.inventory is None
    assert watch.automation.inventory_source == InventorySource(config_map="inv")
    assert watch.automation.credentials == Credentials(
        secret="app", ssh_private_key="ssh-privatekey"
    )

    entry["credentials"] = {"secret": "app", "env": {"A-B": "k"}}
    path.write_text(yaml.safe_dump([entry]))
    with pytest.raises(WatchesError) as err:
        load_watches(path, {})
    assert "entry 1" in str(err.value) and "credentials.env.A-B" in str(err.value)


# --- resolution -----------------------------------------------------------------------------


def test_credentials_resolve_from_the_resources_namespace_and_every_value_is_secret() -> None:
    creds, values = asyncio.run(credentials.resolve_credentials(FULL, {}, "ns", read_secret))
    assert creds == RunCredentials(
        ssh_private_key=KEY + "\n",  # ssh-add wants the final newline
        become_password="b3c0me",
        vault_password="v4ult",
        env={"CLOUD_API_KEY": "api-key-value"},
    )
    for value in (KEY + "\n", "b3c0me", "v4ult", "api-key-value"):
        assert value in values
    # The key's body lines too, in case something prints it line by line.
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" in values
    assert list(values) == sorted(values, key=len, reverse=True)


def test_credentials_never_show_in_repr() -> None:
    creds, _ = asyncio.run(credentials.resolve_credentials(FULL, {}, "ns", read_secret))
    assert creds is not None
    text = repr(creds) + repr(
        RunSpec(
            run_id="r",
            resource=ResourceRef("v1", "K", "ns", "n", "u"),
            generation=1,
            trigger="create",
            playbook=None,
            extravars={},
            inventory=None,
            artifact_dir=Path("/tmp/x"),
            credentials=creds,
            inventory_text="secret-inventory",
        )
    )
    for value in ("b3c0me", "v4ult", "api-key-value", "BEGIN OPENSSH", "secret-inventory"):
        assert value not in text


def test_secret_field_names_the_secret_and_wins_over_the_fixed_one() -> None:
    creds = Credentials(secret="app", secret_field="credsSecret", ssh_private_key="ssh-privatekey")
    assert credentials.secret_name(creds, {"credsSecret": "other"}, "ns") == "other"
    assert credentials.secret_name(creds, {}, "ns") == "app"
    assert credentials.secret_name(creds, {"credsSecret": ""}, "ns") == "app"
    only_field = Credentials(secret_field="credsSecret", ssh_private_key="k")
    assert credentials.secret_name(only_field, {}, "ns") is None
    resolved, values = asyncio.run(
        credentials.resolve_credentials(only_field, {}, "ns", read_secret)
    )
    assert resolved is None and values == ()


def test_secret_field_naming_another_namespace_is_refused_clearly() -> None:
    creds = Credentials(secret_field="credsSecret", ssh_private_key="ssh-privatekey")
    with pytest.raises(PermanentError) as err:
        asyncio.run(
            credentials.resolve_credentials(
                creds, {"credsSecret": "kube-system/admin"}, "ns", read_secret
            )
        )
    assert err.value.reason == "SecretNotAllowed"
    message = str(err.value)
    assert "spec.credsSecret" in message and "'kube-system'" in message and "(ns)" in message


@pytest.mark.parametrize("value", ["Bad_Name", 3, "a" * 254])
def test_secret_field_with_an_invalid_name_is_refused(value: object) -> None:
    creds = Credentials(secret_field="credsSecret", ssh_private_key="k")
    with pytest.raises(PermanentError) as err:
        credentials.secret_name(creds, {"credsSecret": value}, "ns")
    assert err.value.reason == "InvalidSecretName"
    assert "spec.credsSecret" in str(err.value)


def test_cluster_scoped_resources_cannot_read_credentials() -> None:
    with pytest.raises(PermanentError) as err:
        asyncio.run(credentials.resolve_credentials(FULL, {}, None, read_secret))
    assert err.value.reason == "SecretNotAllowed"


@pytest.mark.parametrize(
    ("creds", "reason", "fragment"),
    [
        (Credentials(secret="gone", become_password="b"), "SecretNotFound", "ns/gone"),
        (Credentials(secret="app", become_password="nope"), "SecretKeyNotFound", "'nope'"),
        (Credentials(secret="app", env={"X": "binary"}), "SecretKeyNotText", "'binary'"),
    ],
)
def test_missing_secret_or_key_is_a_clear_reason(
    creds: Credentials, reason: str, fragment: str
) -> None:
    with pytest.raises(PermanentError) as err:
        asyncio.run(credentials.resolve_credentials(creds, {}, "ns", read_secret))
    assert err.value.reason == reason
    assert fragment in str(err.value) and "credentials" in str(err.value)


def test_inventory_resolves_inline_from_a_secret_and_from_a_config_map() -> None:
    def resolve(source: InventorySource, namespace: str | None = "ns") -> str:
        return asyncio.run(
            credentials.resolve_inventory(source, namespace, read_secret, read_config_map)
        )

    hosts = {"all": {"hosts": {"web1": {"ansible_host": "10.0.0.1"}}}}
    assert yaml.safe_load(resolve(InventorySource(hosts=hosts))) == hosts
    assert resolve(InventorySource(secret="app")) == "[web]\n10.0.0.1\n"
    assert resolve(InventorySource(config_map="inv")) == CONFIG_MAPS[("ns", "inv")]["inventory"]
    for source, reason in [
        (InventorySource(config_map="gone"), "ConfigMapNotFound"),
        (InventorySource(config_map="inv", key="nope"), "ConfigMapKeyNotFound"),
        (InventorySource(secret="gone"), "SecretNotFound"),
    ]:
        with pytest.raises(PermanentError) as err:
            resolve(source)
        assert err.value.reason == reason
        assert "inventory" in str(err.value)
    with pytest.raises(PermanentError):
        resolve(InventorySource(secret="app"), None)


# --- CRD and RBAC -----------------------------------------------------------------------------


def load_one(tmp_path: Path, **extra: Any) -> Any:
    (tmp_path / "site.yml").write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "spec.yml").write_text(
        yaml.safe_dump({"argument_specs": {"main": {"options": {"size": {"type": "int"}}}}})
    )
    entry = {
        "group": "x.example.com",
        "version": "v1",
        "kind": "Thing",
        "playbook": "site.yml",
        "argumentSpec": "spec.yml",
        **extra,
    }
    path = tmp_path / "watches.yaml"
    path.write_text(yaml.safe_dump([entry]))
    [watch], _ = load_watches(path, {})
    return watch


def test_crd_gets_the_secret_field_as_a_plain_secret_name(tmp_path: Path) -> None:
    from bridge.tools import crdgen

    creds = {"secretField": "credentialsSecret", "sshPrivateKey": "ssh-privatekey"}
    [crd] = crdgen.generate([load_one(tmp_path, credentials=creds)])
    version = crd.manifest["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert list(spec["properties"]) == ["credentialsSecret", "size"]
    field = spec["properties"]["credentialsSecret"]
    assert field["type"] == "string" and field["maxLength"] == 253
    pattern = re.compile(field["pattern"])
    assert pattern.fullmatch("team-a.creds")
    assert not pattern.fullmatch("other/creds") and not pattern.fullmatch("Creds")


def test_rbac_reads_config_maps_only_when_an_inventory_comes_from_one(tmp_path: Path) -> None:
    from bridge.tools import manifests

    def resources(watch: Any) -> set[str]:
        return {
            resource
            for manifest in manifests.rbac_manifests([watch])
            for rule in manifest.rules
            for resource in rule.resources
        }

    assert "configmaps" not in resources(load_one(tmp_path))
    assert "configmaps" not in resources(load_one(tmp_path, inventory={"secret": "inv"}))
    with_config_map = resources(load_one(tmp_path, inventory={"configMap": "inv"}))
    assert {"configmaps", "secrets"} <= with_config_map
    rules = [
        rule
        for manifest in manifests.rbac_manifests([load_one(tmp_path, inventory={"configMap": "i"})])
        for rule in manifest.rules
        if "configmaps" in rule.resources
    ]
    assert rules and all(rule.verbs == ("get",) for rule in rules)
