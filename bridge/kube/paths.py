"""Kubernetes API paths: the one place that builds and reads ``/api`` and ``/apis`` URLs.

The core group (``""``) lives under ``/api/<version>``, every other group under
``/apis/<group>/<version>``; below that, a collection is ``[namespaces/<ns>/]<plural>`` and an
object is its collection's path plus ``/<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass


def group_version_path(group: str, version: str) -> str:
    """The discovery path of ``group/version``.

    >>> group_version_path("", "v1"), group_version_path("apps", "v1")
    ('/api/v1', '/apis/apps/v1')
    """
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def collection_path(group: str, version: str, plural: str, namespace: str | None = None) -> str:
    """The path of a collection, in ``namespace`` or cluster-wide (None).

    >>> collection_path("example.com", "v1", "websites", "shop")
    '/apis/example.com/v1/namespaces/shop/websites'
    """
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"{group_version_path(group, version)}{where}/{plural}"


def object_path(group: str, version: str, plural: str, namespace: str | None, name: str) -> str:
    """The path of one object.

    >>> object_path("", "v1", "configmaps", "shop", "settings")
    '/api/v1/namespaces/shop/configmaps/settings'
    """
    return f"{collection_path(group, version, plural, namespace)}/{name}"


@dataclass(frozen=True)
class Collection:
    """A collection a request addresses: ``/api/v1[/namespaces/NS]/PLURAL`` or
    ``/apis/GROUP/VERSION[/namespaces/NS]/PLURAL``."""

    group: str
    version: str
    plural: str
    namespace: str | None

    @property
    def path(self) -> str:
        return collection_path(self.group, self.version, self.plural, self.namespace)


def collection_of(path: str) -> Collection | None:
    """The collection ``path`` addresses, or None (a single object, a subresource, discovery,
    anything else): the inverse of :func:`collection_path`."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if len(rest) == 1:
        return Collection(group, version, rest[0], None)
    if len(rest) == 3 and rest[0] == "namespaces":
        return Collection(group, version, rest[2], rest[1])
    return None
