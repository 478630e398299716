"""Credentials and inventories for runs: a watch's ``credentials`` and non-path ``inventory`` keys.

Parsing (watches.yaml, pure) and resolution at run time (from the resource's own namespace
only). What an executor does with the result (files in the run's private dir, an ssh-agent, its
own SSH ControlPath) is :mod:`bridge.executors.plumbing`'s.

``credentials`` maps keys of one Secret to what a run needs::

    credentials:
      secret: app-credentials          # a fixed Secret name, and/or
      secretField: credentialsSecret   # a spec field naming it (it wins when set)
      sshPrivateKey: ssh-privatekey    # keys of that Secret, all optional
      becomePassword: become-password
      vaultPassword: vault-password
      env: {CLOUD_API_KEY: api-key}

The Secret is always read from the resource's namespace: a ``secretField`` value naming another
namespace (``other/name``) is refused (``SecretNotAllowed``), as is any cluster-scoped resource.
Values go to the run the way ansible-runner and Ansible take them, never as variables: the SSH
key through ansible-runner's ``ssh_key`` (a FIFO read once by ``ssh-add`` into a per-run
``ssh-agent``; a 0600 key file and ``ANSIBLE_PRIVATE_KEY_FILE`` when ``ssh-agent`` is
missing), the passwords as 0600 files for ``--become-password-file`` and
``--vault-password-file`` in the run's private dir (0700, removed after the run), and ``env`` in
the run's environment (never written to a file: ``suppress_env_files``). Every value is added to
:attr:`RunSpec.secrets`, so it is redacted from status, Events and logs and scrubbed from the
artifacts. A run with credentials gets its own SSH ControlPath folder, and the persistent SSH
connections it opened are stopped when it ends: no later run can reuse its logins.

``inventory`` is a path (see bridge.config.watches), or one of::

    inventory: {hosts: {all: {hosts: {web1: {ansible_host: 10.0.0.1}}}}}   # inline YAML
    inventory: {secret: NAME, key: inventory}      # key defaults to "inventory"
    inventory: {configMap: NAME, key: inventory}

An inventory from a Secret or ConfigMap is read at run time from the resource's namespace and
written 0600 into the private dir. Its content is trusted as the watch's own (an inventory can
set connection options), so whoever may write that object in a namespace must be trusted with
the runs of that namespace.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import yaml

from bridge.model.errors import (
    ConfigMapKeyNotFoundError,
    ConfigMapNotFoundError,
    PermanentError,
    SecretKeyNotFoundError,
    SecretNotFoundError,
)
from bridge.model.names import DNS_SUBDOMAIN_RE
from bridge.model.process import MARKER
from bridge.model.records import RunCredentials, plain
from bridge.model.watch import DEFAULT_INVENTORY_KEY, Credentials, InventorySource

#: Reads an object's ``data`` by namespace and name (Secrets: base64 values); None if absent.
DataReader = Callable[[str, str], Awaitable[Mapping[str, str] | None]]

CREDENTIALS_KEYS = (
    "secret",
    "secretField",
    "sshPrivateKey",
    "becomePassword",
    "vaultPassword",
    "env",
)
INVENTORY_KEYS = ("hosts", "secret", "configMap", "key")

_DATA_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_FIELD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Environment variables a credential may not set (the run's process marker, its PATH).
_RESERVED_ENV = frozenset({MARKER, "PATH"})


class CredentialsError(ValueError):
    """A bad ``credentials`` or ``inventory`` value; ``key`` is its dotted path in the entry."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


