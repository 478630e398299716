"""What the collection's Kubernetes modules share: connection arguments, the client, lookups.

Runs inside the module process on the target host, with the official ``kubernetes`` client's
``DynamicClient`` (discovery, any kind, the status subresource). Discovery is cached in a
file private to this module run, so a kind created a moment ago is always found.
"""

from __future__ import annotations

import datetime as dt
import os
import traceback
from collections.abc import Callable, Mapping
from typing import Any

try:
    import urllib3
    from kubernetes import config as kube_config
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import (
        DynamicApiError,
        ResourceNotFoundError,
        ResourceNotUniqueError,
    )

    KUBERNETES_IMPORT_ERROR: str | None = None
except ImportError:  # reported by the module with missing_required_lib
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

# Argument specs, as the Operator SDK's collection declares them (persist_config defaults to
# false here: credentials refreshed by a module are never written back unless asked for).
AUTH_ARG_SPEC: dict[str, dict[str, Any]] = {
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"]},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"]},
    "client_cert": {"type": "path", "aliases": ["cert_file"]},
    "client_key": {"type": "path", "aliases": ["key_file"]},
    "proxy": {"type": "str"},
    "persist_config": {"type": "bool", "default": False},
}

NAME_ARG_SPEC: dict[str, dict[str, Any]] = {
    "api_version": {"type": "str", "default": "v1", "aliases": ["api", "version"]},
    "kind": {"type": "str", "required": True},
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str"},
}

# Module argument -> the kubernetes.core / client name, also used for the K8S_AUTH_* variables.
_ENV_NAMES: dict[str, tuple[str, ...]] = {
    "kubeconfig": ("K8S_AUTH_KUBECONFIG",),
    "context": ("K8S_AUTH_CONTEXT",),
    "host": ("K8S_AUTH_HOST",),
    "api_key": ("K8S_AUTH_API_KEY",),
    "username": ("K8S_AUTH_USERNAME",),
    "password": ("K8S_AUTH_PASSWORD",),
    "validate_certs": ("K8S_AUTH_VERIFY_SSL", "K8S_AUTH_VALIDATE_CERTS"),
    "ca_cert": ("K8S_AUTH_SSL_CA_CERT", "K8S_AUTH_CA_CERT"),
    "client_cert": ("K8S_AUTH_CERT_FILE", "K8S_AUTH_CLIENT_CERT"),
    "client_key": ("K8S_AUTH_KEY_FILE", "K8S_AUTH_CLIENT_KEY"),
    "proxy": ("K8S_AUTH_PROXY",),
    "persist_config": ("K8S_AUTH_PERSIST_CONFIG",),
}
_BOOLS = {"validate_certs", "persist_config"}
IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class KubeError(Exception):
    """A failure to report with ``fail_json(msg=..., **details)``."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_error(exc: Exception) -> dict[str, Any]:
    """The parts of an API error worth showing in a task result."""
    return {
        "status": getattr(exc, "status", None),
        "reason": getattr(exc, "reason", None),
        "body": getattr(exc, "body", None),
    }


def auth_settings(params: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The auth arguments given to the module, each falling back to its K8S_AUTH_* variable."""
    auth: dict[str, Any] = {}
    for arg, env_names in _ENV_NAMES.items():
        value = params.get(arg)
        if value is None or (arg not in _BOOLS and value == ""):
            value = next((environ[n] for n in env_names if environ.get(n)), None)
            if value is not None and arg in _BOOLS:
                value = value.strip().lower() not in ("0", "false", "no", "off", "")
            elif value is not None and arg in (
                "kubeconfig",
                "ca_cert",
                "client_cert",
                "client_key",
            ):
                value = os.path.expanduser(value)
        if value is not None:
            auth[arg] = value
    return auth


