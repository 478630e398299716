"""The runs' API proxy: playbooks reach Kubernetes through it, and what they create is owned.

As the Operator SDK's Ansible operator does, every run talks to the API server through a proxy in
the operator (on 127.0.0.1, a free port) that forwards each request with the operator's own
credentials. A run is given ``K8S_AUTH_HOST`` (the proxy) and ``K8S_AUTH_API_KEY``: a random
token issued for that run alone and revoked when it ends (the SDK encodes the owner in the
kubeconfig's user name instead; a token cannot be forged). An unknown token gets 401.

When a run creates an object (POST to a collection, not to a subresource), the proxy adds to it:

- an ownerReference ``{apiVersion, kind, name, uid}`` to the run's resource when the owner is
  cluster-scoped, or when both are namespaced in the same namespace;
- else the annotations ``operator-sdk/primary-resource: <namespace>/<name>`` and
  ``operator-sdk/primary-resource-type: <Kind>.<group>``,

and tells :mod:`bridge.kube.dependents` about the kind, which may start watching it. Nothing else is
changed; responses (watches too) stream back as they come. The proxy remembers the
``(uid, resourceVersion)`` its runs' writes left (:meth:`ApiProxy.wrote`), so that a run's own
change to a dependent does not run its owner again (the SDK's would, once). There is no cache
(the SDK answers GETs from an informer cache): every request reaches the API server.
"""

from __future__ import annotations

import json
import logging
import secrets
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from yarl import URL

from bridge.kube.client import AUTH_API_KEY, AUTH_HOST, Credentials
from bridge.kube.paths import Collection, collection_of, group_version_path
from bridge.model.annotations import SDK_PRIMARY_RESOURCE, SDK_PRIMARY_RESOURCE_TYPE
from bridge.model.watch import Watch

logger = logging.getLogger("bridge.kube.proxy")

#: Headers of one hop only (RFC 9110 7.6.1), and those the proxy sets itself.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "authorization",
        "content-length",
    }
)


def primary_resource_type(watch: Watch) -> str:
    """The value of the SDK's primary-resource-type annotation for ``watch``'s kind."""
    return f"{watch.kind}.{watch.group}"


@dataclass(frozen=True)
class Owner:
    """The resource a run is for: what its dependents point back to."""

    watch: Watch
    name: str
    namespace: str | None
    uid: str

    @property
    def namespaced(self) -> bool:
        return self.namespace is not None

    def owner_reference(self) -> dict[str, str]:
        return {
            "apiVersion": self.watch.api_version,
            "kind": self.watch.kind,
            "name": self.name,
            "uid": self.uid,
        }

    def annotations(self) -> dict[str, str]:
        return {
            SDK_PRIMARY_RESOURCE: f"{self.namespace or ''}/{self.name}",
            SDK_PRIMARY_RESOURCE_TYPE: primary_resource_type(self.watch),
        }


@dataclass(frozen=True)
class Resource:
    """What discovery says about a kind of object."""

    kind: str
    namespaced: bool
    verbs: frozenset[str]

    @property
    def watchable(self) -> bool:
        """Objects that can be listed and watched (not virtual ones like TokenReview)."""
        return {"get", "list", "watch"} <= self.verbs


@dataclass(frozen=True)
class Created:
    """An object a run created through the proxy: told to :mod:`bridge.kube.dependents`."""

    owner: Owner
    collection: Collection
    resource: Resource
    #: The owner is recorded as an ownerReference (else: as the annotations).
    owner_reference: bool


def uses_owner_reference(owner: Owner, namespace: str | None, namespaced: bool) -> bool:
    """Whether an object (``namespaced``, in ``namespace``) can have an ownerReference to
    ``owner``: a cluster-scoped owner can own anything; a namespaced one only objects of its
    own namespace (Kubernetes' garbage collector ignores any other)."""
    if not owner.namespaced:
        return True
    return namespaced and namespace == owner.namespace


