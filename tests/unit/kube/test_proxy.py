"""The runs' API proxy and dependents' watches: owner marking, tokens, and who runs again.

Pure logic, no cluster: which requests create objects, how the owner is recorded, which owners a
changed dependent names, what counts as a change, the watches keys, and the scheduling decision.
The proxy's 401 for an unknown token is checked against a real proxy on loopback (the request
never reaches an API server).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.config.watches import load_watches
from bridge.controller.reconcile import decide
from bridge.kube.client import Credentials
from bridge.kube.dependents import Stream, comparable, owners_of, watches_dependent
from bridge.kube.paths import Collection, collection_of
from bridge.kube.proxy import ApiProxy, Owner, mark_owner, uses_owner_reference
from bridge.model.annotations import SDK_PRIMARY_RESOURCE as PRIMARY_RESOURCE
from bridge.model.annotations import SDK_PRIMARY_RESOURCE_TYPE as PRIMARY_RESOURCE_TYPE
from bridge.model.watch import FinalizerSpec, Watch
from tests.unit.helpers import make_watch

MEMCACHED = make_watch(group="cache.example.com", version="v1alpha1", kind="Memcached")
CLUSTERED = make_watch(group="cache.example.com", version="v1alpha1", kind="Fleet", scope="Cluster")
DEPLOYMENTS = Stream("apps", "v1", "deployments", "Deployment", True, None)
CLUSTER_ROLES = Stream(
    "rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, None
)
CREDS = Credentials(
    server="http://127.0.0.1:9",
    ca_path=None,
    insecure=False,
    scheme=None,
    token=None,
    certificate_path=None,
    private_key_path=None,
)


def owner(namespace: str | None = "ns", watch: Watch = MEMCACHED) -> Owner:
    return Owner(watch=watch, name="cache", namespace=namespace, uid="u-1")


# --- which requests create objects -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/apis/apps/v1/namespaces/ns/deployments", Collection("apps", "v1", "deployments", "ns")),
        ("/api/v1/namespaces/ns/configmaps", Collection("", "v1", "configmaps", "ns")),
        ("/api/v1/namespaces", Collection("", "v1", "namespaces", None)),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            Collection("rbac.authorization.k8s.io", "v1", "clusterroles", None),
        ),
        ("/apis/apps/v1/deployments", Collection("apps", "v1", "deployments", None)),
    ],
)
def test_collections_are_recognized(path: str, expected: Collection) -> None:
    assert collection_of(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/ns/pods/web/eviction",  # a subresource
        "/apis/apps/v1/namespaces/ns/deployments/web",  # one object
        "/api/v1/namespaces/ns",  # one namespace
        "/apis/apps/v1",  # discovery
        "/version",
        "/",
    ],
)
def test_other_paths_create_nothing(path: str) -> None:
    assert collection_of(path) is None


# --- how the owner is recorded ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner_ns", "namespace", "namespaced", "expected"),
    [
        ("ns", "ns", True, True),  # same namespace: ownerReference
        ("ns", "other", True, False),  # another namespace: annotations
        ("ns", None, False, False),  # cluster-scoped dependent of a namespaced owner
        (None, "ns", True, True),  # a cluster-scoped owner owns anything
        (None, None, False, True),
    ],
)
def test_owner_reference_or_annotations(
    owner_ns: str | None, namespace: str | None, namespaced: bool, expected: bool
) -> None:
    assert uses_owner_reference(owner(owner_ns), namespace, namespaced) is expected


def test_the_owner_reference_is_the_sdks() -> None:
    body: dict[str, Any] = {"kind": "Deployment", "metadata": {"name": "cache-memcached"}}
    mark_owner(body, owner(), owner_reference=True)
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "cache.example.com/v1alpha1",
            "kind": "Memcached",
            "name": "cache",
            "uid": "u-1",
        }
    ]
    assert "annotations" not in body["metadata"]


def test_existing_owner_references_are_kept_and_not_doubled() -> None:
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u-0"}
    body: dict[str, Any] = {"metadata": {"ownerReferences": [other]}}
    mark_owner(body, owner(), owner_reference=True)
    mark_owner(body, owner(), owner_reference=True)
    assert [r["uid"] for r in body["metadata"]["ownerReferences"]] == ["u-0", "u-1"]


def test_annotations_name_the_owner_as_the_sdk_does() -> None:
    body: dict[str, Any] = {"metadata": {"annotations": {"keep": "me"}}}
    mark_owner(body, owner(), owner_reference=False)
    assert body["metadata"]["annotations"] == {
        "keep": "me",
        PRIMARY_RESOURCE: "ns/cache",
        PRIMARY_RESOURCE_TYPE: "Memcached.cache.example.com",
    }
    assert "ownerReferences" not in body["metadata"]


def test_a_body_without_metadata_gets_some() -> None:
    body: dict[str, Any] = {"kind": "ConfigMap"}
    mark_owner(body, owner(), owner_reference=True)
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"


# --- tokens ----------------------------------------------------------------------------------


def started_proxy() -> ApiProxy:
    proxy = ApiProxy(CREDS)
    proxy.url = "http://127.0.0.1:1"  # as if started: issue() needs the URL
    return proxy


def test_each_run_gets_its_own_token_until_it_is_revoked() -> None:
    proxy = started_proxy()
    body = {"metadata": {"name": "cache", "namespace": "ns", "uid": "u-1"}}
    first, second = proxy.issue(MEMCACHED, body), proxy.issue(MEMCACHED, body)
    assert first["K8S_AUTH_HOST"] == "http://127.0.0.1:1"
    assert first["K8S_AUTH_API_KEY"] != second["K8S_AUTH_API_KEY"]
    assert len(first["K8S_AUTH_API_KEY"]) >= 40
    assert proxy.owner_of(f"Bearer {first['K8S_AUTH_API_KEY']}") == owner()
    proxy.revoke(first)
    assert proxy.owner_of(f"Bearer {first['K8S_AUTH_API_KEY']}") is None
    assert proxy.owner_of(f"Bearer {second['K8S_AUTH_API_KEY']}") == owner()


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer nope", "Basic dXNlcjpwdw=="])
def test_anything_but_an_issued_token_stands_for_no_owner(header: str) -> None:
    proxy = started_proxy()
    proxy.issue(MEMCACHED, {"metadata": {"name": "cache", "namespace": "ns", "uid": "u-1"}})
    assert proxy.owner_of(header) is None


def test_no_token_before_the_proxy_listens() -> None:
    proxy = ApiProxy(CREDS)
    assert proxy.issue(MEMCACHED, {"metadata": {"name": "c", "uid": "u"}}) == {}


def test_the_proxy_answers_401_to_an_unknown_token() -> None:
    async def scenario() -> tuple[int, str]:
        proxy = ApiProxy(CREDS)
        await proxy.start()
        try:
            request = urllib.request.Request(
                f"{proxy.url}/api/v1/namespaces", headers={"Authorization": "Bearer nope"}
            )
            try:
                await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
            return 200, ""
        finally:
            await proxy.stop()

    code, body = asyncio.run(scenario())
    assert code == 401
    assert '"reason": "Unauthorized"' in body


# --- which owners a changed dependent names ---------------------------------------------------


def dependent(
    refs: list[dict[str, str]] | None = None,
    annotations: dict[str, str] | None = None,
    namespace: str | None = "ns",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "d", "uid": "d-1"}
    if namespace:
        metadata["namespace"] = namespace
    if refs is not None:
        metadata["ownerReferences"] = refs
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"metadata": metadata}


REF = {
    "apiVersion": "cache.example.com/v1alpha1",
    "kind": "Memcached",
    "name": "cache",
    "uid": "u-1",
}


def test_an_owner_reference_names_its_owner_in_the_dependents_namespace() -> None:
    found = owners_of(dependent([REF]), DEPLOYMENTS, [MEMCACHED])
    assert [(o.kind, o.namespace, o.name, o.uid) for o in found] == [
        ("Memcached", "ns", "cache", "u-1")
    ]


def test_references_to_kinds_not_watched_name_nobody() -> None:
    other = dict(REF, kind="Other")
    assert owners_of(dependent([other]), DEPLOYMENTS, [MEMCACHED]) == []
    wrong_version = dict(REF, apiVersion="cache.example.com/v1")
    assert owners_of(dependent([wrong_version]), DEPLOYMENTS, [MEMCACHED]) == []


def test_a_cluster_scoped_owner_is_named_without_a_namespace() -> None:
    ref = dict(REF, kind="Fleet")
    found = owners_of(dependent([ref]), DEPLOYMENTS, [CLUSTERED])
    assert [(o.kind, o.namespace, o.name) for o in found] == [("Fleet", None, "cache")]


def test_annotations_name_their_owner() -> None:
    annotations = {
        PRIMARY_RESOURCE: "ns/cache",
        PRIMARY_RESOURCE_TYPE: "Memcached.cache.example.com",
    }
    found = owners_of(
        dependent(annotations=annotations, namespace="other"), DEPLOYMENTS, [MEMCACHED]
    )
    assert [(o.namespace, o.name, o.uid) for o in found] == [("ns", "cache", None)]


def test_cluster_scoped_dependents_count_only_with_watch_cluster_scoped_resources() -> None:
    annotations = {
        PRIMARY_RESOURCE: "ns/cache",
        PRIMARY_RESOURCE_TYPE: "Memcached.cache.example.com",
    }
    obj = dependent(annotations=annotations, namespace=None)
    assert owners_of(obj, CLUSTER_ROLES, [MEMCACHED]) == []
    watching = make_watch(
        group="cache.example.com",
        version="v1alpha1",
        kind="Memcached",
        watch_cluster_scoped_resources=True,
    )
    assert [o.name for o in owners_of(obj, CLUSTER_ROLES, [watching])] == ["cache"]


def test_watch_dependent_resources_false_and_blacklist_name_nobody() -> None:
    off = make_watch(
        group="cache.example.com",
        version="v1alpha1",
        kind="Memcached",
        watch_dependent_resources=False,
    )
    listed = make_watch(
        group="cache.example.com",
        version="v1alpha1",
        kind="Memcached",
        blacklist=(("apps", "v1", "Deployment"),),
    )
    assert owners_of(dependent([REF]), DEPLOYMENTS, [off]) == []
    assert owners_of(dependent([REF]), DEPLOYMENTS, [listed]) == []
    assert not watches_dependent(listed, "apps", "v1", "Deployment")
    assert watches_dependent(listed, "", "v1", "ConfigMap")


# --- what counts as a change ---------------------------------------------------------------


def test_status_and_bookkeeping_are_no_change() -> None:
    old = {
        "metadata": {"name": "d", "resourceVersion": "1", "generation": 1, "managedFields": [1]},
        "spec": {"replicas": 1},
        "status": {"readyReplicas": 0},
    }
    new = {
        "metadata": {"name": "d", "resourceVersion": "2", "generation": 1, "managedFields": [2]},
        "spec": {"replicas": 1},
        "status": {"readyReplicas": 1},
    }
    assert comparable(old) == comparable(new)


def test_spec_labels_and_annotations_are_changes() -> None:
    base = {"metadata": {"name": "d"}, "spec": {"replicas": 1}}
    assert comparable(base) != comparable({**base, "spec": {"replicas": 2}})
    labelled = {"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}}
    assert comparable(base) != comparable(labelled)


def test_streams_watch_the_right_path() -> None:
    assert DEPLOYMENTS.path == "/apis/apps/v1/deployments"
    in_ns = Stream("", "v1", "configmaps", "ConfigMap", True, "ns")
    assert in_ns.path == "/api/v1/namespaces/ns/configmaps"


# --- scheduling: a changed dependent runs the owner once more ----------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ran_body() -> dict[str, Any]:
    return {
        "metadata": {"name": "cache", "namespace": "ns", "uid": "u-1", "generation": 1},
        "status": {
            "observedGeneration": 1,
            "lastRun": {
                "generation": 1,
                "result": "successful",
                "finishedAt": "2026-01-01T00:00:00Z",
            },
        },
    }


def test_a_changed_dependent_runs_a_generation_that_already_ran() -> None:
    assert decide(ran_body(), MEMCACHED, done=None, now=NOW).kind == "none"
    action = decide(ran_body(), MEMCACHED, done=None, now=NOW, dependents_changed=True)
    assert (action.kind, action.trigger, action.generation) == ("run", "dependent", 1)


def test_a_new_generation_is_an_update_even_with_a_changed_dependent() -> None:
    body = ran_body()
    body["metadata"]["generation"] = 2
    action = decide(body, MEMCACHED, done=None, now=NOW, dependents_changed=True)
    assert (action.kind, action.trigger) == ("run", "update")


def test_a_deleted_owner_is_finalized_not_run_for_its_dependents() -> None:
    body = ran_body()
    body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    body["metadata"]["finalizers"] = ["cache.example.com/finalizer"]
    finalizing = make_watch(
        group="cache.example.com",
        version="v1alpha1",
        kind="Memcached",
        finalizer=FinalizerSpec(name="cache.example.com/finalizer"),
    )
    action = decide(body, finalizing, done=None, now=NOW, dependents_changed=True)
    assert action.kind == "finalize"


# --- the watches keys --------------------------------------------------------------------------


def load(tmp_path: Path, extra: str) -> Watch:
    (tmp_path / "site.yml").write_text("- hosts: localhost\n  tasks: []\n")
    path = tmp_path / "watches.yaml"
    path.write_text(
        "- group: cache.example.com\n  version: v1alpha1\n  kind: Memcached\n"
        f"  playbook: site.yml\n{extra}"
    )
    watches, warnings = load_watches(path, {})
    assert warnings == []
    return watches[0]


def test_the_dependents_keys_default_as_the_sdks(tmp_path: Path) -> None:
    watch = load(tmp_path, "")
    assert watch.dependents.enabled is True
    assert watch.dependents.cluster_scoped is False
    assert watch.dependents.blacklist == ()


def test_the_dependents_keys_are_read(tmp_path: Path) -> None:
    watch = load(
        tmp_path,
        "  watchDependentResources: false\n  watchClusterScopedResources: true\n"
        "  blacklist:\n    - {group: apps, version: v1, kind: Deployment}\n"
        "    - {version: v1, kind: ConfigMap}\n",
    )
    assert watch.dependents.enabled is False
    assert watch.dependents.cluster_scoped is True
    assert watch.dependents.blacklist == (("apps", "v1", "Deployment"), ("", "v1", "ConfigMap"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  blacklist: apps\n", "key 'blacklist': expected a list of {group, version, kind}"),
        ("  blacklist: [{group: apps, kind: Deployment}]\n", "key 'blacklist[0].version': missing"),
        ("  blacklist: [{version: v1, kind: Deployment, name: x}]\n", "key 'blacklist[0].name'"),
        ("  watchDependentResources: 'no'\n", "key 'watchDependentResources': expected a boolean"),
    ],
)
def test_bad_dependents_keys_are_named(tmp_path: Path, extra: str, message: str) -> None:
    from bridge.model.errors import WatchesError

    with pytest.raises(WatchesError, match=message.replace("[", r"\[").replace("{", r"\{")):
        load(tmp_path, extra)


# --- events of a dependents' watch -----------------------------------------------------------


def deployment_event(kind: str, uid: str, version: str, replicas: int = 1) -> dict[str, Any]:
    obj = dependent([REF])
    obj["metadata"].update(uid=uid, name=f"d-{uid}", resourceVersion=version)
    obj["spec"] = {"replicas": replicas}
    return {"type": kind, "object": obj}


def run_events(events: list[dict[str, Any]], own: set[tuple[str, str]]) -> list[str]:
    """Feed watch events to a :class:`Dependents` (as its watch would) and return the dependents
    that ran their owner, in order. The last event must run it: that is when it ends."""
    from bridge.kube.dependents import Dependents

    async def scenario() -> list[str]:
        seen: list[str] = []
        last = asyncio.Event()
        final = events[-1]["object"]["metadata"]["name"]

        def notify(group: str, kind: str, ns: str | None, name: str, uid: str | None) -> bool:
            assert (group, kind, ns, name, uid) == (
                "cache.example.com",
                "Memcached",
                "ns",
                "cache",
                "u-1",
            )
            return True

        deps = Dependents(
            CREDS, [MEMCACHED], (), notify, own=lambda u, v: (u, v) in own, settle=0.0
        )
        original = deps._changed

        def changed(stream: Stream, obj: Any, what: str) -> None:
            seen.append(f"{obj['metadata']['name']} {what}")
            original(stream, obj, what)
            if obj["metadata"]["name"] == final:
                last.set()

        deps._changed = changed  # type: ignore[method-assign]
        known: dict[str, dict[str, Any]] = {}
        version = "0"
        for event in events:
            version = deps._event(DEPLOYMENTS, known, event, version)
        await asyncio.wait_for(last.wait(), 10)
        return seen

    return asyncio.run(scenario())


def test_a_change_and_a_deletion_run_the_owner_a_creation_does_not() -> None:
    events = [
        deployment_event("ADDED", "a", "1"),
        deployment_event("MODIFIED", "a", "2", replicas=7),
        deployment_event("DELETED", "a", "3", replicas=7),
    ]
    assert run_events(events, own=set()) == ["d-a MODIFIED", "d-a DELETED"]


def test_status_only_changes_run_nothing() -> None:
    status_only = deployment_event("MODIFIED", "a", "2")
    status_only["object"]["status"] = {"readyReplicas": 1}
    events = [
        deployment_event("ADDED", "a", "1"),
        status_only,
        deployment_event("DELETED", "b", "3"),
    ]
    assert run_events(events, own=set()) == ["d-b DELETED"]


def test_the_runs_own_writes_run_nothing() -> None:
    events = [
        deployment_event("ADDED", "a", "1"),
        deployment_event("MODIFIED", "a", "2", replicas=3),  # a run wrote this
        deployment_event("DELETED", "c", "4"),  # so did a finalizer run
        deployment_event("MODIFIED", "a", "5", replicas=4),  # someone else did
    ]
    assert run_events(events, own={("a", "2"), ("c", "4")}) == ["d-a MODIFIED"]


def test_the_proxy_remembers_the_objects_its_writes_left() -> None:
    proxy = started_proxy()
    proxy.remember(b'{"kind": "Deployment", "metadata": {"uid": "a", "resourceVersion": "7"}}')
    proxy.remember(b'{"kind": "Status", "status": "Failure"}')
    proxy.remember(b"not json")
    assert proxy.wrote("a", "7")
    assert not proxy.wrote("a", "8")
    for i in range(5000):
        proxy.remember(json.dumps({"metadata": {"uid": f"u{i}", "resourceVersion": "1"}}).encode())
    assert not proxy.wrote("a", "7")  # the oldest are forgotten
    assert proxy.wrote("u4999", "1")
