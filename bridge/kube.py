"""The Kubernetes calls kopf does not make for us: status and finalizer writes, discovery.

The official client is synchronous; every call here runs in a worker thread so kopf's event
loop never blocks. Client errors are translated once into the bridge's own: a missing object is
``None``, a resourceVersion conflict is :class:`ConflictError`, server-side and network trouble
is :class:`TemporaryError`, any other refusal is :class:`PermanentError`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bridge.errors import ConflictError, PermanentError, TemporaryError

T = TypeVar("T")


@dataclass(frozen=True)
class ObjectKey:
    """Where one custom object lives in the API."""

    group: str
    version: str
    plural: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.plural}.{self.group}/{ns}{self.name}"


def api_client(kubeconfig: Path | None) -> Any:
    """A client for the given kubeconfig, $KUBECONFIG/~/.kube/config, or the in-cluster account."""
    from kubernetes import client, config

    if kubeconfig is not None:
        return config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    except config.ConfigException:
        return config.new_client_from_config()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Credentials:
    """How to reach the API server, as the client library resolved it (for kopf's login)."""

    server: str
    ca_path: str | None
    insecure: bool
    scheme: str | None
    token: str | None
    certificate_path: str | None
    private_key_path: str | None


def credentials(kubeconfig: Path | None) -> Credentials:
    """Resolve the same configuration :func:`api_client` uses into plain credentials."""
    client = api_client(kubeconfig)
    try:
        cfg = client.configuration
        header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
            "authorization"
        )
        parts = header.split(" ", 1) if header else []
        scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, header or None)
        return Credentials(
            server=cfg.host,
            ca_path=cfg.ssl_ca_cert,
            insecure=not cfg.verify_ssl,
            scheme=scheme,
            token=token,
            certificate_path=cfg.cert_file,
            private_key_path=cfg.key_file,
        )
    finally:
        client.close()


def _translate(what: str, exc: Exception) -> Exception:
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        reason = _reason(exc)
        if exc.status == 409:
            return ConflictError(f"{what}: conflict: {reason}")
        if exc.status in (429, 500, 502, 503, 504) or exc.status == 0:
            return TemporaryError(f"{what}: HTTP {exc.status}: {reason}")
        return PermanentError(f"{what}: HTTP {exc.status}: {reason}", reason="APIRefused")
    return TemporaryError(f"{what}: {exc}")


def _reason(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(getattr(exc, "reason", exc))


def _is_not_found(exc: Exception) -> bool:
    from kubernetes.client.exceptions import ApiException

    return isinstance(exc, ApiException) and exc.status == 404


class Kube:
    """Async facade over the official client for the few writes the bridge makes itself."""

    def __init__(self, client: Any) -> None:
        from kubernetes import client as k8s

        self._client = client
        self._custom = k8s.CustomObjectsApi(client)
        self._apis = k8s.ApisApi(client)

    def close(self) -> None:
        self._client.close()

    async def _call(self, what: str, fn: Callable[[], T]) -> T | None:
        try:
            return await asyncio.to_thread(fn)
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise _translate(what, exc) from exc

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The ``data`` of Secret ``namespace/name`` (base64 values), or None if it is absent."""
        from kubernetes import client as k8s

        core = k8s.CoreV1Api(self._client)

        def read() -> Any:
            return core.read_namespaced_secret(name, namespace)

        secret = await self._call(f"Secret {namespace}/{name}", read)
        if secret is None:
            return None
        return dict(secret.data or {})

    async def plural(self, group: str, version: str, kind: str) -> str | None:
        """The plural name of ``kind`` in ``group/version`` by discovery; None if not served."""

        def discover() -> Any:
            return self._client.call_api(
                f"/apis/{group}/{version}",
                "GET",
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )

        found = await self._call(f"discovery of {group}/{version}", discover)
        if not isinstance(found, Mapping):
            return None
        for resource in found.get("resources", []):
            if resource.get("kind") == kind and "/" not in resource.get("name", "/"):
                return str(resource["name"])
        return None

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        def get() -> Any:
            if key.namespace:
                return self._custom.get_namespaced_custom_object(
                    key.group, key.version, key.namespace, key.plural, key.name
                )
            return self._custom.get_cluster_custom_object(
                key.group, key.version, key.plural, key.name
            )

        return await self._call(f"get {key}", get)

    async def patch_status(
        self, key: ObjectKey, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch ``.status`` through the status subresource; None if the object is gone."""
        body = {"status": dict(status)}

        def patch() -> Any:
            if key.namespace:
                return self._custom.patch_namespaced_custom_object_status(
                    key.group, key.version, key.namespace, key.plural, key.name, body
                )
            return self._custom.patch_cluster_custom_object_status(
                key.group, key.version, key.plural, key.name, body
            )

        return await self._call(f"status of {key}", patch)

    async def set_finalizers(
        self, key: ObjectKey, finalizers: list[str], resource_version: str
    ) -> dict[str, Any] | None:
        """Replace ``metadata.finalizers``, only if the object is still at ``resource_version``."""
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}}

        def patch() -> Any:
            if key.namespace:
                return self._custom.patch_namespaced_custom_object(
                    key.group, key.version, key.namespace, key.plural, key.name, body
                )
            return self._custom.patch_cluster_custom_object(
                key.group, key.version, key.plural, key.name, body
            )

        return await self._call(f"finalizers of {key}", patch)