def mark_owner(body: dict[str, Any], owner: Owner, *, owner_reference: bool) -> None:
    """Add ``owner`` to the object ``body``, as an ownerReference or as the annotations (an
    ownerReference already there for the same uid is kept as it is)."""
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        metadata = body["metadata"] = {}
    if owner_reference:
        refs = metadata.get("ownerReferences")
        if not isinstance(refs, list):
            refs = metadata["ownerReferences"] = []
        if not any(isinstance(r, Mapping) and r.get("uid") == owner.uid for r in refs):
            refs.append(owner.owner_reference())
    else:
        annotations = metadata.get("annotations")
        if not isinstance(annotations, dict):
            annotations = metadata["annotations"] = {}
        annotations.update(owner.annotations())


def ssl_context(creds: Credentials) -> ssl.SSLContext | bool:
    """The TLS settings of ``creds`` for aiohttp (True: the system's defaults)."""
    if not creds.server.startswith("https:"):
        return True
    context = ssl.create_default_context(cafile=creds.ca_path)
    if creds.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if creds.certificate_path:
        context.load_cert_chain(creds.certificate_path, creds.private_key_path)
    return context


def auth_headers(creds: Credentials) -> dict[str, str]:
    if not creds.token:
        return {}
    return {"Authorization": f"{creds.scheme or 'Bearer'} {creds.token}"}


#: How many of the runs' own writes are remembered (the oldest are forgotten first).
OWN_WRITES = 4096
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def api_url(creds: Credentials, raw_path: str) -> URL:
    """The API server's URL of ``raw_path`` (with its query, as encoded as it came)."""
    return URL(creds.server.rstrip("/") + "/" + raw_path.lstrip("/"), encoded=True)


def client_session(creds: Credentials, *, decompress: bool = True) -> ClientSession:
    """An aiohttp session that reaches the API server as the operator (no overall timeout:
    watches last)."""
    return ClientSession(
        connector=TCPConnector(ssl=ssl_context(creds)),
        headers=auth_headers(creds),
        timeout=ClientTimeout(total=None, sock_connect=30),
        auto_decompress=decompress,
    )


