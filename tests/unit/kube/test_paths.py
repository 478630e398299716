"""API paths: built in one place, and read back by the proxy."""

from __future__ import annotations

import pytest

from bridge.kube.paths import (
    Collection,
    collection_of,
    collection_path,
    group_version_path,
    object_path,
)


def test_core_and_named_groups() -> None:
    assert group_version_path("", "v1") == "/api/v1"
    assert group_version_path("apps", "v1") == "/apis/apps/v1"
    assert collection_path("apps", "v1", "deployments") == "/apis/apps/v1/deployments"
    assert (
        object_path("web.example.com", "v1", "sites", "shop", "front")
        == "/apis/web.example.com/v1/namespaces/shop/sites/front"
    )
    assert object_path("", "v1", "namespaces", None, "shop") == "/api/v1/namespaces/shop"


@pytest.mark.parametrize(
    "collection",
    [
        Collection("", "v1", "configmaps", "ns"),
        Collection("", "v1", "namespaces", None),
        Collection("apps", "v1", "deployments", None),
        Collection("web.example.com", "v1alpha1", "sites", "shop"),
    ],
)
def test_a_collection_path_reads_back(collection: Collection) -> None:
    assert collection_of(collection.path) == collection