def client_configuration(
    params: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Any:
    """A client Configuration from the arguments, K8S_AUTH_*, KUBECONFIG, in-cluster, ~/.kube.

    Raises :class:`KubeError` when none of them gives credentials.
    """
    env = os.environ if environ is None else environ
    auth = auth_settings(params, env)
    cfg = Configuration()
    persist = bool(auth.get("persist_config", False))
    context = auth.get("context")
    token_given = bool(auth.get("api_key")) or bool(auth.get("username") and auth.get("password"))
    home_config = os.path.expanduser("~/.kube/config")
    in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(IN_CLUSTER_TOKEN)
    config_file: str | None = None
    if auth.get("host") and token_given:
        pass  # enough to connect: no kubeconfig is read
    elif auth.get("kubeconfig") or env.get("KUBECONFIG"):
        config_file = auth.get("kubeconfig") or env["KUBECONFIG"]
    elif in_cluster and not context:
        try:
            kube_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise KubeError(f"cannot load the in-cluster configuration: {exc}") from exc
    elif os.path.exists(home_config):
        config_file = home_config
    elif not auth.get("host"):
        raise KubeError(
            "no Kubernetes credentials: set the kubeconfig argument, K8S_AUTH_KUBECONFIG or "
            "KUBECONFIG, or run in a pod with a service account"
        )
    if config_file is not None:
        try:
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=config_file,
                context=context,
                client_configuration=cfg,
                persist_config=persist,
            )
        except Exception as exc:
            raise KubeError(f"cannot load the kubeconfig {config_file}: {exc}") from exc

    if auth.get("host"):
        cfg.host = auth["host"]
    if "validate_certs" in auth:
        cfg.verify_ssl = bool(auth["validate_certs"])
    if auth.get("ca_cert"):
        cfg.ssl_ca_cert = auth["ca_cert"]
    if auth.get("client_cert"):
        cfg.cert_file = auth["client_cert"]
    if auth.get("client_key"):
        cfg.key_file = auth["client_key"]
    if auth.get("proxy"):
        cfg.proxy = auth["proxy"]
    header = None
    if auth.get("api_key"):
        header = f"Bearer {auth['api_key']}"
    elif auth.get("username") and auth.get("password"):
        basic = f"{auth['username']}:{auth['password']}"
        header = urllib3.util.make_headers(basic_auth=basic)["authorization"]
    if header is not None:
        # Both names: older clients read "authorization", newer ones "BearerToken".
        cfg.api_key = {"BearerToken": header, "authorization": header}
        cfg.api_key_prefix = {}
        cfg.refresh_api_key_hook = None
    return cfg


def dynamic_client(params: Mapping[str, Any], cache_dir: str) -> Any:
    """A DynamicClient with its discovery cache in ``cache_dir`` (the module's own tmpdir)."""
    cfg = client_configuration(params)
    try:
        return DynamicClient(  # type: ignore[no-untyped-call]
            ApiClient(configuration=cfg), cache_file=os.path.join(cache_dir, "discovery.json")
        )
    except DynamicApiError as exc:
        raise KubeError(
            f"cannot reach the Kubernetes API at {cfg.host}: {exc.reason}", error=api_error(exc)
        ) from exc
    except Exception as exc:
        raise KubeError(f"cannot reach the Kubernetes API at {cfg.host}: {exc}") from exc


def find_resource(client: Any, api_version: str, kind: str) -> Any:
    """The API resource for ``kind`` (a kind, plural, singular or short name) in api_version."""
    lookups: list[Callable[[], Any]] = [
        lambda: client.resources.get(api_version=api_version, kind=kind),
        lambda: client.resources.get(api_version=api_version, name=kind),
        lambda: client.resources.get(api_version=api_version, singular_name=kind),
        lambda: client.resources.get(api_version=api_version, short_names=[kind]),
    ]
    for lookup in lookups:
        try:
            return lookup()
        except (ResourceNotFoundError, ResourceNotUniqueError):
            continue
        except DynamicApiError as exc:
            raise KubeError(
                f"API discovery for {api_version} failed: {exc.reason}", error=api_error(exc)
            ) from exc
    raise KubeError(
        f"no resource of kind {kind!r} in {api_version} (looked for kind, plural, singular and "
        "short names)"
    )


def get_object(client: Any, resource: Any, name: str, namespace: str | None) -> dict[str, Any]:
    """The object as a dict; :class:`KubeError` when it cannot be read (or does not exist)."""
    try:
        found = client.get(
            resource, name=name, namespace=namespace if resource.namespaced else None
        )
    except DynamicApiError as exc:
        where = f"{namespace}/{name}" if namespace and resource.namespaced else name
        raise KubeError(
            f"Failed to retrieve requested object {resource.kind} {where}: {exc.reason}",
            error=api_error(exc),
        ) from exc
    return dict(found.to_dict())
