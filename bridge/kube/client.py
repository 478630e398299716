"""The Kubernetes calls kopf does not make for us: status, finalizers, Secrets, Leases, Jobs.

The official client is synchronous; every call here runs in a worker thread so kopf's event
loop never blocks. Client errors are translated once into the bridge's own: a missing object is
``None``, a resourceVersion conflict is :class:`ConflictError`, server-side and network trouble
is :class:`TemporaryError`, any other refusal is :class:`PermanentError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bridge.kube.paths import group_version_path
from bridge.model.errors import BridgeError, ConflictError, PermanentError, TemporaryError

T = TypeVar("T")

#: The environment variables through which a run's modules (kubernetes.core, operator_sdk.util)
#: reach the API: the server, a bearer token, or a kubeconfig file.
AUTH_HOST = "K8S_AUTH_HOST"
AUTH_API_KEY = "K8S_AUTH_API_KEY"
AUTH_KUBECONFIG = "K8S_AUTH_KUBECONFIG"


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


#: (connect, read) seconds for each call of :class:`Kube`: an API server that accepts the
#: connection and then hangs must not hold a worker thread (they are few: asyncio's default
#: executor) or a status write forever; the caller's retry policy takes over instead.
REQUEST_TIMEOUT = (10.0, 30.0)


class Kube:
    """Async facade over the official client for the few writes the bridge makes itself."""

    def __init__(self, client: Any, *, timeout: tuple[float, float] = REQUEST_TIMEOUT) -> None:
        from kubernetes import client as k8s

        self._client = client
        self._timeout = timeout
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
            return core.read_namespaced_secret(name, namespace, _request_timeout=self._timeout)

        secret = await self._call(f"Secret {namespace}/{name}", read)
        if secret is None:
            return None
        return dict(secret.data or {})

    async def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The ``data`` of ConfigMap ``namespace/name`` (plain text), or None if it is absent."""
        from kubernetes import client as k8s

        core = k8s.CoreV1Api(self._client)

        def read() -> Any:
            return core.read_namespaced_config_map(name, namespace, _request_timeout=self._timeout)

        config_map = await self._call(f"ConfigMap {namespace}/{name}", read)
        if config_map is None:
            return None
        return dict(config_map.data or {})

    async def plural(self, group: str, version: str, kind: str) -> str | None:
        """The plural name of ``kind`` in ``group/version`` by discovery; None if not served."""

        def discover() -> Any:
            return self._client.call_api(
                group_version_path(group, version),
                "GET",
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=self._timeout,
            )

        found = await self._call(f"discovery of {group}/{version}", discover)
        if not isinstance(found, Mapping):
            return None
        for resource in found.get("resources", []):
            if resource.get("kind") == kind and "/" not in resource.get("name", "/"):
                return str(resource["name"])
        return None

    def _object_call(self, verb: str, key: ObjectKey, *args: Any) -> Any:
        """``CustomObjectsApi.<verb>_namespaced_custom_object<...>`` or its cluster twin for
        ``key`` (``verb`` e.g. ``get``, ``patch``, ``patch..._status`` as ``patch:status``)."""
        action, _, sub = verb.partition(":")
        suffix = f"_{sub}" if sub else ""
        if key.namespace:
            fn = getattr(self._custom, f"{action}_namespaced_custom_object{suffix}")
            where: tuple[str, ...] = (key.group, key.version, key.namespace, key.plural, key.name)
        else:
            fn = getattr(self._custom, f"{action}_cluster_custom_object{suffix}")
            where = (key.group, key.version, key.plural, key.name)
        return fn(*where, *args, _request_timeout=self._timeout)

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        return await self._call(f"get {key}", lambda: self._object_call("get", key))

    async def patch_status(
        self, key: ObjectKey, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch ``.status`` through the status subresource; None if the object is gone."""
        body = {"status": dict(status)}
        return await self._call(
            f"status of {key}", lambda: self._object_call("patch:status", key, body)
        )

    async def set_finalizers(
        self, key: ObjectKey, finalizers: list[str], resource_version: str
    ) -> dict[str, Any] | None:
        """Replace ``metadata.finalizers``, only if the object is still at ``resource_version``."""
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}}
        return await self._call(
            f"finalizers of {key}", lambda: self._object_call("patch", key, body)
        )


class Leases:
    """coordination.k8s.io/v1 Leases as plain dicts, for leader election
    (:mod:`bridge.kube.leader`).

    The calls run in a thread pool of their own, so a renewal never waits behind the other
    calls' threads, and each one is bounded by ``timeout`` seconds.
    """

    def __init__(self, client: Any, *, timeout: float = 10.0) -> None:
        import concurrent.futures

        from kubernetes import client as k8s

        self._client = client
        self._api = k8s.CoordinationV1Api(client)
        self._pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="leases")
        self.timeout = timeout

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        def call() -> dict[str, Any]:
            response = fn(*args, _preload_content=False, _request_timeout=self.timeout)
            return dict(json.loads(response.data))

        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise _translate(what, exc) from exc

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Lease ``namespace/name``, or None if there is none."""
        return await self._call(
            f"Lease {namespace}/{name}", self._api.read_namespaced_lease, name, namespace
        )

    async def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create a Lease; :class:`ConflictError` if one of that name exists already."""
        name = body["metadata"]["name"]
        return await self._call(
            f"Lease {namespace}/{name}", self._api.create_namespaced_lease, namespace, dict(body)
        )

    async def replace(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Replace a Lease; ``metadata.resourceVersion`` of ``body`` must still be the current
        one, else :class:`ConflictError` (optimistic concurrency)."""
        name = body["metadata"]["name"]
        return await self._call(
            f"Lease {namespace}/{name}",
            self._api.replace_namespaced_lease,
            name,
            namespace,
            dict(body),
        )


class Jobs:
    """batch/v1 Jobs and their pods, for the job executor (:mod:`bridge.executors.job.executor`):
    the Jobs as plain dicts (async), and the pod's stdin and log (blocking: the run's thread)."""

    def __init__(self, client: Any) -> None:
        from kubernetes import client as k8s

        self._client = client
        self._batch = k8s.BatchV1Api(client)
        self._core = k8s.CoreV1Api(client)

    def close(self) -> None:
        self._client.close()

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        def call() -> Any:
            response = fn(*args, _preload_content=False, **kw)
            return json.loads(response.data)

        try:
            return await asyncio.to_thread(call)
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise _translate(what, exc) from exc

    async def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        created = await self._call(
            f"Job {namespace}/{name}", self._batch.create_namespaced_job, namespace, dict(body)
        )
        return dict(created or {})

    async def delete(self, namespace: str, name: str, *, foreground: bool) -> bool:
        """Delete Job ``namespace/name``, its pod first (``Foreground``) or after it
        (``Background``); False if it was already gone."""
        policy = "Foreground" if foreground else "Background"
        gone = await self._call(
            f"Job {namespace}/{name}",
            self._batch.delete_namespaced_job,
            name,
            namespace,
            propagation_policy=policy,
        )
        return gone is not None

    async def list(self, namespaces: Sequence[str], selector: str) -> list[dict[str, Any]]:
        """The Jobs matching ``selector`` in ``namespaces`` (empty: every namespace)."""
        if not namespaces:
            found = await self._call(
                "Jobs", self._batch.list_job_for_all_namespaces, label_selector=selector
            )
            return list((found or {}).get("items") or [])
        items: list[dict[str, Any]] = []
        for namespace in namespaces:
            found = await self._call(
                f"Jobs of {namespace}",
                self._batch.list_namespaced_job,
                namespace,
                label_selector=selector,
            )
            items += (found or {}).get("items") or []
        return items

    def wait_pod_running(
        self,
        namespace: str,
        job: str,
        container: str,
        *,
        timeout: float,
        stopping: Callable[[], bool] = lambda: False,
    ) -> str:
        """The name of Job ``job``'s pod once ``container`` runs (blocking). Raises
        :class:`PermanentError` when it cannot start (image, configuration), or
        :class:`TemporaryError` when it did not within ``timeout`` seconds or ``stopping()``
        became true."""
        deadline = time.monotonic() + timeout
        last = "no pod yet"
        while time.monotonic() < deadline:
            if stopping():
                raise TemporaryError(f"stopped waiting for the pod of Job {namespace}/{job}")
            try:
                response: Any = self._core.list_namespaced_pod(
                    namespace,
                    label_selector=f"job-name={job}",
                    _preload_content=False,
                    _request_timeout=30,
                )
                pods = json.loads(response.data).get("items") or []
            except Exception as exc:
                raise _translate(f"pods of Job {namespace}/{job}", exc) from exc
            for pod in pods:
                name = pod["metadata"]["name"]
                status = pod.get("status") or {}
                phase = status.get("phase")
                if phase in ("Succeeded", "Failed"):
                    raise PermanentError(
                        f"pod {namespace}/{name} of Job {job} ended ({phase}) "
                        "before the run was sent to it",
                        reason="JobFailed",
                    )
                for state in status.get("containerStatuses") or []:
                    if state.get("name") != container:
                        continue
                    if (state.get("state") or {}).get("running"):
                        return str(name)
                    waiting = (state.get("state") or {}).get("waiting") or {}
                    why = f"{waiting.get('reason', '')}: {waiting.get('message', '')}".strip(": ")
                    if waiting.get("reason") in _POD_BROKEN:
                        raise PermanentError(
                            f"pod {namespace}/{name} of Job {job} cannot start: {why}",
                            reason="JobFailed",
                        )
                    last = f"pod {name} {phase} ({why or 'waiting'})"
            time.sleep(1.0)
        raise TemporaryError(
            f"the pod of Job {namespace}/{job} did not start in {timeout:.0f}s: {last}"
        )

    def attach_stdin(self, namespace: str, pod: str, container: str, data: bytes) -> None:
        """Write ``data`` to the container's stdin (``pods/attach``), then close it (blocking).

        Stdin ends with the v5 protocol's close of the stdin channel (when the server speaks
        v5) and the websocket's close. A refused attach is translated as any API call is (a
        403 is permanent); a stream the server ends before all of ``data`` was written is a
        :class:`TemporaryError` naming how much was sent and what the server said.
        """
        from kubernetes.stream import stream

        what = f"attach to pod {namespace}/{pod}"
        try:
            ws = stream(
                self._core.connect_get_namespaced_pod_attach,
                pod,
                namespace,
                container=container,
                stdin=True,
                stdout=False,
                stderr=False,
                tty=False,
                _preload_content=False,
                binary=True,
            )
        except Exception as exc:
            raise _translate(what, _handshake_refusal(exc)) from exc
        sent = 0
        try:
            for start in range(0, len(data), _STDIN_CHUNK):
                ws.update(timeout=0)  # what the server said meanwhile: a status, its close
                if not ws.is_open():
                    raise TemporaryError(
                        f"{what}: the server closed the stream after {sent} of {len(data)} "
                        f"bytes{_said(ws)}"
                    )
                chunk = data[start : start + _STDIN_CHUNK]
                ws.write_stdin(chunk)
                sent += len(chunk)
            ws.close_channel(_STDIN_CHANNEL)  # v5: stdin's end of file (no-op with v4)
        except BridgeError:
            raise
        except Exception as exc:
            raise TemporaryError(
                f"{what}: the stream broke after {sent} of {len(data)} bytes: {exc!r}"
            ) from exc
        finally:
            ws.close()

    def follow_log(self, namespace: str, pod: str, container: str) -> LogStream:
        """The container's log as a raw byte stream that follows it until it ends (blocking)."""
        what = f"log of pod {namespace}/{pod}"
        try:
            response = self._core.read_namespaced_pod_log(
                pod, namespace, container=container, follow=True, _preload_content=False
            )
        except Exception as exc:
            raise _translate(what, exc) from exc
        return LogStream(response, what)


class LogStream(io.RawIOBase):
    """A followed log as a raw stream: a read returns what has arrived so far (waiting for at
    least one byte), ``b""`` once the server ended the log or the stream was closed.

    NB: urllib3's own ``read(n)`` (and so its ``readinto``) waits until ``n`` bytes arrived: a
    ``BufferedReader`` over the response would hold a line back until 8 KiB more of the log
    came. ``read1`` returns each chunk as it arrives. Closing from another thread first shuts
    the socket down, which ends a read blocked in it (closing alone would wait for that read).
    A stream cut short is a :class:`TemporaryError`.
    """

    #: Set by callers that used to read the urllib3 response itself; a LogStream never closes
    #: by itself (only :meth:`close` does), so the end of the stream is always ``b""``.
    auto_close: bool = False

    def __init__(self, response: Any, what: str) -> None:
        super().__init__()
        self._response = response
        self._what = what
        self._closing = False
        response.auto_close = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._response.read1(len(view))
        except Exception as exc:
            if self._closing:
                return 0
            raise _translate(f"{self._what}: the stream broke", exc) from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed and not self._closing:
            self._closing = True
            with contextlib.suppress(Exception):
                self._response.shutdown()
            with contextlib.suppress(Exception):
                self._response.close()
        super().close()


#: Stdin goes out in websocket messages of this many bytes.
_STDIN_CHUNK = 64 * 1024
#: The channels of the ``*.channel.k8s.io`` protocols the bridge uses.
_STDIN_CHANNEL, _STATUS_CHANNEL = 0, 3


def _handshake_refusal(exc: Exception) -> Exception:
    """The API's refusal of a websocket upgrade as an ``ApiException`` with its real status.

    NB: the client reports every failed upgrade as status 0 (network trouble, temporary), the
    server's status and ``Status`` body only in the message of the websocket library's
    exception, which it raised from.
    """
    from kubernetes.client.exceptions import ApiException
    from websocket import WebSocketBadStatusException

    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, WebSocketBadStatusException):
        refused = ApiException(status=cause.status_code, reason=cause.status_message)
        body = cause.resp_body
        refused.body = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return refused
    return exc


def _said(ws: Any) -> str:
    """What the server put on the status channel, if anything (": message")."""
    try:
        raw = ws.read_channel(_STATUS_CHANNEL)
        status = json.loads(raw) if raw else None
    except (ValueError, TypeError):
        return f": {raw!r}"
    if isinstance(status, Mapping) and status.get("message"):
        return f": {status['message']}"
    return ""


#: Waiting reasons of a container that will not start by itself.
_POD_BROKEN = frozenset(
    {
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
