"""Dependent resources: an Operator SDK memcached project, run unchanged.

The project in ``data/memcached/`` is the SDK tutorial's: a role that creates a Deployment sized
by ``spec.size`` with ``kubernetes.core.k8s``, reports in the status with ``k8s_status`` and
removes the Deployment in its finalizer run. Runs reach the API through the operator's proxy,
which adds the ownerReference; the Deployments' watch runs the owner again when one changes or
goes away. The test control plane has no controller-manager: Deployments are objects only (no
pods, no garbage collector), so the tests look at the objects.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import Kubectl
from tests.e2e.conftest import DATA, Bridge, Operator, ansible_processes, wait_for

pytestmark = pytest.mark.e2e

PROJECT = DATA / "memcached"
GROUP, VERSION, PLURAL = "cache.example.com", "v1alpha1", "memcacheds"
API_VERSION = f"{GROUP}/{VERSION}"
TIMEOUT = 180.0


@pytest.fixture(scope="session")
def memcached_crd(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(PROJECT / "crd.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/memcacheds.cache.example.com")


class Memcached:
    """The project's operator in the test's namespace, and its objects."""

    def __init__(self, bridge: Bridge, api_client: Any) -> None:
        from kubernetes import client

        self.bridge = bridge
        self.ns = bridge.namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)

    def start(self, *args: str, **keys: Any) -> Operator:
        """The operator on the project; ``keys`` set watches keys (a copy of the project)."""
        watches = PROJECT / "watches.yaml"
        if keys:
            project = self.bridge.workdir / "project"
            shutil.copytree(PROJECT, project)
            entries = yaml.safe_load((project / "watches.yaml").read_text())
            entries[0].update(keys)
            watches = project / "watches.yaml"
            watches.write_text(yaml.safe_dump(entries))
        operator = Operator(self.bridge.plane, watches, self.ns, self.bridge.workdir, args)
        self.bridge.operator = operator
        return operator.start()

    def create(self, name: str, size: int) -> dict[str, Any]:
        body = {
            "apiVersion": API_VERSION,
            "kind": "Memcached",
            "metadata": {"name": name},
            "spec": {"size": size},
        }
        return dict(
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)
        )

    def get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return dict(
                self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def resize(self, name: str, size: int) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, name, {"spec": {"size": size}}
        )

    def request_run(self, name: str, value: str) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.ns,
            PLURAL,
            name,
            {"metadata": {"annotations": {"ansible-bridge.io/run-requested": value}}},
        )

    def deployment(self, name: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.apps.read_namespaced_deployment(f"{name}-memcached", self.ns)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def wait(self, what: str, predicate: Any, timeout: float = TIMEOUT) -> Any:
        try:
            return wait_for(what, predicate, timeout)
        except AssertionError:
            print(self.bridge.operator.log_text()[-8000:] if self.bridge.operator else "")
            raise

    def wait_ready(self, name: str, generation: int, **last_run: Any) -> dict[str, Any]:
        """The resource once its run of ``generation`` succeeded (and its ``lastRun`` has the
        given fields)."""

        def ready() -> dict[str, Any] | None:
            obj = self.get(name) or {}
            st = obj.get("status") or {}
            cond = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
            run = st.get("lastRun") or {}
            if (
                st.get("observedGeneration") == generation
                and cond is not None
                and cond.get("status") == "True"
                and all(run.get(k) == v for k, v in last_run.items())
            ):
                return obj
            return None

        return dict(self.wait(f"Memcached/{name} Ready at generation {generation}", ready))

    def wait_runs(self, name: str, count: int) -> dict[str, Any]:
        """The resource once ``count`` runs have finished and none is in flight."""

        def done() -> dict[str, Any] | None:
            obj = self.get(name) or {}
            st = obj.get("status") or {}
            if len(st.get("runs") or []) == count and not st.get("currentRun"):
                return obj
            return None

        return dict(self.wait(f"Memcached/{name} with {count} runs", done))


@pytest.fixture
def memcached(bridge: Bridge, api_client: Any, memcached_crd: None) -> Iterator[Memcached]:
    yield Memcached(bridge, api_client)


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "Memcached",
        "name": meta["name"],
        "uid": meta["uid"],
    }


def refs(deployment: Any) -> list[dict[str, Any]]:
    return [
        {"apiVersion": r.api_version, "kind": r.kind, "name": r.name, "uid": r.uid}
        for r in deployment.metadata.owner_references or []
    ]


def test_the_deployment_is_owned_sized_and_reported(memcached: Memcached) -> None:
    memcached.start()
    owner = memcached.create("cache", size=2)

    obj = memcached.wait_ready("cache", generation=1, trigger="create")
    deployment = memcached.deployment("cache")
    assert deployment is not None
    assert refs(deployment) == [owner_reference(owner)]
    assert deployment.spec.replicas == 2
    # What the role's k8s_status call wrote, next to the bridge's own status.
    assert obj["status"]["replicas"] == 2
    assert obj["status"]["deployment"] == "cache-memcached"
    assert obj["status"]["lastRun"]["result"] == "successful"
    # The Operator SDK's conditions, as its tooling waits for them.
    conditions = {c["type"]: c for c in obj["status"]["conditions"]}
    assert conditions["Successful"]["status"] == "True"
    assert conditions["Running"]["reason"] == "Successful"
    assert conditions["Running"]["ansibleResult"]["failures"] == 0
    assert conditions["Running"]["ansibleResult"]["changed"] >= 1  # the Deployment was created

    memcached.resize("cache", 3)
    obj = memcached.wait_ready("cache", generation=2, trigger="update")
    deployment = memcached.deployment("cache")
    assert deployment.spec.replicas == 3
    assert refs(deployment) == [owner_reference(owner)]
    assert obj["status"]["replicas"] == 3


def test_a_changed_or_deleted_deployment_runs_its_owner_again(memcached: Memcached) -> None:
    operator = memcached.start()
    owner = memcached.create("cache", size=2)
    memcached.wait_ready("cache", generation=1, trigger="create")
    first = memcached.deployment("cache")
    assert "watching dependents: Deployment.apps/v1" in operator.log_text()

    # Someone scales the Deployment by hand: the owner's run puts spec.size back.
    memcached.apps.patch_namespaced_deployment(
        "cache-memcached", memcached.ns, {"spec": {"replicas": 7}}
    )
    memcached.wait(
        "the Deployment back at 2 replicas",
        lambda: (d := memcached.deployment("cache")) is not None and d.spec.replicas == 2,
    )
    memcached.wait_ready("cache", generation=1, trigger="dependent")
    memcached.wait_runs("cache", 2)

    # Someone deletes it: the owner's run creates it again, owned again.
    memcached.apps.delete_namespaced_deployment("cache-memcached", memcached.ns)
    again = memcached.wait(
        "a new Deployment",
        lambda: (
            (d := memcached.deployment("cache")) is not None
            and d.metadata.uid != first.metadata.uid
            and d
        ),
    )
    assert refs(again) == [owner_reference(owner)]
    assert again.spec.replicas == 2
    obj = memcached.wait_runs("cache", 3)
    # One run per change from outside; the runs' own writes to the Deployment run nothing.
    assert [r["trigger"] for r in obj["status"]["runs"]] == ["dependent", "dependent", "create"]
    assert obj["status"]["lastRun"]["result"] == "successful"

    # Deleting the owner runs the finalizer (state: absent), which deletes the Deployment.
    memcached.custom.delete_namespaced_custom_object(GROUP, VERSION, memcached.ns, PLURAL, "cache")
    memcached.wait("Memcached/cache gone", lambda: memcached.get("cache") is None)
    assert memcached.deployment("cache") is None
    assert not ansible_processes(memcached.bridge)


def test_inject_owner_ref_false_leaves_created_objects_alone(memcached: Memcached) -> None:
    operator = memcached.start("--inject-owner-ref=false")
    memcached.create("cache", size=1)
    memcached.wait_ready("cache", generation=1, trigger="create")
    deployment = memcached.deployment("cache")
    assert deployment is not None and deployment.spec.replicas == 1
    assert not deployment.metadata.owner_references
    assert not (deployment.metadata.annotations or {}).get("operator-sdk/primary-resource")
    assert "API proxy" not in operator.log_text()


@pytest.mark.parametrize(
    "keys",
    [
        {"watchDependentResources": False},
        {"blacklist": [{"group": "apps", "version": "v1", "kind": "Deployment"}]},
    ],
    ids=["watchDependentResources-false", "blacklist"],
)
def test_unwatched_dependents_do_not_run_the_owner(
    memcached: Memcached, keys: dict[str, Any]
) -> None:
    operator = memcached.start(**keys)
    owner = memcached.create("cache", size=1)
    memcached.wait_ready("cache", generation=1, trigger="create")
    deployment = memcached.deployment("cache")
    assert refs(deployment) == [owner_reference(owner)]  # still owned (garbage collection)
    # The watch would have started while the run created the Deployment, before Ready.
    assert "watching dependents" not in operator.log_text()

    memcached.apps.delete_namespaced_deployment("cache-memcached", memcached.ns)
    memcached.wait("the Deployment gone", lambda: memcached.deployment("cache") is None)
    # The next run is the requested one, not one for the deleted dependent.
    memcached.request_run("cache", "1")
    obj = memcached.wait_ready("cache", generation=1, trigger="requested")
    assert [r["trigger"] for r in obj["status"]["runs"]] == ["requested", "create"]
    assert memcached.deployment("cache") is not None


def test_the_proxy_refuses_requests_without_a_run_token(memcached: Memcached) -> None:
    """The proxy acts with the operator's credentials for runs only: anything else on the
    machine that finds its port gets 401 (issued tokens are revoked when their run ends, see
    tests/unit/test_proxy.py)."""
    import json
    import urllib.error
    import urllib.request

    operator = memcached.start()
    memcached.create("cache", size=1)
    memcached.wait_ready("cache", generation=1)
    line = next(
        line
        for line in operator.log_text().splitlines()
        if "API proxy for runs listening on" in line
    )
    url = line.rsplit(" ", 1)[1]
    request = urllib.request.Request(
        f"{url}/api/v1/namespaces", headers={"Authorization": "Bearer not-a-run-token"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["reason"] == "Unauthorized"