# --- parsing (watches.yaml) ------------------------------------------------------------------


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _check_keys(raw: Mapping[Any, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in raw:
        if key not in allowed:
            raise CredentialsError(
                f"{prefix}.{key}", f"unknown key {key!r}; valid keys: {', '.join(allowed)}"
            )


def _text(
    raw: Mapping[str, Any], key: str, prefix: str, pattern: re.Pattern[str], like: str
) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CredentialsError(f"{prefix}.{key}", f"expected a string, got {_type_name(value)}")
    if not pattern.fullmatch(value) or len(value) > 253:
        raise CredentialsError(f"{prefix}.{key}", f"{value!r} is not {like}")
    return value


def _object_name(raw: Mapping[str, Any], key: str, prefix: str) -> str | None:
    return _text(
        raw, key, prefix, DNS_SUBDOMAIN_RE, "a Kubernetes object name (lowercase, no namespace)"
    )


def _data_key(raw: Mapping[str, Any], key: str, prefix: str) -> str | None:
    return _text(raw, key, prefix, _DATA_KEY_RE, "a Secret/ConfigMap key (letters, digits, -._)")


def parse_inventory(raw: object) -> InventorySource:
    """A mapping ``inventory`` (the path form is bridge.config.watches'); raises
    CredentialsError."""
    if not isinstance(raw, Mapping):
        raise CredentialsError(
            "inventory",
            f"expected a path or a mapping ({{hosts: ...}}, {{secret: NAME}} or "
            f"{{configMap: NAME}}), got {_type_name(raw)}",
        )
    _check_keys(raw, INVENTORY_KEYS, "inventory")
    given = [k for k in ("hosts", "secret", "configMap") if raw.get(k) is not None]
    if len(given) != 1:
        raise CredentialsError(
            "inventory",
            "set exactly one of 'hosts' (inline), 'secret' or 'configMap'"
            + (f"; got {', '.join(given)}" if given else ""),
        )
    key = _data_key(raw, "key", "inventory")
    if given == ["hosts"]:
        hosts = raw["hosts"]
        if key is not None:
            raise CredentialsError("inventory.key", "'key' goes with 'secret' or 'configMap'")
        if not isinstance(hosts, Mapping) or not hosts:
            raise CredentialsError(
                "inventory.hosts",
                f"expected a YAML inventory (a mapping of groups like {{all: {{hosts: ...}}}}), "
                f"got {_type_name(hosts)}",
            )
        for group, body in hosts.items():
            if not isinstance(group, str) or not (body is None or isinstance(body, Mapping)):
                raise CredentialsError(
                    f"inventory.hosts.{group}",
                    "each group must be a mapping (with hosts, vars, children)",
                )
        return InventorySource(hosts=hosts)
    return InventorySource(
        secret=_object_name(raw, "secret", "inventory"),
        config_map=_object_name(raw, "configMap", "inventory"),
        key=key or DEFAULT_INVENTORY_KEY,
    )


def parse_credentials(raw: object) -> Credentials:
    """A watch's ``credentials`` mapping; raises CredentialsError naming the key."""
    if not isinstance(raw, Mapping):
        raise CredentialsError(
            "credentials",
            f"expected a mapping like {{secret: NAME, sshPrivateKey: KEY}}, got {_type_name(raw)}",
        )
    _check_keys(raw, CREDENTIALS_KEYS, "credentials")
    secret = _object_name(raw, "secret", "credentials")
    secret_field = _text(
        raw,
        "secretField",
        "credentials",
        _FIELD_RE,
        "a top-level spec field name like credentialsSecret",
    )
    if secret is None and secret_field is None:
        raise CredentialsError(
            "credentials", "set 'secret' (a Secret name), 'secretField' (a spec field), or both"
        )
    env_raw = raw.get("env")
    env: dict[str, str] = {}
    if env_raw is not None:
        if not isinstance(env_raw, Mapping):
            raise CredentialsError(
                "credentials.env",
                f"expected a mapping of variable names to Secret keys, got {_type_name(env_raw)}",
            )
        for name in env_raw:
            if not isinstance(name, str) or not _ENV_RE.fullmatch(name):
                raise CredentialsError(
                    f"credentials.env.{name}", f"{name!r} is not an environment variable name"
                )
            if name in _RESERVED_ENV:
                raise CredentialsError(
                    f"credentials.env.{name}", f"{name} is set by the bridge, not by credentials"
                )
            key = _data_key(env_raw, name, "credentials.env")
            if key is None:
                raise CredentialsError(f"credentials.env.{name}", "expected a Secret key, got null")
            env[name] = key
    creds = Credentials(
        secret=secret,
        secret_field=secret_field,
        ssh_private_key=_data_key(raw, "sshPrivateKey", "credentials"),
        become_password=_data_key(raw, "becomePassword", "credentials"),
        vault_password=_data_key(raw, "vaultPassword", "credentials"),
        env=env,
    )
    if not (creds.ssh_private_key or creds.become_password or creds.vault_password or env):
        raise CredentialsError(
            "credentials",
            "name at least one Secret key: sshPrivateKey, becomePassword, vaultPassword or env",
        )
    return creds


# --- resolution (run time) ------------------------------------------------------------------


def secret_name(creds: Credentials, spec: Mapping[str, Any], namespace: str | None) -> str | None:
    """The Secret a resource's credentials come from (``secretField``'s value when the spec sets
    it, else ``secret``); None: none. Raises PermanentError for a value that is not a plain name
    of the resource's own namespace."""
    name = creds.secret
    if creds.secret_field is not None and spec.get(creds.secret_field) not in (None, ""):
        value = spec[creds.secret_field]
        where = f"spec.{creds.secret_field}"
        if not isinstance(value, str):
            raise PermanentError(
                f"{where}: expected the name of a Secret, got {_type_name(value)}",
                reason="InvalidSecretName",
            )
        if "/" in value:
            other = value.split("/", 1)[0]
            raise PermanentError(
                f"{where}: {value!r} names a Secret of namespace {other!r}; credentials can only "
                f"come from Secrets of the resource's own namespace ({namespace})",
                reason="SecretNotAllowed",
            )
        if not DNS_SUBDOMAIN_RE.fullmatch(value) or len(value) > 253:
            raise PermanentError(
                f"{where}: {value!r} is not a Secret name (lowercase letters, digits, '-', '.')",
                reason="InvalidSecretName",
            )
        name = value
    if name is not None and namespace is None:
        raise PermanentError(
            "credentials: a cluster-scoped resource cannot read credentials from Secrets",
            reason="SecretNotAllowed",
        )
    return name


def _decode(data: Mapping[str, str], key: str, what: str) -> str:
    try:
        return base64.b64decode(data[key], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise PermanentError(f"{what}: key '{key}' is not text", reason="SecretKeyNotText") from exc


async def resolve_credentials(
    creds: Credentials, spec: Mapping[str, Any], namespace: str | None, read_secret: DataReader
) -> tuple[RunCredentials | None, tuple[str, ...]]:
    """The run's credentials and their values (to redact). Raises PermanentError naming the
    Secret and key (never a value): ``SecretNotFound``, ``SecretKeyNotFound`` (both retried),
    ``SecretNotAllowed``, ``InvalidSecretName``, ``SecretKeyNotText``."""
    name = secret_name(creds, spec, namespace)
    if name is None or namespace is None:
        return None, ()
    data = await read_secret(namespace, name)
    what = f"credentials: Secret {namespace}/{name}"
    if data is None:
        raise SecretNotFoundError(f"{what} does not exist")

    def value(key: str | None) -> str | None:
        if key is None:
            return None
        if key not in data:
            raise SecretKeyNotFoundError(f"{what} has no key '{key}'")
        return _decode(data, key, what)

    ssh_key = value(creds.ssh_private_key)
    if ssh_key is not None and not ssh_key.endswith("\n"):
        ssh_key += "\n"  # ssh-add refuses a key without its final newline
    resolved = RunCredentials(
        ssh_private_key=ssh_key,
        become_password=value(creds.become_password),
        vault_password=value(creds.vault_password),
        env={env: value(key) or "" for env, key in creds.env.items()},
    )
    values = {
        v
        for v in (
            resolved.ssh_private_key,
            resolved.become_password,
            resolved.vault_password,
            *resolved.env.values(),
        )
        if v
    }
    if ssh_key:
        # The key's lines too: a tool may print it one line at a time.
        values.update(
            line for line in ssh_key.splitlines() if len(line) >= 16 and "-----" not in line
        )
    return resolved, tuple(sorted(values, key=len, reverse=True))


async def resolve_inventory(
    source: InventorySource,
    namespace: str | None,
    read_secret: DataReader,
    read_config_map: DataReader,
) -> str:
    """The inventory's text for a run (inline hosts dumped as YAML)."""
    if source.hosts is not None:
        return yaml.safe_dump(plain(source.hosts), sort_keys=False)
    if namespace is None:
        raise PermanentError(
            f"inventory: a cluster-scoped resource cannot read its inventory from a "
            f"{'Secret' if source.secret else 'ConfigMap'}",
            reason="SecretNotAllowed" if source.secret else "ConfigMapNotAllowed",
        )
    if source.secret is not None:
        data = await read_secret(namespace, source.secret)
        what, kind = f"inventory: Secret {namespace}/{source.secret}", "Secret"
    else:
        assert source.config_map is not None
        data = await read_config_map(namespace, source.config_map)
        what, kind = f"inventory: ConfigMap {namespace}/{source.config_map}", "ConfigMap"
    if data is None:
        missing = SecretNotFoundError if kind == "Secret" else ConfigMapNotFoundError
        raise missing(f"{what} does not exist")
    if source.key not in data:
        no_key = SecretKeyNotFoundError if kind == "Secret" else ConfigMapKeyNotFoundError
        raise no_key(f"{what} has no key '{source.key}'")
    return _decode(data, source.key, what) if kind == "Secret" else data[source.key]