class ApiProxy:
    """The proxy server, and the registry of run tokens (``RunIdentities`` of
    bridge.controller.reconcile)."""

    def __init__(
        self,
        creds: Credentials,
        *,
        on_created: Callable[[Created], None] | None = None,
        serves: Callable[[Watch], bool] = lambda watch: True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._creds = creds
        self.on_created = on_created
        self._serves = serves
        self._host = host
        self._port = port
        self._tokens: dict[str, Owner] = {}
        self._own: dict[tuple[str, str], None] = {}  # insertion-ordered: oldest first
        self._discovery: dict[tuple[str, str], dict[str, Resource]] = {}
        self._session: ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- tokens ---------------------------------------------------------------------------

    def issue(self, watch: Watch, body: Mapping[str, Any]) -> dict[str, str]:
        metadata = body.get("metadata") or {}
        if not self.url or not metadata.get("uid") or not self._serves(watch):
            return {}
        token = secrets.token_urlsafe(32)
        self._tokens[token] = Owner(
            watch=watch,
            name=str(metadata.get("name", "")),
            namespace=metadata.get("namespace") or None,
            uid=str(metadata["uid"]),
        )
        return {AUTH_HOST: self.url, AUTH_API_KEY: token}

    def revoke(self, env: Mapping[str, str]) -> None:
        self._tokens.pop(env.get(AUTH_API_KEY, ""), None)

    def wrote(self, uid: str, resource_version: str) -> bool:
        """Whether a run's write through the proxy left object ``uid`` at this version."""
        return (uid, resource_version) in self._own

    def remember(self, body: bytes) -> None:
        """Note the object a write answered with (ignoring anything else, a Status)."""
        try:
            obj = json.loads(body)
        except ValueError:
            return
        metadata = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(metadata, dict) or not metadata.get("uid"):
            return
        self._own[(str(metadata["uid"]), str(metadata.get("resourceVersion", "")))] = None
        while len(self._own) > OWN_WRITES:
            del self._own[next(iter(self._own))]

    def owner_of(self, authorization: str) -> Owner | None:
        """The owner a request's ``Authorization`` header stands for, or None."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self._tokens.get(token.strip())

    # --- server ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = client_session(self._creds, decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{self._host}:{port}"
        logger.info("API proxy for runs listening on %s", self.url)

    async def stop(self) -> None:
        self._tokens.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        owner = self.owner_of(request.headers.get("Authorization", ""))
        if owner is None:
            return _status(401, "Unauthorized", "unknown or expired run token")
        if request.headers.get("Upgrade"):
            return _status(
                501, "NotImplemented", "the bridge's API proxy does not forward exec/attach"
            )
        data = await request.read()
        created: Created | None = None
        if request.method == "POST" and data:
            try:
                data, created = await self._mark(request, owner, data)
            except _Refused as exc:
                return _status(400, "BadRequest", str(exc))
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            async with self._session.request(
                request.method,
                api_url(self._creds, request.raw_path),
                headers=headers,
                data=data or None,
                allow_redirects=False,
            ) as upstream:
                if created is not None and upstream.status < 300 and self.on_created is not None:
                    try:
                        self.on_created(created)
                    except Exception:  # watching dependents is best effort
                        logger.exception("could not watch %s", created.collection)
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in upstream.headers.items():
                    if key.lower() not in _HOP_HEADERS:
                        response.headers.add(key, value)
                await response.prepare(request)
                if (
                    request.method in _WRITES
                    and upstream.status < 300
                    and "Content-Encoding" not in upstream.headers
                ):
                    body = await upstream.read()  # one object, not a stream
                    self.remember(body)
                    await response.write(body)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (OSError, TimeoutError) as exc:
            logger.warning("API proxy: %s %s: %s", request.method, request.path, exc)
            return _status(502, "BadGateway", f"the API server is not reachable: {exc}")

    async def _mark(
        self, request: web.Request, owner: Owner, data: bytes
    ) -> tuple[bytes, Created | None]:
        """The body of a POST with the owner added, when it creates an object."""
        collection = collection_of(request.path)
        if collection is None:
            return data, None
        resource = await self._resource(collection)
        if resource is None or not resource.watchable:
            return data, None  # unknown to discovery, or virtual (a review, a token request)
        try:
            body = json.loads(data)
        except ValueError as exc:
            if "json" in request.headers.get("Content-Type", "json"):
                raise _Refused(f"the request body is not JSON: {exc}") from exc
            return data, None  # protobuf/YAML bodies pass unchanged
        if not isinstance(body, dict):
            return data, None
        namespace = collection.namespace
        if resource.namespaced and namespace is None:
            namespace = (body.get("metadata") or {}).get("namespace") or None
        by_ref = uses_owner_reference(owner, namespace, resource.namespaced)
        mark_owner(body, owner, owner_reference=by_ref)
        logger.debug(
            "run of %s/%s creates a %s in %s (%s)",
            owner.watch.kind,
            owner.name,
            resource.kind,
            namespace or "the cluster",
            "ownerReference" if by_ref else "annotations",
        )
        marked = Collection(collection.group, collection.version, collection.plural, namespace)
        return json.dumps(body).encode(), Created(owner, marked, resource, by_ref)

    async def _resource(self, collection: Collection) -> Resource | None:
        """Discovery of ``collection``'s kind (cached per group/version; asked again once when
        a plural is not known, e.g. a CRD installed since)."""
        gv = (collection.group, collection.version)
        known = self._discovery.get(gv)
        if known is None or collection.plural not in known:
            known = self._discovery[gv] = await self._discover(*gv)
        return known.get(collection.plural)

    async def _discover(self, group: str, version: str) -> dict[str, Resource]:
        assert self._session is not None
        path = group_version_path(group, version)
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        try:
            async with self._session.get(api_url(self._creds, path), headers=headers) as resp:
                if resp.status != 200:
                    return {}
                found = json.loads(await resp.read())
        except (OSError, TimeoutError, ValueError) as exc:
            logger.warning("API proxy: discovery of %s: %s", path, exc)
            return {}
        return {
            str(r["name"]): Resource(
                kind=str(r.get("kind", "")),
                namespaced=bool(r.get("namespaced")),
                verbs=frozenset(r.get("verbs") or ()),
            )
            for r in found.get("resources") or ()
            if isinstance(r, Mapping) and "/" not in str(r.get("name", "/"))
        }


class _Refused(Exception):
    pass


def _status(code: int, reason: str, message: str) -> web.Response:
    """A Kubernetes ``Status`` answer, as the API server itself gives errors."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)
